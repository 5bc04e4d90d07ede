//! Idempotent and transactional producers (their ids come from the quorum): per-partition sequence
//! state, open transactions, the last stable offset and the aborted-transaction index.

pub mod snapshot;
pub mod state;

pub use state::{
    control_batch, AbortedTxn, Marker, ProducerStates, ProducerView, SequenceCheck, SequenceError,
};
