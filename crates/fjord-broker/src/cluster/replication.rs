//! Partition replication between brokers, Kafka's way.
//!
//! ```text
//!   applied image ──► ReplicaManager::apply_image
//!                        │  leader here  ──► Partition::become_leader (epoch starts at log end)
//!                        │  leader there ──► Partition::become_follower ──► fetcher of that leader
//!                        ▼
//!   fetcher (one task per leader broker, its own connection)
//!        new leadership: OffsetForLeaderEpoch(latest epoch) ──► truncate_to(where it ended)
//!        then loop: Fetch(replica_id = this node, offset = log end) ──► append_as_follower
//!                                                                     + leader's high watermark
//!   leader: Fetch from a replica ──► read_for_replica: follower's log end, high watermark,
//!                                    ISR expansion due ──► proposals ──► AlterPartition
//!   ISR task: every replica.lag.time.max.ms / 2, lagging ISR followers ──► AlterPartition
//! ```
//!
//! ISR changes take effect only once the controller commits them; the answer (or the next
//! image) is adopted by the leader. Written by hand: this is the product's replication
//! protocol itself, over the brokers' own Kafka API.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use fjord_controller::api::{
    AlterPartitionData, AlterPartitionRequest, AlterPartitionTopic, ControllerRequest,
    ControllerResponse,
};
use fjord_controller::record::NO_LEADER;
use fjord_controller::{ErrorCode, MetadataImage};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{ClusterNode, InterBrokerClient};
use crate::log_manager::{now_ms, LogManager};
use crate::partition::{Partition, PartitionError};
use crate::replica_state::IsrProposal;

/// The Fetch version followers send (the newest with topic names).
const REPLICA_FETCH_VERSION: i16 = 12;
/// The OffsetForLeaderEpoch version followers send.
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
/// The pause after a leadership error, which the next image usually settles at once.
const LEADERSHIP_RETRY: Duration = Duration::from_millis(100);

/// How followers fetch and when leaders drop them from the ISR.
#[derive(Debug, Clone)]
pub struct ReplicationSettings {
    /// `replica.lag.time.max.ms`.
    pub lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`.
    pub fetch_wait_max_ms: u64,
    /// `replica.fetch.max.bytes`.
    pub fetch_max_bytes: u64,
    /// `replica.fetch.response.max.bytes`.
    pub fetch_response_max_bytes: u64,
    /// `replica.fetch.backoff.ms`.
    pub fetch_backoff_ms: u64,
}

/// An ISR change waiting to be sent to the controller.
#[derive(Debug)]
struct Proposal {
    topic_id: Uuid,
    partition: Arc<Partition>,
    proposal: IsrProposal,
    /// Adds a follower (else removes lagging ones), for the ISR change counters.
    expands: bool,
}

/// ISR changes committed for partitions led here, since start (Kafka's IsrShrinksPerSec /
/// IsrExpandsPerSec, as counters).
#[derive(Debug, Default)]
struct IsrChangeCounts {
    /// Followers removed.
    shrinks: AtomicU64,
    /// Followers added back.
    expands: AtomicU64,
}

/// This broker's replicas: their roles, the fetchers copying from leaders, and ISR changes.
#[derive(Debug)]
pub struct ReplicaManager {
    node_id: i32,
    logs: Arc<LogManager>,
    settings: ReplicationSettings,
    client: Arc<InterBrokerClient>,
    image: watch::Sender<Arc<MetadataImage>>,
    node: OnceLock<Weak<ClusterNode>>,
    fetchers: Mutex<HashMap<i32, Fetcher>>,
    proposals: mpsc::UnboundedSender<Proposal>,
    proposals_rx: Mutex<Option<mpsc::UnboundedReceiver<Proposal>>>,
    isr_task: Mutex<Option<JoinHandle<()>>>,
    runtime: tokio::runtime::Handle,
    isr_changes: Arc<IsrChangeCounts>,
}

/// One partition a fetcher copies.
#[derive(Debug, Clone)]
struct FetchTarget {
    topic: String,
    partition: Arc<Partition>,
    leader_epoch: i32,
    /// A new leadership: find where this log and the leader's part before fetching.
    truncate_first: bool,
    /// Skip until then after an error (the image will likely move the partition).
    backoff_until: Option<tokio::time::Instant>,
}

type TargetKey = (String, i32);

#[derive(Debug, Default)]
struct FetcherShared {
    targets: Mutex<BTreeMap<TargetKey, FetchTarget>>,
    changed: Notify,
    stop: AtomicBool,
}

#[derive(Debug)]
struct Fetcher {
    shared: Arc<FetcherShared>,
    task: JoinHandle<()>,
}

impl ReplicaManager {
    /// A manager for broker `node_id`; fetchers reach leaders on `listener`. Must be created
    /// inside the runtime, which runs its tasks.
    pub fn new(
        node_id: i32,
        logs: Arc<LogManager>,
        listener: String,
        request_timeout: Duration,
        settings: ReplicationSettings,
    ) -> Arc<ReplicaManager> {
        let timeout = request_timeout + Duration::from_millis(settings.fetch_wait_max_ms);
        let (proposals, rx) = mpsc::unbounded_channel();
        Arc::new(ReplicaManager {
            node_id,
            logs,
            settings,
            client: Arc::new(InterBrokerClient::new(node_id, listener, timeout)),
            image: watch::Sender::new(Arc::new(MetadataImage::default())),
            node: OnceLock::new(),
            fetchers: Mutex::new(HashMap::new()),
            proposals,
            proposals_rx: Mutex::new(Some(rx)),
            isr_task: Mutex::new(None),
            runtime: tokio::runtime::Handle::current(),
            isr_changes: Arc::default(),
        })
    }

    /// Connects the manager to its node, for AlterPartition, and starts the ISR task.
    pub fn attach(self: &Arc<Self>, node: &Arc<ClusterNode>) {
        let _ = self.node.set(Arc::downgrade(node));
        let Some(rx) = self
            .proposals_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let task = self.runtime.spawn(isr_task(Arc::downgrade(self), rx));
        *self.isr_task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// Queues an ISR expansion a follower's fetch made due.
    pub fn propose(&self, topic_id: Uuid, partition: Arc<Partition>, proposal: IsrProposal) {
        let _ = self.proposals.send(Proposal {
            topic_id,
            partition,
            proposal,
            expands: true,
        });
    }

    /// ISR changes committed so far, for metrics.
    pub fn isr_changes(&self) -> (u64, u64) {
        (
            self.isr_changes.shrinks.load(Ordering::Relaxed),
            self.isr_changes.expands.load(Ordering::Relaxed),
        )
    }

    /// Gives every hosted partition its role from `image` and points the fetchers at the
    /// leaders. Called by the image follower once the logs match the image, before the
    /// image is published to handlers. Blocking (role changes touch the log).
    pub fn apply_image(&self, image: &Arc<MetadataImage>) {
        self.image.send_replace(image.clone());
        let now = now_ms();
        let mut wanted: HashMap<i32, Vec<FetchTarget>> = HashMap::new();
        for topic in image.topics().values() {
            let Some(local) = self.logs.topic(&topic.name) else {
                continue;
            };
            for (&index, p) in &topic.partitions {
                if !p.replicas.contains(&self.node_id) {
                    continue;
                }
                let Some(partition) = local.partition(index).cloned() else {
                    continue;
                };
                if p.leader == self.node_id {
                    if let Err(e) = partition.become_leader(
                        self.node_id,
                        p.leader_epoch,
                        p.partition_epoch,
                        p.replicas.clone(),
                        p.isr.clone(),
                        now,
                    ) {
                        tracing::error!(partition = %partition.name, error = %e, "cannot become leader");
                    }
                } else if p.leader == NO_LEADER {
                    partition.become_offline(p.leader_epoch);
                } else {
                    let fresh = partition.become_follower(p.leader, p.leader_epoch);
                    wanted.entry(p.leader).or_default().push(FetchTarget {
                        topic: topic.name.clone(),
                        partition,
                        leader_epoch: p.leader_epoch,
                        truncate_first: fresh,
                        backoff_until: None,
                    });
                }
            }
        }
        self.set_fetch_targets(wanted);
    }

    fn set_fetch_targets(&self, mut wanted: HashMap<i32, Vec<FetchTarget>>) {
        let mut fetchers = self.fetchers.lock().unwrap_or_else(|p| p.into_inner());
        let idle: Vec<i32> = fetchers
            .keys()
            .copied()
            .filter(|l| !wanted.contains_key(l))
            .collect();
        for leader in idle {
            if let Some(f) = fetchers.remove(&leader) {
                f.shared.stop.store(true, Ordering::Release);
                f.shared.changed.notify_one();
            }
        }
        for (leader, targets) in wanted.drain() {
            let fetcher = fetchers.entry(leader).or_insert_with(|| {
                let shared = Arc::new(FetcherShared::default());
                let task = self.runtime.spawn(fetch_loop(
                    leader,
                    self.node_id,
                    shared.clone(),
                    self.client.clone(),
                    self.image.subscribe(),
                    self.settings.clone(),
                ));
                Fetcher { shared, task }
            });
            let mut current = fetcher
                .shared
                .targets
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let mut next = BTreeMap::new();
            for t in targets {
                let key = (t.topic.clone(), t.partition.index);
                let keep = current.remove(&key).filter(|old| {
                    !t.truncate_first
                        && old.leader_epoch == t.leader_epoch
                        && Arc::ptr_eq(&old.partition, &t.partition)
                });
                next.insert(key, keep.unwrap_or(t));
            }
            *current = next;
            drop(current);
            fetcher.shared.changed.notify_one();
        }
    }

    /// Stops the fetchers and the ISR task and waits for them, so no log is written after
    /// this returns.
    pub async fn shutdown(&self) {
        let fetchers: Vec<Fetcher> = self
            .fetchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, f)| f)
            .collect();
        for f in &fetchers {
            f.shared.stop.store(true, Ordering::Release);
            f.shared.changed.notify_one();
        }
        for f in fetchers {
            f.task.abort();
            let _ = f.task.await;
        }
        let task = self
            .isr_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    fn node(&self) -> Option<Arc<ClusterNode>> {
        self.node.get().and_then(Weak::upgrade)
    }

    /// Every partition this broker leads, with its topic id, for the ISR shrink check.
    fn led_partitions(&self) -> Vec<(Uuid, Arc<Partition>)> {
        self.logs
            .topics()
            .into_iter()
            .flat_map(|t| {
                let id = t.id;
                t.hosted()
                    .filter(|p| p.leading_epoch_now().is_some())
                    .map(move |p| (id, p.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Sends ISR proposals to the controller, and looks for lagging followers every half
/// `replica.lag.time.max.ms`.
async fn isr_task(manager: Weak<ReplicaManager>, mut rx: mpsc::UnboundedReceiver<Proposal>) {
    let every = match manager.upgrade() {
        Some(m) => Duration::from_millis((m.settings.lag_time_max_ms / 2).max(50)),
        None => return,
    };
    let mut ticker = tokio::time::interval(every);
    loop {
        let proposal = tokio::select! {
            p = rx.recv() => match p {
                Some(p) => Some(p),
                None => return,
            },
            _ = ticker.tick() => None,
        };
        let Some(manager) = manager.upgrade() else {
            return;
        };
        let mut due = Vec::new();
        match proposal {
            Some(p) => due.push(p),
            None => {
                let now = now_ms();
                let lag = manager.settings.lag_time_max_ms as i64;
                for (topic_id, partition) in manager.led_partitions() {
                    if let Some(proposal) = partition.propose_isr_shrink(now, lag) {
                        tracing::info!(partition = %partition.name, isr = ?proposal.new_isr, "shrinking the ISR");
                        due.push(Proposal {
                            topic_id,
                            partition,
                            proposal,
                            expands: false,
                        });
                    }
                }
            }
        }
        for p in due {
            let Some(node) = manager.node() else {
                p.partition
                    .settle_isr_proposal(p.proposal.leader_epoch, None, now_ms());
                continue;
            };
            tokio::spawn(submit_proposal(node, p, manager.isr_changes.clone()));
        }
    }
}

/// Sends one AlterPartition and applies the answer to the partition.
async fn submit_proposal(node: Arc<ClusterNode>, p: Proposal, counts: Arc<IsrChangeCounts>) {
    let request = ControllerRequest::AlterPartition(AlterPartitionRequest {
        broker_id: node.node_id(),
        broker_epoch: node.broker_epoch(),
        topics: vec![AlterPartitionTopic {
            topic_id: p.topic_id,
            partitions: vec![AlterPartitionData {
                partition: p.partition.index,
                leader_epoch: p.proposal.leader_epoch,
                new_isr: p.proposal.new_isr.clone(),
                partition_epoch: p.proposal.partition_epoch,
            }],
        }],
    });
    let committed = match node.submit(request).await {
        Ok(ControllerResponse::AlterPartition(r)) if r.error == ErrorCode::None => r
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .filter(|p| p.error == ErrorCode::None)
            .map(|r| (r.partition_epoch, r.isr.clone())),
        Ok(other) => {
            tracing::warn!(partition = %p.partition.name, answer = ?other, "ISR change refused");
            None
        }
        Err(e) => {
            tracing::warn!(partition = %p.partition.name, error = %e, "ISR change not sent");
            None
        }
    };
    if let Some((_, isr)) = &committed {
        tracing::info!(partition = %p.partition.name, ?isr, "ISR changed");
        let counter = if p.expands {
            &counts.expands
        } else {
            &counts.shrinks
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    p.partition
        .settle_isr_proposal(p.proposal.leader_epoch, committed, now_ms());
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Copies every partition in `shared` from `leader` until stopped.
async fn fetch_loop(
    leader: i32,
    node_id: i32,
    shared: Arc<FetcherShared>,
    client: Arc<InterBrokerClient>,
    image: watch::Receiver<Arc<MetadataImage>>,
    settings: ReplicationSettings,
) {
    let backoff = Duration::from_millis(settings.fetch_backoff_ms.max(10));
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let now = tokio::time::Instant::now();
        let (targets, next_due) = {
            let all = shared.targets.lock().unwrap_or_else(|p| p.into_inner());
            let due: Vec<FetchTarget> = all
                .values()
                .filter(|t| t.backoff_until.is_none_or(|until| until <= now))
                .cloned()
                .collect();
            let next_due = all.values().filter_map(|t| t.backoff_until).min();
            (due, next_due)
        };
        if targets.is_empty() {
            // Nothing due: wait for a change of targets or the first backoff to end, not a
            // whole backoff period (a leadership retry is meant to come after 100 ms).
            let wake = next_due.map_or(backoff, |at| at.saturating_duration_since(now));
            let _ = tokio::time::timeout(wake, shared.changed.notified()).await;
            continue;
        }
        let image = image.borrow().clone();
        let outcome = if targets.iter().any(|t| t.truncate_first) {
            let truncating: Vec<FetchTarget> =
                targets.into_iter().filter(|t| t.truncate_first).collect();
            truncate_diverged(
                &client, &image, leader, node_id, &shared, truncating, backoff,
            )
            .await
        } else {
            fetch_once(
                &client, &image, leader, node_id, &shared, targets, &settings, backoff,
            )
            .await
        };
        if let Err(e) = outcome {
            tracing::debug!(leader, error = %e, "replica fetch failed; retrying");
            let _ = tokio::time::timeout(backoff, shared.changed.notified()).await;
        }
    }
}

/// Updates one target in place, if it is still the same leadership of the same log.
fn update_target(shared: &FetcherShared, t: &FetchTarget, f: impl FnOnce(&mut FetchTarget)) {
    let mut targets = shared.targets.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(current) = targets.get_mut(&(t.topic.clone(), t.partition.index)) {
        if current.leader_epoch == t.leader_epoch && Arc::ptr_eq(&current.partition, &t.partition) {
            f(current);
        }
    }
}

/// Asks the leader where each partition's latest epoch ended and cuts what this replica
/// has beyond it (Kafka's truncation by leader epoch, KIP-101).
async fn truncate_diverged(
    client: &InterBrokerClient,
    image: &MetadataImage,
    leader: i32,
    node_id: i32,
    shared: &FetcherShared,
    targets: Vec<FetchTarget>,
    backoff: Duration,
) -> Result<(), super::InterBrokerError> {
    let mut asked = Vec::new();
    let mut by_topic: BTreeMap<String, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    for t in targets {
        let latest = match t.partition.latest_epoch() {
            Ok(latest) => latest,
            Err(e) => {
                tracing::warn!(partition = %t.partition.name, error = %e, "cannot read the leader-epoch cache");
                continue;
            }
        };
        let end = t.partition.offsets().map(|o| o.log_end_offset).unwrap_or(0);
        match latest {
            // Nothing written under any epoch: nothing can have diverged, or (records with
            // no epoch) the high watermark is the safe point, as in Kafka.
            None => {
                let hw = t.partition.offsets().map(|o| o.high_watermark).unwrap_or(0);
                if end > 0 {
                    if let Err(e) = t.partition.truncate_to(hw) {
                        tracing::warn!(partition = %t.partition.name, error = %e, "truncation failed");
                        continue;
                    }
                }
                update_target(shared, &t, |c| c.truncate_first = false);
            }
            Some(epoch) => {
                let mut p = OffsetForLeaderPartition::default();
                p.partition = t.partition.index;
                p.current_leader_epoch = t.leader_epoch;
                p.leader_epoch = epoch;
                by_topic.entry(t.topic.clone()).or_default().push(p);
                asked.push((t, epoch));
            }
        }
    }
    if asked.is_empty() {
        return Ok(());
    }
    let mut request = OffsetForLeaderEpochRequest::default();
    request.replica_id = BrokerId(node_id);
    request.topics = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            let mut t = OffsetForLeaderTopic::default();
            t.topic = topic_name(&topic);
            t.partitions = partitions;
            t
        })
        .collect();
    let response = client
        .send(image, leader, &request, OFFSET_FOR_LEADER_EPOCH_VERSION)
        .await?;
    for (t, asked_epoch) in asked {
        let answer = response
            .topics
            .iter()
            .filter(|r| r.topic.as_str() == t.topic)
            .flat_map(|r| r.partitions.iter())
            .find(|p| p.partition == t.partition.index);
        let Some(answer) = answer else { continue };
        if answer.error_code != 0 {
            tracing::debug!(partition = %t.partition.name, code = answer.error_code, "OffsetForLeaderEpoch refused");
            update_target(shared, &t, |c| {
                c.backoff_until = Some(tokio::time::Instant::now() + backoff.min(LEADERSHIP_RETRY))
            });
            continue;
        }
        let offsets = match t.partition.offsets() {
            Ok(o) => o,
            Err(_) => continue,
        };
        let target = if answer.end_offset < 0 {
            offsets.high_watermark
        } else if answer.leader_epoch < asked_epoch {
            // The leader never wrote in our latest epoch: keep only what both have of the
            // epoch it did answer.
            let own_end = t
                .partition
                .end_offset_for_epoch(answer.leader_epoch)
                .map(|(e, end)| {
                    if e == answer.leader_epoch {
                        end
                    } else {
                        answer.end_offset
                    }
                })
                .unwrap_or(answer.end_offset);
            answer.end_offset.min(own_end)
        } else {
            answer.end_offset
        };
        let target = target.min(offsets.log_end_offset);
        // Truncation deletes and syncs files: off the runtime's threads.
        let partition = t.partition.clone();
        let truncated = tokio::task::spawn_blocking(move || partition.truncate_to(target)).await;
        match truncated {
            Ok(Ok(())) => update_target(shared, &t, |c| c.truncate_first = false),
            Ok(Err(e)) => {
                tracing::warn!(partition = %t.partition.name, error = %e, "truncation failed")
            }
            Err(e) => {
                tracing::warn!(partition = %t.partition.name, error = %e, "truncation failed")
            }
        }
    }
    Ok(())
}

/// One Fetch to the leader for every target, and what its answer means for each.
#[allow(clippy::too_many_arguments)]
async fn fetch_once(
    client: &InterBrokerClient,
    image: &MetadataImage,
    leader: i32,
    node_id: i32,
    shared: &FetcherShared,
    targets: Vec<FetchTarget>,
    settings: &ReplicationSettings,
    backoff: Duration,
) -> Result<(), super::InterBrokerError> {
    let mut by_topic: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    let mut live = Vec::new();
    for t in targets {
        let Ok(offsets) = t.partition.offsets() else {
            continue;
        };
        let mut p = FetchPartition::default();
        p.partition = t.partition.index;
        p.current_leader_epoch = t.leader_epoch;
        p.fetch_offset = offsets.log_end_offset;
        p.log_start_offset = offsets.log_start_offset;
        p.partition_max_bytes = i32::try_from(settings.fetch_max_bytes).unwrap_or(i32::MAX);
        by_topic.entry(t.topic.clone()).or_default().push(p);
        live.push((t, offsets.log_end_offset));
    }
    if live.is_empty() {
        return Ok(());
    }
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(node_id);
    request.max_wait_ms = i32::try_from(settings.fetch_wait_max_ms).unwrap_or(i32::MAX);
    request.min_bytes = 1;
    request.max_bytes = i32::try_from(settings.fetch_response_max_bytes).unwrap_or(i32::MAX);
    request.session_id = 0;
    request.session_epoch = -1;
    request.topics = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            let mut t = FetchTopic::default();
            t.topic = topic_name(&topic);
            t.partitions = partitions;
            t
        })
        .collect();
    let response = client
        .send(image, leader, &request, REPLICA_FETCH_VERSION)
        .await?;
    if response.error_code != 0 {
        return Err(super::InterBrokerError::Refused {
            broker_id: leader,
            code: response.error_code,
        });
    }
    let now = now_ms();
    for (t, fetched_from) in live {
        let answer = response
            .responses
            .iter()
            .filter(|r| r.topic.as_str() == t.topic)
            .flat_map(|r| r.partitions.iter())
            .find(|p| p.partition_index == t.partition.index);
        let Some(answer) = answer else { continue };
        match ResponseError::try_from_code(answer.error_code) {
            None => {
                if answer.log_start_offset > 0 {
                    if let Err(e) = t.partition.follow_log_start(answer.log_start_offset) {
                        tracing::warn!(partition = %t.partition.name, error = %e, "cannot follow the leader's log start");
                    }
                }
                let records = answer.records.clone().unwrap_or_else(Bytes::new);
                if records.is_empty() {
                    t.partition.follow_high_watermark(answer.high_watermark);
                    continue;
                }
                let mut owned = records.to_vec();
                match t
                    .partition
                    .append_as_follower(&mut owned, answer.high_watermark, now)
                {
                    Ok(_) => {}
                    // The log moved under the fetch (a truncation); the next round refetches.
                    Err(PartitionError::Storage(
                        fjord_storage::StorageError::NonContiguousAppend { .. },
                    )) => {
                        tracing::debug!(partition = %t.partition.name, fetched_from, "fetched batches no longer fit; refetching");
                    }
                    Err(e) => {
                        tracing::warn!(partition = %t.partition.name, error = %e, "cannot append fetched batches");
                        update_target(shared, &t, |c| {
                            c.backoff_until = Some(tokio::time::Instant::now() + backoff)
                        });
                    }
                }
            }
            Some(ResponseError::OffsetOutOfRange) => {
                if fetched_from < answer.log_start_offset {
                    if let Err(e) = t
                        .partition
                        .truncate_fully_and_start_at(answer.log_start_offset)
                    {
                        tracing::warn!(partition = %t.partition.name, error = %e, "cannot restart the log at the leader's start");
                    }
                } else {
                    update_target(shared, &t, |c| c.truncate_first = true);
                }
            }
            Some(code) => {
                tracing::debug!(partition = %t.partition.name, ?code, "leader refused the fetch");
                // Leadership errors (and a partition unknown to the leader) mostly mean one
                // side has not applied the newest image yet, which takes milliseconds;
                // anything else waits the full backoff.
                let pause = match code {
                    ResponseError::NotLeaderOrFollower
                    | ResponseError::UnknownLeaderEpoch
                    | ResponseError::FencedLeaderEpoch
                    // A partition the leader has not opened yet: the same image lag.
                    | ResponseError::UnknownTopicOrPartition => backoff.min(LEADERSHIP_RETRY),
                    _ => backoff,
                };
                update_target(shared, &t, |c| {
                    c.backoff_until = Some(tokio::time::Instant::now() + pause)
                });
            }
        }
    }
    Ok(())
}
