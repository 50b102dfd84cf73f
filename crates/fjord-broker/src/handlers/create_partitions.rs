//! CreatePartitions: grow a topic's partition count; through the controller in cluster mode,
//! where explicit replica assignments for the new partitions are accepted.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::authorizer::{Operation, Resource};
use crate::dispatch::RequestContext;
use crate::error::topic_error;
use crate::Broker;

/// Grows each topic independently; explicit assignments are refused on a single node.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    for t in request.topics {
        let name = t.name.to_string();
        let authorized =
            broker
                .authorizer
                .authorize(ctx.session, Operation::Alter, Resource::Topic(&name));
        let outcome = if let Some(cluster) = &broker.cluster {
            if authorized {
                let assignments = t.assignments.as_ref().map(|lists| {
                    lists
                        .iter()
                        .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                        .collect()
                });
                cluster
                    .create_partitions(&name, t.count, assignments, request.validate_only)
                    .await
            } else {
                Err((
                    ResponseError::TopicAuthorizationFailed,
                    "not authorized".into(),
                ))
            }
        } else if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            Err((
                ResponseError::InvalidRequest,
                "explicit replica assignments are not supported on a single-node cluster"
                    .to_string(),
            ))
        } else if !authorized {
            Err((
                ResponseError::TopicAuthorizationFailed,
                "not authorized".into(),
            ))
        } else {
            broker
                .logs
                .create_partitions(&name, t.count, request.validate_only)
                .map_err(|e| (topic_error(&e), e.to_string()))
        };
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name;
        if let Err((code, message)) = outcome {
            r.error_code = code.code();
            r.error_message = Some(str_bytes(message));
        }
        response.results.push(r);
    }
    response
}
