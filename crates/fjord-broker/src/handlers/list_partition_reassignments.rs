//! ListPartitionReassignments: the partitions being moved (Describe on the cluster), with
//! their replicas and the replicas being added and removed, from the applied image in
//! cluster mode. A single node never reassigns anything: its answer is always empty.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::authorizer::{Operation, Resource};
use crate::cluster::ongoing_reassignments;
use crate::dispatch::RequestContext;
use crate::error::standard_message;
use crate::Broker;

/// Lists ongoing reassignments of every topic, or of the requested partitions.
pub(crate) fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let mut response = ListPartitionReassignmentsResponse::default();
    // The codec's default is an empty message; Kafka sends null without an error.
    response.error_message = None;
    if !broker
        .authorizer
        .authorize(ctx.session, Operation::Describe, Resource::Cluster)
    {
        // Kafka's error answer names each requested partition, without replicas.
        let error = ResponseError::ClusterAuthorizationFailed;
        response.error_code = error.code();
        response.error_message = Some(str_bytes(standard_message(error)));
        response.topics = request
            .topics
            .iter()
            .flatten()
            .map(|t| {
                let mut topic = OngoingTopicReassignment::default();
                topic.name = t.name.clone();
                topic.partitions = t
                    .partition_indexes
                    .iter()
                    .map(|&p| {
                        let mut partition = OngoingPartitionReassignment::default();
                        partition.partition_index = p;
                        partition
                    })
                    .collect();
                topic
            })
            .collect();
        return response;
    }
    let Some(cluster) = &broker.cluster else {
        return response;
    };
    let requested: Option<Vec<(String, Vec<i32>)>> = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let brokers = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect();
    response.topics = ongoing_reassignments(&cluster.image(), requested.as_deref())
        .into_iter()
        .map(|(name, partitions)| {
            let mut topic = OngoingTopicReassignment::default();
            topic.name = TopicName(str_bytes(name));
            topic.partitions = partitions
                .iter()
                .map(|o| {
                    let mut partition = OngoingPartitionReassignment::default();
                    partition.partition_index = o.partition;
                    partition.replicas = brokers(&o.replicas);
                    partition.adding_replicas = brokers(&o.adding);
                    partition.removing_replicas = brokers(&o.removing);
                    partition
                })
                .collect();
            topic
        })
        .collect();
    response
}
