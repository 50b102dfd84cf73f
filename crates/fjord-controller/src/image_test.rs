//! Applying records to the image.

use super::*;
use crate::testing::{add_broker, add_topic, apply, cluster};

fn register(broker_id: i32, broker_epoch: i64) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id,
        broker_epoch,
        incarnation_id: Uuid::from_u128(5),
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092,
        }],
        rack: Some("r1".into()),
    })
}

#[test]
fn a_registration_starts_fenced_and_remembers_its_offset() {
    let mut image = MetadataImage::default();
    image.advance_to(17);
    image.apply(&register(3, 5)).unwrap();
    let broker = image.broker(3).unwrap();
    assert!(broker.fenced);
    assert_eq!(broker.registered_offset, 17);
    assert_eq!(broker.rack.as_deref(), Some("r1"));
    assert_eq!(image.next_broker_epoch(), 6);
    image
        .apply(&MetadataRecord::UnfenceBroker {
            broker_id: 3,
            broker_epoch: 5,
        })
        .unwrap();
    assert!(image.is_unfenced(3));
    assert_eq!(image.unfenced_brokers().count(), 1);
}

#[test]
fn offsets_never_go_back() {
    let mut image = MetadataImage::default();
    image.advance_to(9);
    image.advance_to(4);
    assert_eq!(image.offset(), 9);
}

#[test]
fn fencing_another_registration_is_refused_and_changes_nothing() {
    let mut image = MetadataImage::default();
    image.apply(&register(3, 5)).unwrap();
    let before = image.clone();
    let stale = MetadataRecord::UnfenceBroker {
        broker_id: 3,
        broker_epoch: 4,
    };
    assert_eq!(
        image.apply(&stale),
        Err(ImageError::StaleBrokerEpoch {
            broker_id: 3,
            current: 5,
            record: 4
        })
    );
    let unknown = MetadataRecord::FenceBroker {
        broker_id: 8,
        broker_epoch: 0,
    };
    assert_eq!(
        image.apply(&unknown),
        Err(ImageError::UnknownBroker { broker_id: 8 })
    );
    assert_eq!(image, before);
}

#[test]
fn topics_are_found_by_name_and_id_until_deleted() {
    let mut image = cluster(&[1, 2]);
    let id = add_topic(
        &mut image,
        "t",
        4,
        &[(&[1, 2], &[1, 2], 1), (&[2, 1], &[2], 2)],
    );
    assert_eq!(image.topic("t").unwrap().topic_id, id);
    assert_eq!(image.topic_by_id(id).unwrap().name, "t");
    assert_eq!(image.partition(id, 1).unwrap().isr, vec![2]);
    let again = MetadataRecord::CreateTopic(TopicRecord {
        name: "t".into(),
        topic_id: Uuid::from_u128(99),
        partitions: Vec::new(),
        configs: BTreeMap::new(),
    });
    assert_eq!(
        image.apply(&again),
        Err(ImageError::TopicExists { name: "t".into() })
    );
    apply(&mut image, MetadataRecord::DeleteTopic { topic_id: id });
    assert!(image.topic("t").is_none() && image.topic_by_id(id).is_none());
    assert_eq!(
        image.apply(&MetadataRecord::DeleteTopic { topic_id: id }),
        Err(ImageError::UnknownTopicId { topic_id: id })
    );
}

#[test]
fn partitions_must_come_in_sequence() {
    let mut image = cluster(&[1]);
    let id = add_topic(&mut image, "t", 4, &[(&[1], &[1], 1)]);
    let partition = |p| PartitionRecord {
        partition: p,
        replicas: vec![1],
        isr: vec![1],
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
    };
    let gap = MetadataRecord::CreatePartitions {
        topic_id: id,
        partitions: vec![partition(2)],
    };
    assert_eq!(
        image.apply(&gap),
        Err(ImageError::PartitionOutOfSequence {
            topic_id: id,
            expected: 1,
            partition: 2
        })
    );
    apply(
        &mut image,
        MetadataRecord::CreatePartitions {
            topic_id: id,
            partitions: vec![partition(1), partition(2)],
        },
    );
    assert_eq!(image.topic("t").unwrap().partitions.len(), 3);
}

#[test]
fn a_partition_change_overwrites_the_partition() {
    let mut image = cluster(&[1, 2]);
    let id = add_topic(&mut image, "t", 4, &[(&[1, 2], &[1, 2], 1)]);
    let change = PartitionChangeRecord {
        topic_id: id,
        partition: 0,
        replicas: vec![1, 2],
        isr: vec![2],
        leader: 2,
        leader_epoch: 1,
        partition_epoch: 1,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    };
    apply(&mut image, MetadataRecord::PartitionChange(change.clone()));
    let partition = image.partition(id, 0).unwrap();
    assert_eq!(
        (
            partition.leader,
            partition.leader_epoch,
            partition.partition_epoch
        ),
        (2, 1, 1)
    );
    let missing = PartitionChangeRecord {
        partition: 5,
        ..change
    };
    assert_eq!(
        image.apply(&MetadataRecord::PartitionChange(missing)),
        Err(ImageError::UnknownPartition {
            topic_id: id,
            partition: 5
        })
    );
}

#[test]
fn configs_are_set_and_removed_and_unclean_election_follows_them() {
    let mut image = cluster(&[1]);
    let id = add_topic(&mut image, "t", 4, &[(&[1], &[1], 1)]);
    let set = |resource: ConfigResource, value: Option<&str>| {
        MetadataRecord::Config(ConfigRecord {
            resource,
            name: UNCLEAN_LEADER_ELECTION_ENABLE.into(),
            value: value.map(String::from),
        })
    };
    assert!(!image.unclean_leader_election(id, false));
    assert!(image.unclean_leader_election(id, true));
    apply(&mut image, set(ConfigResource::Cluster, Some("true")));
    assert!(image.unclean_leader_election(id, false));
    apply(
        &mut image,
        set(ConfigResource::Topic("t".into()), Some("false")),
    );
    assert!(!image.unclean_leader_election(id, true));
    apply(&mut image, set(ConfigResource::Topic("t".into()), None));
    assert!(image.unclean_leader_election(id, false));
    apply(&mut image, set(ConfigResource::Broker(1), Some("true")));
    assert_eq!(image.configs(&ConfigResource::Broker(1)).len(), 1);
    apply(&mut image, set(ConfigResource::Broker(1), None));
    assert!(image.configs(&ConfigResource::Broker(1)).is_empty());
    assert_eq!(
        image.apply(&set(ConfigResource::Topic("zz".into()), Some("true"))),
        Err(ImageError::UnknownTopic { name: "zz".into() })
    );
}

#[test]
fn producer_id_blocks_only_move_forward() {
    let mut image = MetadataImage::default();
    let block = |next| {
        MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: 0,
            next_producer_id: next,
        })
    };
    apply(&mut image, block(1000));
    assert_eq!(image.next_producer_id(), 1000);
    assert_eq!(
        image.apply(&block(1000)),
        Err(ImageError::ProducerIdsWentBack {
            current: 1000,
            record: 1000
        })
    );
}

#[test]
fn the_image_and_records_survive_json_as_snapshots_and_log_entries_do() {
    let mut image = cluster(&[1, 2]);
    add_broker(&mut image, 3, Some("r"), true);
    let id = add_topic(&mut image, "t", 4, &[(&[1, 2], &[1, 2], 1)]);
    apply(
        &mut image,
        MetadataRecord::Config(ConfigRecord {
            resource: ConfigResource::Broker(2),
            name: "x".into(),
            value: Some("y".into()),
        }),
    );
    let json = serde_json::to_vec(&image).unwrap();
    let back: MetadataImage = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, image);
    let record = MetadataRecord::DeleteTopic { topic_id: id };
    let json = serde_json::to_string(&record).unwrap();
    assert_eq!(
        serde_json::from_str::<MetadataRecord>(&json).unwrap(),
        record
    );
}

#[test]
fn an_image_of_a_thousand_partitions_is_a_few_hundred_kib_of_json() {
    // Sent whole to broker-only nodes on every change: its size bounds what one change costs.
    let mut image = cluster(&[1, 2, 3, 4, 5, 6]);
    for t in 0..100 {
        let specs: Vec<(Vec<i32>, i32)> = (0..10)
            .map(|p| {
                let first = (t + p) % 6 + 1;
                let replicas = vec![first, first % 6 + 1, (first + 1) % 6 + 1];
                (replicas, first)
            })
            .collect();
        let specs: Vec<crate::testing::Spec<'_>> = specs
            .iter()
            .map(|(replicas, leader)| (replicas.as_slice(), replicas.as_slice(), *leader))
            .collect();
        add_topic(
            &mut image,
            &format!("topic-{t:03}"),
            1000 + t as u128,
            &specs,
        );
    }
    let partitions: usize = image.topics().values().map(|t| t.partitions.len()).sum();
    assert_eq!(partitions, 1000);
    let bytes = serde_json::to_vec(&image).unwrap().len();
    // About 150 bytes a partition (151 KB here), as documented in `wire`.
    assert!((100_000..200 * 1024).contains(&bytes), "{bytes} bytes");
}
