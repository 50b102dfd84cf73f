//! Cluster mode: this node's place in a KRaft-style cluster.
//!
//! ```text
//!   QuorumHandle: Local  = fjord_controller::Controller (CONTROLLER listener, Raft voter)
//!                 Remote = RemoteController (broker-only node: long-polls the voters)
//!        │ committed image (watch)
//!        ▼
//!   follower ──sync_topics──► LogManager (hosted partition logs, topic and broker configs)
//!        │ applied image (watch) ───────────────► handlers: Metadata, leads(), coordinators
//!        ▼
//!   lifecycle: RegisterBroker ─► BrokerHeartbeat every broker.heartbeat.interval.ms
//!              (reports the applied offset; the controller unfences the broker once it has
//!               applied its own registration, and fences it when heartbeats stop)
//! ```
//!
//! Handlers read the *applied* image, not the controller's: when it says this broker leads a
//! partition, the partition's log is already open here. Changes (topics, configs, producer-id
//! blocks) are submitted to the active controller through [`ClusterNode::submit`] and take
//! effect when they come back in the image.
//!
//! Partition data is replicated between brokers by [`ReplicaManager`] (see `replication`):
//! the image gives each hosted partition its role, followers fetch from leaders, and leaders
//! move the high watermark and propose ISR changes to the controller.

mod admin;
mod follower;
mod inter_broker;
mod lifecycle;
mod partition_admin;
mod replication;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fjord_controller::api::{ControllerRequest, ControllerResponse};
use fjord_controller::record::NO_LEADER;
use fjord_controller::{
    ControllerConfig, ControllerError, ControllerHandle, MetadataImage, PartitionImage, Policy,
    QuorumHandle, RemoteController, RemoteControllerConfig,
};
use kafka_protocol::ResponseError;
use tokio::sync::watch;

use crate::config::{metadata_dir, BrokerConfig, ClusterConfig};
use crate::log_manager::LogManager;

pub use admin::{CreatedTopic, Refusal, TopicToCreate};
pub use follower::{hosted_topics, Follower};
pub use inter_broker::{InterBrokerClient, InterBrokerError};
pub use lifecycle::{Lifecycle, LifecycleError};
pub use partition_admin::{ongoing_reassignments, OngoingReassignment};
pub use replication::{ReplicaManager, ReplicationSettings};

/// How long a request waits for an active controller to appear (an election in progress)
/// before the client is told NOT_CONTROLLER.
const CONTROLLER_WAIT: Duration = Duration::from_secs(10);

/// Pause between two tries while no active controller is known.
const CONTROLLER_RETRY: Duration = Duration::from_millis(100);

/// Where one partition's leadership stands in the applied image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// No such topic or partition.
    Unknown,
    /// This broker leads it.
    Here {
        /// The leader epoch.
        leader_epoch: i32,
    },
    /// Another broker leads it.
    Elsewhere {
        /// The leader.
        leader: i32,
        /// The leader epoch.
        leader_epoch: i32,
    },
    /// No broker leads it (its replicas are fenced).
    Offline {
        /// The leader epoch.
        leader_epoch: i32,
    },
}

/// The cluster as this broker sees it, shared by every connection.
#[derive(Debug)]
pub struct ClusterNode {
    node_id: i32,
    config: ClusterConfig,
    controller: QuorumHandle,
    applied: watch::Receiver<Arc<MetadataImage>>,
    broker_epoch: AtomicI64,
    inter_broker: InterBrokerClient,
    replication: Arc<ReplicaManager>,
}

/// The controller settings of this node, from the broker's configuration.
pub fn controller_config(config: &BrokerConfig, cluster: &ClusterConfig) -> ControllerConfig {
    let listen = cluster
        .controller_listener(&config.listeners)
        .map(|l| l.address)
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut controller = ControllerConfig::new(
        config.node_id,
        cluster.voters.clone(),
        listen,
        metadata_dir(&cluster.metadata_log_dir),
    );
    controller.election_timeout_ms = cluster.election_timeout_ms;
    // Well inside the election timeout, so a healthy leader is never replaced.
    controller.quorum_heartbeat_interval_ms = (cluster.election_timeout_ms / 5).clamp(1, 200);
    controller.request_timeout_ms = cluster.request_timeout_ms;
    controller.broker_session_timeout_ms = cluster.broker_session_timeout_ms;
    controller.broker_heartbeat_interval_ms = cluster.broker_heartbeat_interval_ms;
    controller.policy = Policy {
        num_partitions: config.num_partitions,
        default_replication_factor: config.default_replication_factor,
        unclean_leader_election_enable: config.unclean_leader_election_enable,
    };
    controller
}

impl ClusterNode {
    /// A node following `applied` (the follower's output) and submitting through `controller`.
    pub fn new(
        config: &BrokerConfig,
        cluster: ClusterConfig,
        controller: QuorumHandle,
        applied: watch::Receiver<Arc<MetadataImage>>,
        replication: Arc<ReplicaManager>,
    ) -> ClusterNode {
        let inter_broker = InterBrokerClient::new(
            config.node_id,
            cluster.inter_broker_listener_name.clone(),
            Duration::from_millis(cluster.request_timeout_ms),
        );
        ClusterNode {
            node_id: config.node_id,
            config: cluster,
            controller,
            applied,
            broker_epoch: AtomicI64::new(-1),
            inter_broker,
            replication,
        }
    }

    /// This broker's replicas and the fetchers copying them.
    pub fn replication(&self) -> &Arc<ReplicaManager> {
        &self.replication
    }

    /// This broker's `node.id`.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The cluster settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// How this node reaches the quorum: its own controller, or the voters over the network.
    pub fn controller(&self) -> &QuorumHandle {
        &self.controller
    }

    /// The image this broker has applied to its logs.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.applied.borrow().clone()
    }

    /// A receiver of every image this broker applies, for tasks that follow leadership
    /// changes (the coordinators of the internal topics).
    pub fn subscribe_applied(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.applied.clone()
    }

    /// The active controller, as this node knows it (from its own controller, or from the
    /// voters' answers on a broker-only node).
    pub fn active_controller(&self) -> Option<i32> {
        self.controller.active_controller()
    }

    /// The controller id to tell clients: the active controller when it is also an
    /// unfenced broker with an endpoint on `listener`, else (as Kafka does in KRaft mode,
    /// because clients send admin requests to brokers, which forward them) this broker.
    pub fn controller_id_for_clients(&self, listener: &str) -> i32 {
        let image = self.image();
        self.active_controller()
            .filter(|id| {
                image.is_unfenced(*id)
                    && image
                        .broker(*id)
                        .is_some_and(|b| b.listeners.iter().any(|l| l.name == listener))
            })
            .unwrap_or(self.node_id)
    }

    /// The epoch of this broker's registration (-1 before it registered).
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    fn set_broker_epoch(&self, epoch: i64) {
        self.broker_epoch.store(epoch, Ordering::Release);
    }

    /// The client for requests to other brokers.
    pub fn inter_broker(&self) -> &InterBrokerClient {
        &self.inter_broker
    }

    /// Submits `request` to the active controller, waiting out an election in progress
    /// (bounded), and answers once the records are committed.
    pub async fn submit(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerResponse, ControllerError> {
        let deadline = tokio::time::Instant::now() + CONTROLLER_WAIT;
        loop {
            match self.controller.submit(request.clone()).await {
                Err(ControllerError::NotController { .. })
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(CONTROLLER_RETRY).await;
                }
                answer => return answer,
            }
        }
    }

    /// Waits (bounded) until the applied image satisfies `ready`, so that an answer given
    /// after a controller change reflects it; returns whether it did.
    pub async fn wait_applied(
        &self,
        timeout: Duration,
        ready: impl FnMut(&Arc<MetadataImage>) -> bool,
    ) -> bool {
        let mut applied = self.applied.clone();
        tokio::time::timeout(timeout, async { applied.wait_for(ready).await.is_ok() })
            .await
            .unwrap_or(false)
    }

    /// Leadership of `topic`-`partition` in the applied image.
    pub fn leadership(&self, topic: &str, partition: i32) -> Leadership {
        let image = self.image();
        let Some(p) = partition_image(&image, topic, partition) else {
            return Leadership::Unknown;
        };
        match p.leader {
            NO_LEADER => Leadership::Offline {
                leader_epoch: p.leader_epoch,
            },
            l if l == self.node_id => Leadership::Here {
                leader_epoch: p.leader_epoch,
            },
            leader => Leadership::Elsewhere {
                leader,
                leader_epoch: p.leader_epoch,
            },
        }
    }

    /// The Kafka error for a request to `topic`-`partition` at `current_leader_epoch` (-1: no
    /// check) that this broker cannot serve as leader, or `None` when it leads it. Mirrors
    /// Kafka: an epoch older than the leader's is FENCED_LEADER_EPOCH, a newer one
    /// UNKNOWN_LEADER_EPOCH (this broker has not seen it yet), then NOT_LEADER_OR_FOLLOWER.
    pub fn refuse_unless_leader(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
    ) -> Option<ResponseError> {
        let epoch = match self.leadership(topic, partition) {
            Leadership::Unknown => return Some(ResponseError::UnknownTopicOrPartition),
            Leadership::Here { leader_epoch }
            | Leadership::Elsewhere { leader_epoch, .. }
            | Leadership::Offline { leader_epoch } => leader_epoch,
        };
        if current_leader_epoch >= 0 && current_leader_epoch < epoch {
            return Some(ResponseError::FencedLeaderEpoch);
        }
        if current_leader_epoch > epoch {
            return Some(ResponseError::UnknownLeaderEpoch);
        }
        match self.leadership(topic, partition) {
            Leadership::Here { .. } => None,
            _ => Some(ResponseError::NotLeaderOrFollower),
        }
    }
}

/// One partition of the image, by topic name.
pub fn partition_image<'a>(
    image: &'a MetadataImage,
    topic: &str,
    partition: i32,
) -> Option<&'a PartitionImage> {
    image.topic(topic)?.partitions.get(&partition)
}

/// Starts the controller of a node with the controller role on its CONTROLLER listener.
pub async fn start_controller(
    config: &BrokerConfig,
    cluster: &ClusterConfig,
) -> Result<ControllerHandle, ControllerError> {
    fjord_controller::Controller::start(controller_config(config, cluster)).await
}

/// Reaches the metadata quorum the way this node's roles say: a node with the controller
/// role starts its voter; a broker-only node follows the voters of
/// `controller.quorum.voters` over their CONTROLLER listeners and binds none itself.
pub async fn connect_quorum(
    config: &BrokerConfig,
    cluster: &ClusterConfig,
) -> Result<QuorumHandle, ControllerError> {
    if cluster.roles.controller {
        return Ok(start_controller(config, cluster).await?.into());
    }
    let mut remote = RemoteControllerConfig::new(config.node_id, cluster.voters.clone());
    remote.request_timeout = Duration::from_millis(cluster.request_timeout_ms);
    Ok(RemoteController::start(remote).into())
}

/// Opens what a broker needs before it serves: the image follower on `logs`, so that hosted
/// logs exist (and have their roles) before the controller is told this broker caught up.
pub fn follow(
    logs: Arc<LogManager>,
    replicas: Arc<ReplicaManager>,
    controller: &QuorumHandle,
    node_id: i32,
) -> (Follower, watch::Receiver<Arc<MetadataImage>>) {
    Follower::start(logs, replicas, controller.image(), node_id)
}

/// The replication settings of `cluster`.
pub fn replication_settings(cluster: &ClusterConfig) -> ReplicationSettings {
    ReplicationSettings {
        lag_time_max_ms: cluster.replica_lag_time_max_ms,
        fetch_wait_max_ms: cluster.replica_fetch_wait_max_ms,
        fetch_max_bytes: cluster.replica_fetch_max_bytes,
        fetch_response_max_bytes: cluster.replica_fetch_response_max_bytes,
        fetch_backoff_ms: cluster.replica_fetch_backoff_ms,
    }
}
