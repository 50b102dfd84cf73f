//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use fjord_group::api::{HeartbeatRequest as Beat, Response};
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::groups::{ask, code, owned, owned_opt, unavailable};
use crate::dispatch::RequestContext;
use crate::group_runtime::GroupRequest;
use crate::Broker;

/// Answers at once.
pub(crate) async fn handle(
    broker: &Broker,
    _ctx: &RequestContext<'_>,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let beat = Beat {
        group_id: owned(&request.group_id),
        generation_id: request.generation_id,
        member_id: owned(&request.member_id),
        group_instance_id: owned_opt(&request.group_instance_id),
    };
    let mut response = HeartbeatResponse::default();
    response.error_code = match ask(broker, GroupRequest::Heartbeat(beat)).await {
        Some(Response::Heartbeat(r)) => code(r.error),
        _ => unavailable(),
    };
    response
}
