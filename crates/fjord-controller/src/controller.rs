//! Starting a controller and talking to it: [`Controller::start`] and [`ControllerHandle`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::active::{self, ActiveHandle, ActiveSettings};
use crate::api::{ControllerRequest, ControllerResponse};
use crate::client::ControllerClient;
use crate::config::ControllerConfig;
use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::raft::log_store::LogStore;
use crate::raft::network::Network;
use crate::raft::state_machine::StateMachineStore;
use crate::raft::{node_id, raft_id, Raft};
use crate::server::{self, ServerContext};

/// A snapshot of this node's view of the quorum, for operators and tests (what Kafka's
/// `kafka-metadata-quorum describe --status` shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// This node.
    pub node_id: i32,
    /// The active controller, if known.
    pub leader: Option<i32>,
    /// The current Raft term (Kafka's epoch).
    pub term: u64,
    /// Index of the last entry in the local log.
    pub last_log_index: Option<u64>,
    /// Index of the last entry applied to the local image.
    pub last_applied_index: Option<u64>,
    /// Index covered by the latest local snapshot.
    pub snapshot_index: Option<u64>,
    /// Index up to which the local log was deleted after a snapshot.
    pub purged_index: Option<u64>,
}

/// Starts controllers.
#[derive(Debug)]
pub struct Controller;

impl Controller {
    /// Binds `config.listen_address` and starts the controller.
    pub async fn start(config: ControllerConfig) -> Result<ControllerHandle, ControllerError> {
        let address = config.listen_address;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ControllerError::Listen { address, source })?;
        Self::start_on(config, listener).await
    }

    /// Starts the controller on an already bound CONTROLLER listener, so that callers (and
    /// tests on ephemeral ports) can learn every address before building the voter list.
    ///
    /// Opens the metadata dir (repairing a torn log tail), starts Raft, and, when the dir
    /// was empty, proposes the initial voter set: every voter does so, they all propose the
    /// same set, and a node that has already heard from a leader ignores its own proposal.
    pub async fn start_on(
        config: ControllerConfig,
        listener: TcpListener,
    ) -> Result<ControllerHandle, ControllerError> {
        let config = config.validate()?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ControllerError::Listen {
                address: config.listen_address,
                source,
            })?;
        let dir = config.metadata_dir.clone();
        let (log_store, state_machine) = tokio::task::spawn_blocking(move || {
            Ok::<_, ControllerError>((LogStore::open(&dir)?, StateMachineStore::open(&dir)?))
        })
        .await
        .map_err(|e| ControllerError::Raft(e.to_string()))??;
        let fresh = log_store.is_fresh()? && !state_machine.has_snapshot();
        let image = state_machine.subscribe();

        let raft_config = openraft::Config {
            cluster_name: "fjord-metadata".into(),
            election_timeout_min: config.election_timeout_ms,
            election_timeout_max: config.election_timeout_ms * 2,
            heartbeat_interval: config.quorum_heartbeat_interval_ms,
            install_snapshot_timeout: config.request_timeout_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_threshold_entries),
            // Everything in a snapshot is deleted from the log; a follower that lags that
            // far gets the snapshot.
            max_in_snapshot_log_to_keep: 0,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(|e| ControllerError::Raft(e.to_string()))?;
        let network = Network {
            request_timeout: Duration::from_millis(config.request_timeout_ms),
        };
        let me = raft_id(config.node_id);
        let raft = Raft::new(me, Arc::new(raft_config), network, log_store, state_machine)
            .await
            .map_err(|e| ControllerError::Raft(e.to_string()))?;

        if fresh {
            let members: BTreeMap<u64, BasicNode> = config
                .voters
                .iter()
                .map(|v| (raft_id(v.id), BasicNode::new(v.address())))
                .collect();
            match raft.initialize(members).await {
                Ok(()) => {
                    tracing::info!(node_id = config.node_id, "proposed the initial voter set")
                }
                // Another voter's election reached this node first: it joins that cluster.
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(ControllerError::Raft(e.to_string())),
            }
        }

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let settings = ActiveSettings {
            raft_id: me,
            policy: config.policy.clone(),
            session_timeout_ms: config.broker_session_timeout_ms,
            session_check_interval: Duration::from_millis(
                (config.broker_heartbeat_interval_ms / 2).max(1),
            ),
            commit_timeout: Duration::from_millis(config.request_timeout_ms),
        };
        let (active, active_task) =
            active::spawn(settings, raft.clone(), image.clone(), shutdown_rx.clone());
        let context = ServerContext {
            raft: raft.clone(),
            active: active.clone(),
            image: image.clone(),
        };
        let server_task = tokio::spawn(server::serve(listener, context, shutdown_rx));
        let peers = ControllerClient::new(
            config.voters.clone(),
            Duration::from_millis(config.request_timeout_ms),
        );
        Ok(ControllerHandle {
            inner: Arc::new(Inner {
                node_id: config.node_id,
                local_addr,
                raft,
                image,
                active,
                peers,
                shutdown: shutdown_tx,
                tasks: Mutex::new(vec![active_task, server_task]),
            }),
        })
    }
}

struct Inner {
    node_id: i32,
    local_addr: SocketAddr,
    raft: Raft,
    image: watch::Receiver<Arc<MetadataImage>>,
    active: ActiveHandle,
    peers: ControllerClient,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerHandle")
            .field("node_id", &self.node_id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    /// Dropping the last handle stops the listener and the active-controller task; with
    /// them go the last Raft handles, which stops the Raft core.
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// A running controller. Clones share it; it stops when the last clone is dropped or at
/// [`ControllerHandle::shutdown`].
#[derive(Debug, Clone)]
pub struct ControllerHandle {
    inner: Arc<Inner>,
}

impl ControllerHandle {
    /// This controller's `node.id`.
    pub fn node_id(&self) -> i32 {
        self.inner.node_id
    }

    /// Where the CONTROLLER listener is bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The committed metadata image, updated each time entries are applied here.
    pub fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.image.clone()
    }

    /// The active controller as this node knows it.
    pub fn active_controller(&self) -> Option<i32> {
        self.inner
            .raft
            .metrics()
            .borrow()
            .current_leader
            .map(node_id)
    }

    /// This node's view of the quorum.
    pub fn quorum_status(&self) -> QuorumStatus {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        QuorumStatus {
            node_id: self.inner.node_id,
            leader: m.current_leader.map(node_id),
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
        }
    }

    /// Decides `request` at the active controller and answers once its records are
    /// committed. On another voter the request is forwarded to the active controller; with
    /// no active controller known the error is [`ControllerError::NotController`]
    /// (NOT_CONTROLLER, retriable).
    pub async fn submit(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerResponse, ControllerError> {
        let mut leader = self.active_controller();
        // At most: here, then the leader this node learns of on the way.
        for _ in 0..2 {
            match leader {
                Some(l) if l == self.inner.node_id => {
                    match self.inner.active.submit(request.clone()).await {
                        Err(ControllerError::NotController {
                            leader: Some(other),
                        }) if other != self.inner.node_id => leader = Some(other),
                        answer => return answer,
                    }
                }
                Some(l) => return self.inner.peers.submit_to(l, &request).await,
                None => return Err(ControllerError::NotController { leader: None }),
            }
        }
        Err(ControllerError::NotController { leader })
    }

    /// Stops the listener, the active-controller task and Raft, and waits for them, so the
    /// metadata dir can be reopened right after.
    pub async fn shutdown(self) -> Result<(), ControllerError> {
        let _ = self.inner.shutdown.send(true);
        let tasks = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .map_err(|_| ControllerError::Stopped)?,
        );
        for task in tasks {
            let _ = task.await;
        }
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| ControllerError::Raft(e.to_string()))
    }
}
