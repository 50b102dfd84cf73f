//! openraft's network over [`crate::wire`]: one reconnecting connection per peer.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use super::TypeConfig;
use crate::wire::{CallError, Connection, WireRequest, WireResponse};

/// Creates [`PeerClient`]s for openraft.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    /// Connect timeout; the exchange itself is bounded by the TTL openraft gives each RPC.
    pub(crate) request_timeout: Duration,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            connection: Connection::new(node.addr.clone(), self.request_timeout),
        }
    }
}

/// The RPC client openraft uses for one peer.
#[derive(Debug)]
pub(crate) struct PeerClient {
    target: u64,
    connection: Connection,
}

type Rpc<T, E = openraft::error::Infallible> =
    Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>;

impl PeerClient {
    async fn call<E: std::error::Error>(
        &mut self,
        request: WireRequest,
        option: &RPCOption,
    ) -> Rpc<WireResponse, E> {
        let timeout = option.hard_ttl();
        self.connection
            .call(&request, timeout)
            .await
            .map_err(|e| match e {
                // Never reached: openraft backs off before trying this peer again.
                CallError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            })
    }

    fn unexpected<E: std::error::Error>(
        &self,
        response: &WireResponse,
    ) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
        let e = std::io::Error::other(format!("peer {} answered with {response:?}", self.target));
        RPCError::Network(NetworkError::new(&e))
    }

    fn remote<E: std::error::Error>(
        &self,
        e: RaftError<u64, E>,
    ) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<u64>> {
        match self.call(WireRequest::AppendEntries(rpc), &option).await? {
            WireResponse::AppendEntries(r) => r.map_err(|e| self.remote(e)),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        match self
            .call(WireRequest::InstallSnapshot(rpc), &option)
            .await?
        {
            WireResponse::InstallSnapshot(r) => r.map_err(|e| self.remote(e)),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> Rpc<VoteResponse<u64>> {
        match self.call(WireRequest::Vote(rpc), &option).await? {
            WireResponse::Vote(r) => r.map_err(|e| self.remote(e)),
            other => Err(self.unexpected(&other)),
        }
    }
}
