//! The CONTROLLER listener: serves openraft's RPCs from the other voters,
//! [`crate::api::ControllerRequest`]s from brokers and other controllers, and the committed
//! image to nodes that are not voters, one task per connection, requests on a connection
//! answered in order.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufWriter;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::active::ActiveHandle;
use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::raft::{node_id, Raft};
use crate::wire::{
    read_message, write_message, FetchImageAnswer, FetchImageRequest, SubmitFailure, WireRequest,
    WireResponse, FETCH_IMAGE_MAX_WAIT_MS,
};

/// Connections served at once; more wait in the accept backlog.
const MAX_CONNECTIONS: usize = 256;

/// What a connection task needs.
#[derive(Clone)]
pub(crate) struct ServerContext {
    pub(crate) raft: Raft,
    pub(crate) active: ActiveHandle,
    /// The committed image, served to nodes that are not voters.
    pub(crate) image: watch::Receiver<Arc<MetadataImage>>,
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
        WireRequest::FetchImage(fetch) => {
            WireResponse::FetchImage(fetch_image(context, fetch).await)
        }
    }
}

/// Waits (bounded) until the committed image is newer than the asker's, and answers with it
/// and the active controller; without a newer image in time, with the active controller only.
async fn fetch_image(context: &ServerContext, fetch: FetchImageRequest) -> FetchImageAnswer {
    let mut image = context.image.clone();
    let newer = |i: &Arc<MetadataImage>| fetch.known_offset.is_none_or(|known| i.offset() > known);
    let wait = Duration::from_millis(fetch.max_wait_ms.min(FETCH_IMAGE_MAX_WAIT_MS));
    let image = match tokio::time::timeout(wait, image.wait_for(newer)).await {
        Ok(Ok(found)) => Some(found.clone()),
        // The wait ran out, or the state machine is gone (shutting down).
        _ => None,
    };
    let leader = context.raft.metrics().borrow().current_leader.map(node_id);
    FetchImageAnswer { leader, image }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::net::TcpListener;
    use uuid::Uuid;

    use crate::api::{ControllerRequest, RegisterBrokerRequest};
    use crate::wire::{Connection, FetchImageAnswer, FetchImageRequest, WireRequest, WireResponse};
    use crate::{parse_voters, Controller, ControllerConfig};

    async fn fetch(
        connection: &mut Connection,
        known_offset: Option<u64>,
        max_wait_ms: u64,
    ) -> FetchImageAnswer {
        let request = WireRequest::FetchImage(FetchImageRequest {
            known_offset,
            max_wait_ms,
        });
        match connection.call(&request, Duration::from_secs(10)).await {
            Ok(WireResponse::FetchImage(answer)) => answer,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fetch_is_answered_with_the_image_only_once_it_is_newer() {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let voters = parse_voters(&format!("1@{addr}")).unwrap();
        let mut config = ControllerConfig::new(1, voters, addr, dir.path());
        config.election_timeout_ms = 300;
        config.quorum_heartbeat_interval_ms = 50;
        let controller = Controller::start_on(config, listener).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while controller.active_controller() != Some(1) {
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut connection = Connection::new(addr.to_string(), Duration::from_secs(2));

        // Nothing known yet: the image at once, with the leader.
        let first = fetch(&mut connection, None, 5000).await;
        assert_eq!(first.leader, Some(1));
        let image = first.image.expect("an image");
        let offset = image.offset();
        assert_eq!(offset, controller.image().borrow().offset());

        // Already known: nothing is sent until the wait runs out.
        let started = Instant::now();
        let quiet = fetch(&mut connection, Some(offset), 300).await;
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert_eq!(quiet.image, None);
        assert_eq!(quiet.leader, Some(1));

        // A change ends the wait with the new image.
        let waiting = tokio::spawn(async move {
            let started = Instant::now();
            (
                fetch(&mut connection, Some(offset), 20_000).await,
                started.elapsed(),
            )
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        controller
            .submit(ControllerRequest::RegisterBroker(RegisterBrokerRequest {
                broker_id: 4,
                incarnation_id: Uuid::new_v4(),
                listeners: vec![],
                rack: None,
            }))
            .await
            .unwrap();
        let (changed, waited) = waiting.await.unwrap();
        assert!(waited < Duration::from_secs(10), "{waited:?}");
        let image = changed.image.expect("the newer image");
        assert!(image.offset() > offset);
        assert!(image.broker(4).is_some());
        controller.shutdown().await.unwrap();
    }
}
