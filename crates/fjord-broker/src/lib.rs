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
//! ```no_run
//! # async fn demo() -> Result<(), fjord_broker::BrokerError> {
//! let running = fjord_broker::start(fjord_broker::config::BrokerConfig::default()).await?;
//! println!("serving on {}", running.local_addrs()[0]);
//! running.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod authorizer;
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
pub mod topic_config;
pub mod txn_runtime;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, Semaphore};

use crate::authorizer::Authorizer;
use crate::config::BrokerConfig;
use crate::flusher::Flusher;
use crate::log_manager::LogManager;

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
}

/// A started broker; dropping it without [`RunningBroker::shutdown`] is an unclean stop.
#[derive(Debug)]
pub struct RunningBroker {
    broker: Arc<Broker>,
    local_addrs: Vec<SocketAddr>,
    shutdown: broadcast::Sender<()>,
    /// Every connection and listener task holds a clone; all dropped means all finished.
    tasks_done: mpsc::Receiver<()>,
    tasks_alive: mpsc::Sender<()>,
}

/// Opens the log directory, binds the listeners and starts serving.
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

    let mut listeners = Vec::new();
    let mut advertised = Vec::new();
    for l in &config.listeners {
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

    let logs = Arc::new(logs);
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
    )?;
    let producer_ids = Arc::new(producer_ids::ProducerIdManager::open(&config.log_dir)?);
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
    });
    let (shutdown, _) = broadcast::channel(1);
    let (tasks_alive, tasks_done) = mpsc::channel(1);
    if let Some(address) = config.metrics_listener {
        let (stop, alive) = (shutdown.subscribe(), tasks_alive.clone());
        metrics::http::start(broker.clone(), address, stop, alive).await?;
    }
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let mut local_addrs = Vec::new();
    for (name, listener, local) in listeners {
        local_addrs.push(local);
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
        local_addrs,
        shutdown,
        tasks_done,
        tasks_alive,
    })
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

    /// The shared broker state.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Stops accepting, lets connections finish their current request (bounded), then flushes
    /// and closes every log and marks the shutdown clean.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        let RunningBroker {
            broker,
            shutdown,
            mut tasks_done,
            tasks_alive,
            ..
        } = self;
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
        Ok(())
    }
}
