//! One partition hosted by this broker: its log, plus the watches that wake long-polling fetches
//! and acks=all producers.
//!
//! The log sits behind a `std::sync::Mutex` that is never held across an `.await`: appends and
//! read planning take it briefly, while copying fetched bytes and fsync happen outside it, so
//! readers never hold up the writer.

use std::sync::{Arc, Mutex, MutexGuard};

use fjord_protocol::batch::{
    build_batch, decode_records, BatchHeader, BatchIter, BatchSpec, RecordSpec,
};
use fjord_storage::{AbortedTxn, AppendInfo, IoVerb, Log, ReadPlan, StorageError};
use tokio::sync::watch;

use crate::internal_topic::marker_is_commit;
use crate::replica_state::Role;

#[path = "partition_replication.rs"]
mod replication;
use crate::producer_state::{BatchMetadata, ProducerStates, ProducerSummary, SequenceCheck};
pub use replication::ReplicaRead;

/// A failed partition operation.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// The log refused or failed the operation.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The partition is being deleted or the broker is shutting down.
    #[error("partition {0} is no longer served")]
    Closed(String),
    /// An idempotent batch breaks its producer's sequence or epoch.
    #[error(transparent)]
    Producer(#[from] ProducerError),
    /// This replica does not lead the partition (or no longer does, at the epoch asked for).
    #[error("this broker does not lead {0}")]
    NotLeader(String),
    /// This replica does not follow the partition (a follower write to a leader, or a fetch
    /// from a broker that is not a replica).
    #[error("{0}: not a follower write this replica accepts")]
    NotFollower(String),
    /// acks=all with fewer in-sync replicas than `min.insync.replicas`.
    #[error("{partition}: {isr} in-sync replicas, min.insync.replicas is {min}")]
    NotEnoughReplicas {
        /// The partition.
        partition: String,
        /// In-sync replicas now.
        isr: usize,
        /// What the topic asks for.
        min: usize,
    },
    /// The records were written, but the ISR shrank below `min.insync.replicas` before they
    /// were replicated.
    #[error("{partition}: in-sync replicas fell below min.insync.replicas after the append")]
    NotEnoughReplicasAfterAppend {
        /// The partition.
        partition: String,
    },
}

/// Why an idempotent batch was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProducerError {
    /// A gap in the producer's sequence numbers.
    #[error("producer {producer_id}: expected sequence {expected}, got {got}")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The sequence that would have been next.
        expected: i32,
        /// The batch's first sequence.
        got: i32,
    },
    /// A transaction marker from a coordinator older than the one whose marker came last.
    #[error("producer {producer_id}: marker of coordinator epoch {got}, older than {current}")]
    CoordinatorFenced {
        /// The producer.
        producer_id: i64,
        /// The coordinator epoch the partition knows.
        current: i32,
        /// The marker's coordinator epoch.
        got: i32,
    },
    /// A producer epoch older than one already written: a fenced zombie.
    #[error("producer {producer_id}: epoch {got} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        /// The producer.
        producer_id: i64,
        /// The epoch the partition knows.
        current: i16,
        /// The batch's epoch.
        got: i16,
    },
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Written at new offsets.
    New(AppendInfo),
    /// A retry of an idempotent batch already written at these offsets; nothing was written.
    Duplicate(BatchMetadata),
}

impl Appended {
    /// First offset of the (original) batch.
    pub fn first_offset(&self) -> i64 {
        match self {
            Appended::New(info) => info.first_offset,
            Appended::Duplicate(b) => b.first_offset,
        }
    }

    /// Last offset of the (original) batch.
    pub fn last_offset(&self) -> i64 {
        match self {
            Appended::New(info) => info.last_offset,
            Appended::Duplicate(b) => b.last_offset,
        }
    }
}

fn batch_metadata(h: &BatchHeader) -> BatchMetadata {
    BatchMetadata {
        first_sequence: h.base_sequence,
        last_sequence: h.base_sequence.wrapping_add(h.last_offset_delta) & i32::MAX,
        first_offset: h.base_offset,
        last_offset: h.last_offset(),
    }
}

/// The aborted-transaction index entry for a transaction an abort marker just closed.
fn aborted_entry(states: &ProducerStates, txn: CompletedTxn) -> AbortedTxn {
    AbortedTxn {
        producer_id: txn.producer_id,
        first_offset: txn.first_offset,
        last_offset: txn.last_offset,
        last_stable_offset: states
            .first_unstable_offset()
            .unwrap_or(txn.last_offset + 1),
    }
}

use crate::producer_state::CompletedTxn;

/// Rebuilds producer state and open transactions (see `producer_state`): from the newest
/// producer snapshot, or the whole log when there is none, then the batches after it. Abort
/// markers after the snapshot are re-entered in the aborted-transaction index, which is only
/// written as durably as the log itself.
fn rebuild_producer_states(log: &mut Log, name: &str) -> Result<ProducerStates, StorageError> {
    let snapshot = match log.latest_producer_snapshot() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(partition = name, error = %e, "ignoring unreadable producer snapshot");
            None
        }
    };
    let (mut states, from) = match snapshot
        .map(|(offset, bytes)| (offset, ProducerStates::decode(&bytes)))
    {
        Some((offset, Ok(states))) => (states, offset),
        Some((_, Err(e))) => {
            tracing::warn!(partition = name, error = %e, "rebuilding producer state from the log");
            (ProducerStates::default(), log.log_start_offset())
        }
        None => (ProducerStates::default(), log.log_start_offset()),
    };
    let end = log.log_end_offset();
    let mut offset = from.max(log.log_start_offset());
    log.truncate_aborted_txns(offset)?;
    while offset < end {
        let plan = log.read(offset, 1 << 20, end)?;
        let mut bytes = Vec::with_capacity(plan.len());
        if plan.is_empty() {
            break;
        }
        plan.read_into(&mut bytes)
            .map_err(|e| StorageError::io(IoVerb::Read, name, e))?;
        replay_batches(&mut states, log, &bytes)?;
        offset = plan.next_offset().max(offset + 1);
    }
    Ok(states)
}

/// The coordinator epoch in a marker's value (version i16, then the epoch as i32); -1 (none)
/// when the value is missing or short.
fn marker_coordinator_epoch(value: Option<&[u8]>) -> i32 {
    value
        .and_then(|v| v.get(2..6))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(-1, i32::from_be_bytes)
}

/// Enters batches already in the log (replayed at open, or copied from a leader) into the
/// producer state: each producer's last batches and open transaction, and markers closing
/// transactions, aborts indexed for read_committed consumers.
fn replay_batches(
    states: &mut ProducerStates,
    log: &mut Log,
    bytes: &[u8],
) -> Result<(), StorageError> {
    for (h, batch) in BatchIter::headers_only(bytes).filter_map(Result::ok) {
        if !h.has_producer_id() {
            continue;
        }
        if h.is_control() {
            let marker = decode_records(batch).ok().and_then(|records| {
                let record = records.first()?;
                let commit = record.key.as_deref().and_then(marker_is_commit)?;
                Some((commit, marker_coordinator_epoch(record.value.as_deref())))
            });
            let Some((commit, coordinator_epoch)) = marker else {
                continue;
            };
            let done = states.complete_txn(
                h.producer_id,
                h.producer_epoch,
                coordinator_epoch,
                h.base_offset,
                h.max_timestamp,
            );
            if !commit {
                log.append_aborted_txn(aborted_entry(states, done))?;
            }
        } else {
            states.record(
                h.producer_id,
                h.producer_epoch,
                batch_metadata(&h),
                h.is_transactional(),
                h.max_timestamp,
            );
        }
    }
    Ok(())
}

/// Offsets a fetch needs besides the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// First offset still in the log.
    pub log_start_offset: i64,
    /// Offset the next record will get.
    pub log_end_offset: i64,
    /// Everything below it is on every in-sync replica; consumers read below it only. On a
    /// single node it is the log end offset.
    pub high_watermark: i64,
    /// The first offset of the oldest open transaction, or the high watermark: read_committed
    /// consumers see records below it only.
    pub last_stable_offset: i64,
}

/// A read for a read_committed consumer: the records stop at the last stable offset, and the
/// aborted transactions overlapping them are listed so the client can drop their records.
#[derive(Debug)]
pub struct CommittedRead {
    /// Whole batches below the last stable offset.
    pub plan: ReadPlan,
    /// The partition's offsets at the time of the read.
    pub offsets: PartitionOffsets,
    /// Aborted transactions with data in the range read.
    pub aborted: Vec<AbortedTxn>,
}

/// A partition of a topic and everything needed to serve it.
#[derive(Debug)]
pub struct Partition {
    /// `<topic>-<index>`, for logs and errors.
    pub name: String,
    /// Partition index within the topic.
    pub index: i32,
    log: Mutex<Option<Log>>,
    /// Locked only while the log lock is held (log, then producers).
    producers: Mutex<ProducerStates>,
    log_end_offset: watch::Sender<i64>,
    durable_offset: watch::Sender<i64>,
    /// Cluster mode: the high watermark, which consumers and acks=all wait on. Also sent
    /// (unchanged) when the role changes, so waiters re-check it. On a single node it is
    /// not used: the high watermark is the log end.
    high_watermark: watch::Sender<i64>,
    /// Whether this is a replica in a cluster (else the single node's only copy).
    clustered: bool,
    /// Leader, follower or offline; taken after the log lock when both are needed.
    role: Mutex<Role>,
    /// Log end offset when the producer snapshot was last written; unchanged means no new one
    /// is needed.
    snapshot_end: Mutex<i64>,
}

impl Partition {
    /// Wraps an opened log as a single node's only copy, rebuilding its producer and
    /// transaction state.
    pub fn new(topic: &str, index: i32, log: Log) -> Result<Arc<Partition>, StorageError> {
        Partition::open(topic, index, log, false)
    }

    /// Wraps an opened log as a replica in a cluster. It serves nobody until it is told to
    /// lead or follow; its high watermark starts at the log start and is learned again
    /// from the leader (or, as leader, from the followers' fetches).
    pub fn new_replica(topic: &str, index: i32, log: Log) -> Result<Arc<Partition>, StorageError> {
        Partition::open(topic, index, log, true)
    }

    fn open(
        topic: &str,
        index: i32,
        mut log: Log,
        clustered: bool,
    ) -> Result<Arc<Partition>, StorageError> {
        let name = format!("{topic}-{index}");
        let end = log.log_end_offset();
        let durable = log.recovery_point().min(end);
        let producers = rebuild_producer_states(&mut log, &name)?;
        let start = log.log_start_offset();
        Ok(Arc::new(Partition {
            name,
            index,
            log: Mutex::new(Some(log)),
            producers: Mutex::new(producers),
            log_end_offset: watch::Sender::new(end),
            durable_offset: watch::Sender::new(durable),
            snapshot_end: Mutex::new(-1),
            high_watermark: watch::Sender::new(start),
            clustered,
            role: Mutex::new(if clustered {
                Role::Offline { leader_epoch: -1 }
            } else {
                Role::Solo
            }),
        }))
    }

    fn role(&self) -> MutexGuard<'_, Role> {
        self.role.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The leader epoch to stamp on an append, or why this replica may not append.
    fn leading_epoch(&self) -> Result<Option<i32>, PartitionError> {
        match &*self.role() {
            Role::Solo => Ok(None),
            Role::Leader(l) => Ok(Some(l.leader_epoch)),
            _ => Err(PartitionError::NotLeader(self.name.clone())),
        }
    }

    fn producers(&self) -> MutexGuard<'_, ProducerStates> {
        self.producers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks the log. A poisoned lock only means another request panicked mid-call; the log's
    /// own invariants are checked on every operation, so serving continues.
    fn lock(&self) -> MutexGuard<'_, Option<Log>> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the open log.
    pub fn with_log<T>(
        &self,
        f: impl FnOnce(&mut Log) -> Result<T, StorageError>,
    ) -> Result<T, PartitionError> {
        let mut guard = self.lock();
        let log = guard
            .as_mut()
            .ok_or_else(|| PartitionError::Closed(self.name.clone()))?;
        Ok(f(log)?)
    }

    /// Runs `f` on the open log with the partition's last stable offset, for work that must not
    /// look past open transactions (compaction).
    pub fn with_log_and_last_stable_offset<T>(
        &self,
        f: impl FnOnce(&mut Log, i64) -> Result<T, StorageError>,
    ) -> Result<T, PartitionError> {
        let mut guard = self.lock();
        let log = guard
            .as_mut()
            .ok_or_else(|| PartitionError::Closed(self.name.clone()))?;
        let stable = self.offsets_of(log).last_stable_offset;
        Ok(f(log, stable)?)
    }

    /// Appends producer batches and wakes fetches waiting for data.
    /// Idempotent batches are checked against their producer's sequence first: a retry of a
    /// batch already written is answered with its original offsets and not written again.
    pub fn append(&self, records: &mut [u8], now_ms: i64) -> Result<Appended, PartitionError> {
        let mut guard = self.lock();
        let log = guard
            .as_mut()
            .ok_or_else(|| PartitionError::Closed(self.name.clone()))?;
        let epoch = self.leading_epoch()?;
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        let mut idempotent = false;
        for (h, _) in BatchIter::headers_only(records).filter_map(Result::ok) {
            if !h.has_producer_id() {
                continue;
            }
            idempotent = true;
            if h.base_sequence < 0 {
                // A coordinator's transactional write (offsets): no sequence to check, but a
                // fenced producer's epoch is still refused.
                if let Err(current) = producers.check_epoch(h.producer_id, h.producer_epoch) {
                    return Err(ProducerError::InvalidProducerEpoch {
                        producer_id: h.producer_id,
                        current,
                        got: h.producer_epoch,
                    }
                    .into());
                }
                continue;
            }
            let meta = batch_metadata(&h);
            match producers.check(
                h.producer_id,
                h.producer_epoch,
                meta.first_sequence,
                meta.last_sequence,
            ) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate(original) => return Ok(Appended::Duplicate(original)),
                SequenceCheck::StaleEpoch { current } => {
                    return Err(ProducerError::InvalidProducerEpoch {
                        producer_id: h.producer_id,
                        current,
                        got: h.producer_epoch,
                    }
                    .into())
                }
                SequenceCheck::OutOfOrder { expected } => {
                    return Err(ProducerError::OutOfOrderSequence {
                        producer_id: h.producer_id,
                        expected,
                        got: meta.first_sequence,
                    }
                    .into())
                }
            }
        }
        let info = match epoch {
            Some(epoch) => log.append_with_leader_epoch(records, epoch, now_ms)?,
            None => log.append(records, now_ms)?,
        };
        if idempotent {
            // Offsets are now assigned in place; remember each batch where it landed.
            for (h, _) in BatchIter::headers_only(records).filter_map(Result::ok) {
                if h.has_producer_id() {
                    producers.record(
                        h.producer_id,
                        h.producer_epoch,
                        batch_metadata(&h),
                        h.is_transactional(),
                        now_ms,
                    );
                }
            }
        }
        drop(producers);
        self.after_leader_append(log);
        drop(guard);
        self.log_end_offset.send_replace(info.last_offset + 1);
        Ok(Appended::New(info))
    }

    /// Writes a transaction marker (a control batch) for `producer_id` and returns its offset.
    /// An abort also enters the transaction in the aborted-transaction index, so read_committed
    /// consumers are told to drop its records.
    pub fn write_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<i64, PartitionError> {
        let mut guard = self.lock();
        let log = guard
            .as_mut()
            .ok_or_else(|| PartitionError::Closed(self.name.clone()))?;
        let epoch = self.leading_epoch()?;
        let mut producers = self.producers();
        producers
            .check_epoch(producer_id, producer_epoch)
            .map_err(|current| ProducerError::InvalidProducerEpoch {
                producer_id,
                current,
                got: producer_epoch,
            })?;
        producers
            .check_coordinator_epoch(producer_id, coordinator_epoch)
            .map_err(|current| ProducerError::CoordinatorFenced {
                producer_id,
                current,
                got: coordinator_epoch,
            })?;
        // Kafka's EndTransactionMarker: key = version 0 + type (0 abort, 1 commit); value =
        // version 0 + the epoch of the coordinator that wrote it.
        let mut value = vec![0, 0];
        value.extend_from_slice(&coordinator_epoch.to_be_bytes());
        let record = RecordSpec {
            timestamp: now_ms,
            key: Some(vec![0, 0, 0, u8::from(commit)]),
            value: Some(value),
            headers: Vec::new(),
        };
        let spec = BatchSpec {
            producer_id,
            producer_epoch,
            is_transactional: true,
            is_control: true,
            ..BatchSpec::default()
        };
        let mut batch = build_batch(&spec, &[record]);
        let info = match epoch {
            Some(epoch) => log.append_with_leader_epoch(&mut batch, epoch, now_ms)?,
            None => log.append(&mut batch, now_ms)?,
        };
        let done = producers.complete_txn(
            producer_id,
            producer_epoch,
            coordinator_epoch,
            info.first_offset,
            now_ms,
        );
        if !commit {
            log.append_aborted_txn(aborted_entry(&producers, done))?;
        }
        drop(producers);
        self.after_leader_append(log);
        drop(guard);
        self.log_end_offset.send_replace(info.last_offset + 1);
        Ok(info.first_offset)
    }

    fn offsets_of(&self, log: &Log) -> PartitionOffsets {
        let end = log.log_end_offset();
        let high_watermark = if self.clustered {
            (*self.high_watermark.borrow()).clamp(log.log_start_offset(), end)
        } else {
            end
        };
        let stable = self
            .producers()
            .first_unstable_offset()
            .unwrap_or(high_watermark);
        PartitionOffsets {
            log_start_offset: log.log_start_offset(),
            log_end_offset: end,
            high_watermark,
            last_stable_offset: stable.min(high_watermark),
        }
    }

    /// Plans a consumer's read of whole batches from `offset`, below the high watermark; the
    /// bytes are copied by the caller.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<(ReadPlan, PartitionOffsets), PartitionError> {
        self.with_log(|log| {
            let offsets = self.offsets_of(log);
            let plan = log.read(offset, max_bytes, offsets.high_watermark)?;
            Ok((plan, offsets))
        })
    }

    /// Plans a read of this replica's own log up to its end, past the high watermark: for a
    /// coordinator loading its state on becoming leader, which takes over the whole log.
    pub fn read_to_log_end(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<(ReadPlan, PartitionOffsets), PartitionError> {
        self.with_log(|log| {
            let offsets = self.offsets_of(log);
            let plan = log.read(offset, max_bytes, offsets.log_end_offset)?;
            Ok((plan, offsets))
        })
    }

    /// Plans a read for a read_committed consumer (see [`CommittedRead`]).
    pub fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<CommittedRead, PartitionError> {
        self.with_log(|log| {
            let offsets = self.offsets_of(log);
            let plan = log.read(offset, max_bytes, offsets.last_stable_offset)?;
            let upper = if plan.is_empty() {
                offset
            } else {
                plan.next_offset()
            };
            let aborted = if upper > offset {
                log.aborted_txns(offset, upper)
            } else {
                Vec::new()
            };
            Ok(CommittedRead {
                plan,
                offsets,
                aborted,
            })
        })
    }

    /// Current log start, end and last stable offsets.
    pub fn offsets(&self) -> Result<PartitionOffsets, PartitionError> {
        self.with_log(|log| Ok(self.offsets_of(log)))
    }

    /// The producers this partition knows, for DescribeProducers.
    pub fn producers_summary(&self) -> Vec<ProducerSummary> {
        self.producers().summaries()
    }

    /// Forgets producers idle past `expiration_ms` and saves the producer state, so a restart
    /// reads the log only from here. Skipped when nothing was written since the last snapshot.
    pub fn snapshot_producers(
        &self,
        now_ms: i64,
        expiration_ms: i64,
    ) -> Result<(), PartitionError> {
        let mut guard = self.lock();
        let Some(log) = guard.as_mut() else {
            return Ok(());
        };
        let mut producers = self.producers();
        let expired = producers.expire(now_ms, expiration_ms);
        let end = log.log_end_offset();
        let mut last = self.snapshot_end.lock().unwrap_or_else(|p| p.into_inner());
        if *last == end && expired == 0 {
            return Ok(());
        }
        let bytes = producers.encode();
        drop(producers);
        log.write_producer_snapshot(end, &bytes)?;
        *last = end;
        Ok(())
    }

    /// A receiver that changes whenever the log end offset moves, for long-polling fetches.
    pub fn subscribe_log_end(&self) -> watch::Receiver<i64> {
        self.log_end_offset.subscribe()
    }

    /// A receiver of the offset below which everything is fsynced, for acks=all producers.
    pub fn subscribe_durable(&self) -> watch::Receiver<i64> {
        self.durable_offset.subscribe()
    }

    /// Makes everything appended so far durable. Called by the flusher only: the fsync runs
    /// without the log lock, so appends continue meanwhile and the next flush picks them up.
    pub fn flush(&self) -> Result<(), PartitionError> {
        let target = self.with_log(|log| Ok(log.flush_target()))?;
        let up_to = target.up_to_offset();
        target.sync().map_err(|source| {
            PartitionError::Storage(StorageError::io(IoVerb::Sync, self.name.clone(), source))
        })?;
        self.with_log(|log| {
            log.mark_flushed(up_to);
            Ok(())
        })?;
        self.durable_offset.send_if_modified(|d| {
            let changed = up_to > *d;
            *d = (*d).max(up_to);
            changed
        });
        Ok(())
    }

    /// The offset up to which data is known durable, for the recovery-point checkpoint.
    pub fn recovery_point(&self) -> Option<i64> {
        self.lock().as_ref().map(|log| log.recovery_point())
    }

    /// Saves the producer state and closes the log cleanly; later calls see
    /// [`PartitionError::Closed`].
    pub fn close(&self) -> Result<(), PartitionError> {
        let mut guard = self.lock();
        if let Some(mut log) = guard.take() {
            let bytes = self.producers().encode();
            let end = log.log_end_offset();
            if let Err(e) = log.write_producer_snapshot(end, &bytes) {
                tracing::warn!(partition = %self.name, error = %e, "could not save producer state");
            }
            log.close()?;
        }
        Ok(())
    }

    /// Removes the log from disk; later calls see [`PartitionError::Closed`].
    pub fn delete(&self) -> Result<(), PartitionError> {
        if let Some(log) = self.lock().take() {
            log.delete()?;
        }
        // Wake waiters so they notice the partition is gone.
        self.log_end_offset.send_modify(|_| {});
        self.durable_offset.send_modify(|_| {});
        self.high_watermark.send_modify(|_| {});
        Ok(())
    }

    /// Whether the log is still open.
    pub fn is_open(&self) -> bool {
        self.lock().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_storage::LogConfig;

    fn open(dir: &std::path::Path) -> Arc<Partition> {
        let log = Log::open(dir, LogConfig::default(), 0, 0).unwrap();
        Partition::new("t", 0, log).unwrap()
    }

    /// A batch of `n` records from `producer` at `epoch` starting at sequence `seq` (-1: none).
    fn batch(producer: i64, epoch: i16, seq: i32, n: usize, transactional: bool) -> Vec<u8> {
        let records: Vec<RecordSpec> = (0..n)
            .map(|i| RecordSpec {
                timestamp: 1,
                key: None,
                value: Some(vec![i as u8]),
                headers: Vec::new(),
            })
            .collect();
        let spec = BatchSpec {
            producer_id: producer,
            producer_epoch: epoch,
            base_sequence: seq,
            is_transactional: transactional,
            ..BatchSpec::default()
        };
        build_batch(&spec, &records)
    }

    #[test]
    fn open_transactions_hold_back_the_last_stable_offset_and_aborts_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path());
        p.append(&mut batch(-1, -1, -1, 2, false), 1).unwrap(); // 0..=1 plain
        p.append(&mut batch(7, 0, 0, 3, true), 1).unwrap(); // 2..=4 txn of 7
        p.append(&mut batch(8, 0, 0, 2, true), 1).unwrap(); // 5..=6 txn of 8
        let offsets = p.offsets().unwrap();
        assert_eq!((offsets.last_stable_offset, offsets.log_end_offset), (2, 7));
        assert_eq!(p.read_committed(0, 1 << 20).unwrap().plan.next_offset(), 2);

        assert_eq!(p.write_marker(7, 0, false, 0, 2).unwrap(), 7); // abort 7
        assert_eq!(p.offsets().unwrap().last_stable_offset, 5);
        let read = p.read_committed(0, 1 << 20).unwrap();
        assert_eq!(read.plan.next_offset(), 5);
        assert_eq!(read.aborted.len(), 1);
        assert_eq!(
            (read.aborted[0].producer_id, read.aborted[0].first_offset),
            (7, 2)
        );

        assert_eq!(p.write_marker(8, 0, true, 0, 3).unwrap(), 8); // commit 8
        let read = p.read_committed(0, 1 << 20).unwrap();
        assert_eq!(read.offsets.last_stable_offset, 9);
        assert_eq!(read.plan.next_offset(), 9);
        // A read past the aborted transaction does not list it.
        assert!(p.read_committed(8, 1 << 20).unwrap().aborted.is_empty());
    }

    #[test]
    fn fenced_epochs_are_refused_for_markers_and_sequence_less_writes() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path());
        p.append(&mut batch(7, 3, 0, 1, true), 1).unwrap();
        assert!(matches!(
            p.write_marker(7, 2, false, 0, 1),
            Err(PartitionError::Producer(
                ProducerError::InvalidProducerEpoch { current: 3, .. }
            ))
        ));
        assert!(matches!(
            p.append(&mut batch(7, 2, -1, 1, true), 1),
            Err(PartitionError::Producer(
                ProducerError::InvalidProducerEpoch { .. }
            ))
        ));
        // The current epoch may write without a sequence, twice, without deduplication.
        assert!(matches!(
            p.append(&mut batch(7, 3, -1, 1, true), 1).unwrap(),
            Appended::New(_)
        ));
        assert!(matches!(
            p.append(&mut batch(7, 3, -1, 1, true), 1).unwrap(),
            Appended::New(_)
        ));
    }

    #[test]
    fn markers_of_a_deposed_coordinator_are_fenced_also_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let p = open(dir.path());
            p.append(&mut batch(7, 0, 0, 1, true), 1).unwrap();
            p.write_marker(7, 0, true, 3, 2).unwrap();
            p.append(&mut batch(7, 0, 1, 1, true), 3).unwrap();
            assert!(matches!(
                p.write_marker(7, 0, false, 2, 4),
                Err(PartitionError::Producer(ProducerError::CoordinatorFenced {
                    current: 3,
                    got: 2,
                    ..
                }))
            ));
            // No clean close: the epoch must come back from the marker in the log.
        }
        let p = open(dir.path());
        assert!(matches!(
            p.write_marker(7, 0, false, 2, 5),
            Err(PartitionError::Producer(
                ProducerError::CoordinatorFenced { .. }
            ))
        ));
        p.write_marker(7, 0, false, 4, 6).unwrap();
    }

    #[test]
    fn producer_state_survives_a_restart_through_the_snapshot_and_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let p = open(dir.path());
            p.append(&mut batch(7, 0, 0, 2, true), 1).unwrap(); // open txn at 0
            p.snapshot_producers(1, i64::MAX).unwrap();
            p.append(&mut batch(8, 0, 0, 1, true), 1).unwrap(); // open txn at 2, after the snapshot
            p.write_marker(7, 0, false, 0, 2).unwrap(); // abort 7 at 3, after the snapshot
                                                        // No clean close: the state after the snapshot must come from the log.
            drop(p);
        }
        let p = open(dir.path());
        let offsets = p.offsets().unwrap();
        assert_eq!(
            offsets.last_stable_offset, 2,
            "8's transaction is still open"
        );
        let read = p.read_committed(0, 1 << 20).unwrap();
        assert_eq!(
            read.aborted.len(),
            1,
            "the abort after the snapshot is indexed again"
        );
        // A retry of 8's batch is still recognised.
        assert!(matches!(
            p.append(&mut batch(8, 0, 0, 1, true), 1).unwrap(),
            Appended::Duplicate(_)
        ));
    }
}
