//! Response encoding: a typed response becomes a size-prefixed frame.
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;

macro_rules! responses {
    ($($api:ident => $ty:ty),* $(,)?) => {
        /// One response body, one variant per API Spate answers.
        #[derive(Debug)]
        pub enum Response { $($api($ty)),* }

        impl Response {
            pub fn api_key(&self) -> ApiKey {
                match self { $(Response::$api(_) => ApiKey::$api),* }
            }
            fn encode_body(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()> {
                match self { $(Response::$api(r) => r.encode(buf, version)),* }
            }
        }
    };
}

responses! {
    Produce => ProduceResponse,
    Fetch => FetchResponse,
    ListOffsets => ListOffsetsResponse,
    Metadata => MetadataResponse,
    ApiVersions => ApiVersionsResponse,
    CreateTopics => CreateTopicsResponse,
    DeleteTopics => DeleteTopicsResponse,
    DeleteRecords => DeleteRecordsResponse,
    InitProducerId => InitProducerIdResponse,
    DescribeConfigs => DescribeConfigsResponse,
    AlterConfigs => AlterConfigsResponse,
    CreatePartitions => CreatePartitionsResponse,
    IncrementalAlterConfigs => IncrementalAlterConfigsResponse,
    DescribeCluster => DescribeClusterResponse,
    AlterPartitionReassignments => AlterPartitionReassignmentsResponse,
    ListPartitionReassignments => ListPartitionReassignmentsResponse,
    ElectLeaders => ElectLeadersResponse,
    FindCoordinator => FindCoordinatorResponse,
    JoinGroup => JoinGroupResponse,
    SyncGroup => SyncGroupResponse,
    Heartbeat => HeartbeatResponse,
    LeaveGroup => LeaveGroupResponse,
    OffsetCommit => OffsetCommitResponse,
    OffsetFetch => OffsetFetchResponse,
    ListGroups => ListGroupsResponse,
    DescribeGroups => DescribeGroupsResponse,
    DeleteGroups => DeleteGroupsResponse,
    OffsetDelete => OffsetDeleteResponse,
    ConsumerGroupHeartbeat => ConsumerGroupHeartbeatResponse,
    ConsumerGroupDescribe => ConsumerGroupDescribeResponse,
    DescribeQuorum => DescribeQuorumResponse,
    UnregisterBroker => UnregisterBrokerResponse,
    AddRaftVoter => AddRaftVoterResponse,
    RemoveRaftVoter => RemoveRaftVoterResponse,
    AddPartitionsToTxn => AddPartitionsToTxnResponse,
    AddOffsetsToTxn => AddOffsetsToTxnResponse,
    EndTxn => EndTxnResponse,
    WriteTxnMarkers => WriteTxnMarkersResponse,
    TxnOffsetCommit => TxnOffsetCommitResponse,
    DescribeProducers => DescribeProducersResponse,
    DescribeTransactions => DescribeTransactionsResponse,
    ListTransactions => ListTransactionsResponse,
    SaslHandshake => SaslHandshakeResponse,
    SaslAuthenticate => SaslAuthenticateResponse,
    DescribeUserScramCredentials => DescribeUserScramCredentialsResponse,
    AlterUserScramCredentials => AlterUserScramCredentialsResponse,
    DescribeAcls => DescribeAclsResponse,
    CreateAcls => CreateAclsResponse,
    DeleteAcls => DeleteAclsResponse,
    DescribeClientQuotas => DescribeClientQuotasResponse,
    AlterClientQuotas => AlterClientQuotasResponse,
}

impl Response {
    /// Sets `throttle_time_ms` (a quota's delay, KIP-219) on responses that carry it.
    pub fn set_throttle_time_ms(&mut self, ms: i32) {
        match self {
            Response::Produce(r) => r.throttle_time_ms = ms,
            Response::Fetch(r) => r.throttle_time_ms = ms,
            Response::ListOffsets(r) => r.throttle_time_ms = ms,
            Response::Metadata(r) => r.throttle_time_ms = ms,
            Response::CreateTopics(r) => r.throttle_time_ms = ms,
            Response::DeleteTopics(r) => r.throttle_time_ms = ms,
            Response::DeleteRecords(r) => r.throttle_time_ms = ms,
            Response::InitProducerId(r) => r.throttle_time_ms = ms,
            Response::DescribeConfigs(r) => r.throttle_time_ms = ms,
            Response::AlterConfigs(r) => r.throttle_time_ms = ms,
            Response::CreatePartitions(r) => r.throttle_time_ms = ms,
            Response::IncrementalAlterConfigs(r) => r.throttle_time_ms = ms,
            Response::DescribeCluster(r) => r.throttle_time_ms = ms,
            Response::AlterPartitionReassignments(r) => r.throttle_time_ms = ms,
            Response::ListPartitionReassignments(r) => r.throttle_time_ms = ms,
            Response::ElectLeaders(r) => r.throttle_time_ms = ms,
            Response::FindCoordinator(r) => r.throttle_time_ms = ms,
            Response::JoinGroup(r) => r.throttle_time_ms = ms,
            Response::SyncGroup(r) => r.throttle_time_ms = ms,
            Response::Heartbeat(r) => r.throttle_time_ms = ms,
            Response::LeaveGroup(r) => r.throttle_time_ms = ms,
            Response::OffsetCommit(r) => r.throttle_time_ms = ms,
            Response::OffsetFetch(r) => r.throttle_time_ms = ms,
            Response::ListGroups(r) => r.throttle_time_ms = ms,
            Response::DescribeGroups(r) => r.throttle_time_ms = ms,
            Response::DeleteGroups(r) => r.throttle_time_ms = ms,
            Response::ConsumerGroupHeartbeat(r) => r.throttle_time_ms = ms,
            Response::ConsumerGroupDescribe(r) => r.throttle_time_ms = ms,
            Response::UnregisterBroker(r) => r.throttle_time_ms = ms,
            Response::AddRaftVoter(r) => r.throttle_time_ms = ms,
            Response::RemoveRaftVoter(r) => r.throttle_time_ms = ms,
            Response::AddPartitionsToTxn(r) => r.throttle_time_ms = ms,
            Response::AddOffsetsToTxn(r) => r.throttle_time_ms = ms,
            Response::EndTxn(r) => r.throttle_time_ms = ms,
            Response::TxnOffsetCommit(r) => r.throttle_time_ms = ms,
            Response::DescribeProducers(r) => r.throttle_time_ms = ms,
            Response::DescribeTransactions(r) => r.throttle_time_ms = ms,
            Response::ListTransactions(r) => r.throttle_time_ms = ms,
            Response::DescribeUserScramCredentials(r) => r.throttle_time_ms = ms,
            Response::AlterUserScramCredentials(r) => r.throttle_time_ms = ms,
            Response::DescribeAcls(r) => r.throttle_time_ms = ms,
            Response::CreateAcls(r) => r.throttle_time_ms = ms,
            Response::DeleteAcls(r) => r.throttle_time_ms = ms,
            Response::DescribeClientQuotas(r) => r.throttle_time_ms = ms,
            Response::AlterClientQuotas(r) => r.throttle_time_ms = ms,
            _ => {}
        }
    }
}

/// Appends `int32 size | header | body` for `response` at `version` to `out`.
pub fn encode_response(
    out: &mut BytesMut,
    correlation_id: i32,
    version: i16,
    response: &Response,
) -> anyhow::Result<()> {
    let api = response.api_key();
    // ApiVersions responses always use header v0 so that a client can read them before it
    // knows which versions the broker speaks (KIP-511).
    let header_version = if api == ApiKey::ApiVersions {
        0
    } else {
        api.response_header_version(version)
    };
    let start = out.len();
    out.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(out, header_version)?;
    if let Err(e) = response.encode_body(out, version) {
        out.truncate(start);
        return Err(e);
    }
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}
