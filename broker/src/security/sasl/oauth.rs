//! OAUTHBEARER settings (Kafka's `sasl.oauthbearer.*` names, per listener too) and the JWKS
//! tokens are validated against. The key set is a `file:` URL (a mounted Secret or
//! ConfigMap in Kubernetes), read again every `sasl.oauthbearer.jwks.endpoint.refresh.ms`
//! and, at most once a second, when a token names a key id it does not hold (a rotated key).
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use parking_lot::Mutex;
use spate_auth::oauthbearer::{validate, ValidToken, ValidatorConfig};

use crate::config::{invalid, ConfigError};
use crate::security::overrides::listener_setting;

/// Re-reading the JWKS for an unknown key id happens at most this often.
const UNKNOWN_KID_RELOAD: Duration = Duration::from_secs(1);

pub struct OAuthSettings {
    jwks_path: PathBuf,
    refresh: Duration,
    validator: ValidatorConfig,
    /// (when read, the keys).
    keys: Mutex<(Instant, std::sync::Arc<JwkSet>)>,
}

impl std::fmt::Debug for OAuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthSettings")
            .field("jwks", &self.jwks_path)
            .field("validator", &self.validator)
            .finish()
    }
}

fn read_jwks(path: &PathBuf) -> Result<JwkSet, String> {
    let text = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{} is no JWKS: {e}", path.display()))
}

impl OAuthSettings {
    pub fn resolve(raw: &BTreeMap<String, String>, listener: &str) -> Result<Self, ConfigError> {
        let get = |k: &str| listener_setting(raw, listener, k);
        let (key, url) = get("sasl.oauthbearer.jwks.endpoint.url");
        let jwks_path = match url
            .strip_prefix("file://")
            .or_else(|| url.strip_prefix("file:"))
        {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ if url.is_empty() => {
                return Err(invalid(
                    &key,
                    &url,
                    &format!(
                        "listener {listener} enables OAUTHBEARER: set the JWKS to validate \
                         tokens with (a file: URL)"
                    ),
                ))
            }
            _ => {
                return Err(invalid(
                    &key,
                    &url,
                    "only file: JWKS URLs are supported; mount the key set as a file",
                ))
            }
        };
        let number = |k: &str| -> Result<u64, ConfigError> {
            let (key, v) = get(k);
            v.parse()
                .map_err(|_| invalid(&key, &v, "expected a non-negative integer"))
        };
        let list = |k: &str| -> Vec<String> {
            get(k)
                .1
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let keys = read_jwks(&jwks_path).map_err(|e| invalid(&key, &url, &e))?;
        let sub = get("sasl.oauthbearer.sub.claim.name").1;
        Ok(Self {
            jwks_path,
            refresh: Duration::from_millis(
                number("sasl.oauthbearer.jwks.endpoint.refresh.ms")?.max(1000),
            ),
            validator: ValidatorConfig {
                expected_audience: list("sasl.oauthbearer.expected.audience"),
                expected_issuer: Some(get("sasl.oauthbearer.expected.issuer").1)
                    .filter(|s| !s.is_empty()),
                sub_claim: if sub.is_empty() { "sub".into() } else { sub },
                clock_skew_seconds: number("sasl.oauthbearer.clock.skew.seconds")?,
            },
            keys: Mutex::new((Instant::now(), std::sync::Arc::new(keys))),
        })
    }

    /// The key set, read again when stale (or, with `force`, when last read over a second
    /// ago). A file that no longer reads keeps the previous keys.
    fn keys(&self, force: bool) -> std::sync::Arc<JwkSet> {
        let mut keys = self.keys.lock();
        let age = keys.0.elapsed();
        if age >= self.refresh || (force && age >= UNKNOWN_KID_RELOAD) {
            match read_jwks(&self.jwks_path) {
                Ok(k) => *keys = (Instant::now(), std::sync::Arc::new(k)),
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

    pub fn validate(&self, token: &str) -> Result<ValidToken, String> {
        match validate(token, &self.keys(false), &self.validator) {
            Err(e) if e.contains("no key with id") => {
                validate(token, &self.keys(true), &self.validator)
            }
            other => other,
        }
    }
}
