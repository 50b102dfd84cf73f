//! DeleteRecords: move a partition's log start offset forward (offset -1 = high watermark).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use crate::authorizer::{Operation, Resource};
use crate::dispatch::RequestContext;
use crate::error::partition_error;
use crate::Broker;

const HIGH_WATERMARK: i64 = -1;

/// Deletes records below each requested offset.
pub(crate) fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut response = DeleteRecordsResponse::default();
    for t in request.topics {
        let name = t.name.to_string();
        let allowed =
            broker
                .authorizer
                .authorize(ctx.session, Operation::Delete, Resource::Topic(&name));
        let mut topic_result = DeleteRecordsTopicResult::default();
        topic_result.name = t.name;
        for p in t.partitions {
            let mut r = DeleteRecordsPartitionResult::default();
            r.partition_index = p.partition_index;
            r.low_watermark = -1;
            let partition = broker.leads(&name, p.partition_index, -1);
            let outcome = match (allowed, partition) {
                (false, _) => Err(ResponseError::TopicAuthorizationFailed),
                (_, Err(refused)) => Err(refused),
                (_, Ok(partition)) => partition
                    .offsets()
                    .and_then(|offsets| {
                        // Only what every in-sync replica has may be deleted up to, as in
                        // Kafka: beyond the high watermark is out of range.
                        let target = if p.offset == HIGH_WATERMARK {
                            offsets.high_watermark
                        } else {
                            p.offset
                        };
                        if target > offsets.high_watermark {
                            return Err(fjord_storage::StorageError::OffsetOutOfRange {
                                requested: target,
                                log_start: offsets.log_start_offset,
                                log_end: offsets.high_watermark,
                            }
                            .into());
                        }
                        partition.with_log(|log| log.delete_records_before(target))
                    })
                    .map_err(|e| partition_error(&e)),
            };
            match outcome {
                Ok(low_watermark) => r.low_watermark = low_watermark,
                Err(code) => r.error_code = code.code(),
            }
            topic_result.partitions.push(r);
        }
        response.topics.push(topic_result);
    }
    response
}
