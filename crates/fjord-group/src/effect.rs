//! What the coordinator asks its runtime to do.
//!
//! The state machine never touches a socket, a log or a clock. Every call returns the effects
//! the runtime must carry out, in order; this is the "commands out" half of STYLE.md's
//! "events in, commands out".

use crate::api::Response;
use crate::records::OffsetsRecord;

/// The broker's handle for one client request that the coordinator may answer later.
///
/// JoinGroup and SyncGroup park until the rebalance or the leader's assignment completes, so
/// the coordinator keeps this id and names it again in [`Effect::Respond`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// The coordinator's handle for one append to `__consumer_offsets`, echoed back through
/// [`crate::GroupCoordinator::complete_persist`] so it can finish what waited on the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersistId(pub u64);

/// The transactional producer a TxnOffsetCommit writes for.
///
/// Its offsets go into `__consumer_offsets` as a transactional batch of this producer, so the
/// producer's commit or abort marker in the same partition decides whether they count, both
/// live ([`crate::GroupCoordinator::complete_transaction`]) and on replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxnProducer {
    /// The producer id written into the batch header.
    pub producer_id: i64,
    /// The producer epoch written into the batch header; a fenced (older) epoch makes the
    /// append fail.
    pub producer_epoch: i16,
}

/// One instruction for the runtime. Execute a call's effects in the order returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Append `records` to the `__consumer_offsets` partition of `group_id`
    /// ([`crate::partition_for_group`]), then report the outcome with
    /// [`crate::GroupCoordinator::complete_persist`]. A `Respond` later in the same list must not
    /// be sent before this append (Kafka's tombstone writes on DeleteGroups/OffsetDelete).
    Persist {
        /// Echo this back on completion.
        persist_id: PersistId,
        /// The group whose offsets partition takes the records.
        group_id: String,
        /// Key/value pairs, in append order.
        records: Vec<OffsetsRecord>,
        /// `Some` for a TxnOffsetCommit: append the records as one transactional batch of this
        /// producer. `None`: a plain batch.
        transaction: Option<TxnProducer>,
    },
    /// Send `response` for the parked or current request `request_id`.
    Respond {
        /// The request being answered.
        request_id: RequestId,
        /// The answer.
        response: Response,
    },
    /// The earliest deadline changed: call [`crate::GroupCoordinator::tick`] at `at_ms`.
    /// A runtime needs only one timer; each new `ScheduleTimeout` replaces the previous one.
    ScheduleTimeout {
        /// Absolute time, in the same clock as the `now_ms` arguments.
        at_ms: i64,
    },
}
