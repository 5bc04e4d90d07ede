//! openraft's state machine over [`ClusterMetadata`].
//!
//! Applying is in memory; durability comes from snapshots (see the module docs of `store`).
//! Every applied batch is published on a watch channel so that brokers see committed metadata
//! in log order without polling.

use std::io::{self, Cursor};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use tokio::sync::watch;

use super::snapshot::{SnapshotFile, StoredSnapshot};
use crate::requests::MetaResponse;
use crate::state_machine::ClusterMetadata;
use crate::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
    TypeConfig,
};

/// The state machine's state: the metadata plus what raft needs to know about it.
#[derive(Debug, Clone, Default)]
struct Applied {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    metadata: ClusterMetadata,
}

#[derive(Debug)]
pub struct StateMachineStore {
    state: Applied,
    snapshots: Arc<SnapshotFile>,
    publish: watch::Sender<Arc<ClusterMetadata>>,
    /// Makes snapshot ids unique when two snapshots end at the same log id.
    builds: u64,
}

impl StateMachineStore {
    /// Opens the state machine of `dir`: the latest snapshot, or empty.
    pub async fn open(dir: &Path) -> io::Result<StateMachineStore> {
        let owned = dir.to_path_buf();
        let snapshots = super::blocking(move || SnapshotFile::open(&owned)).await?;
        let state = match snapshots.current() {
            Some(s) => Applied {
                last_applied: s.meta.last_log_id,
                membership: s.meta.last_membership.clone(),
                metadata: serde_json::from_slice(&s.data)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            },
            None => Applied::default(),
        };
        let (publish, _) = watch::channel(Arc::new(state.metadata.clone()));
        Ok(StateMachineStore {
            state,
            snapshots: Arc::new(snapshots),
            publish,
            builds: 0,
        })
    }

    /// Receives the metadata after every applied batch (and after snapshot installs).
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.publish.subscribe()
    }

    fn publish(&self) {
        self.publish
            .send_replace(Arc::new(self.state.metadata.clone()));
    }
}

/// Builds a snapshot from a copy of the state taken when openraft asked for a builder, so
/// applying can go on meanwhile.
#[derive(Debug)]
pub struct SnapshotBuilder {
    state: Applied,
    snapshots: Arc<SnapshotFile>,
    build: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let data = serde_json::to_vec(&self.state.metadata)
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        let snapshot_id = match self.state.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.build),
            None => format!("none-{}", self.build),
        };
        let meta = SnapshotMeta {
            last_log_id: self.state.last_applied,
            last_membership: self.state.membership.clone(),
            snapshot_id,
        };
        let data = Arc::new(data);
        self.snapshots
            .save(StoredSnapshot {
                meta: meta.clone(),
                data: data.clone(),
            })
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data.to_vec())),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.state.last_applied, self.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<MetaResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            self.state.last_applied = Some(entry.log_id);
            self.state.metadata.metadata_offset = entry.log_id.index;
            let response = match entry.payload {
                EntryPayload::Blank => MetaResponse::Ok,
                EntryPayload::Normal(request) => request.apply(&mut self.state.metadata),
                EntryPayload::Membership(membership) => {
                    self.state.membership = StoredMembership::new(Some(entry.log_id), membership);
                    MetaResponse::Ok
                }
            };
            responses.push(response);
        }
        self.publish();
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.builds += 1;
        SnapshotBuilder {
            state: self.state.clone(),
            snapshots: self.snapshots.clone(),
            build: self.builds,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let metadata: ClusterMetadata = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.snapshots
            .save(StoredSnapshot {
                meta: meta.clone(),
                data: Arc::new(data),
            })
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.state = Applied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            metadata,
        };
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self.snapshots.current().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data.to_vec())),
        }))
    }
}
