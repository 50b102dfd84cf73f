//! ListGroups, with the state filter of v4+.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::groups::{owned, unavailable};
use crate::authorizer::Operation;
use crate::dispatch::RequestContext;
use crate::Broker;

/// Lists the groups the session may describe.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let states: Vec<String> = request.states_filter.iter().map(owned).collect();
    let mut response = ListGroupsResponse::default();
    match broker.groups.list(states).await {
        Ok(groups) => {
            response.groups = groups
                .into_iter()
                .filter(|g| {
                    broker
                        .authorizer
                        .authorize_group(ctx.session, Operation::Describe, &g.group_id)
                })
                .map(|g| {
                    let mut out = ListedGroup::default();
                    out.group_id = GroupId(StrBytes::from_string(g.group_id));
                    out.protocol_type = StrBytes::from_string(g.protocol_type);
                    if ctx.api_version >= 4 {
                        out.group_state = StrBytes::from_static_str(g.group_state.as_str());
                    }
                    if ctx.api_version >= 5 {
                        out.group_type = StrBytes::from_static_str("classic");
                    }
                    out
                })
                .collect();
        }
        Err(_) => response.error_code = unavailable(),
    }
    response
}
