//! DescribeGroups: state, protocol and members with their assignments.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::groups::{code, owned, wire_opt};
use crate::dispatch::RequestContext;
use crate::Broker;

/// Describes every requested group.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let ids: Vec<String> = request.groups.iter().map(|g| owned(g)).collect();
    let refused: Vec<Option<ResponseError>> = ids
        .iter()
        .map(|id| broker.coordinates_group(id).err())
        .collect();
    let mut response = DescribeGroupsResponse::default();
    match broker.groups.describe(ids).await {
        Ok(groups) => {
            response.groups = groups
                .into_iter()
                .zip(refused)
                .map(|(g, refused)| {
                    if let Some(refused) = refused {
                        // Not coordinated here: the local coordinator knows nothing of it.
                        let mut out = DescribedGroup::default();
                        out.group_id = GroupId(StrBytes::from_string(g.group_id));
                        out.error_code = refused.code();
                        return out;
                    }
                    let mut out = DescribedGroup::default();
                    out.error_code = code(g.error);
                    out.group_id = GroupId(StrBytes::from_string(g.group_id));
                    out.group_state = StrBytes::from_static_str(g.group_state.as_str());
                    out.protocol_type = StrBytes::from_string(g.protocol_type);
                    out.protocol_data = StrBytes::from_string(g.protocol_data);
                    out.members = g
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut member = DescribedGroupMember::default();
                            member.member_id = StrBytes::from_string(m.member_id);
                            if ctx.api_version >= 4 {
                                member.group_instance_id = wire_opt(m.group_instance_id);
                            }
                            member.client_id = StrBytes::from_string(m.client_id);
                            member.client_host = StrBytes::from_string(m.client_host);
                            member.member_metadata = m.member_metadata;
                            member.member_assignment = m.member_assignment;
                            member
                        })
                        .collect();
                    out
                })
                .collect();
        }
        Err(_) => {
            response.groups = request
                .groups
                .iter()
                .map(|g| {
                    let mut out = DescribedGroup::default();
                    out.group_id = g.clone();
                    out.error_code = ResponseError::CoordinatorNotAvailable.code();
                    out
                })
                .collect();
        }
    }
    response
}
