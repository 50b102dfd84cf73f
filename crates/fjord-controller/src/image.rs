//! The metadata image: cluster state as of one offset of the metadata log.
//!
//! Every controller applies committed records to its image in log order; brokers follow it
//! through [`crate::QuorumHandle::image`] (a voter's own image, or one fetched from the voters
//! on a broker-only node). [`MetadataImage::apply`] is pure and total
//! over records the controller decided, so every replica of the log ends with the same image,
//! and a snapshot is just the image serialized.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::record::{
    ConfigRecord, ConfigResource, Listener, MetadataRecord, PartitionChangeRecord, PartitionRecord,
    ProducerIdsRecord, RegisterBrokerRecord, TopicRecord, NO_LEADER,
};

/// Topic config key for unclean leader election (Kafka's name), consulted when the last
/// in-sync replica is fenced.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// A record that does not fit the image. The active controller only writes records decided on
/// the same image, so seeing one means a bug or a log written by something else; the image is
/// left unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The record names a broker that never registered.
    #[error("broker {broker_id} is not registered")]
    UnknownBroker {
        /// The broker.
        broker_id: i32,
    },
    /// The record is for an older registration of the broker.
    #[error("broker {broker_id} has epoch {current}, record has {record}")]
    StaleBrokerEpoch {
        /// The broker.
        broker_id: i32,
        /// Epoch in the image.
        current: i64,
        /// Epoch in the record.
        record: i64,
    },
    /// A topic of that name already exists.
    #[error("topic {name} already exists")]
    TopicExists {
        /// The name.
        name: String,
    },
    /// A topic with that id already exists.
    #[error("topic id {topic_id} already exists")]
    TopicIdExists {
        /// The id.
        topic_id: Uuid,
    },
    /// No topic has that id.
    #[error("unknown topic id {topic_id}")]
    UnknownTopicId {
        /// The id.
        topic_id: Uuid,
    },
    /// No topic has that name.
    #[error("unknown topic {name}")]
    UnknownTopic {
        /// The name.
        name: String,
    },
    /// The topic has no such partition.
    #[error("topic {topic_id} has no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic_id: Uuid,
        /// The partition index.
        partition: i32,
    },
    /// New partitions must continue the index sequence without gaps.
    #[error("topic {topic_id}: expected partition {expected}, record has {partition}")]
    PartitionOutOfSequence {
        /// The topic.
        topic_id: Uuid,
        /// The index the next partition must have.
        expected: i32,
        /// The index in the record.
        partition: i32,
    },
    /// Producer-id blocks only move forward; a block below the current one would hand ids
    /// out twice.
    #[error("next producer id would go back from {current} to {record}")]
    ProducerIdsWentBack {
        /// The image's next producer id.
        current: i64,
        /// The record's.
        record: i64,
    },
}

/// A registered broker as the controller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    /// `node.id`.
    pub broker_id: i32,
    /// Epoch of the current registration; requests with another one are refused.
    pub broker_epoch: i64,
    /// The process that registered.
    pub incarnation_id: Uuid,
    /// Advertised listeners.
    pub listeners: Vec<Listener>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Fenced brokers may not lead or be added to an ISR.
    pub fenced: bool,
    /// Log offset of the registration; the broker is caught up once it has applied this far.
    pub registered_offset: u64,
}

/// One partition's replicas, ISR and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    /// Replicas; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Leader, or [`NO_LEADER`].
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Partition epoch.
    pub partition_epoch: i32,
    /// Replicas a reassignment is adding.
    pub adding_replicas: Vec<i32>,
    /// Replicas a reassignment is removing.
    pub removing_replicas: Vec<i32>,
}

impl PartitionImage {
    fn from_record(record: &PartitionRecord) -> Self {
        Self {
            replicas: record.replicas.clone(),
            isr: record.isr.clone(),
            leader: record.leader,
            leader_epoch: record.leader_epoch,
            partition_epoch: record.partition_epoch,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    /// Whether a reassignment is moving this partition.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// Whether the partition has a leader.
    pub fn has_leader(&self) -> bool {
        self.leader != NO_LEADER
    }
}

/// One topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    /// Name.
    pub name: String,
    /// Id.
    pub topic_id: Uuid,
    /// Partitions by index.
    pub partitions: BTreeMap<i32, PartitionImage>,
    /// Topic config overrides.
    pub configs: BTreeMap<String, String>,
}

/// Cluster metadata as of [`MetadataImage::offset`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    offset: u64,
    brokers: BTreeMap<i32, BrokerRegistration>,
    topics: BTreeMap<Uuid, TopicImage>,
    topic_ids: BTreeMap<String, Uuid>,
    cluster_configs: BTreeMap<String, String>,
    broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    next_producer_id: i64,
    next_broker_epoch: i64,
}

impl MetadataImage {
    /// Log index of the last entry applied. Brokers report it in heartbeats to show how far
    /// they have caught up.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Moves the image to log index `offset` before the records of that entry are applied, so
    /// a registration remembers where it was written. Offsets never go back.
    pub fn advance_to(&mut self, offset: u64) {
        self.offset = self.offset.max(offset);
    }

    /// Every registered broker, fenced or not, by id.
    pub fn brokers(&self) -> &BTreeMap<i32, BrokerRegistration> {
        &self.brokers
    }

    /// One broker's registration.
    pub fn broker(&self, broker_id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&broker_id)
    }

    /// Whether the broker is registered and not fenced, i.e. may lead and join an ISR.
    pub fn is_unfenced(&self, broker_id: i32) -> bool {
        self.brokers.get(&broker_id).is_some_and(|b| !b.fenced)
    }

    /// Unfenced brokers in id order: the candidates for new replicas.
    pub fn unfenced_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Topics by id.
    pub fn topics(&self) -> &BTreeMap<Uuid, TopicImage> {
        &self.topics
    }

    /// Topic ids by name.
    pub fn topic_ids(&self) -> &BTreeMap<String, Uuid> {
        &self.topic_ids
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    /// A topic by id.
    pub fn topic_by_id(&self, topic_id: Uuid) -> Option<&TopicImage> {
        self.topics.get(&topic_id)
    }

    /// One partition.
    pub fn partition(&self, topic_id: Uuid, partition: i32) -> Option<&PartitionImage> {
        self.topics.get(&topic_id)?.partitions.get(&partition)
    }

    /// Config overrides of `resource` (empty if none).
    pub fn configs(&self, resource: &ConfigResource) -> BTreeMap<String, String> {
        match resource {
            ConfigResource::Topic(name) => self
                .topic(name)
                .map(|t| t.configs.clone())
                .unwrap_or_default(),
            ConfigResource::Broker(id) => self.broker_configs.get(id).cloned().unwrap_or_default(),
            ConfigResource::Cluster => self.cluster_configs.clone(),
        }
    }

    /// The first producer id of the next block to hand out.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// The epoch the next broker registration gets; epochs only grow, so a request carrying
    /// an older registration's epoch is always recognisable.
    pub fn next_broker_epoch(&self) -> i64 {
        self.next_broker_epoch
    }

    /// Whether a partition of `topic_id` whose last in-sync replica is gone may elect an
    /// out-of-sync replica: the topic's `unclean.leader.election.enable`, else the cluster
    /// default, else `default`.
    pub fn unclean_leader_election(&self, topic_id: Uuid, default: bool) -> bool {
        let topic = self
            .topics
            .get(&topic_id)
            .and_then(|t| t.configs.get(UNCLEAN_LEADER_ELECTION_ENABLE));
        let value = topic.or_else(|| self.cluster_configs.get(UNCLEAN_LEADER_ELECTION_ENABLE));
        match value.map(String::as_str) {
            Some("true") => true,
            Some("false") => false,
            _ => default,
        }
    }

    /// Applies one record. On error the image is unchanged.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ImageError> {
        match record {
            MetadataRecord::RegisterBroker(r) => {
                self.register_broker(r);
                Ok(())
            }
            MetadataRecord::FenceBroker {
                broker_id,
                broker_epoch,
            } => self.set_fenced(*broker_id, *broker_epoch, true),
            MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            } => self.set_fenced(*broker_id, *broker_epoch, false),
            MetadataRecord::CreateTopic(r) => self.create_topic(r),
            MetadataRecord::DeleteTopic { topic_id } => self.delete_topic(*topic_id),
            MetadataRecord::CreatePartitions {
                topic_id,
                partitions,
            } => self.create_partitions(*topic_id, partitions),
            MetadataRecord::PartitionChange(r) => self.change_partition(r),
            MetadataRecord::Config(r) => self.change_config(r),
            MetadataRecord::ProducerIds(r) => self.allocate_producer_ids(r),
        }
    }

    fn register_broker(&mut self, r: &RegisterBrokerRecord) {
        self.next_broker_epoch = self.next_broker_epoch.max(r.broker_epoch + 1);
        self.brokers.insert(
            r.broker_id,
            BrokerRegistration {
                broker_id: r.broker_id,
                broker_epoch: r.broker_epoch,
                incarnation_id: r.incarnation_id,
                listeners: r.listeners.clone(),
                rack: r.rack.clone(),
                fenced: true,
                registered_offset: self.offset,
            },
        );
    }

    fn set_fenced(&mut self, broker_id: i32, epoch: i64, fenced: bool) -> Result<(), ImageError> {
        let broker = self
            .brokers
            .get_mut(&broker_id)
            .ok_or(ImageError::UnknownBroker { broker_id })?;
        if broker.broker_epoch != epoch {
            return Err(ImageError::StaleBrokerEpoch {
                broker_id,
                current: broker.broker_epoch,
                record: epoch,
            });
        }
        broker.fenced = fenced;
        Ok(())
    }

    fn create_topic(&mut self, r: &TopicRecord) -> Result<(), ImageError> {
        if self.topic_ids.contains_key(&r.name) {
            return Err(ImageError::TopicExists {
                name: r.name.clone(),
            });
        }
        if self.topics.contains_key(&r.topic_id) {
            return Err(ImageError::TopicIdExists {
                topic_id: r.topic_id,
            });
        }
        let partitions = sequenced(r.topic_id, 0, &r.partitions)?;
        self.topic_ids.insert(r.name.clone(), r.topic_id);
        self.topics.insert(
            r.topic_id,
            TopicImage {
                name: r.name.clone(),
                topic_id: r.topic_id,
                partitions,
                configs: r.configs.clone(),
            },
        );
        Ok(())
    }

    fn delete_topic(&mut self, topic_id: Uuid) -> Result<(), ImageError> {
        let topic = self
            .topics
            .remove(&topic_id)
            .ok_or(ImageError::UnknownTopicId { topic_id })?;
        self.topic_ids.remove(&topic.name);
        Ok(())
    }

    fn create_partitions(
        &mut self,
        topic_id: Uuid,
        records: &[PartitionRecord],
    ) -> Result<(), ImageError> {
        let topic = self
            .topics
            .get_mut(&topic_id)
            .ok_or(ImageError::UnknownTopicId { topic_id })?;
        let first = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        let added = sequenced(topic_id, first, records)?;
        topic.partitions.extend(added);
        Ok(())
    }

    fn change_partition(&mut self, r: &PartitionChangeRecord) -> Result<(), ImageError> {
        let partition = self
            .topics
            .get_mut(&r.topic_id)
            .ok_or(ImageError::UnknownTopicId {
                topic_id: r.topic_id,
            })?
            .partitions
            .get_mut(&r.partition)
            .ok_or(ImageError::UnknownPartition {
                topic_id: r.topic_id,
                partition: r.partition,
            })?;
        *partition = PartitionImage {
            replicas: r.replicas.clone(),
            isr: r.isr.clone(),
            leader: r.leader,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            adding_replicas: r.adding_replicas.clone(),
            removing_replicas: r.removing_replicas.clone(),
        };
        Ok(())
    }

    fn change_config(&mut self, r: &ConfigRecord) -> Result<(), ImageError> {
        let configs = match &r.resource {
            ConfigResource::Topic(name) => {
                let id = self
                    .topic_ids
                    .get(name)
                    .ok_or_else(|| ImageError::UnknownTopic { name: name.clone() })?;
                let topic = self
                    .topics
                    .get_mut(id)
                    .ok_or(ImageError::UnknownTopicId { topic_id: *id })?;
                &mut topic.configs
            }
            ConfigResource::Broker(id) => self.broker_configs.entry(*id).or_default(),
            ConfigResource::Cluster => &mut self.cluster_configs,
        };
        match &r.value {
            Some(value) => {
                configs.insert(r.name.clone(), value.clone());
            }
            None => {
                configs.remove(&r.name);
            }
        }
        if let ConfigResource::Broker(id) = r.resource {
            if self.broker_configs.get(&id).is_some_and(BTreeMap::is_empty) {
                self.broker_configs.remove(&id);
            }
        }
        Ok(())
    }

    fn allocate_producer_ids(&mut self, r: &ProducerIdsRecord) -> Result<(), ImageError> {
        if r.next_producer_id <= self.next_producer_id {
            return Err(ImageError::ProducerIdsWentBack {
                current: self.next_producer_id,
                record: r.next_producer_id,
            });
        }
        self.next_producer_id = r.next_producer_id;
        Ok(())
    }
}

/// Checks that `records` number partitions `first, first + 1, ...` and converts them.
fn sequenced(
    topic_id: Uuid,
    first: i32,
    records: &[PartitionRecord],
) -> Result<BTreeMap<i32, PartitionImage>, ImageError> {
    let mut partitions = BTreeMap::new();
    for (expected, record) in (first..).zip(records) {
        if record.partition != expected {
            return Err(ImageError::PartitionOutOfSequence {
                topic_id,
                expected,
                partition: record.partition,
            });
        }
        partitions.insert(record.partition, PartitionImage::from_record(record));
    }
    Ok(partitions)
}

#[cfg(test)]
#[path = "image_test.rs"]
mod tests;
