//! ACLs (Kafka's `AccessControlEntryRecord`): created and deleted as sets, so that every
//! broker's authorizer sees one consistent list. Bindings are validated by the proposing
//! broker (Kafka's CreateAcls messages); creating an ACL that exists changes nothing.

use spate_auth::acl::{AclBinding, AclFilter};

use super::MetaResponse;
use crate::state_machine::ClusterMetadata;

pub(super) fn create(md: &mut ClusterMetadata, acls: &[AclBinding]) -> MetaResponse {
    let before = md.acls.len();
    md.acls.extend(acls.iter().cloned());
    if md.acls.len() != before {
        md.acls_version += 1;
    }
    MetaResponse::Ok
}

/// Deletes every ACL any filter matches, all at once; per filter, the ACLs it matched.
pub(super) fn delete(md: &mut ClusterMetadata, filters: &[AclFilter]) -> MetaResponse {
    let matched: Vec<Vec<AclBinding>> = filters
        .iter()
        .map(|f| md.acls.iter().filter(|a| f.matches(a)).cloned().collect())
        .collect();
    let before = md.acls.len();
    md.acls.retain(|a| !filters.iter().any(|f| f.matches(a)));
    if md.acls.len() != before {
        md.acls_version += 1;
    }
    MetaResponse::AclsDeleted(matched)
}
