//! Fetch: whole batches from each partition, bounded by `max_bytes` and `partition_max_bytes`,
//! long-polling until `min_bytes` are available or `max_wait_ms` passes.
//!
//! The first partition with data always returns at least one whole batch even when that batch
//! is larger than the limits (Kafka's rule, so a consumer never stalls on a big batch). Waiting
//! is driven by each partition's log-end watch: an append wakes the fetch, nothing polls.
//!
//! Consumers get records below the high watermark only (what every in-sync replica has);
//! read_committed consumers below the last stable offset, plus the aborted transactions
//! overlapping them so they can drop those records. A fetch from a follower broker
//! (`replica_id` set) reads up to the log end, and tells the partition how far the follower
//! got, which moves the high watermark and may return the follower to the ISR.

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
    /// Topic id in the image, for ISR changes a follower's fetch makes due (replica fetches
    /// only).
    topic_id: Option<uuid::Uuid>,
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
    // Followers identify themselves; consumers send -1.
    let replica =
        (request.replica_id.0 >= 0 && broker.cluster.is_some()).then_some(request.replica_id.0);
    // Topic ids matter only for ISR changes a follower's fetch makes due.
    let image = replica.and(broker.cluster.as_ref()).map(|c| c.image());
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
                        topic_id: image
                            .as_ref()
                            .and_then(|i| i.topic(t.topic.as_str()))
                            .map(|t| t.topic_id),
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
            .filter_map(|w| {
                w.partition.as_ref().ok().map(|p| match replica {
                    Some(_) => p.subscribe_log_end(),
                    None => p.subscribe_high_watermark(),
                })
            })
            .collect();
        let (response, bytes, has_error) =
            read_once(broker, &wanted, max_bytes, read_committed, replica);
        let now = Instant::now();
        if bytes >= min_bytes || has_error || now >= deadline || watches.is_empty() {
            return response;
        }
        let _delayed = broker.metrics.delayed(crate::metrics::Purgatory::Fetch);
        let changed = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            // Deadline passed: one last read so data that arrived meanwhile is not held back.
            return read_once(broker, &wanted, max_bytes, read_committed, replica).0;
        }
    }
}

/// Reads every wanted partition once; returns the response, bytes returned, and whether any
/// partition errored (errors are answered at once rather than waited on).
fn read_once(
    broker: &Broker,
    wanted: &[(kafka_protocol::messages::TopicName, Vec<Wanted>)],
    max_bytes: usize,
    read_committed: bool,
    replica: Option<i32>,
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
            let read = match replica {
                Some(replica) => read_for_replica(broker, w, remaining, total == 0, replica),
                None => read_partition(w, remaining, total == 0, read_committed),
            };
            match read {
                Ok(read) => {
                    total += read.records.len();
                    data.high_watermark = read.offsets.high_watermark;
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
                        data.high_watermark = o.high_watermark;
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
        Err(e) => return Err(read_error(partition, &e)),
    };
    copy_plan(partition, plan, offsets, aborted, limit, first_with_data)
}

fn read_error(
    partition: &Partition,
    e: &PartitionError,
) -> (ResponseError, Option<PartitionOffsets>) {
    match e {
        PartitionError::Storage(e) => (storage_error(e), partition.offsets().ok()),
        e => (partition_error(e), None),
    }
}

/// A follower broker's read: up to the log end, recording the follower's progress; an ISR
/// expansion it makes due is handed to the replica manager.
fn read_for_replica(
    broker: &Broker,
    w: &Wanted,
    remaining: usize,
    first_with_data: bool,
    replica: i32,
) -> PartitionRead {
    let partition = w.partition.as_ref().map_err(|refused| (*refused, None))?;
    let limit = w.max_bytes.min(remaining);
    let read = partition
        .read_for_replica(replica, w.fetch_offset, limit, crate::log_manager::now_ms())
        .map_err(|e| read_error(partition, &e))?;
    if let (Some(proposal), Some(cluster), Some(topic_id)) =
        (read.expansion, broker.cluster.as_ref(), w.topic_id)
    {
        tracing::info!(partition = %partition.name, replica, isr = ?proposal.new_isr, "follower caught up; expanding the ISR");
        cluster
            .replication()
            .propose(topic_id, partition.clone(), proposal);
    }
    copy_plan(
        partition,
        read.plan,
        read.offsets,
        Vec::new(),
        limit,
        first_with_data,
    )
}

/// Copies a planned read's bytes (or none, when its batch does not fit and another
/// partition already returned data).
fn copy_plan(
    partition: &Partition,
    plan: fjord_storage::ReadPlan,
    offsets: PartitionOffsets,
    aborted: Vec<fjord_storage::AbortedTxn>,
    limit: usize,
    first_with_data: bool,
) -> PartitionRead {
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
