//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator replicas can run and
//! only one reconciles. kube 5 ships no elector, hence this small one.
//!
//! The holder renews the lease every `renew_every`; another replica takes over once
//! `renewTime + leaseDurationSeconds` has passed. Writes carry the lease's resourceVersion,
//! so two candidates racing for an expired lease cannot both win (the loser gets 409). A
//! leader that cannot renew before its lease runs out must stop reconciling: `main` exits.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::watch;

use crate::Result;

/// What to do with the lease as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or the holder's term ran out: take it.
    Acquire,
    /// We hold it: renew.
    Renew,
    /// Someone else holds a live lease.
    Wait {
        /// The current holder.
        holder: String,
    },
}

/// Decides from the lease spec alone (pure; the clock is passed in).
pub fn decide(lease: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = lease else {
        return Decision::Acquire;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => Decision::Acquire,
        Some(holder) if holder == identity => Decision::Renew,
        Some(holder) => {
            let duration =
                SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
            let expired = match &spec.renew_time {
                Some(MicroTime(renewed)) => *renewed + duration < now,
                None => true,
            };
            if expired {
                Decision::Acquire
            } else {
                Decision::Wait {
                    holder: holder.to_string(),
                }
            }
        }
    }
}

/// The lease spec after acquiring or renewing.
pub fn next_spec(
    current: Option<&LeaseSpec>,
    identity: &str,
    duration: Duration,
    now: Timestamp,
) -> LeaseSpec {
    let ours = current.and_then(|s| s.holder_identity.as_deref()) == Some(identity);
    let transitions = current.and_then(|s| s.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(i32::try_from(duration.as_secs()).unwrap_or(15)),
        acquire_time: if ours {
            current.and_then(|s| s.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if ours { transitions } else { transitions + 1 }),
        ..LeaseSpec::default()
    }
}

/// A candidate for one named lease.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// How long a lease lasts without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews (and candidates retry).
    pub renew_every: Duration,
    /// Owner of the lease (the operator's Deployment), so the garbage collector removes the
    /// lease with it.
    pub owner: Option<OwnerReference>,
}

impl LeaderElector {
    /// A candidate `identity` (the pod name) for lease `namespace/name`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            owner: None,
        }
    }

    /// One round: acquire or renew if possible. `Ok(true)` while we hold the lease.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        if let Decision::Wait { .. } = decide(spec, &self.identity, now) {
            return Ok(false);
        }
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                resource_version: current
                    .as_ref()
                    .and_then(|l| l.metadata.resource_version.clone()),
                owner_references: self.owner.clone().map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            spec: Some(next_spec(spec, &self.identity, self.lease_duration, now)),
        };
        let written = match current {
            Some(_) => {
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
            None => self.api.create(&PostParams::default(), &lease).await,
        };
        match written {
            Ok(_) => Ok(true),
            // Someone else wrote first (409) or created it meanwhile.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the lease if we hold it, on a clean shutdown: a standby takes over at once
    /// instead of after the lease expires, and `helm uninstall` leaves no Lease behind. The
    /// resourceVersion precondition keeps us from deleting a lease another replica just took.
    pub async fn release(&self) -> Result<()> {
        let lease = match self.api.get_opt(&self.name).await {
            Ok(Some(lease)) => lease,
            Ok(None) | Err(kube::Error::Api(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.identity.as_str());
        if !ours {
            return Ok(());
        }
        let dp = kube::api::DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                resource_version: lease.metadata.resource_version.clone(),
                uid: lease.metadata.uid.clone(),
            }),
            ..kube::api::DeleteParams::default()
        };
        match self.api.delete(&self.name, &dp).await {
            Ok(_) => Ok(()),
            // 403: the release is being uninstalled and our Role went first; the lease's
            // owner reference (the Deployment) takes it instead.
            Err(kube::Error::Api(s)) if matches!(s.code, 403 | 404 | 409) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Campaigns forever, publishing leadership on `leader`. Leadership is dropped when a
    /// renewal has not succeeded for a whole lease duration.
    pub async fn run(self, leader: watch::Sender<bool>) {
        let mut last_renewed: Option<tokio::time::Instant> = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    last_renewed = Some(tokio::time::Instant::now());
                    leader.send_replace(true);
                }
                Ok(false) => {
                    last_renewed = None;
                    leader.send_replace(false);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lease renewal failed");
                    if last_renewed.is_none_or(|t| t.elapsed() >= self.lease_duration) {
                        leader.send_replace(false);
                    }
                }
            }
            tokio::time::sleep(self.renew_every).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcilers::fixtures::{not_found, ApiCall};
    use http::{Request, Response};
    use kube::client::Body;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("timestamp")
    }

    fn held_by(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(at(renewed))),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn free_or_expired_lease_is_acquired() {
        assert_eq!(decide(None, "a", at(100)), Decision::Acquire);
        assert_eq!(
            decide(Some(&held_by("b", 80)), "a", at(100)),
            Decision::Acquire
        );
    }

    #[test]
    fn live_lease_of_another_replica_is_respected() {
        assert_eq!(
            decide(Some(&held_by("b", 90)), "a", at(100)),
            Decision::Wait { holder: "b".into() }
        );
    }

    #[test]
    fn own_lease_is_renewed_without_a_transition() {
        let mine = held_by("a", 90);
        assert_eq!(decide(Some(&mine), "a", at(100)), Decision::Renew);
        let next = next_spec(Some(&mine), "a", Duration::from_secs(15), at(100));
        assert_eq!(next.lease_transitions, Some(3));
        let taken = next_spec(
            Some(&held_by("b", 0)),
            "a",
            Duration::from_secs(15),
            at(100),
        );
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(100))));
    }

    #[tokio::test]
    async fn missing_lease_is_created_with_our_identity() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let mut calls = Vec::new();
            while let Some((req, send)) = handle.next_request().await {
                let method = req.method().to_string();
                let path = req.uri().path().to_string();
                let body: serde_json::Value =
                    serde_json::from_slice(&req.into_body().collect_bytes().await.expect("body"))
                        .unwrap_or_default();
                let (code, reply) = if method == "GET" {
                    not_found()
                } else {
                    (201, body.clone())
                };
                calls.push(ApiCall { method, path, body });
                send.send_response(
                    Response::builder()
                        .status(code)
                        .body(Body::from(serde_json::to_vec(&reply).expect("json")))
                        .expect("response"),
                );
            }
            calls
        });
        let mut elector = LeaderElector::new(
            Client::new(service, "default"),
            "ops",
            "spate-operator",
            "pod-a",
        );
        elector.owner = Some(OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "spate-operator".into(),
            uid: "d-1".into(),
            ..OwnerReference::default()
        });
        assert!(elector.try_acquire_or_renew().await.expect("round"));
        drop(elector);
        let calls = server.await.expect("server");
        assert_eq!(calls[0].method, "GET");
        assert_eq!(
            calls[0].path,
            "/apis/coordination.k8s.io/v1/namespaces/ops/leases/spate-operator"
        );
        assert_eq!(calls[1].method, "POST");
        assert_eq!(
            calls[1].path,
            "/apis/coordination.k8s.io/v1/namespaces/ops/leases"
        );
        assert_eq!(calls[1].body["spec"]["holderIdentity"], "pod-a");
        assert_eq!(calls[1].body["spec"]["leaseDurationSeconds"], 15);
        // Owned by the operator's Deployment, so `helm uninstall` leaves no lease behind.
        let owner = &calls[1].body["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "Deployment");
        assert_eq!(owner["uid"], "d-1");
    }
}
