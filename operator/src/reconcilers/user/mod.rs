//! The User reconciler: makes a Kafka user match its resource (Strimzi's User Operator).
//!
//! Every pass (and every `resync` while nothing changes) it finds the Cluster, opens an admin
//! session to it, writes the user's Secret, writes the SCRAM credential again (passwords
//! cannot be read back, so rewriting is how drift is undone), makes the principal's ACLs and
//! the user's quotas equal the spec, and reports in `status`. Problems that retrying soon will
//! not fix (cluster missing or unreachable, no authorizer for the ACLs, a password Secret
//! missing) are `Ready=False` with a reason, not reconcile errors. A finalizer deletes the
//! credential, ACLs and quotas with the resource; the Secret is garbage-collected through
//! its owner reference.
//!
//! - `secret.rs`: the password and the user's Secret.
//! - `credential.rs`: the SCRAM credential.
//! - `acls.rs`: spec to ACL bindings, the diff against the cluster's.
//! - `quotas.rs`: spec to quota values, the diff against the cluster's.
//! - `tests.rs`: scenarios against the mock API server and the in-memory cluster.

mod acls;
mod credential;
mod quotas;
mod secret;
#[cfg(test)]
mod tests;
mod tls;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::ResourceExt;

pub use secret::{KEY_JAAS, KEY_PASSWORD, KEY_USERNAME, LABEL_KIND};

use super::{apply_status, Context};
use crate::crd::conditions::{self, READY};
use crate::crd::user::AuthenticationType;
use crate::crd::{Cluster, User};
use crate::kafka::{KafkaAdmin, ScramMechanism};
use crate::{Error, Result};

/// Finalizer that deletes the user's credential, ACLs and quotas.
pub const FINALIZER: &str = "spate.dev/user";

pub use crate::reconcilers::problem::Problem;

/// Why a pass stopped early: a Kubernetes failure (a reconcile error, retried) or a problem
/// to report in the `Ready` condition.
#[derive(Debug)]
enum Stop {
    Error(Error),
    Problem(Problem),
}

impl From<Problem> for Stop {
    fn from(p: Problem) -> Self {
        Stop::Problem(p)
    }
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Error(e)
    }
}

impl From<kube::Error> for Stop {
    fn from(e: kube::Error) -> Self {
        Stop::Error(e.into())
    }
}

/// The SCRAM mechanism of an authentication type (`None` for TLS).
pub fn scram_mechanism(t: AuthenticationType) -> Option<ScramMechanism> {
    match t {
        AuthenticationType::ScramSha512 => Some(ScramMechanism::Sha512),
        AuthenticationType::ScramSha256 => Some(ScramMechanism::Sha256),
        AuthenticationType::Tls => None,
    }
}

/// Controller entry point.
pub async fn reconcile(user: Arc<User>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile("User");
    let ns = user
        .namespace()
        .ok_or_else(|| Error::Invalid("User must be namespaced".into()))?;
    let api: Api<User> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, user, |event| async {
        match event {
            FinalizerEvent::Apply(u) => apply(&u, &api, &ctx).await,
            FinalizerEvent::Cleanup(u) => cleanup(&u, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply(user: &User, api: &Api<User>, ctx: &Context) -> Result<Action> {
    let result = match sync(user, ctx).await {
        Ok(summary) => Ok(summary),
        Err(Stop::Problem(p)) => Err(p),
        Err(Stop::Error(e)) => return Err(e),
    };
    let mut status = user.status.clone().unwrap_or_default();
    status.observed_generation = user.metadata.generation;
    let now = Timestamp::now();
    let action = match result {
        Ok(summary) => {
            status.username = Some(user.username());
            status.secret = Some(user.secret_name());
            conditions::set(
                &mut status.conditions,
                READY,
                true,
                "Ready",
                summary,
                user.metadata.generation,
                now,
            );
            Action::requeue(ctx.resync)
        }
        Err(problem) => {
            let (kind, namespace, name) = super::log_identity(user);
            tracing::warn!(%kind, namespace, name, reason = problem.reason,
                cluster = %user.spec.cluster_ref, "{}", problem.message);
            conditions::set(
                &mut status.conditions,
                READY,
                false,
                problem.reason,
                problem.message,
                user.metadata.generation,
                now,
            );
            Action::requeue(problem.retry)
        }
    };
    apply_status(api, user, &status).await?;
    Ok(action)
}

/// The user's Cluster, if it exists.
async fn find_cluster(user: &User, ctx: &Context) -> Result<Option<Cluster>> {
    let ns = user.namespace().unwrap_or_default();
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    Ok(clusters.get_opt(&user.spec.cluster_ref).await?)
}

/// Finds the user's cluster and opens an admin session to it.
async fn connect(user: &User, ctx: &Context) -> Result<(Cluster, Arc<dyn KafkaAdmin>), Stop> {
    let Some(cluster) = find_cluster(user, ctx).await? else {
        let ns = user.namespace().unwrap_or_default();
        return Err(Problem::new(
            "ClusterNotFound",
            format!("Cluster {ns}/{} does not exist", user.spec.cluster_ref),
        )
        .into());
    };
    match crate::reconcilers::access::cluster_admin(ctx, &cluster).await {
        Ok(admin) => Ok((cluster, admin)),
        Err(e) => Err(Problem::from_kafka("ClusterUnreachable", &e).into()),
    }
}

/// One pass; returns the `Ready` message.
async fn sync(user: &User, ctx: &Context) -> Result<String, Stop> {
    let (cluster, admin) = connect(user, ctx).await?;
    let admin = admin.as_ref();
    let existing = secret::existing(ctx, user).await?;
    let mut changes = Vec::new();
    let mechanism = scram_mechanism(user.spec.authentication.type_);
    let credential = match mechanism {
        Some(m) => {
            let (password, origin) = secret::password(ctx, user, existing.as_ref()).await?;
            let data = secret::scram_data(&user.username(), &password);
            let source = match origin {
                secret::PasswordOrigin::Referenced { secret, key } => {
                    format!("the password from Secret {secret} key {key}")
                }
                secret::PasswordOrigin::Kept => "its password".to_string(),
                secret::PasswordOrigin::Generated => "a generated password".to_string(),
            };
            write_secret(user, ctx, existing.as_ref(), data, &source).await?;
            credential::sync(user, ctx, admin, Some(m), Some(&password), &mut changes).await?;
            format!("{} credential", m.name())
        }
        None => {
            credential::sync(user, ctx, admin, None, None, &mut changes).await?;
            let data = tls_user_material(ctx, &cluster, user, existing.as_ref()).await?;
            write_secret(user, ctx, existing.as_ref(), data, "a client certificate").await?;
            "client certificate".to_string()
        }
    };
    let acl_count = acls::sync(user, ctx, admin, &mut changes).await?;
    let quota_values = quotas::sync(user, ctx, admin, &mut changes).await?;
    if !changes.is_empty() {
        decision!(user, "UserSynced", changes = ?changes, "made the Kafka user match its spec");
    }
    let quotas = if quota_values.is_empty() {
        "no quotas".to_string()
    } else {
        format!("quotas {}", quotas::describe(&quota_values))
    };
    Ok(format!(
        "{credential} in Secret {}; {}; {quotas}",
        user.secret_name(),
        acls::count(acl_count)
    ))
}

/// Applies the user's Secret with `data`; an Event says when it was created or changed
/// (`source` names where the credential came from, never the credential).
async fn write_secret(
    user: &User,
    ctx: &Context,
    existing: Option<&Secret>,
    data: BTreeMap<String, String>,
    source: &str,
) -> Result<(), Stop> {
    let desired = secret::build(user, data);
    let name = user.secret_name();
    match existing {
        None => {
            secret::apply(ctx, &desired).await?;
            ctx.event(
                user,
                EventType::Normal,
                "SecretCreated",
                format!("Created Secret {name} with {source}"),
            )
            .await;
        }
        Some(old) if old.data != desired.data => {
            secret::apply(ctx, &desired).await?;
            ctx.event(
                user,
                EventType::Normal,
                "SecretUpdated",
                format!("Updated Secret {name} with {source}"),
            )
            .await;
        }
        // Labels and owner could still have been edited: applying again puts them back.
        Some(_) => secret::apply(ctx, &desired).await?,
    }
    Ok(())
}

/// The Secret data of a TLS user (`tls.rs`).
async fn tls_user_material(
    ctx: &Context,
    cluster: &Cluster,
    user: &User,
    existing: Option<&Secret>,
) -> Result<BTreeMap<String, String>, Problem> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    tls::material(ctx, cluster, user, existing, now)
        .await
        .map_err(|(reason, message)| Problem::new(reason, message))
}

async fn cleanup(user: &User, ctx: &Context) -> Result<Action> {
    let name = user.username();
    let Some(cluster) = find_cluster(user, ctx).await? else {
        decision!(
            user,
            "ClusterNotFound",
            user = %name,
            "not deleting the Kafka user: its Cluster no longer exists",
        );
        return Ok(Action::await_change());
    };
    if cluster.metadata.deletion_timestamp.is_some() {
        decision!(
            user,
            "ClusterDeleting",
            user = %name,
            "not deleting the Kafka user: its Cluster is being deleted",
        );
        return Ok(Action::await_change());
    }
    let admin = crate::reconcilers::access::cluster_admin(ctx, &cluster).await?;
    let admin = admin.as_ref();
    credential::remove_all(admin, &name).await?;
    let principal = user.principal();
    let acl_count = acls::remove_all(admin, &principal).await?;
    let quota_keys = quotas::remove_all(admin, &name).await?;
    let quotas = if quota_keys.is_empty() {
        "no quotas".to_string()
    } else {
        format!("quotas {}", quota_keys.join(", "))
    };
    ctx.event(
        user,
        EventType::Normal,
        "UserDeleted",
        format!(
            "Deleted the SCRAM credentials of Kafka user {name}, {} of {principal} and {quotas}",
            acls::count(acl_count)
        ),
    )
    .await;
    Ok(Action::await_change())
}
