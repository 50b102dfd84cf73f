//! What the coordinator asks its runtime to do.
//!
//! The state machine never touches a socket, a log or a clock. Every call returns the effects
//! the runtime must carry out, in order ("events in, commands out", STYLE.md).

use crate::api::Response;
use crate::records::TransactionLogRecord;
use crate::state::TopicPartition;

/// The broker's handle for one client request the coordinator may answer later.
///
/// Requests that change state park until their `__transaction_state` append completes, so the
/// coordinator keeps this id and names it again in [`Effect::Respond`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// The coordinator's handle for one append to `__transaction_state`, echoed back through
/// [`crate::TransactionCoordinator::complete_persist`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersistId(pub u64);

/// One instruction for the runtime. Execute a call's effects in the order returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Append `record` to the `__transaction_state` partition of `transactional_id`
    /// ([`crate::partition_for_transactional_id`]), then report the outcome with
    /// [`crate::TransactionCoordinator::complete_persist`].
    Persist {
        /// Echo this back on completion.
        persist_id: PersistId,
        /// Whose partition takes the record.
        transactional_id: String,
        /// The record to append.
        record: TransactionLogRecord,
    },
    /// Send `response` for request `request_id`.
    Respond {
        /// The request being answered.
        request_id: RequestId,
        /// The answer.
        response: Response,
    },
    /// Write commit or abort control records to every partition (WriteTxnMarkers), then call
    /// [`crate::TransactionCoordinator::markers_written`] with the same id and epoch. The
    /// transactional id is included so the runtime can report back without a lookup.
    WriteMarkers {
        /// The transaction.
        transactional_id: String,
        /// Producer id written into the markers.
        producer_id: i64,
        /// Producer epoch written into the markers (the bumped one after a fence).
        epoch: i16,
        /// Commit (`true`) or abort markers.
        commit: bool,
        /// The coordinator epoch written into the markers: the leader epoch of the
        /// `__transaction_state` partition owning the id, so partition leaders can tell a
        /// deposed coordinator's late markers apart.
        coordinator_epoch: i32,
        /// Every partition of the transaction, ordered.
        partitions: Vec<TopicPartition>,
    },
    /// The earliest deadline changed: call [`crate::TransactionCoordinator::tick`] at `at_ms`.
    /// Each new `ScheduleTimeout` replaces the previous one.
    ScheduleTimeout {
        /// Absolute time, in the same clock as the `now_ms` arguments.
        at_ms: i64,
    },
}
