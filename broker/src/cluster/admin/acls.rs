//! ACLs: CreateAcls and DeleteAcls proposed to the quorum; each returns once this broker's
//! authorizer sees the change (every other broker's follows within its metadata lag).
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use spate_auth::acl::{AclBinding, AclFilter};
use spate_meta::{MetaRequest, MetaResponse};

use super::super::quorum::APPLY_TIMEOUT;
use super::super::{AdminError, Registry};

impl Registry {
    pub async fn admin_create_acls(
        self: &Arc<Self>,
        acls: Vec<AclBinding>,
    ) -> Result<(), AdminError> {
        if acls.is_empty() {
            return Ok(());
        }
        let q = self.quorum();
        q.propose(MetaRequest::CreateAcls { acls: acls.clone() })
            .await?;
        q.wait_for(APPLY_TIMEOUT, |md| acls.iter().all(|a| md.acls.contains(a)))
            .await;
        tracing::info!(count = acls.len(), "ACLs created");
        Ok(())
    }

    /// Per filter, the ACLs it deleted.
    pub async fn admin_delete_acls(
        self: &Arc<Self>,
        filters: Vec<AclFilter>,
    ) -> Result<Vec<Vec<AclBinding>>, AdminError> {
        if filters.is_empty() {
            return Ok(vec![]);
        }
        let q = self.quorum();
        let deleted = match q.propose(MetaRequest::DeleteAcls { filters }).await? {
            MetaResponse::AclsDeleted(d) => d,
            other => {
                return Err(AdminError::new(
                    ResponseError::UnknownServerError,
                    format!("unexpected answer to DeleteAcls: {other:?}"),
                ))
            }
        };
        q.wait_for(APPLY_TIMEOUT, |md| {
            deleted.iter().flatten().all(|a| !md.acls.contains(a))
        })
        .await;
        tracing::info!(
            count = deleted.iter().map(Vec::len).sum::<usize>(),
            "ACLs deleted"
        );
        Ok(deleted)
    }
}
