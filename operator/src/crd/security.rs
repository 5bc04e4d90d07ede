//! The security parts of a `Cluster`: per-listener TLS and authentication, authorization, and
//! the certificates the operator issues.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// TLS on a listener.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    /// Serve TLS on this listener.
    #[serde(default)]
    pub enabled: bool,
    /// Ask clients for a certificate (`ssl.client.auth`). `authentication: tls` implies
    /// `required`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// A Secret holding this listener's certificate instead of one from the cluster CA (e.g.
    /// issued by cert-manager): keys `tls.crt` (certificate chain) and `tls.key`. The
    /// operator copies it into the brokers' certificate Secret when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_secret: Option<String>,
}

/// `ssl.client.auth`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A certificate is checked when the client sends one.
    Requested,
    /// Clients without a certificate from the clients CA are refused.
    Required,
}

impl ClientAuth {
    /// The `ssl.client.auth` value.
    pub fn setting(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Requested => "requested",
            ClientAuth::Required => "required",
        }
    }
}

/// How clients of a listener authenticate.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListenerAuthentication {
    /// Anyone who reaches the listener (`User:ANONYMOUS`, or the TLS certificate's subject).
    #[default]
    #[serde(rename = "none")]
    None,
    /// SASL SCRAM-SHA-512 (`User` resources with `scram-sha-512`).
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// SASL SCRAM-SHA-256.
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// Client certificates issued by the clients CA (`User` resources with `tls`); needs
    /// `tls.enabled`.
    #[serde(rename = "tls")]
    Tls,
    /// SASL OAUTHBEARER; the JWKS and expected claims go in `spec.config`
    /// (`sasl.oauthbearer.jwks.endpoint.url`, ...).
    #[serde(rename = "oauth")]
    OAuth,
}

impl ListenerAuthentication {
    /// The SASL mechanism, for SASL authentications.
    pub fn sasl_mechanism(self) -> Option<&'static str> {
        match self {
            ListenerAuthentication::ScramSha512 => Some("SCRAM-SHA-512"),
            ListenerAuthentication::ScramSha256 => Some("SCRAM-SHA-256"),
            ListenerAuthentication::OAuth => Some("OAUTHBEARER"),
            ListenerAuthentication::None | ListenerAuthentication::Tls => None,
        }
    }
}

/// Authorization of client requests.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationSpec {
    /// `simple`: Kafka's StandardAuthorizer with ACLs (managed with `User` resources or
    /// `kafka-acls`).
    #[serde(rename = "type")]
    pub type_: AuthorizationType,
    /// Principals allowed everything (`super.users`), e.g. `User:admin` or `admin`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub super_users: Vec<String>,
}

/// The authorizer.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AuthorizationType {
    /// ACLs, as Kafka's StandardAuthorizer.
    Simple,
}

/// The certificate authorities and certificates the operator runs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.renewalDays < self.validityDays")
    .message("certificates.renewalDays must be below validityDays"))]
pub struct CertificatesSpec {
    /// Days a broker or user certificate is valid (the CAs get five times as long).
    #[serde(default = "default_validity_days")]
    #[schemars(range(min = 2, max = 3650))]
    pub validity_days: i32,
    /// Certificates are renewed this many days before they expire; renewed broker
    /// certificates roll the brokers one at a time.
    #[serde(default = "default_renewal_days")]
    #[schemars(range(min = 1, max = 3649))]
    pub renewal_days: i32,
}

impl Default for CertificatesSpec {
    fn default() -> Self {
        Self {
            validity_days: default_validity_days(),
            renewal_days: default_renewal_days(),
        }
    }
}

fn default_validity_days() -> i32 {
    365
}

fn default_renewal_days() -> i32 {
    30
}
