//! InitProducerId for idempotent producers: a fresh producer id at epoch 0, or (v3+) the same
//! id with its epoch bumped when the producer asks to continue after an error (KIP-360).
//!
//! Transactional ids need the transaction coordinator, which does not exist yet: those requests
//! answer COORDINATOR_NOT_AVAILABLE with a message saying so.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::authorizer::{Operation, Resource};
use crate::dispatch::RequestContext;
use crate::Broker;

/// Allocates or bumps a producer id.
pub(crate) fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if request
        .transactional_id
        .as_ref()
        .is_some_and(|id| !id.is_empty())
    {
        response.error_code = ResponseError::CoordinatorNotAvailable.code();
        return response;
    }
    if !broker
        .authorizer
        .authorize(ctx.session, Operation::IdempotentWrite, Resource::Cluster)
    {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return response;
    }
    let existing =
        ctx.api_version >= 3 && request.producer_id.0 >= 0 && request.producer_epoch >= 0;
    if existing && request.producer_epoch < i16::MAX - 1 {
        response.producer_id = request.producer_id;
        response.producer_epoch = request.producer_epoch + 1;
        return response;
    }
    match broker.producer_ids.next_id() {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            response.error_code = ResponseError::KafkaStorageError.code();
        }
    }
    response
}
