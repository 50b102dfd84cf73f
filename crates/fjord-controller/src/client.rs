//! A client of the controller quorum over the CONTROLLER listener: what a non-active
//! controller uses to forward requests, and what a broker-only node submits through (see
//! [`crate::RemoteController`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::api::{ControllerRequest, ControllerResponse};
use crate::config::Voter;
use crate::error::ControllerError;
use crate::error_code::ErrorCode;
use crate::wire::{CallError, Connection, SubmitFailure, WireRequest, WireResponse};

/// Sends [`ControllerRequest`]s to the voters of a quorum, one connection per voter.
#[derive(Debug)]
pub struct ControllerClient {
    voters: Vec<Voter>,
    connections: BTreeMap<i32, tokio::sync::Mutex<Connection>>,
    last_leader: Mutex<Option<i32>>,
    request_timeout: Duration,
}

impl From<SubmitFailure> for ControllerError {
    fn from(failure: SubmitFailure) -> Self {
        match failure.code {
            ErrorCode::NotController => Self::NotController {
                leader: failure.leader,
            },
            ErrorCode::RequestTimedOut => Self::Timeout { timeout_ms: 0 },
            code => Self::Remote {
                code,
                message: failure.message,
            },
        }
    }
}

impl ControllerClient {
    /// A client of `voters` (from `controller.quorum.voters`). `request_timeout` bounds the
    /// connect and, doubled, the wait for an answer, which includes the commit.
    pub fn new(voters: Vec<Voter>, request_timeout: Duration) -> Self {
        let connections = voters
            .iter()
            .map(|v| {
                let connection = Connection::new(v.address(), request_timeout);
                (v.id, tokio::sync::Mutex::new(connection))
            })
            .collect();
        Self {
            voters,
            connections,
            last_leader: Mutex::new(None),
            request_timeout,
        }
    }

    /// Makes `leader` the first voter the next [`ControllerClient::submit`] tries, e.g. once
    /// another channel has named the active controller.
    pub fn prefer(&self, leader: i32) {
        if self.connections.contains_key(&leader) {
            if let Ok(mut last) = self.last_leader.lock() {
                *last = Some(leader);
            }
        }
    }

    /// Sends `request` to voter `node_id` only; the answer may be NOT_CONTROLLER.
    pub async fn submit_to(
        &self,
        node_id: i32,
        request: &ControllerRequest,
    ) -> Result<ControllerResponse, ControllerError> {
        self.attempt(node_id, request).await.map_err(|(_, e)| e)
    }

    /// One try at `node_id`. On failure, says whether the request certainly was not taken
    /// (so trying another voter cannot execute it twice).
    async fn attempt(
        &self,
        node_id: i32,
        request: &ControllerRequest,
    ) -> Result<ControllerResponse, (bool, ControllerError)> {
        let connection = self
            .connections
            .get(&node_id)
            .ok_or((true, ControllerError::NotController { leader: None }))?;
        let wire = WireRequest::Submit(request.clone());
        let answer = connection
            .lock()
            .await
            .call(&wire, self.request_timeout * 2)
            .await
            .map_err(|e| {
                let not_taken = matches!(e, CallError::Connect { .. });
                let reason = e.to_string();
                (not_taken, ControllerError::Unreachable { reason })
            })?;
        match answer {
            WireResponse::Submit(Ok(response)) => Ok(response),
            WireResponse::Submit(Err(failure)) => {
                let error = ControllerError::from(failure);
                let not_taken = matches!(error, ControllerError::NotController { .. });
                Err((not_taken, error))
            }
            other => Err((
                false,
                ControllerError::Unreachable {
                    reason: format!("node {node_id} answered {other:?}"),
                },
            )),
        }
    }

    /// Sends `request` to the active controller: the last one seen first, then every voter,
    /// following NOT_CONTROLLER hints, each voter at most once. Only failures that prove the
    /// request was not taken (refused connection, NOT_CONTROLLER) move on to another voter,
    /// so this client never has a request executed twice. When no voter took it, the error
    /// is NOT_CONTROLLER if any voter answered (an election is under way; retry), else the
    /// last connection failure.
    pub async fn submit(
        &self,
        request: &ControllerRequest,
    ) -> Result<ControllerResponse, ControllerError> {
        let mut queue: VecDeque<i32> = VecDeque::new();
        if let Some(leader) = self.last_leader.lock().ok().and_then(|l| *l) {
            queue.push_back(leader);
        }
        queue.extend(self.voters.iter().map(|v| v.id));
        let mut tried = BTreeSet::new();
        let mut last_error = ControllerError::NotController { leader: None };
        while let Some(target) = queue.pop_front() {
            if !tried.insert(target) {
                continue;
            }
            match self.attempt(target, request).await {
                Ok(response) => {
                    if let Ok(mut leader) = self.last_leader.lock() {
                        *leader = Some(target);
                    }
                    return Ok(response);
                }
                Err((true, error)) => {
                    if let ControllerError::NotController {
                        leader: Some(leader),
                    } = error
                    {
                        queue.push_front(leader);
                    }
                    // A voter's NOT_CONTROLLER says more than another voter being down.
                    if !matches!(
                        (&last_error, &error),
                        (
                            ControllerError::NotController { .. },
                            ControllerError::Unreachable { .. }
                        )
                    ) || tried.len() == 1
                    {
                        last_error = error;
                    }
                }
                Err((false, error)) => return Err(error),
            }
        }
        Err(last_error)
    }
}
