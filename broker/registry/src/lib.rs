//! Spate's schema registry core, without I/O: schemas (Avro today), the compatibility levels
//! Confluent's Schema Registry enforces, and the rules each format's readers follow. The
//! broker serves it over HTTP and stores it in the `_schemas` topic.
//!
//! - `avro.rs` — parsing, canonical form, Avro's schema resolution rules.
//! - `compat.rs` — compatibility levels (BACKWARD, FORWARD, FULL and their transitive forms).
//! - `records.rs` — the `_schemas` topic's record format (Confluent's).
//! - `state.rs` — the registry as a replay of that topic, and what a registration decides.
//! - `error.rs` — errors with Confluent's codes.
//! - `api.rs` — Confluent's REST API as a function from request to response and records.

pub mod api;
pub mod avro;
pub mod compat;
pub mod error;
pub mod records;
pub mod state;
