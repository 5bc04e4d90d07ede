//! Durable storage behind openraft: the log store ([`LogStore`], which also keeps the vote)
//! and the state machine store ([`StateMachineStore`], persisted through snapshots).
//!
//! Everything lives in one data directory:
//! - `vote` — the last vote, replaced atomically (temp file, fsync, rename, fsync dir);
//! - `log` — an append-only file of checksummed records (entries, truncations, purges, the
//!   committed marker), fsynced before openraft is told an append is durable;
//! - `snapshot` — the latest snapshot of the state machine, replaced atomically.
//!
//! The state machine itself is not written on every apply: on restart it is rebuilt from the
//! snapshot, and openraft re-applies the log up to the saved committed marker.

mod log;
mod machine;
mod snapshot;
mod vote;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

pub use self::log::{CommittedIndex, LogReader, LogStore};
pub use self::machine::StateMachineStore;

/// Opens both stores of `dir`, creating the directory if needed.
pub async fn open(dir: &Path) -> io::Result<(LogStore, StateMachineStore)> {
    fs::create_dir_all(dir)?;
    let log = LogStore::open(dir).await?;
    let sm = StateMachineStore::open(dir).await?;
    Ok((log, sm))
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content:
/// write a temp file, fsync it, rename it over `path`, fsync the directory (which makes the
/// rename itself durable).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// Fsyncs the directory holding `path`, making creates and renames in it durable.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Runs blocking file IO off the async worker threads.
pub(crate) async fn blocking<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("storage task failed: {e}")))?
}

#[cfg(test)]
mod suite;
