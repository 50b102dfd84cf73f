//! AlterConfigs (the legacy whole-set form) and IncrementalAlterConfigs (SET, DELETE, APPEND,
//! SUBTRACT) for topics and brokers. Changes are validated as a whole, persisted, and applied to
//! the logs at once.
//!
//! A BROKER resource named "" is the cluster-wide default entity (Kafka's `<default>`); one
//! named by this broker's node id is this broker. Only the keys in
//! [`crate::config::DYNAMIC_KEYS`] may be set there; any other key is refused with
//! INVALID_CONFIG as read-only.
//!
//! In cluster mode the result is checked here as on a single node, then written through the
//! controller into the metadata image, which every broker applies to its logs.

use std::collections::BTreeMap;

use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use fjord_controller::record::ConfigResource;

use super::str_bytes;
use crate::authorizer::{Operation, Resource};
use crate::cluster::ClusterNode;
use crate::dispatch::RequestContext;
use crate::error::topic_error;
use crate::log_manager::BrokerEntity;
use crate::topic_config::is_list_config;
use crate::topic_config::TopicConfig;
use crate::Broker;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

type Outcome = Result<(), (ResponseError, String)>;

/// Applies `change` to the dynamic configs of a broker entity and stores the result.
fn alter_broker(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Outcome,
) -> Outcome {
    let node_id = broker.config.node_id.to_string();
    let entity = if name.is_empty() {
        BrokerEntity::Default
    } else if name == node_id {
        BrokerEntity::This
    } else {
        return Err((
            ResponseError::InvalidRequest,
            format!("this is broker {node_id}, not `{name}`"),
        ));
    };
    if !broker
        .authorizer
        .authorize(ctx.session, Operation::AlterConfigs, Resource::Cluster)
    {
        return Err((
            ResponseError::ClusterAuthorizationFailed,
            "not authorized".into(),
        ));
    }
    let current = broker.logs.broker_config();
    let mut overrides = match entity {
        BrokerEntity::Default => current.dynamic_default.clone(),
        BrokerEntity::This => current.dynamic_broker.clone(),
    };
    change(&mut overrides)?;
    broker
        .logs
        .alter_broker_config(entity, overrides, validate_only)
        .map_err(|e| (topic_error(&e), e.to_string()))
}

/// Applies `change` to the resource's current overrides and stores the result.
fn alter_topic(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Outcome,
) -> Outcome {
    match resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => return alter_broker(broker, ctx, name, validate_only, change),
        other => {
            return Err((
                ResponseError::InvalidRequest,
                format!("resource type {other} has no alterable configs"),
            ))
        }
    }
    if !broker
        .authorizer
        .authorize(ctx.session, Operation::AlterConfigs, Resource::Topic(name))
    {
        return Err((
            ResponseError::TopicAuthorizationFailed,
            "not authorized".into(),
        ));
    }
    let topic = broker.logs.topic(name).ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("topic `{name}` does not exist"),
        )
    })?;
    let mut overrides = topic
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .overrides
        .clone();
    change(&mut overrides)?;
    broker
        .logs
        .alter_topic_config(name, overrides, validate_only)
        .map_err(|e| (topic_error(&e), e.to_string()))
}

/// Cluster mode: the same checks, then the controller. The current overrides are the image's.
async fn alter_in_cluster(
    broker: &Broker,
    cluster: &ClusterNode,
    ctx: &RequestContext<'_>,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Outcome,
) -> Outcome {
    let image = cluster.image();
    let resource = match resource_type {
        RESOURCE_TOPIC => {
            if !broker.authorizer.authorize(
                ctx.session,
                Operation::AlterConfigs,
                Resource::Topic(name),
            ) {
                return Err((
                    ResponseError::TopicAuthorizationFailed,
                    "not authorized".into(),
                ));
            }
            if image.topic(name).is_none() {
                return Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic `{name}` does not exist"),
                ));
            }
            ConfigResource::Topic(name.to_string())
        }
        RESOURCE_BROKER => {
            let node_id = broker.config.node_id.to_string();
            if !name.is_empty() && name != node_id {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("this is broker {node_id}, not `{name}`"),
                ));
            }
            if !broker
                .authorizer
                .authorize(ctx.session, Operation::AlterConfigs, Resource::Cluster)
            {
                return Err((
                    ResponseError::ClusterAuthorizationFailed,
                    "not authorized".into(),
                ));
            }
            if name.is_empty() {
                ConfigResource::Cluster
            } else {
                ConfigResource::Broker(broker.config.node_id)
            }
        }
        other => {
            return Err((
                ResponseError::InvalidRequest,
                format!("resource type {other} has no alterable configs"),
            ))
        }
    };
    let mut overrides = image.configs(&resource);
    change(&mut overrides)?;
    let invalid = |e: &dyn std::fmt::Display| (ResponseError::InvalidConfig, e.to_string());
    match &resource {
        ConfigResource::Topic(_) => {
            let validated = TopicConfig::validate(overrides.clone()).map_err(|e| invalid(&e))?;
            validated
                .log_config(&broker.logs.broker_config())
                .validate()
                .map_err(|e| invalid(&e))?;
        }
        ConfigResource::Cluster => {
            let own = image.configs(&ConfigResource::Broker(broker.config.node_id));
            broker
                .config
                .with_dynamic(&overrides, &own)
                .map_err(|e| invalid(&e))?;
        }
        ConfigResource::Broker(_) => {
            let default = image.configs(&ConfigResource::Cluster);
            broker
                .config
                .with_dynamic(&default, &overrides)
                .map_err(|e| invalid(&e))?;
        }
    }
    cluster
        .alter_configs(resource, overrides, validate_only)
        .await
}

/// Applies `change` to the resource's overrides, on this broker or through the controller.
async fn alter(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Outcome,
) -> Outcome {
    match &broker.cluster {
        None => alter_topic(broker, ctx, resource_type, name, validate_only, change),
        Some(cluster) => {
            alter_in_cluster(
                broker,
                cluster,
                ctx,
                resource_type,
                name,
                validate_only,
                change,
            )
            .await
        }
    }
}

/// Legacy AlterConfigs: the given set replaces every override of the resource.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut response = AlterConfigsResponse::default();
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let outcome = alter(
            broker,
            ctx,
            resource.resource_type,
            &name,
            request.validate_only,
            |overrides| {
                overrides.clear();
                for c in &resource.configs {
                    if let Some(v) = &c.value {
                        overrides.insert(c.name.to_string(), v.to_string());
                    }
                }
                Ok(())
            },
        )
        .await;
        let mut r = alter_configs_response::AlterConfigsResourceResponse::default();
        r.resource_type = resource.resource_type;
        r.resource_name = resource.resource_name;
        if let Err((code, message)) = outcome {
            r.error_code = code.code();
            r.error_message = Some(str_bytes(message));
        }
        response.responses.push(r);
    }
    response
}

fn list_items(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// IncrementalAlterConfigs: each entry sets, deletes, appends to or subtracts from one key.
pub(crate) async fn handle_incremental(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let outcome = alter(
            broker,
            ctx,
            resource.resource_type,
            &name,
            request.validate_only,
            |overrides| {
                for c in &resource.configs {
                    let key = c.name.to_string();
                    let value = c.value.as_ref().map(StrBytes::to_string);
                    match (c.config_operation, value) {
                        (OP_SET, Some(v)) => {
                            overrides.insert(key, v);
                        }
                        (OP_SET, None) => {
                            return Err((
                                ResponseError::InvalidRequest,
                                format!("SET of `{key}` needs a value"),
                            ))
                        }
                        (OP_DELETE, _) => {
                            overrides.remove(&key);
                        }
                        (OP_APPEND | OP_SUBTRACT, _) if !is_list_config(&key) => {
                            return Err((
                                ResponseError::InvalidConfig,
                                format!(
                                "`{key}` is not a list; APPEND and SUBTRACT apply to list configs"
                            ),
                            ))
                        }
                        (op @ (OP_APPEND | OP_SUBTRACT), v) => {
                            let current = overrides.get(&key).cloned().unwrap_or_default();
                            let mut items = list_items(&current);
                            for item in list_items(&v.unwrap_or_default()) {
                                if op == OP_APPEND && !items.contains(&item) {
                                    items.push(item);
                                } else if op == OP_SUBTRACT {
                                    items.retain(|i| *i != item);
                                }
                            }
                            overrides.insert(key, items.join(","));
                        }
                        (op, _) => {
                            return Err((
                                ResponseError::InvalidRequest,
                                format!("unknown config operation {op}"),
                            ))
                        }
                    }
                }
                Ok(())
            },
        )
        .await;
        let mut r = incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        r.resource_type = resource.resource_type;
        r.resource_name = resource.resource_name;
        if let Err((code, message)) = outcome {
            r.error_code = code.code();
            r.error_message = Some(str_bytes(message));
        }
        response.responses.push(r);
    }
    response
}
