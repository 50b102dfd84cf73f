//! The KRaft-style metadata quorum of a Fjord cluster.
//!
//! Controllers (nodes whose `process.roles` contains `controller`) replicate a metadata log
//! with Raft, run by `openraft`. Each log entry is a batch of [`MetadataRecord`]s; applying
//! them in order gives every controller the same [`MetadataImage`]: brokers, topics,
//! partitions (replicas, ISR, leader and epochs), configs and producer-id blocks. The
//! Raft leader is the *active controller*: it alone decides, with the pure functions of
//! [`decision`], what to append for each request, and answers once the records commit.
//!
//! ```text
//!  broker ──ControllerRequest──► any voter ──forward──► active controller
//!                                                         │ decide(image, request)
//!                                                         ▼
//!                                  Vec<MetadataRecord> ─► raft.client_write
//!                                                         │ replicate, commit
//!   watch::Receiver<Arc<MetadataImage>> ◄── apply ◄───────┘ (on every voter)
//!        │
//!        └── FetchImage (long poll) ──► broker-only node: RemoteController::image()
//! ```
//!
//! Pure parts (no I/O, unit-tested on exact records): [`record`], [`image`], [`placement`],
//! [`election`], [`reassignment`], [`topics`], [`brokers`], [`configs`], [`liveness`],
//! [`decision`]. Runtime: [`Controller`] starts openraft with durable storage under the
//! metadata dir, the CONTROLLER listener ([`wire`]) and the active-controller task. A node
//! that is not a voter follows the committed image with a [`RemoteController`], which
//! long-polls the voters; [`QuorumHandle`] is either kind, for brokers.
//!
//! Deciding is pure:
//!
//! ```
//! use fjord_controller::api::{ControllerRequest, CreateTopicsRequest, NewTopic};
//! use fjord_controller::{decide, MetadataImage, MetadataRecord, Policy, RandomTopicIds};
//!
//! let image = MetadataImage::default(); // no brokers yet
//! let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
//!     topics: vec![NewTopic {
//!         name: "orders".into(),
//!         num_partitions: 3,
//!         replication_factor: 1,
//!         assignments: vec![],
//!         configs: Default::default(),
//!     }],
//!     validate_only: false,
//! });
//! let decision = decide(&image, &request, &Policy::default(), &mut RandomTopicIds);
//! // No unfenced broker to hold a replica: nothing is written, the topic gets
//! // INVALID_REPLICATION_FACTOR.
//! assert!(decision.records.is_empty());
//! ```
//!
//! A single-voter quorum, started and used:
//!
//! ```
//! use fjord_controller::api::{ControllerRequest, RegisterBrokerRequest, ControllerResponse};
//! use fjord_controller::{parse_voters, Controller, ControllerConfig, ErrorCode};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let voters = parse_voters(&format!("1@{addr}"))?;
//! let mut config = ControllerConfig::new(1, voters, addr, dir.path());
//! config.election_timeout_ms = 300;
//! config.quorum_heartbeat_interval_ms = 50;
//! let controller = Controller::start_on(config, listener).await?;
//! while controller.active_controller() != Some(1) {
//!     tokio::time::sleep(std::time::Duration::from_millis(20)).await;
//! }
//! let answer = controller
//!     .submit(ControllerRequest::RegisterBroker(RegisterBrokerRequest {
//!         broker_id: 1,
//!         incarnation_id: uuid::Uuid::new_v4(),
//!         listeners: vec![],
//!         rack: None,
//!     }))
//!     .await?;
//! let ControllerResponse::RegisterBroker(registered) = answer else { unreachable!() };
//! assert_eq!(registered.error, ErrorCode::None);
//! assert!(controller.image().borrow().broker(1).is_some());
//! controller.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod active;
pub mod api;
pub mod brokers;
mod client;
pub mod config;
pub mod configs;
mod controller;
pub mod decision;
pub mod election;
mod error;
pub mod error_code;
pub mod image;
pub mod liveness;
pub mod placement;
mod quorum;
mod raft;
pub mod reassignment;
pub mod record;
mod remote;
mod server;
#[cfg(test)]
mod testing;
pub mod topics;
pub mod wire;

pub use client::ControllerClient;
pub use config::{parse_voters, ConfigError, ControllerConfig, Voter};
pub use controller::{Controller, ControllerHandle, QuorumStatus};
pub use decision::{decide, Decision, Policy, RandomTopicIds, TopicIdSource};
pub use error::ControllerError;
pub use error_code::ErrorCode;
pub use image::{BrokerRegistration, ImageError, MetadataImage, PartitionImage, TopicImage};
pub use quorum::QuorumHandle;
pub use raft::file::StoreError;
pub use raft::MetadataBatch;
pub use record::MetadataRecord;
pub use remote::{RemoteController, RemoteControllerConfig};
