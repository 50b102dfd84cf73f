//! Reading and writing the broker's internal topics (`__consumer_offsets`,
//! `__transaction_state`), shared by the coordinators' runtimes.
//!
//! Coordinators append their state changes as ordinary record batches and answer clients only
//! once those are durable; on start they replay the topic. Both steps are the same for every
//! coordinator, so they live here once.

use std::sync::Arc;
use std::time::Duration;

use fjord_protocol::batch::{decode_records, BatchIter};
use fjord_storage::{IoVerb, StorageError};
use kafka_protocol::ResponseError;

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
        let Ok(offsets) = partition.offsets() else {
            continue;
        };
        let mut offset = offsets.log_start_offset;
        while offset < offsets.log_end_offset {
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
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::marker_is_commit;

    #[test]
    fn marker_type_comes_from_the_key() {
        assert_eq!(marker_is_commit(&[0, 0, 0, 1]), Some(true));
        assert_eq!(marker_is_commit(&[0, 0, 0, 0]), Some(false));
        assert_eq!(marker_is_commit(&[0, 0, 0, 7]), None);
        assert_eq!(marker_is_commit(&[0, 0]), None);
    }
}
