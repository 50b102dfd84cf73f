//! Kafka's transaction coordinator (KIP-98) as a pure state machine.
//!
//! The broker decodes InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
//! ListTransactions and DescribeTransactions and hands their fields to a
//! [`TransactionCoordinator`]. Each call is one event; it returns the [`Effect`]s to carry out,
//! in order. Time comes in as `now_ms`, deadlines go out as [`Effect::ScheduleTimeout`] and come
//! back as [`TransactionCoordinator::tick`]; producer ids come from an injected
//! [`ProducerIdAllocator`]. No sockets, clocks or threads, so every scenario is replayable.
//!
//! ```text
//!   broker handler ──request, now_ms──► TransactionCoordinator ──Vec<Effect>──► runtime
//!        ▲                                 ▲      ▲      ▲                       │
//!        │                                 │      │      └─ tick(now_ms) ◄─ ScheduleTimeout
//!        └──────── Respond{request_id} ◄───┼──────┼──────────────────────────────┤
//!                                          │      └─ markers_written(..) ◄─ WriteMarkers
//!                                          └─ complete_persist(id, res) ◄─ Persist → __transaction_state
//! ```
//!
//! Per transactional id, Kafka's state machine (every arrow is a durable append first):
//!
//! ```text
//!            InitProducerId (epoch+1)
//!        ┌───────────────────────────┐
//!        ▼      AddPartitions/Offsets │
//!      Empty ─────────────────────► Ongoing ◄───────────────────────┐
//!        ▲                          │  │ EndTxn(abort), timeout,     │ AddPartitions
//!        │ InitProducerId           │  │ InitProducerId (fence,      │
//!        │                  EndTxn( │  │  epoch+1)                   │
//!        │                  commit) ▼  ▼                             │
//!        │            PrepareCommit   PrepareAbort                   │
//!        │                  │ markers   │ markers                    │
//!        │                  ▼           ▼                            │
//!        └──────────── CompleteCommit  CompleteAbort ────────────────┘
//! ```
//!
//! A broker coordinates only the ids of the `__transaction_state` partitions it leads
//! ([`partition_for_transactional_id`]). [`TransactionCoordinator::new`] owns every partition
//! (a single broker); [`TransactionCoordinator::without_partitions`] owns none and follows
//! leadership: [`TransactionCoordinator::begin_load_partition`] then
//! [`TransactionCoordinator::load_partition`] replay one partition at its leader epoch, which
//! becomes the coordinator epoch of its markers; [`TransactionCoordinator::unload_partition`]
//! forgets it. Ids of partitions not owned answer NOT_COORDINATOR, of partitions still loading
//! COORDINATOR_LOAD_IN_PROGRESS.
//!
//! Requests park until their append is durable; while one is in flight the id answers
//! CONCURRENT_TRANSACTIONS, as Kafka's `pendingState` does. Records use Kafka's exact
//! `__transaction_state` formats ([`records`]) so [`TransactionCoordinator::load`] can rebuild
//! state from a log written by Fjord or by Kafka.
//!
//! ```
//! use fjord_txn::api::{InitProducerIdRequest, InitProducerIdResponse, Response};
//! use fjord_txn::{Effect, PersistId, RequestId, SequentialProducerIds, TransactionCoordinator, TxnConfig};
//!
//! let mut coordinator =
//!     TransactionCoordinator::new(TxnConfig::default(), Box::new(SequentialProducerIds::default()));
//! let init = InitProducerIdRequest {
//!     version: 4,
//!     transactional_id: Some("payments".into()),
//!     transaction_timeout_ms: 60_000,
//!     producer_id: -1,
//!     producer_epoch: -1,
//! };
//! // Parked until the Empty state at epoch 0 is durable.
//! let effects = coordinator.init_producer_id(RequestId(1), init, 0);
//! assert!(matches!(effects[..], [Effect::Persist { persist_id: PersistId(0), .. }]));
//! let effects = coordinator.complete_persist(PersistId(0), Ok(()), 0);
//! let expected = InitProducerIdResponse { error: fjord_txn::ErrorCode::None, producer_id: 0, producer_epoch: 0 };
//! assert_eq!(
//!     effects,
//!     vec![Effect::Respond { request_id: RequestId(1), response: Response::InitProducerId(expected) }]
//! );
//! ```

pub mod api;
pub mod config;
mod coordinator;
pub mod effect;
pub mod error;
pub mod partition;
pub mod records;
pub mod state;

pub use config::{ConfigError, TxnConfig};
pub use coordinator::{
    ProducerIdAllocator, SequentialProducerIds, TransactionCoordinator, CONSUMER_OFFSETS_TOPIC,
};
pub use effect::{Effect, PersistId, RequestId};
pub use error::ErrorCode;
pub use partition::{java_string_hashcode, partition_for_group, partition_for_transactional_id};
pub use state::{TopicPartition, TransactionMetadata, TransactionState};
