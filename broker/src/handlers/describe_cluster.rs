//! DescribeCluster.
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};

use crate::context::{str_bytes, Context};
use crate::handlers::cluster_view;
use crate::handlers::metadata::{cluster_operations, NO_AUTHORIZED_OPERATIONS};
use crate::security::RequestContext;

/// The request arrived on `rc.listener`: brokers are described by its addresses.
pub fn handle(
    ctx: &Context,
    req: DescribeClusterRequest,
    rc: &RequestContext,
) -> DescribeClusterResponse {
    let listener = &*rc.listener;
    let q = ctx.registry.quorum();
    DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(str_bytes(ctx.registry.cluster_id.clone()))
        .with_controller_id(cluster_view::reported_controller(q))
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            cluster_operations(ctx, rc)
        } else {
            NO_AUTHORIZED_OPERATIONS
        })
        .with_brokers(cluster_view::describe_cluster_brokers(
            &q.metadata(),
            listener,
        ))
}
