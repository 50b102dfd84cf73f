//! Leader elections and replica reassignments in cluster mode: decided by the active
//! controller, then waited for in the applied image so that the answer, and the client's
//! next request to this broker, see the new leaders and replica sets. Ongoing reassignments
//! are listed from the applied image.

use fjord_controller::api::{
    AlterPartitionReassignmentsRequest, ControllerRequest, ControllerResponse, ElectLeadersRequest,
    ElectionResult, ElectionType, ReassignablePartition, ReassignableTopic, ReassignmentResult,
    TopicPartitions,
};
use fjord_controller::{ErrorCode, MetadataImage, PartitionImage};

use super::admin::{unexpected, APPLY_WAIT};
use super::{partition_image, ClusterNode, Refusal};
use crate::error::controller_error;

/// One partition being reassigned, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    /// Partition index.
    pub partition: i32,
    /// The current replica set: the target replicas, then those being removed.
    pub replicas: Vec<i32>,
    /// Replicas being added.
    pub adding: Vec<i32>,
    /// Replicas being removed.
    pub removing: Vec<i32>,
}

/// The ongoing reassignments of `image`, by topic name: of every topic when `requested` is
/// `None`, else of the requested partitions. Topics without one are left out, as Kafka does;
/// unknown topics and partitions are ignored.
pub fn ongoing_reassignments(
    image: &MetadataImage,
    requested: Option<&[(String, Vec<i32>)]>,
) -> Vec<(String, Vec<OngoingReassignment>)> {
    let ongoing = |p: i32, state: &PartitionImage| {
        state.is_reassigning().then(|| OngoingReassignment {
            partition: p,
            replicas: state.replicas.clone(),
            adding: state.adding_replicas.clone(),
            removing: state.removing_replicas.clone(),
        })
    };
    let mut out = Vec::new();
    match requested {
        None => {
            for name in image.topic_ids().keys() {
                let Some(topic) = image.topic(name) else {
                    continue;
                };
                let partitions: Vec<_> = topic
                    .partitions
                    .iter()
                    .filter_map(|(p, state)| ongoing(*p, state))
                    .collect();
                if !partitions.is_empty() {
                    out.push((name.clone(), partitions));
                }
            }
        }
        Some(requested) => {
            for (name, indexes) in requested {
                let partitions: Vec<_> = indexes
                    .iter()
                    .filter_map(|p| ongoing(*p, partition_image(image, name, *p)?))
                    .collect();
                if !partitions.is_empty() {
                    out.push((name.clone(), partitions));
                }
            }
        }
    }
    out
}

impl ClusterNode {
    /// ElectLeaders through the controller. The results are the controller's: every
    /// requested partition in request order, or (`partitions: None`) only the partitions
    /// that needed an election. Returns once the applied image shows the elected leaders
    /// (bounded).
    pub async fn elect_leaders(
        &self,
        election_type: ElectionType,
        partitions: Option<Vec<TopicPartitions>>,
    ) -> Result<Vec<ElectionResult>, Refusal> {
        let request = ControllerRequest::ElectLeaders(ElectLeadersRequest {
            election_type,
            topic_partitions: partitions,
        });
        let results = match self.submit(request).await {
            Ok(ControllerResponse::ElectLeaders(r)) => r.results,
            Ok(other) => return Err(unexpected(&other)),
            Err(e) => return Err((controller_error(&e), e.to_string())),
        };
        let elected: Vec<(String, i32)> = results
            .iter()
            .filter(|r| r.error == ErrorCode::None)
            .map(|r| (r.topic.clone(), r.partition))
            .collect();
        if !elected.is_empty() {
            self.wait_applied(APPLY_WAIT, |image| {
                elected.iter().all(|(topic, partition)| {
                    partition_image(image, topic, *partition).is_none_or(|p| match election_type {
                        ElectionType::Preferred => p.replicas.first() == Some(&p.leader),
                        ElectionType::Unclean => p.has_leader(),
                    })
                })
            })
            .await;
        }
        Ok(results)
    }

    /// AlterPartitionReassignments through the controller: one result per partition in
    /// request order. Returns once the applied image shows each accepted change (bounded):
    /// a started move (target replicas first) or a cancellation.
    pub async fn alter_partition_reassignments(
        &self,
        topics: Vec<ReassignableTopic>,
    ) -> Result<Vec<ReassignmentResult>, Refusal> {
        let request =
            ControllerRequest::AlterPartitionReassignments(AlterPartitionReassignmentsRequest {
                topics: topics.clone(),
            });
        let results = match self.submit(request).await {
            Ok(ControllerResponse::AlterPartitionReassignments(r)) => r.results,
            Ok(other) => return Err(unexpected(&other)),
            Err(e) => return Err((controller_error(&e), e.to_string())),
        };
        let requested: Vec<&ReassignablePartition> =
            topics.iter().flat_map(|t| t.partitions.iter()).collect();
        let changed: Vec<(String, i32, Option<Vec<i32>>)> = results
            .iter()
            .zip(requested)
            .filter(|(r, _)| r.error == ErrorCode::None)
            .map(|(r, p)| (r.topic.clone(), r.partition, p.replicas.clone()))
            .collect();
        if !changed.is_empty() {
            self.wait_applied(APPLY_WAIT, |image| {
                changed.iter().all(|(topic, partition, target)| {
                    partition_image(image, topic, *partition).is_none_or(|p| match target {
                        Some(target) => p.replicas.starts_with(target),
                        None => !p.is_reassigning(),
                    })
                })
            })
            .await;
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use fjord_controller::record::{
        MetadataRecord, PartitionChangeRecord, PartitionRecord, RegisterBrokerRecord, TopicRecord,
    };
    use uuid::Uuid;

    use super::*;

    /// Brokers 1-3; topic `t` with partition 0 on [1] and partition 1 moving from [2] to
    /// [3] (replicas [3, 2], adding [3], removing [2]).
    fn image() -> MetadataImage {
        let topic_id = Uuid::from_u128(7);
        let mut records: Vec<MetadataRecord> = (1..=3)
            .map(|broker_id| {
                MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    broker_id,
                    broker_epoch: i64::from(broker_id),
                    incarnation_id: Uuid::from_u128(broker_id as u128),
                    listeners: Vec::new(),
                    rack: None,
                })
            })
            .collect();
        let partition = |partition, replica| PartitionRecord {
            partition,
            replicas: vec![replica],
            isr: vec![replica],
            leader: replica,
            leader_epoch: 0,
            partition_epoch: 0,
        };
        records.push(MetadataRecord::CreateTopic(TopicRecord {
            name: "t".into(),
            topic_id,
            partitions: vec![partition(0, 1), partition(1, 2)],
            configs: BTreeMap::new(),
        }));
        records.push(MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id,
            partition: 1,
            replicas: vec![3, 2],
            isr: vec![2],
            leader: 2,
            leader_epoch: 0,
            partition_epoch: 1,
            adding_replicas: vec![3],
            removing_replicas: vec![2],
        }));
        let mut image = MetadataImage::default();
        for record in &records {
            image.apply(record).expect("record applies");
        }
        image
    }

    #[test]
    fn only_moving_partitions_are_listed() {
        let image = image();
        let expected = vec![(
            "t".to_string(),
            vec![OngoingReassignment {
                partition: 1,
                replicas: vec![3, 2],
                adding: vec![3],
                removing: vec![2],
            }],
        )];
        assert_eq!(ongoing_reassignments(&image, None), expected);
        let asked = [
            ("t".to_string(), vec![0, 1, 9]),
            ("missing".to_string(), vec![0]),
        ];
        assert_eq!(ongoing_reassignments(&image, Some(&asked)), expected);
        let not_moving = [("t".to_string(), vec![0])];
        assert!(ongoing_reassignments(&image, Some(&not_moving)).is_empty());
    }
}
