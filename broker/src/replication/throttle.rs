//! Replication throttles, as Kafka's `ReplicationQuotaManager`: a reassignment copies whole
//! partitions between brokers, and the throttle keeps that copy from starving clients.
//!
//! - **Which partitions**: the topic configs `leader.replication.throttled.replicas` and
//!   `follower.replication.throttled.replicas` list `partition:broker` pairs (or `*` for all).
//!   A leader throttles what it sends for partitions listed with its own id in the leader
//!   list; a follower throttles what it fetches for partitions listed with its own id in the
//!   follower list.
//! - **How fast**: the broker configs `leader.replication.throttled.rate` and
//!   `follower.replication.throttled.rate` (bytes/s): a dynamic value in the metadata quorum
//!   (this broker's, else the cluster default `""`) wins over the static setting.
//! - **When**: only for replicas outside the ISR, so in-sync followers never slow down and
//!   acks=all latency is untouched; a throttled reassignment still completes once the new
//!   replica has caught up, provided the rate exceeds the produce rate.
//!
//! As in Kafka the check comes before the read and the bytes are counted after it: one read
//! may overshoot, and the bucket then stays empty until the average is back under the rate.
//! Over quota, the partition is answered (or fetched) with no records, never with an error.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use spate_meta::ClusterMetadata;

use crate::config::BrokerConfig;

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";
/// Accepted (kafka-reassign-partitions deletes it when clearing throttles) but without effect:
/// there is one log directory per broker.
pub const LOG_DIRS_RATE: &str = "replica.alter.log.dirs.io.max.bytes.per.second";

/// Broker configs that may be changed at runtime (IncrementalAlterConfigs on BROKER resources).
pub const DYNAMIC_BROKER_KEYS: &[&str] = &[LEADER_RATE, FOLLOWER_RATE, LOG_DIRS_RATE];

/// Kafka's default rate, `Long.MAX_VALUE`: no throttle.
const UNLIMITED: u64 = i64::MAX as u64;

/// A token bucket holding at most one second of the rate.
#[derive(Default)]
pub struct Throttle {
    bucket: Mutex<Option<Bucket>>,
}

struct Bucket {
    /// May go negative: a read larger than what is left is still served once.
    tokens: f64,
    rate: u64,
    at: Instant,
}

impl Throttle {
    /// Refills the bucket for the time passed and runs `f` on it, under the lock.
    fn with_bucket<T>(&self, rate: u64, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let now = Instant::now();
        let mut guard = self.bucket.lock();
        let b = guard.get_or_insert(Bucket {
            tokens: rate as f64,
            rate,
            at: now,
        });
        if b.rate != rate {
            // A changed rate never grants more than one second of the new one.
            b.tokens = b.tokens.min(rate as f64);
            b.rate = rate;
        }
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate as f64).min(rate as f64);
        b.at = now;
        f(b)
    }

    /// Is the quota used up at `rate` bytes/s? Never with an unlimited rate.
    pub fn exceeded(&self, rate: u64) -> bool {
        rate < UNLIMITED && self.with_bucket(rate, |b| b.tokens <= 0.0)
    }

    /// Counts `bytes` just sent or fetched under a throttle of `rate` bytes/s.
    pub fn record(&self, rate: u64, bytes: usize) {
        if rate < UNLIMITED && bytes > 0 {
            self.with_bucket(rate, |b| b.tokens -= bytes as f64);
        }
    }

    /// How long until the quota has room again (for back-off); zero if it has now.
    pub fn wait(&self, rate: u64) -> Duration {
        if rate == 0 || rate >= UNLIMITED {
            return Duration::ZERO;
        }
        let tokens = self.with_bucket(rate, |b| b.tokens);
        if tokens > 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - tokens) / rate as f64)
    }
}

/// This broker's leader and follower throttles.
#[derive(Default)]
pub struct Throttles {
    pub leader: Throttle,
    pub follower: Throttle,
}

/// The effective rate `key` for broker `me`: its dynamic value, the cluster-wide dynamic
/// default, or the static setting.
pub fn rate(md: &ClusterMetadata, config: &BrokerConfig, me: i32, key: &str) -> u64 {
    let dynamic = |resource: &str| {
        md.broker_configs
            .get(resource)
            .and_then(|c| c.get(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    dynamic(&me.to_string())
        .or_else(|| dynamic(""))
        .unwrap_or(match key {
            LEADER_RATE => config.leader_replication_throttled_rate,
            FOLLOWER_RATE => config.follower_replication_throttled_rate,
            _ => UNLIMITED,
        })
}

/// Does the throttled-replicas list `list` (`*`, or `partition:broker,...`) name `partition`
/// on `broker`?
pub fn lists(list: &str, partition: i32, broker: i32) -> bool {
    let list = list.trim();
    list == "*"
        || list.split(',').any(|entry| {
            entry.trim().split_once(':').is_some_and(|(p, b)| {
                p.trim().parse() == Ok(partition) && b.trim().parse() == Ok(broker)
            })
        })
}

/// Is `partition` of a topic with `configs` throttled on `broker` by the list `key`?
pub fn throttled(
    configs: &BTreeMap<String, String>,
    key: &str,
    partition: i32,
    broker: i32,
) -> bool {
    configs
        .get(key)
        .is_some_and(|list| lists(list, partition, broker))
}

/// Checks a throttled-replicas list as Kafka's `ThrottledReplicaListValidator` does.
pub fn validate_replica_list(value: &str) -> Result<(), String> {
    let value = value.trim();
    if value.is_empty() || value == "*" {
        return Ok(());
    }
    let ok = value.split(',').all(|entry| {
        entry.trim().split_once(':').is_some_and(|(p, b)| {
            p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
        })
    });
    if ok {
        Ok(())
    } else {
        Err("must be the literal '*' or a list of replicas in the form \
             partitionId:brokerId,partitionId:brokerId,..."
            .to_string())
    }
}

/// Checks a dynamic broker config; the error text goes back to the client (INVALID_CONFIG).
pub fn validate_broker_config(name: &str, value: &str) -> Result<(), String> {
    if !DYNAMIC_BROKER_KEYS.contains(&name) {
        return Err(format!(
            "Cannot update broker config {name} dynamically; only {} can be",
            DYNAMIC_BROKER_KEYS.join(", ")
        ));
    }
    match value.trim().parse::<i64>() {
        Ok(n) if n >= 0 => Ok(()),
        _ => Err(format!(
            "Invalid value {value} for configuration {name}: expected a number of bytes per second, at least 0"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
    use super::*;

    #[test]
    fn replica_lists_name_partitions_on_brokers() {
        assert!(lists("*", 7, 3));
        assert!(lists("0:1, 1:2", 1, 2));
        assert!(!lists("0:1,1:2", 1, 1));
        assert!(!lists("", 0, 1));
        assert!(validate_replica_list("0:1,1:2").is_ok());
        assert!(validate_replica_list("*").is_ok());
        assert!(validate_replica_list("").is_ok());
        assert!(validate_replica_list("0-1").is_err());
        assert!(validate_replica_list("a:1").is_err());
    }

    #[test]
    fn the_bucket_refuses_once_the_second_is_spent_and_refills() {
        let t = Throttle::default();
        assert!(!t.exceeded(UNLIMITED));
        assert!(!t.exceeded(1000));
        t.record(1000, 1500);
        assert!(t.exceeded(1000));
        assert!(t.wait(1000) > Duration::from_millis(400));
        std::thread::sleep(Duration::from_millis(600));
        assert!(!t.exceeded(1000));
    }

    #[test]
    fn dynamic_rates_win_over_static_ones() {
        let config =
            BrokerConfig::load(None, vec![], vec![(LEADER_RATE.into(), "10".into())]).unwrap();
        let mut md = ClusterMetadata::default();
        assert_eq!(rate(&md, &config, 1, LEADER_RATE), 10);
        assert_eq!(rate(&md, &config, 1, FOLLOWER_RATE), UNLIMITED);
        md.broker_configs.insert(
            String::new(),
            BTreeMap::from([(LEADER_RATE.into(), "20".into())]),
        );
        assert_eq!(rate(&md, &config, 1, LEADER_RATE), 20);
        md.broker_configs.insert(
            "1".into(),
            BTreeMap::from([(LEADER_RATE.into(), "30".into())]),
        );
        assert_eq!(rate(&md, &config, 1, LEADER_RATE), 30);
        assert_eq!(rate(&md, &config, 2, LEADER_RATE), 20);
    }
}
