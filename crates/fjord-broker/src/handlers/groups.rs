//! Shared pieces of the consumer-group handlers: conversions and the coordinator round trip.

use fjord_group::api::{
    DeleteGroupsResponse, DeletedGroup, HeartbeatResponse, JoinGroupResponse,
    LeaveGroupMemberResponse, LeaveGroupResponse, OffsetCommitResponse, OffsetCommitTopic,
    OffsetDeleteResponse, PartitionError, Response, SyncGroupResponse, TopicPartitionErrors,
};
use fjord_group::ErrorCode;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::group_runtime::GroupRequest;
use crate::Broker;

/// Sends a request to the coordinator; `None` when it is not running (shutdown), which
/// handlers answer with COORDINATOR_NOT_AVAILABLE. A group this broker does not coordinate
/// (cluster mode) is answered here with NOT_COORDINATOR, without reaching the coordinator.
pub(crate) async fn ask(broker: &Broker, request: GroupRequest) -> Option<Response> {
    if let GroupRequest::DeleteGroups(ids) = request {
        return delete_groups(broker, ids).await;
    }
    if let Err(refused) = broker.coordinates_group(group_of(&request)) {
        return Some(refusal(&request, group_error(refused)));
    }
    broker.groups.request(request).await.ok()
}

/// DeleteGroups names several groups: those coordinated here go to the coordinator, the
/// others are refused one by one, answered in request order.
async fn delete_groups(broker: &Broker, ids: Vec<String>) -> Option<Response> {
    let refused: Vec<Option<ErrorCode>> = ids
        .iter()
        .map(|id| broker.coordinates_group(id).err().map(group_error))
        .collect();
    let here: Vec<String> = ids
        .iter()
        .zip(&refused)
        .filter(|(_, r)| r.is_none())
        .map(|(id, _)| id.clone())
        .collect();
    let mut answered = if here.is_empty() {
        Vec::new()
    } else {
        match broker
            .groups
            .request(GroupRequest::DeleteGroups(here))
            .await
            .ok()?
        {
            Response::DeleteGroups(r) => r.results,
            _ => return None,
        }
    }
    .into_iter();
    let results = ids
        .into_iter()
        .zip(refused)
        .map(|(group_id, refused)| match refused {
            Some(error) => DeletedGroup { group_id, error },
            None => answered.next().unwrap_or(DeletedGroup {
                group_id,
                error: ErrorCode::CoordinatorNotAvailable,
            }),
        })
        .collect();
    Some(Response::DeleteGroups(DeleteGroupsResponse { results }))
}

/// The group a request is about.
fn group_of(request: &GroupRequest) -> &str {
    match request {
        GroupRequest::Join(r) => &r.group_id,
        GroupRequest::Sync(r) => &r.group_id,
        GroupRequest::Heartbeat(r) => &r.group_id,
        GroupRequest::Leave(r) => &r.group_id,
        GroupRequest::Commit(r) => &r.group_id,
        GroupRequest::TxnCommit(r) => &r.group_id,
        GroupRequest::DeleteOffsets(r) => &r.group_id,
        GroupRequest::DeleteGroups(_) => "",
    }
}

/// The coordinator's error code for a refusal of [`Broker::coordinates_group`].
pub(crate) fn group_error(refused: ResponseError) -> ErrorCode {
    match refused {
        ResponseError::NotCoordinator => ErrorCode::NotCoordinator,
        ResponseError::CoordinatorNotAvailable => ErrorCode::CoordinatorNotAvailable,
        ResponseError::CoordinatorLoadInProgress => ErrorCode::CoordinatorLoadInProgress,
        other => ErrorCode::Other(other.code()),
    }
}

fn all_partitions(topics: &[OffsetCommitTopic], error: ErrorCode) -> Vec<TopicPartitionErrors> {
    topics
        .iter()
        .map(|t| TopicPartitionErrors {
            name: t.name.clone(),
            partitions: t
                .partitions
                .iter()
                .map(|p| PartitionError {
                    partition_index: p.partition_index,
                    error,
                })
                .collect(),
        })
        .collect()
}

/// The answer a request gets when the coordinator is not asked: `error` everywhere the
/// response carries one.
fn refusal(request: &GroupRequest, error: ErrorCode) -> Response {
    match request {
        GroupRequest::Join(r) => Response::JoinGroup(JoinGroupResponse::error(&r.member_id, error)),
        GroupRequest::Sync(_) => Response::SyncGroup(SyncGroupResponse::error(error)),
        GroupRequest::Heartbeat(_) => Response::Heartbeat(HeartbeatResponse { error }),
        GroupRequest::Leave(r) => Response::LeaveGroup(LeaveGroupResponse {
            error,
            members: r
                .members
                .iter()
                .map(|m| LeaveGroupMemberResponse {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    error,
                })
                .collect(),
        }),
        GroupRequest::Commit(r) => Response::OffsetCommit(OffsetCommitResponse {
            topics: all_partitions(&r.topics, error),
        }),
        GroupRequest::TxnCommit(r) => Response::TxnOffsetCommit(OffsetCommitResponse {
            topics: all_partitions(&r.topics, error),
        }),
        GroupRequest::DeleteOffsets(_) => Response::OffsetDelete(OffsetDeleteResponse {
            error,
            topics: Vec::new(),
        }),
        GroupRequest::DeleteGroups(ids) => Response::DeleteGroups(DeleteGroupsResponse {
            results: ids
                .iter()
                .map(|group_id| DeletedGroup {
                    group_id: group_id.clone(),
                    error,
                })
                .collect(),
        }),
    }
}

/// The code sent when the coordinator cannot be reached.
pub(crate) fn unavailable() -> i16 {
    ResponseError::CoordinatorNotAvailable.code()
}

/// Wire code of a coordinator error.
pub(crate) fn code(e: ErrorCode) -> i16 {
    e.code()
}

/// Codec string to owned string.
pub(crate) fn owned(s: &StrBytes) -> String {
    s.as_str().to_string()
}

/// Optional codec string to optional owned string.
pub(crate) fn owned_opt(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(owned)
}

/// Optional owned string to optional codec string.
pub(crate) fn wire_opt(s: Option<String>) -> Option<StrBytes> {
    s.map(StrBytes::from_string)
}
