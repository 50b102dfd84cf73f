//! The entries of the metadata log.
//!
//! Every change to cluster metadata is one of these records, decided by the active controller
//! and applied, in log order, by every controller (and later every broker) to its
//! [`crate::MetadataImage`]. Records carry the resulting state rather than a request ("the ISR
//! is now [1, 2]", not "remove 3"), so applying them needs no decisions and gives the same image
//! everywhere.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The broker id that means "no leader" in [`PartitionRecord::leader`] and
/// [`PartitionChangeRecord::leader`], as in Kafka.
pub const NO_LEADER: i32 = -1;

/// How many producer ids one AllocateProducerIds hands out (KIP-730), so a broker asks the
/// controller once per thousand producers rather than once per producer.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// One endpoint a broker accepts connections on, as in `advertised.listeners`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    /// The listener name (`PLAINTEXT`, `SASL_SSL`, ...), which clients match on.
    pub name: String,
    /// The host clients connect to.
    pub host: String,
    /// The port clients connect to.
    pub port: u16,
}

/// A broker joined (or rejoined) the cluster; it starts fenced until its first heartbeat
/// shows it has caught up with the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerRecord {
    /// `node.id` of the broker.
    pub broker_id: i32,
    /// The epoch the controller gave this registration; later requests must carry it so a
    /// restarted broker's old requests are refused.
    pub broker_epoch: i64,
    /// Random id of the broker process, telling a restart apart from a second process
    /// claiming the same id.
    pub incarnation_id: Uuid,
    /// The broker's advertised listeners.
    pub listeners: Vec<Listener>,
    /// `broker.rack`, used to spread replicas across failure domains.
    pub rack: Option<String>,
}

/// The initial state of one partition, written when a topic or partition is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Partition index within the topic.
    pub partition: i32,
    /// Assigned replicas; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// The leader, or [`NO_LEADER`].
    pub leader: i32,
    /// Bumped on every leader change, so followers and clients can tell stale leaders apart.
    pub leader_epoch: i32,
    /// Bumped on every change of the partition, so AlterPartition can detect lost updates.
    pub partition_epoch: i32,
}

/// A topic was created with all of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// Topic name.
    pub name: String,
    /// Topic id; tells a recreated topic of the same name apart from the deleted one.
    pub topic_id: Uuid,
    /// Every partition, in index order starting at 0.
    pub partitions: Vec<PartitionRecord>,
    /// Topic-level config overrides given at creation.
    pub configs: BTreeMap<String, String>,
}

/// The new state of one partition after a leader, ISR or replica change. Carries every field
/// so that applying it is a plain overwrite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChangeRecord {
    /// The topic.
    pub topic_id: Uuid,
    /// The partition index.
    pub partition: i32,
    /// Replicas, including ones still being added or removed by a reassignment.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// The leader, or [`NO_LEADER`].
    pub leader: i32,
    /// The leader epoch after the change.
    pub leader_epoch: i32,
    /// The partition epoch after the change.
    pub partition_epoch: i32,
    /// Replicas a reassignment is adding (not yet caught up).
    pub adding_replicas: Vec<i32>,
    /// Replicas a reassignment will remove once the adding ones are in the ISR.
    pub removing_replicas: Vec<i32>,
}

/// What a config change applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigResource {
    /// A topic, by name.
    Topic(String),
    /// One broker's dynamic config.
    Broker(i32),
    /// The cluster-wide default for every broker (Kafka's broker resource with an empty name).
    Cluster,
}

/// One config key set or removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    /// Whose config.
    pub resource: ConfigResource,
    /// The key, by Kafka's name.
    pub name: String,
    /// The new value; `None` removes the override.
    pub value: Option<String>,
}

/// A block of producer ids was handed to a broker; the image remembers where the next block
/// starts so no id is ever given out twice, even across controller failover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdsRecord {
    /// The broker that got the block.
    pub broker_id: i32,
    /// Its epoch at the time.
    pub broker_epoch: i64,
    /// First id of the next block (the end of this one, exclusive).
    pub next_producer_id: i64,
}

/// One entry of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker registered.
    RegisterBroker(RegisterBrokerRecord),
    /// A broker lost its session or asked to stop; it may not lead or be in an ISR.
    FenceBroker {
        /// The broker.
        broker_id: i32,
        /// The registration this applies to.
        broker_epoch: i64,
    },
    /// A registered broker caught up and may lead again.
    UnfenceBroker {
        /// The broker.
        broker_id: i32,
        /// The registration this applies to.
        broker_epoch: i64,
    },
    /// A topic was created.
    CreateTopic(TopicRecord),
    /// A topic was deleted, with its partitions and configs.
    DeleteTopic {
        /// The topic.
        topic_id: Uuid,
    },
    /// Partitions were added to an existing topic.
    CreatePartitions {
        /// The topic.
        topic_id: Uuid,
        /// The new partitions, continuing the index sequence.
        partitions: Vec<PartitionRecord>,
    },
    /// A partition's leader, ISR or replicas changed.
    PartitionChange(PartitionChangeRecord),
    /// A topic, broker or cluster config key changed.
    Config(ConfigRecord),
    /// A producer-id block was allocated.
    ProducerIds(ProducerIdsRecord),
}
