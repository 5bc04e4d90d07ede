//! Where OAUTHBEARER's key set comes from: a `file:` URL read in place, or an `https:` (or
//! `http:`) URL fetched by a background task, as Kafka's `RefreshingHttpsJwks`: every
//! `sasl.oauthbearer.jwks.endpoint.refresh.ms`, and early (at most once a second) when a
//! token names a key id the set does not hold — that token fails, the next one finds the key.
//!
//! HTTPS trusts the system's CA certificates (`SSL_CERT_FILE` honoured), or, as in Kafka,
//! the `ssl.truststore.location` (PEM) option of the listener's OAUTHBEARER JAAS login.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use jsonwebtoken::jwk::JwkSet;
use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// Early refreshes for an unknown key id happen at most this often.
const UNKNOWN_KID_REFRESH: Duration = Duration::from_secs(1);
/// A fetch that takes longer fails.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest key set accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// Where the keys come from.
pub enum Source {
    /// A file, read again when stale.
    File(PathBuf),
    /// An HTTP(S) endpoint.
    Http {
        url: hyper::Uri,
        tls: Arc<rustls::ClientConfig>,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Http { url, .. } => write!(f, "{url}"),
        }
    }
}

/// The TLS settings of an HTTPS key set: `truststore_pem` (PEM CA certificates) or the
/// system's roots.
pub fn client_tls(truststore_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match truststore_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("truststore: {e}"))?;
                roots.add(cert).map_err(|e| format!("truststore: {e}"))?;
            }
            if roots.is_empty() {
                return Err("truststore holds no certificate".into());
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!("reading the system's CA certificates: {e}");
            }
            let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn parse(bytes: &[u8], from: &Source) -> Result<JwkSet, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("{from} is no JWKS: {e}"))
}

/// Fetches the key set once.
pub async fn fetch(source: &Source) -> Result<JwkSet, String> {
    match source {
        Source::File(p) => {
            let bytes = std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
            parse(&bytes, source)
        }
        Source::Http { url, tls } => {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((**tls).clone())
                .https_or_http()
                .enable_http1()
                .build();
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build::<_, Empty<Bytes>>(connector);
            let request = hyper::Request::get(url.clone())
                .header(hyper::header::ACCEPT, "application/json")
                .body(Empty::new())
                .map_err(|e| format!("{source}: {e}"))?;
            let body = tokio::time::timeout(FETCH_TIMEOUT, async {
                let response = client
                    .request(request)
                    .await
                    .map_err(|e| format!("{source}: {e}"))?;
                if !response.status().is_success() {
                    return Err(format!("{source}: HTTP {}", response.status()));
                }
                Limited::new(response.into_body(), MAX_JWKS_BYTES)
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .map_err(|e| format!("{source}: {e}"))
            })
            .await
            .map_err(|_| format!("{source}: no answer within {FETCH_TIMEOUT:?}"))??;
            parse(&body, source)
        }
    }
}

/// Fetches once from outside any runtime (startup): a thread with its own runtime.
pub fn fetch_blocking(source: &Source) -> Result<JwkSet, String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(fetch(source))
        })
        .join()
        .map_err(|_| "the JWKS fetch panicked".to_string())?
    })
}

/// The current keys, shared with the refresher.
struct Shared {
    /// (when read, the keys)
    keys: Mutex<(Instant, Arc<JwkSet>)>,
    /// Asks the refresher for an early fetch.
    wake: tokio::sync::Notify,
}

/// A key set kept fresh from its source.
pub struct Jwks {
    source: Arc<Source>,
    refresh: Duration,
    shared: Arc<Shared>,
    refresher: std::sync::OnceLock<()>,
}

impl Jwks {
    /// Keys from `source`, starting with `initial`.
    pub fn new(source: Source, refresh: Duration, initial: JwkSet) -> Self {
        Jwks {
            source: Arc::new(source),
            refresh,
            shared: Arc::new(Shared {
                keys: Mutex::new((Instant::now(), Arc::new(initial))),
                wake: tokio::sync::Notify::new(),
            }),
            refresher: std::sync::OnceLock::new(),
        }
    }

    /// Where the keys come from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The keys now; `unknown_kid` asks for an early refresh (a file is re-read at once,
    /// an endpoint in the background).
    pub fn keys(&self, unknown_kid: bool) -> Arc<JwkSet> {
        match &*self.source {
            Source::File(_) => self.file_keys(unknown_kid),
            Source::Http { .. } => {
                self.start_refresher();
                if unknown_kid {
                    self.shared.wake.notify_one();
                }
                self.shared.keys.lock().1.clone()
            }
        }
    }

    fn file_keys(&self, force: bool) -> Arc<JwkSet> {
        let mut keys = self.shared.keys.lock();
        let age = keys.0.elapsed();
        if age >= self.refresh || (force && age >= UNKNOWN_KID_REFRESH) {
            let Source::File(path) = &*self.source else {
                return keys.1.clone();
            };
            let read = std::fs::read(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))
                .and_then(|b| parse(&b, &self.source));
            match read {
                Ok(k) => *keys = (Instant::now(), Arc::new(k)),
                Err(e) => {
                    tracing::error!(
                        "OAUTHBEARER JWKS not reloaded, keeping the previous keys: {e}"
                    );
                    keys.0 = Instant::now();
                }
            }
        }
        keys.1.clone()
    }

    /// Starts the background refresher once, on the runtime of the first caller.
    fn start_refresher(&self) {
        self.refresher.get_or_init(|| {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            runtime.spawn(refresh_loop(
                self.source.clone(),
                self.refresh,
                Arc::downgrade(&self.shared),
            ));
        });
    }
}

/// Fetches every `refresh` and when woken (at most once a second); stops when the key set
/// it feeds is gone (the listener's settings were replaced).
async fn refresh_loop(source: Arc<Source>, refresh: Duration, shared: Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        let fetched_at = Instant::now();
        match fetch(&source).await {
            Ok(keys) => *s.keys.lock() = (Instant::now(), Arc::new(keys)),
            Err(e) => {
                tracing::error!("OAUTHBEARER JWKS not refreshed, keeping the previous keys: {e}")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(refresh) => {}
            _ = s.wake.notified() => {
                let since = fetched_at.elapsed();
                if since < UNKNOWN_KID_REFRESH {
                    tokio::time::sleep(UNKNOWN_KID_REFRESH - since).await;
                }
            }
        }
    }
}
