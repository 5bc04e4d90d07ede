//! Idempotent producers: producer id allocation and per-partition sequence state.

pub mod ids;
pub mod state;

pub use ids::ProducerIdAllocator;
pub use state::{ProducerStates, SequenceCheck, SequenceError};
