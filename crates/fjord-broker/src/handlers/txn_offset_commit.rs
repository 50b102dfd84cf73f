//! TxnOffsetCommit: a transactional producer commits its consumer's offsets as part of the
//! transaction (`send_offsets_to_transaction`). The group coordinator writes them to
//! `__consumer_offsets` as the producer's transactional batch; they count only once the
//! transaction's commit marker lands there.

use fjord_group::api::{
    OffsetCommitPartition, OffsetCommitTopic, Response, TxnOffsetCommitRequest as Commit,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::ResponseError;

use super::groups::{ask, code, owned, owned_opt, unavailable};
use super::str_bytes;
use crate::authorizer::{Operation, Resource};
use crate::dispatch::RequestContext;
use crate::group_runtime::GroupRequest;
use crate::Broker;

/// Every partition of the request with the same error code.
fn all_partitions(
    request: &TxnOffsetCommitRequest,
    error: i16,
) -> Vec<TxnOffsetCommitResponseTopic> {
    request
        .topics
        .iter()
        .map(|t| {
            let mut topic = TxnOffsetCommitResponseTopic::default();
            topic.name = t.name.clone();
            topic.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut out = TxnOffsetCommitResponsePartition::default();
                    out.partition_index = p.partition_index;
                    out.error_code = error;
                    out
                })
                .collect();
            topic
        })
        .collect()
}

/// Answers once the transactional commit is durable (not yet visible: that waits for the
/// transaction's marker).
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let mut response = TxnOffsetCommitResponse::default();
    let transactional_id = owned(&request.transactional_id);
    let group_id = owned(&request.group_id);
    let refused = if !broker.authorizer.authorize(
        ctx.session,
        Operation::Write,
        Resource::TransactionalId(&transactional_id),
    ) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !broker
        .authorizer
        .authorize(ctx.session, Operation::Read, Resource::Group(&group_id))
    {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        None
    };
    if let Some(code) = refused {
        response.topics = all_partitions(&request, code.code());
        return response;
    }
    let commit = Commit {
        version: ctx.api_version,
        transactional_id,
        group_id,
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        generation_id: request.generation_id,
        member_id: owned(&request.member_id),
        group_instance_id: owned_opt(&request.group_instance_id),
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
    response.topics = match ask(broker, GroupRequest::TxnCommit(commit)).await {
        Some(Response::TxnOffsetCommit(r)) => r
            .topics
            .into_iter()
            .map(|t| {
                let mut topic = TxnOffsetCommitResponseTopic::default();
                topic.name = TopicName(str_bytes(t.name));
                topic.partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let mut out = TxnOffsetCommitResponsePartition::default();
                        out.partition_index = p.partition_index;
                        out.error_code = code(p.error);
                        out
                    })
                    .collect();
                topic
            })
            .collect(),
        _ => all_partitions(&request, unavailable()),
    };
    response
}
