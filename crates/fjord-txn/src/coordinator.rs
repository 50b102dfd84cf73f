//! The transaction coordinator: Kafka's `TransactionCoordinator` and the state-changing parts
//! of `TransactionStateManager`, minus the I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::api::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, DescribedTransaction, EndTxnRequest,
    InitProducerIdRequest, InitProducerIdResponse, ListedTransaction, Response,
};
use crate::config::TxnConfig;
use crate::effect::{Effect, PersistId, RequestId};
use crate::error::ErrorCode;
use crate::partition::{partition_for_group, partition_for_transactional_id};
use crate::records::{RecordError, TopicPartitions, TransactionLogRecord, TransactionLogValue};
use crate::state::{
    TopicPartition, TransactionMetadata, TransactionState, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};

/// The topic AddOffsetsToTxn adds a partition of.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Source of fresh producer ids.
///
/// Injected because in a cluster ids come in blocks from the controller (KIP-730); tests and
/// the simulator use [`SequentialProducerIds`].
pub trait ProducerIdAllocator: Send {
    /// A producer id never handed out before, or the error to answer when none can be
    /// reserved (e.g. the disk holding the reservation is full).
    fn next_producer_id(&mut self) -> Result<i64, ErrorCode>;
}

/// Hands out 0, 1, 2, ... from a counter, for tests, simulation and a single node.
#[derive(Debug, Default, Clone)]
pub struct SequentialProducerIds {
    next: i64,
}

impl ProducerIdAllocator for SequentialProducerIds {
    fn next_producer_id(&mut self) -> Result<i64, ErrorCode> {
        let id = self.next;
        self.next += 1;
        Ok(id)
    }
}

/// Who waits for the outcome of an append, and what it is for.
#[derive(Debug)]
enum Waiter {
    /// InitProducerId answered with the new id and epoch.
    Init { request_id: RequestId, version: i16 },
    /// AddPartitionsToTxn or AddOffsetsToTxn.
    Add {
        request_id: RequestId,
        version: i16,
        offsets: bool,
    },
    /// EndTxn answered once the Prepare state is durable.
    EndTxn { request_id: RequestId, version: i16 },
    /// An InitProducerId that fenced an ongoing transaction: answered CONCURRENT_TRANSACTIONS
    /// once the abort is durable, so the client retries after the markers.
    FencingInit { request_id: RequestId, version: i16 },
    /// A timeout abort: nobody to answer.
    Timeout,
    /// The tombstone of an expired transactional id: forget it once durable.
    Expire,
    /// CompleteCommit/CompleteAbort after the markers: nobody to answer.
    Complete,
}

#[derive(Debug)]
struct InFlight {
    target: TransactionMetadata,
    waiter: Waiter,
}

#[derive(Debug)]
struct Entry {
    metadata: TransactionMetadata,
    /// Kafka's `pendingState`: the state an in-flight append moves to. Other requests get
    /// CONCURRENT_TRANSACTIONS meanwhile.
    pending: Option<TransactionState>,
    /// Kafka's `hasFailedEpochFence`: a fence whose append failed already bumped the epoch in
    /// memory; the next fence must not bump it again.
    has_failed_epoch_fence: bool,
    /// The armed timeout deadline, if any.
    deadline_ms: Option<i64>,
    /// AddPartitionsToTxn/AddOffsetsToTxn of the current producer that arrived while the
    /// previous transaction was still completing (see [`ParkedAdd`]).
    parked: Vec<ParkedAdd>,
}

/// An add that waits for the previous transaction to complete instead of being answered
/// CONCURRENT_TRANSACTIONS at once.
///
/// Kafka answers CONCURRENT_TRANSACTIONS and relies on the client retrying quickly; librdkafka
/// backs off `retry.backoff.ms` (100 ms) before retrying, so a producer that starts its next
/// transaction right after committing would pay that on every transaction. The markers take a
/// few milliseconds, so waiting for them is much shorter.
#[derive(Debug)]
struct ParkedAdd {
    request_id: RequestId,
    version: i16,
    offsets: bool,
    producer_id: i64,
    producer_epoch: i16,
    partitions: Vec<TopicPartition>,
}

/// Where the coordinator stands on one `__transaction_state` partition it owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartitionLoad {
    /// Taken over but not replayed yet: its ids answer COORDINATOR_LOAD_IN_PROGRESS.
    Loading,
    /// Replayed: its ids are served, and their markers carry `coordinator_epoch`.
    Loaded { coordinator_epoch: i32 },
}

/// Parked adds per transactional id; more are answered CONCURRENT_TRANSACTIONS.
const PARKED_ADDS_MAX: usize = 16;

/// Kafka's transaction coordinator for the `__transaction_state` partitions this broker leads.
pub struct TransactionCoordinator {
    config: TxnConfig,
    ids: Box<dyn ProducerIdAllocator>,
    transactions: BTreeMap<String, Entry>,
    deadlines: BTreeSet<(i64, String)>,
    persists: HashMap<PersistId, InFlight>,
    next_persist_id: u64,
    /// The `__transaction_state` partitions this coordinator owns; ids of any other partition
    /// answer NOT_COORDINATOR.
    partitions: BTreeMap<i32, PartitionLoad>,
    announced_deadline: Option<i64>,
    effects: Vec<Effect>,
}

impl std::fmt::Debug for TransactionCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionCoordinator")
            .field("transactions", &self.transactions.len())
            .field("next_deadline_ms", &self.next_deadline_ms())
            .finish_non_exhaustive()
    }
}

impl TransactionCoordinator {
    /// A coordinator with no transactions that owns every `__transaction_state` partition at
    /// coordinator epoch 0, as a single broker does; call [`TransactionCoordinator::load`] to
    /// replay the topic.
    pub fn new(config: TxnConfig, ids: Box<dyn ProducerIdAllocator>) -> Self {
        let partitions = (0..config.transaction_state_num_partitions.max(1))
            .map(|p| {
                (
                    p,
                    PartitionLoad::Loaded {
                        coordinator_epoch: 0,
                    },
                )
            })
            .collect();
        Self {
            partitions,
            ..Self::without_partitions(config, ids)
        }
    }

    /// A coordinator that owns no `__transaction_state` partition until
    /// [`TransactionCoordinator::load_partition`]: for brokers where the partitions'
    /// leadership moves, so that only the leader of an id's partition coordinates it.
    pub fn without_partitions(config: TxnConfig, ids: Box<dyn ProducerIdAllocator>) -> Self {
        Self {
            partitions: BTreeMap::new(),
            config,
            ids,
            transactions: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            persists: HashMap::new(),
            next_persist_id: 0,
            announced_deadline: None,
            effects: Vec::new(),
        }
    }

    /// The earliest time [`TransactionCoordinator::tick`] has work, for runtimes that poll.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// The metadata of `transactional_id`, as last made durable (or as fenced in memory).
    pub fn transaction(&self, transactional_id: &str) -> Option<&TransactionMetadata> {
        self.transactions.get(transactional_id).map(|e| &e.metadata)
    }

    /// InitProducerId: hands out a producer id and epoch, bumping the epoch of a known
    /// transactional id so that any older producer instance is fenced.
    ///
    /// An ongoing transaction of the old epoch is aborted first; as in Kafka, the request is
    /// answered CONCURRENT_TRANSACTIONS once the abort is durable and the client retries, getting
    /// a second bump after the abort completes.
    pub fn init_producer_id(
        &mut self,
        request_id: RequestId,
        request: InitProducerIdRequest,
        now_ms: i64,
    ) -> Vec<Effect> {
        let version = request.version;
        let fail = |c: &mut Self, error: ErrorCode| {
            c.respond(
                request_id,
                Response::InitProducerId(InitProducerIdResponse::error(
                    error.for_client(version >= 4),
                )),
            );
        };
        // KafkaApis: both or neither of producer id and epoch.
        let expected = match (request.producer_id, request.producer_epoch) {
            (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) => None,
            (NO_PRODUCER_ID, _) | (_, NO_PRODUCER_EPOCH) => {
                fail(self, ErrorCode::InvalidRequest);
                return self.finish();
            }
            (id, epoch) => Some((id, epoch)),
        };
        let Some(transactional_id) = request.transactional_id else {
            // Idempotent producer: nothing to remember.
            let producer_id = match self.ids.next_producer_id() {
                Ok(id) => id,
                Err(error) => {
                    fail(self, error);
                    return self.finish();
                }
            };
            self.respond(
                request_id,
                Response::InitProducerId(InitProducerIdResponse {
                    error: ErrorCode::None,
                    producer_id,
                    producer_epoch: 0,
                }),
            );
            return self.finish();
        };
        if transactional_id.is_empty() {
            fail(self, ErrorCode::InvalidRequest);
            return self.finish();
        }
        if let Some(error) = self.refusal(&transactional_id) {
            fail(self, error);
            return self.finish();
        }
        let timeout_ms = request.transaction_timeout_ms;
        if timeout_ms <= 0 || timeout_ms > self.config.transaction_max_timeout_ms {
            fail(self, ErrorCode::InvalidTransactionTimeout);
            return self.finish();
        }
        if !self.transactions.contains_key(&transactional_id) {
            // Kafka caches the new id at epoch -1 before the append; the first bump makes it 0.
            let producer_id = match self.ids.next_producer_id() {
                Ok(id) => id,
                Err(error) => {
                    fail(self, error);
                    return self.finish();
                }
            };
            let metadata = TransactionMetadata {
                transactional_id: transactional_id.clone(),
                producer_id,
                last_producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
                last_producer_epoch: NO_PRODUCER_EPOCH,
                transaction_timeout_ms: timeout_ms,
                state: TransactionState::Empty,
                partitions: BTreeSet::new(),
                start_timestamp_ms: -1,
                last_update_timestamp_ms: now_ms,
            };
            self.transactions.insert(
                transactional_id.clone(),
                Entry {
                    metadata,
                    pending: None,
                    has_failed_epoch_fence: false,
                    deadline_ms: None,
                    parked: Vec::new(),
                },
            );
        }
        let entry = &self.transactions[&transactional_id];
        let meta = &entry.metadata;
        let valid_expected = |(id, epoch): (i64, i16)| {
            // Fresh metadata, the current id, or a retry after a rotation it never heard of.
            meta.producer_epoch == NO_PRODUCER_EPOCH
                || id == meta.producer_id
                || (id == meta.last_producer_id
                    && TransactionMetadata::is_producer_epoch_exhausted(epoch))
        };
        if entry.pending.is_some() {
            fail(self, ErrorCode::ConcurrentTransactions);
            return self.finish();
        }
        if !expected.is_none_or(valid_expected) {
            fail(self, ErrorCode::ProducerFenced);
            return self.finish();
        }
        match meta.state {
            TransactionState::PrepareCommit | TransactionState::PrepareAbort => {
                fail(self, ErrorCode::ConcurrentTransactions)
            }
            TransactionState::Ongoing => self.begin_fence(
                &transactional_id,
                Waiter::FencingInit {
                    request_id,
                    version,
                },
                now_ms,
            ),
            TransactionState::Empty
            | TransactionState::CompleteCommit
            | TransactionState::CompleteAbort => {
                let mut target = meta.clone();
                if TransactionMetadata::is_producer_epoch_exhausted(meta.producer_epoch)
                    && expected.is_none_or(|(_, epoch)| epoch == meta.producer_epoch)
                {
                    target.last_producer_id = meta.producer_id;
                    target.producer_id = match self.ids.next_producer_id() {
                        Ok(id) => id,
                        Err(error) => {
                            fail(self, error);
                            return self.finish();
                        }
                    };
                    target.producer_epoch = 0;
                    target.last_producer_epoch = if expected.is_some() {
                        meta.producer_epoch
                    } else {
                        NO_PRODUCER_EPOCH
                    };
                } else {
                    let bumped = meta.producer_epoch + 1;
                    let (epoch, last) = match expected {
                        None => (bumped, NO_PRODUCER_EPOCH),
                        Some((_, e))
                            if meta.producer_epoch == NO_PRODUCER_EPOCH
                                || e == meta.producer_epoch =>
                        {
                            (bumped, meta.producer_epoch)
                        }
                        // A retry of a bump whose answer was lost: same epoch again.
                        Some((_, e)) if e == meta.last_producer_epoch => {
                            (meta.producer_epoch, meta.last_producer_epoch)
                        }
                        Some(_) => {
                            fail(self, ErrorCode::ProducerFenced);
                            return self.finish();
                        }
                    };
                    target.producer_epoch = epoch;
                    target.last_producer_epoch = last;
                }
                target.state = TransactionState::Empty;
                target.transaction_timeout_ms = timeout_ms;
                target.partitions.clear();
                target.start_timestamp_ms = -1;
                target.last_update_timestamp_ms = now_ms;
                self.persist(
                    target,
                    Waiter::Init {
                        request_id,
                        version,
                    },
                );
            }
            // Kafka treats these as impossible (IllegalStateException); answer instead of
            // crashing the coordinator.
            TransactionState::Dead | TransactionState::PrepareEpochFence => {
                fail(self, ErrorCode::InvalidTxnState)
            }
        }
        self.finish()
    }

    /// AddPartitionsToTxn (v0-3): records partitions that will need markers. Answered once the
    /// new partition set is durable, because a crash must not forget a partition holding
    /// transactional data.
    pub fn add_partitions_to_txn(
        &mut self,
        request_id: RequestId,
        request: AddPartitionsToTxnRequest,
        now_ms: i64,
    ) -> Vec<Effect> {
        self.add_partitions(
            request_id,
            request.version,
            false,
            (
                &request.transactional_id,
                request.producer_id,
                request.producer_epoch,
            ),
            request.partitions,
            now_ms,
        );
        self.finish()
    }

    /// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition (Kafka's
    /// `partitionFor(groupId)` over `offsets.topic.num.partitions`), so the offsets committed
    /// through TxnOffsetCommit get a marker too.
    pub fn add_offsets_to_txn(
        &mut self,
        request_id: RequestId,
        request: AddOffsetsToTxnRequest,
        now_ms: i64,
    ) -> Vec<Effect> {
        let partition = TopicPartition::new(
            CONSUMER_OFFSETS_TOPIC,
            partition_for_group(&request.group_id, self.config.offsets_topic_num_partitions),
        );
        self.add_partitions(
            request_id,
            request.version,
            true,
            (
                &request.transactional_id,
                request.producer_id,
                request.producer_epoch,
            ),
            vec![partition],
            now_ms,
        );
        self.finish()
    }

    /// EndTxn: persists PrepareCommit/PrepareAbort, answers, then asks for markers
    /// ([`Effect::WriteMarkers`]). Retries of a finished EndTxn succeed idempotently.
    pub fn end_txn(
        &mut self,
        request_id: RequestId,
        request: EndTxnRequest,
        now_ms: i64,
    ) -> Vec<Effect> {
        let version = request.version;
        let checked = match self.refusal(&request.transactional_id) {
            Some(error) => Err(error),
            None => self.check_producer(
                &request.transactional_id,
                request.producer_id,
                request.producer_epoch,
            ),
        };
        let error = match checked {
            Err(error) => Some(error),
            Ok(entry) => {
                use TransactionState as S;
                match (entry.metadata.state, request.commit) {
                    (S::Ongoing, _) => None,
                    (S::CompleteCommit, true) | (S::CompleteAbort, false) => Some(ErrorCode::None),
                    (S::PrepareCommit, true) | (S::PrepareAbort, false) => {
                        Some(ErrorCode::ConcurrentTransactions)
                    }
                    _ => Some(ErrorCode::InvalidTxnState),
                }
            }
        };
        match error {
            Some(error) => {
                self.respond(request_id, Response::EndTxn(error.for_client(version >= 2)))
            }
            None => {
                let mut target = self.transactions[&request.transactional_id]
                    .metadata
                    .clone();
                target.state = if request.commit {
                    TransactionState::PrepareCommit
                } else {
                    TransactionState::PrepareAbort
                };
                target.last_update_timestamp_ms = now_ms;
                self.persist(
                    target,
                    Waiter::EndTxn {
                        request_id,
                        version,
                    },
                );
            }
        }
        self.finish()
    }

    /// The runtime wrote every marker of an [`Effect::WriteMarkers`]: persist
    /// CompleteCommit/CompleteAbort. A report for another id or epoch is stale and ignored.
    pub fn markers_written(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        now_ms: i64,
    ) -> Vec<Effect> {
        let Some(entry) = self.transactions.get(transactional_id) else {
            return self.finish();
        };
        let meta = &entry.metadata;
        let complete = match meta.state {
            TransactionState::PrepareCommit => TransactionState::CompleteCommit,
            TransactionState::PrepareAbort => TransactionState::CompleteAbort,
            _ => return self.finish(),
        };
        if entry.pending.is_some()
            || meta.producer_id != producer_id
            || meta.producer_epoch != producer_epoch
        {
            return self.finish();
        }
        let mut target = meta.clone();
        target.state = complete;
        target.partitions.clear();
        target.last_update_timestamp_ms = now_ms;
        self.persist(target, Waiter::Complete);
        self.finish()
    }

    /// Reports the outcome of an [`Effect::Persist`]; `Err` carries the Kafka error code of the
    /// failed append.
    pub fn complete_persist(
        &mut self,
        persist_id: PersistId,
        result: Result<(), i16>,
        now_ms: i64,
    ) -> Vec<Effect> {
        let Some(InFlight { target, waiter }) = self.persists.remove(&persist_id) else {
            return self.finish();
        };
        let id = target.transactional_id.clone();
        let Some(entry) = self.transactions.get_mut(&id) else {
            return self.finish();
        };
        entry.pending = None;
        match result {
            Ok(()) => {
                entry.metadata = target.clone();
                if matches!(waiter, Waiter::FencingInit { .. } | Waiter::Timeout) {
                    entry.has_failed_epoch_fence = false;
                }
                match waiter {
                    Waiter::Init {
                        request_id,
                        version: _,
                    } => self.respond(
                        request_id,
                        Response::InitProducerId(InitProducerIdResponse {
                            error: ErrorCode::None,
                            producer_id: target.producer_id,
                            producer_epoch: target.producer_epoch,
                        }),
                    ),
                    Waiter::Add {
                        request_id,
                        offsets,
                        version: _,
                    } => self.respond(request_id, add_response(offsets, ErrorCode::None)),
                    Waiter::EndTxn {
                        request_id,
                        version: _,
                    } => {
                        self.respond(request_id, Response::EndTxn(ErrorCode::None));
                        self.write_markers(&target);
                    }
                    Waiter::FencingInit {
                        request_id,
                        version: _,
                    } => {
                        self.respond(
                            request_id,
                            Response::InitProducerId(InitProducerIdResponse::error(
                                ErrorCode::ConcurrentTransactions,
                            )),
                        );
                        self.write_markers(&target);
                    }
                    Waiter::Timeout => self.write_markers(&target),
                    Waiter::Complete => {}
                    Waiter::Expire => self.forget(&id),
                }
            }
            Err(append_error) => {
                let error = ErrorCode::from_append_error(append_error);
                match waiter {
                    Waiter::Init {
                        request_id,
                        version,
                    } => self.respond(
                        request_id,
                        Response::InitProducerId(InitProducerIdResponse::error(
                            error.for_client(version >= 4),
                        )),
                    ),
                    Waiter::Add {
                        request_id,
                        version,
                        offsets,
                    } => self.respond(
                        request_id,
                        add_response(offsets, error.for_client(version >= 2)),
                    ),
                    Waiter::EndTxn {
                        request_id,
                        version,
                    } => self.respond(request_id, Response::EndTxn(error.for_client(version >= 2))),
                    Waiter::FencingInit {
                        request_id,
                        version,
                    } => {
                        entry.has_failed_epoch_fence = true;
                        self.respond(
                            request_id,
                            Response::InitProducerId(InitProducerIdResponse::error(
                                error.for_client(version >= 4),
                            )),
                        );
                    }
                    Waiter::Timeout => entry.has_failed_epoch_fence = true,
                    // Kept; the next cleanup round tries again.
                    Waiter::Expire => {}
                    // Kafka's marker sender retries the completion append unless the partition
                    // moved away (the new leader reloads and resends the markers).
                    Waiter::Complete => {
                        if error != ErrorCode::NotCoordinator {
                            self.persist(target, Waiter::Complete);
                        }
                    }
                }
            }
        }
        self.rearm(&id);
        self.retry_parked(&id, now_ms);
        self.finish()
    }

    /// Runs the parked adds of `transactional_id` again once no append is in flight and no
    /// markers are being written; each is answered, or parked again if the id is still busy.
    fn retry_parked(&mut self, transactional_id: &str, now_ms: i64) {
        let Some(entry) = self.transactions.get_mut(transactional_id) else {
            return;
        };
        let busy = entry.pending.is_some()
            || matches!(
                entry.metadata.state,
                TransactionState::PrepareCommit | TransactionState::PrepareAbort
            );
        if busy || entry.parked.is_empty() {
            return;
        }
        for add in std::mem::take(&mut entry.parked) {
            self.add_partitions(
                add.request_id,
                add.version,
                add.offsets,
                (transactional_id, add.producer_id, add.producer_epoch),
                add.partitions,
                now_ms,
            );
        }
    }

    /// Aborts every Ongoing transaction whose `start + transaction.timeout.ms` has passed, with
    /// an epoch bump so the stuck producer is fenced (Kafka's `abortTimedOutTransactions`).
    pub fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        let due: Vec<(i64, String)> = self
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .cloned()
            .collect();
        for key in due {
            self.deadlines.remove(&key);
            let (_, id) = key;
            let Some(entry) = self.transactions.get_mut(&id) else {
                continue;
            };
            entry.deadline_ms = None;
            let meta = &entry.metadata;
            let timed_out = meta.state == TransactionState::Ongoing
                && entry.pending.is_none()
                && meta.start_timestamp_ms + i64::from(meta.transaction_timeout_ms) < now_ms;
            if timed_out {
                tracing::info!(transactional_id = %id, "aborting timed out transaction");
                self.begin_fence(&id, Waiter::Timeout, now_ms);
            } else {
                self.rearm(&id);
            }
        }
        if self.announced_deadline.is_some_and(|at| at <= now_ms) {
            self.announced_deadline = None;
        }
        self.finish()
    }

    /// Removes transactional ids idle for longer than `expiration_ms` (Kafka's
    /// `transactional.id.expiration.ms`) by writing their tombstone; ids with a transaction in
    /// progress are kept. A later InitProducerId for an expired id starts afresh with a new
    /// producer id, as in Kafka.
    pub fn expire_transactional_ids(&mut self, now_ms: i64, expiration_ms: i64) -> Vec<Effect> {
        let expired: Vec<TransactionMetadata> = self
            .transactions
            .values()
            .filter(|e| {
                e.pending.is_none()
                    && matches!(
                        e.metadata.state,
                        TransactionState::Empty
                            | TransactionState::CompleteCommit
                            | TransactionState::CompleteAbort
                    )
                    && now_ms.saturating_sub(e.metadata.last_update_timestamp_ms) > expiration_ms
            })
            .map(|e| e.metadata.clone())
            .collect();
        for meta in expired {
            let mut target = meta;
            target.state = TransactionState::Dead;
            target.last_update_timestamp_ms = now_ms;
            self.persist(target, Waiter::Expire);
        }
        self.finish()
    }

    /// ListTransactions: ids matching both filters (an empty filter matches everything).
    pub fn list_transactions(
        &self,
        states_filter: &[String],
        producer_id_filter: &[i64],
    ) -> Vec<ListedTransaction> {
        self.transactions
            .values()
            .map(|e| &e.metadata)
            .filter(|m| {
                (states_filter.is_empty() || states_filter.iter().any(|s| s == m.state.name()))
                    && (producer_id_filter.is_empty()
                        || producer_id_filter.contains(&m.producer_id))
            })
            .map(|m| ListedTransaction {
                transactional_id: m.transactional_id.clone(),
                producer_id: m.producer_id,
                state: m.state.name(),
            })
            .collect()
    }

    /// DescribeTransactions, in request order; unknown ids get TRANSACTIONAL_ID_NOT_FOUND.
    pub fn describe_transactions(&self, transactional_ids: &[String]) -> Vec<DescribedTransaction> {
        transactional_ids
            .iter()
            .map(|id| match self.transaction(id) {
                Some(m) if self.refusal(id).is_none() => DescribedTransaction {
                    error: ErrorCode::None,
                    transactional_id: id.clone(),
                    state: m.state.name(),
                    transaction_timeout_ms: m.transaction_timeout_ms,
                    transaction_start_time_ms: m.start_timestamp_ms,
                    producer_id: m.producer_id,
                    producer_epoch: m.producer_epoch,
                    partitions: m.partitions.iter().cloned().collect(),
                },
                _ => DescribedTransaction {
                    error: self
                        .refusal(id)
                        .unwrap_or(ErrorCode::TransactionalIdNotFound),
                    transactional_id: id.clone(),
                    state: "",
                    transaction_timeout_ms: 0,
                    transaction_start_time_ms: -1,
                    producer_id: -1,
                    producer_epoch: -1,
                    partitions: Vec::new(),
                },
            })
            .collect()
    }

    /// Rebuilds transactions from `__transaction_state` records in log order (e.g. one
    /// partition when this broker becomes its leader). Later records win; tombstones delete.
    /// Transactions caught in PrepareCommit/PrepareAbort get their markers re-sent, Ongoing ones
    /// their timeout, as Kafka does after loading. Keys of unknown versions are skipped.
    pub fn load<K, V>(
        &mut self,
        records: impl IntoIterator<Item = (K, Option<V>)>,
        _now_ms: i64,
    ) -> Result<Vec<Effect>, RecordError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        self.replay(records, None)
    }

    /// This broker became the leader of `__transaction_state` partition `partition`, or
    /// became it again at a newer leader epoch: whatever it held of the partition is dropped
    /// (as on resignation) and the partition's ids answer COORDINATOR_LOAD_IN_PROGRESS until
    /// [`TransactionCoordinator::load_partition`].
    pub fn begin_load_partition(&mut self, partition: i32) -> Vec<Effect> {
        self.drop_partition(partition);
        self.partitions.insert(partition, PartitionLoad::Loading);
        self.finish()
    }

    /// Replays partition `partition` of `__transaction_state` (its records in log order;
    /// records of ids owned by other partitions are skipped) and coordinates its ids from
    /// then on, as [`TransactionCoordinator::load`] does for the whole topic: transactions
    /// caught mid-completion get their markers re-sent, ongoing ones their timeout. Their
    /// markers carry `coordinator_epoch`, the partition's leader epoch. Anything held of the
    /// partition before is dropped first.
    ///
    /// A record that cannot be decoded fails the replay; the partition is owned all the same,
    /// with none of its ids, and the error is returned for the log.
    pub fn load_partition<K, V>(
        &mut self,
        partition: i32,
        coordinator_epoch: i32,
        records: impl IntoIterator<Item = (K, Option<V>)>,
        _now_ms: i64,
    ) -> Result<Vec<Effect>, RecordError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        self.drop_partition(partition);
        self.partitions
            .insert(partition, PartitionLoad::Loaded { coordinator_epoch });
        self.replay(records, Some(partition))
    }

    /// This broker no longer leads `__transaction_state` partition `partition`: its ids are
    /// forgotten with their timeouts, requests waiting on them (parked, or waiting for an
    /// append) are answered NOT_COORDINATOR, and later requests for them are too. Markers the
    /// runtime is still sending for these ids should stop; the new leader re-sends them.
    pub fn unload_partition(&mut self, partition: i32) -> Vec<Effect> {
        self.drop_partition(partition);
        self.partitions.remove(&partition);
        self.finish()
    }

    /// The `__transaction_state` partition of `transactional_id` under this coordinator's
    /// partition count.
    pub fn partition_of(&self, transactional_id: &str) -> i32 {
        partition_for_transactional_id(
            transactional_id,
            self.config.transaction_state_num_partitions.max(1),
        )
    }

    /// Replays records in log order, keeping only the ids of `partition` when given.
    fn replay<K, V>(
        &mut self,
        records: impl IntoIterator<Item = (K, Option<V>)>,
        partition: Option<i32>,
    ) -> Result<Vec<Effect>, RecordError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut loaded: BTreeMap<String, Option<TransactionLogValue>> = BTreeMap::new();
        for (key, value) in records {
            match TransactionLogRecord::decode(key.as_ref(), value.as_ref().map(AsRef::as_ref)) {
                Ok(record)
                    if partition
                        .is_some_and(|p| self.partition_of(&record.transactional_id) != p) => {}
                Ok(record) => {
                    loaded.insert(record.transactional_id, record.value);
                }
                Err(RecordError::UnknownKeyVersion(version)) => {
                    tracing::warn!(
                        version,
                        "skipping __transaction_state record with unknown key version"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        for (id, value) in loaded {
            self.forget(&id);
            // Dead is never a live state; a log holding it means the id was being removed.
            let Some(value) = value.filter(|v| v.status != TransactionState::Dead) else {
                continue;
            };
            let metadata = TransactionMetadata {
                transactional_id: id.clone(),
                producer_id: value.producer_id,
                last_producer_id: NO_PRODUCER_ID,
                producer_epoch: value.producer_epoch,
                last_producer_epoch: NO_PRODUCER_EPOCH,
                transaction_timeout_ms: value.transaction_timeout_ms,
                state: value.status,
                partitions: value.topic_partitions().collect(),
                start_timestamp_ms: value.start_timestamp_ms,
                last_update_timestamp_ms: value.last_update_timestamp_ms,
            };
            if matches!(
                metadata.state,
                TransactionState::PrepareCommit | TransactionState::PrepareAbort
            ) {
                self.write_markers(&metadata);
            }
            self.transactions.insert(
                id.clone(),
                Entry {
                    metadata,
                    pending: None,
                    has_failed_epoch_fence: false,
                    deadline_ms: None,
                    parked: Vec::new(),
                },
            );
            self.rearm(&id);
        }
        Ok(self.finish())
    }

    /// Shared validation of AddPartitionsToTxn and AddOffsetsToTxn (Kafka's
    /// `handleAddPartitionsToTransaction`).
    fn add_partitions(
        &mut self,
        request_id: RequestId,
        version: i16,
        offsets: bool,
        (transactional_id, producer_id, producer_epoch): (&str, i64, i16),
        partitions: Vec<TopicPartition>,
        now_ms: i64,
    ) {
        let checked = match self.refusal(transactional_id) {
            Some(error) => Err(error),
            None => self.check_producer(transactional_id, producer_id, producer_epoch),
        };
        let error = match checked {
            Err(error) => Some(error),
            Ok(entry) => {
                let meta = &entry.metadata;
                match meta.state {
                    TransactionState::PrepareCommit | TransactionState::PrepareAbort => {
                        Some(ErrorCode::ConcurrentTransactions)
                    }
                    // Already in: nothing to persist.
                    TransactionState::Ongoing
                        if partitions.iter().all(|p| meta.partitions.contains(p)) =>
                    {
                        Some(ErrorCode::None)
                    }
                    TransactionState::Dead | TransactionState::PrepareEpochFence => {
                        Some(ErrorCode::InvalidTxnState)
                    }
                    _ => None,
                }
            }
        };
        if error == Some(ErrorCode::ConcurrentTransactions) {
            if let Some(entry) = self.transactions.get_mut(transactional_id) {
                if entry.parked.len() < PARKED_ADDS_MAX {
                    entry.parked.push(ParkedAdd {
                        request_id,
                        version,
                        offsets,
                        producer_id,
                        producer_epoch,
                        partitions,
                    });
                    return;
                }
            }
        }
        if let Some(error) = error {
            self.respond(
                request_id,
                add_response(offsets, error.for_client(version >= 2)),
            );
            return;
        }
        let mut target = self.transactions[transactional_id].metadata.clone();
        if target.state != TransactionState::Ongoing {
            // A new transaction starts now; its timeout runs from here.
            target.start_timestamp_ms = now_ms;
        }
        target.state = TransactionState::Ongoing;
        target.partitions.extend(partitions);
        target.last_update_timestamp_ms = now_ms;
        self.persist(
            target,
            Waiter::Add {
                request_id,
                version,
                offsets,
            },
        );
    }

    /// The checks every producer request passes first, in Kafka's order.
    fn check_producer(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<&Entry, ErrorCode> {
        if transactional_id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        let entry = self
            .transactions
            .get(transactional_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if entry.metadata.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if entry.metadata.producer_epoch != producer_epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        if entry.pending.is_some() {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        Ok(entry)
    }

    /// Kafka's `prepareFenceProducerEpoch` followed by an internal EndTxn(abort): the epoch is
    /// bumped in memory at once (so the old producer is fenced even if the append fails) and
    /// PrepareAbort is persisted with it.
    fn begin_fence(&mut self, transactional_id: &str, waiter: Waiter, now_ms: i64) {
        let entry = self
            .transactions
            .get_mut(transactional_id)
            .expect("fenced transaction exists");
        // i16::MAX cannot be reached: InitProducerId rotates the id at MAX - 1.
        if !entry.has_failed_epoch_fence && entry.metadata.producer_epoch < i16::MAX {
            entry.metadata.producer_epoch += 1;
        }
        entry.metadata.last_producer_epoch = NO_PRODUCER_EPOCH;
        let mut target = entry.metadata.clone();
        target.state = TransactionState::PrepareAbort;
        target.last_update_timestamp_ms = now_ms;
        self.persist(target, waiter);
    }

    fn persist(&mut self, target: TransactionMetadata, waiter: Waiter) {
        let persist_id = PersistId(self.next_persist_id);
        self.next_persist_id += 1;
        let id = target.transactional_id.clone();
        if let Some(entry) = self.transactions.get_mut(&id) {
            entry.pending = Some(target.state);
        }
        self.effects.push(Effect::Persist {
            persist_id,
            transactional_id: id.clone(),
            record: to_record(&target),
        });
        self.persists
            .insert(persist_id, InFlight { target, waiter });
        self.rearm(&id);
    }

    fn write_markers(&mut self, meta: &TransactionMetadata) {
        self.effects.push(Effect::WriteMarkers {
            transactional_id: meta.transactional_id.clone(),
            producer_id: meta.producer_id,
            epoch: meta.producer_epoch,
            commit: meta.state == TransactionState::PrepareCommit,
            coordinator_epoch: self.coordinator_epoch(&meta.transactional_id),
            partitions: meta.partitions.iter().cloned().collect(),
        });
    }

    /// Arms the timeout of an Ongoing transaction with no append in flight; disarms otherwise.
    /// The deadline is the first millisecond at which Kafka's `start + timeout < now` holds.
    fn rearm(&mut self, transactional_id: &str) {
        let Some(entry) = self.transactions.get_mut(transactional_id) else {
            return;
        };
        if let Some(at) = entry.deadline_ms.take() {
            self.deadlines.remove(&(at, transactional_id.to_string()));
        }
        let meta = &entry.metadata;
        if meta.state == TransactionState::Ongoing && entry.pending.is_none() {
            let at = meta.start_timestamp_ms + i64::from(meta.transaction_timeout_ms) + 1;
            entry.deadline_ms = Some(at);
            self.deadlines.insert((at, transactional_id.to_string()));
        }
    }

    fn forget(&mut self, transactional_id: &str) {
        self.forget_answering(transactional_id, ErrorCode::ConcurrentTransactions);
    }

    /// Forgets `transactional_id`, answering its parked adds with `error`.
    fn forget_answering(&mut self, transactional_id: &str, error: ErrorCode) {
        if let Some(entry) = self.transactions.remove(transactional_id) {
            if let Some(at) = entry.deadline_ms {
                self.deadlines.remove(&(at, transactional_id.to_string()));
            }
            for add in entry.parked {
                self.respond(
                    add.request_id,
                    add_response(add.offsets, error.for_client(add.version >= 2)),
                );
            }
        }
    }

    /// Why `transactional_id` cannot be served now: NOT_COORDINATOR when its state partition
    /// is not owned here, COORDINATOR_LOAD_IN_PROGRESS while that partition is replayed. An
    /// empty id passes, so that each API answers it as Kafka does.
    fn refusal(&self, transactional_id: &str) -> Option<ErrorCode> {
        if transactional_id.is_empty() {
            return None;
        }
        match self.partitions.get(&self.partition_of(transactional_id)) {
            Some(PartitionLoad::Loaded { .. }) => None,
            Some(PartitionLoad::Loading) => Some(ErrorCode::CoordinatorLoadInProgress),
            None => Some(ErrorCode::NotCoordinator),
        }
    }

    /// The leader epoch of the state partition owning `transactional_id`, as loaded.
    fn coordinator_epoch(&self, transactional_id: &str) -> i32 {
        match self.partitions.get(&self.partition_of(transactional_id)) {
            Some(PartitionLoad::Loaded { coordinator_epoch }) => *coordinator_epoch,
            _ => 0,
        }
    }

    /// Forgets every id of `partition` and everything waiting on them, answering the
    /// requests that wait with NOT_COORDINATOR.
    fn drop_partition(&mut self, partition: i32) {
        let ids: Vec<String> = self
            .transactions
            .keys()
            .filter(|id| self.partition_of(id) == partition)
            .cloned()
            .collect();
        let persist_ids: Vec<PersistId> = self
            .persists
            .iter()
            .filter(|(_, f)| self.partition_of(&f.target.transactional_id) == partition)
            .map(|(id, _)| *id)
            .collect();
        for persist_id in persist_ids {
            let Some(InFlight { waiter, .. }) = self.persists.remove(&persist_id) else {
                continue;
            };
            let error = ErrorCode::NotCoordinator;
            match waiter {
                Waiter::Init { request_id, .. } | Waiter::FencingInit { request_id, .. } => self
                    .respond(
                        request_id,
                        Response::InitProducerId(InitProducerIdResponse::error(error)),
                    ),
                Waiter::Add {
                    request_id,
                    offsets,
                    ..
                } => self.respond(request_id, add_response(offsets, error)),
                Waiter::EndTxn { request_id, .. } => {
                    self.respond(request_id, Response::EndTxn(error))
                }
                Waiter::Timeout | Waiter::Expire | Waiter::Complete => {}
            }
        }
        for id in &ids {
            self.forget_answering(id, ErrorCode::NotCoordinator);
        }
        if !ids.is_empty() {
            tracing::info!(
                partition,
                transactional_ids = ids.len(),
                "unloaded transactional ids of __transaction_state partition"
            );
        }
    }

    fn respond(&mut self, request_id: RequestId, response: Response) {
        self.effects.push(Effect::Respond {
            request_id,
            response,
        });
    }

    /// Ends a call: announces a changed earliest deadline and hands the effects over.
    fn finish(&mut self) -> Vec<Effect> {
        let next = self.next_deadline_ms();
        if let Some(at) = next {
            if self.announced_deadline != Some(at) {
                self.announced_deadline = Some(at);
                self.effects.push(Effect::ScheduleTimeout { at_ms: at });
            }
        }
        std::mem::take(&mut self.effects)
    }
}

fn add_response(offsets: bool, error: ErrorCode) -> Response {
    if offsets {
        Response::AddOffsetsToTxn(error)
    } else {
        Response::AddPartitionsToTxn(error)
    }
}

/// The record Kafka's `TransactionLog.valueToBytes` writes for `meta`: null partitions when
/// Empty, partitions grouped by topic otherwise.
pub(crate) fn to_record(meta: &TransactionMetadata) -> TransactionLogRecord {
    if meta.state == TransactionState::Dead {
        // Kafka removes an expired id with a tombstone, which compaction then drops.
        return TransactionLogRecord {
            transactional_id: meta.transactional_id.clone(),
            value: None,
        };
    }
    let partitions = (meta.state != TransactionState::Empty).then(|| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in &meta.partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        by_topic
            .into_iter()
            .map(|(topic, partition_ids)| TopicPartitions {
                topic: topic.to_string(),
                partition_ids,
            })
            .collect()
    });
    TransactionLogRecord {
        transactional_id: meta.transactional_id.clone(),
        value: Some(TransactionLogValue {
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            transaction_timeout_ms: meta.transaction_timeout_ms,
            status: meta.state,
            partitions,
            last_update_timestamp_ms: meta.last_update_timestamp_ms,
            start_timestamp_ms: meta.start_timestamp_ms,
        }),
    }
}

#[cfg(test)]
#[path = "coordinator_test.rs"]
mod tests;
