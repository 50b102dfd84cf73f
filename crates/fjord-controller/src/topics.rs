//! CreateTopics, DeleteTopics and CreatePartitions.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::api::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreatePartitionsResult, CreateTopicResult,
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicResult, DeleteTopicsRequest,
    DeleteTopicsResponse, NewTopic, TopicRef,
};
use crate::configs::validate_config;
use crate::decision::{Decision, Policy, TopicIdSource};
use crate::election::{choose_leader, Choice};
use crate::error_code::ErrorCode;
use crate::image::MetadataImage;
use crate::placement::{place_replicas, PlacementBroker, PlacementError, PlacementStart};
use crate::record::{MetadataRecord, PartitionRecord, TopicRecord, NO_LEADER};

/// Longest legal topic name, as in Kafka (file names carry a partition suffix).
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// A refused item: Kafka's code plus a message for the operator.
type Refusal = (ErrorCode, String);

/// Kafka's topic-name rule: 1 to 249 of `[a-zA-Z0-9._-]`, and not `.` or `..`, because the
/// name becomes a directory name.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("topic name {name:?} is illegal"));
    }
    if name.len() > MAX_TOPIC_NAME_LENGTH {
        return Err(format!(
            "topic name is {} characters, the limit is {MAX_TOPIC_NAME_LENGTH}",
            name.len()
        ));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "topic name {name:?} contains illegal character {c:?}"
        )),
        None => Ok(()),
    }
}

fn placement_brokers(image: &MetadataImage) -> Vec<PlacementBroker> {
    image
        .unfenced_brokers()
        .map(|b| PlacementBroker {
            broker_id: b.broker_id,
            rack: b.rack.clone(),
        })
        .collect()
}

/// Checks explicit replica lists: each non-empty, without duplicates, of registered brokers,
/// all of one length (`expected_len` when given), and each with at least one unfenced broker
/// to lead.
fn validate_assignment(
    image: &MetadataImage,
    lists: &[Vec<i32>],
    expected_len: Option<usize>,
) -> Result<(), Refusal> {
    let invalid = |message: String| (ErrorCode::InvalidReplicaAssignment, message);
    let expected_len = expected_len.or_else(|| lists.first().map(Vec::len));
    for (i, replicas) in lists.iter().enumerate() {
        if replicas.is_empty() {
            return Err(invalid(format!("assignment {i} has no replicas")));
        }
        if Some(replicas.len()) != expected_len {
            return Err(invalid(format!(
                "assignment {i} has {} replicas, expected {}",
                replicas.len(),
                expected_len.unwrap_or_default()
            )));
        }
        let distinct: BTreeSet<_> = replicas.iter().collect();
        if distinct.len() != replicas.len() {
            return Err(invalid(format!(
                "assignment {i} repeats a broker: {replicas:?}"
            )));
        }
        if let Some(b) = replicas.iter().find(|b| image.broker(**b).is_none()) {
            return Err(invalid(format!("broker {b} is not registered")));
        }
        if !replicas.iter().any(|b| image.is_unfenced(*b)) {
            return Err(invalid(format!(
                "every broker of assignment {i} is fenced: {replicas:?}"
            )));
        }
    }
    Ok(())
}

/// The initial state of a partition placed on `replicas`: the unfenced replicas are the ISR
/// and the first of them leads.
fn initial_partition(image: &MetadataImage, partition: i32, replicas: Vec<i32>) -> PartitionRecord {
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|b| image.is_unfenced(*b))
        .collect();
    let leader = match choose_leader(&replicas, &isr, |b| image.is_unfenced(b), false) {
        Choice::Clean(b) | Choice::Unclean(b) => b,
        Choice::None => NO_LEADER,
    };
    PartitionRecord {
        partition,
        replicas,
        isr,
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
    }
}

fn placement_refusal(error: PlacementError) -> Refusal {
    let code = match error {
        PlacementError::InvalidReplicationFactor { .. } => ErrorCode::InvalidReplicationFactor,
        PlacementError::InvalidPartitions { .. } => ErrorCode::InvalidPartitions,
    };
    (code, error.to_string())
}

/// The replica lists of a new topic, from explicit assignments or round-robin placement.
fn topic_replicas(
    image: &MetadataImage,
    topic: &NewTopic,
    policy: &Policy,
    topic_id: Uuid,
) -> Result<Vec<Vec<i32>>, Refusal> {
    if !topic.assignments.is_empty() {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ErrorCode::InvalidRequest,
                "explicit assignments need num_partitions and replication_factor -1".into(),
            ));
        }
        let mut by_partition = BTreeMap::new();
        for a in &topic.assignments {
            if by_partition
                .insert(a.partition, a.replicas.clone())
                .is_some()
            {
                return Err((
                    ErrorCode::InvalidReplicaAssignment,
                    format!("partition {} is assigned twice", a.partition),
                ));
            }
        }
        let contiguous = by_partition
            .keys()
            .copied()
            .eq(0..by_partition.len() as i32);
        if !contiguous {
            return Err((
                ErrorCode::InvalidReplicaAssignment,
                "assigned partitions must be numbered 0, 1, 2, ...".into(),
            ));
        }
        let lists: Vec<Vec<i32>> = by_partition.into_values().collect();
        validate_assignment(image, &lists, None)?;
        return Ok(lists);
    }
    let count = match topic.num_partitions {
        -1 => policy.num_partitions,
        n => n,
    };
    let replication_factor = match topic.replication_factor {
        -1 => policy.default_replication_factor,
        rf => rf,
    };
    place_replicas(
        &placement_brokers(image),
        0,
        count,
        replication_factor,
        PlacementStart::from_topic_id(topic_id),
    )
    .map_err(placement_refusal)
}

fn create_topic(
    image: &MetadataImage,
    topic: &NewTopic,
    policy: &Policy,
    topic_id: Uuid,
) -> Result<TopicRecord, Refusal> {
    validate_topic_name(&topic.name).map_err(|m| (ErrorCode::InvalidTopicException, m))?;
    if image.topic(&topic.name).is_some() {
        return Err((
            ErrorCode::TopicAlreadyExists,
            format!("topic {} already exists", topic.name),
        ));
    }
    for (name, value) in &topic.configs {
        validate_config(name, Some(value)).map_err(|m| (ErrorCode::InvalidConfig, m))?;
    }
    let lists = topic_replicas(image, topic, policy, topic_id)?;
    let partitions = (0..)
        .zip(lists)
        .map(|(p, replicas)| initial_partition(image, p, replicas))
        .collect();
    Ok(TopicRecord {
        name: topic.name.clone(),
        topic_id,
        partitions,
        configs: topic.configs.clone(),
    })
}

/// CreateTopics. Each topic succeeds or fails on its own; a name given twice fails both
/// times after the first.
pub fn create_topics(
    image: &MetadataImage,
    request: &CreateTopicsRequest,
    policy: &Policy,
    topic_ids: &mut dyn TopicIdSource,
) -> Decision<CreateTopicsResponse> {
    let mut records = Vec::new();
    let mut results = Vec::new();
    let mut seen = BTreeSet::new();
    for topic in &request.topics {
        let outcome = if seen.insert(topic.name.as_str()) {
            create_topic(image, topic, policy, topic_ids.next_topic_id())
        } else {
            Err((
                ErrorCode::InvalidRequest,
                format!("topic {} is named twice in the request", topic.name),
            ))
        };
        results.push(match outcome {
            Ok(record) => {
                let result = CreateTopicResult {
                    name: topic.name.clone(),
                    topic_id: record.topic_id,
                    error: ErrorCode::None,
                    error_message: None,
                    num_partitions: record.partitions.len() as i32,
                    replication_factor: record.partitions[0].replicas.len() as i16,
                };
                if !request.validate_only {
                    records.push(MetadataRecord::CreateTopic(record));
                }
                result
            }
            Err((error, message)) => CreateTopicResult {
                name: topic.name.clone(),
                topic_id: Uuid::nil(),
                error,
                error_message: Some(message),
                num_partitions: -1,
                replication_factor: -1,
            },
        });
    }
    Decision {
        records,
        response: CreateTopicsResponse { topics: results },
    }
}

/// DeleteTopics, by name or id.
pub fn delete_topics(
    image: &MetadataImage,
    request: &DeleteTopicsRequest,
) -> Decision<DeleteTopicsResponse> {
    let mut records = Vec::new();
    let mut results = Vec::new();
    let mut deleted = BTreeSet::new();
    for topic in &request.topics {
        let found = match topic {
            TopicRef::Name(name) => image
                .topic(name)
                .map(|t| t.topic_id)
                .ok_or(ErrorCode::UnknownTopicOrPartition),
            TopicRef::Id(id) => image
                .topic_by_id(*id)
                .map(|t| t.topic_id)
                .ok_or(ErrorCode::UnknownTopicId),
        };
        let error = match found {
            Ok(topic_id) if deleted.insert(topic_id) => {
                records.push(MetadataRecord::DeleteTopic { topic_id });
                ErrorCode::None
            }
            Ok(_) => ErrorCode::InvalidRequest,
            Err(error) => error,
        };
        results.push(DeleteTopicResult {
            topic: topic.clone(),
            error,
        });
    }
    Decision {
        records,
        response: DeleteTopicsResponse { topics: results },
    }
}

fn create_partitions_for(
    image: &MetadataImage,
    name: &str,
    count: i32,
    assignments: Option<&Vec<Vec<i32>>>,
) -> Result<MetadataRecord, Refusal> {
    let topic = image.topic(name).ok_or_else(|| {
        (
            ErrorCode::UnknownTopicOrPartition,
            format!("topic {name} does not exist"),
        )
    })?;
    let current = topic.partitions.len() as i32;
    if count <= current {
        return Err((
            ErrorCode::InvalidPartitions,
            format!("topic {name} has {current} partitions; {count} would not add any"),
        ));
    }
    let replication_factor = topic
        .partitions
        .values()
        .next()
        .map_or(1, |p| p.replicas.len());
    let lists = match assignments {
        Some(lists) => {
            if lists.len() as i32 != count - current {
                return Err((
                    ErrorCode::InvalidReplicaAssignment,
                    format!(
                        "{} assignments for {} new partitions",
                        lists.len(),
                        count - current
                    ),
                ));
            }
            validate_assignment(image, lists, Some(replication_factor))?;
            lists.clone()
        }
        None => place_replicas(
            &placement_brokers(image),
            current,
            count - current,
            replication_factor as i16,
            PlacementStart::from_topic_id(topic.topic_id),
        )
        .map_err(placement_refusal)?,
    };
    let partitions = (current..)
        .zip(lists)
        .map(|(p, replicas)| initial_partition(image, p, replicas))
        .collect();
    Ok(MetadataRecord::CreatePartitions {
        topic_id: topic.topic_id,
        partitions,
    })
}

/// CreatePartitions: grows topics to a new partition count, keeping their replication factor.
pub fn create_partitions(
    image: &MetadataImage,
    request: &CreatePartitionsRequest,
) -> Decision<CreatePartitionsResponse> {
    let mut records = Vec::new();
    let mut results = Vec::new();
    let mut seen = BTreeSet::new();
    for topic in &request.topics {
        let outcome = if seen.insert(topic.name.as_str()) {
            create_partitions_for(image, &topic.name, topic.count, topic.assignments.as_ref())
        } else {
            Err((
                ErrorCode::InvalidRequest,
                format!("topic {} is named twice in the request", topic.name),
            ))
        };
        let (error, error_message) = match outcome {
            Ok(record) => {
                if !request.validate_only {
                    records.push(record);
                }
                (ErrorCode::None, None)
            }
            Err((error, message)) => (error, Some(message)),
        };
        results.push(CreatePartitionsResult {
            name: topic.name.clone(),
            error,
            error_message,
        });
    }
    Decision {
        records,
        response: CreatePartitionsResponse { topics: results },
    }
}

#[cfg(test)]
#[path = "topics_test.rs"]
mod tests;
