//! Metadata: brokers, the cluster id, and topics with their partitions. On a single node this
//! broker leads every partition at leader epoch 0. In cluster mode the answer comes from the
//! applied metadata image: the unfenced brokers at their endpoint for the listener the
//! request came in on, the active controller, and each partition's leader, leader epoch,
//! replicas, ISR and offline replicas; topics are auto-created through the controller.

use std::collections::BTreeSet;
use std::sync::Arc;

use fjord_controller::record::NO_LEADER;
use fjord_controller::{MetadataImage, TopicImage};

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::authorizer::{Operation, Resource};
use crate::cluster::{ClusterNode, TopicToCreate};
use crate::dispatch::RequestContext;
use crate::error::topic_error;
use crate::log_manager::{validate_topic_name, NewTopic, Topic, TopicError};
use crate::Broker;

/// Kafka reports "authorized operations not requested" as this sentinel.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Answers Metadata, auto-creating requested topics when both broker and client allow it.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: MetadataRequest,
) -> MetadataResponse {
    match &broker.cluster {
        None => handle_single(broker, ctx, request),
        Some(cluster) => handle_cluster(broker, cluster, ctx, request).await,
    }
}

fn handle_single(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: MetadataRequest,
) -> MetadataResponse {
    let node_id = broker.config.node_id;
    let mut response = MetadataResponse::default();
    response.brokers = broker
        .advertised
        .iter()
        .filter(|l| l.name == ctx.listener)
        .map(|l| {
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(node_id);
            b.host = str_bytes(l.host.clone());
            b.port = i32::from(l.port);
            b
        })
        .collect();
    response.cluster_id = Some(str_bytes(broker.logs.cluster_id()));
    response.controller_id = BrokerId(node_id);
    response.cluster_authorized_operations =
        if (8..=10).contains(&ctx.api_version) && request.include_cluster_authorized_operations {
            authorized_operations(broker, ctx, Resource::Cluster, CLUSTER_OPERATIONS)
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        };
    let topic_operations = ctx.api_version >= 8 && request.include_topic_authorized_operations;

    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested = match request.topics {
        None => None,
        Some(list) if list.is_empty() && ctx.api_version == 0 => None,
        Some(list) => Some(list),
    };
    // v0-v3 have no flag: those clients expect auto-creation.
    let allow_auto_create = ctx.api_version < 4 || request.allow_auto_topic_creation;
    response.topics = match requested {
        None => broker
            .logs
            .topics()
            .iter()
            .filter(|t| authorized(broker, ctx, &t.name))
            .map(|t| topic_metadata(broker, ctx, t, topic_operations))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|requested| {
                let by_id = requested.name.is_none() && !requested.topic_id.is_nil();
                let found = match (&requested.name, by_id) {
                    (Some(name), _) => {
                        lookup_or_create(broker, ctx, name.as_str(), allow_auto_create)
                    }
                    (None, true) => broker
                        .logs
                        .topic_by_id(requested.topic_id)
                        .ok_or_else(|| TopicError::UnknownTopic(requested.topic_id.to_string())),
                    (None, false) => Err(TopicError::InvalidName {
                        name: String::new(),
                        reason: "neither a name nor an id".into(),
                    }),
                };
                match found {
                    Ok(topic) => topic_metadata(broker, ctx, &topic, topic_operations),
                    Err(e) => {
                        let mut t = MetadataResponseTopic::default();
                        t.name = requested.name.clone();
                        t.topic_id = requested.topic_id;
                        t.error_code = match (&e, by_id) {
                            (TopicError::UnknownTopic(_), true) => {
                                ResponseError::UnknownTopicId.code()
                            }
                            _ => topic_error(&e).code(),
                        };
                        t.topic_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
                        t
                    }
                }
            })
            .collect(),
    };
    response
}

fn authorized(broker: &Broker, ctx: &RequestContext<'_>, topic: &str) -> bool {
    broker
        .authorizer
        .authorize(ctx.session, Operation::Describe, Resource::Topic(topic))
}

fn lookup_or_create(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    name: &str,
    allow_auto_create: bool,
) -> Result<Arc<Topic>, TopicError> {
    validate_topic_name(name)?;
    if let Some(topic) = broker.logs.topic(name) {
        return Ok(topic);
    }
    let may_create = allow_auto_create
        && broker.config.auto_create_topics_enable
        && broker
            .authorizer
            .authorize(ctx.session, Operation::Create, Resource::Topic(name));
    if !may_create {
        return Err(TopicError::UnknownTopic(name.to_string()));
    }
    let new = NewTopic {
        name: name.to_string(),
        num_partitions: -1,
        replication_factor: -1,
        has_assignments: false,
        configs: Default::default(),
    };
    match broker.logs.create_topic(&new) {
        Ok(topic) => Ok(topic),
        // Another client created it between the lookup and the create.
        Err(TopicError::AlreadyExists(_)) => broker
            .logs
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string())),
        Err(e) => Err(e),
    }
}

/// Kafka's ACL operation codes that apply to topics.
const TOPIC_OPERATIONS: &[(Operation, u8)] = &[
    (Operation::Read, 3),
    (Operation::Write, 4),
    (Operation::Create, 5),
    (Operation::Delete, 6),
    (Operation::Alter, 7),
    (Operation::Describe, 8),
    (Operation::DescribeConfigs, 10),
    (Operation::AlterConfigs, 11),
];

/// Kafka's ACL operation codes that apply to the cluster.
const CLUSTER_OPERATIONS: &[(Operation, u8)] = &[
    (Operation::Create, 5),
    (Operation::Alter, 7),
    (Operation::Describe, 8),
    (Operation::ClusterAction, 9),
    (Operation::DescribeConfigs, 10),
    (Operation::AlterConfigs, 11),
    (Operation::IdempotentWrite, 12),
];

/// Cluster operations the session may perform, shared with DescribeCluster.
pub(crate) fn cluster_authorized_operations(broker: &Broker, ctx: &RequestContext<'_>) -> i32 {
    authorized_operations(broker, ctx, Resource::Cluster, CLUSTER_OPERATIONS)
}

/// The bit field of operations the session may perform, as Metadata v8+ reports when asked.
fn authorized_operations(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    resource: Resource<'_>,
    operations: &[(Operation, u8)],
) -> i32 {
    operations
        .iter()
        .filter(|(op, _)| broker.authorizer.authorize(ctx.session, *op, resource))
        .fold(0, |bits, (_, code)| bits | (1 << code))
}

fn topic_metadata(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    topic: &Topic,
    include_operations: bool,
) -> MetadataResponseTopic {
    let node_id = broker.config.node_id;
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(str_bytes(topic.name.clone())));
    t.topic_id = topic.id;
    t.is_internal = topic.is_internal();
    t.topic_authorized_operations = if include_operations {
        authorized_operations(broker, ctx, Resource::Topic(&topic.name), TOPIC_OPERATIONS)
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    t.partitions = topic
        .hosted()
        .map(|p| {
            let mut m = MetadataResponsePartition::default();
            m.partition_index = p.index;
            m.leader_id = BrokerId(node_id);
            m.leader_epoch = 0;
            m.replica_nodes = vec![BrokerId(node_id)];
            m.isr_nodes = vec![BrokerId(node_id)];
            m
        })
        .collect();
    t
}

/// v0: an empty list means all topics; v1+: null means all, empty means none.
fn requested_topics(
    request: &MetadataRequest,
    version: i16,
) -> Option<&Vec<kafka_protocol::messages::metadata_request::MetadataRequestTopic>> {
    match &request.topics {
        None => None,
        Some(list) if list.is_empty() && version == 0 => None,
        Some(list) => Some(list),
    }
}

/// Cluster mode: auto-creates what is missing (when allowed), then answers from the image.
async fn handle_cluster(
    broker: &Broker,
    cluster: &ClusterNode,
    ctx: &RequestContext<'_>,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = ctx.api_version;
    // v0-v3 have no flag: those clients expect auto-creation.
    let allow_auto_create = version < 4 || request.allow_auto_topic_creation;
    let mut creation_errors: Vec<(String, ResponseError)> = Vec::new();
    if let Some(list) = requested_topics(&request, version) {
        let image = cluster.image();
        let missing: BTreeSet<String> = list
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
            .filter(|name| image.topic(name).is_none() && validate_topic_name(name).is_ok())
            .filter(|name| {
                allow_auto_create
                    && broker.config.auto_create_topics_enable
                    && broker.authorizer.authorize(
                        ctx.session,
                        Operation::Create,
                        Resource::Topic(name),
                    )
            })
            .collect();
        if !missing.is_empty() {
            let topics: Vec<TopicToCreate> = missing
                .iter()
                .map(|name| TopicToCreate {
                    name: name.clone(),
                    num_partitions: -1,
                    replication_factor: -1,
                    assignments: Vec::new(),
                    configs: Default::default(),
                })
                .collect();
            let outcomes = cluster
                .create_topics(&broker.config, topics, false, false)
                .await;
            for (name, outcome) in missing.into_iter().zip(outcomes) {
                match outcome {
                    Ok(_) | Err((ResponseError::TopicAlreadyExists, _)) => {}
                    Err((code, message)) => {
                        tracing::info!(topic = %name, error = %message, "auto-creation refused");
                        creation_errors.push((name, code));
                    }
                }
            }
        }
    }
    let image = cluster.image();
    let mut response = MetadataResponse::default();
    response.brokers = image
        .unfenced_brokers()
        .filter_map(|b| {
            let endpoint = b.listeners.iter().find(|l| l.name == ctx.listener)?;
            let mut m = MetadataResponseBroker::default();
            m.node_id = BrokerId(b.broker_id);
            m.host = str_bytes(endpoint.host.clone());
            m.port = i32::from(endpoint.port);
            m.rack = b.rack.clone().map(str_bytes);
            Some(m)
        })
        .collect();
    response.cluster_id = Some(str_bytes(broker.logs.cluster_id()));
    response.controller_id = BrokerId(cluster.controller_id_for_clients(ctx.listener));
    response.cluster_authorized_operations =
        if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
            authorized_operations(broker, ctx, Resource::Cluster, CLUSTER_OPERATIONS)
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        };
    let topic_operations = version >= 8 && request.include_topic_authorized_operations;
    let describe = |t: &TopicImage| image_topic(broker, ctx, &image, t, topic_operations);
    response.topics = match requested_topics(&request, version) {
        None => image
            .topics()
            .values()
            .filter(|t| authorized(broker, ctx, &t.name))
            .map(describe)
            .collect(),
        Some(list) => list
            .iter()
            .map(|requested| {
                let by_id = requested.name.is_none() && !requested.topic_id.is_nil();
                let found = match (&requested.name, by_id) {
                    (Some(name), _) => match validate_topic_name(name.as_str()) {
                        Err(_) => Err(ResponseError::InvalidTopicException),
                        Ok(()) => image.topic(name.as_str()).ok_or_else(|| {
                            creation_errors
                                .iter()
                                .find(|(n, _)| n == name.as_str())
                                .map_or(ResponseError::UnknownTopicOrPartition, |(_, e)| *e)
                        }),
                    },
                    (None, true) => image
                        .topic_by_id(requested.topic_id)
                        .ok_or(ResponseError::UnknownTopicId),
                    (None, false) => Err(ResponseError::InvalidTopicException),
                };
                match found {
                    Ok(topic) => describe(topic),
                    Err(code) => {
                        let mut t = MetadataResponseTopic::default();
                        t.name = requested.name.clone();
                        t.topic_id = requested.topic_id;
                        t.error_code = code.code();
                        t.topic_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
                        t
                    }
                }
            })
            .collect(),
    };
    response
}

/// One topic of the image as Metadata reports it.
fn image_topic(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    image: &MetadataImage,
    topic: &TopicImage,
    include_operations: bool,
) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(str_bytes(topic.name.clone())));
    t.topic_id = topic.topic_id;
    t.is_internal = topic.name.starts_with("__");
    t.topic_authorized_operations = if include_operations {
        authorized_operations(broker, ctx, Resource::Topic(&topic.name), TOPIC_OPERATIONS)
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    let ids = |brokers: &[i32]| brokers.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    t.partitions = topic
        .partitions
        .iter()
        .map(|(&index, p)| {
            let mut m = MetadataResponsePartition::default();
            m.partition_index = index;
            m.leader_id = BrokerId(p.leader);
            m.leader_epoch = p.leader_epoch;
            m.replica_nodes = ids(&p.replicas);
            m.isr_nodes = ids(&p.isr);
            m.offline_replicas = p
                .replicas
                .iter()
                .filter(|r| !image.is_unfenced(**r))
                .map(|r| BrokerId(*r))
                .collect();
            let reachable = image
                .broker(p.leader)
                .is_some_and(|b| b.listeners.iter().any(|l| l.name == ctx.listener));
            m.error_code = if p.leader == NO_LEADER {
                ResponseError::LeaderNotAvailable.code()
            } else if !reachable {
                ResponseError::ListenerNotFound.code()
            } else {
                0
            };
            m
        })
        .collect();
    t
}
