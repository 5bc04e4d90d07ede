//! Client quotas as Kafka's `ClientQuotaManager`: the quota entities (`user`, `client-id`,
//! their defaults), which configured entity governs a connection, and the sampled rate whose
//! overshoot becomes a throttle time. No clocks: callers pass `now_ms`.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const KEYS: [&str; 3] = [PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE];

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";

/// One part of a quota entity: the default entity of its type, or a named one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QuotaName {
    Default,
    Named(String),
}

impl QuotaName {
    fn of(name: Option<&str>) -> Self {
        name.map_or(QuotaName::Default, |n| QuotaName::Named(n.to_string()))
    }

    pub fn as_deref(&self) -> Option<&str> {
        match self {
            QuotaName::Default => None,
            QuotaName::Named(n) => Some(n),
        }
    }
}

/// A quota entity: `user` and/or `client-id`, each a name or the default entity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<QuotaName>,
    pub client_id: Option<QuotaName>,
}

/// A quota value as stored: f64 bits, so that metadata stays `Eq`.
pub type QuotaValues = BTreeMap<String, u64>;

/// One entity's changes: each key set (f64 bits) or removed (`None`).
pub type QuotaChange = (QuotaEntity, Vec<(String, Option<u64>)>);

impl QuotaEntity {
    /// The entity from (type, name) pairs as AlterClientQuotas sends them.
    pub fn from_parts<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Self, String> {
        let mut e = QuotaEntity {
            user: None,
            client_id: None,
        };
        for (kind, name) in parts {
            let slot = match kind {
                USER => &mut e.user,
                CLIENT_ID => &mut e.client_id,
                "ip" => return Err("IP quotas are not supported".into()),
                other => return Err(format!("Unexpected quota entity type {other}")),
            };
            if slot.is_some() {
                return Err(format!("Duplicate {kind} found in entity"));
            }
            if name == Some("") {
                return Err(format!("Empty {kind} name"));
            }
            *slot = Some(QuotaName::of(name));
        }
        if e.user.is_none() && e.client_id.is_none() {
            return Err("Invalid empty client quota entity".into());
        }
        Ok(e)
    }

    /// (type, name) pairs, user first.
    pub fn parts(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut out = Vec::new();
        if let Some(u) = &self.user {
            out.push((USER, u.as_deref()));
        }
        if let Some(c) = &self.client_id {
            out.push((CLIENT_ID, c.as_deref()));
        }
        out
    }

    /// The entities that may govern (user, client-id), most specific first, as Kafka's
    /// `DefaultQuotaCallback` searches them.
    pub fn candidates(user: &str, client_id: &str) -> [QuotaEntity; 8] {
        let u = |n: Option<&str>| Some(QuotaName::of(n));
        let e = |user, client_id| QuotaEntity { user, client_id };
        [
            e(u(Some(user)), u(Some(client_id))),
            e(u(Some(user)), u(None)),
            e(u(None), u(Some(client_id))),
            e(u(None), u(None)),
            e(u(Some(user)), None),
            e(u(None), None),
            e(None, u(Some(client_id))),
            e(None, u(None)),
        ]
    }
}

/// Checks one quota setting as AlterClientQuotas does.
pub fn validate(key: &str, value: f64) -> Result<(), String> {
    if !KEYS.contains(&key) {
        return Err(format!("Invalid configuration key {key}"));
    }
    if value.is_nan() || value <= 0.0 {
        return Err(format!("Illegal value {value} for {key}: must be positive"));
    }
    if key != REQUEST_PERCENTAGE && value.fract() != 0.0 {
        return Err(format!(
            "Illegal value {value} for {key}: must be an integer"
        ));
    }
    Ok(())
}

/// Kafka's `Rate` over `samples` windows of `window_ms` (quota.window.num = 11,
/// quota.window.size.seconds = 1), with the window-size rule that avoids huge rates early on.
#[derive(Debug, Clone)]
pub struct SampledRate {
    samples: usize,
    window_ms: i64,
    /// (window start, value) oldest first.
    windows: Vec<(i64, f64)>,
}

impl SampledRate {
    pub fn new(samples: usize, window_ms: i64) -> Self {
        Self {
            samples: samples.max(2),
            window_ms: window_ms.max(1),
            windows: Vec::new(),
        }
    }

    pub fn record(&mut self, value: f64, now_ms: i64) {
        self.purge(now_ms);
        match self.windows.last_mut() {
            Some((start, v)) if now_ms - *start < self.window_ms => *v += value,
            _ => self.windows.push((now_ms, value)),
        }
        if self.windows.len() > self.samples {
            self.windows.remove(0);
        }
    }

    fn purge(&mut self, now_ms: i64) {
        let horizon = self.samples as i64 * self.window_ms;
        self.windows.retain(|(start, _)| now_ms - start < horizon);
    }

    /// Milliseconds the rate is measured over now (Kafka's `Rate.windowSize`).
    pub fn window_size(&mut self, now_ms: i64) -> i64 {
        self.purge(now_ms);
        let oldest = self.windows.first().map_or(now_ms, |(s, _)| *s);
        let mut elapsed = now_ms - oldest;
        let full = elapsed / self.window_ms;
        let min_full = self.samples as i64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * self.window_ms;
        }
        elapsed.max(1)
    }

    /// Units per second.
    pub fn rate(&mut self, now_ms: i64) -> f64 {
        let total: f64 = {
            self.purge(now_ms);
            self.windows.iter().map(|(_, v)| v).sum()
        };
        total / (self.window_size(now_ms) as f64 / 1000.0)
    }

    /// Records `value` and returns the throttle time in ms if the rate is now over `bound`:
    /// the delay that brings it back to the bound, `(rate - bound) / bound * window`.
    pub fn record_and_throttle(&mut self, value: f64, bound: f64, now_ms: i64) -> i64 {
        self.record(value, now_ms);
        let rate = self.rate(now_ms);
        if rate <= bound {
            return 0;
        }
        ((rate - bound) / bound * self.window_size(now_ms) as f64).round() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_are_checked_and_resolved_most_specific_first() {
        let e = QuotaEntity::from_parts([(USER, Some("alice")), (CLIENT_ID, None)]).unwrap();
        assert_eq!(e.parts(), [(USER, Some("alice")), (CLIENT_ID, None)]);
        assert!(QuotaEntity::from_parts([]).is_err());
        assert!(QuotaEntity::from_parts([(USER, Some("a")), (USER, Some("b"))]).is_err());
        assert!(QuotaEntity::from_parts([("ip", Some("1.2.3.4"))]).is_err());
        assert!(QuotaEntity::from_parts([(USER, Some(""))]).is_err());
        let c = QuotaEntity::candidates("alice", "app");
        assert_eq!(
            c[0].parts(),
            [(USER, Some("alice")), (CLIENT_ID, Some("app"))]
        );
        assert_eq!(c[4].parts(), [(USER, Some("alice"))]);
        assert_eq!(c[7].parts(), [(CLIENT_ID, None)]);
    }

    #[test]
    fn values_are_checked_as_kafka_checks_them() {
        assert!(validate(PRODUCER_BYTE_RATE, 1024.0).is_ok());
        assert!(validate(REQUEST_PERCENTAGE, 12.5).is_ok());
        assert!(validate(PRODUCER_BYTE_RATE, 10.5).is_err());
        assert!(validate(CONSUMER_BYTE_RATE, 0.0).is_err());
        assert!(validate("bytes", 1.0).is_err());
    }

    /// Kafka's ClientQuotaManagerTest: 1 byte/s... here 500 bytes/s over 11 1-s samples.
    #[test]
    fn throttle_is_the_delay_that_brings_the_rate_back_to_the_bound() {
        let mut r = SampledRate::new(11, 1000);
        // Within the quota: 400 bytes/s for 10 s.
        for s in 0..10 {
            assert_eq!(r.record_and_throttle(400.0, 500.0, s * 1000), 0);
        }
        // A burst: 4000 + 2000 more bytes at t=10 s; window = 10 s (+0), total 10000 → 1000/s.
        r.record(4000.0, 10_000);
        let t = r.record_and_throttle(2000.0, 500.0, 10_000);
        // rate = (4000 + 6000) / 10 s = 1000/s; (1000 - 500) / 500 * 10 000 ms = 10 000 ms.
        assert_eq!(t, 10_000);
        // The early-window rule: one record at t=0 is measured over 10 s, not 1 ms.
        let mut fresh = SampledRate::new(11, 1000);
        assert_eq!(fresh.record_and_throttle(5000.0, 500.0, 0), 0);
        assert_eq!(fresh.window_size(0), 10_000);
    }
}
