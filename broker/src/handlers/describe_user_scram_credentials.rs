//! DescribeUserScramCredentials (key 50): each user's mechanisms and iteration counts, never
//! the keys. No names (null or empty) describes every user with a credential.
use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use spate_auth::{ScramCredential, ScramMechanism};

use crate::context::Context;

pub fn handle(
    ctx: &Context,
    r: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let md = ctx.registry.quorum().metadata();
    let found = |user: &str, creds: &BTreeMap<ScramMechanism, ScramCredential>| {
        DescribeUserScramCredentialsResult::default()
            .with_user(StrBytes::from_string(user.to_string()))
            .with_credential_infos(
                creds
                    .iter()
                    .map(|(m, c)| {
                        CredentialInfo::default()
                            .with_mechanism(m.code())
                            .with_iterations(c.iterations)
                    })
                    .collect(),
            )
    };
    let failed = |user: &str, code: ResponseError, message: &'static str| {
        DescribeUserScramCredentialsResult::default()
            .with_user(StrBytes::from_string(user.to_string()))
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_static_str(message)))
    };
    let names: Vec<String> = r
        .users
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.name.to_string())
        .collect();
    let results = if names.is_empty() {
        md.scram.iter().map(|(u, c)| found(u, c)).collect()
    } else {
        names
            .iter()
            .map(|u| {
                if names.iter().filter(|n| *n == u).count() > 1 {
                    failed(
                        u,
                        ResponseError::DuplicateResource,
                        "Cannot describe SCRAM credentials for the same user twice in a single request",
                    )
                } else {
                    match md.scram.get(u) {
                        Some(c) => found(u, c),
                        None => failed(
                            u,
                            ResponseError::ResourceNotFound,
                            "Attempt to describe a user credential that does not exist",
                        ),
                    }
                }
            })
            .collect()
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
