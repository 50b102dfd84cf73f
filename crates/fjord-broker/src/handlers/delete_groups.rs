//! DeleteGroups: removes empty groups and their offsets (tombstones in `__consumer_offsets`).

use fjord_group::api::Response;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};
use kafka_protocol::protocol::StrBytes;

use super::groups::{ask, code, owned, unavailable};
use crate::dispatch::RequestContext;
use crate::group_runtime::GroupRequest;
use crate::Broker;

/// Deletes each group independently.
pub(crate) async fn handle(
    broker: &Broker,
    _ctx: &RequestContext<'_>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let ids: Vec<String> = request.groups_names.iter().map(|g| owned(g)).collect();
    let mut response = DeleteGroupsResponse::default();
    response.results = match ask(broker, GroupRequest::DeleteGroups(ids)).await {
        Some(Response::DeleteGroups(r)) => r
            .results
            .into_iter()
            .map(|g| {
                let mut out = DeletableGroupResult::default();
                out.group_id = GroupId(StrBytes::from_string(g.group_id));
                out.error_code = code(g.error);
                out
            })
            .collect(),
        _ => request
            .groups_names
            .iter()
            .map(|g| {
                let mut out = DeletableGroupResult::default();
                out.group_id = g.clone();
                out.error_code = unavailable();
                out
            })
            .collect(),
    };
    response
}
