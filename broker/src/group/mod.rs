//! Consumer groups: the classic rebalance protocol (`classic/`), KIP-848 consumer groups
//! (`consumer_group.rs`, `assignor.rs`), and the coordinator that owns both and the committed
//! offsets, durable in `__consumer_offsets` (`coordinator/`, split by job, records in
//! `codec.rs`); a change counts, and is answered, only once its record is in the in-sync
//! replicas.

pub mod assignor;
pub mod classic;
pub mod codec;
pub mod consumer_group;
pub mod consumer_protocol;
pub mod coordinator;

pub use classic::{GroupState, JoinOutcome, JoinRequest, SyncOutcome};
pub use coordinator::{GroupConfig, GroupCoordinator, OFFSETS_TOPIC};
