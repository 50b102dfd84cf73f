//! Kafka wire error codes the coordinator answers with.
//!
//! These are the `i16` codes clients act on, kept apart from internal failures (see
//! [`crate::records::RecordError`]); the broker copies [`ErrorCode::code`] into the response.

/// A Kafka error code as carried in a group API response.
///
/// Only the codes the group coordinator produces have names; an append failure reported by the
/// log that has no group-specific meaning is passed through as [`ErrorCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Success (`NONE`, 0).
    None,
    /// `UNKNOWN_SERVER_ERROR` (-1): a group metadata append failed for a size reason.
    UnknownServerError,
    /// `OFFSET_METADATA_TOO_LARGE` (12): metadata longer than `offset.metadata.max.bytes`.
    OffsetMetadataTooLarge,
    /// `COORDINATOR_LOAD_IN_PROGRESS` (14): the group's offsets partition is still being
    /// replayed after this broker became its leader; the client retries here.
    CoordinatorLoadInProgress,
    /// `COORDINATOR_NOT_AVAILABLE` (15): the offsets partition could not take the write.
    CoordinatorNotAvailable,
    /// `NOT_COORDINATOR` (16): this broker no longer leads the offsets partition.
    NotCoordinator,
    /// `ILLEGAL_GENERATION` (22): the member speaks for an older (or newer) generation.
    IllegalGeneration,
    /// `INCONSISTENT_GROUP_PROTOCOL` (23): protocol type or protocols do not fit the group.
    InconsistentGroupProtocol,
    /// `INVALID_GROUP_ID` (24): empty group id where the API requires one.
    InvalidGroupId,
    /// `UNKNOWN_MEMBER_ID` (25): the member id is not (or no longer) in the group.
    UnknownMemberId,
    /// `INVALID_SESSION_TIMEOUT` (26): outside `group.{min,max}.session.timeout.ms`.
    InvalidSessionTimeout,
    /// `REBALANCE_IN_PROGRESS` (27): the member must rejoin.
    RebalanceInProgress,
    /// `INVALID_COMMIT_OFFSET_SIZE` (28): the offset commit batch was too large to append.
    InvalidCommitOffsetSize,
    /// `NON_EMPTY_GROUP` (68): the group still has members.
    NonEmptyGroup,
    /// `GROUP_ID_NOT_FOUND` (69): no such group.
    GroupIdNotFound,
    /// `MEMBER_ID_REQUIRED` (79): KIP-394, rejoin with the member id in the response.
    MemberIdRequired,
    /// `GROUP_MAX_SIZE_REACHED` (81): `group.max.size` members already.
    GroupMaxSizeReached,
    /// `FENCED_INSTANCE_ID` (82): another member id now owns this `group.instance.id`.
    FencedInstanceId,
    /// `GROUP_SUBSCRIBED_TO_TOPIC` (86): offsets of a consumed topic cannot be deleted.
    GroupSubscribedToTopic,
    /// `UNSTABLE_OFFSET_COMMIT` (88): a commit for the partition is still being written.
    UnstableOffsetCommit,
    /// Any other code, passed through unchanged from the log append.
    Other(i16),
}

impl ErrorCode {
    /// The numeric Kafka code, as written on the wire.
    pub fn code(self) -> i16 {
        match self {
            Self::None => 0,
            Self::UnknownServerError => -1,
            Self::OffsetMetadataTooLarge => 12,
            Self::CoordinatorLoadInProgress => 14,
            Self::CoordinatorNotAvailable => 15,
            Self::NotCoordinator => 16,
            Self::IllegalGeneration => 22,
            Self::InconsistentGroupProtocol => 23,
            Self::InvalidGroupId => 24,
            Self::UnknownMemberId => 25,
            Self::InvalidSessionTimeout => 26,
            Self::RebalanceInProgress => 27,
            Self::InvalidCommitOffsetSize => 28,
            Self::NonEmptyGroup => 68,
            Self::GroupIdNotFound => 69,
            Self::MemberIdRequired => 79,
            Self::GroupMaxSizeReached => 81,
            Self::FencedInstanceId => 82,
            Self::GroupSubscribedToTopic => 86,
            Self::UnstableOffsetCommit => 88,
            Self::Other(code) => code,
        }
    }

    /// Kafka's translation of a failed group metadata append (`storeGroup`) into the code the
    /// JoinGroup/SyncGroup caller sees, so clients retry the right way.
    pub fn from_group_append_error(append_error: i16) -> Self {
        match append_error {
            // UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS, NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            // REQUEST_TIMED_OUT
            3 | 19 | 20 | 7 => Self::CoordinatorNotAvailable,
            // NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR
            6 | 56 => Self::NotCoordinator,
            // MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE, INVALID_FETCH_SIZE
            10 | 18 | 4 => Self::UnknownServerError,
            other => Self::Other(other),
        }
    }

    /// Kafka's translation of a failed offset commit append (`storeOffsets`).
    pub fn from_offset_append_error(append_error: i16) -> Self {
        match append_error {
            3 | 19 | 20 => Self::CoordinatorNotAvailable,
            6 | 56 => Self::NotCoordinator,
            10 | 18 | 4 => Self::InvalidCommitOffsetSize,
            other => Self::Other(other),
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
            (ErrorCode::OffsetMetadataTooLarge, 12),
            (ErrorCode::CoordinatorLoadInProgress, 14),
            (ErrorCode::IllegalGeneration, 22),
            (ErrorCode::InconsistentGroupProtocol, 23),
            (ErrorCode::UnknownMemberId, 25),
            (ErrorCode::RebalanceInProgress, 27),
            (ErrorCode::NonEmptyGroup, 68),
            (ErrorCode::GroupIdNotFound, 69),
            (ErrorCode::MemberIdRequired, 79),
            (ErrorCode::GroupMaxSizeReached, 81),
            (ErrorCode::FencedInstanceId, 82),
            (ErrorCode::GroupSubscribedToTopic, 86),
            (ErrorCode::Other(99), 99),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error:?}");
        }
    }

    #[test]
    fn append_errors_map_like_kafka() {
        assert_eq!(
            ErrorCode::from_group_append_error(6),
            ErrorCode::NotCoordinator
        );
        assert_eq!(
            ErrorCode::from_group_append_error(19),
            ErrorCode::CoordinatorNotAvailable
        );
        assert_eq!(
            ErrorCode::from_group_append_error(10),
            ErrorCode::UnknownServerError
        );
        assert_eq!(
            ErrorCode::from_offset_append_error(10),
            ErrorCode::InvalidCommitOffsetSize
        );
        assert_eq!(ErrorCode::from_offset_append_error(2), ErrorCode::Other(2));
    }
}
