//! FindCoordinator. On a single node this broker coordinates every consumer group (key type
//! 0) and every transactional id (key type 1). In cluster mode the coordinator of a key is
//! the leader of the key's partition of `__consumer_offsets` (groups) or
//! `__transaction_state` (transactional ids), Kafka's mapping; the topic is created through
//! the controller, with one replica per partition, on first use.

use fjord_group::partition_for_group;
use fjord_txn::partition_for_transactional_id;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::cluster::{partition_image, ClusterNode};
use crate::dispatch::RequestContext;
use crate::group_runtime::{offsets_topic_configs, OFFSETS_TOPIC};
use crate::txn_runtime::{transaction_state_topic_configs, TRANSACTION_STATE_TOPIC};
use crate::Broker;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

type Refusal = (ResponseError, String);

/// Answers the single key (v0-v3) or every batched key (v4+).
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if ctx.api_version >= 4 {
        request.coordinator_keys.clone()
    } else {
        vec![request.key.clone()]
    };
    let found: Vec<Result<(i32, String, u16), Refusal>> = match &broker.cluster {
        None => {
            let found = local(broker, ctx, request.key_type);
            keys.iter().map(|_| found.clone()).collect()
        }
        Some(cluster) => {
            let ready = ensure_topic(broker, cluster, request.key_type).await;
            keys.iter()
                .map(|key| {
                    ready
                        .clone()
                        .and_then(|()| leader_of(cluster, ctx, request.key_type, key.as_str()))
                })
                .collect()
        }
    };
    let coordinators: Vec<Coordinator> = keys
        .iter()
        .zip(found)
        .map(|(key, found)| {
            let mut c = Coordinator::default();
            c.key = key.clone();
            c.node_id = BrokerId(-1);
            c.port = -1;
            match found {
                Ok((node_id, host, port)) => {
                    c.node_id = BrokerId(node_id);
                    c.host = str_bytes(host);
                    c.port = i32::from(port);
                }
                Err((code, message)) => {
                    c.error_code = code.code();
                    c.error_message = Some(str_bytes(message));
                }
            }
            c
        })
        .collect();
    let mut response = FindCoordinatorResponse::default();
    if ctx.api_version >= 4 {
        response.coordinators = coordinators;
    } else if let Some(c) = coordinators.into_iter().next() {
        response.error_code = c.error_code;
        if ctx.api_version >= 1 {
            response.error_message = c.error_message;
        }
        response.node_id = c.node_id;
        response.host = c.host;
        response.port = c.port;
    }
    response
}

fn unknown_key_type() -> Refusal {
    (
        ResponseError::InvalidRequest,
        "unknown coordinator key type".to_string(),
    )
}

/// A single node coordinates everything itself.
fn local(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    key_type: i8,
) -> Result<(i32, String, u16), Refusal> {
    if !matches!(key_type, KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION) {
        return Err(unknown_key_type());
    }
    let endpoint = broker
        .advertised
        .iter()
        .find(|l| l.name == ctx.listener)
        .ok_or_else(|| {
            (
                ResponseError::CoordinatorNotAvailable,
                "no advertised endpoint for this listener".to_string(),
            )
        })?;
    Ok((broker.config.node_id, endpoint.host.clone(), endpoint.port))
}

/// Creates the key type's internal topic through the controller unless it exists.
async fn ensure_topic(broker: &Broker, cluster: &ClusterNode, key_type: i8) -> Result<(), Refusal> {
    let (topic, partitions, replication_factor, configs) = match key_type {
        KEY_TYPE_GROUP => (
            OFFSETS_TOPIC,
            broker.config.offsets_topic_num_partitions,
            cluster.config().offsets_topic_replication_factor,
            offsets_topic_configs(),
        ),
        KEY_TYPE_TRANSACTION => (
            TRANSACTION_STATE_TOPIC,
            broker.config.transaction_state_log_num_partitions,
            cluster.config().transaction_state_log_replication_factor,
            transaction_state_topic_configs(),
        ),
        _ => return Err(unknown_key_type()),
    };
    cluster
        .ensure_internal_topic(
            &broker.config,
            topic,
            partitions,
            replication_factor,
            configs,
        )
        .await
        .map_err(|(code, message)| {
            tracing::warn!(%topic, ?code, %message, "cannot create the internal topic");
            (
                ResponseError::CoordinatorNotAvailable,
                format!("{topic} is not available: {message}"),
            )
        })
}

/// The leader of the key's internal-topic partition, at its endpoint for this listener.
fn leader_of(
    cluster: &ClusterNode,
    ctx: &RequestContext<'_>,
    key_type: i8,
    key: &str,
) -> Result<(i32, String, u16), Refusal> {
    let image = cluster.image();
    let unavailable = |why: String| (ResponseError::CoordinatorNotAvailable, why);
    let topic = match key_type {
        KEY_TYPE_GROUP => OFFSETS_TOPIC,
        KEY_TYPE_TRANSACTION => TRANSACTION_STATE_TOPIC,
        _ => return Err(unknown_key_type()),
    };
    let count = image
        .topic(topic)
        .map(|t| t.partitions.len() as i32)
        .ok_or_else(|| unavailable(format!("{topic} does not exist yet")))?;
    let index = match key_type {
        KEY_TYPE_GROUP => partition_for_group(key, count),
        _ => partition_for_transactional_id(key, count),
    };
    let partition = partition_image(&image, topic, index)
        .ok_or_else(|| unavailable(format!("{topic}-{index} does not exist")))?;
    let leader = image
        .unfenced_brokers()
        .find(|b| b.broker_id == partition.leader)
        .ok_or_else(|| unavailable(format!("{topic}-{index} has no leader")))?;
    let endpoint = leader
        .listeners
        .iter()
        .find(|l| l.name == ctx.listener)
        .ok_or_else(|| {
            unavailable(format!(
                "broker {} has no {} endpoint",
                leader.broker_id, ctx.listener
            ))
        })?;
    Ok((leader.broker_id, endpoint.host.clone(), endpoint.port))
}
