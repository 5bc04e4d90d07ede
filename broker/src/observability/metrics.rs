//! Broker metrics, exported in Prometheus text format on `/metrics`.
//!
//! Counters move on the request path; gauges that describe state (log sizes, leaders,
//! consumer lag, partition health) are computed at scrape time from the registry and the
//! group coordinator, so they are never stale and cost nothing between scrapes.
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::cluster::{Quorum, Registry as Topics};
use crate::group::GroupCoordinator;

pub struct Metrics {
    registry: Registry,
    names: Vec<String>,
    pub requests: IntCounterVec,
    pub request_errors: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub bytes_in: IntCounterVec,
    pub bytes_out: IntCounterVec,
    pub records_in: IntCounterVec,
    pub records_out: IntCounterVec,
    pub connections: IntGauge,
    pub connections_total: IntCounter,
    pub authentications: IntCounterVec,
    pub authorization_denied: IntCounterVec,
    pub throttle_seconds: prometheus::CounterVec,
    pub fetch_purgatory: IntGauge,
    pub produce_purgatory: IntGauge,
    pub produce_append_seconds: Histogram,
    pub isr_shrinks: IntCounter,
    pub isr_expands: IntCounter,
    pub leader_step_downs: IntCounter,
    // Computed at scrape time.
    log_size: IntGaugeVec,
    log_end_offset: IntGaugeVec,
    leader_count: IntGauge,
    partition_count: IntGauge,
    under_replicated: IntGauge,
    offline: IntGauge,
    under_min_isr: IntGauge,
    active_controller: IntGauge,
    raft_term: IntGauge,
    raft_commit_index: IntGauge,
    raft_last_applied: IntGauge,
    raft_leader: IntGauge,
    groups: IntGaugeVec,
    group_members: IntGaugeVec,
    consumer_lag: IntGaugeVec,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

/// What a controller-only node exports.
const QUORUM_METRICS: &[&str] = &[
    "spate_active_controller",
    "spate_raft_term",
    "spate_raft_commit_index",
    "spate_raft_last_applied",
    "spate_raft_leader",
];

/// Latency buckets from 100 µs to 10 s: produce and fetch both land in range.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[allow(clippy::expect_used)] // metric definitions are static; a failure is a programming error caught by tests
impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "spate_request_duration_seconds",
                "Time to handle a request, by API",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["api"],
        )
        .expect("valid metric");
        r.register(Box::new(request_seconds.clone()))
            .expect("unique metric");
        let produce_append_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "spate_produce_append_duration_seconds",
                "Time to append one partition's batches to its log",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        r.register(Box::new(produce_append_seconds.clone()))
            .expect("unique metric");
        Self {
            requests: counter_vec(
                &r,
                "spate_requests_total",
                "Requests handled, by API",
                &["api"],
            ),
            request_errors: counter_vec(
                &r,
                "spate_request_errors_total",
                "Partition or resource level errors returned, by API and error",
                &["api", "error"],
            ),
            request_seconds,
            bytes_in: counter_vec(
                &r,
                "spate_bytes_in_total",
                "Record batch bytes appended by producers, by topic",
                &["topic"],
            ),
            bytes_out: counter_vec(
                &r,
                "spate_bytes_out_total",
                "Record batch bytes returned to fetchers, by topic",
                &["topic"],
            ),
            records_in: counter_vec(
                &r,
                "spate_records_in_total",
                "Records appended by producers, by topic",
                &["topic"],
            ),
            records_out: counter_vec(
                &r,
                "spate_records_out_total",
                "Records returned to fetchers, by topic",
                &["topic"],
            ),
            connections: gauge(&r, "spate_connections", "Open client connections"),
            connections_total: counter(
                &r,
                "spate_connections_accepted_total",
                "Client connections accepted",
            ),
            authentications: counter_vec(
                &r,
                "spate_authentications_total",
                "SASL logins and re-authentications, by listener, mechanism and result",
                &["listener", "mechanism", "result"],
            ),
            authorization_denied: counter_vec(
                &r,
                "spate_authorization_denied_total",
                "Requests or resources refused by the authorizer, by resource type",
                &["resource_type"],
            ),
            throttle_seconds: {
                let c = prometheus::CounterVec::new(
                    prometheus::Opts::new(
                        "spate_quota_throttle_seconds_total",
                        "Throttle time given to over-quota clients, by quota type",
                    ),
                    &["quota_type"],
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("unique metric");
                c
            },
            fetch_purgatory: gauge(
                &r,
                "spate_fetch_purgatory_size",
                "Fetch requests waiting for data (long-poll)",
            ),
            produce_purgatory: gauge(
                &r,
                "spate_produce_purgatory_size",
                "Produce requests waiting for replication (acks=all)",
            ),
            produce_append_seconds,
            isr_shrinks: counter(
                &r,
                "spate_isr_shrinks_total",
                "Replicas removed from an in-sync replica set",
            ),
            isr_expands: counter(
                &r,
                "spate_isr_expands_total",
                "Replicas added back to an in-sync replica set",
            ),
            leader_step_downs: counter(
                &r,
                "spate_leader_step_downs_total",
                "Leaderships given up without a controller session (followers silent too)",
            ),
            log_size: gauge_vec(
                &r,
                "spate_log_size_bytes",
                "Bytes on disk per partition",
                &["topic", "partition"],
            ),
            log_end_offset: gauge_vec(
                &r,
                "spate_log_end_offset",
                "Next offset per partition",
                &["topic", "partition"],
            ),
            leader_count: gauge(&r, "spate_leader_count", "Partitions this broker leads"),
            partition_count: gauge(&r, "spate_partition_count", "Partitions this broker hosts"),
            under_replicated: gauge(
                &r,
                "spate_under_replicated_partitions",
                "Led partitions whose ISR is smaller than their replica set",
            ),
            offline: gauge(
                &r,
                "spate_offline_partitions",
                "Partitions without a leader",
            ),
            under_min_isr: gauge(
                &r,
                "spate_under_min_isr_partitions",
                "Led partitions whose ISR is below min.insync.replicas",
            ),
            active_controller: gauge(
                &r,
                "spate_active_controller",
                "1 if this broker is the active controller",
            ),
            raft_term: gauge(
                &r,
                "spate_raft_term",
                "Metadata quorum: current raft term (cluster mode)",
            ),
            raft_commit_index: gauge(
                &r,
                "spate_raft_commit_index",
                "Metadata quorum: highest committed log index",
            ),
            raft_last_applied: gauge(
                &r,
                "spate_raft_last_applied",
                "Metadata quorum: highest log index applied to this broker's metadata",
            ),
            raft_leader: gauge(
                &r,
                "spate_raft_leader",
                "Metadata quorum: node id of the current leader (-1 if none)",
            ),
            groups: gauge_vec(
                &r,
                "spate_consumer_groups",
                "Consumer groups by state",
                &["state"],
            ),
            group_members: gauge_vec(
                &r,
                "spate_consumer_group_members",
                "Members per consumer group",
                &["group"],
            ),
            consumer_lag: gauge_vec(
                &r,
                "spate_consumer_group_lag",
                "Log end offset minus committed offset",
                &["group", "topic", "partition"],
            ),
            names: Vec::new(),
            registry: r,
        }
        .with_names()
    }

    /// Refreshes the scrape-time gauges and renders everything in the text format.
    fn with_names(mut self) -> Self {
        use prometheus::core::Collector;
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(self.requests.clone()),
            Box::new(self.request_errors.clone()),
            Box::new(self.request_seconds.clone()),
            Box::new(self.bytes_in.clone()),
            Box::new(self.bytes_out.clone()),
            Box::new(self.records_in.clone()),
            Box::new(self.records_out.clone()),
            Box::new(self.connections.clone()),
            Box::new(self.connections_total.clone()),
            Box::new(self.authentications.clone()),
            Box::new(self.authorization_denied.clone()),
            Box::new(self.throttle_seconds.clone()),
            Box::new(self.fetch_purgatory.clone()),
            Box::new(self.produce_purgatory.clone()),
            Box::new(self.produce_append_seconds.clone()),
            Box::new(self.isr_shrinks.clone()),
            Box::new(self.isr_expands.clone()),
            Box::new(self.leader_step_downs.clone()),
            Box::new(self.log_size.clone()),
            Box::new(self.log_end_offset.clone()),
            Box::new(self.leader_count.clone()),
            Box::new(self.partition_count.clone()),
            Box::new(self.under_replicated.clone()),
            Box::new(self.offline.clone()),
            Box::new(self.under_min_isr.clone()),
            Box::new(self.active_controller.clone()),
            Box::new(self.raft_term.clone()),
            Box::new(self.raft_commit_index.clone()),
            Box::new(self.raft_last_applied.clone()),
            Box::new(self.raft_leader.clone()),
            Box::new(self.groups.clone()),
            Box::new(self.group_members.clone()),
            Box::new(self.consumer_lag.clone()),
        ];
        self.names = collectors
            .iter()
            .flat_map(|c| c.desc())
            .map(|d| d.fq_name.clone())
            .collect();
        self
    }

    /// Every metric family this broker exports, whether or not it has samples yet (the
    /// dashboard test checks its queries against this).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn render(&self, topics: &Topics, groups: &GroupCoordinator) -> String {
        self.refresh(topics, groups);
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!("encoding metrics: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// A controller-only node's metrics: the quorum gauges alone, since it hosts no logs,
    /// groups or client connections.
    pub fn render_quorum(&self, q: &Quorum) -> String {
        self.refresh_quorum(q);
        let families: Vec<_> = self
            .registry
            .gather()
            .into_iter()
            .filter(|f| QUORUM_METRICS.contains(&f.name()))
            .collect();
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!("encoding metrics: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    fn refresh_quorum(&self, q: &Quorum) {
        self.active_controller.set(i64::from(q.is_controller()));
        let m = q.raft_metrics();
        let as_gauge = |v: Option<u64>| v.map_or(-1, |v| v as i64);
        self.raft_term.set(m.term as i64);
        self.raft_commit_index.set(as_gauge(m.commit_index));
        self.raft_last_applied.set(as_gauge(m.last_applied));
        self.raft_leader.set(as_gauge(m.current_leader));
    }

    fn refresh(&self, topics: &Topics, groups: &GroupCoordinator) {
        self.log_size.reset();
        self.log_end_offset.reset();
        let mut partitions = 0;
        let mut ends = std::collections::HashMap::new();
        for t in topics.topics() {
            for p in &t.partitions {
                partitions += 1;
                let idx = p.index.to_string();
                self.log_size
                    .with_label_values(&[t.meta.name.as_str(), idx.as_str()])
                    .set(p.size_bytes() as i64);
                if let Ok((_, end)) = p.offsets() {
                    self.log_end_offset
                        .with_label_values(&[t.meta.name.as_str(), idx.as_str()])
                        .set(end);
                    ends.insert((t.meta.name.clone(), p.index), end);
                }
            }
        }
        // Leadership is what the metadata says.
        self.partition_count.set(partitions);
        let leaders = topics
            .topics()
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter(|p| p.is_leader())
            .count() as i64;
        self.leader_count.set(leaders);
        // Led partitions whose ISR is short of the replica set, or of min.insync.replicas
        // (capped at the replica count, as acks=all is).
        let (mut under_replicated, mut under_min_isr) = (0, 0);
        for t in topics.topics() {
            let min_isr =
                crate::cluster::topic_config::min_insync_replicas(&t.meta.configs, &topics.config)
                    .max(1) as usize;
            for p in t.partitions.iter().filter(|p| p.is_leader()) {
                let (isr, replicas) = p.isr_counts();
                under_replicated += i64::from(isr < replicas);
                under_min_isr += i64::from(isr < min_isr.min(replicas));
            }
        }
        self.under_replicated.set(under_replicated);
        self.offline.set(0);
        self.under_min_isr.set(under_min_isr);
        self.refresh_quorum(topics.quorum());
        self.groups.reset();
        self.group_members.reset();
        self.consumer_lag.reset();
        for (group, _, state, _) in groups.list() {
            self.groups.with_label_values(&[state]).inc();
            let d = groups.describe(&group);
            self.group_members
                .with_label_values(&[group.as_str()])
                .set(d.members.len() as i64);
            for (topic, parts) in groups.fetch_offsets(&group, None).unwrap_or_default() {
                for (p, committed) in parts {
                    let (Some(c), Some(end)) = (committed, ends.get(&(topic.clone(), p))) else {
                        continue;
                    };
                    let idx = p.to_string();
                    self.consumer_lag
                        .with_label_values(&[group.as_str(), topic.as_str(), idx.as_str()])
                        .set((end - c.offset).max(0));
                }
            }
        }
    }
}

/// Records in a buffer of record batches, read from their headers (no decompression).
pub fn record_count(batches: &bytes::Bytes) -> u64 {
    let mut pos = 0usize;
    let mut n = 0u64;
    // baseOffset(8) batchLength(4) ... recordsCount at byte 57 of the batch.
    while pos + 61 <= batches.len() {
        let len = i32::from_be_bytes([
            batches[pos + 8],
            batches[pos + 9],
            batches[pos + 10],
            batches[pos + 11],
        ]);
        if len < 49 {
            break;
        }
        let count = i32::from_be_bytes([
            batches[pos + 57],
            batches[pos + 58],
            batches[pos + 59],
            batches[pos + 60],
        ]);
        n += count.max(0) as u64;
        pos += 12 + len as usize;
    }
    n
}
