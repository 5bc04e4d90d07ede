//! Client quotas as Kafka's `ClientQuotaManager`: `producer_byte_rate`, `consumer_byte_rate`
//! and `request_percentage` set on user and/or client-id entities (AlterClientQuotas, kept in
//! the metadata quorum). Each connection's (user, client-id) is governed by the most specific
//! configured entity; clients governed by one entity share its rate. Over-quota clients are
//! throttled, never disconnected: the response carries `throttle_time_ms` and the connection
//! reads nothing more for that long (KIP-219).
use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use spate_auth::quota::{
    QuotaEntity, SampledRate, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE,
};

use crate::cluster::Registry;
use crate::context::now_ms;
use std::sync::Arc;

/// Kafka's `quota.window.num` and `quota.window.size.seconds`.
const SAMPLES: usize = 11;
const WINDOW_MS: i64 = 1000;
/// Sensors of entities not seen for this long are dropped.
const IDLE: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    Produce,
    Fetch,
    Request,
}

impl QuotaKind {
    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
            QuotaKind::Request => REQUEST_PERCENTAGE,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            QuotaKind::Produce => "produce",
            QuotaKind::Fetch => "fetch",
            QuotaKind::Request => "request",
        }
    }
}

pub struct Quotas {
    registry: Arc<Registry>,
    sensors: Mutex<HashMap<(QuotaEntity, QuotaKind), (SampledRate, Instant)>>,
}

impl Quotas {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            sensors: Mutex::new(HashMap::new()),
        }
    }

    /// Whether any client quota is configured (most brokers have none: then nothing is
    /// recorded).
    pub fn active(&self) -> bool {
        !self.registry.quorum().metadata().client_quotas.is_empty()
    }

    /// The quota governing (user, client-id) for `kind`: its entity and bound.
    fn governing(
        &self,
        user: &str,
        client_id: &str,
        kind: QuotaKind,
    ) -> Option<(QuotaEntity, f64)> {
        let md = self.registry.quorum().metadata();
        if md.client_quotas.is_empty() {
            return None;
        }
        QuotaEntity::candidates(user, client_id)
            .into_iter()
            .find_map(|e| {
                let values = &md.client_quotas.iter().find(|(q, _)| *q == e)?.1;
                values
                    .get(kind.key())
                    .map(|v| (e.clone(), f64::from_bits(*v)))
            })
    }

    /// Records `value` (bytes, or percent-seconds of one thread for requests) for the
    /// connection and returns how long to throttle it (zero when within its quota or when
    /// no quota applies).
    pub fn record(&self, user: &str, client_id: &str, kind: QuotaKind, value: f64) -> Duration {
        let Some((entity, bound)) = self.governing(user, client_id, kind) else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let mut sensors = self.sensors.lock();
        if sensors.len() > 1024 {
            sensors.retain(|_, (_, seen)| now.duration_since(*seen) < IDLE);
        }
        let (rate, seen) = sensors
            .entry((entity, kind))
            .or_insert_with(|| (SampledRate::new(SAMPLES, WINDOW_MS), now));
        *seen = now;
        let ms = rate.record_and_throttle(value, bound, now_ms());
        // Kafka bounds a throttle by the whole quota window.
        Duration::from_millis(ms.clamp(0, SAMPLES as i64 * WINDOW_MS) as u64)
    }

    /// The most a consumer governed by a `consumer_byte_rate` may fetch at once: the quota
    /// over the window less one sample (Kafka's `getMaxValueInQuotaWindow`), so that a fetch
    /// can always fit the quota and a throttled consumer still makes progress.
    pub fn max_fetch_bytes(&self, user: &str, client_id: &str) -> Option<i32> {
        let (_, bound) = self.governing(user, client_id, QuotaKind::Fetch)?;
        let window_s = (SAMPLES as f64 - 1.0) * WINDOW_MS as f64 / 1000.0;
        Some((bound * window_s).clamp(1.0, i32::MAX as f64) as i32)
    }

    /// Takes back a recorded value (a throttled fetch is answered empty, as in Kafka).
    pub fn unrecord(&self, user: &str, client_id: &str, kind: QuotaKind, value: f64) {
        if let Some((entity, _)) = self.governing(user, client_id, kind) {
            if let Some((rate, _)) = self.sensors.lock().get_mut(&(entity, kind)) {
                rate.record(-value, now_ms());
            }
        }
    }
}
