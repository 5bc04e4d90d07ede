//! The snapshot file: the latest snapshot of the state machine, which is also how the state
//! machine survives restarts.
//!
//! # Format
//!
//! `b"SPATESN1"`, `crc32c(rest): u32 LE`, `meta_len: u32 LE`, the JSON [`SnapshotMeta`]
//! (last applied log id, membership, snapshot id), then the snapshot data: the JSON
//! [`ClusterMetadata`](crate::ClusterMetadata). Replaced atomically; a file that fails the
//! checksum is an error, since the log before it may already be purged.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{blocking, write_atomic};
use crate::types::SnapshotMeta;

const MAGIC: &[u8; 8] = b"SPATESN1";

/// A snapshot as stored: its meta and the serialized state machine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredSnapshot {
    pub(crate) meta: SnapshotMeta,
    pub(crate) data: Arc<Vec<u8>>,
}

fn encode(s: &StoredSnapshot) -> io::Result<Vec<u8>> {
    let meta = serde_json::to_vec(&s.meta).map_err(io::Error::other)?;
    let meta_len = u32::try_from(meta.len()).map_err(io::Error::other)?;
    let mut rest = Vec::with_capacity(4 + meta.len() + s.data.len());
    rest.extend_from_slice(&meta_len.to_le_bytes());
    rest.extend_from_slice(&meta);
    rest.extend_from_slice(&s.data);
    let mut out = Vec::with_capacity(12 + rest.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32c::crc32c(&rest).to_le_bytes());
    out.extend_from_slice(&rest);
    Ok(out)
}

fn decode(bytes: &[u8]) -> io::Result<StoredSnapshot> {
    let invalid =
        |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("snapshot: {why}"));
    if bytes.get(0..8) != Some(MAGIC.as_slice()) {
        return Err(invalid("bad magic"));
    }
    let crc = bytes
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| invalid("truncated header"))?;
    let rest = &bytes[12..];
    if crc32c::crc32c(rest) != crc {
        return Err(invalid("checksum mismatch"));
    }
    let meta_len = rest
        .get(0..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| invalid("truncated meta length"))? as usize;
    let meta = rest
        .get(4..4 + meta_len)
        .ok_or_else(|| invalid("truncated meta"))?;
    let meta: SnapshotMeta =
        serde_json::from_slice(meta).map_err(|e| invalid(&format!("meta: {e}")))?;
    let data = rest[4 + meta_len..].to_vec();
    Ok(StoredSnapshot {
        meta,
        data: Arc::new(data),
    })
}

/// The snapshot file and the snapshot it holds, shared by the state machine and the snapshot
/// builders (which run in their own tasks).
#[derive(Debug)]
pub(crate) struct SnapshotFile {
    path: PathBuf,
    current: Mutex<Option<StoredSnapshot>>,
}

impl SnapshotFile {
    pub(crate) fn open(dir: &Path) -> io::Result<SnapshotFile> {
        let path = dir.join("snapshot");
        let current = match fs::read(&path) {
            Ok(bytes) => Some(decode(&bytes)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(SnapshotFile {
            path,
            current: Mutex::new(current),
        })
    }

    pub(crate) fn current(&self) -> Option<StoredSnapshot> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Persists `snapshot` unless a snapshot at least as new is already stored (a build that
    /// raced with an installed snapshot must not replace it with older state).
    pub(crate) async fn save(self: &Arc<Self>, snapshot: StoredSnapshot) -> io::Result<()> {
        let this = self.clone();
        blocking(move || {
            let mut current = this.current.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(cur) = current.as_ref() {
                if cur.meta.last_log_id > snapshot.meta.last_log_id {
                    return Ok(());
                }
            }
            // Holding the lock across the write keeps concurrent saves in order.
            write_atomic(&this.path, &encode(&snapshot)?)?;
            *current = Some(snapshot);
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{LogId, StoredMembership};
    use openraft::{CommittedLeaderId, Membership};

    fn snapshot(index: u64) -> StoredSnapshot {
        StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), index)),
                last_membership: StoredMembership::new(
                    Some(LogId::new(CommittedLeaderId::new(1, 1), 1)),
                    Membership::new(vec![[1u64, 2, 3].into_iter().collect()], None),
                ),
                snapshot_id: format!("1-{index}"),
            },
            data: Arc::new(b"{\"state\":1}".to_vec()),
        }
    }

    #[tokio::test]
    async fn snapshot_survives_reopen_and_older_does_not_replace_newer() {
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(SnapshotFile::open(dir.path()).unwrap());
        assert_eq!(file.current(), None);
        file.save(snapshot(10)).await.unwrap();
        file.save(snapshot(5)).await.unwrap();
        assert_eq!(file.current(), Some(snapshot(10)));
        let reopened = SnapshotFile::open(dir.path()).unwrap();
        assert_eq!(reopened.current(), Some(snapshot(10)));
    }

    #[tokio::test]
    async fn corrupt_snapshot_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(SnapshotFile::open(dir.path()).unwrap());
        file.save(snapshot(3)).await.unwrap();
        let path = dir.path().join("snapshot");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(SnapshotFile::open(dir.path()).is_err());
    }
}
