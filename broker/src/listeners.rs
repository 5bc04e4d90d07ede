//! Kafka's named listeners: `listeners`, `advertised.listeners`,
//! `listener.security.protocol.map` and `inter.broker.listener.name`.
//!
//! A broker behind Kubernetes Services is reached at different addresses from inside and
//! outside the cluster, so it binds one socket per listener and answers Metadata with the
//! addresses of the listener the request arrived on.
use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::config::{invalid, ConfigError};

/// The name of a listener given without one (`host:port`), as Kafka's default listener.
pub const DEFAULT_NAME: &str = "PLAINTEXT";

/// Kafka's default `listener.security.protocol.map`.
const DEFAULT_PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// How a listener's connections are secured (`listener.security.protocol.map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    /// TLS, with client certificates when `ssl.client.auth` asks for them.
    Ssl,
    /// SASL authentication before any other request, over plain TCP.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One listener: where it binds and what clients are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub bind: SocketAddr,
    pub protocol: SecurityProtocol,
    /// From `advertised.listeners`; `None` advertises the bound address.
    pub advertised: Option<(String, u16)>,
}

impl Listener {
    /// The address clients are told to connect to, given the address actually bound.
    pub fn advertised_endpoint(&self, bound: SocketAddr) -> (String, u16) {
        self.advertised
            .clone()
            .unwrap_or_else(|| (bound.ip().to_string(), bound.port()))
    }
}

/// Every listener of a broker; `inter_broker` indexes the one replication and the metadata
/// quorum's broker registration use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    pub all: Vec<Listener>,
    pub inter_broker: usize,
}

impl Listeners {
    pub fn inter_broker(&self) -> &Listener {
        &self.all[self.inter_broker]
    }

    /// Parses the four settings (empty strings where unset).
    pub fn parse(
        listeners: &str,
        advertised: &str,
        protocol_map: &str,
        inter_broker_name: &str,
    ) -> Result<Self, ConfigError> {
        let protocols = parse_protocol_map(protocol_map)?;
        let mut all = Vec::new();
        for (name, host, port) in split_endpoints("listeners", listeners)? {
            let host = if host.is_empty() { "0.0.0.0" } else { host };
            let bind = format!("{host}:{port}")
                .parse::<SocketAddr>()
                .or_else(|_| format!("[{host}]:{port}").parse())
                .map_err(|_| invalid("listeners", listeners, "expected NAME://ip:port"))?;
            if all.iter().any(|l: &Listener| l.name == name) {
                return Err(invalid(
                    "listeners",
                    listeners,
                    &format!("listener {name} is named twice"),
                ));
            }
            let protocol = match protocols.get(name.as_str()).map(String::as_str) {
                Some("PLAINTEXT") => SecurityProtocol::Plaintext,
                Some("SSL") => SecurityProtocol::Ssl,
                Some("SASL_PLAINTEXT") => SecurityProtocol::SaslPlaintext,
                Some("SASL_SSL") => SecurityProtocol::SaslSsl,
                Some(other) => {
                    return Err(invalid(
                        "listener.security.protocol.map",
                        protocol_map,
                        &format!(
                            "listener {name} uses {other}; expected PLAINTEXT, SSL, \
                             SASL_PLAINTEXT or SASL_SSL"
                        ),
                    ))
                }
                None => {
                    return Err(invalid(
                        "listener.security.protocol.map",
                        protocol_map,
                        &format!("no security protocol for listener {name}; add {name}:PLAINTEXT"),
                    ))
                }
            };
            all.push(Listener {
                name,
                bind,
                protocol,
                advertised: None,
            });
        }
        if all.is_empty() {
            return Err(invalid("listeners", listeners, "no listener given"));
        }
        let single = all.len() == 1;
        for (name, host, port) in split_endpoints("advertised.listeners", advertised)? {
            // One unnamed advertised address names the only listener, whatever it is called.
            let target = if single && name == DEFAULT_NAME {
                Some(&mut all[0])
            } else {
                all.iter_mut().find(|l| l.name == name)
            };
            let Some(l) = target else {
                return Err(invalid(
                    "advertised.listeners",
                    advertised,
                    &format!("{name} is not one of listeners"),
                ));
            };
            if host.is_empty() {
                return Err(invalid(
                    "advertised.listeners",
                    advertised,
                    "a host is required",
                ));
            }
            l.advertised = Some((host.to_string(), port));
        }
        let inter_broker = match inter_broker_name {
            "" => all.iter().position(|l| l.name == DEFAULT_NAME).unwrap_or(0),
            name => all.iter().position(|l| l.name == name).ok_or_else(|| {
                invalid(
                    "inter.broker.listener.name",
                    name,
                    "not one of the listeners",
                )
            })?,
        };
        Ok(Self { all, inter_broker })
    }
}

/// `NAME:PROTOCOL,...`, on top of Kafka's defaults (each protocol names itself).
pub fn parse_protocol_map(s: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut map: BTreeMap<String, String> = DEFAULT_PROTOCOLS
        .iter()
        .map(|p| (p.to_string(), p.to_string()))
        .collect();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry.split_once(':').ok_or_else(|| {
            invalid(
                "listener.security.protocol.map",
                s,
                "expected NAME:PROTOCOL,...",
            )
        })?;
        map.insert(
            name.trim().to_ascii_uppercase(),
            protocol.trim().to_ascii_uppercase(),
        );
    }
    Ok(map)
}

/// `NAME://host:port,...`; an entry without `NAME://` is the default listener. IPv6 hosts
/// are bracketed, as Kafka writes them.
fn split_endpoints<'a>(key: &str, s: &'a str) -> Result<Vec<(String, &'a str, u16)>, ConfigError> {
    let mut out = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, rest) = match entry.split_once("://") {
            Some((name, rest)) if !name.is_empty() => (name.to_ascii_uppercase(), rest),
            Some(_) => return Err(invalid(key, s, "a listener name is empty")),
            None => (DEFAULT_NAME.to_string(), entry),
        };
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid(key, s, "expected NAME://host:port"))?;
        let port = port.parse().map_err(|_| invalid(key, s, "bad port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        out.push((name, host, port));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(l: &str, a: &str, m: &str, i: &str) -> Result<Listeners, String> {
        Listeners::parse(l, a, m, i).map_err(|e| e.to_string())
    }

    #[test]
    fn a_bare_address_is_the_plaintext_listener() {
        let l = parse("127.0.0.1:9092", "", "", "").unwrap();
        assert_eq!(l.all.len(), 1);
        assert_eq!(l.inter_broker().name, "PLAINTEXT");
        assert_eq!(l.inter_broker().bind.to_string(), "127.0.0.1:9092");
        assert_eq!(l.inter_broker().advertised, None);
    }

    #[test]
    fn named_listeners_bind_and_advertise_separately() {
        let l = parse(
            "INTERNAL://0.0.0.0:9092,external://:9094",
            "INTERNAL://spate-0.spate-brokers:9092,EXTERNAL://203.0.113.7:31001",
            "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
            "INTERNAL",
        )
        .unwrap();
        assert_eq!(l.inter_broker().name, "INTERNAL");
        let ext = &l.all[1];
        assert_eq!(ext.name, "EXTERNAL");
        assert_eq!(ext.bind.to_string(), "0.0.0.0:9094");
        assert_eq!(ext.advertised, Some(("203.0.113.7".into(), 31001)));
        assert_eq!(
            l.all[0].advertised_endpoint(l.all[0].bind),
            ("spate-0.spate-brokers".into(), 9092)
        );
    }

    #[test]
    fn an_unnamed_advertised_address_names_the_only_listener() {
        let l = parse(
            "CLIENT://0.0.0.0:9092",
            "broker-1:9092",
            "CLIENT:PLAINTEXT",
            "",
        )
        .unwrap();
        assert_eq!(l.all[0].advertised, Some(("broker-1".into(), 9092)));
    }

    #[test]
    fn the_plaintext_listener_is_the_default_inter_broker_one() {
        let l = parse(
            "EXTERNAL://0.0.0.0:9094,PLAINTEXT://0.0.0.0:9092",
            "",
            "EXTERNAL:PLAINTEXT",
            "",
        )
        .unwrap();
        assert_eq!(l.inter_broker().name, "PLAINTEXT");
    }

    #[test]
    fn ssl_listeners_are_accepted() {
        let l = parse(
            "INTERNAL://0.0.0.0:9092,EXTERNAL://0.0.0.0:9093,SSL://0.0.0.0:9094",
            "",
            "INTERNAL:PLAINTEXT,EXTERNAL:SSL",
            "INTERNAL",
        )
        .unwrap();
        let protocols: Vec<_> = l.all.iter().map(|l| l.protocol).collect();
        assert_eq!(
            protocols,
            [
                SecurityProtocol::Plaintext,
                SecurityProtocol::Ssl,
                SecurityProtocol::Ssl
            ]
        );
    }

    #[test]
    fn sasl_listeners_are_accepted() {
        let l = parse(
            "SASL_SSL://0.0.0.0:9093,A://0.0.0.0:9094",
            "",
            "SASL_SSL:SASL_SSL,A:SASL_PLAINTEXT",
            "",
        )
        .unwrap();
        let protocols: Vec<_> = l.all.iter().map(|l| l.protocol).collect();
        assert_eq!(
            protocols,
            [SecurityProtocol::SaslSsl, SecurityProtocol::SaslPlaintext]
        );
        assert!(protocols[0].uses_tls() && protocols[0].uses_sasl());
        assert!(!protocols[1].uses_tls() && protocols[1].uses_sasl());
    }

    #[test]
    fn ipv6_listeners_are_bracketed() {
        let l = parse("PLAINTEXT://[::1]:9092", "", "", "").unwrap();
        assert_eq!(l.inter_broker().bind.to_string(), "[::1]:9092");
    }

    #[test]
    fn mistakes_are_explained() {
        let cases = [
            (
                "INTERNAL://0.0.0.0:9092",
                "",
                "",
                "",
                "add INTERNAL:PLAINTEXT",
            ),
            (
                "A://0.0.0.0:9093",
                "",
                "A:TLS",
                "",
                "expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
            ),
            (
                "A://0.0.0.0:1,A://0.0.0.0:2",
                "",
                "A:PLAINTEXT",
                "",
                "named twice",
            ),
            (
                "A://0.0.0.0:1",
                "B://h:1",
                "A:PLAINTEXT",
                "",
                "B is not one of listeners",
            ),
            (
                "A://0.0.0.0:1",
                "",
                "A:PLAINTEXT",
                "B",
                "not one of the listeners",
            ),
            ("", "", "", "", "no listener given"),
            ("A://0.0.0.0:x", "", "A:PLAINTEXT", "", "bad port"),
            (
                "A://nohost.example:1",
                "",
                "A:PLAINTEXT",
                "",
                "expected NAME://ip:port",
            ),
            (
                "A://0.0.0.0:1",
                "A://:1",
                "A:PLAINTEXT",
                "",
                "a host is required",
            ),
        ];
        for (l, a, m, i, why) in cases {
            let err = parse(l, a, m, i).unwrap_err();
            assert!(err.contains(why), "{l:?} {a:?} {m:?} {i:?}: {err}");
        }
    }
}
