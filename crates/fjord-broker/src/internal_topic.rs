//! Reading and writing the broker's internal topics (`__consumer_offsets`,
//! `__transaction_state`), shared by the coordinators' runtimes.
//!
//! Coordinators append their state changes as ordinary record batches and answer clients only
//! once those are durable; they replay the topic to rebuild their state: all of it at start on
//! a single broker, and in cluster mode one partition at a time, when this broker becomes its
//! leader ([`LeadershipFeed`], [`moves`]). These steps are the same for every coordinator, so
//! they live here once.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use fjord_controller::record::NO_LEADER;
use fjord_controller::MetadataImage;
use fjord_protocol::batch::{decode_records, BatchIter};
use fjord_storage::{IoVerb, StorageError};
use kafka_protocol::ResponseError;
use tokio::sync::watch;

use crate::error::partition_error;
use crate::log_manager::{LogManager, Topic};
use crate::partition::{Partition, PartitionError};

/// How long a coordinator waits for its append to become durable before answering
/// REQUEST_TIMED_OUT.
const DURABLE_WAIT: Duration = Duration::from_secs(30);

/// One item of an internal topic, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InternalEntry {
    /// A record with a key (records without one are not coordinator state and are skipped).
    Record {
        /// Partition index it was read from.
        partition: i32,
        /// The producer, when the record was written inside a transaction.
        transactional_producer: Option<i64>,
        /// Record key.
        key: Vec<u8>,
        /// Record value; `None` is a tombstone.
        value: Option<Vec<u8>>,
    },
    /// A transaction marker.
    Marker {
        /// Partition index it was read from.
        partition: i32,
        /// The producer whose transaction ended.
        producer_id: i64,
        /// Commit (`true`) or abort.
        commit: bool,
    },
}

/// The control record type of a marker batch: key = version i16, type i16 (0 abort, 1 commit).
pub fn marker_is_commit(key: &[u8]) -> Option<bool> {
    match key {
        [_, _, 0, 0, ..] => Some(false),
        [_, _, 0, 1, ..] => Some(true),
        _ => None,
    }
}

/// Every entry of `topic`, partition by partition, in log order.
pub fn read_entries(topic: &Topic) -> Result<Vec<InternalEntry>, StorageError> {
    let mut out = Vec::new();
    for partition in topic.hosted() {
        if let Some(read) = read_partition(partition)? {
            out.extend(read.entries);
        }
    }
    Ok(out)
}

/// One partition of an internal topic as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRead {
    /// Its entries in log order.
    pub entries: Vec<InternalEntry>,
    /// The log end offset the read stopped at: what was appended from there on is not in
    /// `entries`.
    pub end_offset: i64,
}

/// Every entry of one partition in log order, up to its log end offset when the read starts;
/// `None` when the partition is closed.
pub fn read_partition(partition: &Partition) -> Result<Option<PartitionRead>, StorageError> {
    let mut out = Vec::new();
    {
        let Ok(offsets) = partition.offsets() else {
            return Ok(None);
        };
        let end = offsets.log_end_offset;
        let mut offset = offsets.log_start_offset;
        while offset < end {
            let (plan, _) = match partition.read_to_log_end(offset, 1 << 20) {
                Ok(r) => r,
                Err(PartitionError::Storage(e)) => return Err(e),
                Err(_) => break,
            };
            if plan.is_empty() {
                break;
            }
            let mut bytes = Vec::with_capacity(plan.len());
            plan.read_into(&mut bytes)
                .map_err(|e| StorageError::io(IoVerb::Read, &partition.name, e))?;
            for (header, batch) in BatchIter::headers_only(&bytes).filter_map(Result::ok) {
                if header.base_offset >= end {
                    // Appended after the read started.
                    offset = end;
                    break;
                }
                offset = header.last_offset() + 1;
                let records = match decode_records(batch) {
                    Ok(records) => records,
                    Err(e) => {
                        tracing::warn!(partition = %partition.name, error = %e, "skipping undecodable batch in an internal topic");
                        continue;
                    }
                };
                let index = partition.index;
                if header.is_control() {
                    for record in records {
                        if let Some(commit) = record.key.as_deref().and_then(marker_is_commit) {
                            out.push(InternalEntry::Marker {
                                partition: index,
                                producer_id: header.producer_id,
                                commit,
                            });
                        }
                    }
                    continue;
                }
                let transactional_producer =
                    header.is_transactional().then_some(header.producer_id);
                out.extend(records.into_iter().filter_map(|r| {
                    r.key.map(|key| InternalEntry::Record {
                        partition: index,
                        transactional_producer,
                        key,
                        value: r.value,
                    })
                }));
            }
            offset = offset.max(plan.next_offset());
        }
        Ok(Some(PartitionRead {
            entries: out,
            end_offset: end,
        }))
    }
}

/// Where a coordinator stands on one partition of its internal topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionLoad {
    /// This broker leads it at `leader_epoch` and is replaying its log: its groups or
    /// transactional ids answer COORDINATOR_LOAD_IN_PROGRESS.
    Loading {
        /// The leader epoch the replay is for.
        leader_epoch: i32,
    },
    /// Replayed as leader at `leader_epoch`: served from memory.
    Loaded {
        /// The leader epoch the replay was for.
        leader_epoch: i32,
    },
}

impl PartitionLoad {
    /// The leader epoch this state is for.
    pub fn leader_epoch(self) -> i32 {
        match self {
            Self::Loading { leader_epoch } | Self::Loaded { leader_epoch } => leader_epoch,
        }
    }
}

/// The partitions of an internal topic a coordinator has taken over, kept by its task and
/// read by request handlers, so they can answer NOT_COORDINATOR or
/// COORDINATOR_LOAD_IN_PROGRESS without a round trip to the task.
#[derive(Debug, Clone, Default)]
pub struct LoadedPartitions(Arc<RwLock<BTreeMap<i32, PartitionLoad>>>);

impl LoadedPartitions {
    /// Where the coordinator stands on `partition`; `None` when it has not taken it over.
    pub fn get(&self, partition: i32) -> Option<PartitionLoad> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&partition)
            .copied()
    }

    /// Every partition taken over.
    pub fn snapshot(&self) -> BTreeMap<i32, PartitionLoad> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records where the coordinator stands on `partition` (`None`: given up).
    pub(crate) fn set(&self, partition: i32, load: Option<PartitionLoad>) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        match load {
            Some(load) => map.insert(partition, load),
            None => map.remove(&partition),
        };
    }
}

/// The applied metadata image a coordinator follows in cluster mode, to take over the
/// partitions of its internal topic this broker comes to lead and give up the others.
#[derive(Debug, Clone)]
pub struct LeadershipFeed {
    /// This broker's `node.id`.
    pub node_id: i32,
    /// The image this broker has applied to its logs (a led partition's log is open here).
    pub applied: watch::Receiver<Arc<MetadataImage>>,
}

impl LeadershipFeed {
    /// The feed of a cluster node.
    pub fn of(cluster: &crate::cluster::ClusterNode) -> Self {
        Self {
            node_id: cluster.node_id(),
            applied: cluster.subscribe_applied(),
        }
    }

    /// The partitions of `topic` this broker leads in `image`, with their leader epochs.
    pub fn led_here(&self, image: &MetadataImage, topic: &str) -> BTreeMap<i32, i32> {
        image
            .topic(topic)
            .map(|t| {
                t.partitions
                    .iter()
                    .filter(|(_, p)| p.leader == self.node_id && p.leader != NO_LEADER)
                    .map(|(index, p)| (*index, p.leader_epoch))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A change of what a coordinator holds of its internal topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Take over (or take over again, the state held being possibly stale) `partition`, led
    /// here at `leader_epoch`: replay it from the local log.
    Load {
        /// The partition.
        partition: i32,
        /// Its leader epoch.
        leader_epoch: i32,
    },
    /// Give `partition` up: another broker (or none) leads it now.
    Unload {
        /// The partition.
        partition: i32,
    },
}

/// What to load and unload so that `held` follows `led_here` (partition → leader epoch of the
/// partitions led here): a partition led at an epoch other than the one held is loaded again,
/// since leadership may have moved away and back in between.
pub fn moves(held: &BTreeMap<i32, PartitionLoad>, led_here: &BTreeMap<i32, i32>) -> Vec<Move> {
    let unload = held
        .keys()
        .filter(|p| !led_here.contains_key(p))
        .map(|&partition| Move::Unload { partition });
    let load = led_here
        .iter()
        .filter(|(p, epoch)| held.get(p).is_none_or(|h| h.leader_epoch() != **epoch))
        .map(|(&partition, &leader_epoch)| Move::Load {
            partition,
            leader_epoch,
        });
    unload.chain(load).collect()
}

/// Waits for the next applied image; `None` once the feed has ended (shutdown), and never
/// without a feed (a single broker).
pub(crate) async fn next_image(feed: &mut Option<LeadershipFeed>) -> Option<Arc<MetadataImage>> {
    match feed {
        Some(feed) => match feed.applied.changed().await {
            Ok(()) => Some(feed.applied.borrow_and_update().clone()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

/// Appends one batch to an internal partition; returns the offset that must become durable.
/// Errors are the Kafka codes the coordinator answers with (a closed partition means this
/// broker no longer coordinates it).
pub fn append(partition: &Partition, batch: &mut [u8], now_ms: i64) -> Result<i64, i16> {
    let appended = partition.append(batch, now_ms).map_err(|e| match e {
        PartitionError::Closed(_) => ResponseError::NotCoordinator.code(),
        e => partition_error(&e).code(),
    })?;
    Ok(appended.last_offset() + 1)
}

/// Waits until `partition` is durable up to `end_offset`, asking the flusher for an fsync,
/// and (in a cluster) until every in-sync replica has it, as acks=all would.
pub async fn wait_durable(
    logs: &LogManager,
    partition: Arc<Partition>,
    end_offset: i64,
) -> Result<(), i16> {
    let leader_epoch = partition.leading_epoch_now();
    logs.flusher().request(partition.clone());
    let mut durable = partition.subscribe_durable();
    let reached = tokio::time::timeout(DURABLE_WAIT, async {
        let fsynced = durable
            .wait_for(|o| *o >= end_offset || !partition.is_open())
            .await
            .is_ok();
        if !fsynced || !partition.is_open() {
            return Err(ResponseError::NotCoordinator.code());
        }
        let Some(epoch) = leader_epoch else {
            return Err(ResponseError::NotCoordinator.code());
        };
        partition
            .wait_replicated(end_offset, 1, epoch)
            .await
            .map_err(|e| match e {
                PartitionError::NotEnoughReplicasAfterAppend { .. } => {
                    ResponseError::CoordinatorNotAvailable.code()
                }
                _ => ResponseError::NotCoordinator.code(),
            })
    })
    .await;
    reached.unwrap_or(Err(ResponseError::RequestTimedOut.code()))
}

/// Sends a command carrying a reply channel to a coordinator task and awaits the reply;
/// `None` when the task has stopped (shutdown).
pub(crate) async fn ask_task<C, T>(
    inbox: &tokio::sync::mpsc::Sender<C>,
    make: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> C,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    inbox.send(make(tx)).await.ok()?;
    rx.await.ok()
}

/// Sleeps until the coordinator's next deadline, or forever when it has none.
pub(crate) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How long a coordinator waits before reading a partition again after a failed read.
const LOAD_RETRY: Duration = Duration::from_millis(500);

/// Reads partition `partition` of internal topic `topic` as a coordinator loads it.
fn read_hosted(logs: &LogManager, topic: &str, partition: i32) -> Result<PartitionRead, String> {
    let log = logs
        .topic(topic)
        .and_then(|t| t.partition(partition).cloned())
        .ok_or_else(|| format!("{topic}-{partition} is not hosted here"))?;
    read_partition(&log)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{topic}-{partition} is closed"))
}

/// Reads `topic`-`partition` on the blocking pool, off the coordinator's task, and sends
/// `loaded(read)` to the coordinator's inbox.
pub(crate) fn spawn_partition_read<C: Send + 'static>(
    logs: Arc<LogManager>,
    inbox: tokio::sync::mpsc::Sender<C>,
    topic: &'static str,
    partition: i32,
    loaded: impl FnOnce(Result<PartitionRead, String>) -> C + Send + 'static,
) {
    tokio::spawn(async move {
        let read = tokio::task::spawn_blocking(move || read_hosted(&logs, topic, partition))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        let _ = inbox.send(loaded(read)).await;
    });
}

/// Sends `command` (a reload) to the coordinator's inbox after a pause, when a partition read
/// failed.
pub(crate) fn retry_load_later<C: Send + 'static>(
    inbox: Option<tokio::sync::mpsc::Sender<C>>,
    command: C,
) {
    if let Some(inbox) = inbox {
        tokio::spawn(async move {
            tokio::time::sleep(LOAD_RETRY).await;
            let _ = inbox.send(command).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{marker_is_commit, moves, Move, PartitionLoad};

    #[test]
    fn moves_follow_leadership_and_reload_on_a_new_epoch() {
        let held = BTreeMap::from([
            (0, PartitionLoad::Loaded { leader_epoch: 1 }),
            (1, PartitionLoad::Loading { leader_epoch: 2 }),
            (2, PartitionLoad::Loaded { leader_epoch: 3 }),
            (3, PartitionLoad::Loaded { leader_epoch: 0 }),
        ]);
        // 0 unchanged, 1 still loading at its epoch, 2 led again at a newer epoch, 3 moved
        // away, 4 newly led here.
        let led = BTreeMap::from([(0, 1), (1, 2), (2, 5), (4, 7)]);
        assert_eq!(
            moves(&held, &led),
            vec![
                Move::Unload { partition: 3 },
                Move::Load {
                    partition: 2,
                    leader_epoch: 5
                },
                Move::Load {
                    partition: 4,
                    leader_epoch: 7
                },
            ]
        );
        assert_eq!(moves(&BTreeMap::new(), &BTreeMap::new()), vec![]);
    }

    #[test]
    fn marker_type_comes_from_the_key() {
        assert_eq!(marker_is_commit(&[0, 0, 0, 1]), Some(true));
        assert_eq!(marker_is_commit(&[0, 0, 0, 0]), Some(false));
        assert_eq!(marker_is_commit(&[0, 0, 0, 7]), None);
        assert_eq!(marker_is_commit(&[0, 0]), None);
    }
}
