//! Who a connection is: TLS on `SSL`/`SASL_SSL` listeners, SASL on `SASL_*` listeners, and
//! the principal of the client.
//!
//! # Layout
//! - `overrides.rs`   — per-listener settings (`listener.name.<l>.<key>`) and which settings
//!   are secrets.
//! - `tls.rs`         — a listener's TLS settings (Kafka's `ssl.*` names), building a rustls
//!   `ServerConfig` from PEM, reloading it when the files change.
//! - `dn.rs`          — a certificate's subject DN in the RFC 2253 form Kafka (Java) prints.
//! - `ssl_mapping.rs` — `ssl.principal.mapping.rules`, Kafka's `SslPrincipalMapper`.
//! - `sasl/`          — SASL settings and the per-connection authenticator (PLAIN,
//!   SCRAM-SHA-256/512 against credentials in the metadata quorum).
//! - `scram_bootstrap.rs` — `--add-scram`: the first credentials, given at start.
//! - `authz.rs`       — the authorizer (`authorizer.class.name`) over the quorum's ACLs.
//! - `quotas.rs`      — client quotas: rates per user/client-id and the throttle they earn.
//!
//! Every connection has a [`KafkaPrincipal`], as Kafka's `DefaultKafkaPrincipalBuilder`:
//! `User:ANONYMOUS` on PLAINTEXT listeners and for TLS clients without a certificate,
//! `User:<mapped subject DN>` for a client certificate, `User:<name>` after a SASL login.
//! With an authorizer, handlers ask `authz` what it may do.
pub mod authz;
pub mod dn;
pub mod overrides;
pub mod quotas;
pub mod sasl;
pub mod scram_bootstrap;
pub mod ssl_mapping;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

/// Kafka's `KafkaPrincipal`: a type (always `User` here) and a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KafkaPrincipal {
    pub principal_type: String,
    pub name: String,
}

impl KafkaPrincipal {
    pub const USER_TYPE: &'static str = "User";

    pub fn user(name: impl Into<String>) -> Self {
        Self {
            principal_type: Self::USER_TYPE.into(),
            name: name.into(),
        }
    }

    /// Kafka's principal of an unauthenticated connection.
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }
}

impl std::fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// What a request handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub peer: SocketAddr,
    /// The listener's name (as in `listeners`).
    pub listener: Arc<str>,
    pub principal: KafkaPrincipal,
}
