//! The operator's certificate authorities: a cluster CA (brokers and the operator) and a
//! clients CA (`User` certificates) per Cluster, kept in Secrets, and the certificates they
//! issue. Pure: callers pass the time and store the results.
//!
//! Each CA generation has its own subject (`CN=<cluster>-cluster-ca-v<N>`), so old and new CA
//! certificates can sit side by side in a trust bundle and every verifier finds the right one
//! by name. A renewal has two phases: the next CA is *staged* (trusted in the bundle, signing
//! nothing) until every broker runs with that bundle, then *promoted* (it signs; the old one
//! stays trusted until it expires). Brokers read their inter-broker and quorum trust when they
//! start, so certificates from a new CA must never reach a broker that started without it.

pub mod client_tls;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::OffsetDateTime;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// Why a certificate could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or the key.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A stored CA is incomplete or does not parse.
    #[error("stored CA: {0}")]
    Stored(String),
    /// A time outside what certificates can say.
    #[error("time out of range")]
    Time,
}

/// Which of a cluster's two CAs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaKind {
    /// Signs broker and operator certificates.
    Cluster,
    /// Signs `User` certificates.
    Clients,
}

impl CaKind {
    fn label(self) -> &'static str {
        match self {
            CaKind::Cluster => "cluster-ca",
            CaKind::Clients => "clients-ca",
        }
    }
}

/// Secret keys of a stored CA.
pub mod keys {
    /// The current CA certificate.
    pub const CERT: &str = "ca.crt";
    /// The current CA private key.
    pub const KEY: &str = "ca.key";
    /// Every CA certificate still trusted: the current one and, after a renewal, the previous
    /// one until it expires.
    pub const BUNDLE: &str = "ca-bundle.crt";
    /// The current CA's generation (`v<N>` in its subject).
    pub const GENERATION: &str = "generation";
    /// When the current CA expires (Unix seconds).
    pub const NOT_AFTER: &str = "not-after";
    /// When the previous CA expires (Unix seconds), while it is in the bundle.
    pub const PREVIOUS_NOT_AFTER: &str = "previous-not-after";
    /// The staged next CA's certificate.
    pub const NEXT_CERT: &str = "next.crt";
    /// The staged next CA's private key.
    pub const NEXT_KEY: &str = "next.key";
    /// The staged next CA's generation.
    pub const NEXT_GENERATION: &str = "next-generation";
    /// The staged next CA's expiry (Unix seconds).
    pub const NEXT_NOT_AFTER: &str = "next-not-after";
}

/// A CA generation waiting to be promoted: already trusted, signing nothing yet.
#[derive(Clone, PartialEq, Eq)]
pub struct Staged {
    /// Generation.
    pub generation: u32,
    /// Certificate.
    pub cert_pem: String,
    /// Private key.
    pub key_pem: String,
    /// Expiry (Unix seconds).
    pub not_after: i64,
}

/// A certificate authority as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Ca {
    /// Which CA.
    pub kind: CaKind,
    /// The cluster it belongs to.
    pub cluster: String,
    /// Generation, part of the subject.
    pub generation: u32,
    /// Current certificate.
    pub cert_pem: String,
    /// Current private key.
    pub key_pem: String,
    /// Trusted CA certificates (current first).
    pub bundle_pem: String,
    /// Expiry of the current certificate (Unix seconds).
    pub not_after: i64,
    /// Expiry of the previous certificate still in the bundle.
    pub previous_not_after: Option<i64>,
    /// The next generation, staged for a renewal.
    pub next: Option<Staged>,
}

// Keys never go to logs: Debug shows what identifies the CA, not its key.
impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("kind", &self.kind)
            .field("cluster", &self.cluster)
            .field("generation", &self.generation)
            .field("not_after", &self.not_after)
            .field("next", &self.next.as_ref().map(|n| n.generation))
            .finish_non_exhaustive()
    }
}

/// A key and the certificate issued for it.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// Certificate (PEM).
    pub cert_pem: String,
    /// Private key (PKCS#8 PEM).
    pub key_pem: String,
    /// Expiry (Unix seconds).
    pub not_after: i64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// What an issued certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A broker: TLS server, and client of the other brokers.
    Broker,
    /// A client (the operator, a user).
    Client,
}

fn at(unix: i64) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(unix).map_err(|_| PkiError::Time)
}

/// A serial number unique per process and time.
fn serial() -> SerialNumber {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = vec![0x01];
    bytes.extend_from_slice(&(nanos as u64).to_be_bytes());
    bytes.extend_from_slice(&n.to_be_bytes());
    SerialNumber::from_slice(&bytes)
}

fn ca_params(cluster: &str, kind: CaKind, generation: u32) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("{cluster}-{}-v{generation}", kind.label()),
    );
    dn.push(DnType::OrganizationName, "spate.dev");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

impl Ca {
    /// A new CA valid for `days` from `now`.
    pub fn generate(
        cluster: &str,
        kind: CaKind,
        generation: u32,
        now: i64,
        days: i64,
    ) -> Result<Ca, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = ca_params(cluster, kind, generation);
        params.serial_number = Some(serial());
        params.not_before = at(now - 3600)?;
        let not_after = now + days * DAY;
        params.not_after = at(not_after)?;
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        Ok(Ca {
            kind,
            cluster: cluster.to_string(),
            generation,
            bundle_pem: cert_pem.clone(),
            cert_pem,
            key_pem: key.serialize_pem(),
            not_after,
            previous_not_after: None,
            next: None,
        })
    }

    /// Stages the next generation: trusted in the bundle from now on, signing nothing yet.
    pub fn staged(&self, now: i64, days: i64) -> Result<Ca, PkiError> {
        let next = Ca::generate(&self.cluster, self.kind, self.generation + 1, now, days)?;
        let mut ca = self.clone();
        ca.bundle_pem = format!("{}{}", ca.bundle_pem, next.cert_pem);
        ca.next = Some(Staged {
            generation: next.generation,
            cert_pem: next.cert_pem,
            key_pem: next.key_pem,
            not_after: next.not_after,
        });
        Ok(ca)
    }

    /// Promotes the staged generation: it signs from now on, and this one stays in the
    /// bundle until it expires. Without a staged generation, returns `self` unchanged.
    pub fn promoted(&self) -> Ca {
        let Some(next) = self.next.clone() else {
            return self.clone();
        };
        Ca {
            kind: self.kind,
            cluster: self.cluster.clone(),
            generation: next.generation,
            bundle_pem: format!("{}{}", next.cert_pem, self.cert_pem),
            cert_pem: next.cert_pem,
            key_pem: next.key_pem,
            not_after: next.not_after,
            previous_not_after: Some(self.not_after),
            next: None,
        }
    }

    /// Drops an expired previous CA from the bundle; whether anything changed.
    pub fn prune(&mut self, now: i64) -> bool {
        match self.previous_not_after {
            Some(t) if t <= now => {
                self.bundle_pem = self.cert_pem.clone();
                if let Some(next) = &self.next {
                    self.bundle_pem.push_str(&next.cert_pem);
                }
                self.previous_not_after = None;
                true
            }
            _ => false,
        }
    }

    /// Whether the CA is within `renewal_days` of expiring.
    pub fn needs_renewal(&self, now: i64, renewal_days: i64) -> bool {
        self.not_after - renewal_days * DAY <= now
    }

    /// Issues a certificate with common name `cn` for `names` (DNS names or IP addresses).
    pub fn issue(
        &self,
        cn: &str,
        names: &[String],
        usage: Usage,
        now: i64,
        days: i64,
    ) -> Result<Issued, PkiError> {
        let ca_key = KeyPair::from_pem(&self.key_pem)
            .map_err(|e| PkiError::Stored(format!("{} key: {e}", self.kind.label())))?;
        let issuer = Issuer::new(ca_params(&self.cluster, self.kind, self.generation), ca_key);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.serial_number = Some(serial());
        params.not_before = at(now - 3600)?;
        // Never past the CA: a verifier refuses a chain the moment its CA expires.
        let not_after = (now + days * DAY).min(self.not_after);
        params.not_after = at(not_after)?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match usage {
            Usage::Broker => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after,
        })
    }

    /// The Secret data of this CA.
    pub fn to_data(&self) -> BTreeMap<String, String> {
        let mut d = BTreeMap::from([
            (keys::CERT.to_string(), self.cert_pem.clone()),
            (keys::KEY.to_string(), self.key_pem.clone()),
            (keys::BUNDLE.to_string(), self.bundle_pem.clone()),
            (keys::GENERATION.to_string(), self.generation.to_string()),
            (keys::NOT_AFTER.to_string(), self.not_after.to_string()),
        ]);
        if let Some(t) = self.previous_not_after {
            d.insert(keys::PREVIOUS_NOT_AFTER.to_string(), t.to_string());
        }
        if let Some(n) = &self.next {
            d.insert(keys::NEXT_CERT.to_string(), n.cert_pem.clone());
            d.insert(keys::NEXT_KEY.to_string(), n.key_pem.clone());
            d.insert(keys::NEXT_GENERATION.to_string(), n.generation.to_string());
            d.insert(keys::NEXT_NOT_AFTER.to_string(), n.not_after.to_string());
        }
        d
    }

    /// Reads a CA back from its Secret data.
    pub fn from_data(
        cluster: &str,
        kind: CaKind,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Ca, PkiError> {
        let text = |k: &str| {
            data.get(k)
                .and_then(|v| String::from_utf8(v.clone()).ok())
                .ok_or_else(|| PkiError::Stored(format!("{} has no {k}", kind.label())))
        };
        let number = |k: &str| -> Result<i64, PkiError> {
            text(k)?
                .trim()
                .parse()
                .map_err(|_| PkiError::Stored(format!("{} {k} is not a number", kind.label())))
        };
        Ok(Ca {
            kind,
            cluster: cluster.to_string(),
            generation: u32::try_from(number(keys::GENERATION)?)
                .map_err(|_| PkiError::Stored("generation out of range".into()))?,
            cert_pem: text(keys::CERT)?,
            key_pem: text(keys::KEY)?,
            bundle_pem: text(keys::BUNDLE)?,
            not_after: number(keys::NOT_AFTER)?,
            previous_not_after: data
                .contains_key(keys::PREVIOUS_NOT_AFTER)
                .then(|| number(keys::PREVIOUS_NOT_AFTER))
                .transpose()?,
            next: match data.contains_key(keys::NEXT_CERT) {
                false => None,
                true => Some(Staged {
                    generation: u32::try_from(number(keys::NEXT_GENERATION)?)
                        .map_err(|_| PkiError::Stored("generation out of range".into()))?,
                    cert_pem: text(keys::NEXT_CERT)?,
                    key_pem: text(keys::NEXT_KEY)?,
                    not_after: number(keys::NEXT_NOT_AFTER)?,
                }),
            },
        })
    }

    /// The generation a replacement for an unreadable stored CA gets: above anything the
    /// stored data names, so certificates recorded against the lost CA are reissued.
    pub fn replacement_generation(data: &BTreeMap<String, Vec<u8>>, now: i64) -> u32 {
        let stored = [keys::GENERATION, keys::NEXT_GENERATION]
            .iter()
            .filter_map(|k| {
                std::str::from_utf8(data.get(*k)?)
                    .ok()?
                    .trim()
                    .parse::<u32>()
                    .ok()
            })
            .max();
        match stored {
            Some(g) => g.saturating_add(1),
            // Nothing readable: minutes since the epoch is above any generation counted up.
            None => u32::try_from(now / 60).unwrap_or(u32::MAX),
        }
    }
}

/// A short fingerprint of PEM text, for annotations and change detection.
pub fn fingerprint(pem: &str) -> String {
    crate::builders::stable_hash(pem.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{pem::PemObject, CertificateDer, UnixTime};
    use std::time::Duration;

    const NOW: i64 = 1_800_000_000;

    fn verify(ca_bundle: &str, leaf: &Issued, name: &str, at_unix: i64) -> Result<(), String> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_bundle.as_bytes()) {
            roots
                .add(c.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .map_err(|e| e.to_string())?;
        let cert =
            CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).map_err(|e| e.to_string())?;
        let server =
            rustls::pki_types::ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
        let now = UnixTime::since_unix_epoch(Duration::from_secs(at_unix as u64));
        use rustls::client::danger::ServerCertVerifier;
        verifier
            .verify_server_cert(&cert, &[], &server, &[], now)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn broker_certificate_chains_to_its_ca_for_every_name() {
        let ca = Ca::generate("spate", CaKind::Cluster, 1, NOW, 1825).expect("ca");
        let names = vec![
            "spate-0.spate-brokers.ns.svc".to_string(),
            "10.0.0.7".to_string(),
        ];
        let leaf = ca
            .issue("spate-broker", &names, Usage::Broker, NOW, 365)
            .expect("leaf");
        verify(&ca.bundle_pem, &leaf, "spate-0.spate-brokers.ns.svc", NOW).expect("dns name");
        verify(&ca.bundle_pem, &leaf, "10.0.0.7", NOW).expect("ip");
        assert!(verify(&ca.bundle_pem, &leaf, "other.ns.svc", NOW).is_err());
        assert!(
            verify(&ca.bundle_pem, &leaf, "10.0.0.7", NOW + 366 * DAY).is_err(),
            "expired"
        );
        let other = Ca::generate("spate", CaKind::Clients, 1, NOW, 1825).expect("ca");
        assert!(
            verify(&other.bundle_pem, &leaf, "10.0.0.7", NOW).is_err(),
            "other CA"
        );
    }

    #[test]
    fn a_stored_ca_reads_back_and_still_signs() {
        let ca = Ca::generate("spate", CaKind::Cluster, 3, NOW, 1825).expect("ca");
        let data: BTreeMap<String, Vec<u8>> = ca
            .to_data()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        let back = Ca::from_data("spate", CaKind::Cluster, &data).expect("parses");
        assert_eq!(back, ca);
        let leaf = back
            .issue("spate-broker", &["b.svc".into()], Usage::Broker, NOW, 30)
            .expect("leaf");
        verify(&ca.cert_pem, &leaf, "b.svc", NOW).expect("issued by the stored CA");
        let mut broken = data;
        broken.remove(keys::KEY);
        assert!(Ca::from_data("spate", CaKind::Cluster, &broken).is_err());
    }

    #[test]
    fn renewal_stages_then_promotes_and_keeps_trusting_the_old_ca() {
        let old = Ca::generate("spate", CaKind::Cluster, 1, NOW, 100).expect("ca");
        assert!(!old.needs_renewal(NOW, 30));
        assert!(old.needs_renewal(NOW + 71 * DAY, 30));
        let old_leaf = old
            .issue("spate-broker", &["b.svc".into()], Usage::Broker, NOW, 365)
            .expect("leaf");
        assert_eq!(
            old_leaf.not_after, old.not_after,
            "capped at the CA's expiry"
        );
        let later = NOW + 80 * DAY;
        let staged = old.staged(later, 100).expect("staged");
        assert_eq!(staged.generation, 1, "the old CA still signs while staged");
        let data: BTreeMap<String, Vec<u8>> = staged
            .to_data()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        assert_eq!(
            Ca::from_data("spate", CaKind::Cluster, &data).expect("reads back"),
            staged
        );
        let mut new = staged.promoted();
        assert_eq!(new.generation, 2);
        let new_leaf = new
            .issue("spate-broker", &["b.svc".into()], Usage::Broker, later, 365)
            .expect("leaf");
        // The bundle written while staged already trusts what the promoted CA signs.
        verify(&staged.bundle_pem, &new_leaf, "b.svc", later).expect("staged bundle");
        verify(&new.bundle_pem, &old_leaf, "b.svc", later).expect("old leaf still trusted");
        verify(&new.bundle_pem, &new_leaf, "b.svc", later).expect("new leaf trusted");
        assert!(!new.prune(later));
        assert!(new.prune(NOW + 101 * DAY));
        assert_eq!(new.bundle_pem, new.cert_pem);
        assert!(
            !format!("{new:?}").contains("PRIVATE"),
            "Debug hides the key"
        );
    }

    #[test]
    fn a_replacement_ca_gets_a_generation_above_the_lost_one() {
        let data = BTreeMap::from([(keys::GENERATION.to_string(), b"4".to_vec())]);
        assert_eq!(Ca::replacement_generation(&data, NOW), 5);
        assert!(Ca::replacement_generation(&BTreeMap::new(), NOW) > 1000);
    }
}
