//! How every reconciler reaches a Cluster's brokers: the bootstrap Service on the client port,
//! or, on a secured cluster, on the replication listener with mutual TLS, presenting a
//! certificate the operator issues itself from the cluster CA (`CN=spate-operator`, a super
//! user). The certificate lives only in the operator's memory and is reissued when the CA
//! changes or it nears expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::ResourceExt;

use super::Context;
use crate::builders::security::{self, OPERATOR_CN, REPLICATION_PORT};
use crate::builders::{self, bootstrap_service_name};
use crate::crd::Cluster;
use crate::kafka::{KafkaAdmin, KafkaError, Target};
use crate::pki::{client_tls, fingerprint, Ca, CaKind, Usage};

/// Days the operator's own certificate is valid; it is reissued a day before.
const OPERATOR_CERT_DAYS: i64 = 7;

/// Client TLS configs by cluster: (CA bundle fingerprint, expiry, config).
type Cache = Mutex<HashMap<String, (String, i64, Arc<rustls::ClientConfig>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::default)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn unavailable(c: &Cluster, why: String) -> KafkaError {
    KafkaError::Io {
        addr: format!("{}/{}", builders::namespace(c), c.name_any()),
        source: std::io::Error::other(why),
    }
}

/// Where the operator connects for `c`, with TLS material for a secured cluster.
pub async fn target(ctx: &Context, c: &Cluster) -> Result<Target, KafkaError> {
    if !security::secured(c) {
        let bootstrap = c
            .status
            .as_ref()
            .and_then(|s| s.bootstrap_address.clone())
            .unwrap_or_else(|| builders::bootstrap_address(c));
        return Ok(Target::plaintext(bootstrap));
    }
    let ns = builders::namespace(c);
    let bootstrap = format!("{}.{ns}.svc:{REPLICATION_PORT}", bootstrap_service_name(c));
    let key = format!("{ns}/{}", c.name_any());
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    // The Cluster reconciler creates the CA; reading it here never races it.
    let secret = api
        .get_opt(&security::cluster_ca_secret_name(c))
        .await
        .map_err(|e| unavailable(c, format!("reading the cluster CA: {e}")))?
        .ok_or_else(|| unavailable(c, "the cluster CA does not exist yet".into()))?;
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let ca = Ca::from_data(&c.name_any(), CaKind::Cluster, &data)
        .map_err(|e| unavailable(c, e.to_string()))?;
    let print = fingerprint(&ca.bundle_pem);
    let now = now();
    if let Ok(cached) = cache().lock() {
        if let Some((p, not_after, config)) = cached.get(&key) {
            if *p == print && *not_after - 86_400 > now {
                return Ok(Target {
                    bootstrap,
                    tls: Some(config.clone()),
                });
            }
        }
    }
    let cert = ca
        .issue(OPERATOR_CN, &[], Usage::Client, now, OPERATOR_CERT_DAYS)
        .map_err(|e| unavailable(c, format!("issuing the operator certificate: {e}")))?;
    let config = client_tls::client_config(&ca.bundle_pem, &cert.cert_pem, &cert.key_pem)
        .map_err(|e| unavailable(c, e.to_string()))?;
    if let Ok(mut cached) = cache().lock() {
        cached.insert(key, (print, cert.not_after, config.clone()));
    }
    Ok(Target {
        bootstrap,
        tls: Some(config),
    })
}

/// An admin session to `c`'s brokers.
pub async fn cluster_admin(ctx: &Context, c: &Cluster) -> Result<Arc<dyn KafkaAdmin>, KafkaError> {
    let target = target(ctx, c).await?;
    ctx.kafka.connect(&target).await
}
