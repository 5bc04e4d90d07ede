//! The sync phase: SyncGroup, and handing every member its assignment once the leader's is
//! stored (or failing them all if storing it failed).
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::{Group, GroupState, SyncOutcome, SyncWaiter};

impl Group {
    /// Handles a SyncGroup; the leader's request carries everyone's assignment.
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        waiter: SyncWaiter,
        now: Instant,
    ) {
        if let Err(e) = self.check_member(member_id, instance_id, generation) {
            let _ = waiter.send(SyncOutcome::error(e));
            return;
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heartbeat = now;
        }
        match self.state {
            GroupState::PreparingRebalance => {
                let _ = waiter.send(SyncOutcome::error(ResponseError::RebalanceInProgress));
            }
            GroupState::Stable => {
                let _ = waiter.send(self.sync_outcome(member_id));
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.sync_waiter = Some(waiter);
                }
                if self.leader.as_deref() == Some(member_id) && !self.storing {
                    let mut assignments: BTreeMap<String, Bytes> =
                        assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = assignments.remove(&m.id).unwrap_or_default();
                    }
                    self.storing = true;
                    self.dirty = true;
                }
            }
            GroupState::Empty | GroupState::Dead => {
                let _ = waiter.send(SyncOutcome::error(ResponseError::UnknownMemberId));
            }
        }
    }

    /// Whether the leader's assignment waits to be stored (see [`Group::assignment_stored`]).
    pub fn storing(&self) -> bool {
        self.storing
    }

    /// The assignment of `generation` is durable: the group becomes Stable and every member
    /// waiting in SyncGroup gets its assignment.
    pub fn assignment_stored(&mut self, generation: i32) {
        if !self.storing || generation != self.generation {
            return;
        }
        self.storing = false;
        self.state = GroupState::Stable;
        self.sync_deadline = None;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let out = self.sync_outcome(&id);
            if let Some(w) = self.members.get_mut(&id).and_then(|m| m.sync_waiter.take()) {
                let _ = w.send(out);
            }
        }
    }

    /// Storing the assignment of `generation` failed: the members waiting in SyncGroup get
    /// `error` and the group rebalances (Kafka's resetAndPropagateAssignmentError).
    pub fn assignment_store_failed(&mut self, generation: i32, error: ResponseError, now: Instant) {
        if !self.storing || generation != self.generation {
            return;
        }
        self.storing = false;
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncOutcome::error(error));
            }
        }
        self.prepare_rebalance(now, Duration::ZERO);
    }

    fn sync_outcome(&self, member_id: &str) -> SyncOutcome {
        SyncOutcome {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }
}
