//! The raft log: an append-only file of records, mirrored in memory.
//!
//! # Format
//!
//! A sequence of records, each `[len: u32 LE][crc32c(body): u32 LE][body: len bytes]`, where
//! the body is a JSON [`Record`]. Truncations, purges and the committed marker are records too,
//! so every change is an append and the file is replayed in order on open. A torn or corrupt
//! record ends the replay and the file is cut there: a crash can only lose a suffix that was
//! never acknowledged (appends are acknowledged after fsync).
//!
//! When purges have left the file mostly dead, it is rewritten with the live records only
//! (temp file + rename). The metadata log is small once snapshots purge it, so all live
//! entries are also kept in memory for the readers.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use serde::{Deserialize, Serialize};

use super::vote::VoteFile;
use super::{blocking, sync_dir, write_atomic};
use crate::types::{Entry, LogId, StorageError, StorageIOError, TypeConfig, Vote};

/// Rewrite the file once it is this large and at least twice the live data.
const COMPACT_MIN_BYTES: u64 = 1 << 20;
/// Upper bound on one record: a length prefix beyond it is corruption, not a real record.
const MAX_RECORD: u32 = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Entry(Entry),
    /// Entries from `since` on were deleted (conflicting with the leader's log).
    Truncate {
        since: u64,
    },
    /// Entries up to and including `upto` were deleted (covered by a snapshot).
    Purge {
        upto: LogId,
    },
    Committed(Option<LogId>),
}

fn encode(record: &Record) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(record).map_err(io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|l| *l <= MAX_RECORD)
        .ok_or_else(|| io::Error::other("log record too large"))?;
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes the record at the start of `buf`: `Some((record, size))`, or `None` if `buf` holds
/// no complete, intact record there.
fn decode(buf: &[u8]) -> Option<(Record, usize)> {
    let len = u32::from_le_bytes(buf.get(0..4)?.try_into().ok()?);
    if len > MAX_RECORD {
        return None;
    }
    let crc = u32::from_le_bytes(buf.get(4..8)?.try_into().ok()?);
    let body = buf.get(8..8 + len as usize)?;
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let record = serde_json::from_slice(body).ok()?;
    Some((record, 8 + len as usize))
}

/// The log as readers see it.
#[derive(Debug, Default)]
struct Memory {
    /// Live entries by index, with the size of their record (to decide on compaction).
    entries: BTreeMap<u64, (Entry, u64)>,
    last_purged: Option<LogId>,
    committed: Option<LogId>,
}

impl Memory {
    fn apply(&mut self, record: Record, size: u64) {
        match record {
            Record::Entry(entry) => {
                let index = entry.log_id.index;
                // A new entry at `index` replaces everything from there on (raft's log matching:
                // openraft truncates before overwriting, this only makes replay robust).
                self.entries.split_off(&index);
                self.entries.insert(index, (entry, size));
            }
            Record::Truncate { since } => {
                self.entries.split_off(&since);
            }
            Record::Purge { upto } => {
                self.entries = self.entries.split_off(&(upto.index + 1));
                if self
                    .last_purged
                    .as_ref()
                    .is_none_or(|p| p.index < upto.index)
                {
                    self.last_purged = Some(upto);
                }
            }
            Record::Committed(c) => self.committed = c,
        }
    }

    fn live_bytes(&self) -> u64 {
        self.entries.values().map(|(_, size)| size).sum()
    }
}

/// The append-only file; only the [`LogStore`] writes it.
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: File,
    len: u64,
}

impl LogFile {
    /// Opens (or creates) the log file and replays it into a [`Memory`], cutting off a torn
    /// tail.
    fn open(dir: &Path) -> io::Result<(LogFile, Memory)> {
        let path = dir.join("log");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let mut memory = Memory::default();
        let mut pos = 0usize;
        while pos < buf.len() {
            let Some((record, size)) = buf.get(pos..).and_then(decode) else {
                tracing::warn!(
                    path = %path.display(),
                    offset = pos,
                    dropped = buf.len() - pos,
                    "metadata log ends in a torn or corrupt record; truncating it"
                );
                break;
            };
            memory.apply(record, size as u64);
            pos += size;
        }
        if pos < buf.len() {
            file.set_len(pos as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::Start(pos as u64))?;
        sync_dir(&path)?;
        Ok((
            LogFile {
                path,
                file,
                len: pos as u64,
            },
            memory,
        ))
    }

    fn append(&mut self, bytes: &[u8], sync: bool) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        if sync {
            // fdatasync: the data and the new length; other metadata does not matter here.
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Replaces the file with `bytes` (the live records) atomically.
    fn rewrite(&mut self, bytes: &[u8]) -> io::Result<()> {
        write_atomic(&self.path, bytes)?;
        let mut file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        file.seek(SeekFrom::End(0))?;
        self.file = file;
        self.len = bytes.len() as u64;
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind, still consistent enough to read.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads the in-memory log; handed to openraft's replication tasks.
#[derive(Debug, Clone)]
pub struct LogReader {
    memory: Arc<Mutex<Memory>>,
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let memory = lock(&self.memory);
        Ok(memory
            .entries
            .range(range)
            .map(|(_, (e, _))| e.clone())
            .collect())
    }
}

/// openraft's log storage: the log file, its in-memory mirror and the vote file.
#[derive(Debug)]
pub struct LogStore {
    reader: LogReader,
    file: Arc<Mutex<LogFile>>,
    vote: VoteFile,
    /// Cached so that `read_vote` does not touch the disk.
    last_vote: Option<Vote>,
}

impl LogStore {
    pub async fn open(dir: &Path) -> io::Result<LogStore> {
        let owned = dir.to_path_buf();
        let (file, memory) = blocking(move || LogFile::open(&owned)).await?;
        let vote = VoteFile::new(dir);
        let last_vote = vote.load()?;
        Ok(LogStore {
            reader: LogReader {
                memory: Arc::new(Mutex::new(memory)),
            },
            file: Arc::new(Mutex::new(file)),
            vote,
            last_vote,
        })
    }

    /// The last committed log id this node has saved (for metrics; may lag the leader's).
    pub fn committed(&self) -> Option<LogId> {
        lock(&self.reader.memory).committed
    }

    /// Shared handle that reports the committed log id without going through openraft.
    pub fn committed_watch(&self) -> CommittedIndex {
        CommittedIndex {
            memory: self.reader.memory.clone(),
        }
    }

    /// Writes records to the file off the async threads, fsyncing if `sync`.
    async fn write(&self, bytes: Vec<u8>, sync: bool) -> io::Result<()> {
        let file = self.file.clone();
        blocking(move || lock(&file).append(&bytes, sync)).await
    }

    /// Rewrites the file with only the live records when purges have made it mostly dead.
    async fn maybe_compact(&self) -> io::Result<()> {
        let (file_len, live) = {
            let memory = lock(&self.reader.memory);
            (lock(&self.file).len, memory.live_bytes())
        };
        if file_len < COMPACT_MIN_BYTES || file_len < 2 * live {
            return Ok(());
        }
        let bytes = {
            let memory = lock(&self.reader.memory);
            let mut bytes = Vec::new();
            if let Some(upto) = memory.last_purged {
                bytes.extend(encode(&Record::Purge { upto })?);
            }
            bytes.extend(encode(&Record::Committed(memory.committed))?);
            for (entry, _) in memory.entries.values() {
                bytes.extend(encode(&Record::Entry(entry.clone()))?);
            }
            bytes
        };
        let file = self.file.clone();
        blocking(move || lock(&file).rewrite(&bytes)).await?;
        tracing::debug!(from = file_len, "compacted the metadata log file");
        Ok(())
    }
}

/// Reads the committed log id saved by the log store.
#[derive(Debug, Clone)]
pub struct CommittedIndex {
    memory: Arc<Mutex<Memory>>,
}

impl CommittedIndex {
    pub fn get(&self) -> Option<LogId> {
        lock(&self.memory).committed
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.reader.try_get_log_entries(range).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let memory = lock(&self.reader.memory);
        let last_purged_log_id = memory.last_purged;
        let last_log_id = memory
            .entries
            .values()
            .next_back()
            .map(|(e, _)| e.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.vote
            .save(vote)
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        self.last_vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.last_vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let record = Record::Committed(committed);
        let bytes = encode(&record).map_err(|e| StorageIOError::write(&e))?;
        // No fsync: the marker only saves re-applying entries after a restart, and the next
        // fsynced append makes it durable anyway. Losing it is harmless.
        self.write(bytes, false)
            .await
            .map_err(|e| StorageIOError::write(&e))?;
        lock(&self.reader.memory).apply(record, 0);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.committed())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut bytes = Vec::new();
        let mut records = Vec::new();
        for entry in entries {
            let record = Record::Entry(entry);
            let encoded = encode(&record).map_err(|e| StorageIOError::write_logs(&e))?;
            records.push((record, encoded.len() as u64));
            bytes.extend(encoded);
        }
        // Readable as soon as this returns (openraft's contract), durable before the callback.
        {
            let mut memory = lock(&self.reader.memory);
            for (record, size) in records {
                memory.apply(record, size);
            }
        }
        let result = self.write(bytes, true).await;
        let storage_result = result
            .as_ref()
            .map_err(|e| StorageIOError::write_logs(e).into())
            .map(|_| ());
        callback.log_io_completed(result);
        storage_result
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let record = Record::Truncate {
            since: log_id.index,
        };
        let bytes = encode(&record).map_err(|e| StorageIOError::write_logs(&e))?;
        lock(&self.reader.memory).apply(record, 0);
        self.write(bytes, true)
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let record = Record::Purge { upto: log_id };
        let bytes = encode(&record).map_err(|e| StorageIOError::write_logs(&e))?;
        lock(&self.reader.memory).apply(record, 0);
        self.write(bytes, true)
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.maybe_compact()
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};
    use std::fs;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    async fn append(store: &mut LogStore, entries: Vec<Entry>) {
        // The suite covers the callback path; here the records themselves are what matters.
        let bytes: Vec<u8> = entries
            .iter()
            .flat_map(|e| encode(&Record::Entry(e.clone())).unwrap())
            .collect();
        {
            let mut memory = lock(&store.reader.memory);
            for e in entries {
                memory.apply(Record::Entry(e), 0);
            }
        }
        store.write(bytes, true).await.unwrap();
    }

    async fn indexes(store: &mut LogStore) -> Vec<u64> {
        store
            .try_get_log_entries(..)
            .await
            .unwrap()
            .iter()
            .map(|e| e.log_id.index)
            .collect()
    }

    #[tokio::test]
    async fn log_survives_reopen_with_truncate_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).await.unwrap();
        append(&mut store, (1..=10).map(|i| entry(1, i)).collect()).await;
        store
            .truncate(LogId::new(CommittedLeaderId::new(1, 1), 8))
            .await
            .unwrap();
        store
            .purge(LogId::new(CommittedLeaderId::new(1, 1), 3))
            .await
            .unwrap();
        append(&mut store, vec![entry(2, 8)]).await;
        store
            .save_committed(Some(LogId::new(CommittedLeaderId::new(2, 1), 8)))
            .await
            .unwrap();
        drop(store);

        let mut store = LogStore::open(dir.path()).await.unwrap();
        assert_eq!(indexes(&mut store).await, vec![4, 5, 6, 7, 8]);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(3));
        assert_eq!(
            state.last_log_id,
            Some(LogId::new(CommittedLeaderId::new(2, 1), 8))
        );
        assert_eq!(
            store.read_committed().await.unwrap().map(|l| l.index),
            Some(8)
        );
    }

    #[tokio::test]
    async fn torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).await.unwrap();
        append(&mut store, (1..=3).map(|i| entry(1, i)).collect()).await;
        drop(store);
        // A crash in the middle of writing a record: half a record at the end.
        let half = encode(&Record::Entry(entry(1, 4))).unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("log"))
            .unwrap();
        f.write_all(&half[..half.len() / 2]).unwrap();
        drop(f);
        let good_len =
            fs::metadata(dir.path().join("log")).unwrap().len() - (half.len() / 2) as u64;

        let mut store = LogStore::open(dir.path()).await.unwrap();
        assert_eq!(indexes(&mut store).await, vec![1, 2, 3]);
        assert_eq!(
            fs::metadata(dir.path().join("log")).unwrap().len(),
            good_len
        );
        // Appends continue after the cut.
        append(&mut store, vec![entry(1, 4)]).await;
        drop(store);
        let mut store = LogStore::open(dir.path()).await.unwrap();
        assert_eq!(indexes(&mut store).await, vec![1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn corrupt_record_ends_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).await.unwrap();
        append(&mut store, (1..=3).map(|i| entry(1, i)).collect()).await;
        drop(store);
        let path = dir.path().join("log");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let mut store = LogStore::open(dir.path()).await.unwrap();
        assert_eq!(indexes(&mut store).await, vec![1, 2]);
    }

    #[tokio::test]
    async fn purge_compacts_a_mostly_dead_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).await.unwrap();
        // Enough blank entries to pass the compaction threshold.
        let n = 20_000;
        append(&mut store, (1..=n).map(|i| entry(1, i)).collect()).await;
        let before = fs::metadata(dir.path().join("log")).unwrap().len();
        assert!(before > COMPACT_MIN_BYTES, "{before}");
        // Sizes were not tracked by the helper; give the live entries their real size.
        {
            let mut memory = lock(&store.reader.memory);
            for (e, size) in memory.entries.values_mut() {
                *size = encode(&Record::Entry(e.clone())).unwrap().len() as u64;
            }
        }
        store
            .purge(LogId::new(CommittedLeaderId::new(1, 1), n - 10))
            .await
            .unwrap();
        let after = fs::metadata(dir.path().join("log")).unwrap().len();
        assert!(after < before / 10, "{after} >= {before}/10");
        drop(store);
        let mut store = LogStore::open(dir.path()).await.unwrap();
        assert_eq!(indexes(&mut store).await, ((n - 9)..=n).collect::<Vec<_>>());
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(n - 10));
    }
}
