//! Topic-level configs: which keys exist, their broker-level defaults, validation, and the
//! `LogConfig` a partition's log runs with.
use std::collections::BTreeMap;

use spate_log::{FlushPolicy, LogConfig};

use crate::config::{parse_cleanup_policy, parse_timestamp_type, BrokerConfig};

/// Kafka's DescribeConfigs `config_type` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

pub struct TopicKey {
    pub name: &'static str,
    /// The broker setting that supplies the default, if any.
    pub broker_synonym: Option<&'static str>,
    pub fixed_default: &'static str,
    pub kind: ConfigType,
}

const fn key(
    name: &'static str,
    broker_synonym: Option<&'static str>,
    fixed_default: &'static str,
    kind: ConfigType,
) -> TopicKey {
    TopicKey {
        name,
        broker_synonym,
        fixed_default,
        kind,
    }
}

pub const TOPIC_KEYS: &[TopicKey] = &[
    key(
        "cleanup.policy",
        Some("log.cleanup.policy"),
        "delete",
        ConfigType::List,
    ),
    key("compression.type", None, "producer", ConfigType::String),
    key(
        "delete.retention.ms",
        Some("log.cleaner.delete.retention.ms"),
        "86400000",
        ConfigType::Long,
    ),
    key(
        "flush.messages",
        Some("log.flush.interval.messages"),
        "9223372036854775807",
        ConfigType::Long,
    ),
    key(
        "flush.ms",
        Some("log.flush.interval.ms"),
        "1000",
        ConfigType::Long,
    ),
    key(
        "index.interval.bytes",
        Some("log.index.interval.bytes"),
        "4096",
        ConfigType::Int,
    ),
    key(
        "max.message.bytes",
        Some("message.max.bytes"),
        "1048588",
        ConfigType::Int,
    ),
    key(
        "message.timestamp.type",
        Some("log.message.timestamp.type"),
        "CreateTime",
        ConfigType::String,
    ),
    key(
        "min.compaction.lag.ms",
        Some("log.cleaner.min.compaction.lag.ms"),
        "0",
        ConfigType::Long,
    ),
    key(
        "min.insync.replicas",
        Some("min.insync.replicas"),
        "1",
        ConfigType::Int,
    ),
    key(
        "retention.bytes",
        Some("log.retention.bytes"),
        "-1",
        ConfigType::Long,
    ),
    key(
        "retention.ms",
        Some("log.retention.ms"),
        "604800000",
        ConfigType::Long,
    ),
    key(
        "segment.bytes",
        Some("log.segment.bytes"),
        "1073741824",
        ConfigType::Int,
    ),
    key(
        "segment.ms",
        Some("log.roll.ms"),
        "604800000",
        ConfigType::Long,
    ),
    key(
        "unclean.leader.election.enable",
        None,
        "false",
        ConfigType::Boolean,
    ),
    // Accepted, validated and reported like Kafka, but without effect here yet: index
    // preallocation, cleaner tuning, timestamp bounds, tiered storage. The replication
    // throttle lists do have effect (`throttle.rs`).
    key("file.delete.delay.ms", None, "60000", ConfigType::Long),
    key(
        "follower.replication.throttled.replicas",
        None,
        "",
        ConfigType::List,
    ),
    key(
        "leader.replication.throttled.replicas",
        None,
        "",
        ConfigType::List,
    ),
    key("local.retention.bytes", None, "-2", ConfigType::Long),
    key("local.retention.ms", None, "-2", ConfigType::Long),
    key(
        "max.compaction.lag.ms",
        None,
        "9223372036854775807",
        ConfigType::Long,
    ),
    key(
        "message.downconversion.enable",
        None,
        "true",
        ConfigType::Boolean,
    ),
    key(
        "message.format.version",
        None,
        "3.0-IV1",
        ConfigType::String,
    ),
    key(
        "message.timestamp.after.max.ms",
        None,
        "9223372036854775807",
        ConfigType::Long,
    ),
    key(
        "message.timestamp.before.max.ms",
        None,
        "9223372036854775807",
        ConfigType::Long,
    ),
    key(
        "message.timestamp.difference.max.ms",
        None,
        "9223372036854775807",
        ConfigType::Long,
    ),
    key("min.cleanable.dirty.ratio", None, "0.5", ConfigType::Double),
    key("preallocate", None, "false", ConfigType::Boolean),
    key("remote.storage.enable", None, "false", ConfigType::Boolean),
    key("segment.index.bytes", None, "10485760", ConfigType::Int),
    key("segment.jitter.ms", None, "0", ConfigType::Long),
];

pub fn topic_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.name == name)
}

/// The effective value of `key` for a topic with `overrides`, and whether it was overridden.
pub fn effective<'a>(
    key: &TopicKey,
    overrides: &'a BTreeMap<String, String>,
    broker: &'a BrokerConfig,
) -> (&'a str, bool) {
    if let Some(v) = overrides.get(key.name) {
        return (v, true);
    }
    let v = key
        .broker_synonym
        .and_then(|b| broker.raw.get(b))
        .map(String::as_str)
        .unwrap_or(key.fixed_default);
    (v, false)
}

/// Checks one topic config; the error text goes back to the client (INVALID_CONFIG).
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let key = topic_key(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
    let bad = |why: &str| {
        Err(format!(
            "Invalid value {value} for configuration {name}: {why}"
        ))
    };
    match key.kind {
        ConfigType::Boolean => {
            if !matches!(value, "true" | "false") {
                return bad("expected true or false");
            }
            if name == "remote.storage.enable" && value == "true" {
                return bad("tiered storage is not supported");
            }
        }
        ConfigType::Int | ConfigType::Long => {
            let Ok(n) = value.trim().parse::<i64>() else {
                return bad("not a number");
            };
            if key.kind == ConfigType::Int && i32::try_from(n).is_err() {
                return bad("out of the int range");
            }
            let min = match name {
                "segment.bytes" => 14,
                "segment.index.bytes" => 4,
                "local.retention.ms" | "local.retention.bytes" => -2,
                "max.message.bytes"
                | "index.interval.bytes"
                | "segment.ms"
                | "min.insync.replicas"
                | "flush.messages" => 1,
                "retention.ms" | "retention.bytes" => -1,
                _ => 0,
            };
            if n < min {
                return bad(&format!("value must be at least {min}"));
            }
        }
        ConfigType::Double => match value.trim().parse::<f64>() {
            Ok(x) if (0.0..=1.0).contains(&x) => {}
            _ => return bad("expected a number between 0 and 1"),
        },
        ConfigType::String | ConfigType::List => match name {
            "cleanup.policy" if parse_cleanup_policy(value).is_none() => {
                return bad("expected delete, compact or compact,delete")
            }
            "message.timestamp.type" if parse_timestamp_type(value).is_none() => {
                return bad("expected CreateTime or LogAppendTime")
            }
            // Spate stores batches exactly as produced; it never recompresses.
            "compression.type" if value != "producer" => {
                return bad("only `producer` is supported")
            }
            "leader.replication.throttled.replicas" | "follower.replication.throttled.replicas" => {
                if let Err(why) = crate::replication::throttle::validate_replica_list(value) {
                    return bad(&why);
                }
            }
            _ => {}
        },
    }
    Ok(())
}

/// Builds the log settings for a topic: broker defaults with the topic's overrides on top.
pub fn log_config(overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> LogConfig {
    let mut c = broker.log_defaults.clone();
    let get = |k: &str| overrides.get(k).map(|v| v.trim());
    let num = |k: &str| get(k).and_then(|v| v.parse::<i64>().ok());
    if let Some(n) = num("segment.bytes") {
        c.segment_bytes = n as u64;
    }
    if let Some(n) = num("segment.ms") {
        c.segment_ms = n;
    }
    if let Some(n) = num("retention.ms") {
        c.retention_ms = n;
    }
    if let Some(n) = num("retention.bytes") {
        c.retention_bytes = n;
    }
    if let Some(n) = num("delete.retention.ms") {
        c.delete_retention_ms = n;
    }
    if let Some(n) = num("min.compaction.lag.ms") {
        c.min_compaction_lag_ms = n;
    }
    if let Some(n) = num("max.message.bytes") {
        c.max_message_bytes = n as usize;
    }
    if let Some(n) = num("index.interval.bytes") {
        c.index_interval_bytes = n as u32;
    }
    if let Some(p) = get("cleanup.policy").and_then(parse_cleanup_policy) {
        c.cleanup_policy = p;
    }
    if let Some(t) = get("message.timestamp.type").and_then(parse_timestamp_type) {
        c.timestamp_type = t;
    }
    let flush_messages = num("flush.messages").map(|n| (n > 0 && n < i64::MAX).then_some(n as u64));
    let flush_ms = num("flush.ms").map(|n| (0..i64::MAX).contains(&n).then_some(n as u64));
    c.flush = FlushPolicy {
        messages: flush_messages.unwrap_or(c.flush.messages),
        ms: flush_ms.unwrap_or(c.flush.ms),
    };
    c
}

pub fn min_insync_replicas(overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> i32 {
    overrides
        .get("min.insync.replicas")
        .and_then(|v| v.parse().ok())
        .unwrap_or(broker.min_insync_replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names_and_values() {
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("segment.bytes", "99999999999").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("no.such.config", "1")
            .unwrap_err()
            .contains("Unknown topic config"));
        assert!(validate("compression.type", "gzip").is_err());
        assert!(validate("leader.replication.throttled.replicas", "0:1,1:2").is_ok());
        assert!(validate("follower.replication.throttled.replicas", "*").is_ok());
        assert!(validate("leader.replication.throttled.replicas", "0,1").is_err());
    }

    #[test]
    fn overrides_win_over_broker_defaults() {
        let broker =
            BrokerConfig::load(None, vec![], vec![("log.retention.ms".into(), "5".into())])
                .unwrap();
        let mut o = BTreeMap::new();
        assert_eq!(log_config(&o, &broker).retention_ms, 5);
        assert_eq!(
            effective(topic_key("retention.ms").unwrap(), &o, &broker),
            ("5", false)
        );
        o.insert("retention.ms".to_string(), "7".to_string());
        o.insert("flush.messages".to_string(), "1".to_string());
        let c = log_config(&o, &broker);
        assert_eq!(c.retention_ms, 7);
        assert_eq!(c.flush.messages, Some(1));
    }
}
