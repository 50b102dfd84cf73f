//! The broker's typed configuration, read from Kafka's `server.properties` key names.
//!
//! Every key is one of three kinds: acted on (parsed into [`BrokerConfig`]), known to Kafka but
//! not acted on yet (returned as a warning so the operator knows), or unknown (a typo: refused,
//! naming the key). Nothing is silently dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fjord_controller::Voter;

use crate::topic_config::ConfigSource;

/// A configuration the broker cannot start with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A key nobody knows: most likely a typo.
    #[error("unknown configuration key `{0}`")]
    UnknownKey(String),
    /// A known key with a value that does not parse or is out of range.
    #[error("invalid value `{value}` for `{key}`: {reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Keys that are each valid but contradict one another.
    #[error("`{key}`: {reason}")]
    Inconsistent {
        /// The key to change.
        key: String,
        /// What contradicts it.
        reason: String,
    },
}

/// A listener as written in `listeners=NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// The listener name; `listener.security.protocol.map` gives its security protocol.
    pub name: String,
    /// Host and port to bind; port 0 picks a free one.
    pub address: SocketAddr,
}

/// What a node runs, from Kafka's `process.roles`. Without the key a node is a single-node
/// cluster that keeps its topics in `fjord-topics.json`; with it, metadata lives in the
/// controller quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    /// `broker`: serves clients and hosts partition logs.
    pub broker: bool,
    /// `controller`: a voter of the metadata quorum.
    pub controller: bool,
}

impl std::fmt::Display for ProcessRoles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.broker, self.controller) {
            (true, true) => f.write_str("broker,controller"),
            (true, false) => f.write_str("broker"),
            (false, true) => f.write_str("controller"),
            (false, false) => f.write_str(""),
        }
    }
}

/// The settings of a node in cluster mode (`process.roles` set), validated together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `process.roles`.
    pub roles: ProcessRoles,
    /// `controller.quorum.voters`.
    pub voters: Vec<Voter>,
    /// `controller.listener.names`: listeners that carry the quorum's traffic and are never
    /// served to Kafka clients. A broker-only node binds none of them; the first names the
    /// listener it reaches the voters on.
    pub controller_listener_names: Vec<String>,
    /// `inter.broker.listener.name`: the listener brokers use to reach each other.
    pub inter_broker_listener_name: String,
    /// `broker.session.timeout.ms`: a broker silent this long is fenced by the controller.
    pub broker_session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`: how often the broker heartbeats to the controller.
    pub broker_heartbeat_interval_ms: u64,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: u64,
    /// `controller.quorum.request.timeout.ms`.
    pub request_timeout_ms: u64,
    /// `metadata.log.dir`, else the first of `log.dirs`: where the metadata log is kept.
    pub metadata_log_dir: PathBuf,
    /// `replica.lag.time.max.ms`: an in-sync follower not caught up for this long leaves
    /// the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits at the leader for data.
    pub replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.max.bytes`: bytes per partition in one follower fetch.
    pub replica_fetch_max_bytes: u64,
    /// `replica.fetch.response.max.bytes`: bytes in one follower fetch response.
    pub replica_fetch_response_max_bytes: u64,
    /// `replica.fetch.backoff.ms`: the pause after a failed follower fetch.
    pub replica_fetch_backoff_ms: u64,
    /// `offsets.topic.replication.factor`: replicas of `__consumer_offsets`.
    pub offsets_topic_replication_factor: i16,
    /// `transaction.state.log.replication.factor`: replicas of `__transaction_state`.
    pub transaction_state_log_replication_factor: i16,
}

impl ClusterConfig {
    /// The CONTROLLER listener this node binds, when it is a controller.
    pub fn controller_listener<'a>(
        &self,
        listeners: &'a [ListenerConfig],
    ) -> Option<&'a ListenerConfig> {
        listeners
            .iter()
            .find(|l| self.controller_listener_names.contains(&l.name))
    }

    /// Whether `name` is a controller listener, which Kafka clients are never told about.
    pub fn is_controller_listener(&self, name: &str) -> bool {
        self.controller_listener_names.iter().any(|n| n == name)
    }
}

/// Everything the single-node broker acts on, with Kafka's defaults.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id` (or `broker.id`).
    pub node_id: i32,
    /// `listeners`.
    pub listeners: Vec<ListenerConfig>,
    /// `advertised.listeners`: host:port clients are told to use, when it differs from the bind
    /// address.
    pub advertised_listeners: Vec<(String, String, u16)>,
    /// `log.dirs` / `log.dir`: the first entry is used.
    pub log_dir: PathBuf,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `message.max.bytes`: the broker-wide default of the topic key `max.message.bytes`.
    pub message_max_bytes: i64,
    /// `socket.request.max.bytes`.
    pub socket_request_max_bytes: usize,
    /// `log.segment.bytes`.
    pub log_segment_bytes: i64,
    /// `log.roll.ms` / `log.roll.hours`.
    pub log_roll_ms: i64,
    /// `log.retention.ms` / `.minutes` / `.hours`.
    pub log_retention_ms: i64,
    /// `log.retention.bytes`.
    pub log_retention_bytes: i64,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval_ms: u64,
    /// `log.index.interval.bytes`.
    pub log_index_interval_bytes: i64,
    /// `log.index.size.max.bytes`.
    pub log_index_size_max_bytes: i64,
    /// `log.message.timestamp.type`.
    pub log_message_timestamp_type: String,
    /// `log.cleanup.policy`.
    pub log_cleanup_policy: String,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i64,
    /// `log.flush.offset.checkpoint.interval.ms`: how often recovery points are written.
    pub log_flush_offset_checkpoint_interval_ms: u64,
    /// `max.connections`: connections served at once.
    pub max_connections: usize,
    /// `queued.max.requests`: requests in flight per connection before reading pauses.
    pub queued_max_requests: usize,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size`.
    pub group_max_size: i64,
    /// `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: i64,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask for.
    pub transaction_max_timeout_ms: i32,
    /// `transaction.state.log.num.partitions`.
    pub transaction_state_log_num_partitions: i32,
    /// `producer.id.expiration.ms`: idle producers are forgotten by partitions after this.
    pub producer_id_expiration_ms: i64,
    /// `transactional.id.expiration.ms`: idle transactional ids are removed after this.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub transaction_cleanup_interval_ms: i64,
    /// `log.cleaner.enable`.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: pause between cleaning rounds.
    pub log_cleaner_backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`: memory for one cleaning pass's key map.
    pub log_cleaner_dedupe_buffer_size: usize,
    /// `metrics.listener` (Fjord's own key): where `GET /metrics` is served, off when `None`.
    pub metrics_listener: Option<SocketAddr>,
    /// `listener.security.protocol.map`: listener name to security protocol.
    pub listener_security_protocol_map: BTreeMap<String, String>,
    /// `unclean.leader.election.enable`: whether the controller may elect an out-of-sync
    /// replica when no in-sync one is left (the cluster default; topics may override it).
    pub unclean_leader_election_enable: bool,
    /// `broker.rack`: registered with the controller, which spreads replicas over racks.
    pub broker_rack: Option<String>,
    /// `cluster.id`: the id `meta.properties` must carry (Kafka's `kafka-storage format -t`).
    pub cluster_id: Option<String>,
    /// Cluster mode: `None` without `process.roles` (a single-node cluster).
    pub cluster: Option<ClusterConfig>,
    /// The keys that were set explicitly, for DescribeConfigs' STATIC_BROKER_CONFIG source.
    pub explicit: BTreeMap<String, String>,
    /// Dynamic overrides for the cluster-wide default entity (Kafka's `<default>`), in force.
    pub dynamic_default: BTreeMap<String, String>,
    /// Dynamic overrides for this broker (resource name = node id); they win over the default.
    pub dynamic_broker: BTreeMap<String, String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 1,
            listeners: vec![ListenerConfig {
                name: "PLAINTEXT".into(),
                address: SocketAddr::from(([127, 0, 0, 1], 9092)),
            }],
            advertised_listeners: Vec::new(),
            log_dir: PathBuf::from("./fjord-data"),
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics_enable: true,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            log_segment_bytes: 1_073_741_824,
            log_roll_ms: 168 * 3_600_000,
            log_retention_ms: 168 * 3_600_000,
            log_retention_bytes: -1,
            log_retention_check_interval_ms: 300_000,
            log_index_interval_bytes: 4096,
            log_index_size_max_bytes: 10_485_760,
            log_message_timestamp_type: "CreateTime".into(),
            log_cleanup_policy: "delete".into(),
            min_insync_replicas: 1,
            log_flush_offset_checkpoint_interval_ms: 60_000,
            max_connections: 10_000,
            queued_max_requests: 500,
            offsets_topic_num_partitions: 50,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: i32::MAX as i64,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            transaction_max_timeout_ms: 900_000,
            transaction_state_log_num_partitions: 50,
            producer_id_expiration_ms: 86_400_000,
            transactional_id_expiration_ms: 604_800_000,
            transaction_cleanup_interval_ms: 3_600_000,
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_dedupe_buffer_size: 134_217_728,
            metrics_listener: None,
            listener_security_protocol_map: default_protocol_map(),
            unclean_leader_election_enable: false,
            broker_rack: None,
            cluster_id: None,
            cluster: None,
            explicit: BTreeMap::new(),
            dynamic_default: BTreeMap::new(),
            dynamic_broker: BTreeMap::new(),
        }
    }
}

/// Kafka broker keys that are valid but that Fjord does not act on yet; setting one warns.
const KNOWN_NOT_ACTED_ON: &[&str] = &[
    "controller.quorum.bootstrap.servers",
    "num.network.threads",
    "num.io.threads",
    "num.recovery.threads.per.data.dir",
    "num.replica.fetchers",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "transaction.state.log.min.isr",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.flush.scheduler.interval.ms",
    "log.cleaner.threads",
    "log.cleaner.delete.retention.ms",
    "log.segment.delete.delay.ms",
    "zookeeper.connect",
    "zookeeper.connection.timeout.ms",
    "delete.topic.enable",
    "compression.type",
];

/// Every key [`BrokerConfig::from_properties`] acts on.
const ACTED_ON: &[&str] = &[
    "transaction.max.timeout.ms",
    "transaction.state.log.num.partitions",
    "producer.id.expiration.ms",
    "transactional.id.expiration.ms",
    "transaction.remove.expired.transaction.cleanup.interval.ms",
    "node.id",
    "broker.id",
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "log.dir",
    "num.partitions",
    "default.replication.factor",
    "auto.create.topics.enable",
    "message.max.bytes",
    "socket.request.max.bytes",
    "log.segment.bytes",
    "log.roll.ms",
    "log.roll.hours",
    "log.retention.ms",
    "log.retention.minutes",
    "log.retention.hours",
    "log.retention.bytes",
    "log.retention.check.interval.ms",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "log.message.timestamp.type",
    "log.cleanup.policy",
    "min.insync.replicas",
    "log.flush.offset.checkpoint.interval.ms",
    "max.connections",
    "queued.max.requests",
    "offsets.topic.num.partitions",
    "group.initial.rebalance.delay.ms",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.max.size",
    "offsets.retention.minutes",
    "offsets.retention.check.interval.ms",
    "offset.metadata.max.bytes",
    "metrics.listener",
    "log.cleaner.enable",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "process.roles",
    "controller.quorum.voters",
    "controller.listener.names",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "broker.session.timeout.ms",
    "broker.heartbeat.interval.ms",
    "controller.quorum.election.timeout.ms",
    "controller.quorum.request.timeout.ms",
    "metadata.log.dir",
    "unclean.leader.election.enable",
    "broker.rack",
    "cluster.id",
    "replica.lag.time.max.ms",
    "replica.fetch.wait.max.ms",
    "replica.fetch.max.bytes",
    "replica.fetch.response.max.bytes",
    "replica.fetch.backoff.ms",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
];

/// Keys that only mean something in cluster mode; setting one without `process.roles` is
/// refused rather than silently ignored.
const CLUSTER_ONLY_KEYS: &[&str] = &[
    "controller.quorum.voters",
    "controller.listener.names",
    "inter.broker.listener.name",
    "broker.session.timeout.ms",
    "broker.heartbeat.interval.ms",
    "controller.quorum.election.timeout.ms",
    "controller.quorum.request.timeout.ms",
    "metadata.log.dir",
];

/// Kafka's default `listener.security.protocol.map`.
fn default_protocol_map() -> BTreeMap<String, String> {
    ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
        .into_iter()
        .map(|p| (p.to_string(), p.to_string()))
        .collect()
}

impl BrokerConfig {
    /// Builds the configuration from Kafka-named properties. Returns the keys that are valid
    /// Kafka keys but not acted on, for the caller to warn about.
    pub fn from_properties(
        props: &BTreeMap<String, String>,
    ) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let mut config = BrokerConfig::default();
        let mut not_acted_on = Vec::new();
        for key in props.keys() {
            if KNOWN_NOT_ACTED_ON.contains(&key.as_str()) {
                not_acted_on.push(key.clone());
            } else if !ACTED_ON.contains(&key.as_str()) {
                return Err(ConfigError::UnknownKey(key.clone()));
            }
        }
        fn lookup<'a>(
            props: &'a BTreeMap<String, String>,
            key: &'static str,
        ) -> Option<(&'static str, &'a str)> {
            props.get(key).map(|v| (key, v.trim()))
        }
        let get = |key: &'static str| lookup(props, key);
        if let Some((k, v)) = get("node.id").or_else(|| get("broker.id")) {
            config.node_id = parse_int(k, v, 0, i32::MAX as i64)? as i32;
        }
        if let Some((k, v)) = get("listeners") {
            config.listeners = parse_listeners(k, v)?;
        }
        if let Some((k, v)) = get("advertised.listeners") {
            config.advertised_listeners = parse_advertised(k, v)?;
        }
        if let Some((k, v)) = get("log.dirs").or_else(|| get("log.dir")) {
            let first = v.split(',').map(str::trim).find(|s| !s.is_empty());
            let first = first.ok_or_else(|| invalid(k, v, "no directory given"))?;
            config.log_dir = PathBuf::from(first);
        }
        if let Some((k, v)) = get("num.partitions") {
            config.num_partitions = parse_int(k, v, 1, i32::MAX as i64)? as i32;
        }
        if let Some((k, v)) = get("default.replication.factor") {
            config.default_replication_factor = parse_int(k, v, 1, i16::MAX as i64)? as i16;
        }
        if let Some((k, v)) = get("auto.create.topics.enable") {
            config.auto_create_topics_enable = parse_bool(k, v)?;
        }
        if let Some((k, v)) = get("message.max.bytes") {
            config.message_max_bytes = parse_int(k, v, 0, i32::MAX as i64)?;
        }
        if let Some((k, v)) = get("socket.request.max.bytes") {
            config.socket_request_max_bytes = parse_int(k, v, 1, i32::MAX as i64)? as usize;
        }
        if let Some((k, v)) = get("log.segment.bytes") {
            config.log_segment_bytes = parse_int(k, v, 14, i32::MAX as i64)?;
        }
        if let Some((k, v)) = get("log.roll.hours") {
            config.log_roll_ms = parse_int(k, v, 1, i32::MAX as i64)? * 3_600_000;
        }
        if let Some((k, v)) = get("log.roll.ms") {
            config.log_roll_ms = parse_int(k, v, 1, i64::MAX)?;
        }
        if let Some((k, v)) = get("log.retention.hours") {
            config.log_retention_ms = retention(parse_int(k, v, -1, i32::MAX as i64)?, 3_600_000);
        }
        if let Some((k, v)) = get("log.retention.minutes") {
            config.log_retention_ms = retention(parse_int(k, v, -1, i32::MAX as i64)?, 60_000);
        }
        if let Some((k, v)) = get("log.retention.ms") {
            config.log_retention_ms = parse_int(k, v, -1, i64::MAX)?;
        }
        if let Some((k, v)) = get("log.retention.bytes") {
            config.log_retention_bytes = parse_int(k, v, -1, i64::MAX)?;
        }
        if let Some((k, v)) = get("log.retention.check.interval.ms") {
            config.log_retention_check_interval_ms = parse_int(k, v, 1, i64::MAX)? as u64;
        }
        if let Some((k, v)) = get("log.index.interval.bytes") {
            config.log_index_interval_bytes = parse_int(k, v, 0, i32::MAX as i64)?;
        }
        if let Some((k, v)) = get("log.index.size.max.bytes") {
            config.log_index_size_max_bytes = parse_int(k, v, 4, i32::MAX as i64)?;
        }
        if let Some((k, v)) = get("log.message.timestamp.type") {
            if v != "CreateTime" && v != "LogAppendTime" {
                return Err(invalid(k, v, "expected CreateTime or LogAppendTime"));
            }
            config.log_message_timestamp_type = v.to_string();
        }
        if let Some((k, v)) = get("log.cleanup.policy") {
            if v.split(',')
                .any(|w| !matches!(w.trim(), "delete" | "compact"))
            {
                return Err(invalid(k, v, "expected delete, compact, or both"));
            }
            config.log_cleanup_policy = v.to_string();
        }
        if let Some((k, v)) = get("min.insync.replicas") {
            config.min_insync_replicas = parse_int(k, v, 1, i32::MAX as i64)?;
        }
        if let Some((k, v)) = get("log.flush.offset.checkpoint.interval.ms") {
            config.log_flush_offset_checkpoint_interval_ms = parse_int(k, v, 1, i64::MAX)? as u64;
        }
        if let Some((k, v)) = get("max.connections") {
            config.max_connections = parse_int(k, v, 1, i32::MAX as i64)? as usize;
        }
        if let Some((k, v)) = get("queued.max.requests") {
            config.queued_max_requests = parse_int(k, v, 1, i32::MAX as i64)? as usize;
        }
        if let Some((k, v)) = get("transaction.max.timeout.ms") {
            config.transaction_max_timeout_ms = parse_int(k, v, 1, i32::MAX as i64)? as i32;
        }
        if let Some((k, v)) = get("transaction.state.log.num.partitions") {
            config.transaction_state_log_num_partitions =
                parse_int(k, v, 1, i32::MAX as i64)? as i32;
        }
        if let Some((k, v)) = get("producer.id.expiration.ms") {
            config.producer_id_expiration_ms = parse_int(k, v, 1, i32::MAX as i64)?;
        }
        if let Some((k, v)) = get("transactional.id.expiration.ms") {
            config.transactional_id_expiration_ms = parse_int(k, v, 1, i32::MAX as i64)?;
        }
        if let Some((k, v)) = get("transaction.remove.expired.transaction.cleanup.interval.ms") {
            config.transaction_cleanup_interval_ms = parse_int(k, v, 1, i32::MAX as i64)?;
        }
        if let Some((k, v)) = get("offsets.topic.num.partitions") {
            config.offsets_topic_num_partitions = parse_int(k, v, 1, i32::MAX as i64)? as i32;
        }
        if let Some((k, v)) = get("group.initial.rebalance.delay.ms") {
            config.group_initial_rebalance_delay_ms = parse_int(k, v, 0, i32::MAX as i64)?;
        }
        if let Some((k, v)) = get("group.min.session.timeout.ms") {
            config.group_min_session_timeout_ms = parse_int(k, v, 0, i32::MAX as i64)? as i32;
        }
        if let Some((k, v)) = get("group.max.session.timeout.ms") {
            config.group_max_session_timeout_ms = parse_int(k, v, 0, i32::MAX as i64)? as i32;
        }
        if let Some((k, v)) = get("group.max.size") {
            config.group_max_size = parse_int(k, v, 1, i32::MAX as i64)?;
        }
        if let Some((k, v)) = get("offsets.retention.minutes") {
            config.offsets_retention_ms = parse_int(k, v, 1, i32::MAX as i64)? * 60_000;
        }
        if let Some((k, v)) = get("offsets.retention.check.interval.ms") {
            config.offsets_retention_check_interval_ms = parse_int(k, v, 1, i64::MAX)?;
        }
        if let Some((k, v)) = get("offset.metadata.max.bytes") {
            config.offset_metadata_max_bytes = parse_int(k, v, 0, i32::MAX as i64)?;
        }
        if let Some((k, v)) = get("metrics.listener") {
            config.metrics_listener = parse_metrics_listener(k, v)?;
        }
        if let Some((k, v)) = get("log.cleaner.enable") {
            config.log_cleaner_enable = parse_bool(k, v)?;
        }
        if let Some((k, v)) = get("log.cleaner.backoff.ms") {
            config.log_cleaner_backoff_ms = parse_int(k, v, 1, i64::MAX)? as u64;
        }
        if let Some((k, v)) = get("log.cleaner.dedupe.buffer.size") {
            config.log_cleaner_dedupe_buffer_size = parse_int(k, v, 1024, i64::MAX)? as usize;
        }
        if let Some((k, v)) = get("listener.security.protocol.map") {
            config.listener_security_protocol_map = parse_protocol_map(k, v)?;
        }
        if let Some((k, v)) = get("unclean.leader.election.enable") {
            config.unclean_leader_election_enable = parse_bool(k, v)?;
        }
        if let Some((_, v)) = get("broker.rack") {
            config.broker_rack = (!v.is_empty()).then(|| v.to_string());
        }
        if let Some((k, v)) = get("cluster.id") {
            if v.is_empty()
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid(k, v, "expected letters, digits, `-` and `_`"));
            }
            config.cluster_id = Some(v.to_string());
        }
        check_listener_protocols(&config)?;
        config.cluster = parse_cluster(props, &config)?;
        if config.group_min_session_timeout_ms > config.group_max_session_timeout_ms {
            return Err(invalid(
                "group.min.session.timeout.ms",
                &config.group_min_session_timeout_ms.to_string(),
                "must not exceed group.max.session.timeout.ms",
            ));
        }
        config.explicit = props
            .iter()
            .filter(|(k, _)| ACTED_ON.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok((config, not_acted_on))
    }
}

fn retention(value: i64, unit_ms: i64) -> i64 {
    if value < 0 {
        -1
    } else {
        value * unit_ms
    }
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Parses an integer within `[min, max]`; shared with topic configs.
pub(crate) fn parse_int(key: &str, value: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let parsed: i64 = value
        .parse()
        .map_err(|_| invalid(key, value, "not an integer"))?;
    if parsed < min || parsed > max {
        return Err(invalid(
            key,
            value,
            &format!("must be between {min} and {max}"),
        ));
    }
    Ok(parsed)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

fn split_listener<'a>(key: &str, item: &'a str) -> Result<(&'a str, &'a str, u16), ConfigError> {
    let (name, rest) = item
        .split_once("://")
        .ok_or_else(|| invalid(key, item, "expected NAME://host:port"))?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, item, "expected NAME://host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(key, item, "port is not a number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((name, host, port))
}

fn parse_listeners(key: &str, value: &str) -> Result<Vec<ListenerConfig>, ConfigError> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, host, port) = split_listener(key, item)?;
        if name.is_empty() {
            return Err(invalid(key, item, "the listener name is empty"));
        }
        if out.iter().any(|l: &ListenerConfig| l.name == name) {
            return Err(invalid(key, item, "the listener name is used twice"));
        }
        let host = match host {
            "" => "0.0.0.0",
            "localhost" => "127.0.0.1",
            h => h,
        };
        let ip: std::net::IpAddr = host
            .parse()
            .map_err(|_| invalid(key, item, "host must be an IP address or localhost"))?;
        out.push(ListenerConfig {
            name: name.to_string(),
            address: SocketAddr::new(ip, port),
        });
    }
    if out.is_empty() {
        return Err(invalid(key, value, "no listener given"));
    }
    Ok(out)
}

/// `NAME:PROTOCOL,...`, Kafka's `listener.security.protocol.map`.
fn parse_protocol_map(key: &str, value: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut map = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, protocol) = item
            .split_once(':')
            .ok_or_else(|| invalid(key, item, "expected NAME:PROTOCOL"))?;
        let protocol = protocol.trim().to_ascii_uppercase();
        if !matches!(
            protocol.as_str(),
            "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL"
        ) {
            return Err(invalid(
                key,
                item,
                "the protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
            ));
        }
        map.insert(name.trim().to_string(), protocol);
    }
    if map.is_empty() {
        return Err(invalid(key, value, "no mapping given"));
    }
    Ok(map)
}

/// Every listener needs a security protocol, and only PLAINTEXT is implemented.
fn check_listener_protocols(config: &BrokerConfig) -> Result<(), ConfigError> {
    for l in &config.listeners {
        match config.listener_security_protocol_map.get(&l.name) {
            None => {
                return Err(ConfigError::Inconsistent {
                    key: "listener.security.protocol.map".into(),
                    reason: format!(
                        "listener {} has no security protocol; add {}:PLAINTEXT",
                        l.name, l.name
                    ),
                })
            }
            Some(p) if p != "PLAINTEXT" => {
                return Err(ConfigError::Inconsistent {
                    key: "listener.security.protocol.map".into(),
                    reason: format!(
                        "listener {} uses {p}; only PLAINTEXT listeners are supported so far",
                        l.name
                    ),
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn parse_roles(key: &str, value: &str) -> Result<ProcessRoles, ConfigError> {
    let mut roles = ProcessRoles {
        broker: false,
        controller: false,
    };
    for role in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let slot = match role {
            "broker" => &mut roles.broker,
            "controller" => &mut roles.controller,
            _ => return Err(invalid(key, value, "roles are `broker` and `controller`")),
        };
        if *slot {
            return Err(invalid(key, value, "a role is named twice"));
        }
        *slot = true;
    }
    if !roles.broker && !roles.controller {
        return Err(invalid(key, value, "no role given"));
    }
    Ok(roles)
}

fn names(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn inconsistent(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Inconsistent {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Kafka's rules for a broker-only node (`process.roles=broker`): it is not a voter, binds no
/// controller listener, and reaches the voters over the first of `controller.listener.names`,
/// whose security protocol must be mapped (and, in Fjord, be PLAINTEXT).
fn check_broker_only(
    config: &BrokerConfig,
    voters: &[Voter],
    controller_listener_names: &[String],
) -> Result<(), ConfigError> {
    let node_id = config.node_id;
    if voters.iter().any(|v| v.id == node_id) {
        return Err(inconsistent(
            "controller.quorum.voters",
            format!(
                "node {node_id} has only the broker role, so it must not be one of the voters \
                 (add the controller role to process.roles, or use another node.id)"
            ),
        ));
    }
    if let Some(l) = config
        .listeners
        .iter()
        .find(|l| controller_listener_names.contains(&l.name))
    {
        return Err(inconsistent(
            "controller.listener.names",
            format!(
                "must not contain a value appearing in listeners ({}) when the node has only \
                 the broker role: it binds no controller listener and reaches the voters at \
                 controller.quorum.voters",
                l.name
            ),
        ));
    }
    for name in controller_listener_names {
        if !config.listener_security_protocol_map.contains_key(name) {
            return Err(inconsistent(
                "listener.security.protocol.map",
                format!(
                    "controller listener {name} (controller.listener.names) has no security \
                     protocol; add {name}:PLAINTEXT"
                ),
            ));
        }
    }
    // As in Kafka, a broker-only node uses the first name only.
    if let Some(name) = controller_listener_names.first() {
        let protocol = &config.listener_security_protocol_map[name];
        if protocol != "PLAINTEXT" {
            return Err(inconsistent(
                "listener.security.protocol.map",
                format!(
                    "controller listener {name} uses {protocol}; only PLAINTEXT is supported so far"
                ),
            ));
        }
    }
    Ok(())
}

/// The cluster-mode settings and the rules they must satisfy together; `None` without
/// `process.roles`, where the cluster-only keys are refused.
fn parse_cluster(
    props: &BTreeMap<String, String>,
    config: &BrokerConfig,
) -> Result<Option<ClusterConfig>, ConfigError> {
    let get = |key: &'static str| props.get(key).map(|v| (key, v.trim()));
    let Some((k, v)) = get("process.roles") else {
        if let Some(key) = CLUSTER_ONLY_KEYS.iter().find(|k| props.contains_key(**k)) {
            return Err(inconsistent(
                key,
                "only meaningful in cluster mode; set process.roles (e.g. broker,controller) \
                 or remove the key for a single-node cluster",
            ));
        }
        return Ok(None);
    };
    let roles = parse_roles(k, v)?;
    if !props.contains_key("node.id") && !props.contains_key("broker.id") {
        return Err(inconsistent(
            "node.id",
            "cluster mode needs an explicit node.id",
        ));
    }
    let voters = match get("controller.quorum.voters") {
        Some((k, v)) => {
            fjord_controller::parse_voters(v).map_err(|e| invalid(k, v, &e.to_string()))?
        }
        None => {
            return Err(inconsistent(
                "controller.quorum.voters",
                "cluster mode needs the quorum's voters as id@host:port,...",
            ))
        }
    };
    let controller_listener_names = get("controller.listener.names")
        .map(|(_, v)| names(v))
        .unwrap_or_default();
    if controller_listener_names.is_empty() {
        return Err(inconsistent(
            "controller.listener.names",
            "cluster mode needs the name of the controller listener (e.g. CONTROLLER)",
        ));
    }
    let is_controller = |name: &str| controller_listener_names.iter().any(|n| n == name);
    let broker_listeners: Vec<&ListenerConfig> = config
        .listeners
        .iter()
        .filter(|l| !is_controller(&l.name))
        .collect();
    if roles.controller {
        if !voters.iter().any(|v| v.id == config.node_id) {
            return Err(inconsistent(
                "controller.quorum.voters",
                format!(
                    "node {} has the controller role but is not one of the voters",
                    config.node_id
                ),
            ));
        }
        if !config.listeners.iter().any(|l| is_controller(&l.name)) {
            return Err(inconsistent(
                "listeners",
                format!(
                    "the controller role needs a listener named in controller.listener.names \
                     ({})",
                    controller_listener_names.join(",")
                ),
            ));
        }
    }
    if roles.broker && !roles.controller {
        check_broker_only(config, &voters, &controller_listener_names)?;
    }
    if roles.broker && broker_listeners.is_empty() {
        return Err(inconsistent(
            "listeners",
            "the broker role needs a listener that is not a controller listener",
        ));
    }
    if !roles.broker && !broker_listeners.is_empty() {
        return Err(inconsistent(
            "listeners",
            "a controller-only node serves no clients; list only controller listeners",
        ));
    }
    for (name, _, _) in &config.advertised_listeners {
        if is_controller(name) {
            return Err(inconsistent(
                "advertised.listeners",
                format!("{name} is a controller listener, which is never advertised to clients"),
            ));
        }
        if !broker_listeners.iter().any(|l| &l.name == name) {
            return Err(inconsistent(
                "advertised.listeners",
                format!("{name} is not one of the listeners"),
            ));
        }
    }
    let inter_broker_listener_name = match get("inter.broker.listener.name") {
        Some((_, v)) => v.to_string(),
        None => "PLAINTEXT".to_string(),
    };
    if roles.broker
        && !broker_listeners
            .iter()
            .any(|l| l.name == inter_broker_listener_name)
    {
        return Err(inconsistent(
            "inter.broker.listener.name",
            format!("{inter_broker_listener_name} must be one of the broker's own listeners"),
        ));
    }
    let ms = |key: &'static str, default: u64| -> Result<u64, ConfigError> {
        match get(key) {
            Some((k, v)) => Ok(parse_int(k, v, 1, i32::MAX as i64)? as u64),
            None => Ok(default),
        }
    };
    let broker_session_timeout_ms = ms("broker.session.timeout.ms", 9000)?;
    let broker_heartbeat_interval_ms = ms("broker.heartbeat.interval.ms", 2000)?;
    if broker_heartbeat_interval_ms >= broker_session_timeout_ms {
        return Err(inconsistent(
            "broker.heartbeat.interval.ms",
            "must be below broker.session.timeout.ms, or brokers are fenced between heartbeats",
        ));
    }
    let metadata_log_dir = match get("metadata.log.dir") {
        Some((k, "")) => return Err(invalid(k, "", "no directory given")),
        Some((_, v)) => PathBuf::from(v),
        None => config.log_dir.clone(),
    };
    let replication_factor = |key: &'static str| -> Result<i16, ConfigError> {
        match get(key) {
            Some((k, v)) => Ok(parse_int(k, v, 1, i16::MAX as i64)? as i16),
            None => Ok(3),
        }
    };
    Ok(Some(ClusterConfig {
        replica_lag_time_max_ms: ms("replica.lag.time.max.ms", 30_000)?,
        replica_fetch_wait_max_ms: ms("replica.fetch.wait.max.ms", 500)?,
        replica_fetch_max_bytes: ms("replica.fetch.max.bytes", 1_048_576)?,
        replica_fetch_response_max_bytes: ms("replica.fetch.response.max.bytes", 10_485_760)?,
        replica_fetch_backoff_ms: ms("replica.fetch.backoff.ms", 1_000)?,
        offsets_topic_replication_factor: replication_factor("offsets.topic.replication.factor")?,
        transaction_state_log_replication_factor: replication_factor(
            "transaction.state.log.replication.factor",
        )?,
        roles,
        voters,
        controller_listener_names,
        inter_broker_listener_name,
        broker_session_timeout_ms,
        broker_heartbeat_interval_ms,
        election_timeout_ms: ms("controller.quorum.election.timeout.ms", 1000)?,
        request_timeout_ms: ms("controller.quorum.request.timeout.ms", 2000)?,
        metadata_log_dir,
    }))
}

impl BrokerConfig {
    /// The cluster id every node of the cluster must agree on: `cluster.id` when set, else
    /// (in cluster mode) one derived from the voter ids, which every node is configured
    /// with. A single node without `cluster.id` keeps the random id of its first start.
    pub fn cluster_id(&self) -> Option<String> {
        self.cluster_id.clone().or_else(|| {
            self.cluster
                .as_ref()
                .map(|c| derived_cluster_id(c.voters.iter().map(|v| v.id)))
        })
    }
}

/// A cluster id from the voter ids (FNV-1a, 128 bits, printed as Kafka prints ids). Only the
/// ids are used: each node may reach the voters at different addresses (proxies, NAT).
fn derived_cluster_id(voter_ids: impl Iterator<Item = i32>) -> String {
    let mut ids: Vec<i32> = voter_ids.collect();
    ids.sort_unstable();
    let text = format!(
        "fjord-cluster:{}",
        ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
    );
    let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for byte in text.bytes() {
        hash ^= u128::from(byte);
        hash = hash.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    crate::log_manager::base64_url(&hash.to_be_bytes())
}

/// The directory of the metadata log inside `metadata.log.dir`, named as Kafka names it so
/// that it never collides with a partition directory of a user topic.
pub fn metadata_dir(metadata_log_dir: &Path) -> PathBuf {
    metadata_log_dir.join("__cluster_metadata-0")
}

/// `http://host:port` (port 0 picks a free one); an empty value leaves the endpoint off.
fn parse_metrics_listener(key: &str, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if value.is_empty() {
        return Ok(None);
    }
    let rest = value
        .strip_prefix("http://")
        .ok_or_else(|| invalid(key, value, "expected http://host:port"))?;
    let (host, port) = rest
        .trim_end_matches('/')
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, value, "expected http://host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(key, value, "port is not a number"))?;
    let host = match host.trim_start_matches('[').trim_end_matches(']') {
        "" => "0.0.0.0",
        "localhost" => "127.0.0.1",
        h => h,
    };
    let ip: std::net::IpAddr = host
        .parse()
        .map_err(|_| invalid(key, value, "host must be an IP address or localhost"))?;
    Ok(Some(SocketAddr::new(ip, port)))
}

fn parse_advertised(key: &str, value: &str) -> Result<Vec<(String, String, u16)>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (name, host, port) = split_listener(key, item)?;
            Ok((name.to_string(), host.to_string(), port))
        })
        .collect()
}

/// Broker keys that may be changed at runtime (IncrementalAlterConfigs / AlterConfigs on a
/// BROKER resource): the subset of Kafka's dynamically updatable keys that Fjord acts on and
/// re-reads on every use, so a change is in force without a restart.
pub const DYNAMIC_KEYS: &[&str] = &[
    "log.cleaner.dedupe.buffer.size",
    "log.cleanup.policy",
    "log.index.interval.bytes",
    "log.message.timestamp.type",
    "log.retention.bytes",
    "log.retention.ms",
    "log.roll.ms",
    "log.segment.bytes",
    "message.max.bytes",
];

/// Whether `key` may be changed at runtime.
pub fn is_dynamic_key(key: &str) -> bool {
    DYNAMIC_KEYS.contains(&key)
}

impl BrokerConfig {
    /// This static configuration (never an already-overlaid one) with the dynamic overrides of the default entity and of this
    /// broker laid over it (the broker's win). Every key must be dynamically updatable and every
    /// value valid, checked with the same parser as `server.properties`. The dynamic keys are the
    /// highest-precedence spelling of each setting (`log.retention.ms` over `.hours`), so an
    /// override always takes effect.
    pub fn with_dynamic(
        &self,
        default: &BTreeMap<String, String>,
        broker: &BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut merged = default.clone();
        merged.extend(broker.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (key, value) in &merged {
            if !is_dynamic_key(key) {
                if !ACTED_ON.contains(&key.as_str()) && !KNOWN_NOT_ACTED_ON.contains(&key.as_str())
                {
                    return Err(ConfigError::UnknownKey(key.clone()));
                }
                return Err(invalid(
                    key,
                    value,
                    &format!(
                        "`{key}` is read-only: it cannot be updated dynamically; set it in server.properties"
                    ),
                ));
            }
        }
        let (parsed, _) = BrokerConfig::from_properties(&merged)?;
        let mut out = self.clone();
        for key in merged.keys() {
            match key.as_str() {
                "log.cleaner.dedupe.buffer.size" => {
                    out.log_cleaner_dedupe_buffer_size = parsed.log_cleaner_dedupe_buffer_size
                }
                "log.cleanup.policy" => out.log_cleanup_policy = parsed.log_cleanup_policy.clone(),
                "log.index.interval.bytes" => {
                    out.log_index_interval_bytes = parsed.log_index_interval_bytes
                }
                "log.message.timestamp.type" => {
                    out.log_message_timestamp_type = parsed.log_message_timestamp_type.clone()
                }
                "log.retention.bytes" => out.log_retention_bytes = parsed.log_retention_bytes,
                "log.retention.ms" => out.log_retention_ms = parsed.log_retention_ms,
                "log.roll.ms" => out.log_roll_ms = parsed.log_roll_ms,
                "log.segment.bytes" => out.log_segment_bytes = parsed.log_segment_bytes,
                "message.max.bytes" => out.message_max_bytes = parsed.message_max_bytes,
                _ => unreachable!("checked against DYNAMIC_KEYS above"),
            }
        }
        out.dynamic_default = default.clone();
        out.dynamic_broker = broker.clone();
        Ok(out)
    }

    /// Where the value of broker key `key` comes from, for DescribeConfigs.
    pub fn source_of(&self, key: &str) -> ConfigSource {
        if self.dynamic_broker.contains_key(key) {
            ConfigSource::DynamicBroker
        } else if self.dynamic_default.contains_key(key) {
            ConfigSource::DynamicDefaultBroker
        } else if self.is_explicit(key) {
            ConfigSource::StaticBroker
        } else {
            ConfigSource::Default
        }
    }
}

impl BrokerConfig {
    /// Effective values of the broker keys Fjord acts on, for DescribeConfigs.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let listeners = self
            .listeners
            .iter()
            .map(|l| format!("{}://{}", l.name, l.address))
            .collect::<Vec<_>>()
            .join(",");
        let advertised = self
            .advertised_listeners
            .iter()
            .map(|(n, h, p)| format!("{n}://{h}:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut entries = vec![
            ("advertised.listeners", advertised),
            (
                "auto.create.topics.enable",
                self.auto_create_topics_enable.to_string(),
            ),
            (
                "default.replication.factor",
                self.default_replication_factor.to_string(),
            ),
            ("listeners", listeners),
            ("log.cleanup.policy", self.log_cleanup_policy.clone()),
            (
                "log.cleaner.backoff.ms",
                self.log_cleaner_backoff_ms.to_string(),
            ),
            (
                "log.cleaner.dedupe.buffer.size",
                self.log_cleaner_dedupe_buffer_size.to_string(),
            ),
            ("log.cleaner.enable", self.log_cleaner_enable.to_string()),
            ("log.dirs", self.log_dir.display().to_string()),
            (
                "log.flush.offset.checkpoint.interval.ms",
                self.log_flush_offset_checkpoint_interval_ms.to_string(),
            ),
            (
                "log.index.interval.bytes",
                self.log_index_interval_bytes.to_string(),
            ),
            (
                "log.index.size.max.bytes",
                self.log_index_size_max_bytes.to_string(),
            ),
            (
                "log.message.timestamp.type",
                self.log_message_timestamp_type.clone(),
            ),
            ("log.retention.bytes", self.log_retention_bytes.to_string()),
            (
                "log.retention.check.interval.ms",
                self.log_retention_check_interval_ms.to_string(),
            ),
            ("log.retention.ms", self.log_retention_ms.to_string()),
            ("log.roll.ms", self.log_roll_ms.to_string()),
            ("log.segment.bytes", self.log_segment_bytes.to_string()),
            ("max.connections", self.max_connections.to_string()),
            ("message.max.bytes", self.message_max_bytes.to_string()),
            ("min.insync.replicas", self.min_insync_replicas.to_string()),
            ("node.id", self.node_id.to_string()),
            ("num.partitions", self.num_partitions.to_string()),
            (
                "offsets.topic.num.partitions",
                self.offsets_topic_num_partitions.to_string(),
            ),
            (
                "transaction.max.timeout.ms",
                self.transaction_max_timeout_ms.to_string(),
            ),
            (
                "transaction.state.log.num.partitions",
                self.transaction_state_log_num_partitions.to_string(),
            ),
            (
                "producer.id.expiration.ms",
                self.producer_id_expiration_ms.to_string(),
            ),
            (
                "transactional.id.expiration.ms",
                self.transactional_id_expiration_ms.to_string(),
            ),
            (
                "transaction.remove.expired.transaction.cleanup.interval.ms",
                self.transaction_cleanup_interval_ms.to_string(),
            ),
            (
                "group.initial.rebalance.delay.ms",
                self.group_initial_rebalance_delay_ms.to_string(),
            ),
            (
                "group.min.session.timeout.ms",
                self.group_min_session_timeout_ms.to_string(),
            ),
            (
                "group.max.session.timeout.ms",
                self.group_max_session_timeout_ms.to_string(),
            ),
            ("group.max.size", self.group_max_size.to_string()),
            (
                "offsets.retention.minutes",
                (self.offsets_retention_ms / 60_000).to_string(),
            ),
            (
                "offsets.retention.check.interval.ms",
                self.offsets_retention_check_interval_ms.to_string(),
            ),
            (
                "offset.metadata.max.bytes",
                self.offset_metadata_max_bytes.to_string(),
            ),
            ("queued.max.requests", self.queued_max_requests.to_string()),
            (
                "socket.request.max.bytes",
                self.socket_request_max_bytes.to_string(),
            ),
        ];
        if let Some(cluster) = &self.cluster {
            let voters = cluster
                .voters
                .iter()
                .map(|v| format!("{}@{}", v.id, v.address()))
                .collect::<Vec<_>>()
                .join(",");
            let protocols = self
                .listener_security_protocol_map
                .iter()
                .map(|(n, p)| format!("{n}:{p}"))
                .collect::<Vec<_>>()
                .join(",");
            entries.extend([
                ("process.roles", cluster.roles.to_string()),
                ("controller.quorum.voters", voters),
                (
                    "controller.listener.names",
                    cluster.controller_listener_names.join(","),
                ),
                (
                    "inter.broker.listener.name",
                    cluster.inter_broker_listener_name.clone(),
                ),
                ("listener.security.protocol.map", protocols),
                (
                    "broker.session.timeout.ms",
                    cluster.broker_session_timeout_ms.to_string(),
                ),
                (
                    "broker.heartbeat.interval.ms",
                    cluster.broker_heartbeat_interval_ms.to_string(),
                ),
                (
                    "metadata.log.dir",
                    cluster.metadata_log_dir.display().to_string(),
                ),
                (
                    "unclean.leader.election.enable",
                    self.unclean_leader_election_enable.to_string(),
                ),
                ("broker.rack", self.broker_rack.clone().unwrap_or_default()),
                (
                    "replica.lag.time.max.ms",
                    cluster.replica_lag_time_max_ms.to_string(),
                ),
                (
                    "replica.fetch.wait.max.ms",
                    cluster.replica_fetch_wait_max_ms.to_string(),
                ),
                (
                    "replica.fetch.max.bytes",
                    cluster.replica_fetch_max_bytes.to_string(),
                ),
                (
                    "replica.fetch.response.max.bytes",
                    cluster.replica_fetch_response_max_bytes.to_string(),
                ),
                (
                    "replica.fetch.backoff.ms",
                    cluster.replica_fetch_backoff_ms.to_string(),
                ),
                (
                    "offsets.topic.replication.factor",
                    cluster.offsets_topic_replication_factor.to_string(),
                ),
                (
                    "transaction.state.log.replication.factor",
                    cluster.transaction_state_log_replication_factor.to_string(),
                ),
            ]);
            entries.sort_by_key(|(k, _)| *k);
        }
        entries
    }

    /// Whether `key` (or one of its unit variants) was set explicitly.
    pub fn is_explicit(&self, key: &str) -> bool {
        let variants: &[&str] = match key {
            "log.retention.ms" => &[
                "log.retention.ms",
                "log.retention.minutes",
                "log.retention.hours",
            ],
            "log.roll.ms" => &["log.roll.ms", "log.roll.hours"],
            "log.dirs" => &["log.dirs", "log.dir"],
            "node.id" => &["node.id", "broker.id"],
            _ => return self.explicit.contains_key(key),
        };
        variants.iter().any(|k| self.explicit.contains_key(*k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_kafkas() {
        let (c, warn) = BrokerConfig::from_properties(&BTreeMap::new()).unwrap();
        assert!(warn.is_empty());
        assert_eq!(c.listeners[0].address.to_string(), "127.0.0.1:9092");
        assert_eq!(c.message_max_bytes, 1_048_588);
        assert_eq!(c.log_retention_ms, 604_800_000);
        assert!(c.auto_create_topics_enable);
    }

    #[test]
    fn unknown_key_is_refused_and_known_unused_key_warns() {
        let err = BrokerConfig::from_properties(&props(&[("log.retention.hourz", "1")]));
        assert_eq!(
            err.unwrap_err(),
            ConfigError::UnknownKey("log.retention.hourz".into())
        );
        let (_, warn) =
            BrokerConfig::from_properties(&props(&[("num.network.threads", "3")])).unwrap();
        assert_eq!(warn, vec!["num.network.threads".to_string()]);
    }

    #[test]
    fn retention_units_and_precedence() {
        let (c, _) = BrokerConfig::from_properties(&props(&[
            ("log.retention.hours", "1"),
            ("log.retention.minutes", "2"),
        ]))
        .unwrap();
        assert_eq!(c.log_retention_ms, 120_000);
        let (c, _) = BrokerConfig::from_properties(&props(&[
            ("log.retention.ms", "5"),
            ("log.retention.minutes", "2"),
        ]))
        .unwrap();
        assert_eq!(c.log_retention_ms, 5);
    }

    #[test]
    fn metrics_listener_is_off_by_default_and_parses() {
        assert_eq!(BrokerConfig::default().metrics_listener, None);
        let (c, warn) =
            BrokerConfig::from_properties(&props(&[("metrics.listener", "http://localhost:0")]))
                .unwrap();
        assert!(warn.is_empty());
        assert_eq!(c.metrics_listener.unwrap().to_string(), "127.0.0.1:0");
        let (c, _) = BrokerConfig::from_properties(&props(&[("metrics.listener", "")])).unwrap();
        assert_eq!(c.metrics_listener, None);
        for bad in [
            "127.0.0.1:9404",
            "http://127.0.0.1",
            "http://example.com:9404",
        ] {
            assert!(
                BrokerConfig::from_properties(&props(&[("metrics.listener", bad)])).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn dynamic_overrides_merge_validate_and_report_their_source() {
        let (base, _) = BrokerConfig::from_properties(&props(&[
            ("log.retention.hours", "1"),
            ("log.segment.bytes", "1000000"),
        ]))
        .unwrap();
        let default = props(&[("log.retention.ms", "5000"), ("message.max.bytes", "2000")]);
        let broker = props(&[("log.retention.ms", "7000")]);
        let c = base.with_dynamic(&default, &broker).unwrap();
        // The per-broker value wins over the default entity, which wins over the static file.
        assert_eq!(c.log_retention_ms, 7000);
        assert_eq!(c.message_max_bytes, 2000);
        assert_eq!(c.log_segment_bytes, 1_000_000);
        assert_eq!(c.source_of("log.retention.ms"), ConfigSource::DynamicBroker);
        assert_eq!(
            c.source_of("message.max.bytes"),
            ConfigSource::DynamicDefaultBroker
        );
        assert_eq!(c.source_of("log.segment.bytes"), ConfigSource::StaticBroker);
        assert_eq!(c.source_of("log.roll.ms"), ConfigSource::Default);
        // Deleting overrides falls back to the static value.
        let c = base
            .with_dynamic(&BTreeMap::new(), &BTreeMap::new())
            .unwrap();
        assert_eq!(c.log_retention_ms, 3_600_000);
        assert_eq!(c.source_of("log.retention.ms"), ConfigSource::StaticBroker);

        let empty = BTreeMap::new();
        let err = base
            .with_dynamic(&empty, &props(&[("listeners", "PLAINTEXT://:1")]))
            .unwrap_err();
        assert!(err.to_string().contains("read-only"), "{err}");
        assert_eq!(
            base.with_dynamic(&props(&[("log.retention.msx", "1")]), &empty)
                .unwrap_err(),
            ConfigError::UnknownKey("log.retention.msx".into())
        );
        assert!(base
            .with_dynamic(&empty, &props(&[("num.io.threads", "4")]))
            .unwrap_err()
            .to_string()
            .contains("read-only"));
        assert!(base
            .with_dynamic(&empty, &props(&[("log.segment.bytes", "10")]))
            .is_err());
        assert!(base
            .with_dynamic(&empty, &props(&[("log.cleanup.policy", "shred")]))
            .is_err());
    }

    #[test]
    fn listeners_parse() {
        let (c, _) =
            BrokerConfig::from_properties(&props(&[("listeners", "PLAINTEXT://localhost:0")]))
                .unwrap();
        assert_eq!(c.listeners[0].address.to_string(), "127.0.0.1:0");
        assert!(BrokerConfig::from_properties(&props(&[("listeners", "PLAINTEXT:9092")])).is_err());
        assert!(BrokerConfig::from_properties(&props(&[("num.partitions", "zero")])).is_err());
    }
}

#[cfg(test)]
#[path = "config_cluster_test.rs"]
mod cluster_tests;
