//! The topics and partitions this broker hosts, their on-disk state, and the background work on
//! them (retention, recovery-point checkpoints, clean shutdown).
//!
//! ```text
//! <log.dir>/
//!   meta.properties                      cluster.id, node.id (Kafka's format)
//!   fjord-topics.json                    topic names, ids, partition counts, topic configs
//!   fjord-broker-configs.json            dynamic broker configs (default entity and per broker)
//!   recovery-point-offset-checkpoint     per partition: offsets known durable (Kafka's format)
//!   replication-offset-checkpoint        cluster mode, per partition: the high watermark
//!   .kafka_cleanshutdown                 present only between a clean stop and the next start
//!   <topic>-<partition>/                 one log per partition (see fjord-storage)
//! ```
//! On a single node, topic metadata is a single JSON file rewritten atomically on every
//! change. In cluster mode the controller quorum's metadata image is the only source: the
//! broker opens, creates and deletes partition logs as the image says ([`cluster`]), marks
//! each partition directory with its topic id (`partition.metadata`, Kafka's format), and
//! writes neither JSON file.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use fjord_storage::{checkpoint, cleaner, IoVerb, Log, StorageError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{BrokerConfig, ConfigError};
use crate::flusher::Flusher;
use crate::partition::Partition;
use crate::topic_config::TopicConfig;

pub mod cluster;

/// Longest topic name Kafka allows (so that `<topic>-<partition>` fits in a file name).
const MAX_TOPIC_NAME_LEN: usize = 249;
const TOPICS_FILE: &str = "fjord-topics.json";
const BROKER_CONFIGS_FILE: &str = "fjord-broker-configs.json";
const RECOVERY_CHECKPOINT_FILE: &str = "recovery-point-offset-checkpoint";
/// Kafka's per-partition high watermarks of a replica (cluster mode), so a restarted leader
/// does not show consumers less than they already saw.
const HIGH_WATERMARK_CHECKPOINT_FILE: &str = "replication-offset-checkpoint";
const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
const META_FILE: &str = "meta.properties";

/// A failed topic operation.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The name breaks Kafka's naming rules or is reserved.
    #[error("invalid topic name `{name}`: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// CreateTopics for an existing topic.
    #[error("topic `{0}` already exists")]
    AlreadyExists(String),
    /// No such topic.
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    /// A partition count below 1.
    #[error("number of partitions must be at least 1, got {0}")]
    InvalidPartitions(i32),
    /// A replication factor this cluster cannot satisfy.
    #[error("replication factor {0} is larger than the 1 broker available")]
    InvalidReplicationFactor(i16),
    /// CreatePartitions that does not grow the topic.
    #[error("topic has {current} partitions; the new count {requested} must be larger")]
    PartitionCountNotIncreased {
        /// Partitions today.
        current: i32,
        /// Partitions asked for.
        requested: i32,
    },
    /// Explicit replica assignments are not supported on a single node.
    #[error("explicit replica assignments are not supported on a single-node cluster")]
    ReplicaAssignmentUnsupported,
    /// In cluster mode topics change through the controller only, never directly here.
    #[error("in cluster mode topics and configs are changed through the controller")]
    ManagedByController,
    /// A partition log could not be closed or removed.
    #[error(transparent)]
    Partition(#[from] crate::partition::PartitionError),
    /// A topic config key or value was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The log could not be created or removed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The topic metadata file could not be written.
    #[error("cannot persist topic metadata: {0}")]
    Persist(String),
}

/// A topic known to this broker. On a single node it hosts every partition; in a cluster only
/// those whose replicas include this broker, while the partition count is the whole topic's
/// (coordinators map keys to internal-topic partitions with it).
#[derive(Debug)]
pub struct Topic {
    /// The topic name.
    pub name: String,
    /// The topic id clients see in Metadata v10+ and Fetch v13+.
    pub id: Uuid,
    /// Partitions of the whole topic.
    partition_count: i32,
    /// The partitions hosted here, by index.
    partitions: BTreeMap<i32, Arc<Partition>>,
    /// Topic-level config overrides.
    pub config: RwLock<TopicConfig>,
}

impl Topic {
    fn new(
        name: &str,
        id: Uuid,
        partition_count: i32,
        partitions: BTreeMap<i32, Arc<Partition>>,
        config: TopicConfig,
    ) -> Topic {
        Topic {
            name: name.to_string(),
            id,
            partition_count,
            partitions,
            config: RwLock::new(config),
        }
    }

    /// Whether Kafka treats the topic as internal (`__consumer_offsets`, `__transaction_state`).
    pub fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }

    /// The number of partitions of the whole topic, hosted here or not.
    pub fn partition_count(&self) -> i32 {
        self.partition_count
    }

    /// The partition with this index, if it is hosted here.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        self.partitions.get(&index)
    }

    /// The partitions hosted here, in index order.
    pub fn hosted(&self) -> impl Iterator<Item = &Arc<Partition>> + '_ {
        self.partitions.values()
    }

    fn config_snapshot(&self) -> TopicConfig {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What CreateTopics asks for, after defaults are applied by the caller.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// -1 means `num.partitions`.
    pub num_partitions: i32,
    /// -1 means `default.replication.factor`.
    pub replication_factor: i16,
    /// Whether the request carried explicit replica assignments.
    pub has_assignments: bool,
    /// Topic config overrides.
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TopicsFile {
    topics: Vec<TopicRecord>,
}

/// Dynamic broker configs as stored: the default entity (Kafka's `<default>`) and one map per
/// broker id (entries of other ids are kept as found).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct BrokerConfigsFile {
    #[serde(default)]
    default: BTreeMap<String, String>,
    #[serde(default)]
    brokers: BTreeMap<String, BTreeMap<String, String>>,
}

/// Which dynamic broker-config entity a change addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerEntity {
    /// The cluster-wide default (resource name "").
    Default,
    /// This broker (resource name = its node id).
    This,
}

/// Everything the broker hosts on disk.
#[derive(Debug)]
pub struct LogManager {
    /// The static configuration (`server.properties` and overrides).
    config: Arc<BrokerConfig>,
    /// The static configuration with the dynamic broker configs laid over it.
    effective: RwLock<Arc<BrokerConfig>>,
    /// The stored dynamic broker configs.
    dynamic: Mutex<BrokerConfigsFile>,
    cluster_id: String,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises create/delete so the metadata file and directories stay in step.
    admin: Mutex<()>,
    flusher: Flusher,
    /// Cluster mode: topics come from the metadata image, not from `fjord-topics.json`.
    from_image: bool,
    /// Cluster mode: recovery points of partitions not opened yet, read at start; a
    /// partition takes its own when the image says it is hosted here, and the rest are
    /// written back with every checkpoint so none is lost before it is opened.
    unopened_recovery_points: Mutex<HashMap<(String, i32), i64>>,
    /// Cluster mode: high watermarks from the checkpoint of partitions not opened yet.
    unopened_high_watermarks: Mutex<HashMap<(String, i32), i64>>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn io_err(path: &Path, verb: IoVerb, e: std::io::Error) -> StorageError {
    StorageError::io(verb, path, e)
}

impl LogManager {
    /// Opens (or formats) the log directory and every topic in it, recovering logs after an
    /// unclean stop.
    pub fn open(config: Arc<BrokerConfig>, flusher: Flusher) -> Result<LogManager, StorageError> {
        let dir = config.log_dir.clone();
        fs::create_dir_all(&dir).map_err(|e| io_err(&dir, IoVerb::Create, e))?;
        let from_image = config.cluster.is_some();
        let cluster_id = load_or_create_meta(&dir, config.node_id, config.cluster_id().as_deref())?;
        let clean_marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = clean_marker.exists();
        let recovery_points: HashMap<(String, i32), i64> = match checkpoint::read_checkpoint(
            &dir.join(RECOVERY_CHECKPOINT_FILE),
        ) {
            Ok(entries) => entries.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "no usable recovery-point checkpoint; recovering logs from the start");
                HashMap::new()
            }
        };
        if !clean && dir.join(TOPICS_FILE).exists() {
            tracing::info!(dir = %dir.display(), "no clean-shutdown marker: recovering logs");
        }
        let dynamic = if from_image {
            // Dynamic configs are in the metadata image and arrive with it.
            BrokerConfigsFile::default()
        } else {
            read_broker_configs_file(&dir)?
        };
        let own = dynamic
            .brokers
            .get(&config.node_id.to_string())
            .cloned()
            .unwrap_or_default();
        let effective = match config.with_dynamic(&dynamic.default, &own) {
            Ok(effective) => Arc::new(effective),
            Err(e) => {
                tracing::warn!(error = %e, file = BROKER_CONFIGS_FILE, "ignoring stored dynamic broker configs");
                config.clone()
            }
        };
        let file = if from_image {
            TopicsFile::default()
        } else {
            read_topics_file(&dir)?
        };
        let now = now_ms();
        let mut topics = BTreeMap::new();
        for record in file.topics {
            let topic_config = TopicConfig {
                overrides: record.configs,
            };
            let log_config = topic_config.log_config(&effective);
            let mut partitions = BTreeMap::new();
            for p in 0..record.partitions {
                // After a clean stop the checkpoint equals the log end, so only the active
                // segment is re-checked: a byte damaged while the broker was down is found and
                // cut before it can be served. After a crash, everything from the last
                // checkpoint on is re-checked.
                let log_dir = dir.join(format!("{}-{}", record.name, p));
                let recovery_point = recovery_points
                    .get(&(record.name.clone(), p))
                    .copied()
                    .unwrap_or(0)
                    .min(active_segment_base(&log_dir));
                let log = Log::open(&log_dir, log_config.clone(), recovery_point, now)?;
                partitions.insert(p, Partition::new(&record.name, p, log)?);
            }
            let topic = Topic::new(
                &record.name,
                record.id,
                record.partitions,
                partitions,
                topic_config,
            );
            topics.insert(record.name, Arc::new(topic));
        }
        if clean {
            fs::remove_file(&clean_marker).map_err(|e| io_err(&clean_marker, IoVerb::Remove, e))?;
        }
        let unopened_recovery_points = if from_image {
            recovery_points
        } else {
            HashMap::new()
        };
        let unopened_high_watermarks = if from_image {
            match checkpoint::read_checkpoint(&dir.join(HIGH_WATERMARK_CHECKPOINT_FILE)) {
                Ok(entries) => entries.into_iter().collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "no usable high-watermark checkpoint; replicas learn it again");
                    HashMap::new()
                }
            }
        } else {
            HashMap::new()
        };
        Ok(LogManager {
            config,
            effective: RwLock::new(effective),
            dynamic: Mutex::new(dynamic),
            cluster_id,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            flusher,
            from_image,
            unopened_recovery_points: Mutex::new(unopened_recovery_points),
            unopened_high_watermarks: Mutex::new(unopened_high_watermarks),
        })
    }

    /// The effective broker configuration: the static one with the dynamic broker configs laid
    /// over it. Everything that derives topic defaults reads it here.
    pub fn broker_config(&self) -> Arc<BrokerConfig> {
        self.effective
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the dynamic configs of one broker entity (validated against the static
    /// configuration first), stores them in `fjord-broker-configs.json` and applies the new
    /// defaults to every partition at once; topic-level overrides still win. With
    /// `validate_only` nothing changes.
    pub fn alter_broker_config(
        &self,
        entity: BrokerEntity,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        self.refuse_in_cluster_mode()?;
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let mut dynamic = self.dynamic.lock().unwrap_or_else(|p| p.into_inner());
        let id = self.config.node_id.to_string();
        let mut next = dynamic.clone();
        match entity {
            BrokerEntity::Default => next.default = overrides,
            BrokerEntity::This => {
                if overrides.is_empty() {
                    next.brokers.remove(&id);
                } else {
                    next.brokers.insert(id.clone(), overrides);
                }
            }
        }
        let own = next.brokers.get(&id).cloned().unwrap_or_default();
        let effective = Arc::new(self.config.with_dynamic(&next.default, &own)?);
        // Every topic's resulting log settings must be acceptable to the log.
        let topics = self.topics();
        let mut log_configs = Vec::with_capacity(topics.len());
        for topic in &topics {
            let log_config = topic
                .config
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .log_config(&effective);
            log_config.clone().validate().map_err(TopicError::Storage)?;
            log_configs.push(log_config);
        }
        if validate_only {
            return Ok(());
        }
        let json =
            serde_json::to_vec_pretty(&next).map_err(|e| TopicError::Persist(e.to_string()))?;
        write_atomically(&self.config.log_dir.join(BROKER_CONFIGS_FILE), &json)
            .map_err(|e| TopicError::Persist(e.to_string()))?;
        *dynamic = next;
        *self.effective.write().unwrap_or_else(|p| p.into_inner()) = effective;
        for (topic, log_config) in topics.iter().zip(log_configs) {
            for p in topic.hosted() {
                if let Err(e) = p.with_log(|log| log.update_config(log_config.clone())) {
                    tracing::warn!(partition = %p.name, error = %e, "could not apply new config");
                }
            }
        }
        tracing::info!(?entity, "altered dynamic broker configuration");
        Ok(())
    }

    /// Changes through this broker alone would diverge from the metadata image in cluster
    /// mode; everything there goes through the controller.
    fn refuse_in_cluster_mode(&self) -> Result<(), TopicError> {
        if self.from_image {
            Err(TopicError::ManagedByController)
        } else {
            Ok(())
        }
    }

    /// Whether topics come from the cluster's metadata image rather than `fjord-topics.json`.
    pub fn follows_image(&self) -> bool {
        self.from_image
    }

    /// The cluster id from `meta.properties`.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The flusher used for acks=all.
    pub fn flusher(&self) -> &Flusher {
        &self.flusher
    }

    /// Looks up a topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_topics().get(name).cloned()
    }

    /// Looks up a topic by id.
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.read_topics().values().find(|t| t.id == id).cloned()
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.read_topics().values().cloned().collect()
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_topics(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks a CreateTopics request without creating anything (also used for validate_only).
    pub fn validate_new_topic(&self, new: &NewTopic) -> Result<(i32, TopicConfig), TopicError> {
        validate_topic_name(&new.name)?;
        if new.name.starts_with("__") {
            return Err(TopicError::InvalidName {
                name: new.name.clone(),
                reason: "names starting with `__` are reserved for internal topics".into(),
            });
        }
        if let Some(existing) = self.find_collision(&new.name) {
            if existing == new.name {
                return Err(TopicError::AlreadyExists(new.name.clone()));
            }
            return Err(TopicError::InvalidName {
                name: new.name.clone(),
                reason: format!(
                    "collides with existing topic `{existing}` ('.' and '_' are interchangeable in metric names)"
                ),
            });
        }
        if new.has_assignments {
            return Err(TopicError::ReplicaAssignmentUnsupported);
        }
        let partitions = match new.num_partitions {
            -1 => self.config.num_partitions,
            n if n >= 1 => n,
            n => return Err(TopicError::InvalidPartitions(n)),
        };
        match new.replication_factor {
            -1 | 1 => {}
            rf => return Err(TopicError::InvalidReplicationFactor(rf)),
        }
        let config = TopicConfig::validate(new.configs.clone())?;
        Ok((partitions, config))
    }

    fn find_collision(&self, name: &str) -> Option<String> {
        let normalized = name.replace('.', "_");
        self.read_topics()
            .keys()
            .find(|k| k.as_str() == name || k.replace('.', "_") == normalized)
            .cloned()
    }

    /// Creates a topic: partition directories first, then the metadata file, so a crash in
    /// between leaves only unreferenced directories (removed at the next creation of that name).
    pub fn create_topic(&self, new: &NewTopic) -> Result<Arc<Topic>, TopicError> {
        self.refuse_in_cluster_mode()?;
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let (num_partitions, topic_config) = self.validate_new_topic(new)?;
        self.create_validated(new, num_partitions, topic_config)
    }

    /// Creates an internal topic (`__consumer_offsets`, ...), which user requests may not.
    pub fn create_internal_topic(
        &self,
        name: &str,
        num_partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        if let Some(existing) = self.topic(name) {
            return Ok(existing);
        }
        self.refuse_in_cluster_mode()?;
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = self.topic(name) {
            return Ok(existing);
        }
        if num_partitions < 1 {
            return Err(TopicError::InvalidPartitions(num_partitions));
        }
        let topic_config = TopicConfig::validate(configs.clone())?;
        let new = NewTopic {
            name: name.to_string(),
            num_partitions,
            replication_factor: 1,
            has_assignments: false,
            configs,
        };
        self.create_validated(&new, num_partitions, topic_config)
    }

    fn create_validated(
        &self,
        new: &NewTopic,
        num_partitions: i32,
        topic_config: TopicConfig,
    ) -> Result<Arc<Topic>, TopicError> {
        let log_config = topic_config.log_config(&self.broker_config());
        let now = now_ms();
        let mut partitions = BTreeMap::new();
        for p in 0..num_partitions {
            let dir = self.config.log_dir.join(format!("{}-{}", new.name, p));
            if dir.exists() {
                // Left over from a creation that crashed before the metadata file was written.
                fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, IoVerb::Remove, e))?;
            }
            let log = Log::open(&dir, log_config.clone(), 0, now)?;
            partitions.insert(p, Partition::new(&new.name, p, log)?);
        }
        let topic = Arc::new(Topic::new(
            &new.name,
            Uuid::new_v4(),
            num_partitions,
            partitions,
            topic_config,
        ));
        let mut topics = self.write_topics();
        topics.insert(topic.name.clone(), topic.clone());
        if let Err(e) = self.persist(&topics) {
            topics.remove(&topic.name);
            drop(topics);
            for p in topic.hosted() {
                let _ = p.delete();
            }
            return Err(e);
        }
        tracing::info!(topic = %topic.name, partitions = num_partitions, id = %topic.id, "created topic");
        Ok(topic)
    }

    /// Deletes a topic: the metadata file first (so it never comes back), then its logs.
    pub fn delete_topic(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        self.refuse_in_cluster_mode()?;
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let mut topics = self.write_topics();
        let topic = topics
            .remove(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        if let Err(e) = self.persist(&topics) {
            topics.insert(name.to_string(), topic);
            return Err(e);
        }
        drop(topics);
        for p in topic.hosted() {
            if let Err(e) = p.delete() {
                tracing::warn!(partition = %p.name, error = %e, "could not remove partition directory");
            }
        }
        tracing::info!(topic = %name, "deleted topic");
        Ok(topic)
    }

    /// Replaces a topic's config overrides (validated first) and applies them to its logs at
    /// once, without a restart. With `validate_only` nothing changes.
    pub fn alter_topic_config(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        self.refuse_in_cluster_mode()?;
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        let validated = TopicConfig::validate(overrides)?;
        let log_config = validated.log_config(&self.broker_config());
        log_config.clone().validate().map_err(TopicError::Storage)?;
        if validate_only {
            return Ok(());
        }
        let previous = std::mem::replace(
            &mut *topic.config.write().unwrap_or_else(|p| p.into_inner()),
            validated,
        );
        if let Err(e) = self.persist(&self.read_topics()) {
            *topic.config.write().unwrap_or_else(|p| p.into_inner()) = previous;
            return Err(e);
        }
        for p in topic.hosted() {
            if let Err(e) = p.with_log(|log| log.update_config(log_config.clone())) {
                tracing::warn!(partition = %p.name, error = %e, "could not apply new config");
            }
        }
        tracing::info!(topic = %name, "altered topic configuration");
        Ok(())
    }

    /// Grows a topic to `total` partitions (Kafka never shrinks one).
    pub fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        self.refuse_in_cluster_mode()?;
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        let current = topic.partition_count();
        if total <= current {
            return Err(TopicError::PartitionCountNotIncreased {
                current,
                requested: total,
            });
        }
        if validate_only {
            return Ok(());
        }
        let config = topic
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let log_config = config.log_config(&self.broker_config());
        let now = now_ms();
        let mut partitions = topic.partitions.clone();
        for p in current..total {
            let dir = self.config.log_dir.join(format!("{name}-{p}"));
            if dir.exists() {
                fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, IoVerb::Remove, e))?;
            }
            let log = Log::open(&dir, log_config.clone(), 0, now)?;
            partitions.insert(p, Partition::new(name, p, log)?);
        }
        let grown = Arc::new(Topic::new(name, topic.id, total, partitions, config));
        let mut topics = self.write_topics();
        topics.insert(name.to_string(), grown.clone());
        if let Err(e) = self.persist(&topics) {
            topics.insert(name.to_string(), topic);
            drop(topics);
            for (_, p) in grown.partitions.range(current..) {
                let _ = p.delete();
            }
            return Err(e);
        }
        tracing::info!(topic = %name, from = current, to = total, "added partitions");
        Ok(())
    }

    /// The directory holding every log, for DescribeLogDirs.
    pub fn log_dir(&self) -> &Path {
        &self.config.log_dir
    }

    fn persist(&self, topics: &BTreeMap<String, Arc<Topic>>) -> Result<(), TopicError> {
        let file = TopicsFile {
            topics: topics
                .values()
                .map(|t| TopicRecord {
                    name: t.name.clone(),
                    id: t.id,
                    partitions: t.partition_count,
                    configs: t
                        .config
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .overrides
                        .clone(),
                })
                .collect(),
        };
        let json =
            serde_json::to_vec_pretty(&file).map_err(|e| TopicError::Persist(e.to_string()))?;
        write_atomically(&self.config.log_dir.join(TOPICS_FILE), &json)
            .map_err(|e| TopicError::Persist(e.to_string()))
    }

    /// Applies retention (for `cleanup.policy` with `delete`) and time-based rolling to every
    /// partition.
    pub fn run_retention(&self) {
        let now = now_ms();
        for topic in self.topics() {
            let retention = topic
                .config
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .retention_enabled(&self.broker_config());
            for p in topic.hosted() {
                let result = p.with_log(|log| {
                    log.roll_if_due(now)?;
                    if retention {
                        log.apply_retention(now).map(Some)
                    } else {
                        Ok(None)
                    }
                });
                match result {
                    Ok(None) => {}
                    Ok(Some(outcome)) => {
                        if outcome.deleted_segments > 0 {
                            tracing::info!(partition = %p.name, segments = outcome.deleted_segments, log_start_offset = outcome.log_start_offset, "retention deleted segments");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(partition = %p.name, error = %e, "retention failed")
                    }
                }
            }
        }
    }

    /// One compaction round: every partition of a `compact` topic whose dirty share is due is
    /// cleaned. The heavy reading and writing runs without the partition lock; only planning
    /// and the final swap of segment files take it, so produce and fetch continue meanwhile.
    pub fn run_cleaner(&self) {
        let now = now_ms();
        for topic in self.topics() {
            let Some(config) = topic
                .config
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .cleaner_config(&self.broker_config())
            else {
                continue;
            };
            for p in topic.hosted() {
                // Records of open transactions cannot be judged yet: clean below them only.
                let planned = p.with_log_and_last_stable_offset(|log, stable| {
                    if !cleaner::needs_cleaning(log, &config, now, stable)? {
                        return Ok(None);
                    }
                    cleaner::plan(log, &config, now, stable)
                });
                let plan = match planned {
                    Ok(Some(plan)) => plan,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(partition = %p.name, error = %e, "cannot plan cleaning");
                        continue;
                    }
                };
                let cleaned = match plan.build() {
                    Ok(cleaned) => cleaned,
                    Err(e) => {
                        tracing::warn!(partition = %p.name, error = %e, "cleaning failed");
                        continue;
                    }
                };
                match p.with_log(|log| cleaner::swap(log, cleaned)) {
                    Ok(Some(outcome)) => tracing::info!(
                        partition = %p.name,
                        removed = outcome.records_removed,
                        tombstones = outcome.tombstones_removed,
                        "compacted"
                    ),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(partition = %p.name, error = %e, "cannot swap cleaned segments")
                    }
                }
            }
        }
    }

    /// Writes every partition's recovery point so an unclean restart rescans only the tail.
    pub fn checkpoint_recovery_points(&self) -> Result<(), StorageError> {
        let mut entries = checkpoint::CheckpointEntries::new();
        for (key, point) in self
            .unopened_recovery_points
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            entries.insert(key.clone(), *point);
        }
        for topic in self.topics() {
            for p in topic.hosted() {
                if let Some(point) = p.recovery_point() {
                    entries.insert((topic.name.clone(), p.index), point);
                }
            }
        }
        let path = self.config.log_dir.join(RECOVERY_CHECKPOINT_FILE);
        checkpoint::write_checkpoint(&path, &entries)?;
        if self.from_image {
            self.checkpoint_high_watermarks()?;
        }
        Ok(())
    }

    /// Writes every replica's high watermark (and those read at start of partitions not
    /// opened since).
    fn checkpoint_high_watermarks(&self) -> Result<(), StorageError> {
        let mut entries = checkpoint::CheckpointEntries::new();
        for (key, hw) in self
            .unopened_high_watermarks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            entries.insert(key.clone(), *hw);
        }
        for topic in self.topics() {
            for p in topic.hosted() {
                if let Ok(offsets) = p.offsets() {
                    entries.insert((topic.name.clone(), p.index), offsets.high_watermark);
                }
            }
        }
        let path = self.config.log_dir.join(HIGH_WATERMARK_CHECKPOINT_FILE);
        checkpoint::write_checkpoint(&path, &entries)
    }

    /// Saves every partition's producer state (forgetting producers idle longer than
    /// `producer.id.expiration.ms`), so a restart after a crash reads little of the log.
    pub fn snapshot_producer_states(&self) {
        let now = now_ms();
        for topic in self.topics() {
            for p in topic.hosted() {
                if let Err(e) = p.snapshot_producers(now, self.config.producer_id_expiration_ms) {
                    tracing::warn!(partition = %p.name, error = %e, "could not save producer state");
                }
            }
        }
    }

    /// Flushes and closes every log, then leaves the clean-shutdown marker so the next start
    /// trusts the logs without rescanning them.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        self.checkpoint_recovery_points()?;
        let mut all_closed = true;
        for topic in self.topics() {
            for p in topic.hosted() {
                if let Err(e) = p.close() {
                    all_closed = false;
                    tracing::error!(partition = %p.name, error = %e, "could not close log");
                }
            }
        }
        if all_closed {
            let marker = self.config.log_dir.join(CLEAN_SHUTDOWN_FILE);
            write_atomically(&marker, b"").map_err(|e| io_err(&marker, IoVerb::Write, e))?;
        }
        Ok(())
    }
}

/// Base offset of the newest segment in a partition directory (0 when there is none), so that
/// opening re-checks at least the active segment.
fn active_segment_base(partition_dir: &Path) -> i64 {
    fs::read_dir(partition_dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let name = name.to_str()?;
            name.strip_suffix(".log")?.parse::<i64>().ok()
        })
        .max()
        .unwrap_or(0)
}

/// Kafka's topic naming rules.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let reason = if name.is_empty() {
        Some("the name is empty".to_string())
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not allowed".to_string())
    } else if name.len() > MAX_TOPIC_NAME_LEN {
        Some(format!(
            "the name is longer than {MAX_TOPIC_NAME_LEN} characters"
        ))
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .map(|c| format!("`{c}` is not allowed; use ASCII letters, digits, `.`, `_` and `-`"))
    };
    match reason {
        Some(reason) => Err(TopicError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

fn read_broker_configs_file(dir: &Path) -> Result<BrokerConfigsFile, StorageError> {
    let path = dir.join(BROKER_CONFIGS_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            io_err(
                &path,
                IoVerb::Read,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BrokerConfigsFile::default()),
        Err(e) => Err(io_err(&path, IoVerb::Read, e)),
    }
}

fn read_topics_file(dir: &Path) -> Result<TopicsFile, StorageError> {
    let path = dir.join(TOPICS_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            io_err(
                &path,
                IoVerb::Read,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TopicsFile::default()),
        Err(e) => Err(io_err(&path, IoVerb::Read, e)),
    }
}

/// Reads `meta.properties`, creating it on first start with `expected` or else a fresh cluster
/// id. A directory formatted for another cluster than `expected` is refused, as Kafka refuses
/// it, so that one cluster's data is never served as another's.
fn load_or_create_meta(
    dir: &Path,
    node_id: i32,
    expected: Option<&str>,
) -> Result<String, StorageError> {
    let path = dir.join(META_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let cluster_id = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == "cluster.id")
                .map(|(_, v)| v.trim().to_string());
            let cluster_id = cluster_id.ok_or_else(|| {
                io_err(
                    &path,
                    IoVerb::Read,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "no cluster.id"),
                )
            })?;
            match expected {
                Some(expected) if expected != cluster_id => Err(io_err(
                    &path,
                    IoVerb::Read,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "the log directory belongs to cluster {cluster_id}, not {expected}"
                        ),
                    ),
                )),
                _ => Ok(cluster_id),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cluster_id = match expected {
                Some(id) => id.to_string(),
                None => base64_url(Uuid::new_v4().as_bytes()),
            };
            let text = format!("version=1\ncluster.id={cluster_id}\nnode.id={node_id}\n");
            write_atomically(&path, text.as_bytes())
                .map_err(|e| io_err(&path, IoVerb::Write, e))?;
            Ok(cluster_id)
        }
        Err(e) => Err(io_err(&path, IoVerb::Read, e)),
    }
}

/// Kafka prints cluster and topic ids as URL-safe base64 without padding.
pub fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Writes a small file so that readers see either the old or the new content, never a mix.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        for bad in ["", ".", "..", "a b", "ä", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn base64_matches_kafka_format() {
        assert_eq!(base64_url(&[0u8; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(base64_url(b"\xfb\xff"), "-_8");
    }
}
