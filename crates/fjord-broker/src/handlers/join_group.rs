//! JoinGroup: become a member of a group's next generation.

use fjord_group::api::{GroupProtocol, JoinGroupRequest as Join, Response};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::groups::{ask, code, owned, owned_opt, unavailable, wire_opt};
use crate::dispatch::RequestContext;
use crate::group_runtime::GroupRequest;
use crate::Broker;

/// Parks until the rebalance completes, as Kafka does.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let join = Join {
        version: ctx.api_version,
        group_id: owned(&request.group_id),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout; Kafka uses the session timeout then.
        rebalance_timeout_ms: if ctx.api_version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        member_id: owned(&request.member_id),
        group_instance_id: owned_opt(&request.group_instance_id),
        protocol_type: owned(&request.protocol_type),
        protocols: request
            .protocols
            .iter()
            .map(|p| GroupProtocol {
                name: owned(&p.name),
                metadata: p.metadata.clone(),
            })
            .collect(),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.session.client_host.clone(),
    };
    let mut response = JoinGroupResponse::default();
    match ask(broker, GroupRequest::Join(join)).await {
        Some(Response::JoinGroup(r)) => {
            response.error_code = code(r.error);
            response.generation_id = r.generation_id;
            if ctx.api_version >= 7 {
                response.protocol_type = wire_opt(r.protocol_type);
            }
            response.protocol_name = wire_opt(r.protocol_name);
            if ctx.api_version < 7 && response.protocol_name.is_none() {
                // Before v7 the protocol name is not nullable.
                response.protocol_name = Some(StrBytes::default());
            }
            response.leader = StrBytes::from_string(r.leader);
            response.skip_assignment = ctx.api_version >= 9 && r.skip_assignment;
            response.member_id = StrBytes::from_string(r.member_id);
            response.members = r
                .members
                .into_iter()
                .map(|m| {
                    let mut out = JoinGroupResponseMember::default();
                    out.member_id = StrBytes::from_string(m.member_id);
                    if ctx.api_version >= 5 {
                        out.group_instance_id = wire_opt(m.group_instance_id);
                    }
                    out.metadata = m.metadata;
                    out
                })
                .collect();
        }
        _ => {
            response.error_code = unavailable();
            response.generation_id = -1;
            response.protocol_name = Some(StrBytes::default());
        }
    }
    response
}
