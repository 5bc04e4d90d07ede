//! The `User` resource: one Kafka user on one `Cluster`, with its credential, ACLs and quotas
//! (Strimzi's `KafkaUser`). The Kafka user name is the resource name (principal `User:<name>`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A user of a Spate cluster: a SCRAM credential or a client certificate, kept in a Secret
/// named after the user, plus the user's ACLs and quotas.
// `printcolumn(type_ = ...)` repeats per column; clippy mistakes that for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "spate.dev",
    version = "v1alpha1",
    kind = "User",
    namespaced,
    status = "UserStatus",
    derive = "PartialEq",
    shortname = "spu",
    category = "spate",
    doc = "A Kafka user on a Spate Cluster: credential, ACLs and quotas",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef"),
    printcolumn(
        name = "Authentication",
        type_ = "string",
        json_path = ".spec.authentication.type"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    /// Name of the `Cluster` (same namespace) the user belongs to.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable"))]
    pub cluster_ref: String,

    /// How the user authenticates.
    pub authentication: UserAuthentication,

    /// The user's ACLs. Without it the user has none (ACLs of `User:<name>` made by other
    /// means are removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<UserAuthorization>,

    /// The user's quotas (entity `user=<name>`). Quotas not listed are removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<UserQuotas>,
}

/// How a user authenticates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'tls' || !has(self.password)")
    .message("tls users cannot have a password"))]
pub struct UserAuthentication {
    /// `scram-sha-512`, `scram-sha-256` (SASL SCRAM) or `tls` (a client certificate from the
    /// cluster's clients CA).
    #[serde(rename = "type")]
    pub type_: AuthenticationType,

    /// Where the SCRAM password comes from. Without it the operator generates a random
    /// 32-character password once and keeps it in the user's Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordSource>,
}

/// The authentication mechanism of a user.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthenticationType {
    /// SASL SCRAM-SHA-512.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// SASL SCRAM-SHA-256.
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// A client certificate issued by the cluster's clients CA.
    #[serde(rename = "tls")]
    Tls,
}

/// A password given by the user instead of a generated one.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSource {
    /// The Secret key holding the password.
    pub value_from: PasswordValueFrom,
}

/// Where a password is read from.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordValueFrom {
    /// A key of a Secret in the user's namespace.
    pub secret_key_ref: SecretKeyRef,
}

/// A key of a Secret in the same namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key in the Secret's data.
    pub key: String,
}

/// The user's ACLs.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthorization {
    /// ACL rules; each operation of a rule becomes one Kafka ACL of principal `User:<name>`.
    #[serde(default)]
    pub acls: Vec<AclRule>,
}

/// Operations allowed (or denied) on one resource pattern.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AclRule {
    /// The resources the rule is about.
    pub resource: AclResource,
    /// Kafka operations (`Read`, `Write`, `Describe`, ...).
    #[schemars(length(min = 1))]
    pub operations: Vec<AclOperation>,
    /// Client host (IP address) the rule applies to; `*` for any.
    #[serde(default = "any_host")]
    pub host: String,
    /// Allow or deny.
    #[serde(rename = "type", default)]
    pub type_: AclRuleType,
}

fn any_host() -> String {
    "*".to_string()
}

/// A Kafka resource pattern.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "self.type == 'cluster' ? (!has(self.name) || self.name == 'kafka-cluster') : (has(self.name) && size(self.name) > 0)"
).message("name is required (and is kafka-cluster, or omitted, for type cluster)"))]
pub struct AclResource {
    /// `topic`, `group`, `cluster` or `transactionalId`.
    #[serde(rename = "type")]
    pub type_: AclResourceType,
    /// Resource name, or name prefix with `patternType: prefix`; `*` for every resource of
    /// the type. Omitted (or `kafka-cluster`) for `cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `literal` (the exact name) or `prefix` (every name that starts with it).
    #[serde(default)]
    pub pattern_type: AclPatternType,
}

/// Kafka resource types a user's ACLs can name.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AclResourceType {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// The cluster (`kafka-cluster`).
    Cluster,
    /// A transactional id.
    TransactionalId,
}

/// How a resource name matches.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AclPatternType {
    /// The exact name (`*`: every resource of the type).
    #[default]
    Literal,
    /// Every name starting with `name`.
    Prefix,
}

/// Kafka ACL operations, spelled as Kafka's `AclOperation` in PascalCase.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclOperation {
    /// Every operation.
    All,
    /// Read.
    Read,
    /// Write.
    Write,
    /// Create.
    Create,
    /// Delete.
    Delete,
    /// Alter.
    Alter,
    /// Describe.
    Describe,
    /// ClusterAction.
    ClusterAction,
    /// DescribeConfigs.
    DescribeConfigs,
    /// AlterConfigs.
    AlterConfigs,
    /// IdempotentWrite.
    IdempotentWrite,
}

/// Whether a rule allows or denies.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AclRuleType {
    /// Allow the operations.
    #[default]
    Allow,
    /// Deny them (a deny wins over any allow).
    Deny,
}

/// Client quotas of the user (entity `user=<name>`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserQuotas {
    /// `producer_byte_rate`: bytes per second the user may produce, per broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub producer_byte_rate: Option<i64>,
    /// `consumer_byte_rate`: bytes per second the user may fetch, per broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub consumer_byte_rate: Option<i64>,
    /// `request_percentage`: share of one request-handler thread (per broker) the user's
    /// requests may take, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0").message("requestPercentage must be positive"))]
    pub request_percentage: Option<f64>,
}

/// Observed state of a User.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// `Ready`, `metav1.Condition`-style; its reason says what is wrong when it is `False`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Kafka user name (principal `User:<username>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The Secret holding the user's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl User {
    /// The Kafka user name: the resource name.
    pub fn username(&self) -> String {
        self.name_any()
    }

    /// The Kafka principal, `User:<name>`.
    pub fn principal(&self) -> String {
        format!("User:{}", self.username())
    }

    /// The Secret with the user's credentials: named after the user.
    pub fn secret_name(&self) -> String {
        self.name_any()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::json;

    fn user(spec: serde_json::Value) -> User {
        let mut u = User::new("alice", serde_json::from_value(spec).expect("spec parses"));
        u.metadata.namespace = Some("default".into());
        u
    }

    fn scram() -> serde_json::Value {
        json!({"clusterRef": "spate", "authentication": {"type": "scram-sha-512"}})
    }

    #[test]
    fn spec_parses_with_defaults() {
        let u = user(json!({
            "clusterRef": "spate",
            "authentication": {"type": "scram-sha-256",
                "password": {"valueFrom": {"secretKeyRef": {"name": "alice-pw", "key": "password"}}}},
            "authorization": {"acls": [
                {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read", "Describe"]},
                {"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"], "type": "deny", "host": "10.0.0.1"}
            ]},
            "quotas": {"producerByteRate": 1048576, "requestPercentage": 12.5}
        }));
        assert_eq!(u.principal(), "User:alice");
        assert_eq!(u.spec.authentication.type_, AuthenticationType::ScramSha256);
        let acls = &u.spec.authorization.as_ref().expect("authorization").acls;
        assert_eq!(acls[0].host, "*");
        assert_eq!(acls[0].type_, AclRuleType::Allow);
        assert_eq!(acls[0].resource.pattern_type, AclPatternType::Literal);
        assert_eq!(acls[1].resource.name, None);
        assert_eq!(acls[1].type_, AclRuleType::Deny);
        let q = u.spec.quotas.as_ref().expect("quotas");
        assert_eq!(q.producer_byte_rate, Some(1_048_576));
        assert_eq!(q.consumer_byte_rate, None);
        assert_eq!(q.request_percentage, Some(12.5));
    }

    #[test]
    fn crd_has_short_name_columns_and_rules() {
        let crd = User::crd();
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&["spu".to_string()][..])
        );
        let json = serde_json::to_string(&crd).expect("crd serializes");
        for want in [
            "clusterRef is immutable",
            "tls users cannot have a password",
            "kafka-cluster",
            ".spec.authentication.type",
            "scram-sha-256",
            "transactionalId",
            "IdempotentWrite",
        ] {
            assert!(json.contains(want), "missing {want}");
        }
    }

    #[test]
    fn cel_refuses_a_password_for_a_tls_user() {
        let u = user(
            json!({"clusterRef": "spate", "authentication": {"type": "tls",
            "password": {"valueFrom": {"secretKeyRef": {"name": "pw", "key": "p"}}}}}),
        );
        let err = kube::core::cel::validate_cel(&u).expect_err("tls + password refused");
        assert!(format!("{err:?}").contains("tls users cannot have a password"));
        kube::core::cel::validate_cel(&user(scram())).expect("scram without password is fine");
    }

    #[test]
    fn cel_checks_resource_names() {
        let with = |resource: serde_json::Value| {
            let mut spec = scram();
            spec["authorization"] =
                json!({"acls": [{"resource": resource, "operations": ["All"]}]});
            kube::core::cel::validate_cel(&user(spec))
        };
        assert!(
            with(json!({"type": "topic"})).is_err(),
            "topic needs a name"
        );
        assert!(with(json!({"type": "topic", "name": ""})).is_err());
        assert!(with(json!({"type": "cluster", "name": "other"})).is_err());
        with(json!({"type": "cluster"})).expect("cluster without a name");
        with(json!({"type": "cluster", "name": "kafka-cluster"})).expect("cluster by name");
        with(json!({"type": "group", "name": "app-", "patternType": "prefix"})).expect("prefix");
    }

    #[test]
    fn cel_refuses_non_positive_request_percentage() {
        let mut spec = scram();
        spec["quotas"] = json!({"requestPercentage": 0.0});
        assert!(kube::core::cel::validate_cel(&user(spec.clone())).is_err());
        spec["quotas"] = json!({"requestPercentage": 50.0});
        kube::core::cel::validate_cel(&user(spec)).expect("positive percentage");
    }

    #[test]
    fn cel_refuses_moving_to_another_cluster() {
        let old = user(scram());
        let mut new = old.clone();
        new.spec.cluster_ref = "other".into();
        let err = kube::core::cel::validate_cel_update(&new, &old).expect_err("refused");
        assert!(format!("{err:?}").contains("clusterRef is immutable"));
    }
}
