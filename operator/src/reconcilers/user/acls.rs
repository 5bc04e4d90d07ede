//! The user's ACLs: one Kafka ACL per rule and operation, principal `User:<name>`. Every pass
//! lists the principal's ACLs, deletes those the spec does not ask for and creates the
//! missing ones, so ACLs added or removed by hand (`kafka-acls`) are put back.

use std::collections::BTreeSet;

use kube::runtime::events::EventType;
use spate_auth::acl::{
    validate_binding, Operation, PatternType, Permission, ResourceType, CLUSTER_NAME,
};

use super::Problem;
use crate::crd::user::{AclOperation, AclPatternType, AclResourceType, AclRule, AclRuleType};
use crate::crd::User;
use crate::kafka::security::binding_label;
use crate::kafka::{codes, AclBinding, AclFilter, KafkaAdmin, KafkaError};
use crate::reconcilers::Context;

/// The ACLs the spec asks for; `Err` names a rule Kafka would refuse.
pub fn desired(user: &User) -> Result<BTreeSet<AclBinding>, String> {
    let principal = user.principal();
    let rules = user
        .spec
        .authorization
        .as_ref()
        .map(|a| a.acls.as_slice())
        .unwrap_or_default();
    let mut out = BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        for op in &rule.operations {
            let b = binding(&principal, rule, *op);
            validate_binding(&b).map_err(|e| format!("authorization.acls[{i}]: {e}"))?;
            out.insert(b);
        }
    }
    Ok(out)
}

fn binding(principal: &str, rule: &AclRule, op: AclOperation) -> AclBinding {
    let r = &rule.resource;
    let resource_type = match r.type_ {
        AclResourceType::Topic => ResourceType::Topic,
        AclResourceType::Group => ResourceType::Group,
        AclResourceType::Cluster => ResourceType::Cluster,
        AclResourceType::TransactionalId => ResourceType::TransactionalId,
    };
    let resource_name = match (r.type_, &r.name) {
        (AclResourceType::Cluster, None) => CLUSTER_NAME.to_string(),
        (_, name) => name.clone().unwrap_or_default(),
    };
    AclBinding {
        resource_type,
        resource_name,
        pattern_type: match r.pattern_type {
            AclPatternType::Literal => PatternType::Literal,
            AclPatternType::Prefix => PatternType::Prefixed,
        },
        principal: principal.to_string(),
        host: rule.host.clone(),
        operation: operation(op),
        permission: match rule.type_ {
            AclRuleType::Allow => Permission::Allow,
            AclRuleType::Deny => Permission::Deny,
        },
    }
}

fn operation(op: AclOperation) -> Operation {
    match op {
        AclOperation::All => Operation::All,
        AclOperation::Read => Operation::Read,
        AclOperation::Write => Operation::Write,
        AclOperation::Create => Operation::Create,
        AclOperation::Delete => Operation::Delete,
        AclOperation::Alter => Operation::Alter,
        AclOperation::Describe => Operation::Describe,
        AclOperation::ClusterAction => Operation::ClusterAction,
        AclOperation::DescribeConfigs => Operation::DescribeConfigs,
        AclOperation::AlterConfigs => Operation::AlterConfigs,
        AclOperation::IdempotentWrite => Operation::IdempotentWrite,
    }
}

/// What makes `current` equal `desired`: ACLs to create, and ACLs to delete.
pub fn diff(
    desired: &BTreeSet<AclBinding>,
    current: &[AclBinding],
) -> (Vec<AclBinding>, Vec<AclBinding>) {
    let current: BTreeSet<&AclBinding> = current.iter().collect();
    let create = desired
        .iter()
        .filter(|b| !current.contains(b))
        .cloned()
        .collect();
    let delete = current
        .into_iter()
        .filter(|b| !desired.contains(*b))
        .cloned()
        .collect();
    (create, delete)
}

/// Every ACL of `principal`.
pub fn principal_filter(principal: &str) -> AclFilter {
    AclFilter {
        resource_type: ResourceType::Any,
        resource_name: None,
        pattern_type: PatternType::Any,
        principal: Some(principal.to_string()),
        host: None,
        operation: Operation::Any,
        permission: Permission::Any,
    }
}

/// Exactly `b` and nothing else.
pub fn exact_filter(b: &AclBinding) -> AclFilter {
    AclFilter {
        resource_type: b.resource_type,
        resource_name: Some(b.resource_name.clone()),
        pattern_type: b.pattern_type,
        principal: Some(b.principal.clone()),
        host: Some(b.host.clone()),
        operation: b.operation,
        permission: b.permission,
    }
}

/// `1 ACL`, `2 ACLs`.
pub fn count(n: usize) -> String {
    if n == 1 {
        "1 ACL".into()
    } else {
        format!("{n} ACLs")
    }
}

/// `Added 2 ACLs and removed 1 ACL of User:alice`.
pub fn change_message(created: usize, deleted: usize, principal: &str) -> String {
    match (created, deleted) {
        (c, 0) => format!("Added {} of {principal}", count(c)),
        (0, d) => format!("Removed {} of {principal}", count(d)),
        (c, d) => format!("Added {} and removed {} of {principal}", count(c), count(d)),
    }
}

/// Makes the principal's ACLs equal the spec's; returns how many the user has.
pub async fn sync(
    user: &User,
    ctx: &Context,
    admin: &dyn KafkaAdmin,
    changes: &mut Vec<String>,
) -> Result<usize, Problem> {
    let want = desired(user).map_err(|e| Problem::new("InvalidAcl", e))?;
    let principal = user.principal();
    let current = match admin.describe_acls(&principal_filter(&principal)).await {
        Ok(c) => c,
        Err(e) if e.code() == Some(codes::SECURITY_DISABLED) => {
            if want.is_empty() {
                return Ok(0);
            }
            return Err(Problem::new(
                "AuthorizationDisabled",
                format!(
                    "the Cluster has no authorizer, so the {} of {principal} cannot be set; enable spec.authorization on Cluster {}",
                    count(want.len()),
                    user.spec.cluster_ref
                ),
            ));
        }
        Err(e) => return Err(Problem::from_kafka("AclsRefused", &e)),
    };
    let (create, delete) = diff(&want, &current);
    if create.is_empty() && delete.is_empty() {
        return Ok(want.len());
    }
    let refused = |e| Problem::from_kafka("AclsRefused", &e);
    if !delete.is_empty() {
        let filters: Vec<AclFilter> = delete.iter().map(exact_filter).collect();
        admin.delete_acls(&filters).await.map_err(refused)?;
    }
    if !create.is_empty() {
        admin.create_acls(&create).await.map_err(refused)?;
    }
    decision!(
        user,
        "AclsSynced",
        principal = %principal,
        created = ?create.iter().map(binding_label).collect::<Vec<_>>(),
        deleted = ?delete.iter().map(binding_label).collect::<Vec<_>>(),
        "made the principal's ACLs equal spec.authorization",
    );
    let what = change_message(create.len(), delete.len(), &principal);
    ctx.event(user, EventType::Normal, "AclsChanged", what.clone())
        .await;
    changes.push(what);
    Ok(want.len())
}

/// Deletes every ACL of `principal` (none to delete without an authorizer).
pub async fn remove_all(admin: &dyn KafkaAdmin, principal: &str) -> Result<usize, KafkaError> {
    match admin.delete_acls(&[principal_filter(principal)]).await {
        Err(e) if e.code() == Some(codes::SECURITY_DISABLED) => Ok(0),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(acls: serde_json::Value) -> User {
        serde_json::from_value(json!({
            "apiVersion": "spate.dev/v1alpha1", "kind": "User",
            "metadata": {"name": "alice", "namespace": "default"},
            "spec": {"clusterRef": "spate", "authentication": {"type": "scram-sha-512"},
                     "authorization": {"acls": acls}}
        }))
        .expect("user parses")
    }

    fn acl(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        op: Operation,
        perm: Permission,
        host: &str,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: "User:alice".into(),
            host: host.into(),
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn each_operation_of_a_rule_is_one_binding() {
        let u = user(json!([
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read", "Describe"]},
            {"resource": {"type": "group", "name": "app-", "patternType": "prefix"},
             "operations": ["Read"], "type": "deny", "host": "10.0.0.1"},
            {"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"]},
            {"resource": {"type": "transactionalId", "name": "*"}, "operations": ["All"]}
        ]));
        let got = desired(&u).expect("valid");
        let want = BTreeSet::from([
            acl(
                ResourceType::Topic,
                "orders",
                PatternType::Literal,
                Operation::Read,
                Permission::Allow,
                "*",
            ),
            acl(
                ResourceType::Topic,
                "orders",
                PatternType::Literal,
                Operation::Describe,
                Permission::Allow,
                "*",
            ),
            acl(
                ResourceType::Group,
                "app-",
                PatternType::Prefixed,
                Operation::Read,
                Permission::Deny,
                "10.0.0.1",
            ),
            acl(
                ResourceType::Cluster,
                "kafka-cluster",
                PatternType::Literal,
                Operation::IdempotentWrite,
                Permission::Allow,
                "*",
            ),
            acl(
                ResourceType::TransactionalId,
                "*",
                PatternType::Literal,
                Operation::All,
                Permission::Allow,
                "*",
            ),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn no_authorization_means_no_acls() {
        let mut u = user(json!([]));
        u.spec.authorization = None;
        assert!(desired(&u).expect("valid").is_empty());
    }

    #[test]
    fn a_rule_kafka_would_refuse_is_reported() {
        let u = user(json!([{"resource": {"type": "topic"}, "operations": ["Read"]}]));
        let err = desired(&u).expect_err("topic without a name");
        assert!(err.contains("authorization.acls[0]"), "{err}");
    }

    #[test]
    fn diff_creates_missing_and_deletes_stray_acls() {
        let read = acl(
            ResourceType::Topic,
            "orders",
            PatternType::Literal,
            Operation::Read,
            Permission::Allow,
            "*",
        );
        let write = AclBinding {
            operation: Operation::Write,
            ..read.clone()
        };
        let stray = AclBinding {
            pattern_type: PatternType::Prefixed,
            ..read.clone()
        };
        let want = BTreeSet::from([read.clone(), write.clone()]);
        let (create, delete) = diff(&want, &[read.clone(), stray.clone()]);
        assert_eq!(create, vec![write]);
        assert_eq!(delete, vec![stray]);
        let (create, delete) = diff(&want, &want.iter().cloned().collect::<Vec<_>>());
        assert!(create.is_empty() && delete.is_empty());
    }

    #[test]
    fn change_messages_say_what_changed() {
        assert_eq!(change_message(3, 0, "User:a"), "Added 3 ACLs of User:a");
        assert_eq!(change_message(0, 1, "User:a"), "Removed 1 ACL of User:a");
        assert_eq!(
            change_message(1, 2, "User:a"),
            "Added 1 ACL and removed 2 ACLs of User:a"
        );
    }

    #[test]
    fn exact_filter_matches_only_its_binding() {
        let read = acl(
            ResourceType::Topic,
            "orders",
            PatternType::Literal,
            Operation::Read,
            Permission::Allow,
            "*",
        );
        let f = exact_filter(&read);
        assert!(f.matches(&read));
        for other in [
            AclBinding {
                operation: Operation::Write,
                ..read.clone()
            },
            AclBinding {
                host: "10.0.0.1".into(),
                ..read.clone()
            },
            AclBinding {
                principal: "User:bob".into(),
                ..read.clone()
            },
            AclBinding {
                pattern_type: PatternType::Prefixed,
                ..read.clone()
            },
        ] {
            assert!(!f.matches(&other), "{other:?}");
        }
        assert!(principal_filter("User:alice").matches(&read));
        assert!(!principal_filter("User:bob").matches(&read));
    }
}
