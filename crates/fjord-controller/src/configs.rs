//! IncrementalAlterConfigs (SET and DELETE) for topics, brokers and the cluster default.

use std::collections::BTreeSet;

use crate::api::{AlterConfigsRequest, AlterConfigsResponse, AlterConfigsResult};
use crate::decision::Decision;
use crate::error_code::ErrorCode;
use crate::image::{MetadataImage, UNCLEAN_LEADER_ELECTION_ENABLE};
use crate::record::{ConfigRecord, ConfigResource, MetadataRecord};

/// Keys whose value must be `true` or `false`.
const BOOLEAN_KEYS: &[&str] = &[UNCLEAN_LEADER_ELECTION_ENABLE, "auto.create.topics.enable"];

/// Checks one key and value. The controller only checks what it can judge alone: a non-empty
/// key, booleans, `min.insync.replicas >= 1`, and integers for `*.ms` and `*.bytes` keys (where
/// -1 means "no limit"); brokers check the rest when they use the value.
pub fn validate_config(name: &str, value: Option<&String>) -> Result<(), String> {
    if name.is_empty() {
        return Err("config key is empty".into());
    }
    let Some(value) = value else {
        return Ok(());
    };
    if BOOLEAN_KEYS.contains(&name) && value != "true" && value != "false" {
        return Err(format!("{name} must be true or false, got {value:?}"));
    }
    if name == "min.insync.replicas" && !value.parse::<i32>().is_ok_and(|v| v >= 1) {
        return Err(format!("{name} must be an integer >= 1, got {value:?}"));
    }
    if (name.ends_with(".ms") || name.ends_with(".bytes")) && value.parse::<i64>().is_err() {
        return Err(format!("{name} must be an integer, got {value:?}"));
    }
    Ok(())
}

fn check_resource(
    image: &MetadataImage,
    resource: &ConfigResource,
) -> Result<(), (ErrorCode, String)> {
    match resource {
        ConfigResource::Topic(name) if image.topic(name).is_none() => Err((
            ErrorCode::UnknownTopicOrPartition,
            format!("topic {name} does not exist"),
        )),
        ConfigResource::Broker(id) if *id < 0 => Err((
            ErrorCode::InvalidRequest,
            format!("broker id {id} is negative"),
        )),
        _ => Ok(()),
    }
}

/// AlterConfigs: one Config record per key of every valid resource. A resource is all or
/// nothing; a resource named twice is refused.
pub fn alter_configs(
    image: &MetadataImage,
    request: &AlterConfigsRequest,
) -> Decision<AlterConfigsResponse> {
    let mut records = Vec::new();
    let mut results = Vec::new();
    let mut seen = BTreeSet::new();
    for change in &request.resources {
        let outcome = if seen.insert(&change.resource) {
            check_resource(image, &change.resource).and_then(|()| {
                change.configs.iter().try_for_each(|c| {
                    validate_config(&c.name, c.value.as_ref())
                        .map_err(|m| (ErrorCode::InvalidConfig, m))
                })
            })
        } else {
            Err((
                ErrorCode::InvalidRequest,
                "resource named twice".to_string(),
            ))
        };
        let (error, error_message) = match outcome {
            Ok(()) => {
                if !request.validate_only {
                    records.extend(change.configs.iter().map(|c| {
                        MetadataRecord::Config(ConfigRecord {
                            resource: change.resource.clone(),
                            name: c.name.clone(),
                            value: c.value.clone(),
                        })
                    }));
                }
                (ErrorCode::None, None)
            }
            Err((error, message)) => (error, Some(message)),
        };
        results.push(AlterConfigsResult {
            resource: change.resource.clone(),
            error,
            error_message,
        });
    }
    Decision {
        records,
        response: AlterConfigsResponse { results },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AlterConfigsResource, AlterableConfig};

    fn set(resource: ConfigResource, name: &str, value: Option<&str>) -> AlterConfigsResource {
        AlterConfigsResource {
            resource,
            configs: vec![AlterableConfig {
                name: name.into(),
                value: value.map(String::from),
            }],
        }
    }

    #[test]
    fn cluster_and_broker_configs_become_records() {
        let request = AlterConfigsRequest {
            resources: vec![
                set(
                    ConfigResource::Cluster,
                    UNCLEAN_LEADER_ELECTION_ENABLE,
                    Some("true"),
                ),
                set(ConfigResource::Broker(2), "log.retention.ms", None),
            ],
            validate_only: false,
        };
        let decision = alter_configs(&MetadataImage::default(), &request);
        assert_eq!(
            decision.records,
            vec![
                MetadataRecord::Config(ConfigRecord {
                    resource: ConfigResource::Cluster,
                    name: UNCLEAN_LEADER_ELECTION_ENABLE.into(),
                    value: Some("true".into()),
                }),
                MetadataRecord::Config(ConfigRecord {
                    resource: ConfigResource::Broker(2),
                    name: "log.retention.ms".into(),
                    value: None,
                }),
            ]
        );
        assert!(decision
            .response
            .results
            .iter()
            .all(|r| r.error == ErrorCode::None));
    }

    #[test]
    fn bad_values_unknown_topics_and_repeats_are_refused() {
        let request = AlterConfigsRequest {
            resources: vec![
                set(
                    ConfigResource::Cluster,
                    UNCLEAN_LEADER_ELECTION_ENABLE,
                    Some("yes"),
                ),
                set(
                    ConfigResource::Topic("nope".into()),
                    "retention.ms",
                    Some("1"),
                ),
                set(ConfigResource::Broker(1), "min.insync.replicas", Some("0")),
                set(ConfigResource::Broker(1), "segment.bytes", Some("1")),
            ],
            validate_only: false,
        };
        let decision = alter_configs(&MetadataImage::default(), &request);
        assert!(decision.records.is_empty());
        let errors: Vec<ErrorCode> = decision.response.results.iter().map(|r| r.error).collect();
        assert_eq!(
            errors,
            vec![
                ErrorCode::InvalidConfig,
                ErrorCode::UnknownTopicOrPartition,
                ErrorCode::InvalidConfig,
                ErrorCode::InvalidRequest,
            ]
        );
    }

    #[test]
    fn validate_only_writes_nothing() {
        let request = AlterConfigsRequest {
            resources: vec![set(ConfigResource::Cluster, "log.retention.ms", Some("5"))],
            validate_only: true,
        };
        let decision = alter_configs(&MetadataImage::default(), &request);
        assert!(decision.records.is_empty());
        assert_eq!(decision.response.results[0].error, ErrorCode::None);
    }
}
