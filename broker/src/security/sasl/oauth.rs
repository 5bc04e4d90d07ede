//! OAUTHBEARER settings (Kafka's `sasl.oauthbearer.*` names, per listener too) and the JWKS
//! tokens are validated against (`jwks.rs`: a `file:` URL, a mounted Secret or ConfigMap in
//! Kubernetes, or an `https:` endpoint).
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use spate_auth::oauthbearer::{validate, ValidToken, ValidatorConfig};

use super::jaas_option;
use super::jwks::{self, Jwks, Source};
use crate::config::{invalid, ConfigError};
use crate::security::overrides::listener_setting;

pub struct OAuthSettings {
    jwks: Jwks,
    validator: ValidatorConfig,
}

impl std::fmt::Debug for OAuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthSettings")
            .field("jwks", &self.jwks.source().to_string())
            .field("validator", &self.validator)
            .finish()
    }
}

impl OAuthSettings {
    pub fn resolve(raw: &BTreeMap<String, String>, listener: &str) -> Result<Self, ConfigError> {
        let get = |k: &str| listener_setting(raw, listener, k);
        let (key, url) = get("sasl.oauthbearer.jwks.endpoint.url");
        let source = if let Some(p) = url
            .strip_prefix("file://")
            .or_else(|| url.strip_prefix("file:"))
            .filter(|p| !p.is_empty())
        {
            Source::File(PathBuf::from(p))
        } else if url.starts_with("https://") || url.starts_with("http://") {
            let uri: hyper::Uri = url
                .parse()
                .map_err(|e| invalid(&key, &url, &format!("not a URL: {e}")))?;
            // As Kafka: TLS options of the listener's OAUTHBEARER JAAS login.
            let mechanism_jaas = format!(
                "listener.name.{}.oauthbearer.sasl.jaas.config",
                listener.to_ascii_lowercase()
            );
            let jaas = match raw.get(&mechanism_jaas) {
                Some(j) => j.clone(),
                None => get("sasl.jaas.config").1,
            };
            let truststore = match jaas_option(&jaas, "ssl.truststore.location") {
                Some(path) => Some(std::fs::read(&path).map_err(|e| {
                    invalid(
                        &key,
                        &url,
                        &format!("reading the JWKS truststore {path}: {e}"),
                    )
                })?),
                None => None,
            };
            let tls =
                jwks::client_tls(truststore.as_deref()).map_err(|e| invalid(&key, &url, &e))?;
            Source::Http { url: uri, tls }
        } else if url.is_empty() {
            return Err(invalid(
                &key,
                &url,
                &format!(
                    "listener {listener} enables OAUTHBEARER: set the JWKS to validate \
                     tokens with (a file: or https: URL)"
                ),
            ));
        } else {
            return Err(invalid(&key, &url, "expected a file:, https: or http: URL"));
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
        let initial = match &source {
            Source::File(_) => {
                jwks::fetch_blocking(&source).map_err(|e| invalid(&key, &url, &e))?
            }
            // An identity provider that is down must not keep the broker from starting: tokens
            // fail until the refresher reaches it.
            Source::Http { .. } => jwks::fetch_blocking(&source).unwrap_or_else(|e| {
                tracing::error!(
                    "OAUTHBEARER JWKS not fetched yet, retrying in the background: {e}"
                );
                JwkSet { keys: Vec::new() }
            }),
        };
        let sub = get("sasl.oauthbearer.sub.claim.name").1;
        let refresh =
            Duration::from_millis(number("sasl.oauthbearer.jwks.endpoint.refresh.ms")?.max(1000));
        Ok(Self {
            jwks: Jwks::new(source, refresh, initial),
            validator: ValidatorConfig {
                expected_audience: list("sasl.oauthbearer.expected.audience"),
                expected_issuer: Some(get("sasl.oauthbearer.expected.issuer").1)
                    .filter(|s| !s.is_empty()),
                sub_claim: if sub.is_empty() { "sub".into() } else { sub },
                clock_skew_seconds: number("sasl.oauthbearer.clock.skew.seconds")?,
            },
        })
    }

    pub fn validate(&self, token: &str) -> Result<ValidToken, String> {
        match validate(token, &self.jwks.keys(false), &self.validator) {
            Err(e) if e.contains("no key with id") => {
                validate(token, &self.jwks.keys(true), &self.validator)
            }
            other => other,
        }
    }
}
