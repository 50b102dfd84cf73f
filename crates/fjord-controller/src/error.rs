//! Why the controller could not take a request, or could not start.
//!
//! Per-item outcomes of an accepted request are [`ErrorCode`]s inside the response; this type
//! is for "the request failed" (retriable: no active controller, timeout) and "the node
//! stopped or cannot start" (config, storage, listener), after openraft's
//! `RaftError::{APIError, Fatal}` split.

use std::io;
use std::net::SocketAddr;

use crate::config::ConfigError;
use crate::error_code::ErrorCode;
use crate::raft::file::StoreError;

/// A request the controller did not answer, or a controller that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The configuration is unusable.
    #[error("invalid controller config: {0}")]
    Config(#[from] ConfigError),
    /// The metadata dir cannot be read or written.
    #[error("metadata storage: {0}")]
    Storage(#[from] StoreError),
    /// The CONTROLLER listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No active controller is known here, or this node stopped being it. Retry, preferably
    /// at `leader`.
    #[error("not the active controller (active controller: {leader:?})")]
    NotController {
        /// The active controller, if known.
        leader: Option<i32>,
    },
    /// The active controller could not be reached; retry.
    #[error("controller unreachable: {reason}")]
    Unreachable {
        /// What failed.
        reason: String,
    },
    /// The records were not committed in time; they may still commit.
    #[error("the metadata log did not commit within {timeout_ms} ms")]
    Timeout {
        /// The limit.
        timeout_ms: u64,
    },
    /// The remote controller failed the request with this code.
    #[error("controller answered {code:?}: {message}")]
    Remote {
        /// Kafka's code.
        code: ErrorCode,
        /// For humans.
        message: String,
    },
    /// This controller is shut down.
    #[error("the controller has stopped")]
    Stopped,
    /// openraft failed fatally (storage failure, panic in the core).
    #[error("raft: {0}")]
    Raft(String),
}

impl ControllerError {
    /// The Kafka error code a broker should answer its client with.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::NotController { .. } | Self::Unreachable { .. } | Self::Stopped => {
                ErrorCode::NotController
            }
            Self::Timeout { .. } => ErrorCode::RequestTimedOut,
            Self::Remote { code, .. } => *code,
            Self::Config(_) | Self::Storage(_) | Self::Listen { .. } | Self::Raft(_) => {
                ErrorCode::UnknownServerError
            }
        }
    }

    /// Whether retrying (after a short backoff, possibly at another controller) may succeed.
    pub fn is_retriable(&self) -> bool {
        self.error_code().is_retriable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_kafka_codes() {
        assert_eq!(
            ControllerError::NotController { leader: None }.error_code(),
            ErrorCode::NotController
        );
        assert!(ControllerError::Unreachable { reason: "x".into() }.is_retriable());
        assert_eq!(
            ControllerError::Timeout { timeout_ms: 5 }.error_code(),
            ErrorCode::RequestTimedOut
        );
        assert!(!ControllerError::Raft("x".into()).is_retriable());
    }
}
