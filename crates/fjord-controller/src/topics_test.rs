//! CreateTopics, DeleteTopics and CreatePartitions decisions.

use std::collections::BTreeMap;

use super::*;
use crate::api::{CreatePartitionsTopic, ReplicaAssignment};
use crate::testing::{add_broker, add_topic, apply_all, cluster, SequentialTopicIds};

fn new_topic(name: &str, num_partitions: i32, replication_factor: i16) -> NewTopic {
    NewTopic {
        name: name.into(),
        num_partitions,
        replication_factor,
        assignments: Vec::new(),
        configs: BTreeMap::new(),
    }
}

fn create(image: &MetadataImage, topics: Vec<NewTopic>) -> Decision<CreateTopicsResponse> {
    let request = CreateTopicsRequest {
        topics,
        validate_only: false,
    };
    create_topics(
        image,
        &request,
        &Policy::default(),
        &mut SequentialTopicIds(0),
    )
}

fn errors(response: &CreateTopicsResponse) -> Vec<ErrorCode> {
    response.topics.iter().map(|t| t.error).collect()
}

#[test]
fn six_partitions_three_replicas_are_placed_round_robin_with_balanced_leaders() {
    let image = cluster(&[1, 2, 3]);
    let decision = create(&image, vec![new_topic("orders", 6, 3)]);
    // Topic id 1: start index 1, shift 0.
    let topic_id = Uuid::from_u128(1);
    let expected: Vec<PartitionRecord> = [
        [2, 3, 1],
        [3, 1, 2],
        [1, 2, 3],
        [2, 1, 3],
        [3, 2, 1],
        [1, 3, 2],
    ]
    .iter()
    .enumerate()
    .map(|(p, replicas)| PartitionRecord {
        partition: p as i32,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader: replicas[0],
        leader_epoch: 0,
        partition_epoch: 0,
    })
    .collect();
    assert_eq!(
        decision.records,
        vec![MetadataRecord::CreateTopic(TopicRecord {
            name: "orders".into(),
            topic_id,
            partitions: expected,
            configs: BTreeMap::new(),
        })]
    );
    assert_eq!(
        decision.response.topics,
        vec![CreateTopicResult {
            name: "orders".into(),
            topic_id,
            error: ErrorCode::None,
            error_message: None,
            num_partitions: 6,
            replication_factor: 3,
        }]
    );
}

#[test]
fn minus_one_takes_the_cluster_defaults() {
    let image = cluster(&[1, 2]);
    let request = CreateTopicsRequest {
        topics: vec![new_topic("t", -1, -1)],
        validate_only: false,
    };
    let policy = Policy {
        num_partitions: 4,
        default_replication_factor: 2,
        unclean_leader_election_enable: false,
    };
    let decision = create_topics(&image, &request, &policy, &mut SequentialTopicIds(0));
    let result = &decision.response.topics[0];
    assert_eq!((result.num_partitions, result.replication_factor), (4, 2));
}

#[test]
fn replication_factor_counts_only_unfenced_brokers() {
    let mut image = cluster(&[1, 2]);
    add_broker(&mut image, 3, None, true);
    let decision = create(&image, vec![new_topic("t", 1, 3), new_topic("u", 0, 1)]);
    assert!(decision.records.is_empty());
    assert_eq!(
        errors(&decision.response),
        vec![
            ErrorCode::InvalidReplicationFactor,
            ErrorCode::InvalidPartitions
        ]
    );
    assert_eq!(decision.response.topics[0].topic_id, Uuid::nil());
}

#[test]
fn names_are_checked_like_kafka() {
    let mut image = cluster(&[1]);
    add_topic(&mut image, "taken", 50, &[(&[1], &[1], 1)]);
    let long = "x".repeat(250);
    let decision = create(
        &image,
        vec![
            new_topic("taken", 1, 1),
            new_topic("bad name", 1, 1),
            new_topic("..", 1, 1),
            new_topic(&long, 1, 1),
            new_topic("ok.name_1-2", 1, 1),
            new_topic("ok.name_1-2", 1, 1),
        ],
    );
    assert_eq!(
        errors(&decision.response),
        vec![
            ErrorCode::TopicAlreadyExists,
            ErrorCode::InvalidTopicException,
            ErrorCode::InvalidTopicException,
            ErrorCode::InvalidTopicException,
            ErrorCode::None,
            ErrorCode::InvalidRequest,
        ]
    );
    assert_eq!(decision.records.len(), 1);
}

#[test]
fn invalid_configs_are_refused() {
    let image = cluster(&[1]);
    let mut topic = new_topic("t", 1, 1);
    topic
        .configs
        .insert("unclean.leader.election.enable".into(), "maybe".into());
    let decision = create(&image, vec![topic]);
    assert_eq!(errors(&decision.response), vec![ErrorCode::InvalidConfig]);
}

fn assigned(name: &str, lists: &[(i32, &[i32])]) -> NewTopic {
    NewTopic {
        assignments: lists
            .iter()
            .map(|(partition, replicas)| ReplicaAssignment {
                partition: *partition,
                replicas: replicas.to_vec(),
            })
            .collect(),
        ..new_topic(name, -1, -1)
    }
}

#[test]
fn explicit_assignments_lead_from_the_first_unfenced_replica() {
    let mut image = cluster(&[1, 2]);
    add_broker(&mut image, 3, None, true);
    let decision = create(&image, vec![assigned("t", &[(1, &[1, 2]), (0, &[3, 2])])]);
    let MetadataRecord::CreateTopic(record) = &decision.records[0] else {
        panic!("expected a topic record: {:?}", decision.records);
    };
    assert_eq!(
        record.partitions,
        vec![
            PartitionRecord {
                partition: 0,
                replicas: vec![3, 2],
                isr: vec![2],
                leader: 2,
                leader_epoch: 0,
                partition_epoch: 0,
            },
            PartitionRecord {
                partition: 1,
                replicas: vec![1, 2],
                isr: vec![1, 2],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            },
        ]
    );
}

#[test]
fn invalid_explicit_assignments_are_refused() {
    let mut image = cluster(&[1, 2]);
    add_broker(&mut image, 3, None, true);
    let mut with_count = assigned("f", &[(0, &[1])]);
    with_count.num_partitions = 1;
    let decision = create(
        &image,
        vec![
            assigned("a", &[(0, &[1, 9])]),
            assigned("b", &[(0, &[1, 1])]),
            assigned("c", &[(0, &[1]), (2, &[2])]),
            assigned("d", &[(0, &[1, 2]), (1, &[2])]),
            assigned("e", &[(0, &[3])]),
            with_count,
            assigned("g", &[(0, &[])]),
            assigned("h", &[(0, &[1]), (0, &[2])]),
        ],
    );
    assert!(decision.records.is_empty());
    assert_eq!(
        errors(&decision.response),
        vec![
            ErrorCode::InvalidReplicaAssignment,
            ErrorCode::InvalidReplicaAssignment,
            ErrorCode::InvalidReplicaAssignment,
            ErrorCode::InvalidReplicaAssignment,
            ErrorCode::InvalidReplicaAssignment,
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidReplicaAssignment,
            ErrorCode::InvalidReplicaAssignment,
        ]
    );
}

#[test]
fn validate_only_answers_without_records() {
    let image = cluster(&[1]);
    let request = CreateTopicsRequest {
        topics: vec![new_topic("t", 1, 1)],
        validate_only: true,
    };
    let decision = create_topics(
        &image,
        &request,
        &Policy::default(),
        &mut SequentialTopicIds(0),
    );
    assert!(decision.records.is_empty());
    assert_eq!(decision.response.topics[0].error, ErrorCode::None);
}

#[test]
fn topics_are_deleted_by_name_or_id() {
    let mut image = cluster(&[1]);
    let a = add_topic(&mut image, "a", 10, &[(&[1], &[1], 1)]);
    let b = add_topic(&mut image, "b", 11, &[(&[1], &[1], 1)]);
    let request = DeleteTopicsRequest {
        topics: vec![
            TopicRef::Name("a".into()),
            TopicRef::Id(b),
            TopicRef::Name("a".into()),
            TopicRef::Name("zzz".into()),
            TopicRef::Id(Uuid::from_u128(99)),
        ],
    };
    let decision = delete_topics(&image, &request);
    assert_eq!(
        decision.records,
        vec![
            MetadataRecord::DeleteTopic { topic_id: a },
            MetadataRecord::DeleteTopic { topic_id: b },
        ]
    );
    let errors: Vec<ErrorCode> = decision.response.topics.iter().map(|t| t.error).collect();
    assert_eq!(
        errors,
        vec![
            ErrorCode::None,
            ErrorCode::None,
            ErrorCode::InvalidRequest,
            ErrorCode::UnknownTopicOrPartition,
            ErrorCode::UnknownTopicId,
        ]
    );
    apply_all(&mut image, &decision.records);
    assert!(image.topics().is_empty() && image.topic_ids().is_empty());
}

fn grow(name: &str, count: i32, assignments: Option<Vec<Vec<i32>>>) -> CreatePartitionsTopic {
    CreatePartitionsTopic {
        name: name.into(),
        count,
        assignments,
    }
}

#[test]
fn new_partitions_continue_the_placement_with_the_topics_replication_factor() {
    let image0 = cluster(&[1, 2, 3]);
    let decision = create(&image0, vec![new_topic("t", 6, 2)]);
    let MetadataRecord::CreateTopic(whole) = &decision.records[0] else {
        panic!("expected a topic record");
    };
    let mut image = cluster(&[1, 2, 3]);
    let first_three = create(&image, vec![new_topic("t", 3, 2)]);
    apply_all(&mut image, &first_three.records);
    let request = CreatePartitionsRequest {
        topics: vec![grow("t", 6, None)],
        validate_only: false,
    };
    let decision = create_partitions(&image, &request);
    assert_eq!(
        decision.records,
        vec![MetadataRecord::CreatePartitions {
            topic_id: whole.topic_id,
            partitions: whole.partitions[3..].to_vec(),
        }]
    );
    apply_all(&mut image, &decision.records);
    assert_eq!(image.topic("t").unwrap().partitions.len(), 6);
}

#[test]
fn partition_growth_is_checked() {
    let mut image = cluster(&[1, 2]);
    add_topic(&mut image, "t", 1, &[(&[1, 2], &[1, 2], 1)]);
    add_topic(&mut image, "u", 2, &[(&[1, 2], &[1, 2], 1)]);
    add_topic(&mut image, "v", 3, &[(&[1, 2], &[1, 2], 1)]);
    let request = CreatePartitionsRequest {
        topics: vec![
            grow("t", 1, None),
            grow("nope", 3, None),
            // Two new partitions, one assignment.
            grow("u", 3, Some(vec![vec![1, 2]])),
            // Replication factor 1 on a topic of factor 2.
            grow("v", 2, Some(vec![vec![1]])),
            grow("t", 2, None),
        ],
        validate_only: false,
    };
    let decision = create_partitions(&image, &request);
    let errors: Vec<ErrorCode> = decision.response.topics.iter().map(|t| t.error).collect();
    assert_eq!(
        errors,
        vec![
            ErrorCode::InvalidPartitions,
            ErrorCode::UnknownTopicOrPartition,
            ErrorCode::InvalidReplicaAssignment,
            ErrorCode::InvalidReplicaAssignment,
            ErrorCode::InvalidRequest,
        ]
    );
    assert!(decision.records.is_empty());
}

#[test]
fn explicit_new_partitions_are_used_as_given() {
    let mut image = cluster(&[1, 2]);
    let t = add_topic(&mut image, "t", 1, &[(&[1, 2], &[1, 2], 1)]);
    let request = CreatePartitionsRequest {
        topics: vec![grow("t", 2, Some(vec![vec![2, 1]]))],
        validate_only: false,
    };
    let decision = create_partitions(&image, &request);
    assert_eq!(
        decision.records,
        vec![MetadataRecord::CreatePartitions {
            topic_id: t,
            partitions: vec![PartitionRecord {
                partition: 1,
                replicas: vec![2, 1],
                isr: vec![2, 1],
                leader: 2,
                leader_epoch: 0,
                partition_epoch: 0,
            }],
        }]
    );
}

#[test]
fn topic_name_rule() {
    assert!(validate_topic_name("a.b_c-D9").is_ok());
    assert!(validate_topic_name("").is_err());
    assert!(validate_topic_name(".").is_err());
    assert!(validate_topic_name("a/b").is_err());
    assert!(validate_topic_name(&"a".repeat(249)).is_ok());
    assert!(validate_topic_name(&"a".repeat(250)).is_err());
}
