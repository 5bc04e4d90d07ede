//! Turns the committed [`ClusterMetadata`] into this broker's state.
//!
//! For every partition that lists this broker as a replica the log is opened (or kept) and
//! told whether it leads; partitions of deleted topics, of topics re-created under the same
//! name (new topic id) and replicas moved elsewhere are closed and their data deleted. The
//! `Registry`'s topic map then mirrors the metadata: every topic, with the local replicas.
//!
//! `run` applies each new metadata version; admin handlers also call `sync` right after their
//! own change is visible, so that a client's next request to this broker sees it.
use std::collections::BTreeMap;
use std::sync::Arc;

use spate_meta::ClusterMetadata;
use tokio::sync::watch;

use super::registry::{partition_dir, remove_partition_data};
use super::{topic_config, Partition, Registry, Topic, TopicMeta};

impl Registry {
    /// Makes the local topics and partition logs match the latest metadata. Idempotent; the
    /// metadata is read under the lock so concurrent calls never apply an older version last.
    pub fn apply_metadata(&self) {
        let q = self.quorum();
        let me = q.broker_id;
        let _admin = self.admin.lock();
        let md: Arc<ClusterMetadata> = q.metadata();
        let current = self.topics.read().clone();
        // Remove first: a topic re-created under the same name reuses the directory names.
        for (name, t) in &current {
            if md.topics.get(name).is_none_or(|tm| tm.id != t.meta.id) {
                tracing::info!(topic = %name, "topic removed from the cluster metadata");
                for p in &t.partitions {
                    remove_partition_data(name, p);
                }
            }
        }
        let mut next = BTreeMap::new();
        for (name, tm) in &md.topics {
            let old = current.get(name).filter(|t| t.meta.id == tm.id);
            let configs_changed = old.is_some_and(|t| t.meta.configs != tm.configs);
            let log_config = topic_config::log_config(&tm.configs, &self.config);
            let mut partitions: Vec<Arc<Partition>> = Vec::new();
            for (i, state) in tm.partitions.iter().enumerate() {
                let Ok(index) = i32::try_from(i) else { break };
                if !state.replicas.contains(&me) {
                    continue;
                }
                let p = match old.and_then(|t| t.partition(index)) {
                    Some(p) => {
                        if configs_changed {
                            if let Err(e) = p.update_config(log_config.clone()) {
                                tracing::warn!(topic = %name, partition = index, "updating config: {e}");
                            }
                        }
                        p.clone()
                    }
                    None => {
                        let dir = partition_dir(&self.config.data_dir, name, index);
                        match Partition::open(&dir, index, log_config.clone()) {
                            Ok(p) => Arc::new(p),
                            Err(e) => {
                                tracing::error!(topic = %name, partition = index, "opening replica: {e}");
                                continue;
                            }
                        }
                    }
                };
                p.set_assignment(me, &state.replicas, &state.isr, state.partition_epoch);
                if state.leader == me {
                    if let Err(e) = p.become_leader(state.leader_epoch) {
                        tracing::error!(topic = %name, partition = index, "becoming leader: {e}");
                    }
                    // Recompute the high watermark as leader.
                    p.set_assignment(me, &state.replicas, &state.isr, state.partition_epoch);
                } else {
                    p.become_follower();
                }
                partitions.push(p);
            }
            if let Some(t) = old {
                for p in &t.partitions {
                    if !partitions.iter().any(|kept| Arc::ptr_eq(kept, p)) {
                        tracing::info!(topic = %name, partition = p.index, "replica moved away");
                        remove_partition_data(name, p);
                    }
                }
            }
            let meta = TopicMeta {
                name: name.clone(),
                id: tm.id,
                partitions: i32::try_from(tm.partitions.len()).unwrap_or(i32::MAX),
                configs: tm.configs.clone(),
            };
            next.insert(name.clone(), Arc::new(Topic { meta, partitions }));
        }
        *self.topics.write() = next;
    }

    /// Applies the latest metadata on a blocking thread (opening logs does file I/O).
    pub async fn sync(self: &Arc<Self>) {
        let registry = self.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || registry.apply_metadata()).await {
            tracing::error!("applying cluster metadata: {e}");
        }
    }
}

/// Applies every new metadata version until shutdown.
pub async fn run(registry: Arc<Registry>, mut shutdown: watch::Receiver<bool>) {
    let mut updates = registry.quorum().subscribe();
    loop {
        updates.borrow_and_update();
        registry.sync().await;
        tokio::select! {
            changed = updates.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}
