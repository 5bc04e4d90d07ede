//! Spate's SASL mechanisms and authorization rules, sans-io: each takes the client's token bytes and returns the next
//! server token or a verdict. Sockets, framing (SaslHandshake / SaslAuthenticate) and where
//! credentials are stored belong to the broker.
//!
//! # Layout
//! - `scram.rs`        — SCRAM-SHA-256/512 (RFC 5802, RFC 7677): mechanisms, stored
//!   credentials and the key derivation Kafka's `ScramFormatter` does.
//! - `scram_messages.rs` — parsing and formatting of the four SCRAM messages.
//! - `scram_server.rs` — the server side of an exchange, as Kafka's `ScramSaslServer`.
//! - `scram_client.rs` — the client side (tests, and brokers or the operator logging in).
//! - `plain.rs`        — PLAIN (RFC 4616), checked against a user's SCRAM credential.
//! - `oauthbearer.rs`  — OAUTHBEARER (RFC 7628): the initial response and JWT validation
//!   against a JWKS.
//! - `acl.rs`          — Kafka's ACL model (resource patterns, operations, filters).
//! - `authorizer.rs`   — the `StandardAuthorizer` decision over a set of ACLs.
//! - `quota.rs`        — client quota entities, their resolution and the throttle arithmetic.
//!
//! Errors never say whether a user exists: an unknown user and a wrong password fail alike.
pub mod acl;
pub mod authorizer;
pub mod oauthbearer;
mod plain;
pub mod quota;
mod scram;
mod scram_client;
mod scram_messages;
mod scram_server;

pub use plain::{PlainError, PlainResponse};
pub use scram::{ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};
pub use scram_client::ScramClient;
pub use scram_messages::{ClientFirst, ScramError};
pub use scram_server::{ScramServer, ScramServerFinal};

/// A random printable nonce of `len` characters from the OS CSPRNG.
pub fn random_nonce(len: usize) -> String {
    use base64::Engine;
    let mut bytes = vec![0u8; len];
    fill_random(&mut bytes);
    let mut s = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    s.truncate(len);
    s
}

/// Fills `out` from the OS CSPRNG.
pub fn fill_random(out: &mut [u8]) {
    use ring::rand::SecureRandom;
    // SystemRandom fails only when the OS has no entropy source at all; nothing can run then.
    ring::rand::SystemRandom::new()
        .fill(out)
        .expect("the OS random number generator failed");
}
