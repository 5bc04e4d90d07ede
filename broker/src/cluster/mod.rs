//! Topics, partitions and their configs on this broker.

pub mod names;
pub mod partition;
pub mod registry;
pub mod topic_config;

pub use partition::{AppendError, Appended, Partition};
pub use registry::{AdminError, Registry, Topic, TopicMeta};
