//! Broker liveness, as KRaft's `BrokerHeartbeat`: brokers report to the active controller (the
//! raft leader) every few seconds; the leader keeps the last report of each broker in memory.
//!
//! Nothing here is replicated: a new leader starts with an empty table, and the broker's
//! controller logic gives every broker a full session from the moment it took over before
//! fencing anyone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

use crate::types::NodeId;

/// One heartbeat of a broker process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeat {
    pub broker_id: i32,
    /// The process's registration incarnation: reports of an older incarnation are ignored.
    pub incarnation: Uuid,
    /// How far the broker has applied the metadata log (`ClusterMetadata::metadata_offset`):
    /// a fenced broker is unfenced only once this reaches its registration epoch.
    pub metadata_offset: u64,
}

/// The leader's answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HeartbeatReply {
    /// The receiver is the leader and recorded the heartbeat.
    Recorded(HeartbeatAck),
    /// The receiver is not the leader; try `leader` if known.
    NotLeader { leader: Option<(NodeId, String)> },
}

/// What the leader tells a broker whose heartbeat it recorded: enough for the broker to know
/// that it still has a session with a controller that has a quorum, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// The leader's applied metadata (`ClusterMetadata::metadata_offset`): a broker counts
    /// the heartbeat once its own metadata has caught up to this, so it has seen every
    /// decision (fencing, leader changes) the controller made before answering.
    pub metadata_offset: u64,
    /// How long ago a quorum of voters last acknowledged the leader: a deposed leader cut
    /// off from the others still thinks it leads, but this grows.
    pub millis_since_quorum_ack: u64,
}

impl HeartbeatAck {
    /// The ack of the leader whose raft metrics these are.
    pub fn from_metrics(
        m: &openraft::RaftMetrics<crate::types::NodeId, crate::types::Node>,
    ) -> Self {
        Self {
            metadata_offset: m.last_applied.map_or(0, |l| l.index),
            // A leader without a quorum ack yet was just elected by one.
            millis_since_quorum_ack: m.millis_since_quorum_ack.unwrap_or(0),
        }
    }
}

/// The last heartbeat of each broker and when it arrived, kept by the leader.
#[derive(Debug, Clone, Default)]
pub struct Heartbeats {
    by_broker: Arc<Mutex<HashMap<i32, (BrokerHeartbeat, Instant)>>>,
}

impl Heartbeats {
    pub fn record(&self, heartbeat: BrokerHeartbeat) {
        self.by_broker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(heartbeat.broker_id, (heartbeat, Instant::now()));
    }

    /// Every broker's last heartbeat with its arrival time.
    pub fn snapshot(&self) -> HashMap<i32, (BrokerHeartbeat, Instant)> {
        self.by_broker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
