//! SASL on `SASL_PLAINTEXT` and `SASL_SSL` listeners: which mechanisms a listener offers and
//! the per-connection exchange (SaslHandshake, SaslAuthenticate, KIP-368 re-authentication).
//!
//! - this file: a listener's SASL settings (Kafka's names, per-listener overrides).
//! - `authenticator.rs`: one connection's state, from the handshake to an authenticated
//!   principal; everything else a client sends before that closes the connection.
//! - `oauth.rs`: OAUTHBEARER's settings and the JWKS its tokens are checked against.
//!
//! Users are the SCRAM credentials in the metadata quorum; PLAIN checks its password against
//! them too.
pub mod authenticator;
pub mod oauth;

use std::collections::BTreeMap;
use std::time::Duration;

use spate_auth::ScramMechanism;

use super::overrides::listener_setting;
use crate::config::{invalid, ConfigError};

/// A SASL mechanism Spate serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
    OAuthBearer,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "OAUTHBEARER" => Some(Mechanism::OAuthBearer),
            other => ScramMechanism::from_name(other).map(Mechanism::Scram),
        }
    }
}

/// One SASL listener's settings.
#[derive(Debug, Clone)]
pub struct SaslSettings {
    pub listener: String,
    /// `sasl.enabled.mechanisms`, in the order given.
    pub mechanisms: Vec<Mechanism>,
    /// `sasl.server.max.receive.size`: the largest frame read before authentication.
    pub max_receive_size: usize,
    /// `connections.max.reauth.ms`: sessions last this long unless re-authenticated
    /// (KIP-368); `None` for no limit.
    pub max_reauth: Option<Duration>,
    /// `connection.failed.authentication.delay.ms`: a failed login is answered, then the
    /// connection is closed this much later (slows password guessing).
    pub failed_delay: Duration,
    /// OAUTHBEARER's validation, when that mechanism is enabled.
    pub oauth: Option<std::sync::Arc<oauth::OAuthSettings>>,
}

impl SaslSettings {
    pub fn resolve(raw: &BTreeMap<String, String>, listener: &str) -> Result<Self, ConfigError> {
        let get = |key: &str| listener_setting(raw, listener, key);
        let (key, value) = get("sasl.enabled.mechanisms");
        let mut mechanisms = Vec::new();
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let m = Mechanism::from_name(name).ok_or_else(|| {
                invalid(
                    &key,
                    &value,
                    &format!(
                        "mechanism {name} is not supported; use PLAIN, SCRAM-SHA-256, \
                         SCRAM-SHA-512 or OAUTHBEARER"
                    ),
                )
            })?;
            if !mechanisms.contains(&m) {
                mechanisms.push(m);
            }
        }
        if mechanisms.is_empty() {
            return Err(invalid(
                &key,
                &value,
                &format!("listener {listener} uses SASL: name at least one mechanism"),
            ));
        }
        let number = |key: &str| -> Result<u64, ConfigError> {
            let (k, v) = get(key);
            v.parse::<u64>()
                .map_err(|_| invalid(&k, &v, "expected a non-negative integer"))
        };
        let max_receive_size = number("sasl.server.max.receive.size")?;
        if max_receive_size == 0 {
            let (k, v) = get("sasl.server.max.receive.size");
            return Err(invalid(&k, &v, "must be positive"));
        }
        let reauth = number("connections.max.reauth.ms")?;
        let oauth = if mechanisms.contains(&Mechanism::OAuthBearer) {
            Some(std::sync::Arc::new(oauth::OAuthSettings::resolve(
                raw, listener,
            )?))
        } else {
            None
        };
        Ok(Self {
            listener: listener.to_string(),
            mechanisms,
            max_receive_size: max_receive_size as usize,
            max_reauth: (reauth > 0).then(|| Duration::from_millis(reauth)),
            failed_delay: Duration::from_millis(number(
                "connection.failed.authentication.delay.ms",
            )?),
            oauth,
        })
    }

    pub fn enabled(&self, name: &str) -> Option<Mechanism> {
        Mechanism::from_name(name).filter(|m| self.mechanisms.contains(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = [
            ("sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512"),
            ("sasl.server.max.receive.size", "524288"),
            ("connections.max.reauth.ms", "0"),
            ("connection.failed.authentication.delay.ms", "100"),
            ("sasl.oauthbearer.jwks.endpoint.url", ""),
            ("sasl.oauthbearer.expected.audience", ""),
            ("sasl.oauthbearer.expected.issuer", ""),
            ("sasl.oauthbearer.sub.claim.name", "sub"),
            ("sasl.oauthbearer.clock.skew.seconds", "30"),
            ("sasl.oauthbearer.jwks.endpoint.refresh.ms", "3600000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    #[test]
    fn resolves_defaults_and_listener_overrides() {
        let s = SaslSettings::resolve(&raw(&[]), "SASL_SSL").unwrap();
        assert_eq!(
            s.mechanisms,
            [
                Mechanism::Scram(ScramMechanism::Sha256),
                Mechanism::Scram(ScramMechanism::Sha512)
            ]
        );
        assert_eq!(s.max_reauth, None);
        let s = SaslSettings::resolve(
            &raw(&[
                ("listener.name.ext.sasl.enabled.mechanisms", "PLAIN"),
                ("listener.name.ext.connections.max.reauth.ms", "2000"),
            ]),
            "EXT",
        )
        .unwrap();
        assert_eq!(s.mechanisms, [Mechanism::Plain]);
        assert_eq!(s.max_reauth, Some(Duration::from_secs(2)));
        assert_eq!(s.enabled("PLAIN"), Some(Mechanism::Plain));
        assert_eq!(s.enabled("SCRAM-SHA-256"), None);
    }

    #[test]
    fn unsupported_or_missing_mechanisms_are_refused() {
        for (value, why) in [
            ("GSSAPI", "GSSAPI is not supported"),
            ("OAUTHBEARER", "sasl.oauthbearer.jwks.endpoint.url"),
            ("", "at least one mechanism"),
            (" , ", "at least one mechanism"),
        ] {
            let e = SaslSettings::resolve(&raw(&[("sasl.enabled.mechanisms", value)]), "A")
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{value}: {e}");
        }
    }
}
