//! One reconciler per resource, plus what they share: the [`Context`], status patching,
//! Kubernetes Events and the retry policy.

/// Logs a decision that publishes no Event (waiting, blocked, nothing to move, ...) with the
/// fields [`Context::event`] logs, `kind`, `namespace`, `name` and `reason`, then the caller's
/// fields and message: `decision!(cluster, "RollBlocked", broker = 2, "not restarting")`.
macro_rules! decision {
    ($obj:expr, $reason:expr, $($rest:tt)+) => {{
        let (kind, namespace, name) = $crate::reconcilers::log_identity($obj);
        tracing::info!(%kind, namespace, name, reason = $reason, $($rest)+)
    }};
}

pub mod access;
pub mod cluster;
pub mod problem;
pub mod topic;
pub mod user;

#[cfg(test)]
pub(crate) mod fixtures;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::crd::Topic;
use crate::kafka::Connector;
use crate::metrics::Metrics;
use crate::Error;

/// The one field manager for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "spate-operator";

/// What reconcilers share.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Opens Kafka admin sessions to clusters.
    pub kafka: Arc<dyn Connector>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// How often a healthy resource is re-checked against the cluster (drift correction).
    pub resync: Duration,
    /// Every Topic resource (the Topic controller's cache), to detect two resources claiming
    /// one Kafka topic. `None` skips the check.
    pub topics: Option<Store<Topic>>,
}

impl Context {
    /// A context with the default resync interval (60 s).
    pub fn new(client: Client, kafka: Arc<dyn Connector>, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            kafka,
            metrics,
            resync: Duration::from_secs(60),
            topics: None,
        }
    }

    /// Publishes an Event about `obj` and logs it: every Event is a decision, and the log
    /// keeps it after the Event expires (one hour). Failing to publish is logged, never fatal.
    pub async fn event<K>(&self, obj: &K, type_: EventType, reason: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let (kind, namespace, name) = log_identity(obj);
        match type_ {
            EventType::Normal => {
                tracing::info!(%kind, namespace, name, reason, "{note}");
            }
            EventType::Warning => {
                tracing::warn!(%kind, namespace, name, reason, "{note}");
            }
        }
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(reason, error = %e, "publishing event failed");
        }
    }
}

/// `(kind, namespace, name)` of `obj`, the fields every decision is logged with.
pub(crate) fn log_identity<K>(obj: &K) -> (Cow<'static, str>, &str, &str)
where
    K: Resource<DynamicType = ()>,
{
    let meta = obj.meta();
    (
        K::kind(&()),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// Writes `status` of `obj` with server-side apply (status subresource).
pub async fn apply_status<K, S>(api: &Api<K>, obj: &K, status: &S) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await?;
    Ok(())
}

/// Retry policy for failed reconciles: count the failure, try again in 15 s.
pub fn error_policy<K>(kind: &'static str) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action {
    move |_obj, err, ctx| {
        tracing::warn!(kind, error = %err, "reconcile failed");
        ctx.metrics.failure(kind, err.metric_label());
        Action::requeue(Duration::from_secs(15))
    }
}
