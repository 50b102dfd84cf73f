//! The one place where internal errors become Kafka error codes.
//!
//! Libraries below the broker report typed errors with no knowledge of the wire; handlers call
//! [`storage_error`] (and friends) so every code path maps the same failure to the same code.

use fjord_storage::StorageError;
use kafka_protocol::ResponseError;

use crate::config::ConfigError;
use crate::log_manager::TopicError;

/// The Kafka error for a failed log operation, with a message for the client where the
/// protocol carries one.
pub(crate) fn storage_error(e: &StorageError) -> ResponseError {
    match e {
        StorageError::CorruptBatch { .. } => ResponseError::CorruptMessage,
        StorageError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::RecordListTooLarge { .. } => ResponseError::RecordListTooLarge,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::InvalidRecord(_) => ResponseError::InvalidRecord,
        _ => ResponseError::KafkaStorageError,
    }
}

/// The Kafka error for a failed partition operation.
pub(crate) fn partition_error(e: &crate::partition::PartitionError) -> ResponseError {
    use crate::partition::PartitionError;
    match e {
        PartitionError::Storage(e) => storage_error(e),
        PartitionError::Closed(_) => ResponseError::UnknownTopicOrPartition,
        PartitionError::Producer(e) => producer_error(e),
        PartitionError::NotLeader(_) | PartitionError::NotFollower(_) => {
            ResponseError::NotLeaderOrFollower
        }
        PartitionError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        PartitionError::NotEnoughReplicasAfterAppend { .. } => {
            ResponseError::NotEnoughReplicasAfterAppend
        }
    }
}

/// The Kafka error for a refused idempotent or transactional batch.
pub(crate) fn producer_error(e: &crate::partition::ProducerError) -> ResponseError {
    use crate::partition::ProducerError;
    match e {
        ProducerError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        ProducerError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        ProducerError::CoordinatorFenced { .. } => ResponseError::TransactionCoordinatorFenced,
    }
}

/// The Kafka error for a producer id that could not be handed out: a storage failure, or
/// (cluster mode) a block the controller has not delivered yet, which is retriable.
pub(crate) fn producer_id_error(e: &crate::producer_ids::ProducerIdError) -> ResponseError {
    use crate::producer_ids::ProducerIdError;
    match e {
        ProducerIdError::Storage(_) => ResponseError::KafkaStorageError,
        ProducerIdError::BlockPending(_) => ResponseError::CoordinatorLoadInProgress,
    }
}

/// The Kafka error for a controller request that got no answer (no active controller, a
/// timeout, a stopped node).
pub(crate) fn controller_error(e: &fjord_controller::ControllerError) -> ResponseError {
    controller_code(e.error_code())
}

/// A controller's per-item error code as the Kafka error it is.
pub(crate) fn controller_code(code: fjord_controller::ErrorCode) -> ResponseError {
    ResponseError::try_from_code(code.code()).unwrap_or(ResponseError::UnknownServerError)
}

/// The Kafka error for a failed topic operation.
pub(crate) fn topic_error(e: &TopicError) -> ResponseError {
    match e {
        TopicError::InvalidName { .. } => ResponseError::InvalidTopicException,
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
        TopicError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        TopicError::InvalidPartitions(_) | TopicError::PartitionCountNotIncreased { .. } => {
            ResponseError::InvalidPartitions
        }
        TopicError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        TopicError::ReplicaAssignmentUnsupported => ResponseError::InvalidRequest,
        TopicError::Config(
            ConfigError::UnknownKey(_)
            | ConfigError::InvalidValue { .. }
            | ConfigError::Inconsistent { .. },
        ) => ResponseError::InvalidConfig,
        TopicError::Storage(fjord_storage::StorageError::InvalidConfig(_)) => {
            ResponseError::InvalidConfig
        }
        TopicError::Storage(e) => storage_error(e),
        TopicError::Persist(_) => ResponseError::KafkaStorageError,
        TopicError::Partition(e) => partition_error(e),
        TopicError::ManagedByController => ResponseError::InvalidRequest,
    }
}

/// Kafka's standard message for `error` (`Errors.message()`), for responses that carry a
/// message where Kafka gives no specific one. Errors without an entry here fall back to
/// their name.
pub(crate) fn standard_message(error: ResponseError) -> String {
    let message = match error {
        ResponseError::UnknownServerError => {
            "The server experienced an unexpected error when processing the request."
        }
        ResponseError::UnknownTopicOrPartition => "This server does not host this topic-partition.",
        ResponseError::RequestTimedOut => "The request timed out.",
        ResponseError::ClusterAuthorizationFailed => "Cluster authorization failed.",
        ResponseError::InvalidReplicaAssignment => "Replica assignment is invalid.",
        ResponseError::NotController => "This is not the correct controller for this cluster.",
        ResponseError::InvalidRequest => {
            "This most likely occurs because of a request being malformed by the client library \
             or the message was sent to an incompatible broker. See the broker logs for more \
             details."
        }
        ResponseError::PreferredLeaderNotAvailable => "The preferred leader was not available.",
        ResponseError::EligibleLeadersNotAvailable => {
            "Eligible topic partition leaders are not available."
        }
        ResponseError::ElectionNotNeeded => "Leader election not needed for topic partition.",
        ResponseError::NoReassignmentInProgress => "No partition reassignment is in progress.",
        other => return format!("{other:?}"),
    };
    message.to_string()
}
