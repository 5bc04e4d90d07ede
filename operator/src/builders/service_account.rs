//! The ServiceAccount broker pods run as. Brokers need no API access, so its token is not
//! mounted.

use k8s_openapi::api::core::v1::ServiceAccount;

use super::{labels, object_meta, service_account_name};
use crate::crd::Cluster;

/// The brokers' ServiceAccount.
pub fn build(c: &Cluster) -> ServiceAccount {
    ServiceAccount {
        metadata: object_meta(c, service_account_name(c), labels(c)),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::test_support::cluster;

    #[test]
    fn token_is_not_mounted() {
        let sa = build(&cluster(1));
        assert_eq!(sa.metadata.name.as_deref(), Some("spate-broker"));
        assert_eq!(sa.automount_service_account_token, Some(false));
    }
}
