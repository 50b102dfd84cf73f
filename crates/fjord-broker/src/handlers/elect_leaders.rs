//! ElectLeaders: preferred or unclean leader elections (Alter on the cluster). In cluster
//! mode the controller decides and the answer waits for the new leaders in the applied
//! image. A single node has exactly one replica per partition, and it leads: every election
//! there is ELECTION_NOT_NEEDED, as Kafka answers for a partition led by its preferred
//! replica (preferred) or with a leader (unclean).
//!
//! Results follow Kafka's controller: every requested partition in request order; with no
//! partitions named, every topic is listed with only the partitions that needed an election.

use fjord_controller::api::{ElectionType, TopicPartitions};
use fjord_controller::ErrorCode;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::authorizer::{Operation, Resource};
use crate::dispatch::RequestContext;
use crate::error::{controller_code, standard_message};
use crate::Broker;

/// One partition's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    topic: String,
    partition: i32,
    /// `None` when the leader was elected.
    error: Option<ResponseError>,
    message: Option<String>,
}

/// Elects leaders, or answers why not.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    if !broker
        .authorizer
        .authorize(ctx.session, Operation::Alter, Resource::Cluster)
    {
        return refused(&request, ResponseError::ClusterAuthorizationFailed, None);
    }
    // v0 has no election type and is always preferred (the decoded default 0).
    let election_type = match request.election_type {
        0 => ElectionType::Preferred,
        1 => ElectionType::Unclean,
        other => {
            return refused(
                &request,
                ResponseError::InvalidRequest,
                Some(format!("Unknown election type {other}")),
            )
        }
    };
    let requested: Option<Vec<TopicPartitions>> = request.topic_partitions.as_ref().map(|list| {
        list.iter()
            .map(|t| TopicPartitions {
                topic: t.topic.to_string(),
                partitions: t.partitions.clone(),
            })
            .collect()
    });
    let (outcomes, topics) = match &broker.cluster {
        Some(cluster) => {
            let results = match cluster
                .elect_leaders(election_type, requested.clone())
                .await
            {
                Ok(results) => results,
                Err((error, message)) => return refused(&request, error, Some(message)),
            };
            let image = cluster.image();
            let outcomes = results
                .into_iter()
                .map(|r| {
                    let error = (r.error != ErrorCode::None).then(|| controller_code(r.error));
                    let topic_known = image.topic(&r.topic).is_some();
                    Outcome {
                        message: message(error, &r.topic, r.partition, topic_known),
                        topic: r.topic,
                        partition: r.partition,
                        error,
                    }
                })
                .collect();
            (outcomes, image.topic_ids().keys().cloned().collect())
        }
        None => {
            let topics: Vec<String> = broker
                .logs
                .topics()
                .iter()
                .map(|t| t.name.clone())
                .collect();
            (single_node(broker, requested.as_deref()), topics)
        }
    };
    let mut response = ElectLeadersResponse::default();
    response.replica_election_results = match &requested {
        Some(requested) => by_request(requested, outcomes),
        None => by_topic(topics, outcomes),
    };
    response
}

/// A single node's answers: the partitions it has need no election, the others are unknown.
/// Nothing needs an election when no partitions are named.
fn single_node(broker: &Broker, requested: Option<&[TopicPartitions]>) -> Vec<Outcome> {
    let Some(requested) = requested else {
        return Vec::new();
    };
    let mut outcomes = Vec::new();
    for t in requested {
        let topic = broker.logs.topic(&t.topic);
        for &partition in &t.partitions {
            let error = match &topic {
                Some(found) if found.partition(partition).is_some() => {
                    ResponseError::ElectionNotNeeded
                }
                _ => ResponseError::UnknownTopicOrPartition,
            };
            outcomes.push(Outcome {
                topic: t.topic.clone(),
                partition,
                error: Some(error),
                message: message(Some(error), &t.topic, partition, topic.is_some()),
            });
        }
    }
    outcomes
}

/// Kafka's message for a partition's outcome: none on success, the controller's wording for
/// an unknown topic or partition, else the error's standard message.
fn message(
    error: Option<ResponseError>,
    topic: &str,
    partition: i32,
    topic_known: bool,
) -> Option<String> {
    match error? {
        ResponseError::UnknownTopicOrPartition if topic_known => {
            Some(format!("No such partition as {topic}-{partition}"))
        }
        ResponseError::UnknownTopicOrPartition => Some(format!("No such topic as {topic}")),
        error => Some(standard_message(error)),
    }
}

fn partition_result(outcome: Option<Outcome>, partition: i32) -> PartitionResult {
    let mut r = PartitionResult::default();
    r.partition_id = partition;
    match outcome {
        Some(o) if o.partition == partition => {
            r.error_code = o.error.map_or(0, |e| e.code());
            r.error_message = o.message.map(str_bytes);
        }
        _ => {
            r.error_code = ResponseError::UnknownServerError.code();
            r.error_message = Some(str_bytes("no election result for this partition"));
        }
    }
    r
}

/// Results shaped like the request: one entry per requested topic, its partitions in order.
fn by_request(requested: &[TopicPartitions], outcomes: Vec<Outcome>) -> Vec<ReplicaElectionResult> {
    let mut outcomes = outcomes.into_iter();
    requested
        .iter()
        .map(|t| {
            let mut result = ReplicaElectionResult::default();
            result.topic = TopicName(str_bytes(t.topic.clone()));
            result.partition_result = t
                .partitions
                .iter()
                .map(|&p| partition_result(outcomes.next().filter(|o| o.topic == t.topic), p))
                .collect();
            result
        })
        .collect()
}

/// Results for an election over everything: every topic, with the partitions reported.
fn by_topic(topics: Vec<String>, outcomes: Vec<Outcome>) -> Vec<ReplicaElectionResult> {
    let mut results: Vec<ReplicaElectionResult> = topics
        .into_iter()
        .map(|name| {
            let mut result = ReplicaElectionResult::default();
            result.topic = TopicName(str_bytes(name));
            result
        })
        .collect();
    for o in outcomes {
        let index = match results.iter().position(|r| r.topic.as_str() == o.topic) {
            Some(index) => index,
            None => {
                let mut result = ReplicaElectionResult::default();
                result.topic = TopicName(str_bytes(o.topic.clone()));
                results.push(result);
                results.len() - 1
            }
        };
        let partition = o.partition;
        results[index]
            .partition_result
            .push(partition_result(Some(o), partition));
    }
    results
}

/// Kafka's answer to a request refused as a whole: the error at the top and for every
/// requested partition.
fn refused(
    request: &ElectLeadersRequest,
    error: ResponseError,
    message: Option<String>,
) -> ElectLeadersResponse {
    let message = message.unwrap_or_else(|| standard_message(error));
    let mut response = ElectLeadersResponse::default();
    response.error_code = error.code();
    response.replica_election_results = request
        .topic_partitions
        .iter()
        .flatten()
        .map(|t| {
            let mut result = ReplicaElectionResult::default();
            result.topic = t.topic.clone();
            result.partition_result = t
                .partitions
                .iter()
                .map(|&p| {
                    let mut r = PartitionResult::default();
                    r.partition_id = p;
                    r.error_code = error.code();
                    r.error_message = Some(str_bytes(message.clone()));
                    r
                })
                .collect();
            result
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(topic: &str, partition: i32, error: Option<ResponseError>) -> Outcome {
        Outcome {
            topic: topic.into(),
            partition,
            error,
            message: message(error, topic, partition, true),
        }
    }

    fn codes(results: &[ReplicaElectionResult]) -> Vec<(String, Vec<(i32, i16)>)> {
        results
            .iter()
            .map(|r| {
                (
                    r.topic.to_string(),
                    r.partition_result
                        .iter()
                        .map(|p| (p.partition_id, p.error_code))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn results_follow_the_request() {
        let requested = vec![
            TopicPartitions {
                topic: "a".into(),
                partitions: vec![1, 0],
            },
            TopicPartitions {
                topic: "b".into(),
                partitions: vec![],
            },
        ];
        let outcomes = vec![
            outcome("a", 1, Some(ResponseError::ElectionNotNeeded)),
            outcome("a", 0, Some(ResponseError::PreferredLeaderNotAvailable)),
        ];
        assert_eq!(
            codes(&by_request(&requested, outcomes)),
            vec![
                ("a".to_string(), vec![(1, 84), (0, 80)]),
                ("b".to_string(), vec![])
            ]
        );
        // A missing answer is reported, not invented.
        let short = by_request(
            &requested,
            vec![outcome("a", 1, Some(ResponseError::ElectionNotNeeded))],
        );
        assert_eq!(short[0].partition_result[1].error_code, -1);
    }

    #[test]
    fn an_election_over_everything_lists_every_topic() {
        let topics = vec!["a".to_string(), "b".to_string()];
        let elected = outcome("b", 2, None);
        let results = by_topic(topics, vec![elected]);
        assert_eq!(
            codes(&results),
            vec![("a".to_string(), vec![]), ("b".to_string(), vec![(2, 0)])]
        );
        assert_eq!(results[1].partition_result[0].error_message, None);
    }

    #[test]
    fn messages_are_kafkas() {
        assert_eq!(
            message(Some(ResponseError::ElectionNotNeeded), "t", 0, true).as_deref(),
            Some("Leader election not needed for topic partition.")
        );
        assert_eq!(
            message(Some(ResponseError::UnknownTopicOrPartition), "t", 3, true).as_deref(),
            Some("No such partition as t-3")
        );
        assert_eq!(
            message(Some(ResponseError::UnknownTopicOrPartition), "t", 3, false).as_deref(),
            Some("No such topic as t")
        );
        assert_eq!(message(None, "t", 0, true), None);
    }
}
