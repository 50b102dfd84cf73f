//! SyncGroup: the leader hands out assignments; every member receives its own.

use fjord_group::api::{Response, SyncGroupAssignment, SyncGroupRequest as Sync};
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::groups::{ask, code, owned, owned_opt, unavailable, wire_opt};
use crate::dispatch::RequestContext;
use crate::group_runtime::GroupRequest;
use crate::Broker;

/// Parks followers until the leader's assignment is stored.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let sync = Sync {
        group_id: owned(&request.group_id),
        generation_id: request.generation_id,
        member_id: owned(&request.member_id),
        group_instance_id: owned_opt(&request.group_instance_id),
        protocol_type: owned_opt(&request.protocol_type),
        protocol_name: owned_opt(&request.protocol_name),
        assignments: request
            .assignments
            .iter()
            .map(|a| SyncGroupAssignment {
                member_id: owned(&a.member_id),
                assignment: a.assignment.clone(),
            })
            .collect(),
    };
    let mut response = SyncGroupResponse::default();
    match ask(broker, GroupRequest::Sync(sync)).await {
        Some(Response::SyncGroup(r)) => {
            response.error_code = code(r.error);
            if ctx.api_version >= 5 {
                response.protocol_type = wire_opt(r.protocol_type);
                response.protocol_name = wire_opt(r.protocol_name);
            }
            response.assignment = r.assignment;
        }
        _ => response.error_code = unavailable(),
    }
    response
}
