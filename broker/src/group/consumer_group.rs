//! A consumer group under the consumer rebalance protocol (KIP-848): the broker assigns,
//! members heartbeat, and each member reconciles towards its target assignment on its own.
//!
//! Epochs: the group epoch moves whenever membership, subscriptions or subscribed topics'
//! partition counts change; the target assignment is recomputed for it. A member reaches the
//! target epoch once it has given up (acknowledged revoking) the partitions it no longer
//! owns; a partition is handed to its new owner only after the old owner released it, so no
//! two members ever own one partition at once.
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::assignor::{self, TopicPartition};

/// Member epoch values with a meaning of their own in a heartbeat.
pub const JOIN_EPOCH: i32 = 0;
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;
/// Kafka's default `max.poll.interval.ms`, used when a joining member names no timeout.
const DEFAULT_REBALANCE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// `None`: unchanged (the client sends -1 after joining).
    pub rebalance_timeout: Option<Duration>,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed_topics: Option<Vec<String>>,
    pub server_assignor: Option<String>,
    /// Partitions the member owns right now; `None`: unchanged.
    pub owned: Option<BTreeSet<TopicPartition>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    pub member_id: String,
    pub member_epoch: i32,
    pub assignment: Option<BTreeSet<TopicPartition>>,
}

#[derive(Debug)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    previous_epoch: i32,
    pub rack: Option<String>,
    pub subscribed: Vec<String>,
    rebalance_timeout: Duration,
    /// What the member has been told it owns.
    pub assigned: BTreeSet<TopicPartition>,
    /// Taken away from it, not yet confirmed released.
    revoking: BTreeSet<TopicPartition>,
    revoke_deadline: Option<Instant>,
    last_seen: Instant,
}

/// Topic names → (id, partition count), as the cluster has them now.
pub type TopicsView = BTreeMap<String, (Uuid, i32)>;

#[derive(Debug)]
pub struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    assignment_epoch: i32,
    pub assignor: String,
    pub members: BTreeMap<String, ConsumerMember>,
    target: BTreeMap<String, BTreeSet<TopicPartition>>,
    /// Subscribed topics as of the last assignment, to notice new partitions.
    topics_seen: BTreeMap<Uuid, i32>,
}

impl ConsumerGroup {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            assignor: assignor::UNIFORM.to_string(),
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            topics_seen: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The state name Kafka's tools show.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.members.values().all(|m| {
            m.epoch == self.assignment_epoch
                && m.revoking.is_empty()
                && self.target.get(&m.id) == Some(&m.assigned)
        }) {
            "Stable"
        } else {
            "Reconciling"
        }
    }

    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        now: Instant,
        topics: &TopicsView,
    ) -> Result<HeartbeatOutcome, ResponseError> {
        if let Some(a) = &hb.server_assignor {
            if !assignor::is_known(a) {
                return Err(ResponseError::UnsupportedAssignor);
            }
        }
        if hb.member_epoch == LEAVE_EPOCH || hb.member_epoch == STATIC_LEAVE_EPOCH {
            let id = self.resolve_leaving(&hb)?;
            self.remove(&id);
            return Ok(HeartbeatOutcome {
                member_id: id,
                member_epoch: hb.member_epoch,
                assignment: None,
            });
        }
        let member_id = if hb.member_epoch == JOIN_EPOCH {
            self.join(&hb, now)?
        } else {
            let m = self
                .members
                .get(&hb.member_id)
                .ok_or(ResponseError::UnknownMemberId)?;
            if hb.member_epoch != m.epoch && hb.member_epoch != m.previous_epoch {
                return Err(ResponseError::FencedMemberEpoch);
            }
            hb.member_id.clone()
        };
        if let Some(a) = &hb.server_assignor {
            self.assignor = a.clone();
        }
        let m = self
            .members
            .get_mut(&member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        m.last_seen = now;
        if let Some(t) = hb.rebalance_timeout {
            m.rebalance_timeout = t;
        }
        if hb.rack_id.is_some() {
            m.rack = hb.rack_id.clone();
        }
        m.client_id = hb.client_id.clone();
        m.client_host = hb.client_host.clone();
        if let Some(subscribed) = &hb.subscribed_topics {
            let mut s = subscribed.clone();
            s.sort();
            s.dedup();
            if s != m.subscribed {
                m.subscribed = s;
                self.group_epoch += 1;
            }
        }
        if let Some(owned) = &hb.owned {
            let m = self
                .members
                .get_mut(&member_id)
                .ok_or(ResponseError::UnknownMemberId)?;
            m.revoking.retain(|tp| owned.contains(tp));
            if m.revoking.is_empty() {
                m.revoke_deadline = None;
            }
        }
        self.refresh_target(topics);
        self.reconcile(&member_id, now);
        let m = self
            .members
            .get(&member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        Ok(HeartbeatOutcome {
            member_id,
            member_epoch: m.epoch,
            assignment: Some(m.assigned.clone()),
        })
    }

    fn resolve_leaving(&self, hb: &Heartbeat) -> Result<String, ResponseError> {
        if self.members.contains_key(&hb.member_id) {
            return Ok(hb.member_id.clone());
        }
        hb.instance_id
            .as_ref()
            .and_then(|i| {
                self.members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(i))
            })
            .map(|m| m.id.clone())
            .ok_or(ResponseError::UnknownMemberId)
    }

    fn join(&mut self, hb: &Heartbeat, now: Instant) -> Result<String, ResponseError> {
        // Since KIP-1082 clients pick their member id; older ones leave it to us.
        let id = if hb.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            hb.member_id.clone()
        };
        if let Some(instance) = &hb.instance_id {
            let other = self
                .members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(instance) && m.id != id)
                .map(|m| m.id.clone());
            if let Some(other) = other {
                // A restarted static member replaces its old incarnation and keeps its
                // partitions: no rebalance.
                if let Some(mut old) = self.members.remove(&other) {
                    old.id = id.clone();
                    old.last_seen = now;
                    if let Some(t) = self.target.remove(&other) {
                        self.target.insert(id.clone(), t);
                    }
                    self.members.insert(id.clone(), old);
                    return Ok(id);
                }
            }
        }
        // A member rejoining with epoch 0 lost its state: start it afresh.
        if self.members.contains_key(&id) {
            self.remove(&id);
        }
        self.members.insert(
            id.clone(),
            ConsumerMember {
                id: id.clone(),
                instance_id: hb.instance_id.clone(),
                client_id: hb.client_id.clone(),
                client_host: hb.client_host.clone(),
                epoch: JOIN_EPOCH,
                previous_epoch: JOIN_EPOCH,
                rack: hb.rack_id.clone(),
                subscribed: vec![],
                rebalance_timeout: hb.rebalance_timeout.unwrap_or(DEFAULT_REBALANCE_TIMEOUT),
                assigned: BTreeSet::new(),
                revoking: BTreeSet::new(),
                revoke_deadline: None,
                last_seen: now,
            },
        );
        self.group_epoch += 1;
        Ok(id)
    }

    fn remove(&mut self, id: &str) {
        if self.members.remove(id).is_some() {
            self.target.remove(id);
            self.group_epoch += 1;
        }
    }

    /// Recomputes the target assignment when the group epoch moved or subscribed topics grew.
    fn refresh_target(&mut self, topics: &TopicsView) {
        let subscribed: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|m| m.subscribed.iter())
            .collect();
        let seen: BTreeMap<Uuid, i32> = subscribed
            .iter()
            .filter_map(|t| topics.get(*t))
            .map(|&(id, n)| (id, n))
            .collect();
        if seen != self.topics_seen {
            self.topics_seen = seen;
            self.group_epoch += 1;
        }
        if self.assignment_epoch == self.group_epoch {
            return;
        }
        let subscriptions = self
            .members
            .values()
            .map(|m| {
                (
                    m.id.clone(),
                    m.subscribed
                        .iter()
                        .filter_map(|t| topics.get(t))
                        .map(|(id, _)| *id)
                        .collect(),
                )
            })
            .collect();
        let current = self
            .members
            .values()
            .map(|m| (m.id.clone(), m.assigned.clone()))
            .collect();
        self.target = assignor::assign(&self.assignor, &subscriptions, &current, &self.topics_seen);
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves one member towards its target: first revoke what it must give up, then, once
    /// released, take the epoch and whatever of the target no one else still holds.
    fn reconcile(&mut self, member_id: &str, now: Instant) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let held_by_others: BTreeSet<TopicPartition> = self
            .members
            .values()
            .filter(|m| m.id != member_id)
            .flat_map(|m| m.assigned.iter().chain(m.revoking.iter()).copied())
            .collect();
        let epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        let revoke: BTreeSet<TopicPartition> = m.assigned.difference(&target).copied().collect();
        if !revoke.is_empty() {
            m.assigned.retain(|tp| target.contains(tp));
            m.revoking.extend(revoke);
            m.revoke_deadline = Some(now + m.rebalance_timeout);
            return;
        }
        if !m.revoking.is_empty() {
            return;
        }
        if m.epoch != epoch {
            m.previous_epoch = m.epoch;
            m.epoch = epoch;
        }
        m.assigned.extend(
            target
                .iter()
                .filter(|tp| !held_by_others.contains(tp))
                .copied(),
        );
    }

    /// Members silent past `session_timeout`, or slower than their rebalance timeout to
    /// release partitions, are removed. Returns their ids.
    pub fn tick(&mut self, now: Instant, session_timeout: Duration) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                now.saturating_duration_since(m.last_seen) > session_timeout
                    || m.revoke_deadline.is_some_and(|d| now > d)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            self.remove(id);
        }
        gone
    }

    pub fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }

    /// The partitions the assignor wants `member` to end up with.
    pub fn target_of(&self, member: &str) -> BTreeSet<TopicPartition> {
        self.target.get(member).cloned().unwrap_or_default()
    }

    /// OffsetCommit from a member must carry its current epoch.
    pub fn check_commit(&self, member_id: &str, epoch: i32) -> Result<(), ResponseError> {
        let m = self
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if epoch != m.epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(member: &str, epoch: i32, owned: Option<&BTreeSet<TopicPartition>>) -> Heartbeat {
        Heartbeat {
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            rebalance_timeout: (epoch == JOIN_EPOCH).then_some(Duration::from_secs(30)),
            subscribed_topics: (epoch == JOIN_EPOCH).then(|| vec!["t".to_string()]),
            server_assignor: None,
            owned: owned.cloned(),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        }
    }

    #[test]
    fn partitions_move_only_after_their_old_owner_released_them() {
        let t0 = Instant::now();
        let tid = Uuid::new_v4();
        let topics = TopicsView::from([("t".to_string(), (tid, 4))]);
        let mut g = ConsumerGroup::new("g");
        let a = g.heartbeat(hb("a", JOIN_EPOCH, None), t0, &topics).unwrap();
        assert_eq!(a.assignment.as_ref().map(|s| s.len()), Some(4));
        let a_owned = a.assignment.clone().unwrap();
        // b joins: it gets an epoch but nothing yet, since a still owns everything.
        let b = g.heartbeat(hb("b", JOIN_EPOCH, None), t0, &topics).unwrap();
        assert_eq!(b.assignment.as_ref().map(|s| s.len()), Some(0));
        // a's next heartbeat revokes two partitions.
        let a2 = g
            .heartbeat(hb("a", a.member_epoch, Some(&a_owned)), t0, &topics)
            .unwrap();
        assert_eq!(a2.assignment.as_ref().map(|s| s.len()), Some(2));
        assert_eq!(
            a2.member_epoch, a.member_epoch,
            "epoch waits for the revocation"
        );
        // b still gets nothing while a has not confirmed.
        let b2 = g
            .heartbeat(hb("b", b.member_epoch, Some(&BTreeSet::new())), t0, &topics)
            .unwrap();
        assert_eq!(b2.assignment.as_ref().map(|s| s.len()), Some(0));
        // a confirms; it moves to the new epoch; b then receives the freed partitions.
        let a3 = g
            .heartbeat(
                hb("a", a2.member_epoch, a2.assignment.as_ref()),
                t0,
                &topics,
            )
            .unwrap();
        assert!(a3.member_epoch > a.member_epoch);
        let b3 = g
            .heartbeat(
                hb("b", b2.member_epoch, Some(&BTreeSet::new())),
                t0,
                &topics,
            )
            .unwrap();
        assert_eq!(b3.assignment.as_ref().map(|s| s.len()), Some(2));
        let overlap: BTreeSet<_> = a3
            .assignment
            .unwrap()
            .intersection(&b3.assignment.unwrap())
            .copied()
            .collect();
        assert!(overlap.is_empty());
        assert_eq!(g.state_name(), "Stable");
    }

    #[test]
    fn stale_epochs_are_fenced_and_leaving_frees_partitions() {
        let t0 = Instant::now();
        let topics = TopicsView::from([("t".to_string(), (Uuid::new_v4(), 2))]);
        let mut g = ConsumerGroup::new("g");
        let a = g.heartbeat(hb("a", JOIN_EPOCH, None), t0, &topics).unwrap();
        assert_eq!(
            g.heartbeat(hb("a", a.member_epoch + 5, None), t0, &topics),
            Err(ResponseError::FencedMemberEpoch)
        );
        assert_eq!(
            g.heartbeat(hb("zz", 3, None), t0, &topics),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(g.check_commit("a", a.member_epoch), Ok(()));
        assert_eq!(
            g.check_commit("a", a.member_epoch - 1),
            Err(ResponseError::StaleMemberEpoch)
        );
        let left = g
            .heartbeat(hb("a", LEAVE_EPOCH, None), t0, &topics)
            .unwrap();
        assert_eq!(left.member_epoch, LEAVE_EPOCH);
        assert!(g.is_empty());
    }

    #[test]
    fn an_unchanged_rebalance_timeout_keeps_the_one_given_at_join() {
        // The Java client sends the timeout when joining and -1 (unchanged) afterwards; a
        // revocation must still get the full timeout to be acknowledged.
        let t0 = Instant::now();
        let topics = TopicsView::from([("t".to_string(), (Uuid::new_v4(), 2))]);
        let mut g = ConsumerGroup::new("g");
        let a = g.heartbeat(hb("a", JOIN_EPOCH, None), t0, &topics).unwrap();
        let owned = a.assignment.clone().unwrap();
        g.heartbeat(hb("a", a.member_epoch, Some(&owned)), t0, &topics)
            .unwrap();
        g.heartbeat(hb("b", JOIN_EPOCH, None), t0, &topics).unwrap();
        let revoking = g
            .heartbeat(hb("a", a.member_epoch, Some(&owned)), t0, &topics)
            .unwrap();
        assert_eq!(revoking.assignment.map(|s| s.len()), Some(1));
        assert!(g
            .tick(t0 + Duration::from_secs(5), Duration::from_secs(45))
            .is_empty());
        assert_eq!(
            g.tick(t0 + Duration::from_secs(31), Duration::from_secs(45)),
            vec!["a".to_string()]
        );
    }

    #[test]
    fn silent_members_expire() {
        let t0 = Instant::now();
        let topics = TopicsView::from([("t".to_string(), (Uuid::new_v4(), 2))]);
        let mut g = ConsumerGroup::new("g");
        g.heartbeat(hb("a", JOIN_EPOCH, None), t0, &topics).unwrap();
        assert!(g
            .tick(t0 + Duration::from_secs(1), Duration::from_secs(45))
            .is_empty());
        assert_eq!(
            g.tick(t0 + Duration::from_secs(46), Duration::from_secs(45)),
            vec!["a".to_string()]
        );
    }
}
