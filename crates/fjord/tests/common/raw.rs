//! A minimal blocking Kafka protocol client over `std::net::TcpStream`, for
//! sending exactly the bytes a test wants (including malformed ones).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Read and write timeout of raw connections.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response the tests accept.
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A raw protocol connection.
pub(crate) struct RawConnection {
    stream: TcpStream,
    correlation_id: i32,
}

/// How a connection ended when the test expected it to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// A complete frame (without the size prefix).
    Frame(Bytes),
    /// The peer closed the connection (EOF or reset).
    Closed,
}

impl RawConnection {
    /// Connects with bounded timeouts.
    pub(crate) fn connect(address: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&address, IO_TIMEOUT).expect("connect to broker");
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("write timeout");
        stream.set_nodelay(true).expect("nodelay");
        RawConnection {
            stream,
            correlation_id: 1,
        }
    }

    /// Writes raw bytes. A broken pipe / reset is returned, not a panic: the
    /// broker may legitimately close while we are still writing garbage.
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Writes a size-prefixed frame with `body`.
    pub(crate) fn write_frame(&mut self, body: &[u8]) -> std::io::Result<()> {
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(body);
        self.write_raw(&frame)
    }

    /// Half-closes the write side, so the broker sees EOF.
    pub(crate) fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads one frame, or reports that the broker closed the connection.
    /// Panics if nothing happens within the I/O timeout.
    pub(crate) fn read_frame(&mut self) -> ReadOutcome {
        let mut size = [0u8; 4];
        match read_exact_or_closed(&mut self.stream, &mut size) {
            Some(()) => {}
            None => return ReadOutcome::Closed,
        }
        let size = i32::from_be_bytes(size);
        assert!(
            size >= 4 && (size as usize) <= RESPONSE_BYTES_MAX,
            "broker sent an implausible response size {size}"
        );
        let mut body = vec![0u8; size as usize];
        match read_exact_or_closed(&mut self.stream, &mut body) {
            Some(()) => ReadOutcome::Frame(Bytes::from(body)),
            None => panic!("broker closed the connection in the middle of a {size}-byte response"),
        }
    }

    /// Asserts that the broker closes the connection (EOF or reset) within
    /// the timeout, draining (and ignoring nothing: any response is a failure).
    pub(crate) fn assert_closed(&mut self, context: &str) {
        match self.read_frame() {
            ReadOutcome::Closed => {}
            ReadOutcome::Frame(frame) => panic!(
                "{context}: expected the broker to close the connection, got a {}-byte response {:02x?}",
                frame.len(),
                &frame[..frame.len().min(64)]
            ),
        }
    }

    /// Next correlation id.
    pub(crate) fn next_correlation_id(&mut self) -> i32 {
        self.correlation_id += 1;
        self.correlation_id
    }

    /// Encodes the request header (in the header version that `R` at
    /// `version` uses) and the body into one frame body.
    pub(crate) fn encode_request<R: Request>(
        request: &R,
        version: i16,
        correlation_id: i32,
    ) -> BytesMut {
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("fjord-it-raw")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, R::header_version(version))
            .expect("encode request header");
        request
            .encode(&mut buf, version)
            .expect("encode request body");
        buf
    }

    /// Sends `request` at `version` and decodes the response; panics if the
    /// broker closes the connection instead of answering.
    pub(crate) fn request<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        let correlation_id = self.next_correlation_id();
        let body = Self::encode_request(request, version, correlation_id);
        self.write_frame(&body).expect("send request");
        let frame = match self.read_frame() {
            ReadOutcome::Frame(frame) => frame,
            ReadOutcome::Closed => panic!(
                "broker closed the connection instead of answering api key {} v{version}",
                R::KEY
            ),
        };
        let mut frame = frame;
        let header = ResponseHeader::decode(
            &mut frame,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .expect("decode response header");
        assert_eq!(
            header.correlation_id, correlation_id,
            "response correlation id"
        );
        let response =
            <R::Response as Decodable>::decode(&mut frame, version).unwrap_or_else(|err| {
                panic!("decode response to api key {} v{version}: {err:#}", R::KEY)
            });
        assert!(
            frame.is_empty(),
            "{} bytes left over after decoding response to api key {} v{version}",
            frame.len(),
            R::KEY
        );
        response
    }
}

/// Fills `buf` completely; `None` when the peer closed (EOF or reset).
/// Panics on timeout: the broker neither answered nor closed.
fn read_exact_or_closed(stream: &mut TcpStream, buf: &mut [u8]) -> Option<()> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return None,
            Ok(n) => filled += n,
            Err(err)
                if matches!(
                    err.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::BrokenPipe
                ) =>
            {
                return None
            }
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("broker neither answered nor closed the connection within {IO_TIMEOUT:?}")
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => panic!("read from broker: {err}"),
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(1),
            "read deadline passed"
        );
    }
    Some(())
}

/// Metadata v12 for `topics` (`None`: every topic) over a fresh connection, never creating
/// topics.
#[allow(dead_code)]
pub(crate) fn metadata_v12(
    address: SocketAddr,
    topics: Option<&[&str]>,
) -> kafka_protocol::messages::MetadataResponse {
    let request = kafka_protocol::messages::MetadataRequest::default()
        .with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| {
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(topic_name(n)))
                })
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    RawConnection::connect(address).request(&request, 12)
}

/// A topic name for requests.
pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Encodes exactly one v2 record batch (uncompressed) with `count` records whose
/// values are `value_len` bytes each.
pub(crate) fn encode_batch(count: usize, value_len: usize, timestamp_ms: i64) -> BytesMut {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol starts a new batch whenever offset - sequence changes;
            // with no producer id the batch's base sequence stays -1.
            sequence: i as i32 - 1,
            timestamp: timestamp_ms + i as i64,
            key: Some(Bytes::from(format!("raw-key-{i}"))),
            value: Some(Bytes::from(vec![b'v'; value_len])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode record batch");
    buf
}

/// Encodes one v2 record batch (uncompressed, no producer id) with these values, no keys.
#[allow(dead_code)]
pub(crate) fn encode_values(values: &[Vec<u8>], timestamp_ms: i64) -> BytesMut {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: timestamp_ms,
            key: None,
            value: Some(Bytes::from(value.clone())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode record batch");
    buf
}

/// A consumer-style Fetch of partition 0 of `topic` from `offset` (up to 1 MiB).
pub(crate) fn fetch_request(topic: &str, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])])
}
