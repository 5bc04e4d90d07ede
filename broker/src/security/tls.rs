//! TLS on `SSL` listeners: Kafka's PEM settings, a rustls `ServerConfig` built from them, and
//! its reload when the files change.
//!
//! Settings are Kafka's (`ssl.keystore.location` holding the key and the chain, or inline
//! `ssl.keystore.key` + `ssl.keystore.certificate.chain`; `ssl.truststore.location` or inline
//! `ssl.truststore.certificates`; `ssl.client.auth`; `ssl.principal.mapping.rules`;
//! `ssl.enabled.protocols`), each overridable per listener as
//! `listener.name.<lowercase listener>.ssl.*`.
//!
//! Reload: Kubernetes updates a mounted Secret by swapping a `..data` symlink, which file
//! watches miss, so the files are read every `ssl.reload.interval.ms` and hashed; a change
//! builds a new `ServerConfig` for new connections (open ones keep their session). A file that
//! no longer parses keeps the previous config and logs an error. Key material is never logged:
//! errors name the setting or path and what is wrong, never a value.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::overrides::listener_setting;
use super::ssl_mapping::SslPrincipalMapper;
use super::{dn, KafkaPrincipal};
use crate::config::{invalid, ConfigError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// A PEM input: a file (re-read on reload) or an inline value.
#[derive(Clone)]
pub enum Pem {
    File(PathBuf),
    Inline { setting: String, text: String },
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pem::File(p) => write!(f, "File({})", p.display()),
            Pem::Inline { setting, .. } => write!(f, "Inline({setting}: [hidden])"),
        }
    }
}

impl Pem {
    fn read(&self) -> Result<Vec<u8>, TlsError> {
        match self {
            Pem::File(path) => std::fs::read(path).map_err(|e| TlsError::Read {
                path: path.clone(),
                reason: e.to_string(),
            }),
            Pem::Inline { text, .. } => Ok(normalize_inline(text).into_bytes()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Pem::File(p) => p.display().to_string(),
            Pem::Inline { setting, .. } => setting.clone(),
        }
    }
}

/// One TLS listener's resolved settings.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub listener: String,
    /// The private key: the keystore file (which also holds the chain) or inline.
    pub key: Pem,
    pub chain: Pem,
    pub truststore: Option<Pem>,
    pub client_auth: ClientAuth,
    pub mapper: SslPrincipalMapper,
    pub protocols: Vec<&'static rustls::SupportedProtocolVersion>,
}

impl TlsSettings {
    /// Resolves `listener`'s settings: `listener.name.<listener lowercase>.<key>` over `<key>`.
    pub fn resolve(raw: &BTreeMap<String, String>, listener: &str) -> Result<Self, ConfigError> {
        let get = |key: &str| listener_setting(raw, listener, key);
        let pem_only = |key: &str| -> Result<(), ConfigError> {
            let (k, v) = get(key);
            if v.eq_ignore_ascii_case("PEM") {
                Ok(())
            } else {
                Err(invalid(&k, &v, "only PEM stores are supported"))
            }
        };
        pem_only("ssl.keystore.type")?;
        pem_only("ssl.truststore.type")?;
        let (password_key, password) = get("ssl.key.password");
        if !password.is_empty() {
            return Err(invalid(
                &password_key,
                &password,
                "encrypted private keys are not supported; give an unencrypted PKCS#8 key",
            ));
        }
        let (location_key, location) = get("ssl.keystore.location");
        let (key_key, key) = get("ssl.keystore.key");
        let (chain_key, chain) = get("ssl.keystore.certificate.chain");
        let (key, chain) = match (location.is_empty(), key.is_empty(), chain.is_empty()) {
            (false, true, true) => (
                Pem::File(location.clone().into()),
                Pem::File(location.into()),
            ),
            (true, false, false) => (
                Pem::Inline {
                    setting: key_key,
                    text: key,
                },
                Pem::Inline {
                    setting: chain_key,
                    text: chain,
                },
            ),
            (true, true, true) => {
                return Err(invalid(
                    &location_key,
                    "",
                    &format!(
                        "listener {listener} is SSL: set ssl.keystore.location, or \
                         ssl.keystore.key and ssl.keystore.certificate.chain"
                    ),
                ))
            }
            (false, _, _) => {
                return Err(invalid(
                    &location_key,
                    &location,
                    "give either ssl.keystore.location or the inline ssl.keystore.key and \
                     ssl.keystore.certificate.chain, not both",
                ))
            }
            (true, _, _) => {
                return Err(invalid(
                    &key_key,
                    &key,
                    "ssl.keystore.key and ssl.keystore.certificate.chain go together",
                ))
            }
        };
        let (trust_location_key, trust_location) = get("ssl.truststore.location");
        let (trust_inline_key, trust_inline) = get("ssl.truststore.certificates");
        let truststore = match (trust_location.is_empty(), trust_inline.is_empty()) {
            (true, true) => None,
            (false, true) => Some(Pem::File(trust_location.into())),
            (true, false) => Some(Pem::Inline {
                setting: trust_inline_key,
                text: trust_inline,
            }),
            (false, false) => {
                return Err(invalid(
                    &trust_location_key,
                    &trust_location,
                    "give either ssl.truststore.location or ssl.truststore.certificates",
                ))
            }
        };
        let (auth_key, auth) = get("ssl.client.auth");
        let client_auth = match auth.to_ascii_lowercase().as_str() {
            "none" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            _ => {
                return Err(invalid(
                    &auth_key,
                    &auth,
                    "expected none, requested or required",
                ))
            }
        };
        if client_auth != ClientAuth::None && truststore.is_none() {
            return Err(invalid(
                &auth_key,
                &auth,
                "client certificates need ssl.truststore.location or ssl.truststore.certificates",
            ));
        }
        let (rules_key, rules) = get("ssl.principal.mapping.rules");
        let mapper = SslPrincipalMapper::parse(&rules)
            .map_err(|e| invalid(&rules_key, &rules, &e.to_string()))?;
        let (protocols_key, protocols_raw) = get("ssl.enabled.protocols");
        let mut protocols = Vec::new();
        for p in protocols_raw
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            protocols.push(match p {
                "TLSv1.2" => &rustls::version::TLS12,
                "TLSv1.3" => &rustls::version::TLS13,
                _ => {
                    return Err(invalid(
                        &protocols_key,
                        &protocols_raw,
                        &format!("{p} is not supported; expected TLSv1.2 and/or TLSv1.3"),
                    ))
                }
            });
        }
        if protocols.is_empty() {
            return Err(invalid(
                &protocols_key,
                &protocols_raw,
                "no protocol enabled",
            ));
        }
        Ok(Self {
            listener: listener.to_string(),
            key,
            chain,
            truststore,
            client_auth,
            mapper,
            protocols,
        })
    }

    /// Reads every input, as bytes to hash and build from.
    fn read(&self) -> Result<Material, TlsError> {
        Ok(Material {
            key: self.key.read()?,
            chain: self.chain.read()?,
            trust: self.truststore.as_ref().map(Pem::read).transpose()?,
        })
    }

    fn private_key(&self, m: &Material) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_slice(&m.key).map_err(|_| {
            let encrypted = String::from_utf8_lossy(&m.key).contains("ENCRYPTED");
            TlsError::Pem {
                what: self.key.describe(),
                reason: if encrypted {
                    "the private key is encrypted, which is not supported".into()
                } else {
                    "no private key (PKCS#8, PKCS#1 or SEC1 PEM) found".into()
                },
            }
        })
    }

    fn build(&self, m: &Material) -> Result<ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = self.private_key(m)?;
        let chain = certificates(&m.chain, &self.chain)?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.protocols)
            .map_err(TlsError::Rustls)?;
        let verifier = match (self.client_auth, &self.truststore, &m.trust) {
            (ClientAuth::None, _, _) | (_, None, _) | (_, _, None) => {
                WebPkiClientVerifier::no_client_auth()
            }
            (auth, Some(source), Some(trust)) => {
                let store = source.describe();
                let roots = roots(trust, source)?;
                let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let b = if auth == ClientAuth::Requested {
                    b.allow_unauthenticated()
                } else {
                    b
                };
                b.build().map_err(|e| TlsError::Pem {
                    what: store,
                    reason: e.to_string(),
                })?
            }
        };
        builder
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(TlsError::Rustls)
    }

    /// The PEM inputs as read now, for the
    /// raft gRPC's mutual TLS (which builds its own configs).
    pub fn pem_material(&self) -> Result<Material, TlsError> {
        self.read()
    }

    /// A client config for this broker's own connections to other brokers' listener: it
    /// trusts the listener's truststore and presents the listener's certificate (for mutual
    /// TLS). Read once, when the broker starts.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let m = self.read()?;
        let (Some(source), Some(trust)) = (&self.truststore, &m.trust) else {
            return Err(TlsError::Pem {
                what: format!("listener {}", self.listener),
                reason: "brokers connecting to each other over TLS need ssl.truststore.location \
                         or ssl.truststore.certificates"
                    .into(),
            });
        };
        let roots = roots(trust, source)?;
        let key = self.private_key(&m)?;
        let chain = certificates(&m.chain, &self.chain)?;
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&self.protocols)
        .map_err(TlsError::Rustls)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(TlsError::Rustls)
    }

    /// The principal of a finished handshake: the client certificate's subject DN, mapped by
    /// `ssl.principal.mapping.rules`; `User:ANONYMOUS` without a certificate.
    pub fn principal(&self, conn: &ServerConnection) -> Result<KafkaPrincipal, TlsError> {
        let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) else {
            return Ok(KafkaPrincipal::anonymous());
        };
        principal_of(&self.mapper, cert)
    }
}

/// `User:` + the mapped subject DN of a DER certificate.
pub fn principal_of(mapper: &SslPrincipalMapper, cert: &[u8]) -> Result<KafkaPrincipal, TlsError> {
    let dn = dn::subject_dn(cert).ok_or(TlsError::Subject)?;
    let name = mapper
        .name(&dn)
        .map_err(|e| TlsError::Principal(e.to_string()))?;
    Ok(KafkaPrincipal::user(name))
}

/// The CA certificates of a truststore, as rustls' root store.
fn roots(trust: &[u8], source: &Pem) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(trust, source)? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            what: source.describe(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

fn certificates(pem: &[u8], source: &Pem) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: source.describe(),
            reason: format!("bad certificate PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: source.describe(),
            reason: "no certificate found".into(),
        });
    }
    Ok(certs)
}

/// Inline PEM values are often given on one line (properties files, environment variables):
/// rebuild each `-----BEGIN X-----...-----END X-----` block with 64-character lines.
fn normalize_inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(body_end) = body_start.find(&end_marker) else {
            break;
        };
        let body: String = body_start[..body_end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        out.push_str(&format!("-----BEGIN {label}-----\n"));
        for line in body.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str(&end_marker);
        out.push('\n');
        rest = &body_start[body_end + end_marker.len()..];
    }
    out
}

/// Why TLS material could not be loaded. Names files and settings, never their contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {reason}", path = .path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{what}: {reason}")]
    Pem { what: String, reason: String },
    #[error("{0}")]
    Rustls(rustls::Error),
    #[error("the client certificate's subject could not be read")]
    Subject,
    #[error("client principal: {0}")]
    Principal(String),
}

/// A listener's PEM inputs as read: private key, certificate chain, truststore.
pub struct Material {
    pub key: Vec<u8>,
    pub chain: Vec<u8>,
    pub trust: Option<Vec<u8>>,
}

impl Material {
    fn digest(&self) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [Some(&self.key), Some(&self.chain), self.trust.as_ref()] {
            let part = part.map(Vec::as_slice).unwrap_or_default();
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}

/// A listener's current TLS config, swapped when its files change.
pub struct TlsListener {
    pub settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
    digest: Mutex<[u8; 32]>,
}

impl TlsListener {
    /// Loads the settings' files; at start a failure is fatal.
    pub fn load(settings: TlsSettings) -> Result<Self, TlsError> {
        let material = settings.read()?;
        let config = settings.build(&material)?;
        Ok(Self {
            current: RwLock::new(Arc::new(config)),
            digest: Mutex::new(material.digest()),
            settings,
        })
    }

    /// An acceptor with the config current now; a handshake keeps it even if it is replaced.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }

    /// Re-reads the files: `Ok(true)` when they changed and the new config is in place. On an
    /// error the previous config stays.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let material = self.settings.read()?;
        let digest = material.digest();
        if *self.digest.lock() == digest {
            return Ok(false);
        }
        let config = self.settings.build(&material);
        // Remember what was tried either way: a broken file is reported once, not every poll.
        *self.digest.lock() = digest;
        *self.current.write() = Arc::new(config?);
        Ok(true)
    }
}

/// Polls every listener's files each `interval` until shutdown.
pub async fn watch(
    listeners: Vec<Arc<TlsListener>>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    if listeners.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        for l in &listeners {
            let l2 = l.clone();
            let reloaded = tokio::task::spawn_blocking(move || l2.reload()).await;
            let name = &l.settings.listener;
            match reloaded {
                Ok(Ok(true)) => tracing::info!(listener = %name, "TLS certificates reloaded"),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::error!(
                    listener = %name,
                    "TLS certificates not reloaded, keeping the previous ones: {e}"
                ),
                Err(e) => tracing::error!(listener = %name, "TLS reload task failed: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        crate::config::DEFAULTS
            .iter()
            .copied()
            .chain(pairs.iter().copied())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn listener_overrides_win_over_broker_wide_settings() {
        let s = TlsSettings::resolve(
            &raw(&[
                ("ssl.keystore.location", "/broker.pem"),
                (
                    "listener.name.external.ssl.keystore.location",
                    "/external.pem",
                ),
                ("ssl.truststore.location", "/ca.pem"),
                ("listener.name.external.ssl.client.auth", "required"),
            ]),
            "EXTERNAL",
        )
        .unwrap();
        assert!(matches!(&s.key, Pem::File(p) if p.to_str() == Some("/external.pem")));
        assert_eq!(s.client_auth, ClientAuth::Required);
        let s = TlsSettings::resolve(
            &raw(&[("ssl.keystore.location", "/broker.pem")]),
            "INTERNAL",
        )
        .unwrap();
        assert!(matches!(&s.key, Pem::File(p) if p.to_str() == Some("/broker.pem")));
        assert_eq!(s.client_auth, ClientAuth::None);
    }

    #[test]
    fn mistakes_are_explained_without_printing_secrets() {
        let secret = "-----BEGIN PRIVATE KEY-----SECRETBYTES-----END PRIVATE KEY-----";
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![], "set ssl.keystore.location"),
            (
                vec![
                    ("ssl.keystore.location", "/k"),
                    ("ssl.keystore.type", "JKS"),
                ],
                "only PEM",
            ),
            (
                vec![
                    ("ssl.keystore.location", "/k"),
                    ("ssl.keystore.key", secret),
                ],
                "not both",
            ),
            (vec![("ssl.keystore.key", secret)], "go together"),
            (
                vec![
                    ("ssl.keystore.location", "/k"),
                    ("ssl.client.auth", "always"),
                ],
                "none, requested or required",
            ),
            (
                vec![
                    ("ssl.keystore.location", "/k"),
                    ("ssl.client.auth", "required"),
                ],
                "need ssl.truststore",
            ),
            (
                vec![
                    ("ssl.keystore.location", "/k"),
                    ("ssl.key.password", "hunter2"),
                ],
                "encrypted private keys",
            ),
            (
                vec![
                    ("ssl.keystore.location", "/k"),
                    ("ssl.principal.mapping.rules", "RULE:x"),
                ],
                "invalid rule",
            ),
            (
                vec![
                    ("ssl.keystore.location", "/k"),
                    ("ssl.enabled.protocols", "SSLv3"),
                ],
                "SSLv3 is not supported",
            ),
        ];
        for (pairs, why) in cases {
            let err = TlsSettings::resolve(&raw(&pairs), "SSL")
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{pairs:?}: {err}");
            assert!(
                !err.contains("SECRETBYTES") && !err.contains("hunter2"),
                "{err}"
            );
        }
    }

    #[test]
    fn one_line_inline_pem_is_reflowed() {
        let one_line = "-----BEGIN CERTIFICATE----- QUJD REVG -----END CERTIFICATE-----";
        assert_eq!(
            normalize_inline(one_line),
            "-----BEGIN CERTIFICATE-----\nQUJDREVG\n-----END CERTIFICATE-----\n"
        );
    }

    #[test]
    fn the_principal_of_a_client_certificate_is_its_mapped_dn() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationalUnitName, "ServiceUsers");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Duke");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let default = SslPrincipalMapper::parse("DEFAULT").unwrap();
        assert_eq!(
            principal_of(&default, cert.der()).unwrap().to_string(),
            "User:CN=Duke,OU=ServiceUsers"
        );
        let rules = SslPrincipalMapper::parse("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L").unwrap();
        assert_eq!(
            principal_of(&rules, cert.der()).unwrap().to_string(),
            "User:duke"
        );
        let strict = SslPrincipalMapper::parse("RULE:^CN=(.*),O=Other$/$1/").unwrap();
        assert!(principal_of(&strict, cert.der()).is_err());
    }
}
