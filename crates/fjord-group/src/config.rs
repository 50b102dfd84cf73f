//! The coordinator's settings, named one-to-one after Kafka's broker keys.

/// Group coordinator configuration. Field names follow the Kafka keys (dots become
/// underscores, units last) so the broker's config loader maps them without guessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an Empty group waits
    /// for more members, so a consumer fleet starting together does not rebalance once per member.
    pub group_initial_rebalance_delay_ms: i64,
    /// `group.max.size`: members per group.
    pub group_max_size: usize,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `offset.metadata.max.bytes`: longest commit metadata string (in UTF-16 units, as Java
    /// measures `String.length()`).
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes`, in milliseconds: how long offsets of an Empty group live.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`: how often the runtime should call
    /// [`crate::GroupCoordinator::cleanup_expired_offsets`].
    pub offsets_retention_check_interval_ms: i64,
    /// `offsets.topic.num.partitions`: which groups a transaction marker in one
    /// `__consumer_offsets` partition completes ([`crate::partition_for_group`]). Must match
    /// the partition count of the topic the runtime appends to.
    pub offsets_topic_num_partitions: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            group_initial_rebalance_delay_ms: 3_000,
            group_max_size: i32::MAX as usize,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            offset_metadata_max_bytes: 4_096,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1_000,
            offsets_retention_check_interval_ms: 600_000,
            offsets_topic_num_partitions: 50,
        }
    }
}

/// A setting that Kafka would refuse at startup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The value is outside what Kafka accepts for the key.
    #[error("invalid value for {key}: {reason}")]
    InvalidValue {
        /// The Kafka key.
        key: &'static str,
        /// Why it is rejected.
        reason: &'static str,
    },
}

impl GroupConfig {
    /// Checks the settings the way Kafka's `KafkaConfig` does, so a bad file fails at start
    /// instead of producing odd rebalances later.
    pub fn validate(self) -> Result<Self, ConfigError> {
        let invalid = |key, reason| Err(ConfigError::InvalidValue { key, reason });
        if self.group_initial_rebalance_delay_ms < 0 {
            return invalid("group.initial.rebalance.delay.ms", "must be >= 0");
        }
        if self.group_max_size < 1 {
            return invalid("group.max.size", "must be >= 1");
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return invalid(
                "group.min.session.timeout.ms",
                "must not exceed group.max.session.timeout.ms",
            );
        }
        if self.offsets_retention_ms < 60_000 {
            return invalid("offsets.retention.minutes", "must be >= 1");
        }
        if self.offsets_retention_check_interval_ms < 1 {
            return invalid("offsets.retention.check.interval.ms", "must be >= 1");
        }
        if self.offsets_topic_num_partitions < 1 {
            return invalid("offsets.topic.num.partitions", "must be >= 1");
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::{ConfigError, GroupConfig};

    #[test]
    fn defaults_are_kafkas_and_valid() {
        let config = GroupConfig::default().validate().unwrap();
        assert_eq!(config.group_initial_rebalance_delay_ms, 3_000);
        assert_eq!(config.offset_metadata_max_bytes, 4_096);
        assert_eq!(config.offsets_retention_ms, 604_800_000);
        assert_eq!(config.offsets_topic_num_partitions, 50);
    }

    #[test]
    fn offsets_topic_without_partitions_is_rejected() {
        let config = GroupConfig {
            offsets_topic_num_partitions: 0,
            ..Default::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::InvalidValue {
                key: "offsets.topic.num.partitions",
                ..
            })
        ));
    }

    #[test]
    fn min_session_above_max_is_rejected() {
        let config = GroupConfig {
            group_min_session_timeout_ms: 10,
            group_max_session_timeout_ms: 5,
            ..Default::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::InvalidValue {
                key: "group.min.session.timeout.ms",
                ..
            })
        ));
    }
}
