//! Kafka's ACL model: resource patterns, operations, permissions and the filters of
//! DescribeAcls/DeleteAcls, with the wire codes of `org.apache.kafka.common.acl` and
//! `org.apache.kafka.common.resource`.
use serde::{Deserialize, Serialize};

macro_rules! coded {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }

            /// `None` for UNKNOWN (0) and codes Kafka does not define.
            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }
        }
    };
}

coded!(
    /// `ResourceType`.
    ResourceType {
        Any = 1,
        Topic = 2,
        Group = 3,
        Cluster = 4,
        TransactionalId = 5,
        DelegationToken = 6,
        User = 7,
    }
);

coded!(
    /// `PatternType`: MATCH and ANY only in filters.
    PatternType {
        Any = 1,
        Match = 2,
        Literal = 3,
        Prefixed = 4,
    }
);

coded!(
    /// `AclOperation`.
    Operation {
        Any = 1,
        All = 2,
        Read = 3,
        Write = 4,
        Create = 5,
        Delete = 6,
        Alter = 7,
        Describe = 8,
        ClusterAction = 9,
        DescribeConfigs = 10,
        AlterConfigs = 11,
        IdempotentWrite = 12,
        CreateTokens = 13,
        DescribeTokens = 14,
    }
);

coded!(
    /// `AclPermissionType`.
    Permission {
        Any = 1,
        Deny = 2,
        Allow = 3,
    }
);

/// The one resource name of CLUSTER resources.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// Any resource name (LITERAL), any principal (`User:*`), any host.
pub const WILDCARD: &str = "*";

impl ResourceType {
    /// The operations an authorized-operations bitfield reports for this type
    /// (Kafka's `AclEntry.supportedOperations`).
    pub fn supported_operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Any => &[],
        }
    }
}

/// One ACL (Kafka's `AclBinding`): who may or may not do what to which resources, from where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:alice`, or `User:*` for everyone.
    pub principal: String,
    /// An IP address, or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Why a binding cannot be created (CreateAcls' INVALID_REQUEST messages).
pub fn validate_binding(b: &AclBinding) -> Result<(), String> {
    if matches!(b.resource_type, ResourceType::Any) {
        return Err("Invalid resource type ANY".into());
    }
    if !matches!(b.pattern_type, PatternType::Literal | PatternType::Prefixed) {
        return Err(format!("Invalid pattern type {:?}", b.pattern_type).to_uppercase());
    }
    if matches!(b.operation, Operation::Any) {
        return Err("Invalid operation ANY".into());
    }
    if matches!(b.permission, Permission::Any) {
        return Err("Invalid permission type ANY".into());
    }
    if b.resource_name.is_empty() {
        return Err("Resource name should not be empty".into());
    }
    if b.resource_type == ResourceType::Cluster && b.resource_name != CLUSTER_NAME {
        return Err("The only valid name for the CLUSTER resource is kafka-cluster".into());
    }
    if !b.principal.contains(':') {
        return Err(format!(
            "Could not parse principal from `{}` (no colon is found separating principal type from principal name)",
            b.principal
        ));
    }
    Ok(())
}

/// A DescribeAcls/DeleteAcls filter (`AclBindingFilter`): `None` and ANY match anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclFilter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        self.matches_resource(b)
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && (self.operation == Operation::Any || self.operation == b.operation)
            && (self.permission == Permission::Any || self.permission == b.permission)
    }

    /// Kafka's `ResourcePatternFilter.matches`.
    fn matches_resource(&self, b: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != b.resource_type {
            return false;
        }
        match self.pattern_type {
            PatternType::Any => {}
            PatternType::Match => {}
            p => {
                if p != b.pattern_type {
                    return false;
                }
            }
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if matches!(self.pattern_type, PatternType::Match) {
            return match b.pattern_type {
                PatternType::Literal => b.resource_name == *name || b.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&b.resource_name),
                _ => false,
            };
        }
        b.resource_name == *name
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn binding(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        principal: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    fn filter(rt: ResourceType, name: Option<&str>, pt: PatternType) -> AclFilter {
        AclFilter {
            resource_type: rt,
            resource_name: name.map(str::to_string),
            pattern_type: pt,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        }
    }

    #[test]
    fn codes_are_kafkas() {
        assert_eq!(Operation::from_code(8), Some(Operation::Describe));
        assert_eq!(Operation::from_code(0), None);
        assert_eq!(ResourceType::Topic.code(), 2);
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert_eq!(Permission::from_code(3), Some(Permission::Allow));
    }

    #[test]
    fn filters_match_as_kafkas_resource_pattern_filter() {
        use PatternType::{Literal, Match, Prefixed};
        use ResourceType::{Group, Topic};
        let (any_type, any_pattern) = (ResourceType::Any, PatternType::Any);
        let lit = binding(
            Topic,
            "orders",
            Literal,
            "User:a",
            Operation::Read,
            Permission::Allow,
        );
        let star = binding(
            Topic,
            "*",
            Literal,
            "User:a",
            Operation::Read,
            Permission::Allow,
        );
        let pre = binding(
            Topic,
            "ord",
            Prefixed,
            "User:a",
            Operation::Read,
            Permission::Allow,
        );
        let all = [&lit, &star, &pre];
        let hits = |f: AclFilter| all.iter().filter(|b| f.matches(b)).count();
        assert_eq!(hits(filter(any_type, None, any_pattern)), 3);
        assert_eq!(
            hits(filter(Topic, Some("orders"), any_pattern)),
            1,
            "ANY: names equal"
        );
        assert_eq!(hits(filter(Topic, Some("orders"), Literal)), 1);
        assert_eq!(hits(filter(Topic, Some("ord"), Prefixed)), 1);
        assert_eq!(
            hits(filter(Topic, Some("orders"), Match)),
            3,
            "MATCH: the literal, the wildcard and the prefix"
        );
        assert_eq!(
            hits(filter(Topic, Some("other"), Match)),
            1,
            "only the wildcard"
        );
        assert_eq!(hits(filter(Group, None, any_pattern)), 0);
        let mut by_principal = filter(any_type, None, any_pattern);
        by_principal.principal = Some("User:b".into());
        assert_eq!(hits(by_principal), 0);
    }

    #[test]
    fn invalid_bindings_are_explained() {
        use PatternType::{Literal, Match};
        use ResourceType::{Cluster, Topic};
        let ok = binding(
            Topic,
            "t",
            Literal,
            "User:a",
            Operation::Read,
            Permission::Allow,
        );
        assert_eq!(validate_binding(&ok), Ok(()));
        for bad in [
            AclBinding {
                resource_type: ResourceType::Any,
                ..ok.clone()
            },
            AclBinding {
                pattern_type: Match,
                ..ok.clone()
            },
            AclBinding {
                operation: Operation::Any,
                ..ok.clone()
            },
            AclBinding {
                permission: Permission::Any,
                ..ok.clone()
            },
            AclBinding {
                resource_name: String::new(),
                ..ok.clone()
            },
            AclBinding {
                resource_type: Cluster,
                resource_name: "c".into(),
                ..ok.clone()
            },
            AclBinding {
                principal: "alice".into(),
                ..ok.clone()
            },
        ] {
            assert!(validate_binding(&bad).is_err(), "{bad:?}");
        }
    }
}
