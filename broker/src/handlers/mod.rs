//! One file per Kafka API; `dispatch` routes a decoded request to its handler.

pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod produce;

use crate::context::Context;
use crate::protocol::{Request, RequestEnvelope, Response};

/// Runs one request. `None` means the client expects no response (Produce with acks=0).
pub async fn dispatch(ctx: &Context, env: RequestEnvelope) -> Option<Response> {
    let v = env.version;
    Some(match env.body {
        Request::ApiVersions(r) => Response::ApiVersions(api_versions::handle(r)),
        Request::Metadata(r) => Response::Metadata(metadata::handle(ctx, v, r)),
        Request::Produce(r) => Response::Produce(produce::handle(ctx, r)?),
        Request::Fetch(r) => Response::Fetch(fetch::handle(ctx, v, r).await),
        Request::ListOffsets(r) => Response::ListOffsets(list_offsets::handle(ctx, v, r)),
        Request::CreateTopics(r) => Response::CreateTopics(create_topics::handle(ctx, v, r)),
        Request::DeleteTopics(r) => Response::DeleteTopics(delete_topics::handle(ctx, v, r)),
        Request::CreatePartitions(r) => Response::CreatePartitions(create_partitions::handle(ctx, r)),
        Request::DeleteRecords(r) => Response::DeleteRecords(delete_records::handle(ctx, r)),
        Request::DescribeConfigs(r) => Response::DescribeConfigs(describe_configs::handle(ctx, r)),
        Request::AlterConfigs(r) => Response::AlterConfigs(alter_configs::handle(ctx, r)),
        Request::IncrementalAlterConfigs(r) => {
            Response::IncrementalAlterConfigs(alter_configs::handle_incremental(ctx, r))
        }
        Request::DescribeCluster(r) => Response::DescribeCluster(describe_cluster::handle(ctx, r)),
        Request::InitProducerId(r) => Response::InitProducerId(init_producer_id::handle(ctx, r)),
    })
}
