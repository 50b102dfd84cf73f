//! Kafka wire error codes the transaction coordinator answers with.
//!
//! Kept apart from internal failures ([`crate::records::RecordError`]); the broker copies
//! [`ErrorCode::code`] into the response.

/// A Kafka error code as carried in a transaction API response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Success (`NONE`, 0).
    None,
    /// `UNKNOWN_SERVER_ERROR` (-1): a `__transaction_state` append failed for a size reason.
    UnknownServerError,
    /// `COORDINATOR_LOAD_IN_PROGRESS` (14): the id's state partition is still being replayed
    /// after this broker became its leader; the client retries here.
    CoordinatorLoadInProgress,
    /// `COORDINATOR_NOT_AVAILABLE` (15): the state partition could not take the write; retry.
    CoordinatorNotAvailable,
    /// `NOT_COORDINATOR` (16): this broker no longer leads the state partition.
    NotCoordinator,
    /// `INVALID_REQUEST` (42): an empty transactional id, or only one of producer id/epoch.
    InvalidRequest,
    /// `INVALID_PRODUCER_EPOCH` (47): what clients older than KIP-588 get instead of
    /// [`ErrorCode::ProducerFenced`].
    InvalidProducerEpoch,
    /// `INVALID_TXN_STATE` (48): the request does not fit the transaction's state.
    InvalidTxnState,
    /// `INVALID_PRODUCER_ID_MAPPING` (49): the transactional id is unknown or owned by another
    /// producer id.
    InvalidProducerIdMapping,
    /// `INVALID_TRANSACTION_TIMEOUT` (50): not in `1..=transaction.max.timeout.ms`.
    InvalidTransactionTimeout,
    /// `CONCURRENT_TRANSACTIONS` (51): a state change is in flight; the client backs off and
    /// retries.
    ConcurrentTransactions,
    /// `PRODUCER_FENCED` (90): a newer epoch owns the transactional id.
    ProducerFenced,
    /// `TRANSACTIONAL_ID_NOT_FOUND` (105): DescribeTransactions of an unknown id.
    TransactionalIdNotFound,
    /// Any other code, passed through unchanged from the log append.
    Other(i16),
}

impl ErrorCode {
    /// The numeric Kafka code, as written on the wire.
    pub fn code(self) -> i16 {
        match self {
            Self::None => 0,
            Self::UnknownServerError => -1,
            Self::CoordinatorLoadInProgress => 14,
            Self::CoordinatorNotAvailable => 15,
            Self::NotCoordinator => 16,
            Self::InvalidRequest => 42,
            Self::InvalidProducerEpoch => 47,
            Self::InvalidTxnState => 48,
            Self::InvalidProducerIdMapping => 49,
            Self::InvalidTransactionTimeout => 50,
            Self::ConcurrentTransactions => 51,
            Self::ProducerFenced => 90,
            Self::TransactionalIdNotFound => 105,
            Self::Other(code) => code,
        }
    }

    /// Kafka's translation of a failed `__transaction_state` append
    /// (`TransactionStateManager.appendTransactionToLog`), so clients retry the right way.
    pub fn from_append_error(append_error: i16) -> Self {
        match append_error {
            // UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS, NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            // REQUEST_TIMED_OUT
            3 | 19 | 20 | 7 => Self::CoordinatorNotAvailable,
            // NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR
            6 | 56 => Self::NotCoordinator,
            // MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE
            10 | 18 => Self::UnknownServerError,
            other => Self::Other(other),
        }
    }

    /// KIP-588: clients that predate `PRODUCER_FENCED` (InitProducerId < v4, AddPartitionsToTxn,
    /// AddOffsetsToTxn and EndTxn < v2) only understand `INVALID_PRODUCER_EPOCH`; Kafka's
    /// `KafkaApis` downgrades the code for them, and so does Fjord.
    pub(crate) fn for_client(self, understands_producer_fenced: bool) -> Self {
        match self {
            Self::ProducerFenced if !understands_producer_fenced => Self::InvalidProducerEpoch,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn codes_match_kafka() {
        let cases = [
            (ErrorCode::None, 0),
            (ErrorCode::UnknownServerError, -1),
            (ErrorCode::CoordinatorLoadInProgress, 14),
            (ErrorCode::CoordinatorNotAvailable, 15),
            (ErrorCode::NotCoordinator, 16),
            (ErrorCode::InvalidRequest, 42),
            (ErrorCode::InvalidProducerEpoch, 47),
            (ErrorCode::InvalidTxnState, 48),
            (ErrorCode::InvalidProducerIdMapping, 49),
            (ErrorCode::InvalidTransactionTimeout, 50),
            (ErrorCode::ConcurrentTransactions, 51),
            (ErrorCode::ProducerFenced, 90),
            (ErrorCode::TransactionalIdNotFound, 105),
            (ErrorCode::Other(99), 99),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error:?}");
        }
    }

    #[test]
    fn append_errors_map_like_kafka() {
        assert_eq!(ErrorCode::from_append_error(6), ErrorCode::NotCoordinator);
        assert_eq!(
            ErrorCode::from_append_error(19),
            ErrorCode::CoordinatorNotAvailable
        );
        assert_eq!(
            ErrorCode::from_append_error(10),
            ErrorCode::UnknownServerError
        );
        assert_eq!(ErrorCode::from_append_error(2), ErrorCode::Other(2));
    }

    #[test]
    fn old_clients_see_invalid_producer_epoch_instead_of_fenced() {
        assert_eq!(
            ErrorCode::ProducerFenced.for_client(false),
            ErrorCode::InvalidProducerEpoch
        );
        assert_eq!(
            ErrorCode::ProducerFenced.for_client(true),
            ErrorCode::ProducerFenced
        );
        assert_eq!(
            ErrorCode::ConcurrentTransactions.for_client(false),
            ErrorCode::ConcurrentTransactions
        );
    }
}
