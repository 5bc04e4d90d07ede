//! Broker liveness and failover.
//!
//! - **Heartbeats** (`quorum.rs`): every broker reports `(id, incarnation, metadata offset)` to
//!   the active controller (the raft leader) every `broker.heartbeat.interval.ms` over the
//!   metadata quorum's gRPC channel; the controller keeps the last one per broker in memory.
//! - **Controller** ([`run`], acting only on the raft leader): a registered, unfenced broker
//!   not heard from for `broker.session.timeout.ms` is fenced (`FenceBroker`: out of every ISR,
//!   its leaderships move to eligible ISR members). A fenced broker that heartbeats again with
//!   the same incarnation and has applied the metadata log up to its registration is unfenced
//!   (`UnfenceBroker`). A controller that just took over knows no heartbeats: it gives every
//!   broker a full session from that moment (and every new registration one from when it
//!   first sees it) before fencing. With `auto.leader.rebalance.enable`, every
//!   `leader.imbalance.check.interval.seconds` it moves leadership back to preferred replicas
//!   that are eligible ISR members (`ElectPreferredLeaders`), as Kafka's auto rebalance does.
//! - **Reassignments**: every tick the controller completes reassignments whose new replicas
//!   have all joined the ISR (`reassignment.rs`).
//! - **Controlled shutdown** ([`controlled_shutdown`]): the broker proposes `SetShuttingDown`
//!   (leaderships move away, it leaves every ISR) and waits until its metadata shows it leads
//!   nothing, so that stopping loses nothing acknowledged and clients move on at once.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use spate_meta::{ClusterMetadata, ElectionScope, MetaRequest, NO_LEADER};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;

use crate::cluster::Quorum;
use crate::config::BrokerConfig;

/// The controller's in-memory view of broker liveness; reset when it loses leadership.
#[derive(Default)]
struct Liveness {
    /// When this node (last) became the controller.
    since: Option<Instant>,
    /// When each registration (broker id, incarnation) was first seen by this controller.
    first_seen: HashMap<(i32, Uuid), Instant>,
    /// When preferred leaders were last checked.
    last_rebalance: Option<Instant>,
}

/// What the controller decided in one tick.
#[derive(Debug, Default, PartialEq, Eq)]
struct Decisions {
    fence: Vec<i32>,
    unfence: Vec<i32>,
}

impl Liveness {
    /// Fencing and unfencing decisions for `md` at `now`, given the heartbeats received.
    fn decide(
        &mut self,
        md: &ClusterMetadata,
        heartbeats: &HashMap<i32, (spate_meta::BrokerHeartbeat, Instant)>,
        session: Duration,
        now: Instant,
    ) -> Decisions {
        let since = *self.since.get_or_insert(now);
        self.first_seen.retain(|(id, incarnation), _| {
            md.brokers
                .get(id)
                .is_some_and(|b| b.incarnation == *incarnation)
        });
        let mut out = Decisions::default();
        for b in md.brokers.values() {
            let first = *self.first_seen.entry((b.id, b.incarnation)).or_insert(now);
            let heartbeat = heartbeats
                .get(&b.id)
                .filter(|(h, _)| h.incarnation == b.incarnation);
            let last_seen = heartbeat
                .map_or(first, |(_, at)| (*at).max(first))
                .max(since);
            if !b.fenced {
                if now.saturating_duration_since(last_seen) > session {
                    out.fence.push(b.id);
                }
            } else if !b.shutting_down {
                let alive_and_caught_up = heartbeat.is_some_and(|(h, at)| {
                    now.saturating_duration_since(*at) <= session && h.metadata_offset >= b.epoch
                });
                if alive_and_caught_up {
                    out.unfence.push(b.id);
                }
            }
        }
        out
    }
}

/// Partitions whose preferred (first) replica is an eligible ISR member but does not lead.
fn imbalanced(md: &ClusterMetadata) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for (name, t) in &md.topics {
        for (i, p) in t.partitions.iter().enumerate() {
            let Some(&preferred) = p.replicas.first() else {
                continue;
            };
            if p.leader != preferred && p.isr.contains(&preferred) && md.is_eligible(preferred) {
                if let Ok(i) = i32::try_from(i) {
                    out.push((name.clone(), i));
                }
            }
        }
    }
    out
}

/// Runs the controller's liveness duties while this node is the raft leader, until shutdown.
/// Does nothing on a single node.
pub async fn run(q: Arc<Quorum>, config: Arc<BrokerConfig>, mut shutdown: watch::Receiver<bool>) {
    let session = Duration::from_millis(config.broker_session_timeout_ms);
    // Fine enough that a fence lands within an eighth of a session of its deadline.
    let every = Duration::from_millis(config.broker_heartbeat_interval_ms)
        .min(session / 8)
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut state = Liveness::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = control(&q, &config, session, &mut state) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One controller tick.
async fn control(q: &Quorum, config: &BrokerConfig, session: Duration, state: &mut Liveness) {
    if !q.is_controller() {
        *state = Liveness::default();
        return;
    }
    let now = Instant::now();
    let md = q.metadata();
    let decisions = state.decide(&md, &q.heartbeats(), session, now);
    for id in decisions.fence {
        tracing::warn!(
            broker = id,
            session_ms = config.broker_session_timeout_ms,
            "no heartbeat within the session timeout: fencing the broker"
        );
        if let Err(e) = q.propose_idempotent(MetaRequest::FenceBroker { id }).await {
            tracing::warn!(broker = id, "fencing failed: {}", e.message);
        }
    }
    for id in decisions.unfence {
        tracing::info!(
            broker = id,
            "heartbeating and caught up again: unfencing the broker"
        );
        if let Err(e) = q
            .propose_idempotent(MetaRequest::UnfenceBroker { id })
            .await
        {
            tracing::warn!(broker = id, "unfencing failed: {}", e.message);
        }
    }
    // Backstop for reassignments whose leader did not complete them (`reassignment.rs`).
    super::reassignment::complete_caught_up(q).await;
    if !config.auto_leader_rebalance {
        return;
    }
    let interval = Duration::from_millis(config.leader_imbalance_check_interval_ms);
    // As in Kafka, the first check comes one interval after taking over.
    let last = *state.last_rebalance.get_or_insert(now);
    if now.saturating_duration_since(last) < interval {
        return;
    }
    state.last_rebalance = Some(now);
    let partitions = imbalanced(&q.metadata());
    if partitions.is_empty() {
        return;
    }
    let request = MetaRequest::ElectPreferredLeaders {
        scope: ElectionScope::Partitions(partitions),
    };
    match q.propose(request).await {
        Ok(spate_meta::MetaResponse::Elections(results)) => {
            for r in results.iter().filter(|r| r.result.is_ok()) {
                tracing::info!(topic = %r.topic, partition = r.partition, leader = ?r.result, "leadership back to the preferred replica");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::debug!("preferred leader election failed: {}", e.message),
    }
}

/// Does `broker` lead any partition in `md`?
pub fn leads_anything(md: &ClusterMetadata, broker: i32) -> bool {
    broker != NO_LEADER
        && md
            .topics
            .values()
            .any(|t| t.partitions.iter().any(|p| p.leader == broker))
}

/// Controlled shutdown: asks the controller to move this broker's leaderships away and waits
/// (up to `timeout`) until its metadata shows it leads nothing. Returns whether it got there.
pub async fn controlled_shutdown(q: &Quorum, timeout: Duration) -> bool {
    let me = q.broker_id;
    let deadline = Instant::now() + timeout;
    let proposed = tokio::time::timeout_at(
        deadline,
        q.propose_idempotent(MetaRequest::SetShuttingDown { id: me }),
    )
    .await;
    match proposed {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!("controlled shutdown refused: {}", e.message);
            return false;
        }
        Err(_) => {
            tracing::warn!("controlled shutdown: no controller answered within {timeout:?}");
            return false;
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let done = q.wait_for(left, |md| !leads_anything(md, me)).await;
    if done {
        tracing::info!("controlled shutdown: this broker leads no partition any more");
    } else {
        tracing::warn!("controlled shutdown: still leading partitions after {timeout:?}");
    }
    done
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
    use spate_meta::{BrokerHeartbeat, BrokerRegistration, PartitionState, TopicMetadata};

    use super::*;

    fn registration(id: i32, incarnation: Uuid, epoch: u64, fenced: bool) -> BrokerRegistration {
        BrokerRegistration {
            id,
            incarnation,
            epoch,
            host: "127.0.0.1".into(),
            port: 9092,
            listeners: vec![],
            rack: None,
            fenced,
            shutting_down: false,
        }
    }

    fn heartbeat(
        id: i32,
        incarnation: Uuid,
        offset: u64,
        at: Instant,
    ) -> (i32, (BrokerHeartbeat, Instant)) {
        let h = BrokerHeartbeat {
            broker_id: id,
            incarnation,
            metadata_offset: offset,
        };
        (id, (h, at))
    }

    #[test]
    fn silent_brokers_are_fenced_after_a_full_session_and_unfenced_when_back() {
        let session = Duration::from_millis(1500);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut md = ClusterMetadata::default();
        md.brokers.insert(1, registration(1, a, 5, false));
        md.brokers.insert(2, registration(2, b, 7, false));
        let mut live = Liveness::default();
        let t0 = Instant::now();
        // A new controller knows no heartbeats: nobody is fenced within the first session.
        let none = HashMap::new();
        assert_eq!(live.decide(&md, &none, session, t0), Decisions::default());
        let t1 = t0 + Duration::from_millis(1400);
        assert_eq!(live.decide(&md, &none, session, t1), Decisions::default());
        // Broker 1 heartbeats, broker 2 stays silent past the session.
        let hbs: HashMap<_, _> = [heartbeat(1, a, 10, t1)].into_iter().collect();
        let t2 = t0 + Duration::from_millis(1600);
        let d = live.decide(&md, &hbs, session, t2);
        assert_eq!((d.fence, d.unfence), (vec![2], vec![]));
        // Fenced, broker 2 heartbeats again: unfenced only once caught up to its epoch (7),
        // and only for its current incarnation.
        md.brokers.get_mut(&2).unwrap().fenced = true;
        let stale: HashMap<_, _> = [heartbeat(2, Uuid::new_v4(), 9, t2)].into_iter().collect();
        assert!(live.decide(&md, &stale, session, t2).unfence.is_empty());
        let behind: HashMap<_, _> = [heartbeat(2, b, 6, t2)].into_iter().collect();
        assert!(live.decide(&md, &behind, session, t2).unfence.is_empty());
        let back: HashMap<_, _> = [heartbeat(1, a, 10, t2), heartbeat(2, b, 7, t2)]
            .into_iter()
            .collect();
        assert_eq!(live.decide(&md, &back, session, t2).unfence, vec![2]);
        // A new registration gets a full session from when the controller first sees it.
        let c = Uuid::new_v4();
        md.brokers.insert(3, registration(3, c, 20, false));
        let t3 = t0 + Duration::from_secs(10);
        let hbs: HashMap<_, _> = [heartbeat(1, a, 20, t3), heartbeat(2, b, 20, t3)]
            .into_iter()
            .collect();
        assert!(live.decide(&md, &hbs, session, t3).fence.is_empty());
        let t4 = t3 + Duration::from_millis(1600);
        let hbs: HashMap<_, _> = [heartbeat(1, a, 20, t4), heartbeat(2, b, 20, t4)]
            .into_iter()
            .collect();
        assert_eq!(live.decide(&md, &hbs, session, t4).fence, vec![3]);
    }

    #[test]
    fn imbalance_needs_the_preferred_replica_eligible_and_in_sync() {
        let mut md = ClusterMetadata::default();
        for id in 1..=3 {
            md.brokers
                .insert(id, registration(id, Uuid::new_v4(), 1, false));
        }
        let mut p = PartitionState::new(vec![1, 2, 3]);
        p.change(2, vec![2, 3]);
        let topic = TopicMetadata {
            id: Uuid::new_v4(),
            configs: Default::default(),
            partitions: vec![p, PartitionState::new(vec![2, 3, 1])],
        };
        md.topics.insert("t".into(), topic);
        assert!(imbalanced(&md).is_empty(), "1 is not in the ISR");
        md.topics.get_mut("t").unwrap().partitions[0].change(2, vec![2, 3, 1]);
        assert_eq!(imbalanced(&md), vec![("t".to_string(), 0)]);
        md.brokers.get_mut(&1).unwrap().fenced = true;
        assert!(imbalanced(&md).is_empty(), "1 is fenced");
        assert!(leads_anything(&md, 2));
        assert!(!leads_anything(&md, 1));
    }
}
