//! Keeps a secured Cluster's CAs and broker certificates in their Secrets: creates the CAs,
//! renews them and the broker certificates before they expire, issues certificates for new
//! brokers and new names, and copies user-provided listener certificates in. Returns each
//! broker's certificate revision, which goes into its pod's revision: a change rolls that
//! broker with the existing roll rules.
//!
//! A CA renewal takes two rolls (`pki`): the staged CA enters every trust bundle and the
//! brokers roll; only when every broker runs that revision and is ready is it promoted, and
//! the certificates it then issues roll the brokers again.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::Api;
use kube::runtime::events::EventType;
use kube::ResourceExt;

use super::objects::apply;
use crate::builders::certs::{self, Record, ANNOTATION_RENEW, ANNOTATION_RENEWED_FOR};
use crate::builders::external::{BootstrapAddress, Observed};
use crate::builders::pods;
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

fn ca_secret_name(c: &Cluster, kind: CaKind) -> String {
    match kind {
        CaKind::Cluster => security::cluster_ca_secret_name(c),
        CaKind::Clients => security::clients_ca_secret_name(c),
    }
}

/// Loads (or creates) one CA, staging its successor when due; writes it back when it changed.
pub async fn ensure_ca(c: &Cluster, ctx: &Context, ns: &str, kind: CaKind) -> Result<Ca> {
    let name = ca_secret_name(c, kind);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let now = now();
    let days = i64::from(c.spec.certificates.validity_days);
    let ca_days = days * 5;
    let renewal = i64::from(c.spec.certificates.renewal_days);
    let pki = |e: crate::pki::PkiError| Error::Invalid(format!("{name}: {e}"));
    let stored = api.get_opt(&name).await?.map(|s| byte_data(&s));
    let parsed = stored
        .as_ref()
        .map(|d| (Ca::from_data(&c.name_any(), kind, d), d));
    let (mut ca, mut changed) = match parsed {
        Some((Ok(ca), _)) => (ca, false),
        Some((Err(e), data)) => {
            // A CA we cannot read cannot sign: start a new generation above it, loudly.
            let generation = Ca::replacement_generation(data, now);
            let note = format!("{name} could not be read ({e}); created a new CA");
            ctx.event(c, EventType::Warning, "CertificateAuthorityReplaced", note)
                .await;
            let ca = Ca::generate(&c.name_any(), kind, generation, now, ca_days).map_err(pki)?;
            (ca, true)
        }
        None => (
            Ca::generate(&c.name_any(), kind, 1, now, ca_days).map_err(pki)?,
            true,
        ),
    };
    if !changed && ca.next.is_none() && ca.needs_renewal(now, renewal) {
        ca = ca.staged(now, ca_days).map_err(pki)?;
        let note = format!(
            "Staged generation {} of {name}: trusted now, signing once every broker has rolled",
            ca.generation + 1
        );
        ctx.event(c, EventType::Normal, "CertificateAuthorityStaged", note)
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
    external: &Observed,
    pods: &BTreeMap<i32, Pod>,
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
    // Only ours: another tool's annotation must not make every pass rewrite the Secret.
    let old_annotations: BTreeMap<String, String> = existing
        .as_ref()
        .map(|s| s.annotations().clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k.starts_with("spate.dev/"))
        .collect();

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
        let mut names = certs::broker_names(c, id, &external.endpoints);
        if let Some(BootstrapAddress::LoadBalancer(host, _)) = &external.bootstrap {
            // What outside clients bootstrap from; every broker may answer there.
            names.push(host.clone());
        }
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
    let staged = [&cluster_ca, &clients_ca]
        .into_iter()
        .filter(|ca| ca.next.is_some())
        .collect::<Vec<_>>();
    // Promote only what every running broker already trusts: the staged bundles were in the
    // Secret before this pass, and every broker runs this pass's revision and is ready.
    if !staged.is_empty() && !changed && all_rolled(c, ids, external, pods, &revisions) {
        for ca in staged {
            let promoted = ca.promoted();
            let name = ca_secret_name(c, ca.kind);
            apply(&api, &certs::ca_secret(c, name.clone(), promoted.to_data())).await?;
            let note = format!(
                "Promoted generation {} of {name}: every broker trusts it; certificates are reissued from it",
                promoted.generation
            );
            ctx.event(c, EventType::Normal, "CertificateAuthorityPromoted", note)
                .await;
        }
    }
    Ok(revisions)
}

/// Whether every broker in `ids` has a ready pod carrying the revision it would get now.
fn all_rolled(
    c: &Cluster,
    ids: &[i32],
    external: &Observed,
    pods: &BTreeMap<i32, Pod>,
    revisions: &CertRevisions,
) -> bool {
    ids.iter().all(|id| {
        let want = pods::revision(
            c,
            *id,
            ids,
            &external.endpoints,
            revisions.get(id).map(String::as_str),
        );
        pods.get(id)
            .is_some_and(|p| super::pod_ready(p) && super::pod_revision(p) == Some(want.as_str()))
    })
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
        // PEM blocks must start on their own line.
        let sep = if key.ends_with('\n') { "" } else { "\n" };
        out.insert(listener_pem_key(listener), format!("{key}{sep}{crt}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::test_support::cluster;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};

    fn ready(mut p: Pod, is_ready: bool) -> Pod {
        p.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if is_ready { "True" } else { "False" }.into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        p
    }

    #[test]
    fn a_staged_ca_waits_for_every_broker_to_run_the_new_bundle_and_be_ready() {
        let c = cluster(2);
        let ids = [0, 1];
        let observed = Observed::default();
        let revisions = CertRevisions::from([(0, "new-a".to_string()), (1, "new-b".to_string())]);
        let pod = |id: i32, rev: &str, is_ready: bool| {
            ready(
                pods::build(&c, id, &ids, &observed.endpoints, Some(rev)),
                is_ready,
            )
        };
        let rolled = BTreeMap::from([(0, pod(0, "new-a", true)), (1, pod(1, "new-b", true))]);
        assert!(all_rolled(&c, &ids, &observed, &rolled, &revisions));
        let one_old = BTreeMap::from([(0, pod(0, "new-a", true)), (1, pod(1, "old-b", true))]);
        assert!(
            !all_rolled(&c, &ids, &observed, &one_old, &revisions),
            "broker 1 not rolled"
        );
        let not_ready = BTreeMap::from([(0, pod(0, "new-a", true)), (1, pod(1, "new-b", false))]);
        assert!(
            !all_rolled(&c, &ids, &observed, &not_ready, &revisions),
            "broker 1 not ready"
        );
        let missing = BTreeMap::from([(0, pod(0, "new-a", true))]);
        assert!(
            !all_rolled(&c, &ids, &observed, &missing, &revisions),
            "broker 1 has no pod"
        );
    }
}
