//! The CONTROLLER listener's protocol, spoken between controllers and by brokers.
//!
//! One TCP connection carries one request at a time: the client writes a frame, the server
//! answers with one frame, in order. A frame is `length: u32 BE | JSON`, at most
//! [`MAX_MESSAGE_BYTES`]. Requests are openraft's three RPCs (append entries, vote, install
//! snapshot chunk), a [`ControllerRequest`] for the active controller, or a non-voter's long
//! poll for the committed [`MetadataImage`] (`FetchImage`).
//!
//! A fetch is answered with the whole image, and only once the voter's committed image is
//! newer than the one the asker holds: nothing is sent while the metadata does not change.
//! The image is JSON of about 150 bytes per partition with three replicas: 151 KB for 1,000
//! partitions in 100 topics (checked by a test), so one change costs a broker-only node that
//! much, and [`MAX_MESSAGE_BYTES`] allows about 400,000 partitions. Sending only the records
//! since the asker's offset is left for when images grow that large.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;

use crate::api::{ControllerRequest, ControllerResponse};
use crate::error_code::ErrorCode;
use crate::image::MetadataImage;
use crate::raft::TypeConfig;

/// Largest message either side accepts; snapshot chunks are far smaller.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A request frame.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireRequest {
    /// openraft AppendEntries.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// openraft Vote.
    Vote(VoteRequest<u64>),
    /// openraft InstallSnapshot (one chunk).
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A request for the active controller.
    Submit(ControllerRequest),
    /// A non-voter's long poll for the committed image.
    FetchImage(FetchImageRequest),
}

/// Longest a voter holds a [`FetchImageRequest`] before answering without an image, whatever
/// the asker asks for, so a connection is never parked for long.
pub const FETCH_IMAGE_MAX_WAIT_MS: u64 = 30_000;

/// A long poll for the committed image, so that a node that is not a voter (a broker-only
/// node) can follow the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FetchImageRequest {
    /// Offset of the newest image the asker holds; `None` before it holds any.
    pub(crate) known_offset: Option<u64>,
    /// How long the voter may wait for a newer image before answering without one (at most
    /// [`FETCH_IMAGE_MAX_WAIT_MS`]).
    pub(crate) max_wait_ms: u64,
}

/// The answer to a [`FetchImageRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FetchImageAnswer {
    /// The active controller as the answering voter knows it.
    pub(crate) leader: Option<i32>,
    /// The voter's committed image, when it is newer than the asker's; `None` when the wait
    /// ran out first.
    pub(crate) image: Option<Arc<MetadataImage>>,
}

/// Why a submitted request got no [`ControllerResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SubmitFailure {
    /// NOT_CONTROLLER, REQUEST_TIMED_OUT or UNKNOWN_SERVER_ERROR.
    pub(crate) code: ErrorCode,
    /// The active controller, if the answering node knows it.
    pub(crate) leader: Option<i32>,
    /// For humans.
    pub(crate) message: String,
}

/// A response frame, same variant as the request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireResponse {
    /// openraft AppendEntries.
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    /// openraft Vote.
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    /// openraft InstallSnapshot.
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// The active controller's answer.
    Submit(Result<ControllerResponse, SubmitFailure>),
    /// The committed image, or only the leader when nothing changed in time.
    FetchImage(FetchImageAnswer),
}

/// Writes one frame.
pub(crate) async fn write_message<T: Serialize>(
    stream: &mut BufWriter<TcpStream>,
    message: &T,
) -> io::Result<()> {
    let json = serde_json::to_vec(message).map_err(io::Error::other)?;
    if json.len() > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "message of {} bytes exceeds {MAX_MESSAGE_BYTES}",
                json.len()
            ),
        ));
    }
    stream.write_all(&(json.len() as u32).to_be_bytes()).await?;
    stream.write_all(&json).await?;
    stream.flush().await
}

/// Reads one frame; `Ok(None)` when the peer closed the connection between frames.
pub(crate) async fn read_message<T: DeserializeOwned>(
    stream: &mut BufWriter<TcpStream>,
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match stream.get_mut().read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes exceeds {MAX_MESSAGE_BYTES}"),
        ));
    }
    let mut body = vec![0u8; len];
    stream.get_mut().read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Why a call failed, telling "never reached" (safe to retry elsewhere) from "lost midway".
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// Could not connect.
    #[error("connect to {address}: {source}")]
    Connect {
        /// Where.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// The connection failed after the request may have been sent.
    #[error("exchange with {address}: {source}")]
    Exchange {
        /// Where.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// No answer in time.
    #[error("no answer from {address} within {timeout:?}")]
    Timeout {
        /// Where.
        address: String,
        /// The limit.
        timeout: Duration,
    },
}

/// A client connection to one controller, opened on first use and reopened after any
/// failure, so a restarted peer is picked up again.
#[derive(Debug)]
pub(crate) struct Connection {
    address: String,
    connect_timeout: Duration,
    stream: Option<BufWriter<TcpStream>>,
}

impl Connection {
    /// A connection to `address` (`host:port`), not yet open.
    pub(crate) fn new(address: String, connect_timeout: Duration) -> Self {
        Self {
            address,
            connect_timeout,
            stream: None,
        }
    }

    /// Sends `request` and waits up to `timeout` for the answer.
    pub(crate) async fn call(
        &mut self,
        request: &WireRequest,
        timeout: Duration,
    ) -> Result<WireResponse, CallError> {
        let outcome = self.try_call(request, timeout).await;
        if outcome.is_err() {
            self.stream = None;
        }
        outcome
    }

    async fn try_call(
        &mut self,
        request: &WireRequest,
        timeout: Duration,
    ) -> Result<WireResponse, CallError> {
        if self.stream.is_none() {
            let connect = TcpStream::connect(self.address.as_str());
            let stream = match tokio::time::timeout(self.connect_timeout, connect).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(source)) => {
                    return Err(CallError::Connect {
                        address: self.address.clone(),
                        source,
                    })
                }
                Err(_) => {
                    return Err(CallError::Connect {
                        address: self.address.clone(),
                        source: io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
                    })
                }
            };
            // Raft messages are small and latency-bound.
            let _ = stream.set_nodelay(true);
            self.stream = Some(BufWriter::new(stream));
        }
        let address = self.address.clone();
        let Some(stream) = self.stream.as_mut() else {
            return Err(CallError::Exchange {
                address,
                source: io::Error::new(io::ErrorKind::NotConnected, "no connection"),
            });
        };
        let exchange = async {
            write_message(stream, request).await?;
            read_message::<WireResponse>(stream).await?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before answer",
                )
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(source)) => Err(CallError::Exchange { address, source }),
            Err(_) => Err(CallError::Timeout { address, timeout }),
        }
    }
}
