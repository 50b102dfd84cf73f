//! ISR changes from partition leaders (AlterPartition) and replica reassignment
//! (AlterPartitionReassignments).
//!
//! A reassignment to target replicas `T` of a partition on replicas `R` runs in two steps, as
//! in Kafka:
//!
//! ```text
//!   start:    replicas = T ++ (R - T), adding = T - R, removing = R - T
//!   ...       the leader adds the new replicas to the ISR (AlterPartition) as they catch up
//!   complete: once adding ⊆ ISR: replicas = T, ISR = ISR - removing, adding = removing = []
//!             and, if the leader was removed, the first target replica in the ISR leads
//! ```
//!
//! The completion is checked whenever the ISR changes, so the AlterPartition that brings the
//! last new replica in sync also finishes the move. A new target replaces an ongoing
//! reassignment (computed from the original replicas); no target cancels it, restoring the
//! original replica set (in the merged order, target replicas first, as Kafka's revert does).

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::api::{
    AlterPartitionData, AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    AlterPartitionRequest, AlterPartitionResponse, AlterPartitionResult, AlterPartitionTopicResult,
    ReassignmentResult,
};
use crate::decision::Decision;
use crate::election::{change_record, choose_leader, Choice};
use crate::error_code::ErrorCode;
use crate::image::{MetadataImage, PartitionImage};
use crate::record::{MetadataRecord, PartitionChangeRecord, NO_LEADER};

/// Finishes the reassignment of `after` if every adding replica is in its ISR.
fn complete_if_caught_up(image: &MetadataImage, after: &mut PartitionImage) {
    if !after.is_reassigning() || !after.adding_replicas.iter().all(|r| after.isr.contains(r)) {
        return;
    }
    let removing = std::mem::take(&mut after.removing_replicas);
    let isr: Vec<i32> = after
        .isr
        .iter()
        .copied()
        .filter(|r| !removing.contains(r))
        .collect();
    if isr.is_empty() {
        after.removing_replicas = removing;
        return;
    }
    after.replicas.retain(|r| !removing.contains(r));
    after.isr = isr;
    after.adding_replicas.clear();
    if removing.contains(&after.leader) {
        after.leader =
            match choose_leader(&after.replicas, &after.isr, |b| image.is_unfenced(b), false) {
                Choice::Clean(b) => b,
                Choice::Unclean(_) | Choice::None => NO_LEADER,
            };
    }
}

/// The state of `before` with any ongoing reassignment undone: the original replicas and
/// the ISR restricted to them (kept whole if that would empty it).
fn reverted(image: &MetadataImage, before: &PartitionImage) -> PartitionImage {
    let mut after = before.clone();
    if !before.is_reassigning() {
        return after;
    }
    after
        .replicas
        .retain(|r| !before.adding_replicas.contains(r));
    let isr: Vec<i32> = before
        .isr
        .iter()
        .copied()
        .filter(|r| after.replicas.contains(r))
        .collect();
    if !isr.is_empty() {
        after.isr = isr;
    }
    after.adding_replicas.clear();
    after.removing_replicas.clear();
    if !after.replicas.contains(&after.leader) {
        after.leader =
            match choose_leader(&after.replicas, &after.isr, |b| image.is_unfenced(b), false) {
                Choice::Clean(b) => b,
                Choice::Unclean(_) | Choice::None => NO_LEADER,
            };
    }
    after
}

/// One partition of an AlterPartition: Kafka's checks, then the new ISR.
fn alter_one(
    image: &MetadataImage,
    broker_id: i32,
    topic_id: Uuid,
    data: &AlterPartitionData,
) -> Result<(PartitionImage, Option<PartitionChangeRecord>), (ErrorCode, Option<PartitionImage>)> {
    let before = image
        .partition(topic_id, data.partition)
        .ok_or((ErrorCode::UnknownTopicOrPartition, None))?;
    let refuse = |error| Err((error, Some(before.clone())));
    if before.leader != broker_id {
        return refuse(ErrorCode::NotLeaderOrFollower);
    }
    if data.leader_epoch < before.leader_epoch {
        return refuse(ErrorCode::FencedLeaderEpoch);
    }
    if data.leader_epoch > before.leader_epoch {
        return refuse(ErrorCode::NotLeaderOrFollower);
    }
    if data.partition_epoch != before.partition_epoch {
        return refuse(ErrorCode::InvalidUpdateVersion);
    }
    let distinct: BTreeSet<_> = data.new_isr.iter().collect();
    if distinct.len() != data.new_isr.len() || !data.new_isr.contains(&broker_id) {
        return refuse(ErrorCode::InvalidRequest);
    }
    let eligible = |r: &i32| before.replicas.contains(r) && image.is_unfenced(*r);
    if !data.new_isr.iter().all(eligible) {
        return refuse(ErrorCode::IneligibleReplica);
    }
    let mut after = before.clone();
    after.isr = data.new_isr.clone();
    complete_if_caught_up(image, &mut after);
    let record = change_record(topic_id, data.partition, before, after);
    Ok((before.clone(), record))
}

fn result_from(partition: i32, error: ErrorCode, state: &PartitionImage) -> AlterPartitionResult {
    AlterPartitionResult {
        partition,
        error,
        leader_id: state.leader,
        leader_epoch: state.leader_epoch,
        isr: state.isr.clone(),
        partition_epoch: state.partition_epoch,
    }
}

/// AlterPartition. The whole request is refused with STALE_BROKER_EPOCH when the broker is
/// unknown or re-registered since; otherwise each partition is judged on its own. A partition
/// named twice is refused the second time, since both changes were built on the same epoch.
pub fn alter_partition(
    image: &MetadataImage,
    request: &AlterPartitionRequest,
) -> Decision<AlterPartitionResponse> {
    let registered = image
        .broker(request.broker_id)
        .is_some_and(|b| b.broker_epoch == request.broker_epoch);
    if !registered {
        return Decision::answer(AlterPartitionResponse {
            error: ErrorCode::StaleBrokerEpoch,
            topics: Vec::new(),
        });
    }
    let mut records = Vec::new();
    let mut topics = Vec::new();
    let mut seen = BTreeSet::new();
    for topic in &request.topics {
        let mut partitions = Vec::new();
        for data in &topic.partitions {
            if image.topic_by_id(topic.topic_id).is_none() {
                partitions.push(AlterPartitionResult {
                    partition: data.partition,
                    error: ErrorCode::UnknownTopicId,
                    leader_id: NO_LEADER,
                    leader_epoch: -1,
                    isr: Vec::new(),
                    partition_epoch: -1,
                });
                continue;
            }
            let outcome = if seen.insert((topic.topic_id, data.partition)) {
                alter_one(image, request.broker_id, topic.topic_id, data)
            } else {
                Err((ErrorCode::InvalidRequest, None))
            };
            partitions.push(match outcome {
                Ok((_, Some(change))) => {
                    let result = AlterPartitionResult {
                        partition: data.partition,
                        error: ErrorCode::None,
                        leader_id: change.leader,
                        leader_epoch: change.leader_epoch,
                        isr: change.isr.clone(),
                        partition_epoch: change.partition_epoch,
                    };
                    records.push(MetadataRecord::PartitionChange(change));
                    result
                }
                Ok((unchanged, None)) => result_from(data.partition, ErrorCode::None, &unchanged),
                Err((error, Some(current))) => result_from(data.partition, error, &current),
                Err((error, None)) => AlterPartitionResult {
                    partition: data.partition,
                    error,
                    leader_id: NO_LEADER,
                    leader_epoch: -1,
                    isr: Vec::new(),
                    partition_epoch: -1,
                },
            });
        }
        topics.push(AlterPartitionTopicResult {
            topic_id: topic.topic_id,
            partitions,
        });
    }
    Decision {
        records,
        response: AlterPartitionResponse {
            error: ErrorCode::None,
            topics,
        },
    }
}

/// Kafka's message for a cancellation of a partition that is not being reassigned.
pub const NO_REASSIGNMENT_IN_PROGRESS: &str = "No partition reassignment is in progress.";

/// Kafka's checks of a target replica list (`validateManualPartitionAssignment`), in its
/// order and words: not empty, then per broker in id order registered and not named twice.
/// Public so that a single-node broker, whose only registered broker is itself, answers
/// exactly as a cluster does.
pub fn check_target_replicas(
    target: &[i32],
    registered: impl Fn(i32) -> bool,
) -> Result<(), String> {
    if target.is_empty() {
        return Err("The manual partition assignment includes an empty replica list.".into());
    }
    let mut sorted = target.to_vec();
    sorted.sort_unstable();
    let mut previous = None;
    for broker in sorted {
        if !registered(broker) {
            return Err(format!(
                "The manual partition assignment includes broker {broker}, but no such \
                 broker is registered."
            ));
        }
        if previous == Some(broker) {
            return Err(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            ));
        }
        previous = Some(broker);
    }
    Ok(())
}

/// One partition of an AlterPartitionReassignments.
fn reassign_one(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
    before: &PartitionImage,
    target: Option<&Vec<i32>>,
) -> Result<Option<MetadataRecord>, (ErrorCode, String)> {
    let Some(target) = target else {
        if !before.is_reassigning() {
            return Err((
                ErrorCode::NoReassignmentInProgress,
                NO_REASSIGNMENT_IN_PROGRESS.to_string(),
            ));
        }
        return Ok(
            change_record(topic_id, partition, before, reverted(image, before))
                .map(MetadataRecord::PartitionChange),
        );
    };
    check_target_replicas(target, |b| image.broker(b).is_some())
        .map_err(|message| (ErrorCode::InvalidReplicaAssignment, message))?;
    let base = reverted(image, before);
    let mut after = base.clone();
    if *target != base.replicas {
        after.adding_replicas = target
            .iter()
            .copied()
            .filter(|r| !base.replicas.contains(r))
            .collect();
        after.removing_replicas = base
            .replicas
            .iter()
            .copied()
            .filter(|r| !target.contains(r))
            .collect();
        after.replicas = target.clone();
        after
            .replicas
            .extend(after.removing_replicas.iter().copied());
        complete_if_caught_up(image, &mut after);
    }
    Ok(change_record(topic_id, partition, before, after).map(MetadataRecord::PartitionChange))
}

/// AlterPartitionReassignments: starts, replaces or cancels reassignments.
pub fn alter_partition_reassignments(
    image: &MetadataImage,
    request: &AlterPartitionReassignmentsRequest,
) -> Decision<AlterPartitionReassignmentsResponse> {
    let mut records = Vec::new();
    let mut results = Vec::new();
    let mut seen = BTreeSet::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            let outcome = match image
                .topic(&topic.name)
                .and_then(|t| Some((t.topic_id, t.partitions.get(&p.partition)?)))
            {
                None => Err((
                    ErrorCode::UnknownTopicOrPartition,
                    match image.topic(&topic.name) {
                        None => format!("Unable to find a topic named {}.", topic.name),
                        Some(_) => {
                            format!("Unable to find partition {}:{}.", topic.name, p.partition)
                        }
                    },
                )),
                Some((topic_id, _)) if !seen.insert((topic_id, p.partition)) => Err((
                    ErrorCode::InvalidRequest,
                    format!("{}-{} is named twice", topic.name, p.partition),
                )),
                Some((topic_id, before)) => {
                    reassign_one(image, topic_id, p.partition, before, p.replicas.as_ref())
                }
            };
            let (error, error_message) = match outcome {
                Ok(record) => {
                    records.extend(record);
                    (ErrorCode::None, None)
                }
                Err((error, message)) => (error, Some(message)),
            };
            results.push(ReassignmentResult {
                topic: topic.name.clone(),
                partition: p.partition,
                error,
                error_message,
            });
        }
    }
    Decision {
        records,
        response: AlterPartitionReassignmentsResponse { results },
    }
}

#[cfg(test)]
#[path = "reassignment_test.rs"]
mod tests;
