//! DescribeConfigs for topics and the broker, with effective values and where they come from.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::authorizer::{Operation, Resource};
use crate::config::is_dynamic_key;
use crate::dispatch::RequestContext;
use crate::topic_config::{ConfigEntry, ConfigSource, ConfigType};
use crate::Broker;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Describes each requested resource independently.
pub(crate) fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut response = DescribeConfigsResponse::default();
    for resource in request.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let name = resource.resource_name.to_string();
        let entries = match resource.resource_type {
            RESOURCE_TOPIC => {
                if !broker.authorizer.authorize(
                    ctx.session,
                    Operation::DescribeConfigs,
                    Resource::Topic(&name),
                ) {
                    Err((
                        ResponseError::TopicAuthorizationFailed,
                        "not authorized".into(),
                    ))
                } else {
                    match broker.logs.topic(&name) {
                        Some(topic) => Ok(topic
                            .config
                            .read()
                            .unwrap_or_else(|p| p.into_inner())
                            .describe(&broker.logs.broker_config())),
                        None => Err((
                            ResponseError::UnknownTopicOrPartition,
                            format!("topic `{name}` does not exist"),
                        )),
                    }
                }
            }
            RESOURCE_BROKER => {
                if !name.is_empty() && name != broker.config.node_id.to_string() {
                    Err((
                        ResponseError::InvalidRequest,
                        format!("this is broker {}, not `{name}`", broker.config.node_id),
                    ))
                } else {
                    Ok(broker_entries(broker, name.is_empty()))
                }
            }
            other => Err((
                ResponseError::InvalidRequest,
                format!("resource type {other} has no configs here"),
            )),
        };
        match entries {
            Ok(entries) => {
                let keys = resource.configuration_keys.as_ref();
                result.configs = entries
                    .into_iter()
                    .filter(|e| keys.is_none_or(|ks| ks.iter().any(|k| k.as_str() == e.name)))
                    .map(|e| {
                        let read_only =
                            resource.resource_type != RESOURCE_TOPIC && !is_dynamic_key(&e.name);
                        to_result(e, request.include_synonyms, read_only)
                    })
                    .collect();
            }
            Err((code, message)) => {
                result.error_code = code.code();
                result.error_message = Some(str_bytes(message));
            }
        }
        response.results.push(result);
    }
    response
}

/// The broker's effective keys; for the default entity (resource name ""), Kafka's
/// `<default>`, only the keys set dynamically for it.
fn broker_entries(broker: &Broker, default_entity: bool) -> Vec<ConfigEntry> {
    let config = broker.logs.broker_config();
    if default_entity {
        return config
            .dynamic_default
            .iter()
            .map(|(name, value)| ConfigEntry {
                name: name.clone(),
                value: value.clone(),
                source: ConfigSource::DynamicDefaultBroker,
                config_type: broker_key_type(name),
            })
            .collect();
    }
    config
        .describe()
        .into_iter()
        .map(|(name, value)| ConfigEntry {
            name: name.to_string(),
            value,
            source: config.source_of(name),
            config_type: broker_key_type(name),
        })
        .collect()
}

fn broker_key_type(name: &str) -> ConfigType {
    match name {
        "auto.create.topics.enable" | "log.cleaner.enable" => ConfigType::Boolean,
        "listeners" | "advertised.listeners" | "log.dirs" | "log.cleanup.policy" => {
            ConfigType::List
        }
        "log.message.timestamp.type" => ConfigType::String,
        _ => ConfigType::Long,
    }
}

fn to_result(
    entry: ConfigEntry,
    include_synonyms: bool,
    read_only: bool,
) -> DescribeConfigsResourceResult {
    let mut r = DescribeConfigsResourceResult::default();
    r.name = str_bytes(entry.name.clone());
    r.value = Some(str_bytes(entry.value.clone()));
    r.config_source = entry.source as i8;
    r.config_type = entry.config_type as i8;
    // Topic configs change at runtime; broker keys only when listed in DYNAMIC_KEYS.
    r.read_only = read_only;
    if include_synonyms {
        let mut s = DescribeConfigsSynonym::default();
        s.name = str_bytes(entry.name);
        s.value = Some(str_bytes(entry.value));
        s.source = entry.source as i8;
        r.synonyms = vec![s];
    }
    r
}
