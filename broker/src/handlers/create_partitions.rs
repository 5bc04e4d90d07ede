//! CreatePartitions: grow a topic's partition count.
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use crate::context::{str_bytes, Context};

pub fn handle(ctx: &Context, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match ctx
                .registry
                .create_partitions(&t.name, t.count, req.validate_only)
            {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.code.code())
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
