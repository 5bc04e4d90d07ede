//! Background log work: fsync per the flush policy, segment roll, retention, compaction,
//! producer-id expiry.
use std::sync::Arc;
use std::time::Duration;

use spate_log::CleanupPolicy;
use tokio::sync::watch;

use crate::cluster::{topic_config, Registry};
use crate::context::now_ms;

pub async fn run(registry: Arc<Registry>, mut shutdown: watch::Receiver<bool>) {
    let config = registry.config.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(config.flush_scheduler_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last_retention, mut last_clean, mut last_expiry) = (now_ms(), now_ms(), now_ms());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = now_ms();
        let retention = now - last_retention >= config.retention_check_interval_ms as i64;
        let clean = now - last_clean >= config.cleaner_backoff_ms as i64;
        if retention {
            last_retention = now;
        }
        if clean {
            last_clean = now;
        }
        let expire = now - last_expiry >= config.producer_id_expiration_check_interval_ms as i64;
        if expire {
            last_expiry = now;
        }
        let registry = registry.clone();
        // Log work is blocking file I/O; keep it off the request threads.
        let work = tokio::task::spawn_blocking(move || {
            for topic in registry.topics() {
                let policy =
                    topic_config::log_config(&topic.meta.configs, &registry.config).cleanup_policy;
                let compact = clean && policy != CleanupPolicy::Delete;
                for p in &topic.partitions {
                    if let Err(e) = p.maintain(now, retention, compact) {
                        tracing::warn!(topic = %topic.meta.name, partition = p.index, "log maintenance: {e}");
                    }
                    if !expire {
                        continue;
                    }
                    match p.expire_producers(now, registry.config.producer_id_expiration_ms) {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::debug!(topic = %topic.meta.name, partition = p.index, producers = n, "expired idle producer ids")
                        }
                        Err(e) => {
                            tracing::warn!(topic = %topic.meta.name, partition = p.index, "producer id expiry: {e}")
                        }
                    }
                }
            }
        });
        if let Err(e) = work.await {
            tracing::error!("log maintenance task failed: {e}");
        }
    }
}
