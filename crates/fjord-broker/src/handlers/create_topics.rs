//! CreateTopics, including `validate_only` dry runs. In cluster mode topics are created by
//! the controller (explicit replica assignments accepted); until partition data is
//! replicated, more than one replica is refused with INVALID_REPLICATION_FACTOR.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::authorizer::{Operation, Resource};
use crate::cluster::{ClusterNode, TopicToCreate};
use crate::dispatch::RequestContext;
use crate::error::topic_error;
use crate::log_manager::NewTopic;
use crate::topic_config::TopicConfig;
use crate::Broker;

/// Creates (or, with `validate_only`, checks) every requested topic independently.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    match &broker.cluster {
        None => handle_single(broker, ctx, request),
        Some(cluster) => handle_cluster(broker, cluster, ctx, request).await,
    }
}

/// Topic configs as given in the request (null values dropped).
fn requested_configs(
    configs: &[kafka_protocol::messages::create_topics_request::CreatableTopicConfig],
) -> BTreeMap<String, String> {
    configs
        .iter()
        .filter_map(|c| {
            c.value
                .as_ref()
                .map(|v| (c.name.to_string(), v.to_string()))
        })
        .collect()
}

/// Cluster mode: checks each topic here, then lets the controller create the rest at once.
async fn handle_cluster(
    broker: &Broker,
    cluster: &ClusterNode,
    ctx: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &request.topics {
        *seen.entry(t.name.to_string()).or_default() += 1;
    }
    let mut refused: Vec<Option<(ResponseError, String)>> = Vec::new();
    let mut to_create = Vec::new();
    for t in &request.topics {
        let name = t.name.to_string();
        let refusal = if seen.get(&name).copied().unwrap_or(0) > 1 {
            Some((
                ResponseError::InvalidRequest,
                format!("topic `{name}` appears more than once in the request"),
            ))
        } else if !broker.authorizer.authorize(
            ctx.session,
            Operation::Create,
            Resource::Topic(&name),
        ) {
            Some((
                ResponseError::TopicAuthorizationFailed,
                "not authorized".to_string(),
            ))
        } else {
            to_create.push(TopicToCreate {
                name,
                num_partitions: t.num_partitions,
                replication_factor: t.replication_factor,
                assignments: t
                    .assignments
                    .iter()
                    .map(|a| {
                        (
                            a.partition_index,
                            a.broker_ids.iter().map(|b| b.0).collect(),
                        )
                    })
                    .collect(),
                configs: requested_configs(&t.configs),
            });
            None
        };
        refused.push(refusal);
    }
    let mut created = cluster
        .create_topics(&broker.config, to_create, request.validate_only, false)
        .await
        .into_iter();
    let mut response = CreateTopicsResponse::default();
    for (t, refusal) in request.topics.into_iter().zip(refused) {
        let mut result = CreatableTopicResult::default();
        result.name = t.name;
        result.num_partitions = -1;
        result.replication_factor = -1;
        let outcome = match refusal {
            Some(refusal) => Err(refusal),
            None => created.next().unwrap_or_else(|| {
                Err((ResponseError::UnknownServerError, "no outcome".to_string()))
            }),
        };
        match outcome {
            Ok(topic) => {
                result.num_partitions = topic.num_partitions;
                result.replication_factor = topic.replication_factor;
                result.topic_id = topic.topic_id;
                if ctx.api_version >= 5 {
                    result.configs = Some(describe(&topic.config, broker));
                }
            }
            Err((code, message)) => {
                result.error_code = code.code();
                result.error_message = Some(str_bytes(message));
            }
        }
        response.topics.push(result);
    }
    response
}

fn handle_single(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &request.topics {
        *seen.entry(t.name.to_string()).or_default() += 1;
    }
    let mut response = CreateTopicsResponse::default();
    for t in request.topics {
        let name = t.name.to_string();
        let mut result = CreatableTopicResult::default();
        result.name = t.name.clone();
        result.num_partitions = -1;
        result.replication_factor = -1;
        let configs = requested_configs(&t.configs);
        let new = NewTopic {
            name: name.clone(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            has_assignments: !t.assignments.is_empty(),
            configs,
        };
        let outcome = if seen.get(&name).copied().unwrap_or(0) > 1 {
            Err((
                ResponseError::InvalidRequest,
                format!("topic `{name}` appears more than once in the request"),
            ))
        } else if !broker.authorizer.authorize(
            ctx.session,
            Operation::Create,
            Resource::Topic(&name),
        ) {
            Err((
                ResponseError::TopicAuthorizationFailed,
                "not authorized".to_string(),
            ))
        } else if request.validate_only {
            broker
                .logs
                .validate_new_topic(&new)
                .map(|(partitions, config)| (partitions, config, None))
                .map_err(|e| (topic_error(&e), e.to_string()))
        } else {
            broker
                .logs
                .create_topic(&new)
                .map(|topic| {
                    let config = topic
                        .config
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    (topic.partition_count(), config, Some(topic.id))
                })
                .map_err(|e| (topic_error(&e), e.to_string()))
        };
        match outcome {
            Ok((partitions, config, id)) => {
                result.num_partitions = partitions;
                result.replication_factor = 1;
                if let Some(id) = id {
                    result.topic_id = id;
                }
                if ctx.api_version >= 5 {
                    result.configs = Some(describe(&config, broker));
                }
            }
            Err((code, message)) => {
                result.error_code = code.code();
                result.error_message = Some(str_bytes(message));
            }
        }
        response.topics.push(result);
    }
    response
}

fn describe(config: &TopicConfig, broker: &Broker) -> Vec<CreatableTopicConfigs> {
    config
        .describe(&broker.logs.broker_config())
        .into_iter()
        .map(|e| {
            let mut c = CreatableTopicConfigs::default();
            c.name = str_bytes(e.name);
            c.value = Some(str_bytes(e.value));
            c.config_source = e.source as i8;
            c
        })
        .collect()
}
