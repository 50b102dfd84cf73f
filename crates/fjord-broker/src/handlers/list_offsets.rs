//! ListOffsets: earliest, latest, max-timestamp, and offset-for-timestamp lookups. "Latest" is
//! the last stable offset for read_committed requests (v2+), the log end otherwise.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::dispatch::RequestContext;
use crate::error::partition_error;
use crate::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// Kafka's isolation level byte for read_committed.
const READ_COMMITTED: i8 = 1;

/// Answers ListOffsets for every requested partition.
pub(crate) fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let mut response = ListOffsetsResponse::default();
    let read_committed = ctx.api_version >= 2 && request.isolation_level == READ_COMMITTED;
    for t in request.topics {
        let mut topic_response = ListOffsetsTopicResponse::default();
        topic_response.name = t.name.clone();
        for requested in t.partitions {
            let mut r = ListOffsetsPartitionResponse::default();
            r.partition_index = requested.partition_index;
            r.timestamp = -1;
            r.offset = -1;
            let partition = broker.leads(
                t.name.as_str(),
                requested.partition_index,
                requested.current_leader_epoch,
            );
            if ctx.api_version >= 4 {
                r.leader_epoch = broker.leader_epoch(t.name.as_str(), requested.partition_index);
            }
            let result = match partition {
                Err(refused) => Err(refused),
                Ok(partition) if requested.timestamp == LATEST => partition
                    .offsets()
                    .map(|o| {
                        let latest = if read_committed {
                            o.last_stable_offset
                        } else {
                            o.high_watermark
                        };
                        Some((latest, -1))
                    })
                    .map_err(|e| partition_error(&e)),
                Ok(partition) => partition
                    .with_log(|log| {
                        Ok(match requested.timestamp {
                            EARLIEST => Some((log.log_start_offset(), -1)),
                            MAX_TIMESTAMP => log.max_timestamp().map(|(ts, off)| (off, ts)),
                            ts if ts >= 0 => log.offset_for_timestamp(ts)?,
                            _ => None,
                        })
                    })
                    .map_err(|e| partition_error(&e)),
            };
            match result {
                Ok(Some((offset, timestamp))) => {
                    r.offset = offset;
                    r.timestamp = timestamp;
                }
                Ok(None) => {}
                Err(code) => r.error_code = code.code(),
            }
            topic_response.partitions.push(r);
        }
        response.topics.push(topic_response);
    }
    response
}
