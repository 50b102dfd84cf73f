//! One way for a node to use the metadata quorum, whether it runs a voter or not.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::api::{ControllerRequest, ControllerResponse};
use crate::controller::ControllerHandle;
use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::remote::RemoteController;

/// How this node reaches the metadata quorum: through the voter it runs (`process.roles`
/// with `controller`), or over the voters' CONTROLLER listeners (a broker-only node). A
/// broker uses both the same way: follow [`QuorumHandle::image`], submit requests, ask for
/// the active controller.
#[derive(Debug, Clone)]
pub enum QuorumHandle {
    /// A voter of the quorum runs in this process.
    Local(ControllerHandle),
    /// This node is not a voter and follows the quorum from outside.
    Remote(RemoteController),
}

impl QuorumHandle {
    /// This node's `node.id`.
    pub fn node_id(&self) -> i32 {
        match self {
            Self::Local(c) => c.node_id(),
            Self::Remote(r) => r.node_id(),
        }
    }

    /// The committed metadata image as this node has it; it only moves forward.
    pub fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        match self {
            Self::Local(c) => c.image(),
            Self::Remote(r) => r.image(),
        }
    }

    /// The active controller as this node knows it.
    pub fn active_controller(&self) -> Option<i32> {
        match self {
            Self::Local(c) => c.active_controller(),
            Self::Remote(r) => r.active_controller(),
        }
    }

    /// Decides `request` at the active controller and answers once its records are
    /// committed; NOT_CONTROLLER (retriable) while none is known.
    pub async fn submit(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerResponse, ControllerError> {
        match self {
            Self::Local(c) => c.submit(request).await,
            Self::Remote(r) => r.submit(request).await,
        }
    }

    /// Whether this node is a voter.
    pub fn is_voter(&self) -> bool {
        matches!(self, Self::Local(_))
    }

    /// The bound CONTROLLER listener of a voter; `None` on a node that has none.
    pub fn controller_listener(&self) -> Option<SocketAddr> {
        match self {
            Self::Local(c) => Some(c.local_addr()),
            Self::Remote(_) => None,
        }
    }

    /// Stops the local voter (leaving its metadata log clean) or the remote follower, and
    /// waits for their tasks.
    pub async fn shutdown(self) -> Result<(), ControllerError> {
        match self {
            Self::Local(c) => c.shutdown().await,
            Self::Remote(r) => r.shutdown().await,
        }
    }
}

impl From<ControllerHandle> for QuorumHandle {
    fn from(handle: ControllerHandle) -> Self {
        Self::Local(handle)
    }
}

impl From<RemoteController> for QuorumHandle {
    fn from(remote: RemoteController) -> Self {
        Self::Remote(remote)
    }
}
