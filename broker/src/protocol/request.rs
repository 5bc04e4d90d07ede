//! Request decoding: a frame body becomes a header plus one typed request.
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use super::versions;

macro_rules! requests {
    ($($api:ident => $ty:ty),* $(,)?) => {
        /// One decoded request body, one variant per API Spate answers.
        #[derive(Debug)]
        pub enum Request { $($api($ty)),* }

        fn decode_body(api: ApiKey, buf: &mut Bytes, version: i16) -> anyhow::Result<Request> {
            match api {
                $(ApiKey::$api => Ok(Request::$api(<$ty>::decode(buf, version)?)),)*
                other => anyhow::bail!("{other:?} is not served"),
            }
        }
    };
}

requests! {
    Produce => ProduceRequest,
    Fetch => FetchRequest,
    ListOffsets => ListOffsetsRequest,
    Metadata => MetadataRequest,
    ApiVersions => ApiVersionsRequest,
    CreateTopics => CreateTopicsRequest,
    DeleteTopics => DeleteTopicsRequest,
    DeleteRecords => DeleteRecordsRequest,
    InitProducerId => InitProducerIdRequest,
    DescribeConfigs => DescribeConfigsRequest,
    AlterConfigs => AlterConfigsRequest,
    CreatePartitions => CreatePartitionsRequest,
    IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
    DescribeCluster => DescribeClusterRequest,
    AlterPartitionReassignments => AlterPartitionReassignmentsRequest,
    ListPartitionReassignments => ListPartitionReassignmentsRequest,
    ElectLeaders => ElectLeadersRequest,
    FindCoordinator => FindCoordinatorRequest,
    JoinGroup => JoinGroupRequest,
    SyncGroup => SyncGroupRequest,
    Heartbeat => HeartbeatRequest,
    LeaveGroup => LeaveGroupRequest,
    OffsetCommit => OffsetCommitRequest,
    OffsetFetch => OffsetFetchRequest,
    ListGroups => ListGroupsRequest,
    DescribeGroups => DescribeGroupsRequest,
    DeleteGroups => DeleteGroupsRequest,
    OffsetDelete => OffsetDeleteRequest,
    ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
    ConsumerGroupDescribe => ConsumerGroupDescribeRequest,
    DescribeQuorum => DescribeQuorumRequest,
    UnregisterBroker => UnregisterBrokerRequest,
    AddRaftVoter => AddRaftVoterRequest,
    RemoveRaftVoter => RemoveRaftVoterRequest,
    AddPartitionsToTxn => AddPartitionsToTxnRequest,
    AddOffsetsToTxn => AddOffsetsToTxnRequest,
    EndTxn => EndTxnRequest,
    WriteTxnMarkers => WriteTxnMarkersRequest,
    TxnOffsetCommit => TxnOffsetCommitRequest,
    DescribeProducers => DescribeProducersRequest,
    DescribeTransactions => DescribeTransactionsRequest,
    ListTransactions => ListTransactionsRequest,
    SaslHandshake => SaslHandshakeRequest,
    SaslAuthenticate => Hidden<SaslAuthenticateRequest>,
    DescribeUserScramCredentials => DescribeUserScramCredentialsRequest,
    AlterUserScramCredentials => Hidden<AlterUserScramCredentialsRequest>,
    DescribeAcls => DescribeAclsRequest,
    CreateAcls => CreateAclsRequest,
    DeleteAcls => DeleteAclsRequest,
    DescribeClientQuotas => DescribeClientQuotasRequest,
    AlterClientQuotas => AlterClientQuotasRequest,
}

/// A request body that carries secrets (SASL tokens, salted passwords): decoded like any
/// other, but its `Debug` shows nothing, so no log line can leak it.
pub struct Hidden<T>(pub T);

impl<T> std::fmt::Debug for Hidden<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[hidden]")
    }
}

impl<T: Decodable> Decodable for Hidden<T> {
    fn decode<B: kafka_protocol::protocol::buf::ByteBuf>(
        buf: &mut B,
        version: i16,
    ) -> anyhow::Result<Self> {
        T::decode(buf, version).map(Hidden)
    }
}

/// A decoded request with what the response needs from its header.
#[derive(Debug)]
pub struct RequestEnvelope {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The caller's W3C `traceparent`, from Spate's own header tag ([`TRACEPARENT_TAG`]).
    pub traceparent: Option<String>,
    pub body: Request,
}

/// A request-header tagged field (flexible header versions only) in which Spate's follower
/// fetchers send the W3C `traceparent` of their fetch span, so that the leader's handling of
/// a replica fetch joins the follower's trace. Kafka brokers skip tags they do not know; this
/// one is far above the tags Kafka numbers from 0.
pub const TRACEPARENT_TAG: i32 = 10_000;

/// Why a frame could not become a request. Kafka answers only the ApiVersions case (KIP-511)
/// and closes the connection on the others; so does Spate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("frame too short for a request header ({0} bytes)")]
    ShortHeader(usize),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {api:?}")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        reason: String,
    },
}

/// Decodes one frame body. Never panics on any input.
pub fn decode_request(mut frame: Bytes) -> Result<RequestEnvelope, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::ShortHeader(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(raw_key).map_err(|_| DecodeError::UnknownApiKey(raw_key))?;
    if !versions::is_supported(api, version) {
        return Err(DecodeError::UnsupportedVersion {
            api,
            version,
            correlation_id,
        });
    }
    let malformed = |reason: String| DecodeError::Malformed {
        api,
        version,
        correlation_id,
        reason,
    };
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| malformed(format!("header: {e:#}")))?;
    let body = decode_body(api, &mut frame, version).map_err(|e| malformed(format!("{e:#}")))?;
    // Bytes after the body are ignored, as Kafka does: librdkafka 2.16 sends Metadata v12
    // with trailing bytes, and Kafka's request parser never checks for them.
    Ok(RequestEnvelope {
        api_key: api,
        version,
        correlation_id,
        client_id: header.client_id.map(|s| s.to_string()),
        traceparent: header
            .unknown_tagged_fields
            .get(&TRACEPARENT_TAG)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_string),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn frame_of<T: Encodable>(api: ApiKey, version: i16, body: &T) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        header
            .encode(&mut buf, api.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_a_metadata_request() {
        let req = MetadataRequest::default().with_topics(None);
        let env = decode_request(frame_of(ApiKey::Metadata, 12, &req)).unwrap();
        assert_eq!(env.correlation_id, 7);
        assert_eq!(env.client_id.as_deref(), Some("t"));
        assert!(matches!(env.body, Request::Metadata(_)));
    }

    #[test]
    fn classifies_bad_input() {
        assert_eq!(
            decode_request(Bytes::from_static(&[0, 1])).err(),
            Some(DecodeError::ShortHeader(2))
        );
        let mut unknown = BytesMut::new();
        unknown.put_i16(999);
        unknown.put_i16(0);
        unknown.put_i32(1);
        assert_eq!(
            decode_request(unknown.freeze()).err(),
            Some(DecodeError::UnknownApiKey(999))
        );
        let req = ApiVersionsRequest::default();
        let mut f = BytesMut::from(&frame_of(ApiKey::ApiVersions, 3, &req)[..]);
        f[3] = 9; // version 9
        assert!(matches!(
            decode_request(f.freeze()),
            Err(DecodeError::UnsupportedVersion {
                version: 9,
                correlation_id: 7,
                ..
            })
        ));
        let truncated = frame_of(ApiKey::Metadata, 12, &MetadataRequest::default());
        let truncated = truncated.slice(..truncated.len() - 1);
        assert!(matches!(
            decode_request(truncated),
            Err(DecodeError::Malformed { .. })
        ));
    }
}
