//! Idempotent and transactional producers: producer id allocation, per-partition sequence
//! state, open transactions, the last stable offset and the aborted-transaction index.

pub mod ids;
pub mod snapshot;
pub mod state;

pub use ids::ProducerIdAllocator;
pub use state::{
    control_batch, AbortedTxn, Marker, ProducerStates, ProducerView, SequenceCheck, SequenceError,
};
