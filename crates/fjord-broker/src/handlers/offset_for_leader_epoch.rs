//! OffsetForLeaderEpoch: where a leader epoch ends in the leader's log. Followers ask it
//! after a leader change to cut what they wrote beyond it (a diverged tail); consumers ask it
//! to detect that the log they read from was truncated under them (KIP-320).

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use crate::authorizer::{Operation, Resource};
use crate::dispatch::RequestContext;
use crate::error::partition_error;
use crate::Broker;

/// Answers every requested partition from the leader's leader-epoch cache.
pub(crate) fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut response = OffsetForLeaderEpochResponse::default();
    for t in request.topics {
        let allowed = broker.authorizer.authorize(
            ctx.session,
            Operation::Describe,
            Resource::Topic(t.topic.as_str()),
        );
        let mut result = OffsetForLeaderTopicResult::default();
        result.topic = t.topic.clone();
        for p in t.partitions {
            let mut answer = EpochEndOffset::default();
            answer.partition = p.partition;
            answer.leader_epoch = -1;
            answer.end_offset = -1;
            let outcome = if allowed {
                broker
                    .leads(t.topic.as_str(), p.partition, p.current_leader_epoch)
                    .and_then(|partition| {
                        partition
                            .end_offset_for_epoch(p.leader_epoch)
                            .map_err(|e| partition_error(&e))
                    })
            } else {
                Err(ResponseError::TopicAuthorizationFailed)
            };
            match outcome {
                Ok((epoch, end)) => {
                    answer.leader_epoch = epoch;
                    answer.end_offset = end;
                }
                Err(code) => answer.error_code = code.code(),
            }
            result.partitions.push(answer);
        }
        response.topics.push(result);
    }
    response
}
