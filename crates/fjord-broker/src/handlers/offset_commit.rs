//! OffsetCommit: store consumed positions, durably, in `__consumer_offsets`.

use fjord_group::api::{
    OffsetCommitPartition, OffsetCommitRequest as Commit, OffsetCommitTopic, Response,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::groups::{ask, code, owned, owned_opt, unavailable};
use crate::dispatch::RequestContext;
use crate::group_runtime::GroupRequest;
use crate::Broker;

/// Answers once the commit is durable.
pub(crate) async fn handle(
    broker: &Broker,
    _ctx: &RequestContext<'_>,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let commit = Commit {
        group_id: owned(&request.group_id),
        generation_id: request.generation_id_or_member_epoch,
        member_id: owned(&request.member_id),
        group_instance_id: owned_opt(&request.group_instance_id),
        retention_time_ms: request.retention_time_ms,
        topics: request
            .topics
            .iter()
            .map(|t| OffsetCommitTopic {
                name: t.name.to_string(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| OffsetCommitPartition {
                        partition_index: p.partition_index,
                        committed_offset: p.committed_offset,
                        committed_leader_epoch: p.committed_leader_epoch,
                        commit_timestamp_ms: -1,
                        committed_metadata: owned_opt(&p.committed_metadata),
                    })
                    .collect(),
            })
            .collect(),
    };
    let answer = ask(broker, GroupRequest::Commit(commit)).await;
    let mut response = OffsetCommitResponse::default();
    response.topics = match answer {
        Some(Response::OffsetCommit(r)) => r
            .topics
            .into_iter()
            .map(|t| {
                let mut topic = OffsetCommitResponseTopic::default();
                topic.name = kafka_protocol::messages::TopicName(
                    kafka_protocol::protocol::StrBytes::from_string(t.name),
                );
                topic.partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let mut out = OffsetCommitResponsePartition::default();
                        out.partition_index = p.partition_index;
                        out.error_code = code(p.error);
                        out
                    })
                    .collect();
                topic
            })
            .collect(),
        _ => request
            .topics
            .iter()
            .map(|t| {
                let mut topic = OffsetCommitResponseTopic::default();
                topic.name = t.name.clone();
                topic.partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut out = OffsetCommitResponsePartition::default();
                        out.partition_index = p.partition_index;
                        out.error_code = unavailable();
                        out
                    })
                    .collect();
                topic
            })
            .collect(),
    };
    response
}
