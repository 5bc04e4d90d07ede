//! Membership: the classic protocol's JoinGroup, SyncGroup, Heartbeat and LeaveGroup, and
//! KIP-848's ConsumerGroupHeartbeat. The group state machines (`classic/`,
//! `consumer_group.rs`) decide; this drives them and stores what must survive a failover.
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::{GroupCoordinator, COMMIT_TIMEOUT};
use crate::context::now_ms;
use crate::coordinator::PendingWrite;
use crate::group::classic::{Group, JoinOutcome, JoinRequest, SyncOutcome};
use crate::group::codec::{self, Key};
use crate::group::consumer_group::{ConsumerGroup, Heartbeat, HeartbeatOutcome, TopicsView};

impl GroupCoordinator {
    pub fn check_session_timeout(&self, timeout: Duration) -> Result<(), ResponseError> {
        if timeout < self.config.min_session_timeout || timeout > self.config.max_session_timeout {
            return Err(ResponseError::InvalidSessionTimeout);
        }
        Ok(())
    }

    pub fn consumer_heartbeat_interval(&self) -> Duration {
        self.config.consumer_heartbeat_interval
    }

    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinOutcome {
        if group_id.is_empty() {
            return JoinOutcome::error(ResponseError::InvalidGroupId, &req.member_id);
        }
        if let Err(e) = self.check_session_timeout(req.session_timeout) {
            return JoinOutcome::error(e, &req.member_id);
        }
        let member_id = req.member_id.clone();
        let (tx, rx) = oneshot::channel();
        {
            let mut state = match self.lock_owned(group_id) {
                Ok(state) => state,
                Err(e) => return JoinOutcome::error(e, &member_id),
            };
            if state
                .shard
                .consumer_groups
                .get(group_id)
                .is_some_and(|g| !g.is_empty())
            {
                return JoinOutcome::error(ResponseError::InconsistentGroupProtocol, &member_id);
            }
            let g = state
                .shard
                .groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id));
            g.join(req, tx, Instant::now(), self.config.initial_rebalance_delay);
            let _ = self.persist_group(g);
        }
        rx.await
            .unwrap_or_else(|_| JoinOutcome::error(ResponseError::RebalanceInProgress, &member_id))
    }

    pub async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncOutcome {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = match self.lock_owned(group_id) {
                Ok(state) => state,
                Err(e) => return SyncOutcome::error(e),
            };
            let Some(g) = state.shard.groups.get_mut(group_id) else {
                return SyncOutcome::error(ResponseError::UnknownMemberId);
            };
            g.sync(
                member_id,
                instance_id,
                generation,
                assignments,
                tx,
                Instant::now(),
            );
        }
        self.store_assignment(group_id).await;
        rx.await
            .unwrap_or_else(|_| SyncOutcome::error(ResponseError::RebalanceInProgress))
    }

    /// Appends the group's record if it changed; a failure is logged (the next change
    /// writes the whole group again) and returned for SyncGroup, which must not hand out an
    /// assignment that was not stored.
    pub(super) fn persist_group(
        &self,
        g: &mut Group,
    ) -> Result<Option<PendingWrite>, ResponseError> {
        if !g.dirty {
            return Ok(None);
        }
        g.dirty = false;
        let value = g.value(now_ms());
        let key = Key::Group {
            group: g.id.clone(),
        };
        self.persist(&g.id, vec![(key, Some(codec::encode_group(&value)))])
            .inspect_err(
                |e| tracing::warn!(group = %g.id, "could not persist group metadata: {e:?}"),
            )
    }

    /// After the leader's SyncGroup: stores the assignment and, once it is durable (in sync
    /// replicas included), lets the group answer every member's SyncGroup.
    async fn store_assignment(&self, group_id: &str) {
        let (pending, generation) = {
            let mut state = self.runtime.lock();
            let Some(g) = state.shard.groups.get_mut(group_id).filter(|g| g.storing()) else {
                return;
            };
            let generation = g.generation;
            match self.persist_group(g) {
                Ok(Some(pending)) => (pending, generation),
                Ok(None) => return g.assignment_stored(generation),
                Err(e) => return g.assignment_store_failed(generation, e, Instant::now()),
            }
        };
        let stored = pending
            .wait(tokio::time::Instant::now() + COMMIT_TIMEOUT)
            .await;
        let mut state = self.runtime.lock();
        if let Some(g) = state.shard.groups.get_mut(group_id) {
            match stored {
                Ok(()) => g.assignment_stored(generation),
                // As Kafka maps a timed-out store: the client finds the coordinator again.
                Err(ResponseError::RequestTimedOut) => g.assignment_store_failed(
                    generation,
                    ResponseError::CoordinatorNotAvailable,
                    Instant::now(),
                ),
                Err(e) => g.assignment_store_failed(generation, e, Instant::now()),
            }
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let mut state = self.lock_owned(group_id)?;
        let g = state
            .shard
            .groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        g.heartbeat(member_id, instance_id, generation, Instant::now())
    }

    pub fn leave(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        let mut state = self.lock_owned(group_id)?;
        let g = state
            .shard
            .groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        let result = g.leave(member_id, instance_id, Instant::now());
        let _ = self.persist_group(g);
        result
    }

    /// ConsumerGroupHeartbeat (KIP-848).
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        hb: Heartbeat,
    ) -> Result<HeartbeatOutcome, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let topics: TopicsView = self
            .runtime
            .registry()
            .topics()
            .iter()
            .map(|t| (t.meta.name.clone(), (t.meta.id, t.meta.partitions)))
            .collect();
        let mut state = self.lock_owned(group_id)?;
        if state
            .shard
            .groups
            .get(group_id)
            .is_some_and(|g| !g.is_empty())
        {
            // The id belongs to a live classic group.
            return Err(ResponseError::GroupIdNotFound);
        }
        let g = state
            .shard
            .consumer_groups
            .entry(group_id.to_string())
            .or_insert_with(|| ConsumerGroup::new(group_id));
        g.heartbeat(hb, Instant::now(), &topics)
    }

    /// Runs `f` on a live KIP-848 group; `GROUP_ID_NOT_FOUND` for anything else, which tells
    /// admin clients to fall back to DescribeGroups.
    pub fn with_consumer_group<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&ConsumerGroup) -> T,
    ) -> Result<T, ResponseError> {
        let state = self.lock_owned(group_id)?;
        state
            .shard
            .consumer_groups
            .get(group_id)
            .filter(|g| !g.is_empty())
            .map(f)
            .ok_or(ResponseError::GroupIdNotFound)
    }
}
