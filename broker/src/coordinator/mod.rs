//! What the group and transaction coordinators share: the runtime that owns the partitions
//! of their topic by leader epoch, loads them by replaying their log, and appends a change
//! then waits for the in-sync replicas (`runtime.rs`); where a key (group id, transactional
//! id) is placed among those partitions; and the classic field encodings of Kafka's
//! coordinator records (`fields.rs`).

pub mod fields;
pub mod runtime;

pub use runtime::{
    CoordinatorRuntime, LoadError, Loaded, PendingWrite, Placement, Shard, WriteError,
};

/// Kafka places a group or transactional id on partition `Utils.abs(key.hashCode()) % n` of
/// its topic (`__consumer_offsets`, `__transaction_state`).
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    let h = key
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    // Kafka's Utils.abs: Math.abs, with MIN_VALUE mapped to 0.
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// A single node's registry in `dir`, as the coordinators' unit tests open it.
#[cfg(test)]
pub(crate) fn test_registry(dir: &std::path::Path) -> std::sync::Arc<crate::cluster::Registry> {
    let cli = vec![("log.dirs".to_string(), dir.display().to_string())];
    let config = crate::config::BrokerConfig::load(None, vec![], cli).expect("test config");
    let registry = crate::cluster::Registry::open(std::sync::Arc::new(config));
    std::sync::Arc::new(registry.expect("opening the test registry"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_like_kafka() {
        // Java: "my-group".hashCode() == -1906497762; Utils.abs(..) % 50 == 12.
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("", 50), 0);
    }
}
