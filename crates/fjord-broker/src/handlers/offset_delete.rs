//! OffsetDelete: drops committed offsets of topics a group no longer consumes.

use fjord_group::api::{OffsetDeleteRequest as Delete, Response, TopicPartitions};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::groups::{ask, code, owned, unavailable};
use crate::dispatch::RequestContext;
use crate::group_runtime::GroupRequest;
use crate::Broker;

/// Answers once the tombstones are written.
pub(crate) async fn handle(
    broker: &Broker,
    _ctx: &RequestContext<'_>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let delete = Delete {
        group_id: owned(&request.group_id),
        topics: request
            .topics
            .iter()
            .map(|t| TopicPartitions {
                name: t.name.to_string(),
                partition_indexes: t.partitions.iter().map(|p| p.partition_index).collect(),
            })
            .collect(),
    };
    let mut response = OffsetDeleteResponse::default();
    match ask(broker, GroupRequest::DeleteOffsets(delete)).await {
        Some(Response::OffsetDelete(r)) => {
            response.error_code = code(r.error);
            response.topics = r
                .topics
                .into_iter()
                .map(|t| {
                    let mut topic = OffsetDeleteResponseTopic::default();
                    topic.name = TopicName(StrBytes::from_string(t.name));
                    topic.partitions = t
                        .partitions
                        .into_iter()
                        .map(|p| {
                            let mut out = OffsetDeleteResponsePartition::default();
                            out.partition_index = p.partition_index;
                            out.error_code = code(p.error);
                            out
                        })
                        .collect();
                    topic
                })
                .collect();
        }
        _ => response.error_code = unavailable(),
    }
    response
}
