//! Authorization as Kafka's `StandardAuthorizer` does it, enabled by `authorizer.class.name`:
//! the decision rules are `spate_auth::authorizer`; this file keeps an authorizer built from the
//! ACLs in the metadata quorum (rebuilt when they change) and answers handlers' questions for
//! a connection's principal and address. Without an authorizer everything is allowed.
use std::sync::Arc;

use parking_lot::Mutex;
use spate_auth::acl::{Operation, ResourceType};
use spate_auth::authorizer::{Authorizer, Requester};

use super::RequestContext;
use crate::cluster::Registry;
use crate::config::{invalid, ConfigError};
use crate::observability::Metrics;

/// The values of `authorizer.class.name` that turn authorization on (Kafka 4's authorizer;
/// its pre-KRaft name too, so existing configs work).
const STANDARD: &[&str] = &[
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

/// `authorizer.class.name`, `super.users`, `allow.everyone.if.no.acl.found`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzSettings {
    pub super_users: Vec<String>,
    pub allow_if_no_acl: bool,
}

impl AuthzSettings {
    /// `None` when no authorizer is configured.
    pub fn parse(
        class: &str,
        super_users: &str,
        allow_if_no_acl: &str,
    ) -> Result<Option<Self>, ConfigError> {
        match class.trim() {
            "" => return Ok(None),
            c if STANDARD.contains(&c) => {}
            other => return Err(invalid(
                "authorizer.class.name",
                other,
                "the only authorizer is org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            )),
        }
        let super_users = super_users
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.contains(':') {
                    Ok(s.to_string())
                } else {
                    Err(invalid(
                        "super.users",
                        s,
                        "expected principals such as User:admin, separated by ';'",
                    ))
                }
            })
            .collect::<Result<_, _>>()?;
        let allow_if_no_acl = match allow_if_no_acl.trim() {
            "true" => true,
            "false" => false,
            other => {
                return Err(invalid(
                    "allow.everyone.if.no.acl.found",
                    other,
                    "expected true or false",
                ))
            }
        };
        Ok(Some(Self {
            super_users,
            allow_if_no_acl,
        }))
    }
}

/// The broker's authorizer: settings plus an index of the current ACLs.
pub struct Authz {
    settings: Option<AuthzSettings>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    /// (ACL version it was built from, the authorizer).
    cache: Mutex<(u64, Arc<Authorizer>)>,
}

impl Authz {
    pub fn new(
        settings: Option<AuthzSettings>,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let empty = Authorizer::new(
            [],
            settings
                .as_ref()
                .map(|s| s.super_users.clone())
                .unwrap_or_default(),
            settings.as_ref().is_some_and(|s| s.allow_if_no_acl),
        );
        Self {
            settings,
            registry,
            metrics,
            cache: Mutex::new((0, Arc::new(empty))),
        }
    }

    pub fn enabled(&self) -> bool {
        self.settings.is_some()
    }

    fn current(&self) -> Arc<Authorizer> {
        let md = self.registry.quorum().metadata();
        let mut cache = self.cache.lock();
        if cache.0 != md.acls_version {
            let s = self.settings.as_ref();
            let built = Authorizer::new(
                md.acls.iter(),
                s.map(|s| s.super_users.clone()).unwrap_or_default(),
                s.is_some_and(|s| s.allow_if_no_acl),
            );
            *cache = (md.acls_version, Arc::new(built));
        }
        cache.1.clone()
    }

    /// Asks the current authorizer about the connection's principal and address.
    fn ask<T>(
        &self,
        rc: &RequestContext,
        question: impl FnOnce(&Authorizer, Requester<'_>) -> T,
    ) -> T {
        let (principal, host) = (rc.principal.to_string(), rc.peer.ip().to_string());
        question(
            &self.current(),
            Requester {
                principal: &principal,
                host: &host,
            },
        )
    }

    /// May the connection do `op` on `rt` `name`? Denials are counted.
    pub fn allows(&self, rc: &RequestContext, op: Operation, rt: ResourceType, name: &str) -> bool {
        if !self.enabled() {
            return true;
        }
        let allowed = self.ask(rc, |a, who| a.authorize(who, op, rt, name));
        if !allowed {
            self.denied(rt);
        }
        allowed
    }

    /// Like `allows`, but a "no" is not counted: for filtering lists (Metadata for all
    /// topics, ListGroups), where leaving things out is the answer, not a refusal.
    pub fn sees(&self, rc: &RequestContext, op: Operation, rt: ResourceType, name: &str) -> bool {
        !self.enabled() || self.ask(rc, |a, who| a.authorize(who, op, rt, name))
    }

    /// May the connection do `op` on some resource of type `rt` (Kafka's
    /// `authorizeByResourceType`)?
    pub fn allows_any(&self, rc: &RequestContext, op: Operation, rt: ResourceType) -> bool {
        if !self.enabled() {
            return true;
        }
        let allowed = self.ask(rc, |a, who| a.authorize_any(who, op, rt));
        if !allowed {
            self.denied(rt);
        }
        allowed
    }

    /// The authorized-operations bitfield of a resource; every supported operation when
    /// there is no authorizer, as Kafka.
    pub fn operations(&self, rc: &RequestContext, rt: ResourceType, name: &str) -> i32 {
        if !self.enabled() {
            return rt
                .supported_operations()
                .iter()
                .fold(0, |bits, op| bits | (1 << op.code()));
        }
        self.ask(rc, |a, who| a.allowed_operations(who, rt, name))
    }

    fn denied(&self, rt: ResourceType) {
        let label = match rt {
            ResourceType::Topic => "topic",
            ResourceType::Group => "group",
            ResourceType::Cluster => "cluster",
            ResourceType::TransactionalId => "transactional_id",
            _ => "other",
        };
        self.metrics
            .authorization_denied
            .with_label_values(&[label])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_as_kafka_names_them() {
        assert_eq!(AuthzSettings::parse("", "User:a", "false").unwrap(), None);
        let s = AuthzSettings::parse(
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "User:admin; User:CN=broker,O=x",
            "true",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.super_users, ["User:admin", "User:CN=broker,O=x"]);
        assert!(s.allow_if_no_acl);
        assert!(AuthzSettings::parse("com.example.Mine", "", "false").is_err());
        assert!(AuthzSettings::parse(STANDARD[0], "admin", "false").is_err());
        assert!(AuthzSettings::parse(STANDARD[0], "", "yes").is_err());
    }
}
