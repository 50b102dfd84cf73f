//! AlterPartitionReassignments: start, replace or cancel moves of partitions to new replica
//! sets (Alter on the cluster). In cluster mode the controller decides and the answer waits
//! for the change in the applied image. A single node is the only registered broker and
//! holds the only replica of each partition: a target of exactly this node changes nothing
//! and succeeds, any other broker is INVALID_REPLICA_ASSIGNMENT, and nothing is ever being
//! reassigned, so a cancellation is NO_REASSIGNMENT_IN_PROGRESS, as Kafka's controller
//! answers.

use fjord_controller::api::{ReassignablePartition, ReassignableTopic};
use fjord_controller::reassignment::{check_target_replicas, NO_REASSIGNMENT_IN_PROGRESS};
use fjord_controller::ErrorCode;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::authorizer::{Operation, Resource};
use crate::dispatch::RequestContext;
use crate::error::{controller_code, standard_message};
use crate::Broker;

/// A partition's outcome: `None` on success, else Kafka's error and message.
type Outcome = Option<(ResponseError, String)>;

/// Reassigns each partition independently, or refuses the whole request.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    if !broker
        .authorizer
        .authorize(ctx.session, Operation::Alter, Resource::Cluster)
    {
        let error = ResponseError::ClusterAuthorizationFailed;
        return refused(&request, error, standard_message(error));
    }
    let topics: Vec<ReassignableTopic> = request
        .topics
        .iter()
        .map(|t| ReassignableTopic {
            name: t.name.to_string(),
            partitions: t
                .partitions
                .iter()
                .map(|p| ReassignablePartition {
                    partition: p.partition_index,
                    replicas: p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                })
                .collect(),
        })
        .collect();
    let outcomes: Vec<Outcome> = match &broker.cluster {
        Some(cluster) => match cluster.alter_partition_reassignments(topics.clone()).await {
            Ok(results) => results
                .into_iter()
                .map(|r| {
                    (r.error != ErrorCode::None).then(|| {
                        (
                            controller_code(r.error),
                            r.error_message.unwrap_or_default(),
                        )
                    })
                })
                .collect(),
            Err((error, message)) => return refused(&request, error, message),
        },
        None => topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| single_node(broker, &t.name, p).err())
            })
            .collect(),
    };
    let mut outcomes = outcomes.into_iter();
    let mut response = AlterPartitionReassignmentsResponse::default();
    response.error_message = None;
    response.responses = request
        .topics
        .iter()
        .map(|t| {
            let mut topic = ReassignableTopicResponse::default();
            topic.name = t.name.clone();
            topic.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let outcome = outcomes.next().unwrap_or_else(|| {
                        Some((
                            ResponseError::UnknownServerError,
                            "no result for this partition".into(),
                        ))
                    });
                    partition_response(p.partition_index, outcome)
                })
                .collect();
            topic
        })
        .collect();
    response
}

/// A single node's decision for one partition, in the order of Kafka's checks.
fn single_node(
    broker: &Broker,
    topic: &str,
    p: &ReassignablePartition,
) -> Result<(), (ResponseError, String)> {
    let unknown = |message| Err((ResponseError::UnknownTopicOrPartition, message));
    let Some(found) = broker.logs.topic(topic) else {
        return unknown(format!("Unable to find a topic named {topic}."));
    };
    if found.partition(p.partition).is_none() {
        return unknown(format!("Unable to find partition {topic}:{}.", p.partition));
    }
    let Some(target) = &p.replicas else {
        return Err((
            ResponseError::NoReassignmentInProgress,
            NO_REASSIGNMENT_IN_PROGRESS.to_string(),
        ));
    };
    let node_id = broker.config.node_id;
    check_target_replicas(target, |b| b == node_id)
        .map_err(|message| (ResponseError::InvalidReplicaAssignment, message))
}

fn partition_response(partition: i32, outcome: Outcome) -> ReassignablePartitionResponse {
    let mut r = ReassignablePartitionResponse::default();
    r.partition_index = partition;
    // The codec's default is an empty message; Kafka sends null on success.
    r.error_message = None;
    if let Some((error, message)) = outcome {
        r.error_code = error.code();
        r.error_message = Some(str_bytes(message));
    }
    r
}

/// Kafka's answer to a request refused as a whole: the error at the top and for every
/// partition.
fn refused(
    request: &AlterPartitionReassignmentsRequest,
    error: ResponseError,
    message: String,
) -> AlterPartitionReassignmentsResponse {
    let mut response = AlterPartitionReassignmentsResponse::default();
    response.error_code = error.code();
    response.error_message = Some(str_bytes(message.clone()));
    response.responses = request
        .topics
        .iter()
        .map(|t| {
            let mut topic = ReassignableTopicResponse::default();
            topic.name = t.name.clone();
            topic.partitions = t
                .partitions
                .iter()
                .map(|p| partition_response(p.partition_index, Some((error, message.clone()))))
                .collect();
            topic
        })
        .collect();
    response
}
