//! One task per client connection.
//!
//! The task reads size-prefixed frames, starts handling each request as soon as it is whole, and
//! writes responses strictly in request order (Kafka clients match responses by position as
//! well as by correlation id). Up to `queued.max.requests` requests run concurrently per
//! connection; beyond that reading pauses, so a client cannot make the broker buffer without
//! bound.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use fjord_protocol::fetch_frame::ResponseChunks;
use fjord_protocol::frame::{parse_frame, FrameError};
use futures::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, Semaphore};

use crate::authorizer::Session;
use crate::dispatch::{handle_frame, Outcome};
use crate::Broker;

/// Accepts connections until shutdown, one task each, bounded by `max.connections`.
pub(crate) async fn accept_loop(
    broker: Arc<Broker>,
    listener_name: String,
    listener: TcpListener,
    permits: Arc<Semaphore>,
    shutdown: broadcast::Sender<()>,
    alive: mpsc::Sender<()>,
) {
    let mut stop = shutdown.subscribe();
    loop {
        let permit = tokio::select! {
            biased;
            _ = stop.recv() => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = stop.recv() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let broker = broker.clone();
                let session = Session::plaintext(&listener_name, peer);
                let stop = shutdown.subscribe();
                let alive = alive.clone();
                tokio::spawn(async move {
                    serve(broker, session, stream, peer, stop).await;
                    drop(permit);
                    drop(alive);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve(
    broker: Arc<Broker>,
    session: Session,
    stream: TcpStream,
    peer: SocketAddr,
    mut stop: broadcast::Receiver<()>,
) {
    let _open = broker.metrics.connection_opened();
    let (mut reader, mut writer) = stream.into_split();
    let max_frame = broker.config.socket_request_max_bytes;
    let max_in_flight = broker.config.queued_max_requests;
    let session = Arc::new(session);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut in_flight = FuturesOrdered::new();
    let mut reading = true;
    loop {
        while reading && in_flight.len() < max_in_flight {
            match parse_frame(&mut buf, max_frame) {
                Ok(Some(frame)) => {
                    let broker = broker.clone();
                    let session = session.clone();
                    in_flight
                        .push_back(async move { handle_frame(&broker, &session, frame).await });
                }
                Ok(None) => break,
                Err(e) => {
                    log_bad_frame(&peer, &e);
                    // Answer what was already accepted, then close.
                    reading = false;
                }
            }
        }
        if !reading && in_flight.is_empty() {
            return;
        }
        tokio::select! {
            biased;
            _ = stop.recv() => return,
            Some(outcome) = in_flight.next(), if !in_flight.is_empty() => {
                match outcome {
                    Outcome::Respond(bytes) => {
                        if write_response(&mut writer, &bytes).await.is_err() {
                            return;
                        }
                    }
                    Outcome::NoResponse => {}
                    Outcome::Close(reason) => {
                        tracing::warn!(%peer, %reason, "closing connection");
                        return;
                    }
                }
            }
            read = reader.read_buf(&mut buf), if reading && in_flight.len() < max_in_flight => {
                match read {
                    Ok(0) | Err(_) => reading = false,
                    Ok(_) => {}
                }
            }
        }
    }
}

/// Writes a response frame. Small frames go out in one write; large ones (fetch responses
/// carrying log bytes) are written chunk by chunk rather than copied into one buffer first.
async fn write_response(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    frame: &ResponseChunks,
) -> std::io::Result<()> {
    const COALESCE_BELOW: usize = 64 * 1024;
    match frame.chunks.as_slice() {
        [single] => writer.write_all(single).await,
        chunks if frame.len() < COALESCE_BELOW => {
            let mut joined = Vec::with_capacity(frame.len());
            for c in chunks {
                joined.extend_from_slice(c);
            }
            writer.write_all(&joined).await
        }
        chunks => {
            for c in chunks {
                writer.write_all(c).await?;
            }
            Ok(())
        }
    }
}

fn log_bad_frame(peer: &SocketAddr, e: &FrameError) {
    tracing::warn!(%peer, error = %e, "closing connection after a bad frame");
}
