//! AlterPartition checks and reassignment steps, asserted on exact records and answers.

use super::*;
use crate::api::{AlterPartitionTopic, ReassignablePartition, ReassignableTopic};
use crate::testing::{add_broker, add_topic, apply_all, cluster};

fn alter(broker_id: i32, topic_id: Uuid, data: Vec<AlterPartitionData>) -> AlterPartitionRequest {
    AlterPartitionRequest {
        broker_id,
        broker_epoch: i64::from(broker_id) * 10,
        topics: vec![AlterPartitionTopic {
            topic_id,
            partitions: data,
        }],
    }
}

fn data(
    partition: i32,
    leader_epoch: i32,
    new_isr: &[i32],
    partition_epoch: i32,
) -> AlterPartitionData {
    AlterPartitionData {
        partition,
        leader_epoch,
        new_isr: new_isr.to_vec(),
        partition_epoch,
    }
}

fn errors(response: &AlterPartitionResponse) -> Vec<ErrorCode> {
    response.topics[0]
        .partitions
        .iter()
        .map(|p| p.error)
        .collect()
}

fn change(
    topic_id: Uuid,
    partition: i32,
    replicas: &[i32],
    isr: &[i32],
    leader: i32,
    epochs: (i32, i32),
) -> MetadataRecord {
    MetadataRecord::PartitionChange(PartitionChangeRecord {
        topic_id,
        partition,
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        leader,
        leader_epoch: epochs.0,
        partition_epoch: epochs.1,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    })
}

#[test]
fn the_leader_shrinks_and_expands_the_isr() {
    let mut image = cluster(&[1, 2, 3]);
    let t = add_topic(&mut image, "t", 1, &[(&[1, 2, 3], &[1, 2, 3], 1)]);
    let shrink = alter_partition(&image, &alter(1, t, vec![data(0, 0, &[1, 2], 0)]));
    assert_eq!(
        shrink.records,
        vec![change(t, 0, &[1, 2, 3], &[1, 2], 1, (0, 1))]
    );
    assert_eq!(
        shrink.response.topics[0].partitions[0],
        AlterPartitionResult {
            partition: 0,
            error: ErrorCode::None,
            leader_id: 1,
            leader_epoch: 0,
            isr: vec![1, 2],
            partition_epoch: 1,
        }
    );
    apply_all(&mut image, &shrink.records);
    let expand = alter_partition(&image, &alter(1, t, vec![data(0, 0, &[1, 2, 3], 1)]));
    assert_eq!(
        expand.records,
        vec![change(t, 0, &[1, 2, 3], &[1, 2, 3], 1, (0, 2))]
    );
}

#[test]
fn an_unchanged_isr_is_answered_without_a_record() {
    let mut image = cluster(&[1, 2]);
    let t = add_topic(&mut image, "t", 1, &[(&[1, 2], &[1, 2], 1)]);
    let decision = alter_partition(&image, &alter(1, t, vec![data(0, 0, &[1, 2], 0)]));
    assert!(decision.records.is_empty());
    assert_eq!(errors(&decision.response), vec![ErrorCode::None]);
}

/// Kafka's checks, one partition each: not the leader, stale and future leader epochs, a
/// stale partition epoch, a fenced, unknown or non-replica ISR member, an ISR without the
/// leader, an unknown partition, and a partition named twice.
#[test]
fn stale_or_ineligible_changes_are_refused_with_kafkas_codes() {
    let mut image = cluster(&[1, 2, 3, 4]);
    add_broker(&mut image, 5, None, true);
    let p = (&[1, 2, 3, 5][..], &[1, 2, 3][..], 1);
    let t = add_topic(&mut image, "t", 1, &[p, p, p, p, p, p, p, p, p]);
    let not_leader = alter(2, t, vec![data(0, 0, &[2, 3], 0)]);
    assert_eq!(
        errors(&alter_partition(&image, &not_leader).response),
        vec![ErrorCode::NotLeaderOrFollower]
    );
    let request = alter(
        1,
        t,
        vec![
            data(0, -1, &[1, 2], 0),
            data(1, 1, &[1, 2], 0),
            data(2, 0, &[1, 2], -1),
            data(3, 0, &[1, 2, 5], 0),
            data(4, 0, &[1, 2, 9], 0),
            data(5, 0, &[1, 2, 4], 0),
            data(6, 0, &[2, 3], 0),
            data(42, 0, &[1], 0),
            data(7, 0, &[1, 2], 0),
            data(7, 0, &[1, 3], 0),
        ],
    );
    let decision = alter_partition(&image, &request);
    assert_eq!(
        errors(&decision.response),
        vec![
            ErrorCode::FencedLeaderEpoch,
            ErrorCode::NotLeaderOrFollower,
            ErrorCode::InvalidUpdateVersion,
            ErrorCode::IneligibleReplica,
            ErrorCode::IneligibleReplica,
            ErrorCode::IneligibleReplica,
            ErrorCode::InvalidRequest,
            ErrorCode::UnknownTopicOrPartition,
            ErrorCode::None,
            ErrorCode::InvalidRequest,
        ]
    );
    assert_eq!(
        decision.records,
        vec![change(t, 7, &[1, 2, 3, 5], &[1, 2], 1, (0, 1))]
    );
    // A refused partition reports the controller's current state so the leader can catch up.
    assert_eq!(decision.response.topics[0].partitions[0].isr, vec![1, 2, 3]);
}

#[test]
fn a_stale_broker_epoch_or_unknown_topic_is_refused() {
    let mut image = cluster(&[1]);
    let t = add_topic(&mut image, "t", 1, &[(&[1], &[1], 1)]);
    let mut stale = alter(1, t, vec![data(0, 0, &[1], 0)]);
    stale.broker_epoch = 3;
    let decision = alter_partition(&image, &stale);
    assert_eq!(decision.response.error, ErrorCode::StaleBrokerEpoch);
    assert!(decision.records.is_empty());
    let unknown = alter(1, Uuid::from_u128(77), vec![data(0, 0, &[1], 0)]);
    assert_eq!(
        errors(&alter_partition(&image, &unknown).response),
        vec![ErrorCode::UnknownTopicId]
    );
}

fn reassign(partition: i32, replicas: Option<&[i32]>) -> AlterPartitionReassignmentsRequest {
    AlterPartitionReassignmentsRequest {
        topics: vec![ReassignableTopic {
            name: "t".into(),
            partitions: vec![ReassignablePartition {
                partition,
                replicas: replicas.map(<[i32]>::to_vec),
            }],
        }],
    }
}

#[test]
fn a_reassignment_adds_replicas_then_completes_when_they_join_the_isr() {
    let mut image = cluster(&[1, 2, 3, 4]);
    let t = add_topic(&mut image, "t", 1, &[(&[1, 2], &[1, 2], 1)]);
    let start = alter_partition_reassignments(&image, &reassign(0, Some(&[3, 4])));
    assert_eq!(
        start.records,
        vec![MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: t,
            partition: 0,
            replicas: vec![3, 4, 1, 2],
            isr: vec![1, 2],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 1,
            adding_replicas: vec![3, 4],
            removing_replicas: vec![1, 2],
        })]
    );
    assert_eq!(start.response.results[0].error, ErrorCode::None);
    apply_all(&mut image, &start.records);
    // 3 catches up: still waiting for 4.
    let partial = alter_partition(&image, &alter(1, t, vec![data(0, 0, &[1, 2, 3], 1)]));
    apply_all(&mut image, &partial.records);
    assert!(image.partition(t, 0).unwrap().is_reassigning());
    // 4 catches up: the move completes and leadership leaves the removed broker 1.
    let done = alter_partition(&image, &alter(1, t, vec![data(0, 0, &[1, 2, 3, 4], 2)]));
    assert_eq!(
        done.records,
        vec![change(t, 0, &[3, 4], &[3, 4], 3, (1, 3))]
    );
    assert_eq!(done.response.topics[0].partitions[0].leader_id, 3);
}

#[test]
fn a_reassignment_within_the_isr_completes_at_once() {
    let mut image = cluster(&[1, 2, 3]);
    let t = add_topic(&mut image, "t", 1, &[(&[1, 2, 3], &[1, 2, 3], 1)]);
    let decision = alter_partition_reassignments(&image, &reassign(0, Some(&[2, 3])));
    assert_eq!(
        decision.records,
        vec![change(t, 0, &[2, 3], &[2, 3], 2, (1, 1))]
    );
}

#[test]
fn cancelling_restores_the_original_replicas() {
    let mut image = cluster(&[1, 2, 3]);
    let t = add_topic(&mut image, "t", 1, &[(&[1, 2], &[1, 2], 1)]);
    let start = alter_partition_reassignments(&image, &reassign(0, Some(&[2, 3])));
    apply_all(&mut image, &start.records);
    let cancel = alter_partition_reassignments(&image, &reassign(0, None));
    // Kafka's revert keeps the merged order (target first), so the set, not the order, returns.
    assert_eq!(
        cancel.records,
        vec![change(t, 0, &[2, 1], &[1, 2], 1, (0, 2))]
    );
    apply_all(&mut image, &cancel.records);
    let again = alter_partition_reassignments(&image, &reassign(0, None));
    assert!(again.records.is_empty());
    assert_eq!(
        again.response.results[0].error,
        ErrorCode::NoReassignmentInProgress
    );
}

#[test]
fn invalid_targets_are_refused() {
    let mut image = cluster(&[1, 2]);
    add_topic(&mut image, "t", 1, &[(&[1], &[1], 1)]);
    for (partition, target, error) in [
        (0, &[][..], ErrorCode::InvalidReplicaAssignment),
        (0, &[1, 1][..], ErrorCode::InvalidReplicaAssignment),
        (0, &[9][..], ErrorCode::InvalidReplicaAssignment),
        (5, &[1][..], ErrorCode::UnknownTopicOrPartition),
    ] {
        let decision = alter_partition_reassignments(&image, &reassign(partition, Some(target)));
        assert!(decision.records.is_empty(), "{target:?}");
        assert_eq!(decision.response.results[0].error, error, "{target:?}");
    }
}

#[test]
fn target_checks_follow_kafka_order_and_words() {
    let registered = |b: i32| (1..=3).contains(&b);
    assert_eq!(check_target_replicas(&[2, 1, 3], registered), Ok(()));
    assert_eq!(
        check_target_replicas(&[], registered).unwrap_err(),
        "The manual partition assignment includes an empty replica list."
    );
    assert_eq!(
        check_target_replicas(&[9, 1, 1], registered).unwrap_err(),
        "The manual partition assignment includes the broker 1 more than once."
    );
    assert_eq!(
        check_target_replicas(&[9, 2], registered).unwrap_err(),
        "The manual partition assignment includes broker 9, but no such broker is registered."
    );
}
