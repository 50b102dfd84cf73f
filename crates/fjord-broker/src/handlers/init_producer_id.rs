//! InitProducerId. For idempotent producers: a fresh producer id at epoch 0, or (v3+) the same
//! id with its epoch bumped when the producer asks to continue after an error (KIP-360).
//! Requests with a `transactional.id` go to the transaction coordinator, which bumps the id's
//! epoch (fencing older instances) and aborts a transaction the previous instance left open.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use fjord_txn::api::Response;

use crate::authorizer::{Operation, Resource};
use crate::dispatch::RequestContext;
use crate::txn_runtime::TxnRequest;
use crate::Broker;

/// Allocates or bumps a producer id.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if let Some(id) = request
        .transactional_id
        .as_ref()
        .filter(|id| !id.is_empty())
    {
        let transactional_id = id.to_string();
        if !broker.authorizer.authorize(
            ctx.session,
            Operation::Write,
            Resource::TransactionalId(&transactional_id),
        ) {
            response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            return response;
        }
        let ask_for = fjord_txn::api::InitProducerIdRequest {
            version: ctx.api_version,
            transactional_id: Some(transactional_id),
            transaction_timeout_ms: request.transaction_timeout_ms,
            producer_id: request.producer_id.0,
            producer_epoch: request.producer_epoch,
        };
        let answer = super::transactions::ask(broker, TxnRequest::InitProducerId(ask_for)).await;
        match answer {
            Some(Response::InitProducerId(r)) => {
                response.error_code = r.error.code();
                response.producer_id = ProducerId(r.producer_id);
                response.producer_epoch = r.producer_epoch;
            }
            _ => response.error_code = ResponseError::CoordinatorNotAvailable.code(),
        }
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
    match broker.producer_ids.next_id_waiting().await {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot allocate a producer id");
            response.error_code = crate::error::producer_id_error(&e).code();
        }
    }
    response
}
