//! Registration and heartbeats: how this broker joins the cluster and stays in it.
//!
//! ```text
//!   RegisterBroker ──► epoch ──► BrokerHeartbeat(applied offset) ... until unfenced
//!        ▲                              │ every broker.heartbeat.interval.ms
//!        └── STALE_BROKER_EPOCH ◄───────┘ (fenced/unfenced transitions are logged)
//!   shutdown: BrokerHeartbeat(want_shut_down) until the controller has fenced this broker
//! ```
//!
//! The controller unfences a broker once a heartbeat reports an applied offset at or beyond
//! the broker's own registration: by then the follower has opened every partition the image
//! gives it, so a leader that clients are sent to can serve them.

use std::sync::Arc;
use std::time::Duration;

use fjord_controller::api::{
    BrokerHeartbeatRequest, BrokerHeartbeatResponse, ControllerRequest, ControllerResponse,
    RegisterBrokerRequest,
};
use fjord_controller::record::Listener;
use fjord_controller::{ControllerError, ErrorCode, MetadataImage};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::ClusterNode;

/// Heartbeat period while fenced, so a starting broker is unfenced quickly.
const FENCED_HEARTBEAT_MAX: Duration = Duration::from_millis(250);

/// How often "still waiting" is logged while the broker cannot register or is fenced.
const WAIT_LOG_EVERY: Duration = Duration::from_secs(5);

/// Why the broker could not join the cluster.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The controller refused the registration for good (e.g. INVALID_REQUEST).
    #[error("the controller refused broker {broker_id}'s registration: {code:?}")]
    Refused {
        /// This broker.
        broker_id: i32,
        /// Kafka's code.
        code: ErrorCode,
    },
    /// The heartbeat task ended before the controller unfenced the broker (its registration
    /// was refused after the controller forgot it).
    #[error("broker {broker_id} stopped heartbeating before it was unfenced")]
    HeartbeatsStopped {
        /// This broker.
        broker_id: i32,
    },
}

/// The registration of this broker process and its heartbeat task.
#[derive(Debug)]
pub struct Lifecycle {
    node: Arc<ClusterNode>,
    fenced: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Lifecycle {
    /// Registers this broker (retrying while there is no active controller, or while the
    /// previous process's registration is still alive) and starts heartbeating.
    pub async fn start(
        node: Arc<ClusterNode>,
        listeners: Vec<Listener>,
        rack: Option<String>,
        applied: watch::Receiver<Arc<MetadataImage>>,
    ) -> Result<Lifecycle, LifecycleError> {
        let registration = RegisterBrokerRequest {
            broker_id: node.node_id(),
            incarnation_id: Uuid::new_v4(),
            listeners,
            rack,
        };
        register(&node, &registration).await?;
        let (fenced_tx, fenced) = watch::channel(true);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(heartbeat_loop(
            node.clone(),
            registration,
            applied,
            fenced_tx,
            stop_rx,
        ));
        Ok(Lifecycle {
            node,
            fenced,
            stop,
            task: Some(task),
        })
    }

    /// Waits until the controller has unfenced this broker.
    pub async fn wait_unfenced(&self) -> Result<(), LifecycleError> {
        let mut fenced = self.fenced.clone();
        fenced
            .wait_for(|f| !*f)
            .await
            .map(|_| ())
            .map_err(|_| LifecycleError::HeartbeatsStopped {
                broker_id: self.node.node_id(),
            })
    }

    /// Controlled shutdown: stops the heartbeats and asks the controller to fence this
    /// broker (moving leaderships where another replica can take them), waiting at most
    /// `timeout` for it, so clients learn at once that this broker's partitions are gone.
    pub async fn shutdown(mut self, timeout: Duration) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            // A heartbeat may be waiting on an unreachable quorum; heartbeats are idempotent,
            // so it is simply abandoned.
            task.abort();
            let _ = task.await;
        }
        let node = &self.node;
        let ask = async {
            loop {
                let request = BrokerHeartbeatRequest {
                    broker_id: node.node_id(),
                    broker_epoch: node.broker_epoch(),
                    current_metadata_offset: node.image().offset(),
                    want_fence: true,
                    want_shut_down: true,
                };
                match heartbeat(node, request).await {
                    Ok(r) if r.should_shut_down || r.error != ErrorCode::None => return r,
                    _ => tokio::time::sleep(FENCED_HEARTBEAT_MAX).await,
                }
            }
        };
        match tokio::time::timeout(timeout, ask).await {
            Ok(r) if r.error == ErrorCode::None => {
                tracing::info!(broker_id = node.node_id(), "controlled shutdown: fenced by the controller")
            }
            Ok(r) => tracing::warn!(error = ?r.error, "controlled shutdown refused"),
            Err(_) => tracing::warn!(
                "controlled shutdown: no answer from the controller within {timeout:?}; stopping anyway"
            ),
        }
    }
}

async fn register(
    node: &ClusterNode,
    registration: &RegisterBrokerRequest,
) -> Result<(), LifecycleError> {
    let interval = Duration::from_millis(node.config().broker_heartbeat_interval_ms);
    let mut last_log = tokio::time::Instant::now();
    loop {
        let answer = node
            .controller()
            .submit(ControllerRequest::RegisterBroker(registration.clone()))
            .await;
        let waiting_for = match answer {
            Ok(ControllerResponse::RegisterBroker(r)) if r.error == ErrorCode::None => {
                node.set_broker_epoch(r.broker_epoch);
                tracing::info!(
                    broker_id = registration.broker_id,
                    broker_epoch = r.broker_epoch,
                    "registered with the controller"
                );
                return Ok(());
            }
            Ok(ControllerResponse::RegisterBroker(r))
                if r.error == ErrorCode::DuplicateBrokerRegistration =>
            {
                "the previous process's registration to expire (broker.session.timeout.ms)"
                    .to_string()
            }
            Ok(ControllerResponse::RegisterBroker(r)) if !r.error.is_retriable() => {
                return Err(LifecycleError::Refused {
                    broker_id: registration.broker_id,
                    code: r.error,
                })
            }
            Ok(other) => format!("an answer to the registration (got {other:?})"),
            Err(e) => format!("an active controller ({e})"),
        };
        if last_log.elapsed() >= WAIT_LOG_EVERY {
            tracing::info!(
                broker_id = registration.broker_id,
                "registering: waiting for {waiting_for}"
            );
            last_log = tokio::time::Instant::now();
        }
        tokio::time::sleep(interval.min(FENCED_HEARTBEAT_MAX)).await;
    }
}

async fn heartbeat(
    node: &ClusterNode,
    request: BrokerHeartbeatRequest,
) -> Result<BrokerHeartbeatResponse, ControllerError> {
    match node
        .controller()
        .submit(ControllerRequest::BrokerHeartbeat(request))
        .await?
    {
        ControllerResponse::BrokerHeartbeat(r) => Ok(r),
        other => Err(ControllerError::Unreachable {
            reason: format!("unexpected answer to a heartbeat: {other:?}"),
        }),
    }
}

async fn heartbeat_loop(
    node: Arc<ClusterNode>,
    registration: RegisterBrokerRequest,
    applied: watch::Receiver<Arc<MetadataImage>>,
    fenced_tx: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(node.config().broker_heartbeat_interval_ms);
    let mut last_log = tokio::time::Instant::now();
    loop {
        let fenced = *fenced_tx.borrow();
        let request = BrokerHeartbeatRequest {
            broker_id: node.node_id(),
            broker_epoch: node.broker_epoch(),
            current_metadata_offset: applied.borrow().offset(),
            want_fence: false,
            want_shut_down: false,
        };
        match heartbeat(&node, request).await {
            Ok(r) if r.error == ErrorCode::None => {
                if r.is_fenced != fenced {
                    if r.is_fenced {
                        tracing::warn!(broker_id = node.node_id(), "fenced by the controller");
                    } else {
                        tracing::info!(
                            broker_id = node.node_id(),
                            broker_epoch = node.broker_epoch(),
                            "unfenced by the controller"
                        );
                    }
                    fenced_tx.send_replace(r.is_fenced);
                } else if r.is_fenced && last_log.elapsed() >= WAIT_LOG_EVERY {
                    tracing::info!(
                        caught_up = r.is_caught_up,
                        "still fenced; catching up with the metadata log"
                    );
                    last_log = tokio::time::Instant::now();
                }
            }
            Ok(r)
                if matches!(
                    r.error,
                    ErrorCode::StaleBrokerEpoch | ErrorCode::BrokerIdNotRegistered
                ) =>
            {
                tracing::warn!(error = ?r.error, "the controller no longer knows this registration; registering again");
                fenced_tx.send_replace(true);
                if register(&node, &registration).await.is_err() {
                    return;
                }
            }
            Ok(r) => tracing::warn!(error = ?r.error, "heartbeat refused"),
            Err(e) => {
                if last_log.elapsed() >= WAIT_LOG_EVERY {
                    tracing::warn!(error = %e, "heartbeat not delivered");
                    last_log = tokio::time::Instant::now();
                }
            }
        }
        let pause = if *fenced_tx.borrow() {
            interval.min(FENCED_HEARTBEAT_MAX)
        } else {
            interval
        };
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}
