//! `AdminClient`: the [`KafkaAdmin`] operations over one [`Connection`].
//!
//! Admin requests go to the bootstrap broker; in a KRaft-style cluster any broker forwards
//! them to the active controller. Errors are returned as [`KafkaError::Api`] with the Kafka
//! code, and a reconcile that fails is retried by the controller.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, ElectLeadersRequest,
    IncrementalAlterConfigsRequest, ListPartitionReassignmentsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Mutex;

use super::connection::Connection;
use super::{
    codes, security, AclBinding, AclFilter, BrokerInfo, ClusterMetadata, ConfigEntry, Connector,
    KafkaAdmin, KafkaError, NewTopic, OngoingReassignment, PartitionInfo, QuotaValues,
    Reassignment, ScramMechanism, ScramUpsert, Target, TopicInfo, TopicPartition,
};

/// Config resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;
/// DescribeConfigs source: set on the topic.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// ElectLeaders type: preferred replica.
const ELECTION_PREFERRED: i8 = 0;
/// Server-side timeout sent with admin requests.
const REQUEST_TIMEOUT_MS: i32 = 30_000;

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub(super) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn api_error(api: &'static str, resource: &str, code: i16, msg: Option<&StrBytes>) -> KafkaError {
    let name = code.err().map(|e| format!("{e:?}")).unwrap_or_default();
    let message = match msg {
        Some(m) if !m.is_empty() => format!("({name}): {}", m.as_str()),
        _ => format!("({name})"),
    };
    KafkaError::Api {
        api,
        resource: resource.to_string(),
        code,
        message,
    }
}

pub(super) fn check(
    api: &'static str,
    resource: &str,
    code: i16,
    msg: Option<&StrBytes>,
) -> Result<(), KafkaError> {
    if code == 0 {
        Ok(())
    } else {
        Err(api_error(api, resource, code, msg))
    }
}

/// An admin session over one broker connection.
pub struct AdminClient {
    conn: Mutex<Connection>,
}

impl AdminClient {
    /// Connects to `addr` (`host:port`, over TLS with `tls`) with a per-request `timeout`.
    pub async fn connect(
        addr: &str,
        timeout: Duration,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, KafkaError> {
        Ok(AdminClient {
            conn: Mutex::new(Connection::connect(addr, timeout, tls).await?),
        })
    }
}

#[async_trait]
impl KafkaAdmin for AdminClient {
    async fn metadata(&self, topics: Option<Vec<String>>) -> Result<ClusterMetadata, KafkaError> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let response = self.conn.lock().await.send("Metadata", &request).await?;
        let brokers = response
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                id: b.node_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
                fenced: false,
            })
            .collect();
        let topics = response
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .map(|t| TopicInfo {
                name: t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                id: t.topic_id.to_string(),
                partitions: {
                    let mut ps: Vec<PartitionInfo> = t
                        .partitions
                        .iter()
                        .map(|p| PartitionInfo {
                            partition: p.partition_index,
                            leader: p.leader_id.0,
                            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                        })
                        .collect();
                    ps.sort_by_key(|p| p.partition);
                    ps
                },
            })
            .collect();
        Ok(ClusterMetadata { brokers, topics })
    }

    async fn describe_cluster(&self) -> Result<Vec<BrokerInfo>, KafkaError> {
        let mut conn = self.conn.lock().await;
        let version = conn.version_for::<DescribeClusterRequest>("DescribeCluster")?;
        // Fenced brokers are listed from v2 on; older brokers only list unfenced ones.
        let request = DescribeClusterRequest::default().with_include_fenced_brokers(version >= 2);
        let response = conn.exchange(&request, version).await?;
        check(
            "DescribeCluster",
            "cluster",
            response.error_code,
            response.error_message.as_ref(),
        )?;
        Ok(response
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
                fenced: b.is_fenced,
            })
            .collect())
    }

    async fn create_topic(&self, topic: &NewTopic) -> Result<String, KafkaError> {
        let creatable = CreatableTopic::default()
            .with_name(topic_name(&topic.name))
            .with_num_partitions(topic.partitions)
            .with_replication_factor(topic.replication_factor)
            .with_configs(
                topic
                    .configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(str_bytes(k))
                            .with_value(Some(str_bytes(v)))
                    })
                    .collect(),
            );
        let request = CreateTopicsRequest::default()
            .with_topics(vec![creatable])
            .with_timeout_ms(REQUEST_TIMEOUT_MS);
        let response = self
            .conn
            .lock()
            .await
            .send("CreateTopics", &request)
            .await?;
        let result = response
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == topic.name)
            .ok_or_else(|| {
                KafkaError::Protocol("CreateTopics: topic missing in response".into())
            })?;
        check(
            "CreateTopics",
            &topic.name,
            result.error_code,
            result.error_message.as_ref(),
        )?;
        Ok(result.topic_id.to_string())
    }

    async fn delete_topic(&self, name: &str) -> Result<(), KafkaError> {
        let mut conn = self.conn.lock().await;
        let version = conn.version_for::<DeleteTopicsRequest>("DeleteTopics")?;
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(REQUEST_TIMEOUT_MS);
        if version >= 6 {
            request.topics = vec![DeleteTopicState::default().with_name(Some(topic_name(name)))];
        } else {
            request.topic_names = vec![topic_name(name)];
        }
        let response = conn.exchange(&request, version).await?;
        for r in &response.responses {
            if r.error_code != codes::UNKNOWN_TOPIC_OR_PARTITION {
                check("DeleteTopics", name, r.error_code, r.error_message.as_ref())?;
            }
        }
        Ok(())
    }

    async fn create_partitions(&self, name: &str, total: i32) -> Result<(), KafkaError> {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(name))
                .with_count(total)])
            .with_timeout_ms(REQUEST_TIMEOUT_MS);
        let response = self
            .conn
            .lock()
            .await
            .send("CreatePartitions", &request)
            .await?;
        for r in &response.results {
            check(
                "CreatePartitions",
                name,
                r.error_code,
                r.error_message.as_ref(),
            )?;
        }
        Ok(())
    }

    async fn describe_topic_configs(
        &self,
        name: &str,
    ) -> Result<BTreeMap<String, ConfigEntry>, KafkaError> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(str_bytes(name))
                .with_configuration_keys(None),
        ]);
        let mut conn = self.conn.lock().await;
        let version = conn.version_for::<DescribeConfigsRequest>("DescribeConfigs")?;
        let response = conn.exchange(&request, version).await?;
        let mut out = BTreeMap::new();
        for result in &response.results {
            check(
                "DescribeConfigs",
                name,
                result.error_code,
                result.error_message.as_ref(),
            )?;
            for c in &result.configs {
                let is_topic_override = if version == 0 {
                    !c.read_only && c.config_source != 5 && c.config_source == SOURCE_DYNAMIC_TOPIC
                } else {
                    c.config_source == SOURCE_DYNAMIC_TOPIC
                };
                out.insert(
                    c.name.to_string(),
                    ConfigEntry {
                        value: c.value.as_ref().map(|v| v.to_string()),
                        is_topic_override,
                    },
                );
            }
        }
        Ok(out)
    }

    async fn alter_topic_configs(
        &self,
        name: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<(), KafkaError> {
        let mut configs: Vec<AlterableConfig> = set
            .iter()
            .map(|(k, v)| {
                AlterableConfig::default()
                    .with_name(str_bytes(k))
                    .with_config_operation(OP_SET)
                    .with_value(Some(str_bytes(v)))
            })
            .collect();
        configs.extend(delete.iter().map(|k| {
            AlterableConfig::default()
                .with_name(str_bytes(k))
                .with_config_operation(OP_DELETE)
                .with_value(None)
        }));
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(str_bytes(name))
                .with_configs(configs),
        ]);
        let response = self
            .conn
            .lock()
            .await
            .send("IncrementalAlterConfigs", &request)
            .await?;
        for r in &response.responses {
            check(
                "IncrementalAlterConfigs",
                name,
                r.error_code,
                r.error_message.as_ref(),
            )?;
        }
        Ok(())
    }

    async fn alter_partition_reassignments(
        &self,
        moves: &[Reassignment],
    ) -> Result<(), KafkaError> {
        let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for m in moves {
            by_topic.entry(&m.topic).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(m.partition)
                    .with_replicas(
                        m.replicas
                            .as_ref()
                            .map(|r| r.iter().map(|b| BrokerId(*b)).collect()),
                    ),
            );
        }
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(REQUEST_TIMEOUT_MS)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        ReassignableTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let response = self
            .conn
            .lock()
            .await
            .send("AlterPartitionReassignments", &request)
            .await?;
        check(
            "AlterPartitionReassignments",
            "cluster",
            response.error_code,
            response.error_message.as_ref(),
        )?;
        for t in &response.responses {
            for p in &t.partitions {
                if p.error_code != codes::NO_REASSIGNMENT_IN_PROGRESS {
                    check(
                        "AlterPartitionReassignments",
                        &format!("{}-{}", t.name.0.as_str(), p.partition_index),
                        p.error_code,
                        p.error_message.as_ref(),
                    )?;
                }
            }
        }
        Ok(())
    }

    async fn list_partition_reassignments(&self) -> Result<Vec<OngoingReassignment>, KafkaError> {
        let request = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(REQUEST_TIMEOUT_MS)
            .with_topics(None);
        let response = self
            .conn
            .lock()
            .await
            .send("ListPartitionReassignments", &request)
            .await?;
        check(
            "ListPartitionReassignments",
            "cluster",
            response.error_code,
            response.error_message.as_ref(),
        )?;
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
        Ok(response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| OngoingReassignment {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding: ids(&p.adding_replicas),
                    removing: ids(&p.removing_replicas),
                })
            })
            .collect())
    }

    async fn elect_preferred_leaders(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<(), KafkaError> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            by_topic.entry(t).or_default().push(*p);
        }
        let request = ElectLeadersRequest::default()
            .with_election_type(ELECTION_PREFERRED)
            .with_timeout_ms(REQUEST_TIMEOUT_MS)
            .with_topic_partitions(Some(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        TopicPartitions::default()
                            .with_topic(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            ));
        let response = self
            .conn
            .lock()
            .await
            .send("ElectLeaders", &request)
            .await?;
        check("ElectLeaders", "cluster", response.error_code, None)?;
        for r in &response.replica_election_results {
            for p in &r.partition_result {
                if p.error_code != codes::ELECTION_NOT_NEEDED {
                    check(
                        "ElectLeaders",
                        &format!("{}-{}", r.topic.0.as_str(), p.partition_id),
                        p.error_code,
                        p.error_message.as_ref(),
                    )?;
                }
            }
        }
        Ok(())
    }

    async fn describe_scram_credentials(
        &self,
        user: &str,
    ) -> Result<Vec<ScramMechanism>, KafkaError> {
        security::describe_scram_credentials(&mut *self.conn.lock().await, user).await
    }

    async fn upsert_scram_credential(
        &self,
        user: &str,
        credential: &ScramUpsert,
    ) -> Result<(), KafkaError> {
        security::upsert_scram_credential(&mut *self.conn.lock().await, user, credential).await
    }

    async fn delete_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<(), KafkaError> {
        security::delete_scram_credential(&mut *self.conn.lock().await, user, mechanism).await
    }

    async fn describe_acls(&self, filter: &AclFilter) -> Result<Vec<AclBinding>, KafkaError> {
        security::describe_acls(&mut *self.conn.lock().await, filter).await
    }

    async fn create_acls(&self, acls: &[AclBinding]) -> Result<(), KafkaError> {
        security::create_acls(&mut *self.conn.lock().await, acls).await
    }

    async fn delete_acls(&self, filters: &[AclFilter]) -> Result<usize, KafkaError> {
        security::delete_acls(&mut *self.conn.lock().await, filters).await
    }

    async fn describe_user_quotas(&self, user: &str) -> Result<QuotaValues, KafkaError> {
        security::describe_user_quotas(&mut *self.conn.lock().await, user).await
    }

    async fn alter_user_quotas(
        &self,
        user: &str,
        set: &QuotaValues,
        remove: &[String],
    ) -> Result<(), KafkaError> {
        security::alter_user_quotas(&mut *self.conn.lock().await, user, set, remove).await
    }
}

/// Connects with [`AdminClient`] over TCP.
#[derive(Clone, Debug)]
pub struct TcpConnector {
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for TcpConnector {
    fn default() -> Self {
        TcpConnector {
            timeout: Duration::from_secs(10),
        }
    }
}

#[async_trait]
impl Connector for TcpConnector {
    async fn connect(&self, target: &Target) -> Result<Arc<dyn KafkaAdmin>, KafkaError> {
        Ok(Arc::new(
            AdminClient::connect(&target.bootstrap, self.timeout, target.tls.clone()).await?,
        ))
    }
}
