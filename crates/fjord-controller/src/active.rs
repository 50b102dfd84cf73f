//! The active controller's task: decides requests one at a time on the committed image,
//! appends the records through Raft, answers after commit, and keeps broker sessions.
//!
//! ```text
//!   submit ──► mpsc ──► ActiveController ──decide()──► client_write ──► commit/apply
//!                          ▲      │                                         │
//!           session tick ──┘      └── oneshot answer ◄──────────────────────┘
//! ```
//!
//! Running decisions one at a time, each after the previous one is applied, is what makes
//! every decision see the effects of the one before; metadata changes are rare enough for
//! that. Any node runs this task, but it only acts while its node leads the quorum.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, watch};

use crate::api::{ControllerRequest, ControllerResponse};
use crate::decision::{decide, Policy, RandomTopicIds};
use crate::election::fence_broker;
use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::liveness::BrokerSessions;
use crate::raft::{node_id, MetadataBatch, Raft};
use crate::record::MetadataRecord;

/// Requests waiting for the active controller; beyond this, submitters wait.
const QUEUE_DEPTH: usize = 1024;

/// One request and where its answer goes.
#[derive(Debug)]
struct Submission {
    request: ControllerRequest,
    reply: oneshot::Sender<Result<ControllerResponse, ControllerError>>,
}

/// How other tasks hand requests to the active controller task.
#[derive(Debug, Clone)]
pub(crate) struct ActiveHandle {
    tx: mpsc::Sender<Submission>,
}

impl ActiveHandle {
    /// Decides `request` here; NOT_CONTROLLER if this node does not lead the quorum.
    pub(crate) async fn submit(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerResponse, ControllerError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Submission { request, reply })
            .await
            .map_err(|_| ControllerError::Stopped)?;
        answer.await.map_err(|_| ControllerError::Stopped)?
    }
}

/// Settings of the task.
#[derive(Debug, Clone)]
pub(crate) struct ActiveSettings {
    pub(crate) raft_id: u64,
    pub(crate) policy: Policy,
    pub(crate) session_timeout_ms: u64,
    pub(crate) session_check_interval: Duration,
    pub(crate) commit_timeout: Duration,
}

struct ActiveController {
    settings: ActiveSettings,
    raft: Raft,
    image: watch::Receiver<Arc<MetadataImage>>,
    sessions: BrokerSessions,
    /// The term in which this node last caught up as leader; decisions wait for it.
    ready_term: Option<u64>,
    started: Instant,
    topic_ids: RandomTopicIds,
}

/// Starts the task; it ends when `shutdown` fires or is dropped.
pub(crate) fn spawn(
    settings: ActiveSettings,
    raft: Raft,
    image: watch::Receiver<Arc<MetadataImage>>,
    shutdown: watch::Receiver<bool>,
) -> (ActiveHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let controller = ActiveController {
        sessions: BrokerSessions::new(settings.session_timeout_ms),
        settings,
        raft,
        image,
        ready_term: None,
        started: Instant::now(),
        topic_ids: RandomTopicIds,
    };
    let task = tokio::spawn(controller.run(rx, shutdown));
    (ActiveHandle { tx }, task)
}

impl ActiveController {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Submission>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(self.settings.session_check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                submission = rx.recv() => {
                    let Some(submission) = submission else { break };
                    let answer = self.handle(submission.request).await;
                    let _ = submission.reply.send(answer);
                }
                _ = tick.tick() => self.check_sessions().await,
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn leader(&self) -> Option<i32> {
        self.raft.metrics().borrow().current_leader.map(node_id)
    }

    /// Makes sure this node leads and has applied everything committed before its term; on
    /// the first call of a term, gives every broker a fresh session.
    async fn ensure_active(&mut self) -> Result<(), ControllerError> {
        let (leader, term) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            (m.current_leader, m.current_term)
        };
        if leader != Some(self.settings.raft_id) {
            self.ready_term = None;
            return Err(ControllerError::NotController {
                leader: leader.map(node_id),
            });
        }
        if self.ready_term == Some(term) {
            return Ok(());
        }
        let caught_up = tokio::time::timeout(
            self.settings.commit_timeout,
            self.raft.ensure_linearizable(),
        )
        .await;
        match caught_up {
            Ok(Ok(_)) => {}
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                return Err(ControllerError::NotController {
                    leader: f.leader_id.map(node_id),
                })
            }
            // Leadership could not be confirmed with a quorum: as good as not leading.
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))) => {
                return Err(ControllerError::NotController { leader: None })
            }
            Ok(Err(RaftError::Fatal(e))) => return Err(ControllerError::Raft(e.to_string())),
            Err(_) => {
                return Err(ControllerError::Timeout {
                    timeout_ms: self.settings.commit_timeout.as_millis() as u64,
                })
            }
        }
        let image = self.image.borrow().clone();
        self.sessions.reset(&image, self.now_ms());
        self.ready_term = Some(term);
        tracing::info!(
            term,
            offset = image.offset(),
            "became the active controller"
        );
        Ok(())
    }

    async fn handle(
        &mut self,
        request: ControllerRequest,
    ) -> Result<ControllerResponse, ControllerError> {
        self.ensure_active().await?;
        let image = self.image.borrow().clone();
        let now_ms = self.now_ms();
        let decision = decide(&image, &request, &self.settings.policy, &mut self.topic_ids);
        match (&request, &decision.response) {
            (ControllerRequest::BrokerHeartbeat(r), ControllerResponse::BrokerHeartbeat(a))
                if a.error == crate::ErrorCode::None =>
            {
                self.sessions.touch(r.broker_id, now_ms);
            }
            (ControllerRequest::RegisterBroker(r), ControllerResponse::RegisterBroker(a))
                if a.error == crate::ErrorCode::None =>
            {
                self.sessions.touch(r.broker_id, now_ms);
            }
            _ => {}
        }
        self.write(decision.records).await?;
        Ok(decision.response)
    }

    /// Appends `records` as one entry and waits until it is applied here.
    async fn write(&mut self, records: Vec<MetadataRecord>) -> Result<(), ControllerError> {
        if records.is_empty() {
            return Ok(());
        }
        let timeout = self.settings.commit_timeout;
        let written =
            tokio::time::timeout(timeout, self.raft.client_write(MetadataBatch { records })).await;
        match written {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                self.ready_term = None;
                Err(ControllerError::NotController {
                    leader: f.leader_id.map(node_id),
                })
            }
            Ok(Err(RaftError::APIError(e))) => Err(ControllerError::Raft(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => Err(ControllerError::Raft(e.to_string())),
            Err(_) => Err(ControllerError::Timeout {
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    /// Fences brokers whose session ended, one entry per broker so each election sees the
    /// previous one.
    async fn check_sessions(&mut self) {
        if self.leader() != Some(node_id(self.settings.raft_id)) {
            self.ready_term = None;
            return;
        }
        if self.ensure_active().await.is_err() {
            return;
        }
        let image = self.image.borrow().clone();
        for broker_id in self.sessions.expired(&image, self.now_ms()) {
            let image = self.image.borrow().clone();
            let records = fence_broker(&image, broker_id, &self.settings.policy);
            tracing::warn!(broker_id, "broker session expired; fencing it");
            if let Err(error) = self.write(records).await {
                tracing::warn!(broker_id, %error, "could not fence broker");
                return;
            }
        }
    }
}
