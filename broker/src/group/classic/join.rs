//! The join phase: JoinGroup, preparing a rebalance, and forming the next generation once
//! every member has rejoined (or the rebalance timeout passed), with the protocol most
//! members prefer.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::{Group, GroupState, JoinOutcome, JoinRequest, JoinWaiter, Member, SyncOutcome};

impl Group {
    /// Handles a JoinGroup. The outcome arrives on `waiter`, now or when the rebalance
    /// completes.
    pub fn join(
        &mut self,
        req: JoinRequest,
        waiter: JoinWaiter,
        now: Instant,
        initial_delay: Duration,
    ) {
        let reply_now = |waiter: JoinWaiter, out: JoinOutcome| {
            let _ = waiter.send(out);
        };
        if self.state == GroupState::Dead {
            return reply_now(
                waiter,
                JoinOutcome::error(ResponseError::CoordinatorNotAvailable, &req.member_id),
            );
        }
        if req.protocols.is_empty() || req.protocol_type.is_empty() || !self.supports(&req) {
            return reply_now(
                waiter,
                JoinOutcome::error(ResponseError::InconsistentGroupProtocol, &req.member_id),
            );
        }
        let mut member_id = req.member_id.clone();
        let mut static_restart = false;
        if let Some(instance) = &req.instance_id {
            match self.member_by_instance(instance) {
                Some(existing) if member_id.is_empty() || member_id == existing => {
                    if member_id.is_empty() {
                        // A static member restarted: it takes over its old identity under a
                        // new member id, fencing the old process.
                        member_id = self.new_member_id(&req.client_id);
                        self.replace_member_id(&existing, &member_id);
                        static_restart = true;
                    }
                }
                Some(_) => {
                    return reply_now(
                        waiter,
                        JoinOutcome::error(ResponseError::FencedInstanceId, &member_id),
                    );
                }
                None if member_id.is_empty() => member_id = self.new_member_id(&req.client_id),
                None => {
                    return reply_now(
                        waiter,
                        JoinOutcome::error(ResponseError::UnknownMemberId, &member_id),
                    )
                }
            }
        } else if member_id.is_empty() {
            member_id = self.new_member_id(&req.client_id);
            if req.require_known_member_id {
                self.pending
                    .insert(member_id.clone(), now + req.session_timeout);
                return reply_now(
                    waiter,
                    JoinOutcome::error(ResponseError::MemberIdRequired, &member_id),
                );
            }
        } else if !self.members.contains_key(&member_id)
            && self.pending.remove(&member_id).is_none()
        {
            return reply_now(
                waiter,
                JoinOutcome::error(ResponseError::UnknownMemberId, &member_id),
            );
        }

        let known = self.members.get(&member_id);
        let unchanged = known.is_some_and(|m| m.protocols == req.protocols);
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        match self.members.get_mut(&member_id) {
            Some(m) => {
                m.protocols = req.protocols.clone();
                m.session_timeout = req.session_timeout;
                m.rebalance_timeout = req.rebalance_timeout;
                m.client_id = req.client_id.clone();
                m.client_host = req.client_host.clone();
                m.last_heartbeat = now;
                if let Some(old) = m.join_waiter.take() {
                    let _ = old.send(JoinOutcome::error(
                        ResponseError::UnknownMemberId,
                        &member_id,
                    ));
                }
                m.join_waiter = Some(waiter);
            }
            None => {
                self.members.insert(
                    member_id.clone(),
                    Member {
                        id: member_id.clone(),
                        instance_id: req.instance_id.clone(),
                        client_id: req.client_id.clone(),
                        client_host: req.client_host.clone(),
                        session_timeout: req.session_timeout,
                        rebalance_timeout: req.rebalance_timeout,
                        protocols: req.protocols.clone(),
                        assignment: Bytes::new(),
                        last_heartbeat: now,
                        join_waiter: Some(waiter),
                        sync_waiter: None,
                    },
                );
            }
        }
        if self.protocol_type.is_none() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        match self.state {
            GroupState::PreparingRebalance => {}
            // A known follower rejoining with the same metadata gets the current generation
            // back without disturbing the others, as in Kafka.
            GroupState::Stable | GroupState::CompletingRebalance if unchanged && !is_leader => {
                self.answer_join(&member_id, false);
            }
            // So does a restarted static leader (KIP-345): it gets the member list with
            // skip_assignment set (KIP-814), so the current assignment stays.
            // Kafka compares only the protocol the group would select: a restarted client's
            // subscription metadata differs (no owned partitions, no generation).
            GroupState::Stable if static_restart && self.select_protocol() == self.protocol => {
                let leader = is_leader;
                // The new member id must survive a restart, or the member is fenced by it.
                self.dirty = true;
                self.answer_join(&member_id, leader);
            }
            _ => self.prepare_rebalance(now, initial_delay),
        }
        self.maybe_complete_join(now);
    }

    fn supports(&self, req: &JoinRequest) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self
            .protocol_type
            .as_deref()
            .is_some_and(|t| t != req.protocol_type)
        {
            return false;
        }
        // At least one protocol every other member also supports.
        req.protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .filter(|m| m.id != req.member_id)
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    fn replace_member_id(&mut self, old: &str, new: &str) {
        if let Some(mut m) = self.members.remove(old) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinOutcome::error(ResponseError::FencedInstanceId, old));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncOutcome::error(ResponseError::FencedInstanceId));
            }
            m.id = new.to_string();
            self.members.insert(new.to_string(), m);
            if self.leader.as_deref() == Some(old) {
                self.leader = Some(new.to_string());
            }
        }
    }

    pub(super) fn prepare_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncOutcome::error(ResponseError::RebalanceInProgress));
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.join_not_before =
            (self.state == GroupState::Empty).then(|| now + initial_delay.min(timeout));
        self.rebalance_deadline = Some(now + timeout);
        self.sync_deadline = None;
        self.storing = false;
        if self.state != GroupState::PreparingRebalance {
            tracing::debug!(group = %self.id, from = self.state.name(), "preparing rebalance");
        }
        self.state = GroupState::PreparingRebalance;
    }

    /// Ends the join phase when every member has rejoined (or the deadline passed): members
    /// that did not rejoin are dropped, the generation advances and each waiting member is
    /// answered.
    pub(super) fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some());
        let delay_over = self.join_not_before.is_none_or(|t| now >= t);
        let deadline_over = self.rebalance_deadline.is_none_or(|t| now >= t);
        if !(deadline_over || all_joined && delay_over) {
            return;
        }
        self.members.retain(|_, m| m.join_waiter.is_some());
        self.generation += 1;
        self.rebalance_deadline = None;
        self.join_not_before = None;
        if self.members.is_empty() {
            // Persisted now, as Kafka does; a generation with members is persisted once the
            // leader's SyncGroup brings the assignments.
            self.dirty = true;
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            protocol = self.protocol.as_deref().unwrap_or(""),
            "rebalance: new generation formed"
        );
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.sync_deadline = Some(now + timeout);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            self.answer_join(&id, false);
        }
    }

    fn answer_join(&mut self, member_id: &str, skip_assignment: bool) {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.metadata_for(&protocol),
                    )
                })
                .collect()
        } else {
            vec![]
        };
        let out = JoinOutcome {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
            skip_assignment,
        };
        if let Some(w) = self
            .members
            .get_mut(member_id)
            .and_then(|m| m.join_waiter.take())
        {
            let _ = w.send(out);
        }
    }

    /// Kafka's choice: each member votes for its most preferred protocol among those every
    /// member supports; the most votes wins.
    fn select_protocol(&self) -> Option<String> {
        let candidates: Vec<&String> = self
            .members
            .values()
            .next()?
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                *votes.entry(n).or_default() += 1;
            }
        }
        // Ties go to the first member's preference order.
        candidates
            .iter()
            .max_by_key(|c| {
                (
                    votes.get(*c).copied().unwrap_or(0),
                    std::cmp::Reverse(candidates.iter().position(|x| x == *c)),
                )
            })
            .map(|s| s.to_string())
    }
}
