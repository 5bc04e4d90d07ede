//! DescribeCluster.
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};

use crate::context::{str_bytes, Context};
use crate::handlers::metadata::{CLUSTER_OPERATIONS, NO_AUTHORIZED_OPERATIONS};

/// `listener` is the one the request arrived on: brokers are described by its addresses.
pub fn handle(
    ctx: &Context,
    req: DescribeClusterRequest,
    listener: &str,
) -> DescribeClusterResponse {
    let (host, port) = ctx.advertised(listener);
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(str_bytes(ctx.registry.cluster_id.clone()))
        .with_controller_id(ctx.node_id())
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            NO_AUTHORIZED_OPERATIONS
        })
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(ctx.node_id())
            .with_host(host)
            .with_port(port)]);
    match ctx.registry.quorum() {
        None => response,
        Some(q) => response
            .with_controller_id(crate::handlers::cluster_view::reported_controller(q))
            .with_brokers(crate::handlers::cluster_view::describe_cluster_brokers(
                &q.metadata(),
                listener,
            )),
    }
}
