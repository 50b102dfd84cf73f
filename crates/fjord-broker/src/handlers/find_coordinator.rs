//! FindCoordinator: on a single node, this broker coordinates every consumer group (key type
//! 0) and every transactional id (key type 1).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::Broker;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Answers the single key (v0-v3) or every batched key (v4+).
pub(crate) fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let node_id = broker.config.node_id;
    let endpoint = broker.advertised.iter().find(|l| l.name == ctx.listener);
    let lookup = |key: &StrBytes| -> Coordinator {
        let mut c = Coordinator::default();
        c.key = key.clone();
        c.node_id = BrokerId(-1);
        c.port = -1;
        let refused = match (request.key_type, endpoint) {
            (KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION, Some(endpoint)) => {
                c.node_id = BrokerId(node_id);
                c.host = str_bytes(endpoint.host.clone());
                c.port = i32::from(endpoint.port);
                None
            }
            (KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION, None) => Some((
                ResponseError::CoordinatorNotAvailable,
                "no advertised endpoint for this listener",
            )),
            _ => Some((
                ResponseError::InvalidRequest,
                "unknown coordinator key type",
            )),
        };
        if let Some((code, message)) = refused {
            c.error_code = code.code();
            c.error_message = Some(str_bytes(message));
        }
        c
    };
    let mut response = FindCoordinatorResponse::default();
    if ctx.api_version >= 4 {
        response.coordinators = request.coordinator_keys.iter().map(lookup).collect();
    } else {
        let c = lookup(&request.key);
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
