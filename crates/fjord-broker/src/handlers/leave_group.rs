//! LeaveGroup: one member (v0-v2) or a batch of members (v3+) leaves, triggering a rebalance.

use fjord_group::api::{LeaveGroupRequest as Leave, MemberIdentity, Response};
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::groups::{ask, code, owned, owned_opt, unavailable, wire_opt};
use crate::dispatch::RequestContext;
use crate::group_runtime::GroupRequest;
use crate::Broker;

/// Answers at once; the rebalance it triggers continues in the coordinator.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let members = if ctx.api_version >= 3 {
        request
            .members
            .iter()
            .map(|m| MemberIdentity {
                member_id: owned(&m.member_id),
                group_instance_id: owned_opt(&m.group_instance_id),
            })
            .collect()
    } else {
        vec![MemberIdentity {
            member_id: owned(&request.member_id),
            group_instance_id: None,
        }]
    };
    let leave = Leave {
        group_id: owned(&request.group_id),
        members,
    };
    let mut response = LeaveGroupResponse::default();
    match ask(broker, GroupRequest::Leave(leave)).await {
        Some(Response::LeaveGroup(r)) => {
            response.error_code = code(r.error);
            if ctx.api_version >= 3 {
                response.members = r
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut out = MemberResponse::default();
                        out.member_id = StrBytes::from_string(m.member_id);
                        out.group_instance_id = wire_opt(m.group_instance_id);
                        out.error_code = code(m.error);
                        out
                    })
                    .collect();
            } else if let Some(first) = r.members.first() {
                // Before v3 the single member's error is the response's error.
                if response.error_code == 0 {
                    response.error_code = code(first.error);
                }
            }
        }
        _ => response.error_code = unavailable(),
    }
    response
}
