//! This broker's session with the active controller, as the broker itself can tell.
//!
//! The controller fences a broker it has not heard from for `broker.session.timeout.ms` and
//! moves its leaderships away. A broker cut off from the controller cannot see that
//! decision, so it keeps its own clock: a heartbeat counts from the moment it was *sent*
//! (the controller received it later, so the broker's deadline never falls after the
//! controller's), once acknowledged by a leader that a quorum still follows (the ack says
//! how long ago the quorum last answered it) and once this broker's metadata has caught up
//! with the leader's (so it has applied every decision made before the answer).
//!
//! A broker whose session has lapsed gives up the leaderships that can no longer be backed
//! by their followers (`replication.rs`), so clients are sent elsewhere at once instead of
//! waiting out their request timeouts against a deposed leader.
use std::time::Duration;

use parking_lot::Mutex;
use spate_meta::HeartbeatAck;
use tokio::time::Instant;

#[derive(Debug)]
pub struct ControllerSession {
    timeout: Duration,
    state: Mutex<SessionState>,
}

#[derive(Debug)]
struct SessionState {
    /// When the newest heartbeat that counts was sent (or the session began).
    confirmed: Instant,
    /// An acknowledged heartbeat waiting for this broker's metadata to catch up:
    /// (counts from, metadata offset needed).
    waiting: Option<(Instant, u64)>,
}

impl ControllerSession {
    /// A session that starts now (registration), lasting `timeout` without heartbeats.
    pub fn new(timeout: Duration, now: Instant) -> Self {
        Self {
            timeout,
            state: Mutex::new(SessionState {
                confirmed: now,
                waiting: None,
            }),
        }
    }

    /// A heartbeat sent at `sent` was acknowledged with `ack`; `applied` is this broker's
    /// metadata offset now.
    pub fn acknowledged(&self, sent: Instant, ack: HeartbeatAck, applied: u64) {
        let quorum_ack = Duration::from_millis(ack.millis_since_quorum_ack);
        let counts_from = sent.checked_sub(quorum_ack).unwrap_or(sent);
        let mut s = self.state.lock();
        s.waiting = Some((counts_from, ack.metadata_offset));
        s.catch_up(applied);
    }

    /// This broker's metadata reached `applied`.
    pub fn applied(&self, applied: u64) {
        self.state.lock().catch_up(applied);
    }

    /// Does the broker still have its session at `now`?
    pub fn alive(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.state.lock().confirmed) <= self.timeout
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl SessionState {
    fn catch_up(&mut self, applied: u64) {
        if let Some((from, needed)) = self.waiting {
            if applied >= needed {
                self.confirmed = self.confirmed.max(from);
                self.waiting = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(metadata_offset: u64, millis_since_quorum_ack: u64) -> HeartbeatAck {
        HeartbeatAck {
            metadata_offset,
            millis_since_quorum_ack,
        }
    }

    #[test]
    fn a_session_lapses_a_timeout_after_the_last_counted_heartbeat_was_sent() {
        let t0 = Instant::now();
        let s = ControllerSession::new(Duration::from_secs(3), t0);
        assert!(s.alive(t0 + Duration::from_secs(3)));
        assert!(!s.alive(t0 + Duration::from_millis(3001)));
        // Sent at 2 s, answered at 2.5 s: counts from 2 s.
        s.acknowledged(t0 + Duration::from_secs(2), ack(10, 0), 10);
        assert!(s.alive(t0 + Duration::from_secs(5)));
        assert!(!s.alive(t0 + Duration::from_millis(5001)));
    }

    #[test]
    fn a_heartbeat_counts_once_the_metadata_caught_up_with_the_controller() {
        let t0 = Instant::now();
        let s = ControllerSession::new(Duration::from_secs(3), t0);
        s.acknowledged(t0 + Duration::from_secs(2), ack(20, 0), 15);
        assert!(!s.alive(t0 + Duration::from_secs(4)), "not caught up yet");
        s.applied(19);
        assert!(!s.alive(t0 + Duration::from_secs(4)));
        s.applied(20);
        assert!(s.alive(t0 + Duration::from_secs(4)));
    }

    #[test]
    fn a_leader_without_its_quorum_keeps_no_session_alive() {
        let t0 = Instant::now();
        let s = ControllerSession::new(Duration::from_secs(3), t0);
        // A deposed leader still answers, but its quorum last acknowledged it 4 s ago.
        let sent = t0 + Duration::from_secs(5);
        s.acknowledged(sent, ack(10, 4_000), 10);
        assert!(!s.alive(sent));
        // An older confirmation is never moved back.
        s.acknowledged(t0 + Duration::from_secs(2), ack(10, 0), 10);
        s.acknowledged(t0 + Duration::from_secs(1), ack(10, 0), 10);
        assert!(s.alive(t0 + Duration::from_secs(5)));
    }
}
