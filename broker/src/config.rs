//! Broker configuration: embedded defaults < properties file < `SPATE_*` environment < CLI.
//!
//! Keys are Kafka's `server.properties` names, so existing configs and habits carry over. The
//! environment form of a key is `SPATE_` + the key upper-cased with dots as underscores
//! (`log.flush.interval.ms` → `SPATE_LOG_FLUSH_INTERVAL_MS`).
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::listeners::Listeners;
use crate::security::authz::AuthzSettings;
use crate::security::overrides;
use crate::security::sasl::SaslSettings;
use crate::security::scram_bootstrap::BootstrapScram;
use crate::security::tls::{self, TlsSettings};
use spate_log::{CleanupPolicy, FlushPolicy, LogConfig, TimestampType};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown broker setting `{0}`")]
    Unknown(String),
    #[error("invalid value `{value}` for `{key}`: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("reading {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: expected key=value")]
    Syntax { path: PathBuf, line: usize },
}

/// Every broker setting with its embedded default, as Kafka spells it.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("node.id", "0"),
    ("listeners", "127.0.0.1:9092"),
    ("http.listeners", "127.0.0.1:9644"),
    ("advertised.listeners", ""),
    ("listener.security.protocol.map", ""),
    ("inter.broker.listener.name", ""),
    ("log.dirs", "./spate-data"),
    ("auto.create.topics.enable", "true"),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("min.insync.replicas", "1"),
    ("socket.request.max.bytes", "104857600"),
    ("message.max.bytes", "1048588"),
    ("log.segment.bytes", "1073741824"),
    ("log.roll.ms", "604800000"),
    ("log.retention.ms", "604800000"),
    ("log.retention.bytes", "-1"),
    ("log.cleanup.policy", "delete"),
    ("log.cleaner.delete.retention.ms", "86400000"),
    ("log.cleaner.min.compaction.lag.ms", "0"),
    ("log.cleaner.backoff.ms", "15000"),
    ("log.retention.check.interval.ms", "300000"),
    ("log.index.interval.bytes", "4096"),
    ("log.message.timestamp.type", "CreateTime"),
    ("log.flush.interval.messages", "9223372036854775807"),
    ("log.flush.interval.ms", "1000"),
    ("log.flush.scheduler.interval.ms", "200"),
    ("log.format", "text"),
    ("group.initial.rebalance.delay.ms", "3000"),
    ("group.min.session.timeout.ms", "6000"),
    ("group.max.session.timeout.ms", "1800000"),
    ("offsets.topic.num.partitions", "50"),
    ("offsets.retention.minutes", "10080"),
    ("offsets.retention.check.interval.ms", "600000"),
    ("offsets.topic.replication.factor", "3"),
    ("offset.metadata.max.bytes", "4096"),
    ("group.consumer.heartbeat.interval.ms", "5000"),
    ("group.consumer.session.timeout.ms", "45000"),
    // Transactions.
    ("transaction.state.log.num.partitions", "50"),
    ("transaction.state.log.replication.factor", "3"),
    ("transaction.max.timeout.ms", "900000"),
    (
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "10000",
    ),
    // A transactional id idle (no transaction open) this long is forgotten (tombstoned).
    ("transactional.id.expiration.ms", "604800000"),
    (
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        "3600000",
    ),
    // A producer id with no batch this long (by batch timestamp) and no open transaction is
    // dropped from a partition's producer state (KIP-854).
    ("producer.id.expiration.ms", "86400000"),
    ("producer.id.expiration.check.interval.ms", "600000"),
    // KIP-890 part 1: a partition leader checks with the coordinator that a transactional
    // batch belongs to an ongoing transaction before it opens one on the partition.
    ("transaction.partition.verification.enable", "true"),
    // The metadata quorum. Empty voters: a single node, the one voter of its own quorum
    // (raft on an ephemeral loopback port unless `controller.listener` names one).
    ("controller.quorum.voters", ""),
    ("controller.listener", ""),
    // Kafka's KRaft default: a voter that hears no leader for 1-2 s starts an election.
    ("controller.quorum.election.timeout.ms", "1000"),
    // Empty: combined (broker and voter) when node.id is a voter, broker-only otherwise;
    // `controller` makes a voter that is no broker.
    ("process.roles", ""),
    ("broker.rack", ""),
    ("replica.lag.time.max.ms", "30000"),
    // Liveness and failover, cluster mode only.
    ("broker.heartbeat.interval.ms", "2000"),
    ("broker.session.timeout.ms", "9000"),
    ("auto.leader.rebalance.enable", "true"),
    ("leader.imbalance.check.interval.seconds", "300"),
    ("controlled.shutdown.enable", "true"),
    // Replication throttles (bytes/s), as in Kafka; also dynamic broker configs in cluster
    // mode (IncrementalAlterConfigs on BROKER resources, stored in the metadata quorum).
    ("leader.replication.throttled.rate", "9223372036854775807"),
    ("follower.replication.throttled.rate", "9223372036854775807"),
    // Accepted for kafka-reassign-partitions (it deletes it when clearing throttles); Spate
    // has one log directory per broker, so there are no inter-directory moves to throttle.
    (
        "replica.alter.log.dirs.io.max.bytes.per.second",
        "9223372036854775807",
    ),
    // TLS on listeners whose `listener.security.protocol.map` protocol is SSL; each may be
    // overridden per listener as `listener.name.<lowercase name>.<key>`. Only PEM stores.
    ("ssl.keystore.type", "PEM"),
    ("ssl.keystore.location", ""),
    ("ssl.keystore.key", ""),
    ("ssl.keystore.certificate.chain", ""),
    ("ssl.key.password", ""),
    ("ssl.truststore.type", "PEM"),
    ("ssl.truststore.location", ""),
    ("ssl.truststore.certificates", ""),
    ("ssl.client.auth", "none"),
    ("ssl.principal.mapping.rules", "DEFAULT"),
    ("ssl.enabled.protocols", "TLSv1.2,TLSv1.3"),
    // Spate's own: how often certificate and key files are re-read (Kubernetes rotates
    // mounted Secrets in place).
    ("ssl.reload.interval.ms", "10000"),
    // SASL on SASL_PLAINTEXT and SASL_SSL listeners (each overridable per listener). Users
    // are SCRAM credentials in the metadata quorum; PLAIN is checked against them too.
    ("sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512"),
    ("sasl.server.max.receive.size", "524288"),
    // 0: sessions never expire; else clients re-authenticate within this (KIP-368).
    ("connections.max.reauth.ms", "0"),
    ("connection.failed.authentication.delay.ms", "100"),
    // How this broker logs in on other brokers' SASL inter-broker listener (empty: the
    // listener's first mechanism); credentials from `listener.name.<l>.<mech>.sasl.jaas.config`.
    ("sasl.mechanism.inter.broker.protocol", ""),
    ("sasl.jaas.config", ""),
    // OAUTHBEARER: JWTs checked against a JWKS file, as Kafka's validator callback handler.
    ("sasl.oauthbearer.jwks.endpoint.url", ""),
    ("sasl.oauthbearer.expected.audience", ""),
    ("sasl.oauthbearer.expected.issuer", ""),
    ("sasl.oauthbearer.sub.claim.name", "sub"),
    ("sasl.oauthbearer.clock.skew.seconds", "30"),
    ("sasl.oauthbearer.jwks.endpoint.refresh.ms", "3600000"),
    // Authorization: empty for none, or Kafka's StandardAuthorizer over ACLs in the quorum.
    ("authorizer.class.name", ""),
    ("super.users", ""),
    ("allow.everyone.if.no.acl.found", "false"),
];

/// Typed broker configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    /// Where the inter-broker listener binds (the only one unless `listeners` names more).
    pub listen: SocketAddr,
    /// Every named client listener; `listen` and `advertised` are the inter-broker one's.
    pub listeners: Listeners,
    /// The HTTP endpoint (metrics, health); `None` when `http.listeners` is empty.
    pub http_listen: Option<SocketAddr>,
    /// Whether `http.listeners` was set explicitly (then failing to bind it is fatal).
    pub http_listen_explicit: bool,
    /// Host and port put in Metadata; defaults to the bound listen address.
    pub advertised: Option<(String, u16)>,
    pub data_dir: PathBuf,
    pub auto_create_topics: bool,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub min_insync_replicas: i32,
    pub socket_request_max_bytes: usize,
    pub retention_check_interval_ms: u64,
    pub cleaner_backoff_ms: u64,
    pub flush_scheduler_interval_ms: u64,
    pub producer_id_expiration_ms: i64,
    pub producer_id_expiration_check_interval_ms: u64,
    pub json_logs: bool,
    pub group: crate::group::GroupConfig,
    pub txn: crate::txn::TxnConfig,
    /// Defaults every topic's log starts from; topic configs override them.
    pub log_defaults: LogConfig,
    /// The metadata quorum's voters and this node's raft address; a single node is the one
    /// voter of its own quorum.
    pub quorum: QuorumConfig,
    /// A follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// Cluster mode: how often this broker heartbeats the active controller.
    pub broker_heartbeat_interval_ms: u64,
    /// Cluster mode: the controller fences a broker silent for this long.
    pub broker_session_timeout_ms: u64,
    /// Cluster mode: the controller moves leadership back to preferred replicas.
    pub auto_leader_rebalance: bool,
    /// How often the controller looks for partitions not led by their preferred replica.
    pub leader_imbalance_check_interval_ms: u64,
    /// Cluster mode: on SIGTERM, move leaderships away before stopping.
    pub controlled_shutdown_enable: bool,
    /// Bytes/s a leader sends to throttled, out-of-sync followers (static value; dynamic
    /// broker configs in the metadata quorum override it).
    pub leader_replication_throttled_rate: u64,
    /// Bytes/s a follower fetches for throttled, out-of-sync partitions.
    pub follower_replication_throttled_rate: u64,
    /// TLS settings of every SSL and SASL_SSL listener, by listener name.
    pub tls: BTreeMap<String, TlsSettings>,
    /// SASL settings of every SASL_PLAINTEXT and SASL_SSL listener, by listener name.
    pub sasl: BTreeMap<String, Arc<SaslSettings>>,
    /// `None` without an authorizer (everything is allowed).
    pub authorizer: Option<AuthzSettings>,
    /// This broker's login on other brokers when the inter-broker listener uses SASL.
    pub inter_broker_sasl: Option<crate::security::sasl::InterBrokerLogin>,
    /// Credentials to store at start unless present (`--add-scram`; not a setting).
    pub bootstrap_scram: Vec<BootstrapScram>,
    /// How often TLS files are checked for changes.
    pub ssl_reload_interval: Duration,
    /// The effective settings, for DescribeConfigs on the broker resource. Holds secrets
    /// (inline keys): see `security::overrides::is_sensitive` before showing a value.
    pub raw: BTreeMap<String, String>,
    /// Retired settings the sources named; ignored, and warned about at start.
    pub retired: Vec<String>,
}

impl BrokerConfig {
    /// Layers the sources in order and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        cli: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut raw: BTreeMap<String, String> = DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut retired = Vec::new();
        if let Some(path) = file {
            for (k, v) in read_properties(path)? {
                set(&mut raw, &mut retired, k, v)?;
            }
        }
        let env: BTreeMap<String, String> = env.into_iter().collect();
        let by_env_name: BTreeMap<String, &str> =
            DEFAULTS.iter().map(|(k, _)| (env_name(k), *k)).collect();
        for (name, value) in &env {
            if let Some(key) = by_env_name.get(name) {
                raw.insert(key.to_string(), value.clone());
            }
        }
        for (k, v) in cli {
            set(&mut raw, &mut retired, k, v)?;
        }
        retired.sort_unstable();
        retired.dedup();
        for (k, v) in raw.iter_mut() {
            *v = expand_env(k, v, &env)?;
        }
        let mut config = Self::from_raw(raw)?;
        config.retired = retired;
        Ok(config)
    }

    pub fn from_raw(raw: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| raw.get(k).map(String::as_str).unwrap_or_default();
        let listeners = Listeners::parse(
            get("listeners"),
            get("advertised.listeners"),
            get("listener.security.protocol.map"),
            get("inter.broker.listener.name"),
        )?;
        let controller_protocol =
            crate::listeners::parse_protocol_map(get("listener.security.protocol.map"))?
                .get("CONTROLLER")
                .cloned()
                .unwrap_or_else(|| "PLAINTEXT".into());
        for key in raw.keys() {
            if let Some((name, _)) = overrides::listener_override(key) {
                if !listeners
                    .all
                    .iter()
                    .any(|l| l.name.eq_ignore_ascii_case(name))
                    && !name.eq_ignore_ascii_case("controller")
                {
                    return Err(invalid(
                        key,
                        raw.get(key).map(String::as_str).unwrap_or_default(),
                        &format!("there is no listener {name}"),
                    ));
                }
            }
        }
        let mut tls = BTreeMap::new();
        let mut sasl = BTreeMap::new();
        for l in &listeners.all {
            if l.protocol.uses_tls() {
                let mut settings = TlsSettings::resolve(&raw, &l.name)?;
                let own_client_auth = format!(
                    "listener.name.{}.ssl.client.auth",
                    l.name.to_ascii_lowercase()
                );
                if l.protocol.uses_sasl() && !raw.contains_key(&own_client_auth) {
                    // As Kafka: on SASL_SSL only the listener's own ssl.client.auth applies.
                    settings.client_auth = tls::ClientAuth::None;
                }
                tls.insert(l.name.clone(), settings);
            }
            if l.protocol.uses_sasl() {
                sasl.insert(
                    l.name.clone(),
                    Arc::new(SaslSettings::resolve(&raw, &l.name)?),
                );
            }
        }
        let listen = listeners.inter_broker().bind;
        let advertised = listeners.inter_broker().advertised.clone();
        let http_listen = match get("http.listeners") {
            "" => None,
            s => Some(parse_addr("http.listeners", s)?),
        };
        let http_listen_explicit = DEFAULTS
            .iter()
            .any(|(k, v)| *k == "http.listeners" && *v != get("http.listeners"));
        let flush_messages: i64 = num(&raw, "log.flush.interval.messages")?;
        let flush_ms: i64 = num(&raw, "log.flush.interval.ms")?;
        let log_defaults = LogConfig {
            segment_bytes: positive(&raw, "log.segment.bytes")?,
            segment_ms: positive::<u64>(&raw, "log.roll.ms")? as i64,
            retention_ms: num(&raw, "log.retention.ms")?,
            retention_bytes: num(&raw, "log.retention.bytes")?,
            cleanup_policy: parse_cleanup_policy(get("log.cleanup.policy")).ok_or_else(|| {
                invalid(
                    "log.cleanup.policy",
                    get("log.cleanup.policy"),
                    "expected delete, compact or compact,delete",
                )
            })?,
            delete_retention_ms: num(&raw, "log.cleaner.delete.retention.ms")?,
            min_compaction_lag_ms: num(&raw, "log.cleaner.min.compaction.lag.ms")?,
            max_message_bytes: positive(&raw, "message.max.bytes")?,
            index_interval_bytes: positive(&raw, "log.index.interval.bytes")?,
            timestamp_type: parse_timestamp_type(get("log.message.timestamp.type")).ok_or_else(
                || {
                    invalid(
                        "log.message.timestamp.type",
                        get("log.message.timestamp.type"),
                        "expected CreateTime or LogAppendTime",
                    )
                },
            )?,
            flush: FlushPolicy {
                messages: (flush_messages > 0 && flush_messages < i64::MAX)
                    .then_some(flush_messages as u64),
                ms: (0..i64::MAX).contains(&flush_ms).then_some(flush_ms as u64),
            },
        };
        let mut quorum = parse_quorum(&raw, listen)?;
        quorum.tls = match controller_protocol.as_str() {
            "PLAINTEXT" => None,
            "SSL" => Some(TlsSettings::resolve(&raw, "CONTROLLER")?),
            other => {
                return Err(invalid(
                    "listener.security.protocol.map",
                    get("listener.security.protocol.map"),
                    &format!(
                        "the metadata quorum (CONTROLLER) speaks PLAINTEXT or SSL (mutual TLS), \
                         not {other}"
                    ),
                ))
            }
        };
        let inter_broker_sasl = match sasl.get(&listeners.inter_broker().name) {
            Some(s) => Some(crate::security::sasl::InterBrokerLogin::resolve(&raw, s)?),
            None => None,
        };
        let json_logs = match get("log.format") {
            "text" => false,
            "json" => true,
            other => return Err(invalid("log.format", other, "expected text or json")),
        };
        Ok(Self {
            node_id: num(&raw, "node.id")?,
            listen,
            listeners,
            http_listen,
            http_listen_explicit,
            advertised,
            data_dir: PathBuf::from(get("log.dirs")),
            auto_create_topics: boolean(&raw, "auto.create.topics.enable")?,
            num_partitions: positive(&raw, "num.partitions")?,
            default_replication_factor: positive(&raw, "default.replication.factor")?,
            min_insync_replicas: positive(&raw, "min.insync.replicas")?,
            socket_request_max_bytes: positive(&raw, "socket.request.max.bytes")?,
            retention_check_interval_ms: positive(&raw, "log.retention.check.interval.ms")?,
            cleaner_backoff_ms: positive(&raw, "log.cleaner.backoff.ms")?,
            flush_scheduler_interval_ms: positive(&raw, "log.flush.scheduler.interval.ms")?,
            producer_id_expiration_ms: positive(&raw, "producer.id.expiration.ms")?,
            producer_id_expiration_check_interval_ms: positive(
                &raw,
                "producer.id.expiration.check.interval.ms",
            )?,
            json_logs,
            group: crate::group::GroupConfig {
                initial_rebalance_delay: Duration::from_millis(num::<u64>(
                    &raw,
                    "group.initial.rebalance.delay.ms",
                )?),
                min_session_timeout: Duration::from_millis(positive(
                    &raw,
                    "group.min.session.timeout.ms",
                )?),
                max_session_timeout: Duration::from_millis(positive(
                    &raw,
                    "group.max.session.timeout.ms",
                )?),
                offsets_partitions: positive(&raw, "offsets.topic.num.partitions")?,
                offsets_replication_factor: positive(&raw, "offsets.topic.replication.factor")?,
                offsets_retention_check_interval: Duration::from_millis(positive(
                    &raw,
                    "offsets.retention.check.interval.ms",
                )?),
                offsets_retention: Duration::from_secs(
                    60 * positive::<u64>(&raw, "offsets.retention.minutes")?,
                ),
                offset_metadata_max_bytes: positive(&raw, "offset.metadata.max.bytes")?,
                consumer_heartbeat_interval: Duration::from_millis(positive(
                    &raw,
                    "group.consumer.heartbeat.interval.ms",
                )?),
                consumer_session_timeout: Duration::from_millis(positive(
                    &raw,
                    "group.consumer.session.timeout.ms",
                )?),
            },
            txn: crate::txn::TxnConfig {
                state_partitions: positive(&raw, "transaction.state.log.num.partitions")?,
                replication_factor: positive(&raw, "transaction.state.log.replication.factor")?,
                max_timeout_ms: positive(&raw, "transaction.max.timeout.ms")?,
                abort_check_interval: Duration::from_millis(positive(
                    &raw,
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                )?),
                id_expiration_ms: positive(&raw, "transactional.id.expiration.ms")?,
                remove_expired_interval_ms: positive(
                    &raw,
                    "transaction.remove.expired.transaction.cleanup.interval.ms",
                )?,
                partition_verification: boolean(&raw, "transaction.partition.verification.enable")?,
            },
            log_defaults,
            quorum,
            replica_lag_time_max_ms: positive(&raw, "replica.lag.time.max.ms")?,
            broker_heartbeat_interval_ms: positive(&raw, "broker.heartbeat.interval.ms")?,
            broker_session_timeout_ms: positive(&raw, "broker.session.timeout.ms")?,
            auto_leader_rebalance: boolean(&raw, "auto.leader.rebalance.enable")?,
            leader_imbalance_check_interval_ms: positive::<u64>(
                &raw,
                "leader.imbalance.check.interval.seconds",
            )?
            .saturating_mul(1000),
            controlled_shutdown_enable: boolean(&raw, "controlled.shutdown.enable")?,
            leader_replication_throttled_rate: num(&raw, "leader.replication.throttled.rate")?,
            follower_replication_throttled_rate: num(&raw, "follower.replication.throttled.rate")?,
            tls,
            sasl,
            authorizer: AuthzSettings::parse(
                get("authorizer.class.name"),
                get("super.users"),
                get("allow.everyone.if.no.acl.found"),
            )?,
            inter_broker_sasl,
            bootstrap_scram: Vec::new(),
            ssl_reload_interval: Duration::from_millis(positive(&raw, "ssl.reload.interval.ms")?),
            raw,
            retired: Vec::new(),
        })
    }

    /// `process.roles=controller`: no Kafka listener, no broker registration, no logs.
    pub fn controller_only(&self) -> bool {
        self.quorum.roles == ProcessRoles::Controller
    }

    /// The address clients are told to connect to.
    pub fn advertised_endpoint(&self, bound: SocketAddr) -> (String, u16) {
        self.advertised
            .clone()
            .unwrap_or_else(|| (bound.ip().to_string(), bound.port()))
    }
}

/// The metadata quorum settings of a broker in cluster mode.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// Raft node id (== broker id) → gRPC `host:port` of every voter.
    pub voters: BTreeMap<u64, String>,
    /// Where this node's raft gRPC server binds.
    pub listener: SocketAddr,
    /// `CONTROLLER:SSL` in `listener.security.protocol.map`: the raft gRPC between nodes
    /// runs mutual TLS with the `listener.name.controller.ssl.*` (or broker-wide) settings.
    pub tls: Option<TlsSettings>,
    pub rack: Option<String>,
    pub roles: ProcessRoles,
    /// `controller.quorum.election.timeout.ms`: a voter that hears no leader for 1.5-2x this
    /// starts an election (a leader's lease lasts this long).
    pub election_timeout: Duration,
    /// No `controller.quorum.voters`: this node is the only voter, whose address in `voters`
    /// is filled in once its raft listener is bound (any free port by default).
    pub solo: bool,
}

/// Kafka's `process.roles`: what this node does in the metadata quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessRoles {
    /// `broker,controller`: a broker that is also a voter.
    Combined,
    /// `broker`: a broker-only node. It replicates the metadata log as a raft learner (a
    /// Kafka observer) and never votes.
    Broker,
    /// `controller`: a controller-only node. A voter that runs the controller duties when it
    /// leads, but no Kafka listener: it never registers as a broker, so it hosts no partitions
    /// and clients never see it.
    Controller,
}

/// `controller.quorum.voters` (`id@host:port,...`), `controller.listener`, `broker.rack`,
/// `process.roles`. `listen` is the Kafka listener, whose IP a broker-only node's raft
/// listener defaults to (a controller-only node parses but never binds it).
fn parse_quorum(
    raw: &BTreeMap<String, String>,
    listen: SocketAddr,
) -> Result<QuorumConfig, ConfigError> {
    let get = |k: &str| raw.get(k).map(|s| s.trim()).unwrap_or_default();
    let roles_raw = get("process.roles");
    let mut roles: Vec<&str> = roles_raw
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort_unstable();
    roles.dedup();
    let bad_roles = |reason: &str| invalid("process.roles", roles_raw, reason);
    let voters_raw = get("controller.quorum.voters");
    let rack = Some(get("broker.rack").to_string()).filter(|r| !r.is_empty());
    let election_timeout =
        Duration::from_millis(positive(raw, "controller.quorum.election.timeout.ms")?);
    if voters_raw.is_empty() {
        // A single node is a broker: starting one would serve the clients that a
        // controller-only config means to keep away.
        if !roles.is_empty() && roles != ["broker", "controller"] {
            return Err(bad_roles(
                "a single node (no controller.quorum.voters) is broker,controller",
            ));
        }
        let node_id: i64 = num(raw, "node.id")?;
        let node_id = u64::try_from(node_id)
            .map_err(|_| invalid("node.id", &node_id.to_string(), "must not be negative"))?;
        // Nobody else connects to a lone voter: loopback and any free port, unless asked.
        let listener = match get("controller.listener") {
            "" => SocketAddr::from(([127, 0, 0, 1], 0)),
            s => parse_addr("controller.listener", s)?,
        };
        return Ok(QuorumConfig {
            voters: BTreeMap::from([(node_id, listener.to_string())]),
            listener,
            rack,
            roles: ProcessRoles::Combined,
            election_timeout,
            solo: true,
            tls: None,
        });
    }
    let bad = |reason: &str| invalid("controller.quorum.voters", voters_raw, reason);
    let mut voters = BTreeMap::new();
    for v in voters_raw
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        let (id, addr) = v
            .split_once('@')
            .ok_or_else(|| bad("expected id@host:port"))?;
        let id: u64 = id.parse().map_err(|_| bad("voter id is not a number"))?;
        if addr.rsplit_once(':').is_none() {
            return Err(bad("expected id@host:port"));
        }
        if voters.insert(id, addr.to_string()).is_some() {
            return Err(bad("duplicate voter id"));
        }
    }
    let node_id: i64 = num(raw, "node.id")?;
    let own = u64::try_from(node_id).ok().and_then(|id| voters.get(&id));
    let roles = match (roles.as_slice(), own) {
        ([], Some(_)) | (["broker", "controller"], Some(_)) => ProcessRoles::Combined,
        ([], None) | (["broker"], None) => ProcessRoles::Broker,
        (["broker", "controller"], None) => {
            return Err(bad(
                "node.id is not one of the voters, as a controller must be",
            ))
        }
        (["broker"], Some(_)) => {
            return Err(bad_roles(
                "a broker-only node must not be one of controller.quorum.voters",
            ))
        }
        (["controller"], Some(_)) => ProcessRoles::Controller,
        (["controller"], None) => {
            return Err(bad_roles(
                "a controller-only node must be one of controller.quorum.voters",
            ))
        }
        _ => {
            return Err(bad_roles(
                "expected broker, controller or broker,controller",
            ))
        }
    };
    let listener = match (get("controller.listener"), own) {
        // A voter named by DNS (`id@spate-0.spate:9301`) binds every interface on its port.
        ("", Some(own)) => match (own.parse(), own.rsplit_once(':')) {
            (Ok(addr), _) => addr,
            (Err(_), Some((_, port))) => match port.parse::<u16>() {
                Ok(port) => SocketAddr::from(([0, 0, 0, 0], port)),
                Err(_) => return Err(bad("voter port is not a number")),
            },
            (Err(_), None) => return Err(bad("expected id@host:port")),
        },
        // A broker-only node advertises whatever it bound when it joins, so any free port
        // will do; a fixed one is friendlier to firewalls.
        ("", None) => SocketAddr::new(listen.ip(), 0),
        (s, _) => parse_addr("controller.listener", s)?,
    };
    Ok(QuorumConfig {
        voters,
        listener,
        rack,
        roles,
        election_timeout,
        solo: false,
        tls: None,
    })
}

pub fn env_name(key: &str) -> String {
    format!("SPATE_{}", key.replace('.', "_").to_uppercase())
}

pub fn parse_cleanup_policy(s: &str) -> Option<CleanupPolicy> {
    let mut parts: Vec<&str> = s.split(',').map(str::trim).collect();
    parts.sort_unstable();
    parts.dedup();
    match parts.as_slice() {
        ["delete"] => Some(CleanupPolicy::Delete),
        ["compact"] => Some(CleanupPolicy::Compact),
        ["compact", "delete"] => Some(CleanupPolicy::CompactDelete),
        _ => None,
    }
}

pub fn parse_timestamp_type(s: &str) -> Option<TimestampType> {
    match s {
        "CreateTime" => Some(TimestampType::CreateTime),
        "LogAppendTime" => Some(TimestampType::LogAppendTime),
        _ => None,
    }
}

/// Settings earlier releases had that no longer do anything. An old config file naming them
/// still starts (they are ignored; `BrokerConfig::retired` lists them for a warning).
const RETIRED: &[&str] = &[
    // Replication between brokers is always on.
    "replication.enable",
];

/// Takes one setting from a file or the command line; a retired one is only noted.
fn set(
    raw: &mut BTreeMap<String, String>,
    retired: &mut Vec<String>,
    key: String,
    value: String,
) -> Result<(), ConfigError> {
    if RETIRED.contains(&key.as_str()) {
        retired.push(key);
        return Ok(());
    }
    if !raw.contains_key(&key) && overrides::listener_override(&key).is_none() {
        return Err(ConfigError::Unknown(key));
    }
    raw.insert(key, value);
    Ok(())
}

/// Replaces `${env:NAME}` with the environment variable NAME, the syntax of Kafka's
/// EnvVarConfigProvider (KIP-887): a properties file shared by pods can then name what only
/// the pod knows, such as its node's address from the downward API.
fn expand_env(
    key: &str,
    value: &str,
    env: &BTreeMap<String, String>,
) -> Result<String, ConfigError> {
    const OPEN: &str = "${env:";
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let end = after
            .find('}')
            .ok_or_else(|| invalid(key, value, "unterminated ${env:...}"))?;
        let name = &after[..end];
        let v = env.get(name).ok_or_else(|| {
            invalid(
                key,
                value,
                &format!("environment variable {name} is not set"),
            )
        })?;
        out.push_str(v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn read_properties(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or(ConfigError::Syntax {
            path: path.to_path_buf(),
            line: i + 1,
        })?;
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

/// A bad value. The value of a secret (an inline key, a password) is not repeated.
pub(crate) fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    let value = if overrides::is_sensitive(key) {
        "[hidden]"
    } else {
        value
    };
    ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn parse_addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    let s = s.rsplit("://").next().unwrap_or(s);
    s.parse().map_err(|_| invalid(key, s, "expected ip:port"))
}

fn num<T: std::str::FromStr>(raw: &BTreeMap<String, String>, key: &str) -> Result<T, ConfigError> {
    let v = raw.get(key).map(String::as_str).unwrap_or_default();
    v.trim()
        .parse()
        .map_err(|_| invalid(key, v, "not a number"))
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(
    raw: &BTreeMap<String, String>,
    key: &str,
) -> Result<T, ConfigError> {
    let n: T = num(raw, key)?;
    if n <= T::default() {
        return Err(invalid(
            key,
            raw.get(key).map(String::as_str).unwrap_or_default(),
            "must be positive",
        ));
    }
    Ok(n)
}

fn boolean(raw: &BTreeMap<String, String>, key: &str) -> Result<bool, ConfigError> {
    match raw
        .get(key)
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        other => Err(invalid(
            key,
            other.unwrap_or_default(),
            "expected true or false",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_start_a_single_node_on_9092() {
        let c = BrokerConfig::load(None, vec![], vec![]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9092".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("./spate-data"));
        assert!(c.auto_create_topics);
        assert_eq!(c.log_defaults.flush.ms, Some(1000));
        assert_eq!(c.log_defaults.flush.messages, None);
    }

    #[test]
    fn env_references_are_expanded_like_kafkas_env_provider() {
        let env = kv(&[("NODE_IP", "10.0.0.7"), ("UNRELATED", "x")]);
        let cli = kv(&[
            (
                "listeners",
                "INTERNAL://0.0.0.0:9092,EXTERNAL://0.0.0.0:9094",
            ),
            (
                "listener.security.protocol.map",
                "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
            ),
            (
                "advertised.listeners",
                "INTERNAL://spate-0:9092,EXTERNAL://${env:NODE_IP}:31001",
            ),
        ]);
        let c = BrokerConfig::load(None, env.clone(), cli.clone()).unwrap();
        assert_eq!(
            c.listeners.all[1].advertised,
            Some(("10.0.0.7".into(), 31001))
        );
        let missing = BrokerConfig::load(None, vec![], cli)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("NODE_IP is not set"), "{missing}");
        let open = BrokerConfig::load(None, env, kv(&[("broker.rack", "${env:NODE_IP")]))
            .unwrap_err()
            .to_string();
        assert!(open.contains("unterminated"), "{open}");
    }

    #[test]
    fn layers_file_env_and_cli_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.properties");
        std::fs::write(
            &file,
            "# c\nnum.partitions=3\nlisteners=PLAINTEXT://127.0.0.1:9000\nnode.id=4\n",
        )
        .unwrap();
        let env = kv(&[
            ("SPATE_NUM_PARTITIONS", "5"),
            ("SPATE_NODE_ID", "6"),
            ("HOME", "/x"),
        ]);
        let cli = kv(&[("node.id", "7")]);
        let c = BrokerConfig::load(Some(&file), env, cli).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.num_partitions, 5);
        assert_eq!(c.node_id, 7);
    }

    #[test]
    fn quorum_settings_are_parsed_and_checked() {
        let c = BrokerConfig::load(None, vec![], vec![]).unwrap();
        assert!(c.quorum.solo, "a single node by default");
        assert_eq!(c.quorum.roles, ProcessRoles::Combined);
        assert_eq!(c.quorum.listener.to_string(), "127.0.0.1:0");
        assert_eq!(
            c.quorum.voters.keys().collect::<Vec<_>>(),
            [&(c.node_id as u64)]
        );
        let voters = "1@127.0.0.1:9301,2@127.0.0.1:9302";
        let c = BrokerConfig::load(
            None,
            vec![],
            kv(&[
                ("node.id", "2"),
                ("controller.quorum.voters", voters),
                ("broker.rack", "r1"),
            ]),
        )
        .unwrap();
        let q = c.quorum;
        assert!(!q.solo);
        assert_eq!(q.voters.len(), 2);
        assert_eq!(q.listener.to_string(), "127.0.0.1:9302");
        assert_eq!(q.rack.as_deref(), Some("r1"));
        assert_eq!(q.roles, ProcessRoles::Combined);
        for bad in ["x@h:1", "1@nohostport", "2@a:1,2@b:2"] {
            let r = BrokerConfig::load(
                None,
                vec![],
                kv(&[("node.id", "2"), ("controller.quorum.voters", bad)]),
            );
            assert!(r.is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_node_outside_the_voters_is_broker_only() {
        let voters = "1@voter-1.spate:9301,2@voter-2.spate:9301";
        let load = |extra: &[(&str, &str)]| {
            let mut cli = vec![
                ("node.id", "5"),
                ("listeners", "127.0.0.5:9092"),
                ("controller.quorum.voters", voters),
            ];
            cli.extend_from_slice(extra);
            BrokerConfig::load(None, vec![], kv(&cli))
        };
        let q = load(&[]).unwrap().quorum;
        assert_eq!(q.roles, ProcessRoles::Broker);
        assert_eq!(
            q.listener.to_string(),
            "127.0.0.5:0",
            "any port, the listener's IP"
        );
        let q = load(&[
            ("process.roles", "broker"),
            ("controller.listener", "0.0.0.0:9301"),
        ])
        .unwrap()
        .quorum;
        assert_eq!(q.roles, ProcessRoles::Broker);
        assert_eq!(q.listener.to_string(), "0.0.0.0:9301");
        for roles in ["broker,controller", "controller", "zookeeper"] {
            assert!(
                load(&[("process.roles", roles)]).is_err(),
                "{roles} accepted"
            );
        }
        // A voter may say so explicitly, in either order, but not claim to be broker-only.
        let voter = |roles: &str| {
            BrokerConfig::load(
                None,
                vec![],
                kv(&[
                    ("node.id", "1"),
                    ("controller.quorum.voters", voters),
                    ("controller.listener", "0.0.0.0:9301"),
                    ("process.roles", roles),
                ]),
            )
        };
        let q = voter("controller,broker").unwrap().quorum;
        assert_eq!(q.roles, ProcessRoles::Combined);
        let q = BrokerConfig::load(
            None,
            vec![],
            kv(&[("node.id", "2"), ("controller.quorum.voters", voters)]),
        )
        .unwrap()
        .quorum;
        assert_eq!(
            q.listener.to_string(),
            "0.0.0.0:9301",
            "a voter named by DNS"
        );
        assert!(voter("broker").is_err());
    }

    #[test]
    fn a_controller_only_node_must_be_a_voter() {
        let voters = "1@127.0.0.1:9301,2@voter-2.spate:9301,3@127.0.0.1:9303";
        let load = |id: &str, roles: &str| {
            BrokerConfig::load(
                None,
                vec![],
                kv(&[
                    ("node.id", id),
                    ("controller.quorum.voters", voters),
                    ("process.roles", roles),
                ]),
            )
        };
        let c = load("1", "controller").unwrap();
        assert!(c.controller_only());
        let q = c.quorum;
        assert_eq!(q.roles, ProcessRoles::Controller);
        assert_eq!(
            q.listener.to_string(),
            "127.0.0.1:9301",
            "its own voter entry"
        );
        let q = load("2", " controller , controller").unwrap().quorum;
        assert_eq!(q.roles, ProcessRoles::Controller);
        assert_eq!(
            q.listener.to_string(),
            "0.0.0.0:9301",
            "a voter named by DNS"
        );
        // Not a voter: refused, naming the setting to fix.
        match load("4", "controller") {
            Err(ConfigError::Invalid { key, reason, .. }) => {
                assert_eq!(key, "process.roles");
                assert!(reason.contains("controller.quorum.voters"), "{reason}");
            }
            other => panic!("a non-voter controller was accepted: {other:?}"),
        }
        // The other roles are unchanged: a voter may be combined but not broker-only.
        let c = load("3", "broker,controller").unwrap();
        assert!(!c.controller_only());
        assert!(matches!(
            load("3", "broker"),
            Err(ConfigError::Invalid { reason, .. }) if reason.contains("must not be one of")
        ));
        let single = BrokerConfig::load(None, vec![], kv(&[("process.roles", "controller ,")]));
        assert!(single.is_err(), "a controller without a quorum");
    }

    #[test]
    fn retired_settings_are_accepted_and_reported() {
        let c = BrokerConfig::load(None, vec![], kv(&[("replication.enable", "false")])).unwrap();
        assert_eq!(c.retired, ["replication.enable"]);
        assert!(!c.raw.keys().any(|k| k.contains("replication.enable")));
    }

    #[test]
    fn tls_listeners_take_per_listener_overrides() {
        let c = BrokerConfig::load(
            None,
            kv(&[("SPATE_SSL_TRUSTSTORE_LOCATION", "/ca.pem")]),
            kv(&[
                ("listeners", "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0"),
                (
                    "listener.security.protocol.map",
                    "INTERNAL:PLAINTEXT,EXTERNAL:SSL",
                ),
                ("inter.broker.listener.name", "INTERNAL"),
                ("ssl.keystore.location", "/broker.pem"),
                ("listener.name.external.ssl.client.auth", "required"),
            ]),
        )
        .unwrap();
        assert_eq!(c.tls.keys().collect::<Vec<_>>(), ["EXTERNAL"]);
        assert_eq!(
            c.tls["EXTERNAL"].client_auth,
            crate::security::tls::ClientAuth::Required
        );
        // An override for a listener that does not exist is a mistake worth naming.
        let err = BrokerConfig::load(
            None,
            vec![],
            kv(&[("listener.name.extrenal.ssl.client.auth", "required")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no listener extrenal"), "{err}");
        // Other settings cannot be given per listener.
        assert!(matches!(
            BrokerConfig::load(
                None,
                vec![],
                kv(&[("listener.name.plaintext.num.partitions", "2")])
            ),
            Err(ConfigError::Unknown(_))
        ));
    }

    #[test]
    fn secrets_are_not_repeated_in_errors() {
        let err = BrokerConfig::load(
            None,
            vec![],
            kv(&[
                ("listeners", "SSL://127.0.0.1:0"),
                ("ssl.keystore.key", "-----BEGIN PRIVATE KEY-----TOPSECRET"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ssl.keystore.key") && err.contains("[hidden]"),
            "{err}"
        );
        assert!(!err.contains("TOPSECRET"), "{err}");
    }

    #[test]
    fn a_sasl_inter_broker_listener_needs_the_brokers_own_login() {
        let base = [
            ("listeners", "SASL_SSL://127.0.0.1:9093"),
            ("ssl.keystore.location", "/broker.pem"),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
            ("controller.quorum.voters", "0@127.0.0.1:9301"),
        ];
        let err = BrokerConfig::load(None, vec![], kv(&base))
            .unwrap_err()
            .to_string();
        assert!(err.contains("give the broker's login"), "{err}");
        let mut with_login = base.to_vec();
        with_login.push((
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config",
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="hunter2";"#,
        ));
        let c = BrokerConfig::load(None, vec![], kv(&with_login)).unwrap();
        let login = c.inter_broker_sasl.unwrap();
        assert_eq!(login.username, "broker");
        assert!(!format!("{login:?}").contains("hunter2"));
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(matches!(
            BrokerConfig::load(None, vec![], kv(&[("no.such", "1")])),
            Err(ConfigError::Unknown(_))
        ));
        assert!(matches!(
            BrokerConfig::load(None, vec![], kv(&[("num.partitions", "0")])),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            BrokerConfig::load(None, vec![], kv(&[("log.cleanup.policy", "shred")])),
            Err(ConfigError::Invalid { .. })
        ));
    }
}
