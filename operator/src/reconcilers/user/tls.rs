//! A TLS user's Secret: a client certificate for `CN=<user>` from the cluster's clients CA
//! (`user.crt`, `user.key`), the CA bundle that verifies the brokers (`ca.crt`), and when it
//! expires. Kept until it nears expiry or the clients CA changes, then reissued.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::ResourceExt;

use crate::builders::security;
use crate::crd::{Cluster, User};
use crate::pki::{self, Ca, CaKind, Usage};
use crate::reconcilers::Context;

/// Secret keys.
pub const CERT: &str = "user.crt";
/// The private key (PKCS#8 PEM).
pub const KEY: &str = "user.key";
/// CA certificates that verify the brokers.
pub const CA: &str = "ca.crt";
/// Expiry of `user.crt` (Unix seconds).
pub const NOT_AFTER: &str = "not-after";
/// Generation of the clients CA that signed it.
pub const CA_GENERATION: &str = "clients-ca-generation";

/// Why the material cannot be made now: `(reason, message)`.
pub type Unavailable = (&'static str, String);

fn text(data: &BTreeMap<String, Vec<u8>>, key: &str) -> Option<String> {
    data.get(key)
        .and_then(|v| String::from_utf8(v.clone()).ok())
}

fn data_of(s: Option<Secret>) -> BTreeMap<String, Vec<u8>> {
    s.and_then(|s| s.data)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

/// Whether the stored certificate can stay: same CA generation, not yet due for renewal.
pub fn keep(
    existing: &BTreeMap<String, Vec<u8>>,
    generation: u32,
    now: i64,
    renewal_days: i64,
) -> bool {
    let number = |k: &str| text(existing, k).and_then(|v| v.trim().parse::<i64>().ok());
    existing.contains_key(CERT)
        && existing.contains_key(KEY)
        && number(CA_GENERATION) == Some(i64::from(generation))
        && number(NOT_AFTER).is_some_and(|t| t - renewal_days * 86_400 > now)
}

/// The Secret data for `user`; `existing` is the user's Secret as stored.
pub async fn material(
    ctx: &Context,
    cluster: &Cluster,
    user: &User,
    existing: Option<&Secret>,
    now: i64,
) -> Result<BTreeMap<String, String>, Unavailable> {
    let ns = cluster.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let read = |name: String| {
        let api = api.clone();
        async move {
            api.get_opt(&name)
                .await
                .map_err(|e| ("ClusterUnreachable", format!("reading Secret {name}: {e}")))
        }
    };
    let not_ready = || {
        (
            "CertificateAuthorityNotReady",
            format!(
                "Cluster {} has no clients CA yet (it is created once a listener has TLS or authentication)",
                cluster.name_any()
            ),
        )
    };
    let clients = read(security::clients_ca_secret_name(cluster))
        .await?
        .ok_or_else(not_ready)?;
    let clients = Ca::from_data(
        &cluster.name_any(),
        CaKind::Clients,
        &data_of(Some(clients)),
    )
    .map_err(|e| ("CertificateAuthorityNotReady", e.to_string()))?;
    let brokers_ca = read(security::cluster_ca_cert_secret_name(cluster))
        .await?
        .and_then(|s| text(&data_of(Some(s)), "ca.crt"))
        .ok_or_else(not_ready)?;
    let old = data_of(existing.cloned());
    let renewal = i64::from(cluster.spec.certificates.renewal_days);
    let mut data = BTreeMap::from([(CA.to_string(), brokers_ca)]);
    if keep(&old, clients.generation, now, renewal) {
        for k in [CERT, KEY, NOT_AFTER, CA_GENERATION] {
            if let Some(v) = text(&old, k) {
                data.insert(k.to_string(), v);
            }
        }
        return Ok(data);
    }
    let days = i64::from(cluster.spec.certificates.validity_days);
    let issued = clients
        .issue(&user.username(), &[], Usage::Client, now, days)
        .map_err(|e: pki::PkiError| ("CertificateNotIssued", e.to_string()))?;
    data.insert(CERT.to_string(), issued.cert_pem);
    data.insert(KEY.to_string(), issued.key_pem);
    data.insert(NOT_AFTER.to_string(), issued.not_after.to_string());
    data.insert(CA_GENERATION.to_string(), clients.generation.to_string());
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(generation: u32, not_after: i64) -> BTreeMap<String, Vec<u8>> {
        [
            (CERT, "c".to_string()),
            (KEY, "k".to_string()),
            (NOT_AFTER, not_after.to_string()),
            (CA_GENERATION, generation.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_bytes()))
        .collect()
    }

    #[test]
    fn a_certificate_is_kept_until_renewal_or_a_new_ca() {
        let day = 86_400;
        assert!(keep(&stored(1, 100 * day), 1, 0, 30));
        assert!(
            !keep(&stored(1, 100 * day), 1, 71 * day, 30),
            "due for renewal"
        );
        assert!(!keep(&stored(1, 100 * day), 2, 0, 30), "new clients CA");
        assert!(!keep(&BTreeMap::new(), 1, 0, 30), "nothing stored");
    }
}
