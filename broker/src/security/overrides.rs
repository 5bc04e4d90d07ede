//! Per-listener settings (`listener.name.<lowercase listener>.<key>` over `<key>`, as Kafka)
//! and which settings hold secrets.
use std::collections::BTreeMap;

/// The settings a listener may override (their broker-wide defaults are in
/// `config::DEFAULTS`).
pub const LISTENER_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.principal.mapping.rules",
    "ssl.enabled.protocols",
    "sasl.enabled.mechanisms",
    "sasl.server.max.receive.size",
    "connections.max.reauth.ms",
    "sasl.oauthbearer.jwks.endpoint.url",
    "sasl.oauthbearer.expected.audience",
    "sasl.oauthbearer.expected.issuer",
    "sasl.oauthbearer.sub.claim.name",
    "sasl.oauthbearer.clock.skew.seconds",
    "sasl.oauthbearer.jwks.endpoint.refresh.ms",
];

/// Settings whose values are secrets (Kafka's PASSWORD type): never printed, never described.
const SENSITIVE: &[&str] = &[
    "sasl.jaas.config",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.truststore.certificates",
    "ssl.key.password",
];

/// Whether `key` (possibly `listener.name.<l>.`-prefixed) holds a secret.
pub fn is_sensitive(key: &str) -> bool {
    let base = listener_override(key).map_or(key, |(_, k)| k);
    SENSITIVE.contains(&base) || base.ends_with(".sasl.jaas.config")
}

/// `listener.name.<listener>.<key>` → (listener, key) when `key` may be overridden.
pub fn listener_override(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("listener.name.")?;
    let (listener, setting) = rest.split_once('.')?;
    // `<mechanism>.sasl.jaas.config`: a login per mechanism, as Kafka names it.
    let per_mechanism = setting
        .strip_suffix(".sasl.jaas.config")
        .is_some_and(|m| ["plain", "scram-sha-256", "scram-sha-512", "oauthbearer"].contains(&m));
    (LISTENER_KEYS.contains(&setting) || per_mechanism || setting == "sasl.jaas.config")
        .then_some((listener, setting))
}

/// `listener`'s value of `key` as (the key as set, its trimmed value): the listener's
/// override if there is one, else the broker-wide setting.
pub fn listener_setting(
    raw: &BTreeMap<String, String>,
    listener: &str,
    key: &str,
) -> (String, String) {
    let prefixed = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
    if let Some(v) = raw.get(&prefixed) {
        return (prefixed, v.trim().to_string());
    }
    (
        key.to_string(),
        raw.get(key)
            .map(|v| v.trim().to_string())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_settings_are_recognised_with_and_without_a_listener_prefix() {
        assert!(is_sensitive("ssl.keystore.key"));
        assert!(is_sensitive("listener.name.external.ssl.keystore.key"));
        assert!(is_sensitive("ssl.truststore.certificates"));
        assert!(!is_sensitive("ssl.keystore.location"));
        assert!(!is_sensitive("listener.name.external.ssl.client.auth"));
        assert_eq!(
            listener_override("listener.name.external.ssl.client.auth"),
            Some(("external", "ssl.client.auth"))
        );
        assert_eq!(
            listener_override("listener.name.external.sasl.enabled.mechanisms"),
            Some(("external", "sasl.enabled.mechanisms"))
        );
        assert_eq!(
            listener_override("listener.name.external.num.partitions"),
            None
        );
    }

    #[test]
    fn a_listener_override_wins_over_the_broker_setting() {
        let raw: BTreeMap<String, String> = [
            ("sasl.enabled.mechanisms", "PLAIN"),
            (
                "listener.name.ext.sasl.enabled.mechanisms",
                " SCRAM-SHA-512 ",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            listener_setting(&raw, "EXT", "sasl.enabled.mechanisms"),
            (
                "listener.name.ext.sasl.enabled.mechanisms".into(),
                "SCRAM-SHA-512".into()
            )
        );
        assert_eq!(
            listener_setting(&raw, "INT", "sasl.enabled.mechanisms").1,
            "PLAIN"
        );
    }
}
