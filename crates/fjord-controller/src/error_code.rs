//! Kafka wire error codes the controller answers with.
//!
//! Kept apart from [`crate::ControllerError`] (the node could not take the request at all) so
//! that a broker handler can copy [`ErrorCode::code`] into a Kafka response unchanged.

use serde::{Deserialize, Serialize};

/// A Kafka error code as carried in a controller API response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// Success (`NONE`, 0).
    None,
    /// `UNKNOWN_SERVER_ERROR` (-1): the controller failed in a way the request could not cause.
    UnknownServerError,
    /// `UNKNOWN_TOPIC_OR_PARTITION` (3): no topic of that name, or no such partition.
    UnknownTopicOrPartition,
    /// `NOT_LEADER_OR_FOLLOWER` (6): an AlterPartition from a broker that does not lead the
    /// partition (any more).
    NotLeaderOrFollower,
    /// `REQUEST_TIMED_OUT` (7): the metadata log did not commit in time; the outcome is unknown.
    RequestTimedOut,
    /// `INVALID_TOPIC_EXCEPTION` (17): the topic name is not legal.
    InvalidTopicException,
    /// `TOPIC_ALREADY_EXISTS` (36).
    TopicAlreadyExists,
    /// `INVALID_PARTITIONS` (37): a partition count below 1, or not above the current one.
    InvalidPartitions,
    /// `INVALID_REPLICATION_FACTOR` (38): below 1, or more than the unfenced brokers.
    InvalidReplicationFactor,
    /// `INVALID_REPLICA_ASSIGNMENT` (39): an explicit assignment that cannot be placed.
    InvalidReplicaAssignment,
    /// `INVALID_CONFIG` (40): a config value the controller cannot accept.
    InvalidConfig,
    /// `NOT_CONTROLLER` (41): this node is not the active controller and none is known; retry.
    NotController,
    /// `INVALID_REQUEST` (42): a request that contradicts itself.
    InvalidRequest,
    /// `REASSIGNMENT_IN_PROGRESS` (60): the partition is being reassigned.
    ReassignmentInProgress,
    /// `FENCED_LEADER_EPOCH` (74): the request carries a leader epoch older than the
    /// controller's; the sender has missed a leader change.
    FencedLeaderEpoch,
    /// `STALE_BROKER_EPOCH` (77): the broker re-registered since it read this epoch.
    StaleBrokerEpoch,
    /// `PREFERRED_LEADER_NOT_AVAILABLE` (80): the first replica is fenced or out of the ISR.
    PreferredLeaderNotAvailable,
    /// `ELIGIBLE_LEADERS_NOT_AVAILABLE` (83): no live replica can lead.
    EligibleLeadersNotAvailable,
    /// `ELECTION_NOT_NEEDED` (84): the partition already has the leader asked for.
    ElectionNotNeeded,
    /// `NO_REASSIGNMENT_IN_PROGRESS` (85): a cancel for a partition that is not moving.
    NoReassignmentInProgress,
    /// `INVALID_UPDATE_VERSION` (95): an AlterPartition built on an older partition epoch.
    InvalidUpdateVersion,
    /// `UNKNOWN_TOPIC_ID` (100).
    UnknownTopicId,
    /// `DUPLICATE_BROKER_REGISTRATION` (101): another live incarnation holds the broker id.
    DuplicateBrokerRegistration,
    /// `BROKER_ID_NOT_REGISTERED` (102).
    BrokerIdNotRegistered,
    /// `INELIGIBLE_REPLICA` (107): a proposed ISR names a fenced, unknown or non-replica broker.
    IneligibleReplica,
}

impl ErrorCode {
    /// The numeric Kafka code, as written on the wire.
    pub fn code(self) -> i16 {
        match self {
            Self::None => 0,
            Self::UnknownServerError => -1,
            Self::UnknownTopicOrPartition => 3,
            Self::NotLeaderOrFollower => 6,
            Self::RequestTimedOut => 7,
            Self::InvalidTopicException => 17,
            Self::TopicAlreadyExists => 36,
            Self::InvalidPartitions => 37,
            Self::InvalidReplicationFactor => 38,
            Self::InvalidReplicaAssignment => 39,
            Self::InvalidConfig => 40,
            Self::NotController => 41,
            Self::InvalidRequest => 42,
            Self::ReassignmentInProgress => 60,
            Self::FencedLeaderEpoch => 74,
            Self::StaleBrokerEpoch => 77,
            Self::PreferredLeaderNotAvailable => 80,
            Self::EligibleLeadersNotAvailable => 83,
            Self::ElectionNotNeeded => 84,
            Self::NoReassignmentInProgress => 85,
            Self::InvalidUpdateVersion => 95,
            Self::UnknownTopicId => 100,
            Self::DuplicateBrokerRegistration => 101,
            Self::BrokerIdNotRegistered => 102,
            Self::IneligibleReplica => 107,
        }
    }

    /// Whether a client may retry the same request unchanged, as Kafka marks its errors; a
    /// broker uses it to decide between backing off and giving up.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            Self::UnknownTopicOrPartition
                | Self::NotLeaderOrFollower
                | Self::RequestTimedOut
                | Self::NotController
                | Self::FencedLeaderEpoch
                | Self::PreferredLeaderNotAvailable
                | Self::EligibleLeadersNotAvailable
                | Self::ElectionNotNeeded
                | Self::UnknownTopicId
        )
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
            (ErrorCode::UnknownTopicOrPartition, 3),
            (ErrorCode::NotLeaderOrFollower, 6),
            (ErrorCode::RequestTimedOut, 7),
            (ErrorCode::InvalidTopicException, 17),
            (ErrorCode::TopicAlreadyExists, 36),
            (ErrorCode::InvalidPartitions, 37),
            (ErrorCode::InvalidReplicationFactor, 38),
            (ErrorCode::InvalidReplicaAssignment, 39),
            (ErrorCode::InvalidConfig, 40),
            (ErrorCode::NotController, 41),
            (ErrorCode::InvalidRequest, 42),
            (ErrorCode::ReassignmentInProgress, 60),
            (ErrorCode::FencedLeaderEpoch, 74),
            (ErrorCode::StaleBrokerEpoch, 77),
            (ErrorCode::PreferredLeaderNotAvailable, 80),
            (ErrorCode::EligibleLeadersNotAvailable, 83),
            (ErrorCode::ElectionNotNeeded, 84),
            (ErrorCode::NoReassignmentInProgress, 85),
            (ErrorCode::InvalidUpdateVersion, 95),
            (ErrorCode::UnknownTopicId, 100),
            (ErrorCode::DuplicateBrokerRegistration, 101),
            (ErrorCode::BrokerIdNotRegistered, 102),
            (ErrorCode::IneligibleReplica, 107),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error:?}");
        }
    }

    #[test]
    fn not_controller_is_retriable_and_stale_epoch_is_not() {
        assert!(ErrorCode::NotController.is_retriable());
        assert!(ErrorCode::FencedLeaderEpoch.is_retriable());
        assert!(!ErrorCode::InvalidUpdateVersion.is_retriable());
        assert!(!ErrorCode::StaleBrokerEpoch.is_retriable());
        assert!(!ErrorCode::None.is_retriable());
    }
}
