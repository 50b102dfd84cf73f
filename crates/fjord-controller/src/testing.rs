//! Builders for unit tests: images reached through records only, as in production.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::decision::TopicIdSource;
use crate::image::MetadataImage;
use crate::record::{
    ConfigRecord, ConfigResource, MetadataRecord, PartitionRecord, RegisterBrokerRecord,
    TopicRecord,
};

/// Registers `broker_id` (epoch = id * 10, for recognisable numbers), unfenced unless
/// `fenced`.
pub(crate) fn add_broker(
    image: &mut MetadataImage,
    broker_id: i32,
    rack: Option<&str>,
    fenced: bool,
) {
    let broker_epoch = i64::from(broker_id) * 10;
    apply(
        image,
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id,
            broker_epoch,
            incarnation_id: Uuid::from_u128(broker_id as u128),
            listeners: Vec::new(),
            rack: rack.map(String::from),
        }),
    );
    if !fenced {
        apply(
            image,
            MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            },
        );
    }
}

/// An image with unfenced brokers `ids` and no racks.
pub(crate) fn cluster(ids: &[i32]) -> MetadataImage {
    let mut image = MetadataImage::default();
    for &id in ids {
        add_broker(&mut image, id, None, false);
    }
    image
}

/// One partition as (replicas, isr, leader), epochs 0.
pub(crate) type Spec<'a> = (&'a [i32], &'a [i32], i32);

/// Adds topic `name` with id `Uuid::from_u128(id)` and the given partitions.
pub(crate) fn add_topic(
    image: &mut MetadataImage,
    name: &str,
    id: u128,
    partitions: &[Spec<'_>],
) -> Uuid {
    let topic_id = Uuid::from_u128(id);
    apply(
        image,
        MetadataRecord::CreateTopic(TopicRecord {
            name: name.into(),
            topic_id,
            partitions: partitions
                .iter()
                .enumerate()
                .map(|(p, (replicas, isr, leader))| PartitionRecord {
                    partition: p as i32,
                    replicas: replicas.to_vec(),
                    isr: isr.to_vec(),
                    leader: *leader,
                    leader_epoch: 0,
                    partition_epoch: 0,
                })
                .collect(),
            configs: BTreeMap::new(),
        }),
    );
    topic_id
}

/// Sets a topic config.
pub(crate) fn set_topic_config(image: &mut MetadataImage, topic: &str, name: &str, value: &str) {
    apply(
        image,
        MetadataRecord::Config(ConfigRecord {
            resource: ConfigResource::Topic(topic.into()),
            name: name.into(),
            value: Some(value.into()),
        }),
    );
}

/// Applies a record that must fit.
pub(crate) fn apply(image: &mut MetadataImage, record: MetadataRecord) {
    image.apply(&record).unwrap();
}

/// Applies every record, in order.
pub(crate) fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) {
    for record in records {
        image.apply(record).unwrap();
    }
}

/// Topic ids 1, 2, 3, ... as UUIDs.
#[derive(Debug, Default)]
pub(crate) struct SequentialTopicIds(pub(crate) u128);

impl TopicIdSource for SequentialTopicIds {
    fn next_topic_id(&mut self) -> Uuid {
        self.0 += 1;
        Uuid::from_u128(self.0)
    }
}
