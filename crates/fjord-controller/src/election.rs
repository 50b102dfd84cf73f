//! Partition leadership: what happens to leaders and ISRs when a broker is fenced or
//! unfenced, and ElectLeaders (preferred and unclean).
//!
//! Kafka's rules (`PartitionChangeBuilder`):
//! - a new leader is the first replica, in replica order, that is live and in the ISR;
//! - with no such replica the partition goes leaderless (-1), unless unclean election is
//!   enabled, which takes the first live replica and makes it the whole ISR;
//! - the ISR is never emptied (KIP-841): when the last in-sync replica is fenced it stays in
//!   the ISR, so it can lead again, cleanly, when it comes back;
//! - the leader epoch grows with every leader change, the partition epoch with every change.

use uuid::Uuid;

use crate::api::{ElectLeadersRequest, ElectLeadersResponse, ElectionResult, ElectionType};
use crate::decision::{Decision, Policy};
use crate::error_code::ErrorCode;
use crate::image::{MetadataImage, PartitionImage};
use crate::record::{MetadataRecord, PartitionChangeRecord, NO_LEADER};

/// The record that moves `before` to `after`, with epochs bumped as Kafka does; `None` when
/// nothing changes. The epochs in `after` are ignored.
pub(crate) fn change_record(
    topic_id: Uuid,
    partition: i32,
    before: &PartitionImage,
    after: PartitionImage,
) -> Option<PartitionChangeRecord> {
    let same = after.replicas == before.replicas
        && after.isr == before.isr
        && after.leader == before.leader
        && after.adding_replicas == before.adding_replicas
        && after.removing_replicas == before.removing_replicas;
    if same {
        return None;
    }
    let leader_epoch = if after.leader != before.leader {
        before.leader_epoch + 1
    } else {
        before.leader_epoch
    };
    Some(PartitionChangeRecord {
        topic_id,
        partition,
        replicas: after.replicas,
        isr: after.isr,
        leader: after.leader,
        leader_epoch,
        partition_epoch: before.partition_epoch + 1,
        adding_replicas: after.adding_replicas,
        removing_replicas: after.removing_replicas,
    })
}

/// A leader chosen for a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    /// A live in-sync replica.
    Clean(i32),
    /// A live replica outside the ISR (data may be lost).
    Unclean(i32),
    /// Nobody can lead.
    None,
}

/// Kafka's leader choice: the first live replica in the ISR, else (if allowed) the first live
/// replica.
pub(crate) fn choose_leader(
    replicas: &[i32],
    isr: &[i32],
    live: impl Fn(i32) -> bool,
    unclean: bool,
) -> Choice {
    if let Some(&r) = replicas.iter().find(|r| isr.contains(r) && live(**r)) {
        return Choice::Clean(r);
    }
    if unclean {
        if let Some(&r) = replicas.iter().find(|r| live(**r)) {
            return Choice::Unclean(r);
        }
    }
    Choice::None
}

/// Sets `after`'s leader (and, for an unclean choice, ISR) from `choice`.
fn install(after: &mut PartitionImage, choice: Choice) {
    match choice {
        Choice::Clean(leader) => after.leader = leader,
        Choice::Unclean(leader) => {
            after.leader = leader;
            after.isr = vec![leader];
        }
        Choice::None => after.leader = NO_LEADER,
    }
}

/// Fences `broker_id`: the FenceBroker record, then one PartitionChange per partition that
/// loses its leader or an ISR member. Empty if the broker is unknown or already fenced.
pub fn fence_broker(image: &MetadataImage, broker_id: i32, policy: &Policy) -> Vec<MetadataRecord> {
    let Some(broker) = image.broker(broker_id).filter(|b| !b.fenced) else {
        return Vec::new();
    };
    let mut records = vec![MetadataRecord::FenceBroker {
        broker_id,
        broker_epoch: broker.broker_epoch,
    }];
    let live = |b: i32| b != broker_id && image.is_unfenced(b);
    for topic in image.topics().values() {
        let unclean =
            image.unclean_leader_election(topic.topic_id, policy.unclean_leader_election_enable);
        for (&partition, before) in &topic.partitions {
            if !before.replicas.contains(&broker_id) {
                continue;
            }
            let mut after = before.clone();
            if before.isr.contains(&broker_id) && before.isr.len() > 1 {
                after.isr.retain(|&r| r != broker_id);
            }
            if before.leader == broker_id {
                let choice = choose_leader(&before.replicas, &after.isr, live, unclean);
                install(&mut after, choice);
            }
            records.extend(
                change_record(topic.topic_id, partition, before, after)
                    .map(MetadataRecord::PartitionChange),
            );
        }
    }
    records
}

/// Unfences `broker_id`: the UnfenceBroker record, then leadership for every leaderless
/// partition it can now lead (cleanly from the ISR, or uncleanly where the topic allows).
/// Empty if the broker is unknown or not fenced.
pub fn unfence_broker(
    image: &MetadataImage,
    broker_id: i32,
    policy: &Policy,
) -> Vec<MetadataRecord> {
    let Some(broker) = image.broker(broker_id).filter(|b| b.fenced) else {
        return Vec::new();
    };
    let mut records = vec![MetadataRecord::UnfenceBroker {
        broker_id,
        broker_epoch: broker.broker_epoch,
    }];
    let live = |b: i32| b == broker_id || image.is_unfenced(b);
    for topic in image.topics().values() {
        let unclean =
            image.unclean_leader_election(topic.topic_id, policy.unclean_leader_election_enable);
        for (&partition, before) in &topic.partitions {
            if before.has_leader() || !before.replicas.contains(&broker_id) {
                continue;
            }
            let mut after = before.clone();
            install(
                &mut after,
                choose_leader(&before.replicas, &before.isr, live, unclean),
            );
            records.extend(
                change_record(topic.topic_id, partition, before, after)
                    .map(MetadataRecord::PartitionChange),
            );
        }
    }
    records
}

/// One partition's election: the record, or why there is none.
fn elect_one(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
    before: &PartitionImage,
    election_type: ElectionType,
) -> Result<MetadataRecord, ErrorCode> {
    let live = |b: i32| image.is_unfenced(b);
    let mut after = before.clone();
    match election_type {
        ElectionType::Preferred => {
            let preferred = *before
                .replicas
                .first()
                .ok_or(ErrorCode::PreferredLeaderNotAvailable)?;
            if before.leader == preferred {
                return Err(ErrorCode::ElectionNotNeeded);
            }
            if !before.isr.contains(&preferred) || !live(preferred) {
                return Err(ErrorCode::PreferredLeaderNotAvailable);
            }
            after.leader = preferred;
        }
        ElectionType::Unclean => {
            if before.has_leader() {
                return Err(ErrorCode::ElectionNotNeeded);
            }
            match choose_leader(&before.replicas, &before.isr, live, true) {
                Choice::None => return Err(ErrorCode::EligibleLeadersNotAvailable),
                choice => install(&mut after, choice),
            }
        }
    }
    change_record(topic_id, partition, before, after)
        .map(MetadataRecord::PartitionChange)
        .ok_or(ErrorCode::ElectionNotNeeded)
}

/// ElectLeaders. With `topic_partitions: None` every partition is considered and only those
/// that needed an election are reported, as Kafka does.
pub fn elect_leaders(
    image: &MetadataImage,
    request: &ElectLeadersRequest,
    _policy: &Policy,
) -> Decision<ElectLeadersResponse> {
    let mut records = Vec::new();
    let mut results = Vec::new();
    let mut push = |topic: &str, partition: i32, outcome: Result<MetadataRecord, ErrorCode>| {
        let error = match outcome {
            Ok(record) => {
                records.push(record);
                ErrorCode::None
            }
            Err(error) => error,
        };
        results.push(ElectionResult {
            topic: topic.to_string(),
            partition,
            error,
        });
    };
    match &request.topic_partitions {
        Some(requested) => {
            for tp in requested {
                for &partition in &tp.partitions {
                    let outcome = image
                        .topic(&tp.topic)
                        .and_then(|t| Some((t.topic_id, t.partitions.get(&partition)?)))
                        .ok_or(ErrorCode::UnknownTopicOrPartition)
                        .and_then(|(id, before)| {
                            elect_one(image, id, partition, before, request.election_type)
                        });
                    push(&tp.topic, partition, outcome);
                }
            }
        }
        None => {
            for topic in image.topics().values() {
                for (&partition, before) in &topic.partitions {
                    let outcome = elect_one(
                        image,
                        topic.topic_id,
                        partition,
                        before,
                        request.election_type,
                    );
                    if outcome != Err(ErrorCode::ElectionNotNeeded) {
                        push(&topic.name, partition, outcome);
                    }
                }
            }
        }
    }
    Decision {
        records,
        response: ElectLeadersResponse { results },
    }
}

#[cfg(test)]
#[path = "election_test.rs"]
mod tests;
