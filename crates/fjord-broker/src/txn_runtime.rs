//! The runtime around the transaction-coordinator state machine (`fjord_txn`).
//!
//! One task owns the [`TransactionCoordinator`] and drains its inbox, like the group runtime.
//! It carries out the machine's effects: appends to `__transaction_state` in the order issued
//! and reports them once durable, writes commit/abort markers to every partition of a
//! transaction (telling the group coordinator when a marker lands in `__consumer_offsets`), and
//! keeps the single timer that aborts transactions past their timeout. On start it replays
//! `__transaction_state`, which re-sends the markers of transactions caught mid-completion.
//!
//! ```text
//!  handler ──Command──► runtime task ──► TransactionCoordinator (pure)
//!     ▲                     │ Persist → append + fsync → complete_persist
//!     └──── oneshot ◄───────┤ WriteMarkers → marker task (every partition, fsync, retry)
//!                           │                   └─► markers_written
//!                           └ ScheduleTimeout → timer → tick
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use fjord_protocol::batch::{build_batch, BatchSpec, RecordSpec};
use fjord_txn::api::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, DescribedTransaction, EndTxnRequest,
    InitProducerIdRequest, ListedTransaction, Response,
};
use fjord_txn::records::TransactionLogRecord;
use fjord_txn::{
    partition_for_transactional_id, Effect, ErrorCode, PersistId, ProducerIdAllocator, RequestId,
    TopicPartition, TransactionCoordinator, TxnConfig,
};
use kafka_protocol::ResponseError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::cluster::{ClusterNode, Leadership};
use crate::group_runtime::{GroupCoordinatorHandle, OFFSETS_TOPIC};
use crate::internal_topic::{self, InternalEntry};
use crate::log_manager::{now_ms, LogManager, Topic};
use crate::partition::PartitionError;
use crate::producer_ids::ProducerIdManager;

/// The internal topic holding transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// Commands queued before senders wait; bounds memory under a flood.
const INBOX_CAPACITY: usize = 4096;
/// Segment size of `__transaction_state` (Kafka's `transaction.state.log.segment.bytes`).
const STATE_SEGMENT_BYTES: &str = "104857600";
/// Pause before writing a transaction's markers again after a failure (Kafka retries forever).
const MARKER_RETRY: Duration = Duration::from_millis(500);

/// A request the coordinator answers with a [`Response`], possibly after waiting.
#[derive(Debug)]
pub enum TxnRequest {
    /// InitProducerId with a transactional id.
    InitProducerId(InitProducerIdRequest),
    /// AddPartitionsToTxn.
    AddPartitions(AddPartitionsToTxnRequest),
    /// AddOffsetsToTxn.
    AddOffsets(AddOffsetsToTxnRequest),
    /// EndTxn.
    EndTxn(EndTxnRequest),
}

enum Command {
    Request(TxnRequest, oneshot::Sender<Response>),
    List {
        states: Vec<String>,
        producer_ids: Vec<i64>,
        reply: oneshot::Sender<Vec<ListedTransaction>>,
    },
    Describe(Vec<String>, oneshot::Sender<Vec<DescribedTransaction>>),
    PersistDone(PersistId, Result<(), i16>),
    MarkersWritten {
        transactional_id: String,
        producer_id: i64,
        epoch: i16,
    },
}

/// Why the coordinator could not answer.
#[derive(Debug, thiserror::Error)]
pub enum TxnRuntimeError {
    /// The coordinator task has stopped (shutdown).
    #[error("the transaction coordinator is not running")]
    NotRunning,
}

/// Handle for sending requests to the coordinator task.
#[derive(Debug, Clone)]
pub struct TxnCoordinatorHandle {
    inbox: mpsc::Sender<Command>,
}

impl TxnCoordinatorHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, TxnRuntimeError> {
        internal_topic::ask_task(&self.inbox, make)
            .await
            .ok_or(TxnRuntimeError::NotRunning)
    }

    /// Sends a request and waits for its (possibly parked) answer.
    pub async fn request(&self, request: TxnRequest) -> Result<Response, TxnRuntimeError> {
        self.ask(|tx| Command::Request(request, tx)).await
    }

    /// ListTransactions with state and producer-id filters (empty = all).
    pub async fn list(
        &self,
        states: Vec<String>,
        producer_ids: Vec<i64>,
    ) -> Result<Vec<ListedTransaction>, TxnRuntimeError> {
        self.ask(|reply| Command::List {
            states,
            producer_ids,
            reply,
        })
        .await
    }

    /// DescribeTransactions.
    pub async fn describe(
        &self,
        transactional_ids: Vec<String>,
    ) -> Result<Vec<DescribedTransaction>, TxnRuntimeError> {
        self.ask(|tx| Command::Describe(transactional_ids, tx))
            .await
    }
}

/// Producer ids from the broker's persisted blocks, so transactional and idempotent producers
/// never share an id, across restarts too.
struct BrokerProducerIds(Arc<ProducerIdManager>);

impl ProducerIdAllocator for BrokerProducerIds {
    fn next_producer_id(&mut self) -> Result<i64, ErrorCode> {
        self.0.next_id().map_err(|e| {
            tracing::warn!(error = %e, "cannot allocate a producer id");
            ErrorCode::Other(crate::error::producer_id_error(&e).code())
        })
    }
}

/// Settings of the runtime around the coordinator.
#[derive(Debug, Clone)]
pub struct TxnRuntimeConfig {
    /// The coordinator's own settings.
    pub coordinator: TxnConfig,
    /// `transactional.id.expiration.ms`.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub cleanup_interval_ms: i64,
}

/// Starts the coordinator: replays `__transaction_state` (blocking, before serving), then
/// runs the task until every handle is dropped. In cluster mode (`cluster`), markers for
/// partitions led by other brokers are sent to them with WriteTxnMarkers.
pub fn start(
    logs: Weak<LogManager>,
    runtime_config: TxnRuntimeConfig,
    producer_ids: Arc<ProducerIdManager>,
    groups: GroupCoordinatorHandle,
    cluster: Option<Arc<ClusterNode>>,
) -> Result<TxnCoordinatorHandle, fjord_storage::StorageError> {
    let config = runtime_config.coordinator.clone();
    let mut coordinator =
        TransactionCoordinator::new(config.clone(), Box::new(BrokerProducerIds(producer_ids)));
    let mut initial_effects = Vec::new();
    if let Some(topic) = logs
        .upgrade()
        .and_then(|l| l.topic(TRANSACTION_STATE_TOPIC))
    {
        let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = internal_topic::read_entries(&topic)?
            .into_iter()
            .filter_map(|e| match e {
                InternalEntry::Record { key, value, .. } => Some((key, value)),
                InternalEntry::Marker { .. } => None,
            })
            .collect();
        let count = records.len();
        match coordinator.load(records, now_ms()) {
            Ok(effects) => initial_effects = effects,
            Err(e) => tracing::error!(error = %e, "could not replay __transaction_state"),
        }
        tracing::info!(
            records = count,
            "loaded transactions from __transaction_state"
        );
    }
    let (inbox, rx) = mpsc::channel(INBOX_CAPACITY);
    let runtime = Runtime {
        coordinator,
        logs,
        config,
        expiration: runtime_config,
        groups,
        cluster,
        inbox: inbox.downgrade(),
        pending: HashMap::new(),
        next_request: 0,
        timer: None,
    };
    tokio::spawn(runtime.run(rx, initial_effects));
    Ok(TxnCoordinatorHandle { inbox })
}

struct Runtime {
    coordinator: TransactionCoordinator,
    logs: Weak<LogManager>,
    config: TxnConfig,
    expiration: TxnRuntimeConfig,
    groups: GroupCoordinatorHandle,
    /// Cluster mode: where each partition's leader is.
    cluster: Option<Arc<ClusterNode>>,
    /// For completions; weak so the task ends when every handle is gone.
    inbox: mpsc::WeakSender<Command>,
    pending: HashMap<RequestId, oneshot::Sender<Response>>,
    next_request: u64,
    timer: Option<Instant>,
}

impl Runtime {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, initial: Vec<Effect>) {
        self.apply(initial);
        let mut cleanup = tokio::time::interval(Duration::from_millis(
            self.expiration.cleanup_interval_ms.max(1) as u64,
        ));
        cleanup.tick().await;
        loop {
            let timer = self.timer;
            tokio::select! {
                biased;
                command = rx.recv() => match command {
                    Some(command) => self.handle(command),
                    None => return,
                },
                _ = cleanup.tick() => {
                    let effects = self.coordinator.expire_transactional_ids(
                        now_ms(),
                        self.expiration.transactional_id_expiration_ms,
                    );
                    self.apply(effects);
                }
                _ = internal_topic::sleep_until(timer), if timer.is_some() => {
                    self.timer = None;
                    let effects = self.coordinator.tick(now_ms());
                    self.apply(effects);
                }
            }
        }
    }

    fn handle(&mut self, command: Command) {
        let now = now_ms();
        match command {
            Command::Request(request, reply) => {
                let id = RequestId(self.next_request);
                self.next_request += 1;
                self.pending.insert(id, reply);
                let c = &mut self.coordinator;
                let effects = match request {
                    TxnRequest::InitProducerId(r) => c.init_producer_id(id, r, now),
                    TxnRequest::AddPartitions(r) => c.add_partitions_to_txn(id, r, now),
                    TxnRequest::AddOffsets(r) => c.add_offsets_to_txn(id, r, now),
                    TxnRequest::EndTxn(r) => c.end_txn(id, r, now),
                };
                self.apply(effects);
            }
            Command::List {
                states,
                producer_ids,
                reply,
            } => {
                let _ = reply.send(self.coordinator.list_transactions(&states, &producer_ids));
            }
            Command::Describe(ids, reply) => {
                let _ = reply.send(self.coordinator.describe_transactions(&ids));
            }
            Command::PersistDone(id, result) => {
                let effects = self.coordinator.complete_persist(id, result, now);
                self.apply(effects);
            }
            Command::MarkersWritten {
                transactional_id,
                producer_id,
                epoch,
            } => {
                let effects =
                    self.coordinator
                        .markers_written(&transactional_id, producer_id, epoch, now);
                self.apply(effects);
            }
        }
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Respond {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.pending.remove(&request_id) {
                        let _ = reply.send(response);
                    }
                }
                Effect::ScheduleTimeout { at_ms } => {
                    let wait = (at_ms - now_ms()).max(0) as u64;
                    self.timer = Some(Instant::now() + Duration::from_millis(wait));
                }
                Effect::Persist {
                    persist_id,
                    transactional_id,
                    record,
                } => self.persist(persist_id, &transactional_id, &record),
                Effect::WriteMarkers {
                    transactional_id,
                    producer_id,
                    epoch,
                    commit,
                    coordinator_epoch: _,
                    partitions,
                } => {
                    let (Some(logs), Some(inbox)) = (self.logs.upgrade(), self.inbox.upgrade())
                    else {
                        continue;
                    };
                    let groups = self.groups.clone();
                    let cluster = self.cluster.clone();
                    tokio::spawn(async move {
                        let markers = Markers {
                            producer_id,
                            epoch,
                            commit,
                        };
                        markers
                            .write_all(&logs, &groups, cluster.as_deref(), &partitions)
                            .await;
                        let _ = inbox
                            .send(Command::MarkersWritten {
                                transactional_id,
                                producer_id,
                                epoch,
                            })
                            .await;
                    });
                }
            }
        }
    }

    /// Appends now (so log order is issue order) and reports completion once durable.
    fn persist(&mut self, id: PersistId, transactional_id: &str, record: &TransactionLogRecord) {
        let Some(inbox) = self.inbox.upgrade() else {
            return;
        };
        let appended = self.append(transactional_id, record);
        tokio::spawn(async move {
            let result = match appended {
                Ok((partition, end_offset, logs)) => {
                    internal_topic::wait_durable(&logs, partition, end_offset).await
                }
                Err(code) => Err(code),
            };
            let _ = inbox.send(Command::PersistDone(id, result)).await;
        });
    }

    fn append(
        &self,
        transactional_id: &str,
        record: &TransactionLogRecord,
    ) -> Result<(Arc<crate::partition::Partition>, i64, Arc<LogManager>), i16> {
        let logs = self
            .logs
            .upgrade()
            .ok_or(ResponseError::CoordinatorNotAvailable.code())?;
        let topic =
            ensure_transaction_state_topic(&logs, self.config.transaction_state_num_partitions)
                .map_err(|_| ResponseError::CoordinatorNotAvailable.code())?;
        let index = partition_for_transactional_id(transactional_id, topic.partition_count());
        let partition = topic
            .partition(index)
            .cloned()
            .ok_or(ResponseError::CoordinatorNotAvailable.code())?;
        let now = now_ms();
        let spec = RecordSpec {
            timestamp: now,
            key: Some(record.encode_key().to_vec()),
            value: record.encode_value().map(|v| v.to_vec()),
            headers: Vec::new(),
        };
        let mut batch = build_batch(&BatchSpec::default(), &[spec]);
        let end = internal_topic::append(&partition, &mut batch, now)?;
        Ok((partition, end, logs))
    }
}

/// The markers ending one transaction.
#[derive(Debug, Clone, Copy)]
struct Markers {
    producer_id: i64,
    epoch: i16,
    commit: bool,
}

impl Markers {
    /// Writes the marker to every partition and waits until each is durable, retrying failed
    /// partitions until they succeed or are gone (a deleted topic needs no marker).
    async fn write_all(
        self,
        logs: &Arc<LogManager>,
        groups: &GroupCoordinatorHandle,
        cluster: Option<&ClusterNode>,
        partitions: &[TopicPartition],
    ) {
        let mut left: Vec<&TopicPartition> = partitions.iter().collect();
        loop {
            // All partitions at once, so their fsyncs share the flusher's rounds.
            let outcomes = futures::future::join_all(
                left.iter()
                    .map(|tp| self.write_one(logs, groups, cluster, tp)),
            )
            .await;
            let mut failed = Vec::new();
            for (tp, outcome) in left.into_iter().zip(outcomes) {
                if let Err(e) = outcome {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "transaction marker not written; retrying");
                    failed.push(tp);
                }
            }
            if failed.is_empty() {
                return;
            }
            left = failed;
            tokio::time::sleep(MARKER_RETRY).await;
        }
    }

    /// Writes the marker where the partition's leader is: here, or (cluster mode) at the
    /// leading broker. A partition gone from the image needs no marker; one without a leader
    /// is retried until it has one.
    async fn write_one(
        self,
        logs: &Arc<LogManager>,
        groups: &GroupCoordinatorHandle,
        cluster: Option<&ClusterNode>,
        tp: &TopicPartition,
    ) -> Result<(), String> {
        let local = || write_marker(logs, groups, tp, self.producer_id, self.epoch, self.commit);
        let Some(cluster) = cluster else {
            return match local().await {
                Ok(()) | Err(MarkerError::UnknownPartition) => Ok(()),
                Err(e) => Err(e.to_string()),
            };
        };
        match cluster.leadership(&tp.topic, tp.partition) {
            Leadership::Unknown => Ok(()),
            Leadership::Offline { .. } => Err("the partition has no leader".into()),
            // The image says it is led here, so a partition not open yet is retried.
            Leadership::Here { .. } => local().await.map_err(|e| e.to_string()),
            Leadership::Elsewhere { leader, .. } => cluster
                .inter_broker()
                .write_txn_marker(
                    &cluster.image(),
                    leader,
                    &tp.topic,
                    tp.partition,
                    self.producer_id,
                    self.epoch,
                    self.commit,
                )
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

/// Why a marker could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    /// The partition is not hosted here (or was deleted).
    #[error("unknown topic or partition")]
    UnknownPartition,
    /// The partition refused the marker (e.g. a stale producer epoch) or its log failed.
    #[error(transparent)]
    Partition(#[from] PartitionError),
    /// The marker was written but not made durable in time; the Kafka code says why.
    #[error("error code {0} waiting for the marker to be durable")]
    NotDurable(i16),
    /// The group coordinator could not take the outcome of transactional offset commits.
    #[error("the group coordinator is not running")]
    Groups,
}

/// Writes one commit/abort marker, waits until it is durable, and, for `__consumer_offsets`,
/// lets the group coordinator apply or drop the transaction's offsets. Shared by the
/// coordinator's own marker writes and WriteTxnMarkers.
pub async fn write_marker(
    logs: &Arc<LogManager>,
    groups: &GroupCoordinatorHandle,
    tp: &TopicPartition,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
) -> Result<(), MarkerError> {
    let partition = logs
        .topic(&tp.topic)
        .and_then(|t: Arc<Topic>| t.partition(tp.partition).cloned())
        .ok_or(MarkerError::UnknownPartition)?;
    let offset = match partition.write_marker(producer_id, producer_epoch, commit, now_ms()) {
        Ok(offset) => offset,
        Err(PartitionError::Closed(_)) => return Err(MarkerError::UnknownPartition),
        Err(e) => return Err(e.into()),
    };
    internal_topic::wait_durable(logs, partition, offset + 1)
        .await
        .map_err(MarkerError::NotDurable)?;
    if tp.topic == OFFSETS_TOPIC {
        groups
            .complete_transaction(producer_id, tp.partition, commit)
            .await
            .map_err(|_| MarkerError::Groups)?;
    }
    Ok(())
}

/// The topic configs of `__transaction_state`: compacted like Kafka's, so the latest state
/// per transactional id survives.
pub fn transaction_state_topic_configs() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("segment.bytes".to_string(), STATE_SEGMENT_BYTES.to_string()),
    ])
}

/// Creates `__transaction_state` on first use, as Kafka does. In cluster mode the topic
/// comes from the metadata image (FindCoordinator creates it through the controller), so
/// only an existing one is returned.
pub fn ensure_transaction_state_topic(
    logs: &LogManager,
    partitions: i32,
) -> Result<Arc<Topic>, crate::log_manager::TopicError> {
    if let Some(topic) = logs.topic(TRANSACTION_STATE_TOPIC) {
        return Ok(topic);
    }
    logs.create_internal_topic(
        TRANSACTION_STATE_TOPIC,
        partitions,
        transaction_state_topic_configs(),
    )
}
