//! The Fjord broker: accepts Kafka clients, answers their requests, and hosts partition logs.
//!
//! ```text
//!  TCP listener ──► connection task (one per client, responses in request order)
//!                        │ frame → header → dispatch
//!                        ▼
//!                  handlers/<api>.rs ──► LogManager ──► Partition ──► fjord_storage::Log
//!                        │                                  │
//!                        └── long-poll fetch waits on ──────┤ log-end watch
//!                            acks=all waits on ─────────────┘ durable watch ◄── Flusher (group fsync)
//! ```
//! Handlers map internal errors to Kafka codes in one place ([`error`]), and consult the
//! [`authorizer::Authorizer`] before acting.
//!
//! Without `process.roles` the broker is a single-node cluster whose topics live in
//! `fjord-topics.json`. With it ([`cluster`]), the node runs a controller of the metadata
//! quorum (or, with the broker role alone, follows the voters over the network), registers as
//! a broker, follows the committed metadata image, and serves clients once the controller has
//! unfenced it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fjord_broker::BrokerError> {
//! let running = fjord_broker::start(fjord_broker::config::BrokerConfig::default()).await?;
//! println!("serving on {}", running.local_addrs()[0]);
//! running.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod authorizer;
pub mod cluster;
pub mod config;
mod connection;
mod dispatch;
mod error;
pub mod flusher;
pub mod group_runtime;
mod handlers;
pub mod internal_topic;
pub mod log_manager;
pub mod metrics;
pub mod partition;
pub mod producer_ids;
pub mod producer_state;
pub mod replica_state;
pub mod topic_config;
pub mod txn_runtime;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fjord_controller::record::Listener;
use fjord_controller::{ControllerError, ControllerHandle, QuorumHandle};
use kafka_protocol::ResponseError;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, Semaphore};

use crate::authorizer::Authorizer;
use crate::cluster::{ClusterNode, Follower, Leadership, Lifecycle, LifecycleError};
use crate::config::BrokerConfig;
use crate::flusher::Flusher;
use crate::log_manager::LogManager;
use crate::partition::Partition;

/// A failure to start or stop the broker as a whole (as opposed to one request failing).
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address from `listeners`.
        address: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The log directory could not be opened or recovered, or a clean shutdown failed.
    #[error(transparent)]
    Storage(#[from] fjord_storage::StorageError),
    /// The controller of this node could not start or stop.
    #[error("controller: {0}")]
    Controller(#[from] ControllerError),
    /// The broker could not join the cluster.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
}

/// The address clients are told to connect to for one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedListener {
    /// Listener name.
    pub name: String,
    /// Host clients should use.
    pub host: String,
    /// Port clients should use.
    pub port: u16,
}

/// Shared state of a running broker, handed to every connection.
#[derive(Debug)]
pub struct Broker {
    /// Effective configuration.
    pub config: Arc<BrokerConfig>,
    /// Hosted topics and partitions.
    pub logs: Arc<LogManager>,
    /// The consumer-group coordinator.
    pub groups: group_runtime::GroupCoordinatorHandle,
    /// The transaction coordinator.
    pub transactions: txn_runtime::TxnCoordinatorHandle,
    /// Producer ids, for idempotent and transactional producers alike.
    pub producer_ids: Arc<producer_ids::ProducerIdManager>,
    /// The authorization check handlers consult.
    pub authorizer: Authorizer,
    /// Where clients reach this broker, after binding (port 0 resolved).
    pub advertised: Vec<AdvertisedListener>,
    /// Live counters and gauges for the `/metrics` endpoint.
    pub metrics: metrics::BrokerMetrics,
    /// Cluster mode: this node's view of the cluster; `None` on a single node.
    pub cluster: Option<Arc<ClusterNode>>,
}

impl Broker {
    /// The partition of `topic` this broker serves as leader, for Produce, Fetch, ListOffsets
    /// and DeleteRecords. `current_leader_epoch` is the client's view (-1: not checked). A
    /// single node leads every partition it has at epoch 0; in a cluster the applied image
    /// decides, with Kafka's errors (see [`ClusterNode::refuse_unless_leader`]).
    pub(crate) fn leads(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
    ) -> Result<Arc<Partition>, ResponseError> {
        let local = || {
            self.logs
                .topic(topic)
                .and_then(|t| t.partition(partition).cloned())
        };
        match &self.cluster {
            None => {
                let found = local().ok_or(ResponseError::UnknownTopicOrPartition)?;
                if current_leader_epoch > 0 {
                    return Err(ResponseError::UnknownLeaderEpoch);
                }
                Ok(found)
            }
            Some(cluster) => {
                if let Some(refused) =
                    cluster.refuse_unless_leader(topic, partition, current_leader_epoch)
                {
                    return Err(refused);
                }
                // Led here by the image but not open yet: the follower is still applying.
                local().ok_or(ResponseError::NotLeaderOrFollower)
            }
        }
    }

    /// The current leader and leader epoch of a partition, for the hints Fetch v12+ carries
    /// with NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH; `None` when unknown.
    pub(crate) fn leader_hint(&self, topic: &str, partition: i32) -> Option<(i32, i32)> {
        match self.cluster.as_ref()?.leadership(topic, partition) {
            Leadership::Here { leader_epoch } => Some((self.config.node_id, leader_epoch)),
            Leadership::Elsewhere {
                leader,
                leader_epoch,
            } => Some((leader, leader_epoch)),
            Leadership::Offline { leader_epoch } => Some((-1, leader_epoch)),
            Leadership::Unknown => None,
        }
    }

    /// Whether `topic`-`partition` exists: in this broker's logs on a single node, in the
    /// applied image in a cluster (where it may be hosted elsewhere).
    pub(crate) fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        match &self.cluster {
            None => self
                .logs
                .topic(topic)
                .is_some_and(|t| t.partition(partition).is_some()),
            Some(cluster) => cluster.leadership(topic, partition) != Leadership::Unknown,
        }
    }

    /// Whether this broker coordinates consumer group `group_id`: always on a single node; in
    /// a cluster when it leads the group's `__consumer_offsets` partition and the group
    /// coordinator has replayed it at that leader epoch (NOT_COORDINATOR when another broker
    /// leads it, COORDINATOR_NOT_AVAILABLE before the topic exists or while no broker leads
    /// the partition, and COORDINATOR_LOAD_IN_PROGRESS until the replay is done).
    pub(crate) fn coordinates_group(&self, group_id: &str) -> Result<(), ResponseError> {
        self.coordinates(
            group_runtime::OFFSETS_TOPIC,
            |count| fjord_group::partition_for_group(group_id, count),
            self.groups.loaded(),
        )
    }

    /// Whether this broker coordinates transactional id `transactional_id`, by its
    /// `__transaction_state` partition, as [`Broker::coordinates_group`] does for groups.
    pub(crate) fn coordinates_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<(), ResponseError> {
        self.coordinates(
            txn_runtime::TRANSACTION_STATE_TOPIC,
            |count| fjord_txn::partition_for_transactional_id(transactional_id, count),
            self.transactions.loaded(),
        )
    }

    /// Leadership of the owning partition from the applied image, and whether the
    /// coordinator (`loaded`) has replayed it at the leader epoch the image gives.
    fn coordinates(
        &self,
        topic: &str,
        partition_of: impl FnOnce(i32) -> i32,
        loaded: &internal_topic::LoadedPartitions,
    ) -> Result<(), ResponseError> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let count = cluster
            .image()
            .topic(topic)
            .map(|t| t.partitions.len() as i32)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let index = partition_of(count);
        coordinator_answer(cluster.leadership(topic, index), loaded.get(index))
    }

    /// The leader epoch of a partition this broker leads: 0 on a single node; in a cluster
    /// the image's, or -1 when another broker (or none) leads it, as Kafka answers then.
    pub(crate) fn leader_epoch(&self, topic: &str, partition: i32) -> i32 {
        match &self.cluster {
            None => 0,
            Some(cluster) => match cluster.leadership(topic, partition) {
                Leadership::Here { leader_epoch } => leader_epoch,
                _ => -1,
            },
        }
    }
}

/// Whether a coordinator serves the ids of a partition whose leadership in the applied image
/// is `leadership` and where the coordinator stands on it (`loaded`): only once it has
/// replayed the partition at the leader epoch the image gives.
fn coordinator_answer(
    leadership: Leadership,
    loaded: Option<internal_topic::PartitionLoad>,
) -> Result<(), ResponseError> {
    match leadership {
        Leadership::Here { leader_epoch } => match loaded {
            Some(internal_topic::PartitionLoad::Loaded { leader_epoch: at })
                if at == leader_epoch =>
            {
                Ok(())
            }
            // Being replayed, or the coordinator has not seen this leadership yet.
            _ => Err(ResponseError::CoordinatorLoadInProgress),
        },
        Leadership::Offline { .. } => Err(ResponseError::CoordinatorNotAvailable),
        Leadership::Elsewhere { .. } | Leadership::Unknown => Err(ResponseError::NotCoordinator),
    }
}

/// A started broker; dropping it without [`RunningBroker::shutdown`] is an unclean stop.
#[derive(Debug)]
pub struct RunningBroker {
    broker: Arc<Broker>,
    local_addrs: Vec<SocketAddr>,
    listeners: Vec<(String, SocketAddr)>,
    cluster: Option<ClusterParts>,
    shutdown: broadcast::Sender<()>,
    /// Every connection and listener task holds a clone; all dropped means all finished.
    tasks_done: mpsc::Receiver<()>,
    tasks_alive: mpsc::Sender<()>,
}

/// The cluster-mode parts a running broker stops in order at shutdown.
#[derive(Debug)]
struct ClusterParts {
    lifecycle: Lifecycle,
    follower: Follower,
    controller: QuorumHandle,
    /// Bound for the controlled shutdown.
    shutdown_timeout: Duration,
}

/// Binds the listeners clients use (not the controller's), and works out what each
/// advertises.
async fn bind_client_listeners(
    config: &BrokerConfig,
) -> Result<
    (
        Vec<(String, TcpListener, SocketAddr)>,
        Vec<AdvertisedListener>,
    ),
    BrokerError,
> {
    let mut listeners = Vec::new();
    let mut advertised = Vec::new();
    let is_controller = |name: &str| {
        config
            .cluster
            .as_ref()
            .is_some_and(|c| c.is_controller_listener(name))
    };
    for l in config.listeners.iter().filter(|l| !is_controller(&l.name)) {
        let listener = TcpListener::bind(l.address)
            .await
            .map_err(|source| BrokerError::Bind {
                address: l.address,
                source,
            })?;
        let local = listener.local_addr().map_err(|source| BrokerError::Bind {
            address: l.address,
            source,
        })?;
        let (host, port) = match config
            .advertised_listeners
            .iter()
            .find(|(name, _, _)| name == &l.name)
        {
            Some((_, host, port)) => (host.clone(), *port),
            None if local.ip().is_unspecified() => ("127.0.0.1".to_string(), local.port()),
            None => (local.ip().to_string(), local.port()),
        };
        advertised.push(AdvertisedListener {
            name: l.name.clone(),
            host,
            port,
        });
        listeners.push((l.name.clone(), listener, local));
    }
    Ok((listeners, advertised))
}

/// Starts this node's controller (or, on a broker-only node, starts following the voters),
/// follows the metadata image, registers, and waits until the controller unfences this
/// broker: only then are its logs in step with the image, and only then does it serve
/// clients.
async fn join_cluster(
    config: &Arc<BrokerConfig>,
    logs: &Arc<LogManager>,
    advertised: &[AdvertisedListener],
) -> Result<(Arc<ClusterNode>, ClusterParts), BrokerError> {
    let Some(cluster) = config.cluster.clone() else {
        unreachable!("join_cluster is called in cluster mode only");
    };
    let controller = cluster::connect_quorum(config, &cluster).await?;
    match controller.controller_listener() {
        Some(address) => tracing::info!(
            node_id = config.node_id,
            roles = %cluster.roles,
            controller = %address,
            "controller started"
        ),
        None => tracing::info!(
            node_id = config.node_id,
            roles = %cluster.roles,
            voters = cluster.voters.len(),
            "following the controller quorum from outside (broker-only node)"
        ),
    }
    let replication = cluster::ReplicaManager::new(
        config.node_id,
        logs.clone(),
        cluster.inter_broker_listener_name.clone(),
        Duration::from_millis(cluster.request_timeout_ms),
        cluster::replication_settings(&cluster),
    );
    let (follower, applied) = cluster::follow(
        logs.clone(),
        replication.clone(),
        &controller,
        config.node_id,
    );
    let node = Arc::new(ClusterNode::new(
        config,
        cluster.clone(),
        controller.clone(),
        applied.clone(),
        replication.clone(),
    ));
    replication.attach(&node);
    let registered: Vec<Listener> = advertised
        .iter()
        .map(|l| Listener {
            name: l.name.clone(),
            host: l.host.clone(),
            port: l.port,
        })
        .collect();
    let lifecycle = Lifecycle::start(
        node.clone(),
        registered,
        config.broker_rack.clone(),
        applied,
    )
    .await?;
    lifecycle.wait_unfenced().await?;
    let strays = logs.clone();
    match tokio::task::spawn_blocking(move || strays.remove_stray_logs()).await {
        Ok(Ok(0)) => {}
        Ok(Ok(removed)) => tracing::info!(removed, "removed logs of partitions not hosted here"),
        Ok(Err(e)) => tracing::warn!(error = %e, "could not look for stray partition logs"),
        Err(e) => tracing::warn!(error = %e, "could not look for stray partition logs"),
    }
    tracing::info!(
        node_id = config.node_id,
        broker_epoch = node.broker_epoch(),
        active_controller = ?node.active_controller(),
        "broker unfenced by the controller; serving clients"
    );
    let shutdown_timeout = Duration::from_millis(
        (cluster.broker_heartbeat_interval_ms * 2)
            .max(cluster.request_timeout_ms)
            .min(10_000),
    );
    Ok((
        node,
        ClusterParts {
            lifecycle,
            follower,
            controller,
            shutdown_timeout,
        },
    ))
}

/// Opens the log directory, binds the listeners and starts serving. In cluster mode this
/// first joins the cluster, which waits for an active controller.
pub async fn start(config: BrokerConfig) -> Result<RunningBroker, BrokerError> {
    let config = Arc::new(config);
    let flusher = Flusher::start();
    let open_config = config.clone();
    let logs = tokio::task::spawn_blocking(move || LogManager::open(open_config, flusher))
        .await
        .map_err(|e| {
            BrokerError::Storage(fjord_storage::StorageError::io(
                fjord_storage::IoVerb::Open,
                "log directory",
                std::io::Error::other(e.to_string()),
            ))
        })??;
    let logs = Arc::new(logs);
    let (listeners, advertised) = bind_client_listeners(&config).await?;
    let (cluster, cluster_parts) = if config.cluster.is_some() {
        let (node, parts) = join_cluster(&config, &logs, &advertised).await?;
        (Some(node), Some(parts))
    } else {
        (None, None)
    };

    let groups = group_runtime::start(
        Arc::downgrade(&logs),
        group_runtime::GroupRuntimeConfig {
            group: fjord_group::GroupConfig {
                group_initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
                group_max_size: config.group_max_size as usize,
                group_min_session_timeout_ms: config.group_min_session_timeout_ms,
                group_max_session_timeout_ms: config.group_max_session_timeout_ms,
                offset_metadata_max_bytes: config.offset_metadata_max_bytes as usize,
                offsets_retention_ms: config.offsets_retention_ms,
                offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms,
                offsets_topic_num_partitions: config.offsets_topic_num_partitions,
            },
            offsets_topic_num_partitions: config.offsets_topic_num_partitions,
        },
        cluster.as_deref().map(internal_topic::LeadershipFeed::of),
    )?;
    let producer_ids = Arc::new(match &cluster {
        None => producer_ids::ProducerIdManager::open(&config.log_dir)?,
        Some(node) => producer_ids::ProducerIdManager::from_controller(node.clone()),
    });
    let txn_config = txn_runtime::TxnRuntimeConfig {
        coordinator: fjord_txn::TxnConfig {
            transaction_max_timeout_ms: config.transaction_max_timeout_ms,
            transaction_state_num_partitions: config.transaction_state_log_num_partitions,
            offsets_topic_num_partitions: config.offsets_topic_num_partitions,
        },
        transactional_id_expiration_ms: config.transactional_id_expiration_ms,
        cleanup_interval_ms: config.transaction_cleanup_interval_ms,
    };
    let transactions = txn_runtime::start(
        Arc::downgrade(&logs),
        txn_config,
        producer_ids.clone(),
        groups.clone(),
        cluster.clone(),
        cluster.as_deref().map(internal_topic::LeadershipFeed::of),
    )?;
    let broker = Arc::new(Broker {
        config: config.clone(),
        logs,
        groups,
        transactions,
        producer_ids,
        authorizer: Authorizer,
        advertised,
        metrics: metrics::BrokerMetrics::default(),
        cluster,
    });
    let (shutdown, _) = broadcast::channel(1);
    let (tasks_alive, tasks_done) = mpsc::channel(1);
    if let Some(address) = config.metrics_listener {
        let (stop, alive) = (shutdown.subscribe(), tasks_alive.clone());
        metrics::http::start(broker.clone(), address, stop, alive).await?;
    }
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let mut bound = Vec::new();
    for (name, listener, local) in listeners {
        bound.push((name.clone(), local));
        tokio::spawn(connection::accept_loop(
            broker.clone(),
            name,
            listener,
            permits.clone(),
            shutdown.clone(),
            tasks_alive.clone(),
        ));
    }
    spawn_background(&broker, &shutdown, &tasks_alive);
    Ok(RunningBroker {
        broker,
        local_addrs: bound.iter().map(|(_, a)| *a).collect(),
        listeners: bound,
        shutdown,
        tasks_done,
        tasks_alive,
        cluster: cluster_parts,
    })
}

/// A controller-only node (`process.roles=controller`): a voter of the metadata quorum that
/// serves no clients.
#[derive(Debug)]
pub struct RunningController {
    controller: ControllerHandle,
}

impl RunningController {
    /// The bound CONTROLLER listener.
    pub fn local_addr(&self) -> SocketAddr {
        self.controller.local_addr()
    }

    /// Stops the controller and waits for its tasks, leaving the metadata log clean.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        Ok(self.controller.shutdown().await?)
    }
}

/// Starts a controller-only node.
pub async fn start_controller(config: &BrokerConfig) -> Result<RunningController, BrokerError> {
    let Some(cluster) = config.cluster.as_ref() else {
        return Err(BrokerError::Controller(ControllerError::Config(
            fjord_controller::ConfigError::NotAVoter {
                node_id: config.node_id,
            },
        )));
    };
    let controller = cluster::start_controller(config, cluster).await?;
    Ok(RunningController { controller })
}

/// Retention checks and recovery-point checkpoints, until shutdown.
fn spawn_background(
    broker: &Arc<Broker>,
    shutdown: &broadcast::Sender<()>,
    alive: &mpsc::Sender<()>,
) {
    let retention_every = Duration::from_millis(broker.config.log_retention_check_interval_ms);
    let checkpoint_every =
        Duration::from_millis(broker.config.log_flush_offset_checkpoint_interval_ms);
    let cleaner_every = Duration::from_millis(broker.config.log_cleaner_backoff_ms);
    let mut jobs = vec![
        (retention_every, Job::Retention),
        (checkpoint_every, Job::Checkpoint),
    ];
    if broker.config.log_cleaner_enable {
        jobs.push((cleaner_every, Job::Clean));
    }
    for (every, job) in jobs {
        let broker = broker.clone();
        let mut stop = shutdown.subscribe();
        let alive = alive.clone();
        tokio::spawn(async move {
            let _alive = alive;
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                tokio::select! {
                    biased;
                    _ = stop.recv() => break,
                    _ = ticker.tick() => {
                        let broker = broker.clone();
                        let _ = tokio::task::spawn_blocking(move || match job {
                            Job::Retention => broker.logs.run_retention(),
                            Job::Clean => broker.logs.run_cleaner(),
                            Job::Checkpoint => {
                                if let Err(e) = broker.logs.checkpoint_recovery_points() {
                                    tracing::warn!(error = %e, "could not write recovery-point checkpoint");
                                }
                                broker.logs.snapshot_producer_states();
                            }
                        })
                        .await;
                    }
                }
            }
        });
    }
}

#[derive(Debug, Clone, Copy)]
enum Job {
    Retention,
    Clean,
    Checkpoint,
}

impl RunningBroker {
    /// The bound addresses, in `listeners` order (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The client listeners by name with their bound addresses, in `listeners` order.
    pub fn listeners(&self) -> &[(String, SocketAddr)] {
        &self.listeners
    }

    /// The shared broker state.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Stops accepting, lets connections finish their current request (bounded), then flushes
    /// and closes every log and marks the shutdown clean. In cluster mode the controller is
    /// first asked to fence this broker (controlled shutdown), and the controller of this
    /// node (or its follower of the quorum) stops last.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        let RunningBroker {
            broker,
            shutdown,
            mut tasks_done,
            tasks_alive,
            cluster,
            ..
        } = self;
        let controller = match cluster {
            Some(parts) => {
                parts.lifecycle.shutdown(parts.shutdown_timeout).await;
                // No log may be opened, deleted or written by a fetcher while the logs close.
                parts.follower.stop().await;
                if let Some(node) = &broker.cluster {
                    node.replication().shutdown().await;
                }
                Some(parts.controller)
            }
            None => None,
        };
        let _ = shutdown.send(());
        drop(tasks_alive);
        let _ = tokio::time::timeout(Duration::from_secs(10), tasks_done.recv()).await;
        tokio::task::spawn_blocking(move || broker.logs.shutdown())
            .await
            .map_err(|e| {
                BrokerError::Storage(fjord_storage::StorageError::io(
                    fjord_storage::IoVerb::Sync,
                    "log directory",
                    std::io::Error::other(e.to_string()),
                ))
            })??;
        if let Some(controller) = controller {
            controller.shutdown().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::ResponseError;

    use super::coordinator_answer;
    use crate::cluster::Leadership;
    use crate::internal_topic::PartitionLoad;

    #[test]
    fn a_coordinator_serves_only_what_it_replayed_at_the_current_leader_epoch() {
        let here = Leadership::Here { leader_epoch: 3 };
        assert_eq!(
            coordinator_answer(
                here.clone(),
                Some(PartitionLoad::Loaded { leader_epoch: 3 })
            ),
            Ok(())
        );
        for loaded in [
            None,
            Some(PartitionLoad::Loading { leader_epoch: 3 }),
            Some(PartitionLoad::Loaded { leader_epoch: 2 }),
        ] {
            assert_eq!(
                coordinator_answer(here.clone(), loaded),
                Err(ResponseError::CoordinatorLoadInProgress),
                "{loaded:?}"
            );
        }
        let elsewhere = Leadership::Elsewhere {
            leader: 2,
            leader_epoch: 4,
        };
        // Still held here until the coordinator sees the image: not served all the same.
        assert_eq!(
            coordinator_answer(elsewhere, Some(PartitionLoad::Loaded { leader_epoch: 3 })),
            Err(ResponseError::NotCoordinator)
        );
        assert_eq!(
            coordinator_answer(Leadership::Unknown, None),
            Err(ResponseError::NotCoordinator)
        );
        assert_eq!(
            coordinator_answer(Leadership::Offline { leader_epoch: 4 }, None),
            Err(ResponseError::CoordinatorNotAvailable)
        );
    }
}
