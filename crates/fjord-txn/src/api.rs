//! Requests and responses of the transaction APIs, reduced to the fields the coordinator uses.
//!
//! The broker decodes the wire messages (`kafka-protocol`) into these and encodes the
//! [`Response`]s back; the `version` fields let the coordinator answer each client in the error
//! vocabulary it understands.

use crate::error::ErrorCode;
use crate::state::TopicPartition;

/// InitProducerId (api key 22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitProducerIdRequest {
    /// Request version; below 4, PRODUCER_FENCED is sent as INVALID_PRODUCER_EPOCH.
    pub version: i16,
    /// `None` for an idempotent-only producer, which just gets a fresh producer id.
    pub transactional_id: Option<String>,
    /// The producer's `transaction.timeout.ms`.
    pub transaction_timeout_ms: i32,
    /// v3+ (KIP-360): the id the producer has, or -1.
    pub producer_id: i64,
    /// v3+ (KIP-360): the epoch the producer has, or -1.
    pub producer_epoch: i16,
}

/// AddPartitionsToTxn (api key 24), one transaction (versions 0-3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddPartitionsToTxnRequest {
    /// Request version; below 2, PRODUCER_FENCED is sent as INVALID_PRODUCER_EPOCH.
    pub version: i16,
    /// The transaction.
    pub transactional_id: String,
    /// The producer's id.
    pub producer_id: i64,
    /// The producer's epoch.
    pub producer_epoch: i16,
    /// Partitions about to receive transactional data.
    pub partitions: Vec<TopicPartition>,
}

/// AddOffsetsToTxn (api key 25).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOffsetsToTxnRequest {
    /// Request version; below 2, PRODUCER_FENCED is sent as INVALID_PRODUCER_EPOCH.
    pub version: i16,
    /// The transaction.
    pub transactional_id: String,
    /// The producer's id.
    pub producer_id: i64,
    /// The producer's epoch.
    pub producer_epoch: i16,
    /// The group whose offsets the transaction will commit.
    pub group_id: String,
}

/// EndTxn (api key 26).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndTxnRequest {
    /// Request version; below 2, PRODUCER_FENCED is sent as INVALID_PRODUCER_EPOCH.
    pub version: i16,
    /// The transaction.
    pub transactional_id: String,
    /// The producer's id.
    pub producer_id: i64,
    /// The producer's epoch.
    pub producer_epoch: i16,
    /// `true` to commit, `false` to abort.
    pub commit: bool,
}

/// InitProducerId answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitProducerIdResponse {
    /// Outcome.
    pub error: ErrorCode,
    /// The producer id, -1 on error.
    pub producer_id: i64,
    /// The epoch, -1 on error.
    pub producer_epoch: i16,
}

impl InitProducerIdResponse {
    /// A failure: Kafka answers -1/-1 with the code.
    pub fn error(error: ErrorCode) -> Self {
        Self {
            error,
            producer_id: -1,
            producer_epoch: -1,
        }
    }
}

/// One transactional id in a ListTransactions answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTransaction {
    /// The id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Kafka's state name ([`crate::TransactionState::name`]).
    pub state: &'static str,
}

/// One transactional id in a DescribeTransactions answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedTransaction {
    /// NONE, or TRANSACTIONAL_ID_NOT_FOUND (then the other fields are defaults).
    pub error: ErrorCode,
    /// The id.
    pub transactional_id: String,
    /// Kafka's state name.
    pub state: &'static str,
    /// `transaction.timeout.ms`.
    pub transaction_timeout_ms: i32,
    /// Start of the open transaction, -1 if none.
    pub transaction_start_time_ms: i64,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Partitions in the transaction, ordered.
    pub partitions: Vec<TopicPartition>,
}

/// A response the runtime sends for a [`crate::RequestId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// InitProducerId.
    InitProducerId(InitProducerIdResponse),
    /// AddPartitionsToTxn: Kafka's coordinator has one outcome for the whole set, which the
    /// handler copies onto every partition of the request.
    AddPartitionsToTxn(ErrorCode),
    /// AddOffsetsToTxn.
    AddOffsetsToTxn(ErrorCode),
    /// EndTxn.
    EndTxn(ErrorCode),
}
