//! Replica placement for new partitions: Kafka's round-robin assignment
//! (`AdminUtils.assignReplicasToBrokers`), rack-aware when every broker has a rack.
//!
//! Partition `p` gets its first replica (the preferred leader) on broker
//! `(p + start_index) % n`, so leaders of a topic are spread evenly over the brokers; the
//! other replicas follow at a shift that changes every `n` partitions, so followers are
//! spread too. With racks, brokers are first interleaved by rack (`r1-a, r2-a, r3-a, r1-b,
//! ...`) and a replica skips any broker whose rack already holds one while some rack holds
//! none, so a partition survives the loss of a rack.
//!
//! The start index and shift are random in Kafka; here they are an input
//! ([`PlacementStart`]), drawn by the caller, so placement is a pure function.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// A broker that can receive replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementBroker {
    /// Broker id.
    pub broker_id: i32,
    /// `broker.rack`.
    pub rack: Option<String>,
}

/// Where the round-robin starts. Random per topic in Kafka, so that topics with few partitions
/// do not all put their leaders on the lowest broker id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlacementStart {
    /// Position, in the (rack-interleaved) broker list, of partition 0's leader.
    pub start_index: usize,
    /// Initial offset of the followers from the leader.
    pub replica_shift: usize,
}

impl PlacementStart {
    /// Draws the start from a (random) topic id, so the randomness comes from the same value
    /// that is written to the log.
    pub fn from_topic_id(topic_id: Uuid) -> Self {
        let bits = topic_id.as_u128();
        Self {
            start_index: (bits as u64 % 1_000_003) as usize,
            replica_shift: ((bits >> 64) as u64 % 1_000_003) as usize,
        }
    }
}

/// Why replicas could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// The replication factor is below 1 or above the number of usable brokers.
    #[error("replication factor {replication_factor} with {available} usable brokers")]
    InvalidReplicationFactor {
        /// Requested.
        replication_factor: i16,
        /// Usable (unfenced) brokers.
        available: usize,
    },
    /// The partition count is below 1.
    #[error("partition count {count} is below 1")]
    InvalidPartitions {
        /// Requested.
        count: i32,
    },
}

/// Replica lists for partitions `first_partition .. first_partition + count`, one list per
/// partition, each `replication_factor` long, first replica first.
///
/// `brokers` may come in any order; placement sorts them by id so the result depends only on
/// the set of brokers and `start`.
pub fn place_replicas(
    brokers: &[PlacementBroker],
    first_partition: i32,
    count: i32,
    replication_factor: i16,
    start: PlacementStart,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if count < 1 {
        return Err(PlacementError::InvalidPartitions { count });
    }
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf < 1 || rf > brokers.len() {
        return Err(PlacementError::InvalidReplicationFactor {
            replication_factor,
            available: brokers.len(),
        });
    }
    let mut sorted = brokers.to_vec();
    sorted.sort_by_key(|b| b.broker_id);
    let racked = sorted.iter().all(|b| b.rack.is_some());
    let partitions = (first_partition..first_partition + count).map(|p| p as usize);
    if racked {
        Ok(rack_aware(&sorted, partitions, rf, start))
    } else {
        let ids: Vec<i32> = sorted.iter().map(|b| b.broker_id).collect();
        Ok(rack_unaware(&ids, partitions, rf, start))
    }
}

/// Kafka's `replicaIndex`: the position of follower `j` of a partition led from `first`.
fn replica_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    (first + 1 + (shift + j) % (n - 1)) % n
}

fn rack_unaware(
    brokers: &[i32],
    partitions: impl Iterator<Item = usize>,
    rf: usize,
    start: PlacementStart,
) -> Vec<Vec<i32>> {
    let n = brokers.len();
    let start_index = start.start_index % n;
    let mut placed = Vec::new();
    for p in partitions {
        // Kafka bumps the shift every n partitions; computing it from p lets added
        // partitions continue exactly where the topic's first placement left off.
        let shift = start.replica_shift % n + p / n;
        let first = (p + start_index) % n;
        let mut replicas = vec![brokers[first]];
        for j in 0..rf - 1 {
            replicas.push(brokers[replica_index(first, shift, j, n)]);
        }
        placed.push(replicas);
    }
    placed
}

/// Brokers interleaved by rack: racks in name order, brokers within a rack in id order.
fn rack_alternated(brokers: &[PlacementBroker]) -> Vec<(i32, String)> {
    let mut by_rack: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        let rack = b.rack.clone().unwrap_or_default();
        by_rack.entry(rack).or_default().push(b.broker_id);
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut alternated = Vec::with_capacity(brokers.len());
    for i in 0..longest {
        for (rack, ids) in &by_rack {
            if let Some(id) = ids.get(i) {
                alternated.push((*id, rack.clone()));
            }
        }
    }
    alternated
}

fn rack_aware(
    brokers: &[PlacementBroker],
    partitions: impl Iterator<Item = usize>,
    rf: usize,
    start: PlacementStart,
) -> Vec<Vec<i32>> {
    let alternated = rack_alternated(brokers);
    let n = alternated.len();
    let num_racks = alternated
        .iter()
        .map(|(_, r)| r)
        .collect::<BTreeSet<_>>()
        .len();
    let start_index = start.start_index % n;
    let mut placed = Vec::new();
    for p in partitions {
        // Kafka bumps the shift every n partitions; computing it from p lets added
        // partitions continue exactly where the topic's first placement left off.
        let shift = start.replica_shift % n + p / n;
        let first = (p + start_index) % n;
        let (leader, leader_rack) = &alternated[first];
        let mut replicas = vec![*leader];
        let mut racks_used = BTreeSet::from([leader_rack.clone()]);
        let mut brokers_used = BTreeSet::from([*leader]);
        let mut k = 0;
        // Every broker other than the leader is visited once per n - 1 steps of k, so each
        // follower is found within that many steps.
        for _ in 0..rf - 1 {
            for _ in 0..n {
                let (broker, rack) = &alternated[replica_index(first, shift * num_racks, k, n)];
                k += 1;
                let rack_ok = !racks_used.contains(rack) || racks_used.len() == num_racks;
                let broker_ok = !brokers_used.contains(broker) || brokers_used.len() == n;
                if rack_ok && broker_ok {
                    replicas.push(*broker);
                    racks_used.insert(rack.clone());
                    brokers_used.insert(*broker);
                    break;
                }
            }
        }
        placed.push(replicas);
    }
    placed
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn brokers(ids: &[i32]) -> Vec<PlacementBroker> {
        ids.iter()
            .map(|&broker_id| PlacementBroker {
                broker_id,
                rack: None,
            })
            .collect()
    }

    fn racked(spec: &[(i32, &str)]) -> Vec<PlacementBroker> {
        spec.iter()
            .map(|&(broker_id, rack)| PlacementBroker {
                broker_id,
                rack: Some(rack.to_string()),
            })
            .collect()
    }

    fn start(start_index: usize, replica_shift: usize) -> PlacementStart {
        PlacementStart {
            start_index,
            replica_shift,
        }
    }

    /// The example of Kafka's `AdminUtils` doc comment: 5 brokers, 10 partitions, 3 replicas,
    /// start index 0 and shift 0.
    #[test]
    fn matches_kafkas_documented_round_robin() {
        let placed = place_replicas(&brokers(&[0, 1, 2, 3, 4]), 0, 10, 3, start(0, 0)).unwrap();
        let expected: Vec<Vec<i32>> = vec![
            vec![0, 1, 2],
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![3, 4, 0],
            vec![4, 0, 1],
            vec![0, 2, 3],
            vec![1, 3, 4],
            vec![2, 4, 0],
            vec![3, 0, 1],
            vec![4, 1, 2],
        ];
        assert_eq!(placed, expected);
    }

    #[test]
    fn leaders_and_replicas_are_balanced() {
        for s in 0..6 {
            let placed = place_replicas(&brokers(&[3, 1, 2]), 0, 6, 3, start(s, s * 7)).unwrap();
            let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
            let mut replicas: BTreeMap<i32, usize> = BTreeMap::new();
            for partition in &placed {
                *leaders.entry(partition[0]).or_default() += 1;
                for r in partition {
                    *replicas.entry(*r).or_default() += 1;
                }
                let distinct: BTreeSet<_> = partition.iter().collect();
                assert_eq!(distinct.len(), 3, "{partition:?}");
            }
            assert_eq!(
                leaders,
                BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
                "start {s}"
            );
            assert_eq!(replicas, BTreeMap::from([(1, 6), (2, 6), (3, 6)]));
        }
    }

    #[test]
    fn start_index_moves_the_first_leader() {
        let placed = place_replicas(&brokers(&[1, 2, 3]), 0, 1, 1, start(1, 0)).unwrap();
        assert_eq!(placed, vec![vec![2]]);
        let placed = place_replicas(&brokers(&[1, 2, 3]), 0, 1, 1, start(5, 0)).unwrap();
        assert_eq!(placed, vec![vec![3]]);
    }

    #[test]
    fn added_partitions_continue_the_sequence() {
        let all = place_replicas(&brokers(&[1, 2, 3, 4]), 0, 8, 2, start(2, 1)).unwrap();
        let tail = place_replicas(&brokers(&[1, 2, 3, 4]), 5, 3, 2, start(2, 1)).unwrap();
        assert_eq!(tail, all[5..].to_vec());
    }

    /// Kafka's `testAssignmentWithRackAware`: 6 brokers on 3 racks, every partition on 3
    /// distinct racks.
    #[test]
    fn replicas_of_a_partition_spread_over_racks_first() {
        let cluster = racked(&[
            (0, "rack1"),
            (1, "rack2"),
            (2, "rack2"),
            (3, "rack3"),
            (4, "rack3"),
            (5, "rack1"),
        ]);
        let rack_of: BTreeMap<i32, &str> = cluster
            .iter()
            .map(|b| (b.broker_id, b.rack.as_deref().unwrap()))
            .collect();
        for s in 0..6 {
            let placed = place_replicas(&cluster, 0, 6, 3, start(s, s)).unwrap();
            let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
            for partition in &placed {
                let racks: BTreeSet<_> = partition.iter().map(|b| rack_of[b]).collect();
                assert_eq!(racks.len(), 3, "{partition:?} spans {racks:?}");
                *leaders.entry(partition[0]).or_default() += 1;
            }
            assert_eq!(
                leaders.len(),
                6,
                "each broker leads one partition: {leaders:?}"
            );
        }
    }

    #[test]
    fn rack_alternated_list_interleaves_racks() {
        let cluster = racked(&[(0, "a"), (1, "a"), (2, "b"), (3, "c"), (4, "c"), (5, "a")]);
        let ids: Vec<i32> = rack_alternated(&cluster)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, vec![0, 2, 3, 1, 4, 5]);
    }

    #[test]
    fn more_replicas_than_racks_fills_racks_evenly() {
        let cluster = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b")]);
        let placed = place_replicas(&cluster, 0, 4, 3, start(0, 0)).unwrap();
        for partition in placed {
            let distinct: BTreeSet<_> = partition.iter().collect();
            assert_eq!(distinct.len(), 3);
            let in_a = partition.iter().filter(|b| **b <= 2).count();
            assert!((1..=2).contains(&in_a), "{partition:?}");
        }
    }

    #[test]
    fn a_broker_without_rack_turns_rack_awareness_off() {
        let mut cluster = racked(&[(1, "a"), (2, "a"), (3, "b")]);
        cluster[2].rack = None;
        let placed = place_replicas(&cluster, 0, 3, 2, start(0, 0)).unwrap();
        assert_eq!(placed, vec![vec![1, 2], vec![2, 3], vec![3, 1]]);
    }

    #[test]
    fn replication_factor_above_brokers_is_refused() {
        assert_eq!(
            place_replicas(&brokers(&[1, 2]), 0, 3, 3, start(0, 0)),
            Err(PlacementError::InvalidReplicationFactor {
                replication_factor: 3,
                available: 2
            })
        );
        assert_eq!(
            place_replicas(&brokers(&[1, 2]), 0, 3, 0, start(0, 0)),
            Err(PlacementError::InvalidReplicationFactor {
                replication_factor: 0,
                available: 2
            })
        );
        assert_eq!(
            place_replicas(&[], 0, 1, 1, start(0, 0)),
            Err(PlacementError::InvalidReplicationFactor {
                replication_factor: 1,
                available: 0
            })
        );
    }

    #[test]
    fn zero_partitions_is_refused() {
        assert_eq!(
            place_replicas(&brokers(&[1]), 0, 0, 1, start(0, 0)),
            Err(PlacementError::InvalidPartitions { count: 0 })
        );
    }

    #[test]
    fn single_broker_places_single_replicas() {
        let placed = place_replicas(&brokers(&[7]), 0, 3, 1, start(4, 9)).unwrap();
        assert_eq!(placed, vec![vec![7], vec![7], vec![7]]);
    }
}
