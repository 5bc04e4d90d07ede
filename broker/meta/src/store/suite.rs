//! openraft's storage conformance suite against the on-disk stores.

use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

use super::{open, LogStore, StateMachineStore};
use crate::types::{StorageError, StorageIOError, TypeConfig};

struct DiskStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for DiskStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let (log, sm) = open(dir.path())
            .await
            .map_err(|e| StorageIOError::read(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() -> Result<(), Box<StorageError>> {
    Suite::test_all(DiskStoreBuilder).map_err(Box::new)
}
