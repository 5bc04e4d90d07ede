//! Keeps a secured Cluster's CAs and broker certificates in their Secrets: creates the CAs,
//! renews them and the broker certificates before they expire, issues certificates for new
//! brokers and new names, and copies user-provided listener certificates in. Returns each
//! broker's certificate revision, which goes into its pod's revision: a change rolls that
//! broker with the existing roll rules.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::events::EventType;
use kube::ResourceExt;

use super::objects::apply;
use crate::builders::certs::{self, Record, ANNOTATION_RENEW, ANNOTATION_RENEWED_FOR};
use crate::builders::external::ExternalEndpoints;
use crate::builders::security::{
    self, broker_pem_key, listener_pem_key, BROKER_CN, CLIENTS_CA_KEY, CLUSTER_CA_KEY,
};
use crate::crd::Cluster;
use crate::pki::{Ca, CaKind, Usage};
use crate::reconcilers::Context;
use crate::{Error, Result};

/// Per-broker certificate revisions (empty when the cluster is not secured).
pub(super) type CertRevisions = BTreeMap<i32, String>;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn text_data(s: &Secret) -> BTreeMap<String, String> {
    s.data
        .iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?)))
        .collect()
}

fn byte_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// Loads (or creates) one CA, renewing it when due; writes it back when it changed.
pub async fn ensure_ca(c: &Cluster, ctx: &Context, ns: &str, kind: CaKind) -> Result<Ca> {
    let name = match kind {
        CaKind::Cluster => security::cluster_ca_secret_name(c),
        CaKind::Clients => security::clients_ca_secret_name(c),
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let now = now();
    let days = i64::from(c.spec.certificates.validity_days);
    let ca_days = days * 5;
    let renewal = i64::from(c.spec.certificates.renewal_days);
    let pki = |e: crate::pki::PkiError| Error::Invalid(format!("{name}: {e}"));
    let stored = api
        .get_opt(&name)
        .await?
        .map(|s| Ca::from_data(&c.name_any(), kind, &byte_data(&s)));
    let (mut ca, mut changed) = match stored {
        Some(Ok(ca)) => (ca, false),
        Some(Err(e)) => {
            // A CA we cannot read cannot sign: start a new generation, loudly.
            let note = format!("{name} could not be read ({e}); created a new CA");
            ctx.event(c, EventType::Warning, "CertificateAuthorityReplaced", note)
                .await;
            (
                Ca::generate(&c.name_any(), kind, 1, now, ca_days).map_err(pki)?,
                true,
            )
        }
        None => (
            Ca::generate(&c.name_any(), kind, 1, now, ca_days).map_err(pki)?,
            true,
        ),
    };
    if !changed && ca.needs_renewal(now, renewal) {
        ca = ca.renewed(now, ca_days).map_err(pki)?;
        let note = format!("Renewed {name} (generation {})", ca.generation);
        ctx.event(c, EventType::Normal, "CertificateAuthorityRenewed", note)
            .await;
        changed = true;
    }
    changed |= ca.prune(now);
    if changed {
        apply(&api, &certs::ca_secret(c, name, ca.to_data())).await?;
    }
    Ok(ca)
}

/// Makes the brokers' certificate Secret current for `ids`; returns their revisions.
pub(super) async fn ensure(
    c: &Cluster,
    ctx: &Context,
    ns: &str,
    ids: &[i32],
    external: &ExternalEndpoints,
) -> Result<CertRevisions> {
    if !security::secured(c) {
        return Ok(CertRevisions::new());
    }
    let cluster_ca = ensure_ca(c, ctx, ns, CaKind::Cluster).await?;
    let clients_ca = ensure_ca(c, ctx, ns, CaKind::Clients).await?;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = security::certs_secret_name(c);
    let existing = api.get_opt(&name).await?;
    let old_data = existing.as_ref().map(text_data).unwrap_or_default();
    let old_annotations = existing
        .as_ref()
        .map(|s| s.annotations().clone())
        .unwrap_or_default();

    let mut data = BTreeMap::from([
        (CLUSTER_CA_KEY.to_string(), cluster_ca.bundle_pem.clone()),
        (CLIENTS_CA_KEY.to_string(), clients_ca.bundle_pem.clone()),
    ]);
    data.extend(listener_certificates(c, &api).await?);
    let mut annotations = BTreeMap::new();
    // A new value of the Cluster's renew annotation reissues every broker certificate once.
    let renew_asked = c.annotations().get(ANNOTATION_RENEW).cloned();
    let forced = renew_asked.is_some()
        && renew_asked.as_ref() != old_annotations.get(ANNOTATION_RENEWED_FOR);
    if let Some(v) = &renew_asked {
        annotations.insert(ANNOTATION_RENEWED_FOR.to_string(), v.clone());
    }
    let now = now();
    let days = i64::from(c.spec.certificates.validity_days);
    let renewal = i64::from(c.spec.certificates.renewal_days);
    let mut issued = Vec::new();
    let mut revisions = CertRevisions::new();
    for &id in ids {
        let names = certs::broker_names(c, id, external);
        let hash = certs::names_hash(&names);
        let key = broker_pem_key(id);
        let annotation = certs::record_annotation(id);
        let record = old_annotations
            .get(&annotation)
            .and_then(|r| Record::parse(r));
        let reason = if forced {
            Some("renewal asked")
        } else {
            certs::reissue_reason(
                record.as_ref(),
                old_data.contains_key(&key),
                cluster_ca.generation,
                &hash,
                now,
                renewal,
            )
        };
        let record = match (reason, record) {
            (None, Some(r)) => {
                data.insert(key.clone(), old_data[&key].clone());
                r
            }
            (reason, _) => {
                let leaf = cluster_ca
                    .issue(BROKER_CN, &names, Usage::Broker, now, days)
                    .map_err(|e| Error::Invalid(format!("broker {id} certificate: {e}")))?;
                // Key, certificate and its CA: the keystore PEM the broker reads.
                let pem = format!("{}{}{}", leaf.key_pem, leaf.cert_pem, cluster_ca.cert_pem);
                data.insert(key.clone(), pem);
                issued.push(format!("{id} ({})", reason.unwrap_or("new broker")));
                Record {
                    ca_generation: cluster_ca.generation,
                    not_after: leaf.not_after,
                    names: hash,
                }
            }
        };
        let rendered = record.render();
        revisions.insert(id, certs::broker_revision(&data, &rendered));
        annotations.insert(annotation, rendered);
    }
    // Only `ids` are written: a removed broker's key goes with it.
    let changed = data != old_data || annotations != old_annotations;
    if changed {
        apply(&api, &certs::secret(c, data.clone(), annotations)).await?;
    }
    // What clients mount to trust the brokers: the CA certificates, no key.
    let public = certs::ca_secret(
        c,
        security::cluster_ca_cert_secret_name(c),
        BTreeMap::from([("ca.crt".to_string(), cluster_ca.bundle_pem.clone())]),
    );
    if api
        .get_opt(&security::cluster_ca_cert_secret_name(c))
        .await?
        .and_then(|s| s.data)
        != public.data
    {
        apply(&api, &public).await?;
    }
    if !issued.is_empty() {
        let note = format!("Issued certificates for brokers {}", issued.join(", "));
        ctx.event(c, EventType::Normal, "CertificatesIssued", note)
            .await;
    }
    Ok(revisions)
}

/// The user-provided listener certificates (`tls.certificateSecret`), as keystore PEMs.
async fn listener_certificates(c: &Cluster, api: &Api<Secret>) -> Result<BTreeMap<String, String>> {
    let l = &c.spec.listeners;
    let wanted = [
        (
            crate::builders::configmap::internal_listener_name(c),
            l.internal.tls.as_ref(),
        ),
        (
            crate::builders::external::EXTERNAL_NAME,
            l.external.as_ref().and_then(|e| e.tls.as_ref()),
        ),
    ];
    let mut out = BTreeMap::new();
    for (listener, tls) in wanted {
        let Some(secret_name) = tls.and_then(|t| t.certificate_secret.as_ref()) else {
            continue;
        };
        let secret = api.get_opt(secret_name).await?.ok_or_else(|| {
            Error::Invalid(format!(
                "listener {listener}: certificate Secret {secret_name} does not exist"
            ))
        })?;
        let d = text_data(&secret);
        let (Some(crt), Some(key)) = (d.get("tls.crt"), d.get("tls.key")) else {
            return Err(Error::Invalid(format!(
                "listener {listener}: Secret {secret_name} needs tls.crt and tls.key"
            )));
        };
        out.insert(listener_pem_key(listener), format!("{key}{crt}"));
    }
    Ok(out)
}
