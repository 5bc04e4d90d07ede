//! Transactions (exactly-once): the transaction coordinator, its `__transaction_state`
//! records, and the markers that end a transaction on each of its partitions. The partition
//! side (open transactions, last stable offset, aborted-transaction index) is in
//! `producer/state.rs`.

pub mod codec;
pub mod coordinator;
pub mod markers;
pub mod state;
pub mod table;
pub mod verify;

pub use coordinator::{txn_topic_configs, TxnConfig, TxnCoordinator, TXN_TOPIC};
pub use state::{TxnMetadata, TxnState};
