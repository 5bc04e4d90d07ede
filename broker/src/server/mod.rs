//! TCP serving: the accept loop, one task per connection, background log maintenance.

pub mod connection;
pub mod group_timers;
pub mod listener;
pub mod maintenance;
pub mod throttle;
pub mod txn_timers;
