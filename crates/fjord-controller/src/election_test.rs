//! Leader and ISR changes on fence, unfence and ElectLeaders, asserted record by record.

use super::*;
use crate::api::TopicPartitions;
use crate::image::UNCLEAN_LEADER_ELECTION_ENABLE;
use crate::testing::{add_broker, add_topic, apply_all, cluster, set_topic_config};

fn change(
    topic_id: Uuid,
    partition: i32,
    replicas: &[i32],
    isr: &[i32],
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
) -> MetadataRecord {
    MetadataRecord::PartitionChange(PartitionChangeRecord {
        topic_id,
        partition,
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        leader,
        leader_epoch,
        partition_epoch,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    })
}

fn fence(broker_id: i32) -> MetadataRecord {
    MetadataRecord::FenceBroker {
        broker_id,
        broker_epoch: i64::from(broker_id) * 10,
    }
}

fn unfence(broker_id: i32) -> MetadataRecord {
    MetadataRecord::UnfenceBroker {
        broker_id,
        broker_epoch: i64::from(broker_id) * 10,
    }
}

#[test]
fn fencing_the_leader_moves_leadership_to_the_first_live_isr_replica() {
    let mut image = cluster(&[1, 2, 3]);
    let t = add_topic(
        &mut image,
        "orders",
        7,
        &[
            (&[1, 2, 3], &[1, 2, 3], 1),
            (&[2, 1, 3], &[2, 1, 3], 2),
            (&[3, 2, 1], &[3, 2], 3),
        ],
    );
    let records = fence_broker(&image, 1, &Policy::default());
    assert_eq!(
        records,
        vec![
            fence(1),
            // Leader 1 gone: 2 is the first replica in the ISR; leader epoch bumps.
            change(t, 0, &[1, 2, 3], &[2, 3], 2, 1, 1),
            // Follower 1 leaves the ISR; the leader and its epoch stay.
            change(t, 1, &[2, 1, 3], &[2, 3], 2, 0, 1),
            // Not in the ISR: nothing to do for partition 2.
        ]
    );
    apply_all(&mut image, &records);
    assert!(!image.is_unfenced(1));
}

#[test]
fn the_first_replica_in_replica_order_wins_not_the_first_in_isr_order() {
    let mut image = cluster(&[1, 2, 3]);
    let t = add_topic(&mut image, "t", 1, &[(&[1, 3, 2], &[1, 2, 3], 1)]);
    assert_eq!(
        fence_broker(&image, 1, &Policy::default()),
        vec![fence(1), change(t, 0, &[1, 3, 2], &[2, 3], 3, 1, 1)]
    );
}

#[test]
fn fencing_the_last_isr_member_leaves_the_partition_leaderless_with_its_isr() {
    let mut image = cluster(&[1, 2]);
    let t = add_topic(&mut image, "t", 1, &[(&[1, 2], &[1], 1)]);
    assert_eq!(
        fence_broker(&image, 1, &Policy::default()),
        vec![fence(1), change(t, 0, &[1, 2], &[1], NO_LEADER, 1, 1)]
    );
}

#[test]
fn unclean_election_picks_a_live_replica_outside_the_isr() {
    let mut image = cluster(&[1, 2]);
    let t = add_topic(&mut image, "t", 1, &[(&[1, 2], &[1], 1)]);
    let unclean = Policy {
        unclean_leader_election_enable: true,
        ..Policy::default()
    };
    assert_eq!(
        fence_broker(&image, 1, &unclean),
        vec![fence(1), change(t, 0, &[1, 2], &[2], 2, 1, 1)]
    );
}

#[test]
fn the_topic_config_overrides_the_unclean_default() {
    let mut image = cluster(&[1, 2]);
    let t = add_topic(&mut image, "t", 1, &[(&[1, 2], &[1], 1)]);
    set_topic_config(&mut image, "t", UNCLEAN_LEADER_ELECTION_ENABLE, "true");
    assert_eq!(
        fence_broker(&image, 1, &Policy::default()),
        vec![fence(1), change(t, 0, &[1, 2], &[2], 2, 1, 1)]
    );
    set_topic_config(&mut image, "t", UNCLEAN_LEADER_ELECTION_ENABLE, "false");
    let unclean = Policy {
        unclean_leader_election_enable: true,
        ..Policy::default()
    };
    assert_eq!(
        fence_broker(&image, 1, &unclean),
        vec![fence(1), change(t, 0, &[1, 2], &[1], NO_LEADER, 1, 1)]
    );
}

#[test]
fn unclean_election_with_no_live_replica_leaves_the_partition_leaderless() {
    let mut image = cluster(&[1]);
    add_broker(&mut image, 2, None, true);
    let t = add_topic(&mut image, "t", 1, &[(&[1, 2], &[1], 1)]);
    let unclean = Policy {
        unclean_leader_election_enable: true,
        ..Policy::default()
    };
    assert_eq!(
        fence_broker(&image, 1, &unclean),
        vec![fence(1), change(t, 0, &[1, 2], &[1], NO_LEADER, 1, 1)]
    );
}

#[test]
fn fencing_a_fenced_or_unknown_broker_writes_nothing() {
    let mut image = cluster(&[1]);
    add_broker(&mut image, 2, None, true);
    assert!(fence_broker(&image, 2, &Policy::default()).is_empty());
    assert!(fence_broker(&image, 9, &Policy::default()).is_empty());
}

#[test]
fn unfencing_gives_leaderless_partitions_back_to_their_isr_member() {
    let mut image = cluster(&[1, 2]);
    let t = add_topic(
        &mut image,
        "t",
        1,
        &[
            (&[1, 2], &[1], 1),
            (&[2, 1], &[2, 1], 2),
            (&[1, 2], &[2], 2),
        ],
    );
    let records = fence_broker(&image, 1, &Policy::default());
    apply_all(&mut image, &records);
    assert_eq!(image.partition(t, 0).unwrap().leader, NO_LEADER);
    let records = unfence_broker(&image, 1, &Policy::default());
    assert_eq!(
        records,
        vec![
            unfence(1),
            // Only the leaderless partition changes; 1 rejoins other ISRs through the leader.
            change(t, 0, &[1, 2], &[1], 1, 2, 2),
        ]
    );
    apply_all(&mut image, &records);
    assert!(image.is_unfenced(1));
}

#[test]
fn unfencing_an_out_of_sync_replica_leads_only_when_unclean_is_allowed() {
    let mut image = cluster(&[2]);
    add_broker(&mut image, 1, None, true);
    let t = add_topic(&mut image, "t", 1, &[(&[1, 2], &[2], 2)]);
    let records = fence_broker(&image, 2, &Policy::default());
    apply_all(&mut image, &records);
    assert_eq!(
        unfence_broker(&image, 1, &Policy::default()),
        vec![unfence(1)]
    );
    set_topic_config(&mut image, "t", UNCLEAN_LEADER_ELECTION_ENABLE, "true");
    assert_eq!(
        unfence_broker(&image, 1, &Policy::default()),
        vec![unfence(1), change(t, 0, &[1, 2], &[1], 1, 2, 2)]
    );
}

fn elect(election_type: ElectionType, partitions: Option<&[(&str, i32)]>) -> ElectLeadersRequest {
    ElectLeadersRequest {
        election_type,
        topic_partitions: partitions.map(|ps| {
            ps.iter()
                .map(|(topic, p)| TopicPartitions {
                    topic: topic.to_string(),
                    partitions: vec![*p],
                })
                .collect()
        }),
    }
}

fn outcomes(response: &ElectLeadersResponse) -> Vec<(String, i32, ErrorCode)> {
    response
        .results
        .iter()
        .map(|r| (r.topic.clone(), r.partition, r.error))
        .collect()
}

#[test]
fn preferred_election_moves_leadership_back_to_the_first_replica() {
    let mut image = cluster(&[1, 2, 3]);
    let t = add_topic(
        &mut image,
        "t",
        1,
        &[
            (&[1, 2, 3], &[1, 2, 3], 2),
            (&[2, 1, 3], &[2, 1, 3], 2),
            (&[3, 1, 2], &[1, 2], 1),
        ],
    );
    let request = elect(
        ElectionType::Preferred,
        Some(&[("t", 0), ("t", 1), ("t", 2), ("t", 9), ("x", 0)]),
    );
    let decision = elect_leaders(&image, &request, &Policy::default());
    assert_eq!(
        decision.records,
        vec![change(t, 0, &[1, 2, 3], &[1, 2, 3], 1, 1, 1)]
    );
    assert_eq!(
        outcomes(&decision.response),
        vec![
            ("t".into(), 0, ErrorCode::None),
            ("t".into(), 1, ErrorCode::ElectionNotNeeded),
            ("t".into(), 2, ErrorCode::PreferredLeaderNotAvailable),
            ("t".into(), 9, ErrorCode::UnknownTopicOrPartition),
            ("x".into(), 0, ErrorCode::UnknownTopicOrPartition),
        ]
    );
}

#[test]
fn preferred_election_of_everything_reports_only_what_needed_it() {
    let mut image = cluster(&[1, 2]);
    add_broker(&mut image, 3, None, true);
    let t = add_topic(
        &mut image,
        "t",
        1,
        &[
            (&[1, 2], &[1, 2], 2),
            (&[2, 1], &[2, 1], 2),
            (&[3, 1], &[3, 1], 1),
        ],
    );
    let decision = elect_leaders(
        &image,
        &elect(ElectionType::Preferred, None),
        &Policy::default(),
    );
    assert_eq!(
        decision.records,
        vec![change(t, 0, &[1, 2], &[1, 2], 1, 1, 1)]
    );
    assert_eq!(
        outcomes(&decision.response),
        vec![
            ("t".into(), 0, ErrorCode::None),
            ("t".into(), 2, ErrorCode::PreferredLeaderNotAvailable),
        ]
    );
}

#[test]
fn unclean_election_request_revives_a_leaderless_partition() {
    let mut image = cluster(&[2]);
    add_broker(&mut image, 1, None, true);
    add_broker(&mut image, 3, None, true);
    let t = add_topic(
        &mut image,
        "t",
        1,
        &[
            (&[1, 2], &[1], NO_LEADER),
            (&[2], &[2], 2),
            (&[1, 3], &[1], NO_LEADER),
        ],
    );
    let request = elect(ElectionType::Unclean, Some(&[("t", 0), ("t", 1), ("t", 2)]));
    let decision = elect_leaders(&image, &request, &Policy::default());
    assert_eq!(decision.records, vec![change(t, 0, &[1, 2], &[2], 2, 1, 1)]);
    assert_eq!(
        outcomes(&decision.response),
        vec![
            ("t".into(), 0, ErrorCode::None),
            ("t".into(), 1, ErrorCode::ElectionNotNeeded),
            ("t".into(), 2, ErrorCode::EligibleLeadersNotAvailable),
        ]
    );
}

#[test]
fn change_record_bumps_only_the_partition_epoch_when_the_leader_stays() {
    let before = PartitionImage {
        replicas: vec![1, 2],
        isr: vec![1, 2],
        leader: 1,
        leader_epoch: 4,
        partition_epoch: 9,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    };
    let mut after = before.clone();
    assert_eq!(change_record(Uuid::nil(), 0, &before, after.clone()), None);
    after.isr = vec![1];
    let record = change_record(Uuid::nil(), 0, &before, after.clone()).unwrap();
    assert_eq!((record.leader_epoch, record.partition_epoch), (4, 10));
    after.leader = 2;
    let record = change_record(Uuid::nil(), 0, &before, after).unwrap();
    assert_eq!((record.leader_epoch, record.partition_epoch), (5, 10));
}
