//! Topic-level configuration: Kafka's topic keys, their broker-level defaults, validation, and
//! the effective values DescribeConfigs reports.
//!
//! Keys the log acts on may be set freely. Keys Kafka defines but Fjord does not act on yet may
//! only be set to their default value: anything else is refused with INVALID_CONFIG naming the
//! key, so an operator never believes a setting is in force when it is not.

use std::collections::BTreeMap;

use fjord_protocol::batch::{Compression, TimestampType};
use fjord_storage::cleaner::CleanerConfig;
use fjord_storage::LogConfig;

use crate::config::{parse_int, BrokerConfig, ConfigError};

/// The value type of a config key, as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// true / false.
    Boolean = 1,
    /// Free text or one of a set of words.
    String = 2,
    /// 32-bit integer.
    Int = 3,
    /// 64-bit integer.
    Long = 5,
    /// Floating point.
    Double = 6,
    /// Comma-separated list.
    List = 7,
}

/// Where an effective value comes from (Kafka's ConfigSource numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    DynamicTopic = 1,
    /// Set at runtime for this broker (resource name = node id).
    DynamicBroker = 2,
    /// Set at runtime for every broker (the default entity, resource name "").
    DynamicDefaultBroker = 3,
    /// Set in the broker's properties file or overrides.
    StaticBroker = 4,
    /// Kafka's built-in default.
    Default = 5,
}

/// One topic key and how it relates to the broker configuration.
struct TopicConfigDef {
    name: &'static str,
    config_type: ConfigType,
    /// Kafka's default when neither topic nor broker sets it.
    default: &'static str,
    /// The broker key whose value is the topic default, if any.
    broker_key: Option<&'static str>,
    /// Whether the log acts on this key today.
    acted_on: bool,
    /// Allowed words for enumerated string keys.
    allowed: &'static [&'static str],
    /// Smallest allowed integer value.
    min: i64,
}

const fn def(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
    broker_key: Option<&'static str>,
    acted_on: bool,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        config_type,
        default,
        broker_key,
        acted_on,
        allowed: &[],
        min: i64::MIN,
    }
}

const fn min(mut d: TopicConfigDef, min: i64) -> TopicConfigDef {
    d.min = min;
    d
}

const fn one_of(mut d: TopicConfigDef, allowed: &'static [&'static str]) -> TopicConfigDef {
    d.allowed = allowed;
    d
}

use ConfigType::{Boolean, Double, Int, List, Long};

/// Every topic key Kafka defines that Fjord knows about, sorted by name.
const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    one_of(
        def(
            "cleanup.policy",
            List,
            "delete",
            Some("log.cleanup.policy"),
            true,
        ),
        &["delete", "compact"],
    ),
    one_of(
        def(
            "compression.type",
            ConfigType::String,
            "producer",
            Some("compression.type"),
            true,
        ),
        &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"],
    ),
    min(
        def(
            "delete.retention.ms",
            Long,
            "86400000",
            Some("log.cleaner.delete.retention.ms"),
            true,
        ),
        0,
    ),
    min(
        def(
            "file.delete.delay.ms",
            Long,
            "60000",
            Some("log.segment.delete.delay.ms"),
            false,
        ),
        0,
    ),
    min(
        def(
            "flush.messages",
            Long,
            "9223372036854775807",
            Some("log.flush.interval.messages"),
            false,
        ),
        1,
    ),
    min(
        def(
            "flush.ms",
            Long,
            "9223372036854775807",
            Some("log.flush.interval.ms"),
            false,
        ),
        0,
    ),
    min(
        def(
            "index.interval.bytes",
            Int,
            "4096",
            Some("log.index.interval.bytes"),
            true,
        ),
        0,
    ),
    min(
        def(
            "max.compaction.lag.ms",
            Long,
            "9223372036854775807",
            None,
            true,
        ),
        1,
    ),
    min(
        def(
            "max.message.bytes",
            Int,
            "1048588",
            Some("message.max.bytes"),
            true,
        ),
        0,
    ),
    min(
        def(
            "message.timestamp.after.max.ms",
            Long,
            "9223372036854775807",
            None,
            true,
        ),
        0,
    ),
    min(
        def(
            "message.timestamp.before.max.ms",
            Long,
            "9223372036854775807",
            None,
            true,
        ),
        0,
    ),
    one_of(
        def(
            "message.timestamp.type",
            ConfigType::String,
            "CreateTime",
            Some("log.message.timestamp.type"),
            true,
        ),
        &["CreateTime", "LogAppendTime"],
    ),
    def("min.cleanable.dirty.ratio", Double, "0.5", None, true),
    min(def("min.compaction.lag.ms", Long, "0", None, true), 0),
    min(
        def(
            "min.insync.replicas",
            Int,
            "1",
            Some("min.insync.replicas"),
            true,
        ),
        1,
    ),
    def("preallocate", Boolean, "false", None, false),
    min(
        def(
            "retention.bytes",
            Long,
            "-1",
            Some("log.retention.bytes"),
            true,
        ),
        -1,
    ),
    min(
        def(
            "retention.ms",
            Long,
            "604800000",
            Some("log.retention.ms"),
            true,
        ),
        -1,
    ),
    min(
        def(
            "segment.bytes",
            Int,
            "1073741824",
            Some("log.segment.bytes"),
            true,
        ),
        14,
    ),
    min(
        def(
            "segment.index.bytes",
            Int,
            "10485760",
            Some("log.index.size.max.bytes"),
            true,
        ),
        4,
    ),
    min(def("segment.jitter.ms", Long, "0", None, false), 0),
    min(
        def("segment.ms", Long, "604800000", Some("log.roll.ms"), true),
        1,
    ),
    def(
        "unclean.leader.election.enable",
        Boolean,
        "false",
        Some("unclean.leader.election.enable"),
        false,
    ),
];

fn lookup(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// An effective configuration value as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The key.
    pub name: String,
    /// Its effective value.
    pub value: String,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// The value type.
    pub config_type: ConfigType,
}

/// The values a topic sets for itself; everything else falls back to the broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicConfig {
    /// Explicit topic-level settings, already validated.
    pub overrides: BTreeMap<String, String>,
}

impl TopicConfig {
    /// Validates explicit topic settings, refusing unknown keys, bad values and non-default
    /// values of keys that are not acted on yet.
    pub fn validate(overrides: BTreeMap<String, String>) -> Result<TopicConfig, ConfigError> {
        for (key, value) in &overrides {
            validate_value(key, value)?;
        }
        Ok(TopicConfig { overrides })
    }

    /// The effective value of every known topic key.
    pub fn describe(&self, broker: &BrokerConfig) -> Vec<ConfigEntry> {
        TOPIC_CONFIGS
            .iter()
            .map(|d| {
                let (value, source) = if let Some(v) = self.overrides.get(d.name) {
                    (v.clone(), ConfigSource::DynamicTopic)
                } else {
                    broker_default(d, broker)
                };
                ConfigEntry {
                    name: d.name.to_string(),
                    value,
                    source,
                    config_type: d.config_type,
                }
            })
            .collect()
    }

    fn effective(&self, name: &str, broker: &BrokerConfig) -> String {
        match (self.overrides.get(name), lookup(name)) {
            (Some(v), _) => v.clone(),
            (None, Some(d)) => broker_default(d, broker).0,
            (None, None) => String::new(),
        }
    }

    fn effective_i64(&self, name: &str, broker: &BrokerConfig) -> i64 {
        // Values were validated on the way in, so a parse failure means a default, never input.
        self.effective(name, broker)
            .parse()
            .ok()
            .or_else(|| lookup(name).and_then(|d| d.default.parse().ok()))
            .unwrap_or(0)
    }

    /// The storage settings of a partition of this topic.
    pub fn log_config(&self, broker: &BrokerConfig) -> LogConfig {
        let timestamp_type = if self.effective("message.timestamp.type", broker) == "LogAppendTime"
        {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        };
        LogConfig {
            segment_bytes: self.effective_i64("segment.bytes", broker) as u64,
            segment_ms: self.effective_i64("segment.ms", broker),
            index_interval_bytes: self.effective_i64("index.interval.bytes", broker) as u32,
            segment_index_bytes: self.effective_i64("segment.index.bytes", broker) as u32,
            retention_ms: self.effective_i64("retention.ms", broker),
            retention_bytes: self.effective_i64("retention.bytes", broker),
            max_message_bytes: self.effective_i64("max.message.bytes", broker) as u32,
            timestamp_type,
        }
    }
}

/// The broker-level value of a topic key and where it comes from.
fn broker_default(d: &TopicConfigDef, broker: &BrokerConfig) -> (String, ConfigSource) {
    let Some(broker_key) = d.broker_key else {
        return (d.default.to_string(), ConfigSource::Default);
    };
    let value = match broker_key {
        "log.cleanup.policy" => broker.log_cleanup_policy.clone(),
        "log.index.interval.bytes" => broker.log_index_interval_bytes.to_string(),
        "message.max.bytes" => broker.message_max_bytes.to_string(),
        "log.message.timestamp.type" => broker.log_message_timestamp_type.clone(),
        "min.insync.replicas" => broker.min_insync_replicas.to_string(),
        "log.retention.bytes" => broker.log_retention_bytes.to_string(),
        "log.retention.ms" => broker.log_retention_ms.to_string(),
        "log.segment.bytes" => broker.log_segment_bytes.to_string(),
        "log.index.size.max.bytes" => broker.log_index_size_max_bytes.to_string(),
        "log.roll.ms" => broker.log_roll_ms.to_string(),
        _ => d.default.to_string(),
    };
    (value, broker.source_of(broker_key))
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn validate_value(key: &str, value: &str) -> Result<(), ConfigError> {
    let d = lookup(key).ok_or_else(|| ConfigError::UnknownKey(key.to_string()))?;
    match d.config_type {
        Int => {
            parse_int(key, value, d.min, i32::MAX as i64)?;
        }
        Long => {
            parse_int(key, value, d.min, i64::MAX)?;
        }
        Boolean => {
            if !matches!(value, "true" | "false") {
                return Err(invalid(key, value, "expected true or false"));
            }
        }
        Double => {
            value
                .parse::<f64>()
                .map_err(|_| invalid(key, value, "not a number"))?;
        }
        ConfigType::String | List => {}
    }
    if !d.allowed.is_empty() {
        let words: Vec<&str> = value.split(',').map(str::trim).collect();
        if let Some(bad) = words.iter().find(|w| !d.allowed.contains(w)) {
            return Err(invalid(
                key,
                value,
                format!(
                    "`{bad}` is not supported; supported: {}",
                    d.allowed.join(", ")
                ),
            ));
        }
    }
    if !d.acted_on && value != d.default {
        return Err(invalid(
            key,
            value,
            format!(
                "`{key}` is not supported yet; only its default `{}` is accepted",
                d.default
            ),
        ));
    }
    Ok(())
}

impl TopicConfig {
    fn policy_has(&self, broker: &BrokerConfig, word: &str) -> bool {
        self.effective("cleanup.policy", broker)
            .split(',')
            .any(|w| w.trim() == word)
    }

    /// The codec the topic demands, or `None` when it keeps what the producer sent
    /// (`compression.type=producer`).
    pub fn compression_target(&self, broker: &BrokerConfig) -> Option<Compression> {
        match self.effective("compression.type", broker).as_str() {
            "uncompressed" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "snappy" => Some(Compression::Snappy),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// How far before and after the broker's clock a CreateTime timestamp may be
    /// (`message.timestamp.before.max.ms`, `message.timestamp.after.max.ms`).
    pub fn timestamp_bounds(&self, broker: &BrokerConfig) -> (i64, i64) {
        (
            self.effective_i64("message.timestamp.before.max.ms", broker),
            self.effective_i64("message.timestamp.after.max.ms", broker),
        )
    }

    /// `min.insync.replicas`: the in-sync replicas an acks=all produce needs.
    pub fn min_insync_replicas(&self, broker: &BrokerConfig) -> usize {
        usize::try_from(self.effective_i64("min.insync.replicas", broker).max(1)).unwrap_or(1)
    }

    /// Whether the topic stamps the broker's clock on every batch.
    pub fn log_append_time(&self, broker: &BrokerConfig) -> bool {
        self.effective("message.timestamp.type", broker) == "LogAppendTime"
    }

    /// Whether time and size retention delete segments (`cleanup.policy` contains `delete`).
    pub fn retention_enabled(&self, broker: &BrokerConfig) -> bool {
        self.policy_has(broker, "delete")
    }

    /// The compaction settings, when `cleanup.policy` contains `compact`.
    pub fn cleaner_config(&self, broker: &BrokerConfig) -> Option<CleanerConfig> {
        if !self.policy_has(broker, "compact") {
            return None;
        }
        Some(CleanerConfig {
            min_cleanable_dirty_ratio: self
                .effective("min.cleanable.dirty.ratio", broker)
                .parse()
                .unwrap_or(0.5),
            min_compaction_lag_ms: self.effective_i64("min.compaction.lag.ms", broker),
            max_compaction_lag_ms: self.effective_i64("max.compaction.lag.ms", broker),
            delete_retention_ms: self.effective_i64("delete.retention.ms", broker),
            dedupe_buffer_bytes: broker.log_cleaner_dedupe_buffer_size,
        })
    }
}

/// Whether a key holds a comma-separated list (IncrementalAlterConfigs APPEND/SUBTRACT).
pub fn is_list_config(name: &str) -> bool {
    lookup(name).is_some_and(|d| d.config_type == ConfigType::List)
}

/// Every known topic key, so callers can tell "unknown" from "not set".
pub fn is_topic_config_key(name: &str) -> bool {
    lookup(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn table_is_sorted_and_defaults_validate() {
        for pair in TOPIC_CONFIGS.windows(2) {
            assert!(pair[0].name < pair[1].name, "{} out of order", pair[1].name);
        }
        for d in TOPIC_CONFIGS {
            validate_value(d.name, d.default).unwrap();
        }
    }

    #[test]
    fn refuses_unknown_bad_and_unsupported_values() {
        assert_eq!(
            TopicConfig::validate(map(&[("retention.msx", "1")])).unwrap_err(),
            ConfigError::UnknownKey("retention.msx".into())
        );
        assert!(TopicConfig::validate(map(&[("retention.ms", "soon")])).is_err());
        assert!(TopicConfig::validate(map(&[("segment.bytes", "10")])).is_err());
        assert!(TopicConfig::validate(map(&[("cleanup.policy", "compact")])).is_ok());
        assert!(TopicConfig::validate(map(&[("cleanup.policy", "compact,delete")])).is_ok());
        assert!(TopicConfig::validate(map(&[("cleanup.policy", "shred")])).is_err());
        assert!(TopicConfig::validate(map(&[("preallocate", "true")])).is_err());
        assert!(TopicConfig::validate(map(&[("preallocate", "false")])).is_ok());
    }

    #[test]
    fn effective_values_follow_topic_then_broker_then_default() {
        let broker = BrokerConfig {
            log_retention_ms: 1000,
            explicit: map(&[("log.retention.hours", "1")]),
            ..BrokerConfig::default()
        };
        let topic = TopicConfig::validate(map(&[("segment.bytes", "1048576")])).unwrap();
        let entries = topic.describe(&broker);
        let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap().clone();
        assert_eq!(get("segment.bytes").value, "1048576");
        assert_eq!(get("segment.bytes").source, ConfigSource::DynamicTopic);
        assert_eq!(get("retention.ms").value, "1000");
        assert_eq!(get("retention.ms").source, ConfigSource::StaticBroker);
        assert_eq!(get("cleanup.policy").source, ConfigSource::Default);
        let log = topic.log_config(&broker);
        assert_eq!(log.segment_bytes, 1_048_576);
        assert_eq!(log.retention_ms, 1000);
    }

    #[test]
    fn dynamic_broker_values_become_topic_defaults_with_their_source() {
        let broker = BrokerConfig::default()
            .with_dynamic(
                &map(&[("log.segment.bytes", "2000000")]),
                &map(&[("log.retention.ms", "5000")]),
            )
            .unwrap();
        let topic = TopicConfig::validate(map(&[("retention.ms", "9000")])).unwrap();
        let plain = TopicConfig::default();
        let get = |t: &TopicConfig, n: &str| {
            t.describe(&broker)
                .into_iter()
                .find(|e| e.name == n)
                .unwrap()
        };
        assert_eq!(get(&plain, "retention.ms").value, "5000");
        assert_eq!(
            get(&plain, "retention.ms").source,
            ConfigSource::DynamicBroker
        );
        assert_eq!(
            get(&plain, "segment.bytes").source,
            ConfigSource::DynamicDefaultBroker
        );
        assert_eq!(get(&topic, "retention.ms").value, "9000");
        assert_eq!(
            get(&topic, "retention.ms").source,
            ConfigSource::DynamicTopic
        );
        assert_eq!(plain.log_config(&broker).retention_ms, 5000);
        assert_eq!(plain.log_config(&broker).segment_bytes, 2_000_000);
        assert_eq!(topic.log_config(&broker).retention_ms, 9000);
    }
}
