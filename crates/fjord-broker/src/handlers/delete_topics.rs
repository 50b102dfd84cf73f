//! DeleteTopics, by name (v1-v5) or by name or id (v6); through the controller in cluster
//! mode, where every broker then deletes its logs of the topic.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::str_bytes;
use crate::authorizer::{Operation, Resource};
use crate::cluster::ClusterNode;
use crate::dispatch::RequestContext;
use crate::error::topic_error;
use crate::Broker;
use fjord_controller::api::TopicRef;

/// Deletes every requested topic independently.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<TopicName>, Uuid)> = if ctx.api_version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    if let Some(cluster) = &broker.cluster {
        return handle_cluster(broker, cluster, ctx, targets).await;
    }
    let mut response = DeleteTopicsResponse::default();
    for (name, id) in targets {
        let mut result = DeletableTopicResult::default();
        result.topic_id = id;
        result.name = name.clone();
        let resolved = match (&name, id.is_nil()) {
            (Some(n), _) => Ok(n.to_string()),
            (None, false) => broker.logs.topic_by_id(id).map(|t| t.name.clone()).ok_or((
                ResponseError::UnknownTopicId,
                format!("no topic has id {id}"),
            )),
            (None, true) => Err((
                ResponseError::InvalidRequest,
                "neither a topic name nor an id".to_string(),
            )),
        };
        let outcome = resolved.and_then(|name| {
            if !broker
                .authorizer
                .authorize(ctx.session, Operation::Delete, Resource::Topic(&name))
            {
                return Err((
                    ResponseError::TopicAuthorizationFailed,
                    "not authorized".to_string(),
                ));
            }
            broker
                .logs
                .delete_topic(&name)
                .map_err(|e| (topic_error(&e), e.to_string()))
        });
        match outcome {
            Ok(topic) => {
                result.name = Some(TopicName(str_bytes(topic.name.clone())));
                result.topic_id = topic.id;
            }
            Err((code, message)) => {
                result.error_code = code.code();
                result.error_message = Some(str_bytes(message));
            }
        }
        response.responses.push(result);
    }
    response
}

async fn handle_cluster(
    broker: &Broker,
    cluster: &ClusterNode,
    ctx: &RequestContext<'_>,
    targets: Vec<(Option<TopicName>, Uuid)>,
) -> DeleteTopicsResponse {
    let image = cluster.image();
    let mut refused = Vec::new();
    let mut refs = Vec::new();
    for (name, id) in &targets {
        let known_name = match (name, id.is_nil()) {
            (Some(n), _) => Some(n.to_string()),
            (None, false) => image.topic_by_id(*id).map(|t| t.name.clone()),
            (None, true) => None,
        };
        let refusal = match (name, id.is_nil(), &known_name) {
            (None, true, _) => Some((
                ResponseError::InvalidRequest,
                "neither a topic name nor an id".to_string(),
            )),
            (_, _, Some(n))
                if !broker.authorizer.authorize(
                    ctx.session,
                    Operation::Delete,
                    Resource::Topic(n),
                ) =>
            {
                Some((
                    ResponseError::TopicAuthorizationFailed,
                    "not authorized".to_string(),
                ))
            }
            (Some(n), _, _) => {
                refs.push(TopicRef::Name(n.to_string()));
                None
            }
            (None, false, _) => {
                refs.push(TopicRef::Id(*id));
                None
            }
        };
        refused.push(refusal);
    }
    let mut deleted = if refs.is_empty() {
        Vec::new()
    } else {
        cluster.delete_topics(refs).await
    }
    .into_iter();
    let mut response = DeleteTopicsResponse::default();
    for ((name, id), refusal) in targets.into_iter().zip(refused) {
        let mut result = DeletableTopicResult::default();
        result.topic_id = id;
        result.name = name;
        let outcome = match refusal {
            Some(refusal) => Err(refusal),
            None => deleted.next().unwrap_or_else(|| {
                Err((ResponseError::UnknownServerError, "no outcome".to_string()))
            }),
        };
        match outcome {
            Ok((name, id)) => {
                result.name = Some(TopicName(str_bytes(name)));
                result.topic_id = id;
            }
            Err((code, message)) => {
                result.error_code = code.code();
                result.error_message = Some(str_bytes(message));
            }
        }
        response.responses.push(result);
    }
    response
}
