//! The CONTROLLER listener: serves openraft's RPCs from the other voters and
//! [`crate::api::ControllerRequest`]s from brokers and other controllers, one task per
//! connection, requests on a connection answered in order.

use std::sync::Arc;

use tokio::io::BufWriter;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::active::ActiveHandle;
use crate::error::ControllerError;
use crate::raft::Raft;
use crate::wire::{read_message, write_message, SubmitFailure, WireRequest, WireResponse};

/// Connections served at once; more wait in the accept backlog.
const MAX_CONNECTIONS: usize = 256;

/// What a connection task needs.
#[derive(Clone)]
pub(crate) struct ServerContext {
    pub(crate) raft: Raft,
    pub(crate) active: ActiveHandle,
}

impl From<&ControllerError> for SubmitFailure {
    fn from(error: &ControllerError) -> Self {
        let leader = match error {
            ControllerError::NotController { leader } => *leader,
            _ => None,
        };
        Self {
            code: error.error_code(),
            leader,
            message: error.to_string(),
        }
    }
}

/// Accepts connections until `shutdown` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    context: ServerContext,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let context = context.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(error) = serve_connection(stream, context, shutdown).await {
                        tracing::debug!(%peer, %error, "controller connection closed");
                    }
                    drop(permit);
                });
            }
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    context: ServerContext,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut stream = BufWriter::new(stream);
    loop {
        let request = tokio::select! {
            biased;
            _ = shutdown.changed() => return Ok(()),
            request = read_message::<WireRequest>(&mut stream) => request?,
        };
        let Some(request) = request else {
            return Ok(());
        };
        let response = tokio::select! {
            biased;
            _ = shutdown.changed() => return Ok(()),
            response = answer(&context, request) => response,
        };
        write_message(&mut stream, &response).await?;
    }
}

async fn answer(context: &ServerContext, request: WireRequest) -> WireResponse {
    match request {
        WireRequest::AppendEntries(rpc) => {
            WireResponse::AppendEntries(context.raft.append_entries(rpc).await)
        }
        WireRequest::Vote(rpc) => WireResponse::Vote(context.raft.vote(rpc).await),
        WireRequest::InstallSnapshot(rpc) => {
            WireResponse::InstallSnapshot(context.raft.install_snapshot(rpc).await)
        }
        WireRequest::Submit(request) => WireResponse::Submit(
            context
                .active
                .submit(request)
                .await
                .map_err(|e| SubmitFailure::from(&e)),
        ),
    }
}
