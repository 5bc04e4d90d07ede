//! What the group and transaction coordinators share: the runtime that owns the partitions
//! of their topic by leader epoch, loads them by replaying their log, and appends a change
//! then waits for the in-sync replicas (`runtime.rs`); where a key (group id, transactional
//! id) is placed among those partitions; and the classic field encodings of Kafka's
//! coordinator records (`fields.rs`). The unit tests of both coordinators run on a one-voter
//! quorum in a temporary directory (`test_node.rs`).

pub mod fields;
pub mod runtime;
#[cfg(test)]
pub(crate) mod test_node;

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
