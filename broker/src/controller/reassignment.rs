//! Finishing partition reassignments (Kafka's KIP-455 flow).
//!
//! `AlterPartitionReassignments` (`handlers/alter_partition_reassignments.rs`) proposes
//! `Reassign`: the partition's replicas become target ∪ current, the added replicas appear in
//! the metadata, the applier opens them as followers and they fetch from the leader like any
//! follower (throttled if configured, `replication/throttle.rs`). The leader's ISR upkeep
//! (`replication/`) admits them once caught up, since they are replicas. Then someone must
//! propose `CompleteReassignment`, which drops the removed replicas (moving leadership off
//! them) — that is this file, called from two places:
//!
//! - the partition leader, right after an ISR expand (so a move finishes without delay), and
//! - the controller tick (`liveness.rs`), a backstop for a leader that died or moved meanwhile.
//!
//! A removed replica's broker then deletes its local copy (`cluster/applier.rs`: "replica moved away").
use spate_meta::{ClusterMetadata, MetaRequest};

use crate::cluster::Quorum;

/// Reassigning partitions whose added replicas have all joined the ISR, with an ISR member
/// that stays: exactly what the state machine's `CompleteReassignment` accepts.
pub fn completable(md: &ClusterMetadata) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for (name, t) in &md.topics {
        for (i, p) in t.partitions.iter().enumerate() {
            let done = p.is_reassigning()
                && p.adding.iter().all(|r| p.isr.contains(r))
                && p.isr.iter().any(|r| !p.removing.contains(r));
            if let (true, Ok(i)) = (done, i32::try_from(i)) {
                out.push((name.clone(), i));
            }
        }
    }
    out
}

/// Proposes `CompleteReassignment` for every completable partition. Returns whether any
/// completed. Races (another node completed it first, the ISR changed) are rejections of
/// no consequence: the next call looks again.
pub async fn complete_caught_up(q: &Quorum) -> bool {
    let mut any = false;
    for (topic, partition) in completable(&q.metadata()) {
        let request = MetaRequest::CompleteReassignment {
            topic: topic.clone(),
            partition,
        };
        match q.propose(request).await {
            Ok(_) => {
                any = true;
                tracing::info!(%topic, partition, "reassignment completed");
            }
            Err(e) => tracing::debug!(%topic, partition, "completing reassignment: {}", e.message),
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use spate_meta::{PartitionState, TopicMetadata};

    use super::*;

    fn md_with(p: PartitionState) -> ClusterMetadata {
        let mut md = ClusterMetadata::default();
        md.topics.insert(
            "t".into(),
            TopicMetadata {
                id: uuid::Uuid::nil(),
                configs: Default::default(),
                partitions: vec![p],
            },
        );
        md
    }

    #[test]
    fn only_reassignments_whose_new_replicas_are_in_sync_complete() {
        let mut p = PartitionState::new(vec![2, 3, 1]);
        p.isr = vec![1, 2];
        p.adding = vec![3];
        p.removing = vec![1];
        assert!(completable(&md_with(p.clone())).is_empty());
        p.isr = vec![1, 2, 3];
        assert_eq!(completable(&md_with(p.clone())), vec![("t".to_string(), 0)]);
        p.adding.clear();
        p.removing.clear();
        assert!(completable(&md_with(p)).is_empty());
    }
}
