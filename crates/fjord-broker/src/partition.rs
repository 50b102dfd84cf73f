//! One partition hosted by this broker: its log, plus the watches that wake long-polling fetches
//! and acks=all producers.
//!
//! The log sits behind a `std::sync::Mutex` that is never held across an `.await`: appends and
//! read planning take it briefly, while copying fetched bytes and fsync happen outside it, so
//! readers never hold up the writer.

use std::sync::{Arc, Mutex, MutexGuard};

use fjord_protocol::batch::{BatchHeader, BatchIter};
use fjord_storage::{AppendInfo, IoVerb, Log, ReadPlan, StorageError};
use tokio::sync::watch;

use crate::producer_state::{BatchMetadata, ProducerStates, SequenceCheck};

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
    /// Transactional batches need the transaction coordinator, which does not exist yet.
    #[error("transactional batches are not supported yet")]
    TransactionsUnsupported,
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

/// Rebuilds producer state from the newest segment's batches (see `producer_state`).
fn rebuild_producer_states(log: &Log) -> ProducerStates {
    let mut states = ProducerStates::default();
    let Some(&from) = log.segment_base_offsets().last() else {
        return states;
    };
    let end = log.log_end_offset();
    let mut offset = from.max(log.log_start_offset());
    while offset < end {
        let Ok(plan) = log.read(offset, 1 << 20, end) else {
            break;
        };
        let mut bytes = Vec::with_capacity(plan.len());
        if plan.is_empty() || plan.read_into(&mut bytes).is_err() {
            break;
        }
        for (h, _) in BatchIter::headers_only(&bytes).filter_map(Result::ok) {
            if h.has_producer_id() {
                states.record(h.producer_id, h.producer_epoch, batch_metadata(&h));
            }
        }
        offset = plan.next_offset().max(offset + 1);
    }
    states
}

/// Offsets a fetch needs besides the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// First offset still in the log.
    pub log_start_offset: i64,
    /// Offset the next record will get; on a single node also the high watermark.
    pub log_end_offset: i64,
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
}

impl Partition {
    /// Wraps an opened log.
    pub fn new(topic: &str, index: i32, log: Log) -> Arc<Partition> {
        let end = log.log_end_offset();
        let durable = log.recovery_point().min(end);
        let producers = rebuild_producer_states(&log);
        Arc::new(Partition {
            name: format!("{topic}-{index}"),
            index,
            log: Mutex::new(Some(log)),
            producers: Mutex::new(producers),
            log_end_offset: watch::Sender::new(end),
            durable_offset: watch::Sender::new(durable),
        })
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

    /// Appends producer batches and wakes fetches waiting for data.
    /// Idempotent batches are checked against their producer's sequence first: a retry of a
    /// batch already written is answered with its original offsets and not written again.
    pub fn append(&self, records: &mut [u8], now_ms: i64) -> Result<Appended, PartitionError> {
        let mut guard = self.lock();
        let log = guard
            .as_mut()
            .ok_or_else(|| PartitionError::Closed(self.name.clone()))?;
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        let mut idempotent = false;
        for (h, _) in BatchIter::headers_only(records).filter_map(Result::ok) {
            if !h.has_producer_id() {
                continue;
            }
            if h.is_transactional() {
                return Err(ProducerError::TransactionsUnsupported.into());
            }
            idempotent = true;
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
        let info = log.append(records, now_ms)?;
        if idempotent {
            // Offsets are now assigned in place; remember each batch where it landed.
            for (h, _) in BatchIter::headers_only(records).filter_map(Result::ok) {
                if h.has_producer_id() {
                    producers.record(h.producer_id, h.producer_epoch, batch_metadata(&h));
                }
            }
        }
        drop(producers);
        drop(guard);
        self.log_end_offset.send_replace(info.last_offset + 1);
        Ok(Appended::New(info))
    }

    /// Plans a read of whole batches from `offset`; the bytes are copied by the caller.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<(ReadPlan, PartitionOffsets), PartitionError> {
        self.with_log(|log| {
            let end = log.log_end_offset();
            let plan = log.read(offset, max_bytes, end)?;
            Ok((
                plan,
                PartitionOffsets {
                    log_start_offset: log.log_start_offset(),
                    log_end_offset: end,
                },
            ))
        })
    }

    /// Current log start and end offsets.
    pub fn offsets(&self) -> Result<PartitionOffsets, PartitionError> {
        self.with_log(|log| {
            Ok(PartitionOffsets {
                log_start_offset: log.log_start_offset(),
                log_end_offset: log.log_end_offset(),
            })
        })
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

    /// Closes the log cleanly; later calls see [`PartitionError::Closed`].
    pub fn close(&self) -> Result<(), PartitionError> {
        if let Some(log) = self.lock().take() {
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
        Ok(())
    }

    /// Whether the log is still open.
    pub fn is_open(&self) -> bool {
        self.lock().is_some()
    }
}
