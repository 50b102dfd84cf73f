//! Requests from this broker to another one over the Kafka protocol, on the other broker's
//! `inter.broker.listener.name` endpoint: the transaction coordinator's WriteTxnMarkers to
//! partitions led elsewhere, and followers' Fetch and OffsetForLeaderEpoch to their leaders
//! (through a client of their own, so long-polling fetches never delay a marker).
//!
//! One connection per peer address, opened on first use and reopened after any failure;
//! requests on it are sent one at a time, each bounded by the request timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use fjord_controller::MetadataImage;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ProducerId, RequestHeader, ResponseHeader, TopicName, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The WriteTxnMarkers version Fjord brokers serve.
const WRITE_TXN_MARKERS_VERSION: i16 = 1;

/// Largest response accepted from a peer.
const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Why a request to another broker failed.
#[derive(Debug, thiserror::Error)]
pub enum InterBrokerError {
    /// The broker is not registered or has no endpoint for the inter-broker listener.
    #[error("broker {broker_id} has no {listener} endpoint")]
    NoEndpoint {
        /// The peer.
        broker_id: i32,
        /// `inter.broker.listener.name`.
        listener: String,
    },
    /// Connecting, writing or reading failed.
    #[error("{address}: {source}")]
    Io {
        /// The peer's address.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// No answer within the request timeout.
    #[error("{address}: no answer within {timeout:?}")]
    Timeout {
        /// The peer's address.
        address: String,
        /// The limit.
        timeout: Duration,
    },
    /// The request or the answer did not encode or decode.
    #[error("{address}: {message}")]
    Codec {
        /// The peer's address.
        address: String,
        /// What failed.
        message: String,
    },
    /// The peer answered with a Kafka error code.
    #[error("broker {broker_id} answered error code {code}")]
    Refused {
        /// The peer.
        broker_id: i32,
        /// Kafka's code.
        code: i16,
    },
}

type Slot = Arc<tokio::sync::Mutex<Option<TcpStream>>>;

/// Connections to the other brokers.
#[derive(Debug)]
pub struct InterBrokerClient {
    node_id: i32,
    listener: String,
    timeout: Duration,
    connections: Mutex<HashMap<String, Slot>>,
    correlation_id: AtomicI32,
}

impl InterBrokerClient {
    /// A client for broker `node_id` reaching peers on `listener`.
    pub fn new(node_id: i32, listener: String, timeout: Duration) -> InterBrokerClient {
        InterBrokerClient {
            node_id,
            listener,
            timeout,
            connections: Mutex::new(HashMap::new()),
            correlation_id: AtomicI32::new(0),
        }
    }

    /// `host:port` of `broker_id`'s inter-broker listener in `image`.
    pub fn endpoint(
        &self,
        image: &MetadataImage,
        broker_id: i32,
    ) -> Result<String, InterBrokerError> {
        image
            .broker(broker_id)
            .and_then(|b| b.listeners.iter().find(|l| l.name == self.listener))
            .map(|l| {
                if l.host.contains(':') {
                    format!("[{}]:{}", l.host, l.port)
                } else {
                    format!("{}:{}", l.host, l.port)
                }
            })
            .ok_or_else(|| InterBrokerError::NoEndpoint {
                broker_id,
                listener: self.listener.clone(),
            })
    }

    /// Asks `broker_id` (the partition's leader) to write one commit or abort marker to
    /// `topic`-`partition`; succeeds once the leader has it durable.
    pub async fn write_txn_marker(
        &self,
        image: &MetadataImage,
        broker_id: i32,
        topic: &str,
        partition: i32,
        spec: crate::txn_runtime::MarkerSpec,
    ) -> Result<(), InterBrokerError> {
        let address = self.endpoint(image, broker_id)?;
        let mut marker = WritableTxnMarker::default();
        marker.producer_id = ProducerId(spec.producer_id);
        marker.producer_epoch = spec.producer_epoch;
        marker.transaction_result = spec.commit;
        marker.coordinator_epoch = spec.coordinator_epoch;
        let mut t = WritableTxnMarkerTopic::default();
        t.name = TopicName(StrBytes::from_string(topic.to_string()));
        t.partition_indexes = vec![partition];
        marker.topics = vec![t];
        let mut request = WriteTxnMarkersRequest::default();
        request.markers = vec![marker];
        let response: WriteTxnMarkersResponse = self
            .call(&address, &request, WRITE_TXN_MARKERS_VERSION)
            .await?;
        let code = response
            .markers
            .first()
            .and_then(|m| m.topics.first())
            .and_then(|t| t.partitions.first())
            .map(|p| p.error_code)
            .ok_or_else(|| InterBrokerError::Codec {
                address: address.clone(),
                message: "WriteTxnMarkers answer without the partition".into(),
            })?;
        if code != 0 {
            return Err(InterBrokerError::Refused { broker_id, code });
        }
        Ok(())
    }

    /// Sends `request` at `version` to `broker_id` (resolved in `image`) and returns its
    /// answer; per-item error codes are the caller's to read.
    pub async fn send<R: Request>(
        &self,
        image: &MetadataImage,
        broker_id: i32,
        request: &R,
        version: i16,
    ) -> Result<R::Response, InterBrokerError> {
        let address = self.endpoint(image, broker_id)?;
        self.call(&address, request, version).await
    }

    fn slot(&self, address: &str) -> Slot {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(address.to_string())
            .or_default()
            .clone()
    }

    /// Sends `request` at `version` and decodes the answer; a failed exchange drops the
    /// connection so the next call opens a fresh one.
    async fn call<R: Request>(
        &self,
        address: &str,
        request: &R,
        version: i16,
    ) -> Result<R::Response, InterBrokerError> {
        let slot = self.slot(address);
        let mut connection = slot.lock().await;
        let outcome = tokio::time::timeout(
            self.timeout,
            self.exchange(&mut connection, address, request, version),
        )
        .await
        .unwrap_or_else(|_| {
            Err(InterBrokerError::Timeout {
                address: address.to_string(),
                timeout: self.timeout,
            })
        });
        if outcome.is_err() {
            *connection = None;
        }
        outcome
    }

    async fn exchange<R: Request>(
        &self,
        connection: &mut Option<TcpStream>,
        address: &str,
        request: &R,
        version: i16,
    ) -> Result<R::Response, InterBrokerError> {
        let io = |source| InterBrokerError::Io {
            address: address.to_string(),
            source,
        };
        let codec = |message: String| InterBrokerError::Codec {
            address: address.to_string(),
            message,
        };
        if connection.is_none() {
            let stream = TcpStream::connect(address).await.map_err(io)?;
            let _ = stream.set_nodelay(true);
            *connection = Some(stream);
        }
        let Some(stream) = connection.as_mut() else {
            return Err(codec("no connection".into()));
        };
        let correlation_id = self.correlation_id.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(format!(
                "fjord-broker-{}",
                self.node_id
            ))));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .map_err(|e| codec(e.to_string()))?;
        request
            .encode(&mut body, version)
            .map_err(|e| codec(e.to_string()))?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&body);
        stream.write_all(&frame).await.map_err(io)?;
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).await.map_err(io)?;
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|s| (4..=RESPONSE_BYTES_MAX).contains(s))
            .ok_or_else(|| codec(format!("implausible response size {size}")))?;
        let mut answer = vec![0u8; size];
        stream.read_exact(&mut answer).await.map_err(io)?;
        let mut answer = bytes::Bytes::from(answer);
        let header = ResponseHeader::decode(
            &mut answer,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .map_err(|e| codec(e.to_string()))?;
        if header.correlation_id != correlation_id {
            return Err(codec(format!(
                "answer to correlation id {} instead of {correlation_id}",
                header.correlation_id
            )));
        }
        let response = <R::Response as Decodable>::decode(&mut answer, version)
            .map_err(|e| codec(e.to_string()))?;
        if answer.has_remaining() {
            return Err(codec(format!(
                "{} bytes after the answer",
                answer.remaining()
            )));
        }
        Ok(response)
    }
}
