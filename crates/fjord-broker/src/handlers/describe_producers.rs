//! DescribeProducers: the idempotent and transactional producers each partition remembers,
//! with their epoch, last sequence and open transaction (what `kafka-transactions.sh
//! find-hanging` and `describe-producers` read).

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::authorizer::{Operation, Resource};
use crate::dispatch::RequestContext;
use crate::Broker;

/// Answers every requested partition.
pub(crate) fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut response = DescribeProducersResponse::default();
    for t in request.topics {
        let allowed = broker.authorizer.authorize(
            ctx.session,
            Operation::Read,
            Resource::Topic(t.name.as_str()),
        );
        let mut topic_response = TopicResponse::default();
        topic_response.name = t.name.clone();
        for index in t.partition_indexes {
            let mut p = PartitionResponse::default();
            p.partition_index = index;
            match broker.leads(t.name.as_str(), index, -1) {
                _ if !allowed => p.error_code = ResponseError::TopicAuthorizationFailed.code(),
                Err(refused) => p.error_code = refused.code(),
                Ok(partition) => {
                    p.active_producers = partition
                        .producers_summary()
                        .into_iter()
                        .map(|s| {
                            let mut state = ProducerState::default();
                            state.producer_id = ProducerId(s.producer_id);
                            state.producer_epoch = i32::from(s.producer_epoch);
                            state.last_sequence = s.last_sequence;
                            state.last_timestamp = s.last_timestamp_ms;
                            state.coordinator_epoch = s.coordinator_epoch;
                            state.current_txn_start_offset = s.current_txn_start_offset;
                            state
                        })
                        .collect();
                }
            }
            topic_response.partitions.push(p);
        }
        response.topics.push(topic_response);
    }
    response
}
