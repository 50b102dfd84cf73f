//! Broker metrics, served at `GET /metrics` in Prometheus text format 0.0.4.
//!
//! Off by default; `metrics.listener=http://127.0.0.1:9404` (a Fjord key: Kafka exposes JMX
//! instead) starts the endpoint, and the broker logs `metrics on http://HOST:PORT/metrics` once
//! it is bound (port 0 picks a free one).
//!
//! ```text
//!  hot path (atomics, no locks)                     scrape time (GET /metrics)
//!  dispatch ──► requests[api key]: count, histogram  ├─► counters and gauges as they stand
//!  produce  ──► topics[name]: bytes/messages in      ├─► LogManager::topics(): partitions, sizes,
//!  fetch    ──► topics[name]: bytes out              │   start and end offsets
//!  waits    ──► purgatory gauges                     └─► group coordinator: committed offsets
//!  conns    ──► connection gauge                          → lag per group and partition
//! ```
//!
//! Names follow the Prometheus JMX exporter's usual rendering of Kafka's MBeans (lower-cased
//! `domain_type_name`), so existing Kafka dashboards translate by name:
//!
//! | Prometheus name | Kafka MBean |
//! | --- | --- |
//! | `kafka_server_brokertopicmetrics_bytesin_total{topic}` | `kafka.server:type=BrokerTopicMetrics,name=BytesInPerSec,topic=T` |
//! | `kafka_server_brokertopicmetrics_bytesout_total{topic}` | `kafka.server:type=BrokerTopicMetrics,name=BytesOutPerSec,topic=T` |
//! | `kafka_server_brokertopicmetrics_messagesin_total{topic}` | `kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=T` |
//! | `kafka_network_requestmetrics_requests_total{request}` | `kafka.network:type=RequestMetrics,name=RequestsPerSec,request=R` |
//! | `kafka_network_requestmetrics_totaltimems{request}` (histogram, ms) | `kafka.network:type=RequestMetrics,name=TotalTimeMs,request=R` |
//! | `kafka_server_delayedoperationpurgatory_purgatorysize{delayedOperation}` | `kafka.server:type=DelayedOperationPurgatory,name=PurgatorySize,delayedOperation=Produce\|Fetch` |
//! | `kafka_server_replicamanager_partitioncount` | `kafka.server:type=ReplicaManager,name=PartitionCount` |
//! | `kafka_server_replicamanager_underreplicatedpartitions` | `kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions` |
//! | `kafka_controller_kafkacontroller_offlinepartitionscount` | `kafka.controller:type=KafkaController,name=OfflinePartitionsCount` |
//! | `kafka_controller_kafkacontroller_activecontrollercount` | `kafka.controller:type=KafkaController,name=ActiveControllerCount` |
//! | `kafka_server_replicamanager_isrshrinks_total` | `kafka.server:type=ReplicaManager,name=IsrShrinksPerSec` |
//! | `kafka_server_replicamanager_isrexpands_total` | `kafka.server:type=ReplicaManager,name=IsrExpandsPerSec` |
//! | `kafka_server_socketservermetrics_connection_count` | `kafka.server:type=socket-server-metrics,name=connection-count` |
//! | `kafka_log_log_size{topic,partition}` | `kafka.log:type=Log,name=Size,topic=T,partition=P` |
//! | `kafka_log_log_logstartoffset{topic,partition}` | `kafka.log:type=Log,name=LogStartOffset,...` |
//! | `kafka_log_log_logendoffset{topic,partition}` | `kafka.log:type=Log,name=LogEndOffset,...` |
//! | `kafka_consumergroup_lag{group,topic,partition}` | none (kafka_exporter's metric, label `consumergroup` there) |
//!
//! Differences from Kafka worth knowing:
//! - Kafka's `...PerSec` meters are rates; here they are monotonic counters (`_total`), so
//!   dashboards use `rate(...)`. There is no topic-less aggregate series: use `sum(...)`.
//! - `request` is the API name as Kafka spells it (`Produce`, `Fetch`, `Metadata`, ...).
//!   `totaltimems` measures decode + handling + encode (including acks=all and long-poll
//!   waits), not the time the response spends in the socket buffer.
//! - Bytes in are the record-batch bytes of successful appends; bytes out are the record bytes
//!   of fetch responses (client fetches; replica fetches will count too once they exist).
//! - `messagesin` counts records (the sum of batch record counts), as Kafka does.
//! - Under-replicated and offline partitions are 0 on a single node: every partition is led
//!   here and its only replica is in sync. In cluster mode they come from the applied metadata
//!   image: under-replicated counts partitions led here with fewer in-sync replicas than
//!   replicas; offline partitions (no leader) are reported by the active controller only, as
//!   in Kafka, so that a sum over brokers counts each once.
//! - Lag is `max(0, log end offset - committed offset)` for every committed offset, computed at
//!   scrape time; groups without a committed offset for a partition have no series for it.

mod exposition;
pub(crate) mod http;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use fjord_group::api::OffsetFetchRequest;
use fjord_protocol::api_versions::SUPPORTED_APIS;
use fjord_protocol::fetch_frame::FetchResponseParts;
use kafka_protocol::messages::ApiKey;

use crate::Broker;

pub use exposition::{render, CONTENT_TYPE};

/// Upper bounds of the request latency histogram buckets, in milliseconds (`+Inf` is implied).
pub const LATENCY_BUCKETS_MS: [f64; 15] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
    30000.0,
];

/// The bucket bounds in microseconds, the unit latencies are recorded in.
const LATENCY_BUCKETS_US: [u64; 15] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Api keys are small integers; one slot per possible key keeps the hot path an index.
const API_KEY_SLOTS: usize = 128;

/// How long a scrape waits for the group coordinator before leaving out lag.
const GROUP_SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Count and latency histogram of one API.
#[derive(Debug, Default)]
struct RequestMetrics {
    /// Per-bucket (not cumulative) counts; the last slot is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl RequestMetrics {
    fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let slot = LATENCY_BUCKETS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RequestSnapshot {
        let mut cumulative = 0;
        let mut buckets = [0u64; LATENCY_BUCKETS_US.len()];
        for (i, b) in buckets.iter_mut().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            *b = cumulative;
        }
        let total = cumulative + self.buckets[LATENCY_BUCKETS_US.len()].load(Ordering::Relaxed);
        RequestSnapshot {
            // The histogram's own count, so `_count` and `+Inf` always agree.
            count: total.max(self.count.load(Ordering::Relaxed)),
            buckets,
            sum_ms: self.sum_us.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}

/// Per-topic byte and message counters.
#[derive(Debug, Default)]
struct TopicCounters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    messages_in: AtomicU64,
}

/// Which delayed operation a purgatory gauge counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purgatory {
    /// acks=all produce requests waiting for durability.
    Produce,
    /// Fetch requests long-polling for `min_bytes`.
    Fetch,
}

/// The broker's live counters and gauges; everything else is computed at scrape time.
#[derive(Debug)]
pub struct BrokerMetrics {
    requests: Box<[RequestMetrics]>,
    topics: RwLock<HashMap<String, Arc<TopicCounters>>>,
    connections: AtomicI64,
    delayed_produce: AtomicI64,
    delayed_fetch: AtomicI64,
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        BrokerMetrics {
            requests: (0..API_KEY_SLOTS)
                .map(|_| RequestMetrics::default())
                .collect(),
            topics: RwLock::new(HashMap::new()),
            connections: AtomicI64::new(0),
            delayed_produce: AtomicI64::new(0),
            delayed_fetch: AtomicI64::new(0),
        }
    }
}

/// Holds a gauge up by one until dropped (also when the waiting future is cancelled).
#[derive(Debug)]
pub struct GaugeGuard<'a>(&'a AtomicI64);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl BrokerMetrics {
    /// Counts one request of `api_key` that took `elapsed`.
    pub fn record_request(&self, api_key: ApiKey, elapsed: Duration) {
        if let Some(m) = usize::try_from(api_key as i16)
            .ok()
            .and_then(|i| self.requests.get(i))
        {
            m.record(elapsed);
        }
    }

    /// Runs `f` on the topic's counters, creating them on first use. The common case is one
    /// read lock and a map lookup.
    fn with_topic(&self, topic: &str, f: impl FnOnce(&TopicCounters)) {
        {
            let map = self.topics.read().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = map.get(topic) {
                f(c);
                return;
            }
        }
        let mut map = self.topics.write().unwrap_or_else(|p| p.into_inner());
        f(map.entry(topic.to_string()).or_default());
    }

    /// Counts a successful append: its batch bytes and record count.
    pub fn record_append(&self, topic: &str, bytes: usize, records: i64) {
        self.with_topic(topic, |c| {
            c.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
            c.messages_in
                .fetch_add(records.max(0) as u64, Ordering::Relaxed);
        });
    }

    /// Counts the record bytes a fetch response carries, per topic.
    pub fn record_fetch_response(&self, parts: &FetchResponseParts) {
        for (topic, partitions) in &parts.topics {
            let bytes: usize = partitions.iter().map(|p| p.records.len()).sum();
            if bytes > 0 {
                self.with_topic(topic.as_str(), |c| {
                    c.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
                });
            }
        }
    }

    /// Marks a connection open until the guard drops.
    pub fn connection_opened(&self) -> GaugeGuard<'_> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(&self.connections)
    }

    /// Marks a delayed operation in the purgatory until the guard drops.
    pub fn delayed(&self, which: Purgatory) -> GaugeGuard<'_> {
        let gauge = match which {
            Purgatory::Produce => &self.delayed_produce,
            Purgatory::Fetch => &self.delayed_fetch,
        };
        gauge.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(gauge)
    }

    /// The counters and gauges as they stand, with the scrape-time parts left empty.
    pub fn snapshot(&self) -> Snapshot {
        let requests = SUPPORTED_APIS
            .iter()
            .filter_map(|r| {
                let i = usize::try_from(r.api_key as i16).ok()?;
                let m = self.requests.get(i)?;
                Some((api_name(r.api_key), m.snapshot()))
            })
            .collect();
        let mut topics: Vec<TopicSnapshot> = self
            .topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, c)| TopicSnapshot {
                topic: name.clone(),
                bytes_in: c.bytes_in.load(Ordering::Relaxed),
                bytes_out: c.bytes_out.load(Ordering::Relaxed),
                messages_in: c.messages_in.load(Ordering::Relaxed),
            })
            .collect();
        topics.sort_by(|a, b| a.topic.cmp(&b.topic));
        Snapshot {
            requests,
            topics,
            connections: self.connections.load(Ordering::Relaxed),
            delayed_produce: self.delayed_produce.load(Ordering::Relaxed),
            delayed_fetch: self.delayed_fetch.load(Ordering::Relaxed),
            partition_count: 0,
            under_replicated: 0,
            offline_partitions: 0,
            active_controller: 0,
            isr_shrinks: 0,
            isr_expands: 0,
            logs: Vec::new(),
            lag: Vec::new(),
        }
    }

    /// Forgets the counters of topics that no longer exist, as Kafka removes their MBeans.
    fn retain_topics(&self, exists: impl Fn(&str) -> bool) {
        let stale = {
            let map = self.topics.read().unwrap_or_else(|p| p.into_inner());
            map.keys().any(|k| !exists(k))
        };
        if stale {
            self.topics
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|k, _| exists(k));
        }
    }
}

/// Kafka's name of an API (`Produce`, `Fetch`, `ListOffsets`, ...), as in its `request` tag.
fn api_name(api_key: ApiKey) -> String {
    format!("{api_key:?}")
}

/// One API's request count and cumulative latency buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSnapshot {
    /// Requests handled.
    pub count: u64,
    /// Cumulative counts for each bound of [`LATENCY_BUCKETS_MS`].
    pub buckets: [u64; LATENCY_BUCKETS_MS.len()],
    /// Sum of latencies, in milliseconds.
    pub sum_ms: f64,
}

/// One topic's traffic counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSnapshot {
    /// Topic name.
    pub topic: String,
    /// Record-batch bytes appended.
    pub bytes_in: u64,
    /// Record bytes returned to fetchers.
    pub bytes_out: u64,
    /// Records appended.
    pub messages_in: u64,
}

/// One partition's log, read at scrape time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSnapshot {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Bytes on disk across segments.
    pub size: u64,
    /// First offset in the log.
    pub log_start_offset: i64,
    /// Offset the next record gets.
    pub log_end_offset: i64,
}

/// One group's lag on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagSnapshot {
    /// Group id.
    pub group: String,
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Log end offset minus committed offset (never negative).
    pub lag: i64,
}

/// Everything one scrape renders.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Per API, in api-key order.
    pub requests: Vec<(String, RequestSnapshot)>,
    /// Per topic, by name.
    pub topics: Vec<TopicSnapshot>,
    /// Open client connections.
    pub connections: i64,
    /// acks=all produce requests waiting.
    pub delayed_produce: i64,
    /// Fetch requests long-polling.
    pub delayed_fetch: i64,
    /// Partitions hosted.
    pub partition_count: usize,
    /// Partitions led here with fewer in-sync replicas than replicas.
    pub under_replicated: usize,
    /// Partitions without a leader (reported by the active controller).
    pub offline_partitions: usize,
    /// 1 on the active controller, else 0.
    pub active_controller: usize,
    /// ISR shrinks committed for partitions led here.
    pub isr_shrinks: u64,
    /// ISR expansions committed for partitions led here.
    pub isr_expands: u64,
    /// Per partition, by topic and index.
    pub logs: Vec<LogSnapshot>,
    /// Per group and partition.
    pub lag: Vec<LagSnapshot>,
}

/// Takes a full snapshot: live counters, then logs and group offsets read now.
pub async fn collect(broker: &Broker) -> Snapshot {
    let topics = broker.logs.topics();
    broker
        .metrics
        .retain_topics(|name| topics.iter().any(|t| t.name == name));
    let mut snapshot = broker.metrics.snapshot();
    if let Some(cluster) = &broker.cluster {
        let image = cluster.image();
        let partitions = || image.topics().values().flat_map(|t| t.partitions.values());
        snapshot.under_replicated = partitions()
            .filter(|p| p.leader == cluster.node_id() && p.isr.len() < p.replicas.len())
            .count();
        if cluster.active_controller() == Some(cluster.node_id()) {
            snapshot.offline_partitions = partitions().filter(|p| !p.has_leader()).count();
            snapshot.active_controller = 1;
        }
        (snapshot.isr_shrinks, snapshot.isr_expands) = cluster.replication().isr_changes();
    }
    let mut end_offsets: HashMap<(&str, i32), i64> = HashMap::new();
    for topic in &topics {
        for partition in topic.hosted() {
            snapshot.partition_count += 1;
            let read = partition.with_log(|log| {
                Ok((
                    log.size_bytes(),
                    log.log_start_offset(),
                    log.log_end_offset(),
                ))
            });
            // A partition closed by a concurrent delete simply has no series this time.
            let Ok((size, log_start_offset, log_end_offset)) = read else {
                continue;
            };
            end_offsets.insert((topic.name.as_str(), partition.index), log_end_offset);
            snapshot.logs.push(LogSnapshot {
                topic: topic.name.clone(),
                partition: partition.index,
                size,
                log_start_offset,
                log_end_offset,
            });
        }
    }
    snapshot
        .logs
        .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    match tokio::time::timeout(GROUP_SCRAPE_TIMEOUT, group_lag(broker, &end_offsets)).await {
        Ok(lag) => snapshot.lag = lag,
        Err(_) => tracing::warn!("metrics scrape: group coordinator did not answer; lag left out"),
    }
    snapshot
}

/// Lag of every committed offset of every group against the log end offsets.
async fn group_lag(broker: &Broker, end_offsets: &HashMap<(&str, i32), i64>) -> Vec<LagSnapshot> {
    let Ok(groups) = broker.groups.list(Vec::new()).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for group in groups {
        let request = OffsetFetchRequest {
            group_id: group.group_id.clone(),
            topics: None,
            require_stable: false,
        };
        let Ok(fetched) = broker.groups.fetch_offsets(request).await else {
            continue;
        };
        for topic in fetched.topics {
            for p in topic.partitions {
                if p.committed_offset < 0 {
                    continue;
                }
                let Some(end) = end_offsets.get(&(topic.name.as_str(), p.partition_index)) else {
                    continue;
                };
                out.push(LagSnapshot {
                    group: group.group_id.clone(),
                    topic: topic.name.clone(),
                    partition: p.partition_index,
                    lag: (end - p.committed_offset).max(0),
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_cumulative_buckets() {
        let m = BrokerMetrics::default();
        m.record_request(ApiKey::Produce, Duration::from_micros(300));
        m.record_request(ApiKey::Produce, Duration::from_millis(3));
        m.record_request(ApiKey::Produce, Duration::from_secs(60));
        let s = m.snapshot();
        let (name, produce) = &s.requests[0];
        assert_eq!(name, "Produce");
        assert_eq!(produce.count, 3);
        assert_eq!(produce.buckets[0], 1, "<= 0.5 ms");
        assert_eq!(produce.buckets[2], 1, "<= 2.5 ms");
        assert_eq!(produce.buckets[3], 2, "<= 5 ms");
        assert_eq!(produce.buckets[LATENCY_BUCKETS_MS.len() - 1], 2, "<= 30 s");
        assert!((produce.sum_ms - 60_003.3).abs() < 1e-6);
    }

    #[test]
    fn topic_counters_and_gauges() {
        let m = BrokerMetrics::default();
        m.record_append("t", 100, 3);
        m.record_append("t", 50, 1);
        {
            let _c = m.connection_opened();
            let _p = m.delayed(Purgatory::Produce);
            let s = m.snapshot();
            assert_eq!(
                (s.connections, s.delayed_produce, s.delayed_fetch),
                (1, 1, 0)
            );
        }
        let s = m.snapshot();
        assert_eq!((s.connections, s.delayed_produce), (0, 0));
        assert_eq!(
            s.topics,
            vec![TopicSnapshot {
                topic: "t".into(),
                bytes_in: 150,
                bytes_out: 0,
                messages_in: 4,
            }]
        );
        m.retain_topics(|_| false);
        assert!(m.snapshot().topics.is_empty());
    }
}
