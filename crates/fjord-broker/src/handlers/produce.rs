//! Produce: validate and append batches. acks=all answers once the data is fsynced here
//! and, in a cluster, on every in-sync replica (the high watermark passed it), refusing up
//! front when the ISR is smaller than `min.insync.replicas`.

use std::time::Duration;

use bytes::BytesMut;
use fjord_protocol::batch::{BatchIter, BatchSpec, Compression};
use fjord_protocol::compression::{
    build_batch_at_offsets, decode_records_any, OffsetBatchSpec, DEFAULT_MAX_DECOMPRESSED_BYTES,
};

/// Largest records section the broker decompresses when it must recompress a batch.
const MAX_DECOMPRESSED_BYTES: usize = DEFAULT_MAX_DECOMPRESSED_BYTES;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::authorizer::{Operation, Resource};
use crate::dispatch::RequestContext;
use crate::error::partition_error;
use crate::log_manager::{now_ms, validate_topic_name, Topic};
use crate::partition::{Appended, Partition};
use crate::Broker;
use std::sync::Arc;

/// Kafka accepts zstd batches only from clients new enough to fetch them (KIP-110).
const ZSTD_MIN_PRODUCE_VERSION: i16 = 7;

/// Checks Kafka applies to client batches before the log validates them: zstd needs a new
/// enough produce version, control batches are written only by the broker itself, and a batch
/// with a producer id carries a sequence (sequence-less ones are the coordinators' writes).
fn refuse_client_batches(records: &[u8], api_version: i16) -> Option<(ResponseError, String)> {
    for (header, _) in BatchIter::headers_only(records).filter_map(Result::ok) {
        if header.is_control() {
            return Some((
                ResponseError::InvalidRecord,
                "control batches cannot be produced by clients".to_string(),
            ));
        }
        if header.has_producer_id() && header.base_sequence < 0 {
            return Some((
                ResponseError::InvalidRecord,
                "a batch with a producer id needs a base sequence".to_string(),
            ));
        }
        if api_version < ZSTD_MIN_PRODUCE_VERSION
            && matches!(header.compression(), Ok(Compression::Zstd))
        {
            return Some((
                ResponseError::UnsupportedCompressionType,
                format!("zstd needs produce v{ZSTD_MIN_PRODUCE_VERSION} or later"),
            ));
        }
    }
    None
}

/// What a topic's configuration asks of incoming batches.
#[derive(Debug, Clone, Copy)]
struct TopicRules {
    /// `compression.type` other than `producer`: batches in another codec are rewritten.
    compression: Option<Compression>,
    /// `message.timestamp.before.max.ms` / `.after.max.ms`, for CreateTime topics.
    timestamp_bounds: Option<(i64, i64)>,
    /// `min.insync.replicas`, for acks=all.
    min_insync: usize,
}

impl TopicRules {
    fn of(topic: &Topic, broker: &Broker) -> TopicRules {
        let defaults = broker.logs.broker_config();
        let config = topic.config.read().unwrap_or_else(|p| p.into_inner());
        TopicRules {
            compression: config.compression_target(&defaults),
            timestamp_bounds: (!config.log_append_time(&defaults))
                .then(|| config.timestamp_bounds(&defaults)),
            min_insync: config.min_insync_replicas(&defaults),
        }
    }
}

/// Refuses CreateTime timestamps outside the topic's bounds (INVALID_TIMESTAMP). Checked per
/// batch on its first and largest timestamps, which bound every record of a batch built by a
/// client (records' timestamp deltas are not negative in practice).
fn check_timestamps(records: &[u8], (before, after): (i64, i64), now: i64) -> Result<(), String> {
    for (h, _) in BatchIter::headers_only(records).filter_map(Result::ok) {
        if h.base_timestamp < now.saturating_sub(before) {
            return Err(format!(
                "timestamp {} is more than message.timestamp.before.max.ms={before} before the broker's time {now}",
                h.base_timestamp
            ));
        }
        if h.max_timestamp > now.saturating_add(after) {
            return Err(format!(
                "timestamp {} is more than message.timestamp.after.max.ms={after} after the broker's time {now}",
                h.max_timestamp
            ));
        }
    }
    Ok(())
}

/// Rewrites every batch whose codec is not `target`, keeping offsets deltas, timestamps,
/// keys, values, headers and producer fields, as Kafka does for a topic-level
/// `compression.type`. Batches already in the target codec are copied unchanged.
fn recompress(records: &[u8], target: Compression, max_bytes: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(records.len());
    for item in BatchIter::new(records) {
        let (h, batch) = item.map_err(|e| e.to_string())?;
        if h.compression().map_err(|e| e.to_string())? == target {
            out.extend_from_slice(batch);
            continue;
        }
        let decoded = decode_records_any(batch, max_bytes).map_err(|e| e.to_string())?;
        let spec = OffsetBatchSpec {
            batch: BatchSpec {
                base_offset: h.base_offset,
                partition_leader_epoch: h.partition_leader_epoch,
                producer_id: h.producer_id,
                producer_epoch: h.producer_epoch,
                base_sequence: h.base_sequence,
                is_transactional: h.is_transactional(),
                is_control: h.is_control(),
                timestamp_type: h.timestamp_type(),
            },
            compression: target,
            last_offset_delta: Some(h.last_offset_delta),
            log_append_time: None,
        };
        out.extend(build_batch_at_offsets(&spec, &decoded).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Checks and appends one partition's batches.
fn append(
    partition: &Arc<Partition>,
    records: bytes::Bytes,
    api_version: i16,
    now: i64,
    rules: TopicRules,
    acks: i16,
) -> Result<Appended, (ResponseError, Option<String>)> {
    if let Some((code, message)) = refuse_client_batches(&records, api_version) {
        return Err((code, Some(message)));
    }
    if acks == -1 {
        partition
            .check_min_insync(rules.min_insync)
            .map_err(|e| (partition_error(&e), Some(e.to_string())))?;
    }
    if let Some(bounds) = rules.timestamp_bounds {
        check_timestamps(&records, bounds, now)
            .map_err(|m| (ResponseError::InvalidTimestamp, Some(m)))?;
    }
    let mut owned = match rules.compression {
        Some(target) => BytesMut::from(
            &recompress(&records, target, MAX_DECOMPRESSED_BYTES)
                .map_err(|m| (ResponseError::CorruptMessage, Some(m)))?[..],
        ),
        // Zero copy when this partition's bytes are the only view of the buffer.
        None => records
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..])),
    };
    partition.append(&mut owned, now).map_err(|e| {
        tracing::debug!(partition = %partition.name, error = %e, "produce refused");
        (partition_error(&e), Some(e.to_string()))
    })
}

/// A partition append that must become durable before acks=all is answered.
struct PendingDurability {
    topic: usize,
    partition: usize,
    handle: Arc<Partition>,
    end_offset: i64,
    /// The leader epoch the records were appended in (0 on a single node).
    leader_epoch: i32,
    min_insync: usize,
}

/// Waits until an acks=all append is durable here and on every in-sync replica.
async fn acknowledged(p: &PendingDurability) -> Result<(), ResponseError> {
    let mut durable = p.handle.subscribe_durable();
    let reached = durable
        .wait_for(|offset| *offset >= p.end_offset || !p.handle.is_open())
        .await
        .is_ok();
    if !reached || !p.handle.is_open() {
        return Err(ResponseError::UnknownTopicOrPartition);
    }
    p.handle
        .wait_replicated(p.end_offset, p.min_insync, p.leader_epoch)
        .await
        .map_err(|e| partition_error(&e))
}

/// Appends every partition's batches; returns `None` for acks=0, which gets no response.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let acks_valid = matches!(acks, -1..=1);
    let now = now_ms();
    let mut pending = Vec::new();
    let mut response = ProduceResponse::default();
    for (ti, topic_data) in request.topic_data.into_iter().enumerate() {
        let name = topic_data.name.to_string();
        let topic = broker.logs.topic(&name);
        let allowed =
            broker
                .authorizer
                .authorize(ctx.session, Operation::Write, Resource::Topic(&name));
        let mut topic_response = TopicProduceResponse::default();
        topic_response.name = topic_data.name;
        for (pi, data) in topic_data.partition_data.into_iter().enumerate() {
            let mut p = PartitionProduceResponse::default();
            p.index = data.index;
            p.base_offset = -1;
            p.log_append_time_ms = -1;
            p.log_start_offset = -1;
            let partition = broker.leads(&name, data.index, -1);
            let outcome = match (acks_valid, allowed, partition, data.records) {
                (false, ..) => Err((ResponseError::InvalidRequiredAcks, None)),
                (_, false, ..) => Err((ResponseError::TopicAuthorizationFailed, None)),
                (_, _, Err(refused), _) => Err(match validate_topic_name(&name) {
                    Err(e) => (ResponseError::InvalidTopicException, Some(e.to_string())),
                    Ok(()) => (refused, None),
                }),
                (_, _, Ok(_), None) => Err((
                    ResponseError::CorruptMessage,
                    Some("the partition carries no record batches".to_string()),
                )),
                (_, _, Ok(partition), Some(records)) => {
                    let rules =
                        topic
                            .as_ref()
                            .map(|t| TopicRules::of(t, broker))
                            .unwrap_or(TopicRules {
                                compression: None,
                                timestamp_bounds: None,
                                min_insync: 1,
                            });
                    let leader_epoch = partition.leading_epoch_now().unwrap_or(-1);
                    append(&partition, records, ctx.api_version, now, rules, acks).map(|appended| {
                        p.base_offset = appended.first_offset();
                        match &appended {
                            Appended::New(info) => {
                                broker
                                    .metrics
                                    .record_append(&name, info.bytes, info.record_count);
                                p.log_append_time_ms = info.log_append_time.unwrap_or(-1);
                                p.log_start_offset = info.log_start_offset;
                            }
                            Appended::Duplicate(_) => {
                                p.log_start_offset = partition
                                    .offsets()
                                    .map(|o| o.log_start_offset)
                                    .unwrap_or(-1);
                            }
                        }
                        if acks == -1 {
                            pending.push(PendingDurability {
                                topic: ti,
                                partition: pi,
                                handle: partition.clone(),
                                end_offset: appended.last_offset() + 1,
                                leader_epoch,
                                min_insync: rules.min_insync,
                            });
                        }
                    })
                }
            };
            if let Err((code, message)) = outcome {
                p.error_code = code.code();
                p.error_message = message.map(str_bytes);
            }
            topic_response.partition_responses.push(p);
        }
        response.responses.push(topic_response);
    }
    if acks == 0 {
        return None;
    }
    if !pending.is_empty() {
        let _delayed = broker.metrics.delayed(crate::metrics::Purgatory::Produce);
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(request.timeout_ms.max(0) as u64);
        for p in &pending {
            broker.logs.flusher().request(p.handle.clone());
        }
        for p in pending {
            let failed = tokio::time::timeout_at(deadline, acknowledged(&p))
                .await
                .unwrap_or(Err(ResponseError::RequestTimedOut))
                .err();
            if let Some(code) = failed {
                let r = &mut response.responses[p.topic].partition_responses[p.partition];
                r.error_code = code.code();
                r.base_offset = -1;
            }
        }
    }
    Some(response)
}
