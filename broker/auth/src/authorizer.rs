//! Kafka's `StandardAuthorizer` decision, over a set of ACLs: super users may do anything; a
//! matching DENY wins; else a matching ALLOW allows; else, when no ACL at all names the
//! resource, `allow.everyone.if.no.acl.found` decides.
use std::collections::BTreeMap;

use crate::acl::{AclBinding, Operation, PatternType, Permission, ResourceType, WILDCARD};

/// ACLs indexed by resource type, with the authorizer's settings.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    by_type: BTreeMap<ResourceType, Vec<AclBinding>>,
    super_users: Vec<String>,
    allow_if_no_acl: bool,
}

/// Who asks: the principal (`User:alice`) and the client's IP address.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub principal: &'a str,
    pub host: &'a str,
}

impl Authorizer {
    pub fn new<'a>(
        acls: impl IntoIterator<Item = &'a AclBinding>,
        super_users: Vec<String>,
        allow_if_no_acl: bool,
    ) -> Self {
        let mut by_type: BTreeMap<ResourceType, Vec<AclBinding>> = BTreeMap::new();
        for a in acls {
            by_type.entry(a.resource_type).or_default().push(a.clone());
        }
        Self {
            by_type,
            super_users,
            allow_if_no_acl,
        }
    }

    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.iter().any(|s| s == principal)
    }

    /// May `who` do `op` on the resource `name` of type `rt`?
    pub fn authorize(
        &self,
        who: Requester<'_>,
        op: Operation,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        if self.is_super_user(who.principal) {
            return true;
        }
        let (mut any_acl, mut allowed) = (false, false);
        for acl in self.by_type.get(&rt).into_iter().flatten() {
            let names_it = match acl.pattern_type {
                PatternType::Literal => acl.resource_name == name || acl.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&acl.resource_name),
                _ => false,
            };
            if !names_it {
                continue;
            }
            any_acl = true;
            match grants(acl, who, op) {
                Some(Permission::Deny) => return false,
                Some(Permission::Allow) => allowed = true,
                _ => {}
            }
        }
        if any_acl {
            allowed
        } else {
            self.allow_if_no_acl
        }
    }

    /// Kafka's `authorizeByResourceType`: may `who` do `op` on at least one resource of type
    /// `rt` (an ALLOW for some literal or prefixed name not covered by a DENY)? InitProducerId
    /// uses it for idempotent producers without IDEMPOTENT_WRITE on the cluster.
    pub fn authorize_any(&self, who: Requester<'_>, op: Operation, rt: ResourceType) -> bool {
        if self.is_super_user(who.principal) {
            return true;
        }
        let acls: Vec<&AclBinding> = self.by_type.get(&rt).into_iter().flatten().collect();
        let denies = |name: &str, prefixed: bool| {
            acls.iter().any(|d| {
                grants(d, who, op) == Some(Permission::Deny)
                    && match d.pattern_type {
                        PatternType::Literal => {
                            d.resource_name == WILDCARD || (!prefixed && d.resource_name == name)
                        }
                        PatternType::Prefixed => name.starts_with(&d.resource_name),
                        _ => false,
                    }
            })
        };
        if acls.is_empty() {
            return self.allow_if_no_acl;
        }
        acls.iter().any(|a| {
            grants(a, who, op) == Some(Permission::Allow)
                && !denies(&a.resource_name, a.pattern_type == PatternType::Prefixed)
        })
    }

    /// The authorized-operations bitfield (bit `1 << code`) of a resource, over the operations
    /// Kafka reports for its type.
    pub fn allowed_operations(&self, who: Requester<'_>, rt: ResourceType, name: &str) -> i32 {
        rt.supported_operations()
            .iter()
            .filter(|op| self.authorize(who, **op, rt, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

/// Whether `acl` speaks for `who` doing `op`: its permission if so. ALLOW of READ, WRITE,
/// DELETE or ALTER implies DESCRIBE; ALLOW of ALTER_CONFIGS implies DESCRIBE_CONFIGS; ALL
/// covers every operation; a DENY covers only its own operation (or ALL).
fn grants(acl: &AclBinding, who: Requester<'_>, op: Operation) -> Option<Permission> {
    let principal_matches = acl.principal == who.principal || acl.principal == "User:*";
    let host_matches = acl.host == WILDCARD || acl.host == who.host;
    if !principal_matches || !host_matches {
        return None;
    }
    let covers = acl.operation == Operation::All
        || acl.operation == op
        || (acl.permission == Permission::Allow
            && match op {
                Operation::Describe => matches!(
                    acl.operation,
                    Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                ),
                Operation::DescribeConfigs => acl.operation == Operation::AlterConfigs,
                _ => false,
            });
    covers.then_some(acl.permission)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::tests::binding;
    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    const ALICE: Requester = Requester {
        principal: "User:alice",
        host: "10.0.0.1",
    };
    const BOB: Requester = Requester {
        principal: "User:bob",
        host: "10.0.0.2",
    };

    fn authz(acls: &[AclBinding]) -> Authorizer {
        Authorizer::new(acls, vec!["User:admin".into()], false)
    }

    #[test]
    fn allow_then_deny_wins() {
        let a = authz(&[
            binding(Topic, "orders", Literal, "User:alice", Read, Allow),
            binding(Topic, "ord", Prefixed, "User:*", Write, Allow),
            binding(Topic, "orders", Literal, "User:bob", Write, Deny),
        ]);
        assert!(a.authorize(ALICE, Read, Topic, "orders"));
        assert!(!a.authorize(BOB, Read, Topic, "orders"));
        assert!(
            a.authorize(ALICE, Write, Topic, "orders"),
            "prefix, everyone"
        );
        assert!(!a.authorize(BOB, Write, Topic, "orders"), "deny wins");
        assert!(a.authorize(BOB, Write, Topic, "ordinal"));
        assert!(
            !a.authorize(ALICE, Read, Topic, "payments"),
            "no ACL, not allowed by default"
        );
    }

    #[test]
    fn implied_operations_are_kafkas() {
        let a = authz(&[
            binding(Topic, "t", Literal, "User:alice", Write, Allow),
            binding(Topic, "t", Literal, "User:alice", AlterConfigs, Allow),
            binding(Topic, "u", Literal, "User:alice", All, Allow),
            binding(Topic, "v", Literal, "User:alice", All, Deny),
            binding(Topic, "v", Literal, "User:alice", Read, Allow),
        ]);
        assert!(a.authorize(ALICE, Describe, Topic, "t"));
        assert!(a.authorize(ALICE, DescribeConfigs, Topic, "t"));
        assert!(!a.authorize(ALICE, Read, Topic, "t"));
        assert!(a.authorize(ALICE, Delete, Topic, "u"));
        assert!(
            !a.authorize(ALICE, Read, Topic, "v"),
            "DENY ALL covers READ"
        );
    }

    #[test]
    fn super_users_hosts_and_the_no_acl_rule() {
        let a = authz(&[binding(Group, "g", Literal, "User:alice", Read, Allow)]);
        assert!(a.authorize(
            Requester {
                principal: "User:admin",
                host: "1.2.3.4"
            },
            Alter,
            Cluster,
            "kafka-cluster"
        ));
        let mut from_host = binding(Group, "h", Literal, "User:alice", Read, Allow);
        from_host.host = "10.0.0.9".into();
        let b = authz(&[from_host]);
        assert!(!b.authorize(ALICE, Read, Group, "h"));
        let open = Authorizer::new(
            &[binding(Topic, "locked", Literal, "User:alice", Read, Allow)],
            vec![],
            true,
        );
        assert!(open.authorize(BOB, Write, Topic, "free"), "no ACL names it");
        assert!(
            !open.authorize(BOB, Read, Topic, "locked"),
            "an ACL names it"
        );
    }

    #[test]
    fn by_resource_type_needs_an_allow_not_covered_by_a_deny() {
        let a = authz(&[binding(Topic, "t", Literal, "User:alice", Write, Allow)]);
        assert!(a.authorize_any(ALICE, Write, Topic));
        assert!(!a.authorize_any(BOB, Write, Topic));
        let denied = authz(&[
            binding(Topic, "t", Literal, "User:alice", Write, Allow),
            binding(Topic, "*", Literal, "User:alice", Write, Deny),
        ]);
        assert!(!denied.authorize_any(ALICE, Write, Topic));
        let prefixed_deny = authz(&[
            binding(Topic, "team-a", Prefixed, "User:alice", Write, Allow),
            binding(Topic, "team", Prefixed, "User:alice", Write, Deny),
        ]);
        assert!(!prefixed_deny.authorize_any(ALICE, Write, Topic));
    }

    #[test]
    fn operation_bitfields_list_what_is_allowed() {
        let a = authz(&[binding(Topic, "t", Literal, "User:alice", Read, Allow)]);
        let bits = a.allowed_operations(ALICE, Topic, "t");
        assert_eq!(bits, (1 << Read.code()) | (1 << Describe.code()));
        assert_eq!(a.allowed_operations(BOB, Topic, "t"), 0);
    }
}
