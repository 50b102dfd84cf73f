//! Kafka's classic consumer group coordinator as a pure state machine.
//!
//! The broker decodes JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! TxnOffsetCommit, OffsetFetch, OffsetDelete, DescribeGroups, ListGroups and DeleteGroups
//! requests and hands their fields to a [`GroupCoordinator`]. Each call is one event; it
//! returns the [`Effect`]s to carry out, in order. Time comes in as `now_ms`, deadlines go out
//! as [`Effect::ScheduleTimeout`] and come back as [`GroupCoordinator::tick`]; member ids come
//! from an injected [`MemberIdGenerator`]. No sockets, clocks, threads or randomness, so every
//! scenario is replayable.
//!
//! ```text
//!   broker handler ──request, now_ms──►  GroupCoordinator  ──Vec<Effect>──► runtime
//!        ▲                                   ▲      ▲                         │
//!        │                                   │      └── tick(now_ms) ◄─ ScheduleTimeout
//!        └──────── Respond{request_id} ◄─────┼────────────────────────────────┤
//!                                            └── complete_persist(id, res) ◄─ Persist → __consumer_offsets
//! ```
//!
//! Per group, Kafka's state machine:
//!
//! ```text
//!            join                 all rejoined / rebalance timeout
//!   Empty ─────────► PreparingRebalance ─────────────────────► CompletingRebalance
//!     ▲  ▲               ▲        ▲  join, leave, session expiry    │ leader SyncGroup,
//!     │  │  last member  │        └─────────────────────────────────┤ assignment persisted
//!     │  └───────────────┤  join (leader / changed metadata),       ▼
//!     │                  └── leave, session expiry ────────────  Stable
//!     │
//!     └─ DeleteGroups / offsets expired ─► Dead (forgotten)
//! ```
//!
//! JoinGroup and SyncGroup answers are parked: the coordinator remembers the [`RequestId`] and
//! emits [`Effect::Respond`] when the rebalance completes. Writes to `__consumer_offsets` use
//! Kafka's exact record formats ([`records`]) so [`GroupCoordinator::load`] can rebuild state
//! from a log written by Fjord or by Kafka.
//!
//! A broker serves only the groups of the `__consumer_offsets` partitions it leads
//! ([`partition_for_group`]). [`GroupCoordinator::new`] owns every partition (a single
//! broker); [`GroupCoordinator::without_partitions`] owns none, and follows leadership as
//! Kafka's `onElection`/`onResignation` do: [`GroupCoordinator::begin_load_partition`] then
//! [`GroupCoordinator::load_partition`] replay one partition (its groups answer
//! COORDINATOR_LOAD_IN_PROGRESS meanwhile), [`GroupCoordinator::unload_partition`] forgets it
//! (NOT_COORDINATOR from then on, and for whatever was parked).
//!
//! TxnOffsetCommit (KIP-98) appends its offsets as a transactional batch of the producer
//! ([`TxnProducer`]); they stay pending, invisible to OffsetFetch, until the broker reports the
//! producer's commit or abort marker in that `__consumer_offsets` partition through
//! [`GroupCoordinator::complete_transaction`]. Replay does the same from the markers in the log
//! ([`LoadEntry`]).
//!
//! ```
//! use fjord_group::api::{GroupProtocol, JoinGroupRequest, Response};
//! use fjord_group::{Effect, GroupConfig, GroupCoordinator, RequestId, SequentialMemberIds};
//!
//! let config = GroupConfig { group_initial_rebalance_delay_ms: 0, ..GroupConfig::default() };
//! let mut coordinator = GroupCoordinator::new(config, Box::new(SequentialMemberIds::default()));
//! let join = JoinGroupRequest {
//!     version: 3, // before KIP-394, so no MEMBER_ID_REQUIRED round trip
//!     group_id: "payments".into(),
//!     session_timeout_ms: 10_000,
//!     rebalance_timeout_ms: 30_000,
//!     member_id: String::new(),
//!     group_instance_id: None,
//!     protocol_type: "consumer".into(),
//!     protocols: vec![GroupProtocol { name: "range".into(), metadata: Default::default() }],
//!     client_id: "app".into(),
//!     client_host: "/10.0.0.1".into(),
//! };
//! // Parked: the first rebalance of an Empty group waits group.initial.rebalance.delay.ms.
//! let effects = coordinator.join_group(RequestId(1), join, 0);
//! assert_eq!(effects, vec![Effect::ScheduleTimeout { at_ms: 0 }]);
//! // The delay passes: the member is leader of generation 1.
//! let effects = coordinator.tick(0);
//! let Effect::Respond { response: Response::JoinGroup(joined), .. } = &effects[0] else { panic!() };
//! assert_eq!((joined.generation_id, joined.leader == joined.member_id), (1, true));
//! ```

pub mod api;
pub mod config;
mod coordinator;
pub mod effect;
pub mod error;
pub mod group;
mod load;
pub mod partition;
pub mod records;
pub mod subscription;
mod timers;

pub use config::{ConfigError, GroupConfig};
pub use coordinator::{
    GroupCoordinator, MemberIdGenerator, SequentialMemberIds, NEW_MEMBER_JOIN_TIMEOUT_MS,
};
pub use effect::{Effect, PersistId, RequestId, TxnProducer};
pub use error::ErrorCode;
pub use group::GroupState;
pub use load::LoadEntry;
pub use partition::{java_string_hashcode, partition_for_group};
