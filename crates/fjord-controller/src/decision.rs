//! The active controller's decisions: pure functions from the committed image and a request
//! to the records to append and the answer to send once they commit.
//!
//! ```text
//!   request ──► decide(image, request, policy, ids) ──► Decision { records, response }
//!                    ▲                                          │
//!                    │                 records ──► raft.client_write ──► commit ──► apply
//!                    └───────────────── image ◄─────────────────────────────────────┘
//! ```
//!
//! The runtime runs one decision at a time and waits for its records to be applied before the
//! next, so every decision sees the effects of the previous one.

use uuid::Uuid;

use crate::api::{ControllerRequest, ControllerResponse};
use crate::image::MetadataImage;
use crate::record::MetadataRecord;
use crate::{brokers, configs, election, reassignment, topics};

/// What a decision appends and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<R> {
    /// Records to append, in order, as one atomic batch. Empty when nothing changes.
    pub records: Vec<MetadataRecord>,
    /// The answer, valid once `records` are committed.
    pub response: R,
}

impl<R> Decision<R> {
    /// A decision that changes nothing.
    pub fn answer(response: R) -> Self {
        Self {
            records: Vec::new(),
            response,
        }
    }

    /// The same records with the response wrapped, e.g. into [`ControllerResponse`].
    pub fn map<S>(self, f: impl FnOnce(R) -> S) -> Decision<S> {
        Decision {
            records: self.records,
            response: f(self.response),
        }
    }
}

/// Cluster-wide defaults the decisions need, named after Kafka's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `num.partitions`: partitions of a topic created with -1.
    pub num_partitions: i32,
    /// `default.replication.factor`: replication factor of a topic created with -1.
    pub default_replication_factor: i16,
    /// `unclean.leader.election.enable`: the default when neither the topic nor the cluster
    /// config sets it.
    pub unclean_leader_election_enable: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            num_partitions: 1,
            default_replication_factor: 1,
            unclean_leader_election_enable: false,
        }
    }
}

/// Source of new topic ids. Injected so tests and the simulator get predictable ids; the
/// runtime draws random v4 UUIDs.
pub trait TopicIdSource {
    /// A topic id never used before.
    fn next_topic_id(&mut self) -> Uuid;
}

/// Random v4 topic ids.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomTopicIds;

impl TopicIdSource for RandomTopicIds {
    fn next_topic_id(&mut self) -> Uuid {
        Uuid::new_v4()
    }
}

/// Decides any request except [`ControllerRequest::BrokerHeartbeat`]'s session bookkeeping,
/// which the runtime does around [`brokers::broker_heartbeat`].
pub fn decide(
    image: &MetadataImage,
    request: &ControllerRequest,
    policy: &Policy,
    topic_ids: &mut dyn TopicIdSource,
) -> Decision<ControllerResponse> {
    match request {
        ControllerRequest::RegisterBroker(r) => {
            brokers::register_broker(image, r, policy).map(ControllerResponse::RegisterBroker)
        }
        ControllerRequest::BrokerHeartbeat(r) => {
            brokers::broker_heartbeat(image, r, policy).map(ControllerResponse::BrokerHeartbeat)
        }
        ControllerRequest::CreateTopics(r) => {
            topics::create_topics(image, r, policy, topic_ids).map(ControllerResponse::CreateTopics)
        }
        ControllerRequest::DeleteTopics(r) => {
            topics::delete_topics(image, r).map(ControllerResponse::DeleteTopics)
        }
        ControllerRequest::CreatePartitions(r) => {
            topics::create_partitions(image, r).map(ControllerResponse::CreatePartitions)
        }
        ControllerRequest::AlterPartition(r) => {
            reassignment::alter_partition(image, r).map(ControllerResponse::AlterPartition)
        }
        ControllerRequest::ElectLeaders(r) => {
            election::elect_leaders(image, r, policy).map(ControllerResponse::ElectLeaders)
        }
        ControllerRequest::AlterConfigs(r) => {
            configs::alter_configs(image, r).map(ControllerResponse::AlterConfigs)
        }
        ControllerRequest::AllocateProducerIds(r) => {
            brokers::allocate_producer_ids(image, r).map(ControllerResponse::AllocateProducerIds)
        }
        ControllerRequest::AlterPartitionReassignments(r) => {
            reassignment::alter_partition_reassignments(image, r)
                .map(ControllerResponse::AlterPartitionReassignments)
        }
    }
}
