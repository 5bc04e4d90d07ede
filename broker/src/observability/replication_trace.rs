//! Links between an acks=all produce and the replica fetches that acknowledge it.
//!
//! Kafka's Fetch carries no trace context, so the two sides meet on the leader, in process:
//! each acks=all append registers its `replication.wait` span here, and a follower's Fetch
//! whose fetch offset passes the append (the follower has stored it) links its request span
//! to the wait span, and the wait span links back to every such fetch when it ends. A
//! produce trace thus shows which replicas acknowledged it and when; a replica fetch shows
//! which produces it released.
//!
//! Nothing is registered while the wait span is disabled (tracing off), and a fetch checks
//! its own span before taking the lock, so this costs nothing then.
use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use opentelemetry::KeyValue;
use parking_lot::Mutex;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// (topic, partition).
type Key = (String, i32);

/// Pending acks=all appends with a live wait span, by partition.
#[derive(Default)]
pub struct AckWaits {
    by_partition: Mutex<HashMap<Key, Vec<Arc<AckWait>>>>,
}

/// One append waiting for the in-sync replicas.
struct AckWait {
    /// The append's last offset: a replica whose log end is past it has stored it.
    last_offset: i64,
    /// The `replication.wait` span.
    span: SpanContext,
    /// Replica fetches that acknowledged the append: (replica id, fetch span).
    acks: Mutex<Vec<(i32, SpanContext)>>,
}

/// A registered wait; deregisters when dropped.
pub struct Registration<'a> {
    waits: &'a AckWaits,
    key: Key,
    wait: Arc<AckWait>,
}

impl AckWaits {
    /// Registers `span` (a `replication.wait` span) as waiting for replicas to store
    /// `topic`-`partition` up to `last_offset`. `None` when the span is disabled.
    pub fn register(
        &self,
        topic: &str,
        partition: i32,
        last_offset: i64,
        span: &Span,
    ) -> Option<Registration<'_>> {
        if span.is_disabled() {
            return None;
        }
        let context = span.context().span().span_context().clone();
        if !context.is_valid() {
            return None;
        }
        let wait = Arc::new(AckWait {
            last_offset,
            span: context,
            acks: Mutex::new(Vec::new()),
        });
        let key = (topic.to_string(), partition);
        self.by_partition
            .lock()
            .entry(key.clone())
            .or_default()
            .push(wait.clone());
        Some(Registration {
            waits: self,
            key,
            wait,
        })
    }

    /// A follower `replica` fetched `topic`-`partition` from `fetch_offset`, i.e. stored
    /// everything before it: links `fetch_span` (its Fetch request span) with every wait
    /// this acknowledges, once per replica.
    pub fn acknowledge(
        &self,
        topic: &str,
        partition: i32,
        replica: i32,
        fetch_offset: i64,
        fetch_span: &Span,
    ) {
        if fetch_span.is_disabled() {
            return;
        }
        let acked: Vec<SpanContext> = {
            let by_partition = self.by_partition.lock();
            let Some(waits) = by_partition.get(&(topic.to_string(), partition)) else {
                return;
            };
            let fetch = fetch_span.context().span().span_context().clone();
            waits
                .iter()
                .filter(|w| w.last_offset < fetch_offset)
                .filter_map(|w| {
                    let mut acks = w.acks.lock();
                    if acks.iter().any(|(id, _)| *id == replica) {
                        return None;
                    }
                    acks.push((replica, fetch.clone()));
                    Some(w.span.clone())
                })
                .collect()
        };
        for wait in acked {
            fetch_span.add_link_with_attributes(
                wait,
                vec![
                    KeyValue::new("spate.link", "acknowledges"),
                    KeyValue::new("topic", topic.to_string()),
                    KeyValue::new("partition", i64::from(partition)),
                ],
            );
        }
    }

    #[cfg(test)]
    fn pending(&self) -> usize {
        self.by_partition.lock().values().map(Vec::len).sum()
    }
}

impl Registration<'_> {
    /// Links `span` (the wait span) to the replica fetches that acknowledged the append.
    pub fn link_acks(&self, span: &Span) {
        for (replica, fetch) in self.wait.acks.lock().iter() {
            span.add_link_with_attributes(
                fetch.clone(),
                vec![
                    KeyValue::new("spate.link", "acknowledged_by"),
                    KeyValue::new("replica_id", i64::from(*replica)),
                ],
            );
        }
    }

    /// Replica ids that acknowledged the append so far.
    pub fn acked_by(&self) -> Vec<i32> {
        self.wait.acks.lock().iter().map(|(id, _)| *id).collect()
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut by_partition = self.waits.by_partition.lock();
        if let Some(waits) = by_partition.get_mut(&self.key) {
            waits.retain(|w| !Arc::ptr_eq(w, &self.wait));
            if waits.is_empty() {
                by_partition.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_span_registers_nothing() {
        let waits = AckWaits::default();
        assert!(waits.register("t", 0, 5, &Span::none()).is_none());
        waits.acknowledge("t", 0, 2, 6, &Span::none());
        assert_eq!(waits.pending(), 0);
    }
}
