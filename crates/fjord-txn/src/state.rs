//! One transactional id's state, as Kafka's `TransactionMetadata` keeps it.

use std::collections::BTreeSet;

/// Kafka's "no producer id" (`RecordBatch.NO_PRODUCER_ID`).
pub const NO_PRODUCER_ID: i64 = -1;
/// Kafka's "no producer epoch" (`RecordBatch.NO_PRODUCER_EPOCH`).
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// A topic partition taking part in a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// Shorthand constructor.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

/// Kafka's `TransactionState`; the discriminant is the `transaction_status` byte persisted in
/// `__transaction_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionState {
    /// No transaction open; the producer id and epoch are allocated.
    Empty = 0,
    /// Partitions have been added; data may be in flight.
    Ongoing = 1,
    /// EndTxn(commit) is durable; commit markers are being written.
    PrepareCommit = 2,
    /// EndTxn(abort), a fence or a timeout is durable; abort markers are being written.
    PrepareAbort = 3,
    /// Commit markers are written.
    CompleteCommit = 4,
    /// Abort markers are written.
    CompleteAbort = 5,
    /// The id expired and is being removed; never served.
    Dead = 6,
    /// Kafka's transient "fence the current epoch" step. Kafka only holds it as a pending
    /// state and persists `PrepareAbort`; Fjord goes straight to `PrepareAbort` with the bumped
    /// epoch, so this value only appears if a log contains it.
    PrepareEpochFence = 7,
}

impl TransactionState {
    /// The persisted status byte.
    pub fn id(self) -> i8 {
        self as i8
    }

    /// The state for a persisted status byte.
    pub fn from_id(id: i8) -> Option<Self> {
        Some(match id {
            0 => Self::Empty,
            1 => Self::Ongoing,
            2 => Self::PrepareCommit,
            3 => Self::PrepareAbort,
            4 => Self::CompleteCommit,
            5 => Self::CompleteAbort,
            6 => Self::Dead,
            7 => Self::PrepareEpochFence,
            _ => return None,
        })
    }

    /// Kafka's name, as ListTransactions/DescribeTransactions report and filter it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
            Self::Dead => "Dead",
            Self::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// Everything the coordinator knows about one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMetadata {
    /// The id the producer configured (`transactional.id`).
    pub transactional_id: String,
    /// The producer id currently owning the id.
    pub producer_id: i64,
    /// The producer id before the last rotation (epoch exhaustion), so a retried
    /// InitProducerId of the rotated producer is recognised. Not persisted (value v0).
    pub last_producer_id: i64,
    /// The current epoch; requests with another epoch are fenced.
    pub producer_epoch: i16,
    /// The epoch before the last InitProducerId bump, so a retried InitProducerId whose answer
    /// was lost gets the same epoch back instead of being fenced. Not persisted (value v0).
    pub last_producer_epoch: i16,
    /// The producer's `transaction.timeout.ms`.
    pub transaction_timeout_ms: i32,
    /// Where the transaction is in its lifecycle.
    pub state: TransactionState,
    /// Partitions that need markers when the transaction ends.
    pub partitions: BTreeSet<TopicPartition>,
    /// When the first partition was added (-1 when no transaction is open); the timeout runs
    /// from here.
    pub start_timestamp_ms: i64,
    /// The last state change.
    pub last_update_timestamp_ms: i64,
}

impl TransactionMetadata {
    /// Kafka stops bumping at `Short.MaxValue - 1` and rotates to a new producer id, keeping one
    /// epoch spare for fencing.
    pub fn is_producer_epoch_exhausted(epoch: i16) -> bool {
        epoch >= i16::MAX - 1
    }
}
