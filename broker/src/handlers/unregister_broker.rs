//! UnregisterBroker (API 64, `kafka-cluster.sh unregister --id N`): a decommissioned broker
//! leaves the cluster for good.
//!
//! Its registration is removed (it leaves every ISR and leadership; its replica assignments
//! stay until reassigned, as in Kafka) and, if it is a broker-only node, it is removed from the
//! metadata quorum's learners so the leader stops replicating to it. A voter stays a voter:
//! remove it with RemoveRaftVoter first. Unregistering a broker that still runs is allowed but
//! pointless: it registers and joins again when it restarts.
use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};

use crate::context::{str_bytes, Context};

pub async fn handle(ctx: &Context, req: UnregisterBrokerRequest) -> UnregisterBrokerResponse {
    match ctx.registry.admin_unregister_broker(req.broker_id.0).await {
        Ok(()) => UnregisterBrokerResponse::default(),
        Err(e) => UnregisterBrokerResponse::default()
            .with_error_code(e.code.code())
            .with_error_message(Some(str_bytes(e.message))),
    }
}
