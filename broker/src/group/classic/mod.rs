//! One consumer group under the classic rebalance protocol: membership, generations, the
//! join/sync barrier, heartbeats and session expiry.
//!
//! Pure state: time comes in as arguments and waiting requests are parked as oneshot senders,
//! answered when the state machine gets there. The coordinator drives it from requests and a
//! periodic tick. The join phase and rebalancing are in `join.rs`, the sync phase (handing
//! out the leader's assignment once it is stored) in `sync.rs`; this file holds the group,
//! its members, and heartbeats, leaving and timers.
mod join;
mod sync;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::codec::{GroupValue, MemberValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The names Kafka's tools print.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// The answer a JoinGroup request waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, instance id, metadata): only the leader gets the member list.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// The leader must not compute a new assignment (a static leader's restart).
    pub skip_assignment: bool,
}

impl JoinOutcome {
    pub fn error(error: ResponseError, member_id: &str) -> Self {
        Self {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: vec![],
            skip_assignment: false,
        }
    }
}

/// The answer a SyncGroup request waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error: ResponseError) -> Self {
        Self {
            error: Some(error),
            protocol_type: None,
            protocol: None,
            assignment: Bytes::new(),
        }
    }
}

pub type JoinWaiter = oneshot::Sender<JoinOutcome>;
pub type SyncWaiter = oneshot::Sender<SyncOutcome>;

/// What a JoinGroup asks for.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member first gets its id back with MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
}

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_heartbeat: Instant,
    join_waiter: Option<JoinWaiter>,
    sync_waiter: Option<SyncWaiter>,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED and not yet used, with their expiry.
    pending: BTreeMap<String, Instant>,
    /// When the join phase must end even if members are missing.
    rebalance_deadline: Option<Instant>,
    /// The join phase of a group that was empty ends no earlier than this
    /// (`group.initial.rebalance.delay.ms`), so a burst of starting consumers lands in one
    /// generation.
    join_not_before: Option<Instant>,
    /// When the leader must have sent its assignment.
    sync_deadline: Option<Instant>,
    /// Set when something changed that the coordinator should persist.
    pub dirty: bool,
    /// The leader's assignment is being stored: the group stays CompletingRebalance, and
    /// nobody gets an assignment, until the coordinator reports it durable (as Kafka's
    /// storeGroup callback), so a coordinator failover never forgets a handed-out generation.
    storing: bool,
    next_member: u64,
}

impl Group {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            rebalance_deadline: None,
            join_not_before: None,
            sync_deadline: None,
            dirty: false,
            storing: false,
            next_member: 0,
        }
    }

    /// A group as loaded from its `__consumer_offsets` record: Stable with its members when it
    /// has members and a protocol, else Empty. Each member's session starts at `now`, so a
    /// member that never comes back expires after its session timeout as usual.
    pub fn restored(id: &str, v: GroupValue, now: Instant) -> Self {
        let mut g = Self::new(id);
        g.generation = v.generation;
        g.protocol_type = Some(v.protocol_type).filter(|s| !s.is_empty());
        let Some(protocol) = v.protocol.filter(|_| !v.members.is_empty()) else {
            return g;
        };
        let millis = |ms: i32| Duration::from_millis(ms.max(0) as u64);
        for m in v.members {
            g.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: millis(m.session_timeout_ms),
                    rebalance_timeout: millis(m.rebalance_timeout_ms),
                    // Kafka keeps only the chosen protocol's metadata, and so restores only it.
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    last_heartbeat: now,
                    join_waiter: None,
                    sync_waiter: None,
                },
            );
        }
        g.protocol = Some(protocol);
        g.leader = v.leader.filter(|l| g.members.contains_key(l));
        g.state = GroupState::Stable;
        g
    }

    /// The group's `__consumer_offsets` value.
    pub fn value(&self, now_ms: i64) -> GroupValue {
        let protocol = self.protocol.as_deref().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: now_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: duration_ms(m.rebalance_timeout),
                    session_timeout_ms: duration_ms(m.session_timeout),
                    subscription: m.metadata_for(protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    fn new_member_id(&mut self, client_id: &str) -> String {
        self.next_member += 1;
        format!("{client_id}-{}", uuid::Uuid::new_v4())
    }

    fn member_by_instance(&self, instance: &str) -> Option<String> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance))
            .map(|m| m.id.clone())
    }

    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id {
            match self.member_by_instance(instance) {
                Some(id) if id != member_id => return Err(ResponseError::FencedInstanceId),
                _ => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        self.check_member(member_id, instance_id, generation)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heartbeat = now;
        }
        match self.state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// Removes a member that left; the rest rebalance.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> Result<(), ResponseError> {
        let id = match (member_id.is_empty(), instance_id) {
            (true, Some(instance)) => self
                .member_by_instance(instance)
                .ok_or(ResponseError::UnknownMemberId)?,
            (_, Some(instance)) => match self.member_by_instance(instance) {
                Some(id) if id == member_id => id,
                Some(_) => return Err(ResponseError::FencedInstanceId),
                None => return Err(ResponseError::UnknownMemberId),
            },
            (_, None) => member_id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            return Ok(());
        }
        if !self.members.contains_key(&id) {
            return Err(ResponseError::UnknownMemberId);
        }
        self.remove_member(&id, now);
        Ok(())
    }

    fn remove_member(&mut self, id: &str, now: Instant) {
        if let Some(mut m) = self.members.remove(id) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinOutcome::error(ResponseError::UnknownMemberId, id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncOutcome::error(ResponseError::UnknownMemberId));
            }
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, Duration::ZERO)
            }
            _ => {}
        }
        self.maybe_complete_join(now);
    }

    /// Timers: expired sessions, join phases past their deadline, leaders that never synced.
    /// Returns the ids of members removed for missing their session timeout.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
        self.pending.retain(|_, expiry| *expiry > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none()
                    && now.saturating_duration_since(m.last_heartbeat) > m.session_timeout
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            self.remove_member(id, now);
        }
        if self.storing && self.sync_deadline.is_some_and(|t| now >= t) {
            // The coordinator never reported the store (its request was dropped).
            let generation = self.generation;
            self.assignment_store_failed(generation, ResponseError::CoordinatorNotAvailable, now);
        }
        if self.state == GroupState::CompletingRebalance
            && self.sync_deadline.is_some_and(|t| now >= t)
        {
            // The leader never sent assignments: start over without whoever did not sync.
            let missing: Vec<String> = self
                .members
                .values()
                .filter(|m| m.sync_waiter.is_none())
                .map(|m| m.id.clone())
                .collect();
            for id in missing {
                if let Some(m) = self.members.remove(&id) {
                    drop(m);
                }
            }
            self.prepare_rebalance(now, Duration::ZERO);
        }
        self.maybe_complete_join(now);
        expired
    }

    /// Marks the group deleted, failing anyone waiting.
    pub fn kill(&mut self) {
        for (id, mut m) in std::mem::take(&mut self.members) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinOutcome::error(
                    ResponseError::CoordinatorNotAvailable,
                    &id,
                ));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncOutcome::error(ResponseError::CoordinatorNotAvailable));
            }
        }
        self.state = GroupState::Dead;
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

fn duration_ms(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: Duration = Duration::from_secs(10);

    fn req(member: &str, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: SESSION,
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(p.to_string())))
                .collect(),
            require_known_member_id: true,
        }
    }

    fn join(g: &mut Group, r: JoinRequest, now: Instant) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        g.join(r, tx, now, Duration::ZERO);
        rx
    }

    /// A SyncGroup whose assignment (if it brings one) is stored at once, as on a
    /// single-replica coordinator.
    fn sync(
        g: &mut Group,
        member: &str,
        gen: i32,
        a: Vec<(String, Bytes)>,
        now: Instant,
    ) -> oneshot::Receiver<SyncOutcome> {
        let rx = sync_unstored(g, member, gen, a, now);
        g.assignment_stored(gen);
        rx
    }

    fn sync_unstored(
        g: &mut Group,
        member: &str,
        gen: i32,
        a: Vec<(String, Bytes)>,
        now: Instant,
    ) -> oneshot::Receiver<SyncOutcome> {
        let (tx, rx) = oneshot::channel();
        g.sync(member, None, gen, a, tx, now);
        rx
    }

    /// Joins a new dynamic member the v4+ way (MEMBER_ID_REQUIRED, then rejoin).
    fn new_member(g: &mut Group, now: Instant) -> (String, oneshot::Receiver<JoinOutcome>) {
        let first = join(g, req("", &["range"]), now).try_recv().unwrap();
        assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
        let id = first.member_id.clone();
        (id.clone(), join(g, req(&id, &["range"]), now))
    }

    #[test]
    fn two_members_form_one_generation_and_get_their_assignments() {
        let t0 = Instant::now();
        let mut g = Group::new("g");
        let (a, mut ja) = new_member(&mut g, t0);
        // a alone completes at once (no initial delay in this test).
        let out_a = ja.try_recv().unwrap();
        assert_eq!((out_a.generation, out_a.leader.as_str()), (1, a.as_str()));
        assert_eq!(out_a.members.len(), 1);
        // b arrives: rebalance; a must rejoin before generation 2 forms.
        let (b, mut jb) = new_member(&mut g, t0);
        assert!(jb.try_recv().is_err());
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(
            g.heartbeat(&a, None, 1, t0),
            Err(ResponseError::RebalanceInProgress)
        );
        let mut ja = join(&mut g, req(&a, &["range"]), t0);
        let (oa, ob) = (ja.try_recv().unwrap(), jb.try_recv().unwrap());
        assert_eq!((oa.generation, ob.generation), (2, 2));
        assert_eq!(oa.leader, a);
        assert_eq!(oa.members.len(), 2);
        assert!(ob.members.is_empty());
        // The follower syncs first and waits for the leader's assignment.
        let mut sb = sync_unstored(&mut g, &b, 2, vec![], t0);
        assert!(sb.try_recv().is_err());
        let mut sa = sync_unstored(
            &mut g,
            &a,
            2,
            vec![(a.clone(), Bytes::from("A")), (b.clone(), Bytes::from("B"))],
            t0,
        );
        // Nobody gets an assignment before it is stored.
        assert!(g.storing() && g.dirty);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        assert!(sa.try_recv().is_err() && sb.try_recv().is_err());
        g.assignment_stored(1);
        assert!(
            sa.try_recv().is_err(),
            "another generation's store is ignored"
        );
        g.assignment_stored(2);
        assert_eq!(sa.try_recv().unwrap().assignment, Bytes::from("A"));
        assert_eq!(sb.try_recv().unwrap().assignment, Bytes::from("B"));
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.heartbeat(&b, None, 2, t0), Ok(()));
        assert_eq!(
            g.heartbeat(&b, None, 1, t0),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            g.heartbeat("nobody", None, 2, t0),
            Err(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn a_member_that_stops_heartbeating_is_removed_after_its_session_timeout() {
        let t0 = Instant::now();
        let mut g = Group::new("g");
        let (a, _) = new_member(&mut g, t0);
        drop(sync(&mut g, &a, 1, vec![(a.clone(), Bytes::from("A"))], t0));
        let (b, _jb) = new_member(&mut g, t0);
        let _ja = join(&mut g, req(&a, &["range"]), t0);
        drop(sync(&mut g, &a, 2, vec![], t0));
        drop(sync(&mut g, &b, 2, vec![], t0));
        assert_eq!(g.state, GroupState::Stable);
        // b keeps heartbeating; a goes silent.
        let later = t0 + SESSION / 2;
        g.heartbeat(&b, None, 2, later).unwrap();
        let expired = g.tick(t0 + SESSION + Duration::from_millis(1));
        assert_eq!(expired, vec![a.clone()]);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        let mut jb = join(
            &mut g,
            req(&b, &["range"]),
            t0 + SESSION + Duration::from_millis(2),
        );
        let ob = jb.try_recv().unwrap();
        assert_eq!((ob.generation, ob.leader), (3, b.clone()));
    }

    #[test]
    fn leaving_triggers_a_rebalance_and_the_last_leave_empties_the_group() {
        let t0 = Instant::now();
        let mut g = Group::new("g");
        let (a, _) = new_member(&mut g, t0);
        drop(sync(&mut g, &a, 1, vec![], t0));
        g.leave(&a, None, t0).unwrap();
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.leave(&a, None, t0), Err(ResponseError::UnknownMemberId));
    }

    #[test]
    fn a_restarted_static_member_keeps_its_place_and_fences_the_old_one() {
        let t0 = Instant::now();
        let mut g = Group::new("g");
        let mut r = req("", &["range"]);
        r.instance_id = Some("i1".into());
        let first = join(&mut g, r.clone(), t0).try_recv().unwrap();
        let old = first.member_id.clone();
        drop(sync(
            &mut g,
            &old,
            1,
            vec![(old.clone(), Bytes::from("A"))],
            t0,
        ));
        // Same instance restarts with no member id.
        let again = join(&mut g, r, t0).try_recv();
        let new_id = g.member_by_instance("i1").unwrap();
        assert_ne!(new_id, old);
        assert_eq!(
            g.heartbeat(&old, Some("i1"), g.generation, t0),
            Err(ResponseError::FencedInstanceId)
        );
        // A restarted static leader with unchanged metadata keeps the generation and is told
        // not to reassign.
        let again = again.unwrap();
        assert_eq!(again.generation, 1);
        assert!(again.skip_assignment);
        assert_eq!(g.state, GroupState::Stable);
    }

    #[test]
    fn incompatible_protocols_are_refused() {
        let t0 = Instant::now();
        let mut g = Group::new("g");
        let (_a, _) = new_member(&mut g, t0);
        let out = join(&mut g, req("", &["roundrobin"]), t0)
            .try_recv()
            .unwrap();
        assert_eq!(out.error, Some(ResponseError::InconsistentGroupProtocol));
    }

    #[test]
    fn protocol_is_the_common_one_most_members_prefer() {
        let t0 = Instant::now();
        let mut g = Group::new("g");
        let dynamic = |protocols: &[&str]| {
            let mut r = req("", protocols);
            r.require_known_member_id = false;
            r
        };
        let mut ra = dynamic(&["cooperative-sticky", "range"]);
        let a = join(&mut g, ra.clone(), t0).try_recv().unwrap().member_id;
        // b and c join; a rejoins for the new generation.
        let mut jb = join(&mut g, dynamic(&["range", "cooperative-sticky"]), t0);
        let mut jc = join(
            &mut g,
            dynamic(&["range", "cooperative-sticky", "roundrobin"]),
            t0,
        );
        ra.member_id = a;
        let mut ja = join(&mut g, ra, t0);
        let outcomes = [
            ja.try_recv().unwrap(),
            jb.try_recv().unwrap(),
            jc.try_recv().unwrap(),
        ];
        // roundrobin is not common to all; range has two first-choice votes to one.
        for o in &outcomes {
            assert_eq!(o.protocol.as_deref(), Some("range"));
        }
    }
    #[test]
    fn a_failed_assignment_store_fails_the_syncs_and_rebalances() {
        let t0 = Instant::now();
        let mut g = Group::new("g");
        let (a, _) = new_member(&mut g, t0);
        let mut sa = sync_unstored(&mut g, &a, 1, vec![(a.clone(), Bytes::from("A"))], t0);
        g.assignment_store_failed(1, ResponseError::NotCoordinator, t0);
        assert_eq!(
            sa.try_recv().unwrap().error,
            Some(ResponseError::NotCoordinator)
        );
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert!(g.members[&a].assignment.is_empty());
        // The member rejoins and the next generation's store goes through.
        let joined = join(&mut g, req(&a, &["range"]), t0).try_recv().unwrap();
        assert_eq!(joined.generation, 2);
        let mut sa = sync(&mut g, &a, 2, vec![(a.clone(), Bytes::from("A2"))], t0);
        assert_eq!(sa.try_recv().unwrap().assignment, Bytes::from("A2"));
        assert_eq!(g.state, GroupState::Stable);
    }

    #[test]
    fn a_store_never_reported_fails_at_the_sync_deadline() {
        let t0 = Instant::now();
        let mut g = Group::new("g");
        let (a, _) = new_member(&mut g, t0);
        let mut sa = sync_unstored(&mut g, &a, 1, vec![], t0);
        // The member keeps heartbeating while it waits; the rebalance timeout is 30 s.
        for s in [8, 16, 24] {
            let t = t0 + Duration::from_secs(s);
            assert_eq!(g.heartbeat(&a, None, 1, t), Ok(()));
            assert!(g.tick(t).is_empty());
        }
        assert!(sa.try_recv().is_err());
        g.heartbeat(&a, None, 1, t0 + Duration::from_secs(30))
            .unwrap();
        g.tick(t0 + Duration::from_secs(31));
        assert_eq!(
            sa.try_recv().unwrap().error,
            Some(ResponseError::CoordinatorNotAvailable)
        );
        assert!(!g.storing());
    }

    #[test]
    fn a_restored_group_keeps_its_members_until_their_sessions_expire() {
        let t0 = Instant::now();
        let mut g = Group::new("g");
        let (a, _) = new_member(&mut g, t0);
        drop(sync(&mut g, &a, 1, vec![(a.clone(), Bytes::from("A"))], t0));
        assert!(g.dirty, "a completed sync is persisted");
        let value = g.value(0);
        assert_eq!(value.members.len(), 1);
        assert_eq!(value.members[0].subscription, Bytes::from("range"));

        // Loaded later, e.g. after a restart.
        let t1 = t0 + SESSION * 3;
        let mut r = Group::restored("g", value.clone(), t1);
        assert_eq!((r.state, r.generation), (GroupState::Stable, 1));
        assert_eq!(r.leader.as_deref(), Some(a.as_str()));
        assert_eq!(r.heartbeat(&a, None, 1, t1), Ok(()));
        let out = sync(&mut r, &a, 1, vec![], t1).try_recv().unwrap();
        assert_eq!((out.error, out.assignment), (None, Bytes::from("A")));
        assert_eq!(r.value(0), value);
        // Silent from now on: removed after its session timeout, leaving the group Empty.
        assert!(r.tick(t1 + SESSION).is_empty());
        assert_eq!(r.tick(t1 + SESSION * 2), vec![a.clone()]);
        assert_eq!(r.state, GroupState::Empty);
        assert!(r.dirty);

        let mut empty = value;
        empty.members.clear();
        let r = Group::restored("g", empty, t1);
        assert_eq!((r.state, r.generation), (GroupState::Empty, 1));
    }
}
