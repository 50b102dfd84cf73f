//! The transaction coordinator's settings, named after Kafka's broker keys.

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The key must be positive.
    #[error("{key} must be positive, got {value}")]
    NotPositive {
        /// Kafka's name for the setting.
        key: &'static str,
        /// The rejected value.
        value: i64,
    },
}

/// Settings of one [`crate::TransactionCoordinator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the longest timeout a producer may ask for, so a stuck
    /// producer cannot hold back read_committed consumers (the last stable offset) for long.
    pub transaction_max_timeout_ms: i32,
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state`.
    pub transaction_state_num_partitions: i32,
    /// `offsets.topic.num.partitions`: AddOffsetsToTxn must name the same `__consumer_offsets`
    /// partition the group coordinator uses.
    pub offsets_topic_num_partitions: i32,
}

impl Default for TxnConfig {
    fn default() -> Self {
        Self {
            transaction_max_timeout_ms: 900_000,
            transaction_state_num_partitions: 50,
            offsets_topic_num_partitions: 50,
        }
    }
}

impl TxnConfig {
    /// Checks that every setting is usable.
    pub fn validate(self) -> Result<Self, ConfigError> {
        for (key, value) in [
            (
                "transaction.max.timeout.ms",
                self.transaction_max_timeout_ms,
            ),
            (
                "transaction.state.log.num.partitions",
                self.transaction_state_num_partitions,
            ),
            (
                "offsets.topic.num.partitions",
                self.offsets_topic_num_partitions,
            ),
        ] {
            if value <= 0 {
                return Err(ConfigError::NotPositive {
                    key,
                    value: i64::from(value),
                });
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::{ConfigError, TxnConfig};

    #[test]
    fn defaults_are_kafkas_and_valid() {
        let config = TxnConfig::default().validate().unwrap();
        assert_eq!(config.transaction_max_timeout_ms, 900_000);
        assert_eq!(config.transaction_state_num_partitions, 50);
    }

    #[test]
    fn zero_partitions_is_rejected_with_the_key_named() {
        let config = TxnConfig {
            offsets_topic_num_partitions: 0,
            ..TxnConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::NotPositive {
                key: "offsets.topic.num.partitions",
                value: 0
            })
        );
    }
}
