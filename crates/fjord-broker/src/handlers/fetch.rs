//! Fetch: whole batches from each partition, bounded by `max_bytes` and `partition_max_bytes`,
//! long-polling until `min_bytes` are available or `max_wait_ms` passes.
//!
//! The first partition with data always returns at least one whole batch even when that batch
//! is larger than the limits (Kafka's rule, so a consumer never stalls on a big batch). Waiting
//! is driven by each partition's log-end watch: an append wakes the fetch, nothing polls.
//!
//! read_committed consumers get records below the last stable offset only, plus the aborted
//! transactions overlapping them so they can drop those records.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_protocol::fetch_frame::{FetchResponseParts, FetchedPartition};
use futures::future::select_all;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, ProducerId};
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::authorizer::{Operation, Resource};
use crate::dispatch::RequestContext;
use crate::error::{partition_error, storage_error};
use crate::partition::{Partition, PartitionError, PartitionOffsets};
use crate::Broker;

/// Kafka's isolation level byte for read_committed.
const READ_COMMITTED: i8 = 1;

/// One requested partition, resolved once per request.
struct Wanted {
    /// The partition if this broker leads it, else why not.
    partition: Result<Arc<Partition>, ResponseError>,
    /// Leader and epoch to tell a client that came to the wrong broker (Fetch v12+).
    leader_hint: Option<(i32, i32)>,
    authorized: bool,
    index: i32,
    fetch_offset: i64,
    max_bytes: usize,
}

/// Serves a fetch, waiting for data as the request allows.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: FetchRequest,
) -> FetchResponseParts {
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if request.max_bytes <= 0 {
        usize::MAX
    } else {
        request.max_bytes as usize
    };
    let read_committed = request.isolation_level == READ_COMMITTED;
    let wanted: Vec<(kafka_protocol::messages::TopicName, Vec<Wanted>)> = request
        .topics
        .into_iter()
        .map(|t| {
            let authorized = broker.authorizer.authorize(
                ctx.session,
                Operation::Read,
                Resource::Topic(t.topic.as_str()),
            );
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let partition =
                        broker.leads(t.topic.as_str(), p.partition, p.current_leader_epoch);
                    let leader_hint = match partition {
                        Err(
                            ResponseError::NotLeaderOrFollower | ResponseError::FencedLeaderEpoch,
                        ) => broker.leader_hint(t.topic.as_str(), p.partition),
                        _ => None,
                    };
                    Wanted {
                        partition,
                        leader_hint,
                        authorized,
                        index: p.partition,
                        fetch_offset: p.fetch_offset,
                        max_bytes: p.partition_max_bytes.max(0) as usize,
                    }
                })
                .collect();
            (t.topic, partitions)
        })
        .collect();

    loop {
        // Subscribe before reading, so an append between the read and the wait still wakes us.
        let mut watches: Vec<watch::Receiver<i64>> = wanted
            .iter()
            .flat_map(|(_, ps)| ps.iter())
            .filter_map(|w| w.partition.as_ref().ok().map(|p| p.subscribe_log_end()))
            .collect();
        let (response, bytes, has_error) = read_once(&wanted, max_bytes, read_committed);
        let now = Instant::now();
        if bytes >= min_bytes || has_error || now >= deadline || watches.is_empty() {
            return response;
        }
        let _delayed = broker.metrics.delayed(crate::metrics::Purgatory::Fetch);
        let changed = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            // Deadline passed: one last read so data that arrived meanwhile is not held back.
            return read_once(&wanted, max_bytes, read_committed).0;
        }
    }
}

/// Reads every wanted partition once; returns the response, bytes returned, and whether any
/// partition errored (errors are answered at once rather than waited on).
fn read_once(
    wanted: &[(kafka_protocol::messages::TopicName, Vec<Wanted>)],
    max_bytes: usize,
    read_committed: bool,
) -> (FetchResponseParts, usize, bool) {
    let mut response = FetchResponseParts::default();
    let mut total = 0usize;
    let mut has_error = false;
    for (name, partitions) in wanted {
        let mut topic_partitions = Vec::with_capacity(partitions.len());
        for w in partitions {
            let mut data = PartitionData::default();
            data.partition_index = w.index;
            data.high_watermark = -1;
            data.last_stable_offset = -1;
            data.log_start_offset = -1;
            data.aborted_transactions = read_committed.then(Vec::new);
            let remaining = max_bytes.saturating_sub(total);
            match read_partition(w, remaining, total == 0, read_committed) {
                Ok(read) => {
                    total += read.records.len();
                    data.high_watermark = read.offsets.log_end_offset;
                    data.last_stable_offset = read.offsets.last_stable_offset;
                    data.log_start_offset = read.offsets.log_start_offset;
                    if read_committed {
                        data.aborted_transactions = Some(
                            read.aborted
                                .iter()
                                .map(|a| {
                                    let mut t = AbortedTransaction::default();
                                    t.producer_id = ProducerId(a.producer_id);
                                    t.first_offset = a.first_offset;
                                    t
                                })
                                .collect(),
                        );
                    }
                    topic_partitions.push(FetchedPartition {
                        data,
                        records: read.records,
                    });
                }
                Err((code, offsets)) => {
                    has_error = true;
                    data.error_code = code.code();
                    if let Some((leader, epoch)) = w.leader_hint {
                        data.current_leader.leader_id = BrokerId(leader);
                        data.current_leader.leader_epoch = epoch;
                    }
                    if let Some(o) = offsets {
                        data.high_watermark = o.log_end_offset;
                        data.last_stable_offset = o.last_stable_offset;
                        data.log_start_offset = o.log_start_offset;
                    }
                    topic_partitions.push(FetchedPartition {
                        data,
                        records: Bytes::new(),
                    });
                }
            }
        }
        response.topics.push((name.clone(), topic_partitions));
    }
    (response, total, has_error)
}

/// What one partition contributes to a fetch.
struct PartitionBytes {
    records: Bytes,
    offsets: PartitionOffsets,
    aborted: Vec<fjord_storage::AbortedTxn>,
}

type PartitionRead = Result<PartitionBytes, (ResponseError, Option<PartitionOffsets>)>;

fn read_partition(
    w: &Wanted,
    remaining: usize,
    first_with_data: bool,
    read_committed: bool,
) -> PartitionRead {
    let partition = w.partition.as_ref().map_err(|refused| (*refused, None))?;
    if !w.authorized {
        return Err((ResponseError::TopicAuthorizationFailed, None));
    }
    let limit = w.max_bytes.min(remaining);
    let read = if read_committed {
        partition
            .read_committed(w.fetch_offset, limit)
            .map(|r| (r.plan, r.offsets, r.aborted))
    } else {
        partition
            .read(w.fetch_offset, limit)
            .map(|(plan, offsets)| (plan, offsets, Vec::new()))
    };
    let (plan, offsets, aborted) = match read {
        Ok(r) => r,
        Err(PartitionError::Storage(e)) => {
            return Err((storage_error(&e), partition.offsets().ok()));
        }
        Err(e) => return Err((partition_error(&e), None)),
    };
    // The storage layer always yields one whole batch; beyond the first partition with data a
    // batch that does not fit waits for the next fetch.
    if plan.len() > limit && !first_with_data {
        return Ok(PartitionBytes {
            records: Bytes::new(),
            offsets,
            aborted: Vec::new(),
        });
    }
    let mut buf = Vec::with_capacity(plan.len());
    if let Err(e) = plan.read_into(&mut buf) {
        tracing::error!(partition = %partition.name, error = %e, "read failed");
        return Err((ResponseError::KafkaStorageError, None));
    }
    Ok(PartitionBytes {
        records: Bytes::from(buf),
        offsets,
        aborted,
    })
}
