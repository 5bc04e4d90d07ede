//! The vote file. Raft's safety needs a node to remember whom it voted for in a term across
//! restarts (otherwise it could vote twice and two leaders could be elected), so `save` returns
//! only after the new vote is on disk.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{blocking, write_atomic};
use crate::types::Vote;

#[derive(Debug, Clone)]
pub(crate) struct VoteFile {
    path: PathBuf,
}

impl VoteFile {
    pub(crate) fn new(dir: &Path) -> Self {
        VoteFile {
            path: dir.join("vote"),
        }
    }

    /// The saved vote; `None` if none was ever saved. A file that does not parse is an error,
    /// not `None`: forgetting a vote is exactly what must not happen.
    pub(crate) fn load(&self) -> io::Result<Option<Vote>> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn save(&self, vote: &Vote) -> io::Result<()> {
        let bytes = serde_json::to_vec(vote).map_err(io::Error::other)?;
        let path = self.path.clone();
        blocking(move || write_atomic(&path, &bytes)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn vote_survives_reopen_and_corruption_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = VoteFile::new(dir.path());
        assert_eq!(file.load().unwrap(), None);
        let mut vote = Vote::new(3, 2);
        vote.commit();
        file.save(&vote).await.unwrap();
        let reopened = VoteFile::new(dir.path()).load().unwrap().unwrap();
        assert_eq!(reopened, vote);
        assert_eq!(reopened.leader_id().voted_for(), Some(2));
        fs::write(dir.path().join("vote"), b"{garbage").unwrap();
        assert!(file.load().is_err());
    }
}
