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
pub mod jwks;
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
        let mut m: BTreeMap<String, String> = crate::config::DEFAULTS
            .iter()
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

/// The `username`/`password` options of a JAAS login (Kafka's
/// `...ScramLoginModule required username="broker" password="secret";`): what a broker logs in
/// with on other brokers' SASL listeners.
pub fn jaas_credentials(jaas: &str) -> Option<(String, String)> {
    Some((
        jaas_option(jaas, "username")?,
        jaas_option(jaas, "password")?,
    ))
}

/// One option of a JAAS login line (`name="value"` or `name=value`).
pub fn jaas_option(jaas: &str, name: &str) -> Option<String> {
    let at = jaas.find(&format!("{name}="))? + name.len() + 1;
    let rest = &jaas[at..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split_once('"').map(|(v, _)| v.to_string()),
        None => rest.split([' ', ';', '\n']).next().map(str::to_string),
    }
}

/// This broker's own SASL login for the inter-broker listener.
#[derive(Clone)]
pub struct InterBrokerLogin {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for InterBrokerLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "InterBrokerLogin({}, {}, [hidden])",
            self.mechanism.name(),
            self.username
        )
    }
}

impl InterBrokerLogin {
    /// `sasl.mechanism.inter.broker.protocol` (default: the listener's first enabled
    /// mechanism) with the credentials of `listener.name.<l>.<mechanism>.sasl.jaas.config`
    /// (or `sasl.jaas.config`).
    pub fn resolve(
        raw: &BTreeMap<String, String>,
        listener: &SaslSettings,
    ) -> Result<Self, ConfigError> {
        let key = "sasl.mechanism.inter.broker.protocol";
        let named = raw.get(key).map(|s| s.trim()).unwrap_or_default();
        let mechanism = if named.is_empty() {
            listener.mechanisms[0]
        } else {
            listener
                .enabled(named)
                .ok_or_else(|| invalid(key, named, "not enabled on the inter-broker listener"))?
        };
        let prefixed = format!(
            "listener.name.{}.{}.sasl.jaas.config",
            listener.listener.to_ascii_lowercase(),
            mechanism.name().to_ascii_lowercase()
        );
        let (jaas_key, jaas) = match raw.get(&prefixed).filter(|v| !v.trim().is_empty()) {
            Some(v) => (prefixed, v.clone()),
            None => (
                "sasl.jaas.config".to_string(),
                raw.get("sasl.jaas.config").cloned().unwrap_or_default(),
            ),
        };
        let (username, password) = jaas_credentials(&jaas).ok_or_else(|| {
            invalid(
                &jaas_key,
                &jaas,
                "the inter-broker listener uses SASL: give the broker's login as \
                 `... required username=\"...\" password=\"...\";`",
            )
        })?;
        Ok(Self {
            mechanism,
            username,
            password,
        })
    }
}

#[cfg(test)]
mod jaas_tests {
    use super::*;

    #[test]
    fn reads_kafkas_jaas_login() {
        assert_eq!(
            jaas_credentials(
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="s3 cr;t";"#
            ),
            Some(("broker".into(), "s3 cr;t".into()))
        );
        assert_eq!(
            jaas_credentials("x required username=b password=p;"),
            Some(("b".into(), "p".into()))
        );
        assert_eq!(jaas_credentials("x required username=\"b\";"), None);
    }
}
