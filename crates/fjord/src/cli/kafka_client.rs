//! A small blocking Kafka protocol client for the tools whose calls
//! librdkafka (and so the `rdkafka` crate) has no API for: `fjord
//! transactions` (ListTransactions, DescribeTransactions, DescribeProducers,
//! WriteTxnMarkers), `fjord leader-election` (ElectLeaders) and `fjord
//! reassign-partitions` (AlterPartitionReassignments,
//! ListPartitionReassignments). It speaks the protocol itself, with the
//! `kafka-protocol` crate's codecs:
//!
//! ```text
//! connect ──► ApiVersions v3 ──► pick a version per API within both ranges
//!         ──► [size][RequestHeader][body] ──► [size][ResponseHeader][body]
//! ```
//!
//! One connection per broker, opened on first use and kept for the run;
//! requests are sent one at a time, so responses arrive in order. Every
//! connect, read and write has a timeout, and a response larger than
//! [`RESPONSE_BYTES_MAX`] is refused. PLAINTEXT only: no TLS, no SASL.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::ops::RangeInclusive;

use anyhow::{bail, ensure, Context};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FindCoordinatorRequest, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;

use crate::cli::common::{ClientSettings, ConnectionArgs, ADMIN_TIMEOUT, CONNECT_TIMEOUT};

/// The bootstrap servers for a tool on this client, from `--bootstrap-server`
/// or `bootstrap.servers` in the `--command-config` file. Refuses any
/// `security.protocol` but PLAINTEXT, which is all this client speaks.
pub(crate) fn bootstrap(conn: &ConnectionArgs, tool: &str) -> anyhow::Result<String> {
    let settings = ClientSettings::from_connection(conn)?;
    if let Some(protocol) = settings.get("security.protocol") {
        ensure!(
            protocol.eq_ignore_ascii_case("plaintext"),
            "security.protocol={protocol} is not supported by {tool}, which speaks PLAINTEXT only"
        );
    }
    Ok(settings.bootstrap(conn.bootstrap_server.as_deref()))
}

/// Largest response accepted (Kafka's default `socket.request.max.bytes`).
const RESPONSE_BYTES_MAX: usize = 100 * 1024 * 1024;

/// FindCoordinator's key type for transactional ids.
const COORDINATOR_KEY_TYPE_TRANSACTION: i8 = 1;

/// A broker's error code as Kafka names it (`TRANSACTIONAL_ID_NOT_FOUND`).
pub(crate) fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(code)) => format!("UNKNOWN_ERROR_CODE_{code}"),
        Some(error) => screaming_snake(&format!("{error:?}")),
    }
}

/// `TransactionalIdNotFound` -> `TRANSACTIONAL_ID_NOT_FOUND`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// A topic name for requests.
pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// One broker connection and the API versions that broker serves.
struct Connection {
    address: String,
    /// The client id the broker sees in its logs (the tool's name).
    client_id: &'static str,
    stream: TcpStream,
    correlation_id: i32,
    /// api key -> (min, max) served by the broker.
    versions: BTreeMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects with bounded timeouts and asks for the broker's versions.
    fn open(address: &str, client_id: &'static str) -> anyhow::Result<Self> {
        let socket = address
            .to_socket_addrs()
            .with_context(|| format!("resolving {address}"))?
            .next()
            .with_context(|| format!("no address for {address}"))?;
        let stream = TcpStream::connect_timeout(&socket, CONNECT_TIMEOUT)
            .with_context(|| format!("connecting to {address}"))?;
        // Markers are answered only once durable, so reads may take as long
        // as an admin operation; writes of small requests never should.
        stream.set_read_timeout(Some(ADMIN_TIMEOUT))?;
        stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut connection = Connection {
            address: address.to_string(),
            client_id,
            stream,
            correlation_id: 0,
            versions: BTreeMap::new(),
        };
        // v3 is the first flexible version; every broker with the
        // transaction admin APIs (Kafka 3.0+) serves it.
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("fjord"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response = connection
            .send(&request, 3)
            .with_context(|| format!("ApiVersions to {address}"))?;
        ensure!(
            response.error_code == 0,
            "ApiVersions to {address}: {}",
            error_name(response.error_code)
        );
        connection.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(connection)
    }

    /// The newest version both this tool (`ours`) and the broker speak.
    fn version(&self, key: ApiKey, ours: RangeInclusive<i16>) -> anyhow::Result<i16> {
        pick_version(key, ours, self.versions.get(&(key as i16)).copied())
            .with_context(|| format!("broker {}", self.address))
    }

    /// Sends one request at `version` and decodes its response.
    fn send<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<R::Response> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        let mut frame = vec![0u8; 4];
        header.encode(&mut frame, R::header_version(version))?;
        request.encode(&mut frame, version)?;
        let size = i32::try_from(frame.len() - 4).context("request too large")?;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        let api = api_name(R::KEY);
        self.stream
            .write_all(&frame)
            .and_then(|()| self.stream.flush())
            .with_context(|| format!("sending {api} to {}", self.address))?;

        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .with_context(|| format!("reading the {api} response from {}", self.address))?;
        let size = i32::from_be_bytes(size);
        ensure!(
            size >= 4 && size as usize <= RESPONSE_BYTES_MAX,
            "{} sent an implausible {api} response size {size}",
            self.address
        );
        let mut body = vec![0u8; size as usize];
        self.stream
            .read_exact(&mut body)
            .with_context(|| format!("reading the {api} response from {}", self.address))?;
        let mut buf = body.as_slice();
        let header = ResponseHeader::decode(
            &mut buf,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .with_context(|| format!("decoding the {api} response header"))?;
        ensure!(
            header.correlation_id == correlation_id,
            "{} answered correlation id {} to request {correlation_id}",
            self.address,
            header.correlation_id
        );
        <R::Response as Decodable>::decode(&mut buf, version)
            .with_context(|| format!("decoding the {api} v{version} response"))
    }
}

/// The newest version in both `ours` and the broker's range.
fn pick_version(
    key: ApiKey,
    ours: RangeInclusive<i16>,
    theirs: Option<(i16, i16)>,
) -> anyhow::Result<i16> {
    let api = api_name(key as i16);
    let Some((min, max)) = theirs else {
        bail!("the broker does not support {api}");
    };
    let high = max.min(*ours.end());
    let low = min.max(*ours.start());
    ensure!(
        low <= high,
        "the broker serves {api} v{min}-{max}, this tool speaks v{}-{}",
        ours.start(),
        ours.end()
    );
    Ok(high)
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|()| format!("api key {key}"), |k| format!("{k:?}"))
}

/// The cluster as this tool sees it: connections by broker, opened lazily,
/// and the last metadata answer for broker addresses and partition leaders.
pub(crate) struct Cluster {
    client_id: &'static str,
    bootstrap: Vec<String>,
    connections: BTreeMap<String, Connection>,
    brokers: BTreeMap<i32, String>,
}

/// Where a partition lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionInfo {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) leader: i32,
    pub(crate) replicas: Vec<i32>,
    pub(crate) isr: Vec<i32>,
}

impl Cluster {
    /// Prepares connections to `bootstrap` (`host:port[,host:port...]`) for
    /// the tool named `client_id`; nothing is opened yet.
    pub(crate) fn new(bootstrap: &str, client_id: &'static str) -> anyhow::Result<Self> {
        let bootstrap: Vec<String> = bootstrap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        ensure!(!bootstrap.is_empty(), "--bootstrap-server is empty");
        Ok(Cluster {
            client_id,
            bootstrap,
            connections: BTreeMap::new(),
            brokers: BTreeMap::new(),
        })
    }

    fn connection(&mut self, address: &str) -> anyhow::Result<&mut Connection> {
        if !self.connections.contains_key(address) {
            let connection = Connection::open(address, self.client_id)?;
            self.connections.insert(address.to_string(), connection);
        }
        Ok(self
            .connections
            .get_mut(address)
            .expect("inserted just above"))
    }

    /// The first bootstrap server that answers.
    fn any(&mut self) -> anyhow::Result<&mut Connection> {
        let mut failures = Vec::new();
        let mut reached = None;
        for address in self.bootstrap.clone() {
            match self.connection(&address) {
                Ok(_) => {
                    reached = Some(address);
                    break;
                }
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        match reached {
            Some(address) => self.connection(&address),
            None => bail!(
                "could not reach the cluster at {}: {}",
                self.bootstrap.join(","),
                failures.join("; ")
            ),
        }
    }

    /// A connection to broker `node_id` (its address from metadata).
    fn node(&mut self, node_id: i32) -> anyhow::Result<&mut Connection> {
        if !self.brokers.contains_key(&node_id) {
            self.metadata(Some(&[]))?;
        }
        let Some(address) = self.brokers.get(&node_id).cloned() else {
            bail!("broker {node_id} is not in the cluster metadata");
        };
        self.connection(&address)
    }

    /// Sends `request` to broker `node_id` at the newest common version in `ours`.
    pub(crate) fn send_to<R: Request>(
        &mut self,
        node_id: i32,
        key: ApiKey,
        ours: RangeInclusive<i16>,
        request: &R,
    ) -> anyhow::Result<R::Response> {
        let connection = self.node(node_id)?;
        let version = connection.version(key, ours)?;
        connection.send(request, version)
    }

    /// Metadata for `topics` (`None`: every topic; `Some(&[])`: brokers
    /// only), remembering broker addresses.
    pub(crate) fn metadata(&mut self, topics: Option<&[&str]>) -> anyhow::Result<MetadataResponse> {
        let connection = self.any()?;
        let version = connection.version(ApiKey::Metadata, 1..=12)?;
        let mut request = MetadataRequest::default().with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect()
        }));
        if version >= 4 {
            request = request.with_allow_auto_topic_creation(false);
        }
        let response = connection.send(&request, version)?;
        for b in &response.brokers {
            self.brokers
                .insert(b.node_id.0, format!("{}:{}", b.host.as_str(), b.port));
        }
        Ok(response)
    }

    /// Sends `request` to the controller the cluster names in its metadata (a
    /// KRaft broker names itself or another broker, which forwards admin
    /// requests to the active controller), at the newest common version in
    /// `ours`.
    pub(crate) fn send_to_controller<R: Request>(
        &mut self,
        key: ApiKey,
        ours: RangeInclusive<i16>,
        request: &R,
    ) -> anyhow::Result<R::Response> {
        let controller = self.metadata(Some(&[]))?.controller_id.0;
        ensure!(controller >= 0, "the cluster names no controller");
        self.send_to(controller, key, ours, request)
    }

    /// Every broker id in the cluster.
    pub(crate) fn broker_ids(&mut self) -> anyhow::Result<Vec<i32>> {
        let response = self.metadata(Some(&[]))?;
        let mut ids: Vec<i32> = response.brokers.iter().map(|b| b.node_id.0).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Leaders and replicas of the partitions of `topics` (`None`: all
    /// topics), sorted; a topic the broker reports an error for is an error.
    pub(crate) fn partitions(
        &mut self,
        topics: Option<&[&str]>,
    ) -> anyhow::Result<Vec<PartitionInfo>> {
        let response = self.metadata(topics)?;
        let mut out = Vec::new();
        for t in &response.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            ensure!(
                t.error_code == 0,
                "topic {name}: {}",
                error_name(t.error_code)
            );
            for p in &t.partitions {
                out.push(PartitionInfo {
                    topic: name.clone(),
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    replicas: p.replica_nodes.iter().map(|r| r.0).collect(),
                    isr: p.isr_nodes.iter().map(|r| r.0).collect(),
                });
            }
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// The leader of one partition; an unknown topic or partition is an error.
    pub(crate) fn leader(&mut self, topic: &str, partition: i32) -> anyhow::Result<i32> {
        let partitions = self.partitions(Some(&[topic]))?;
        let Some(p) = partitions.iter().find(|p| p.partition == partition) else {
            bail!("topic {topic} has no partition {partition}");
        };
        ensure!(p.leader >= 0, "{topic}-{partition} has no leader");
        Ok(p.leader)
    }

    /// The transaction coordinator of `transactional_id`.
    pub(crate) fn transaction_coordinator(
        &mut self,
        transactional_id: &str,
    ) -> anyhow::Result<i32> {
        let connection = self.any()?;
        let version = connection.version(ApiKey::FindCoordinator, 1..=4)?;
        let key = StrBytes::from_string(transactional_id.to_string());
        let request = if version >= 4 {
            FindCoordinatorRequest::default()
                .with_key_type(COORDINATOR_KEY_TYPE_TRANSACTION)
                .with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default()
                .with_key_type(COORDINATOR_KEY_TYPE_TRANSACTION)
                .with_key(key)
        };
        let response = connection.send(&request, version)?;
        let (error_code, message, node_id, host, port) = if version >= 4 {
            let Some(c) = response.coordinators.first() else {
                bail!("FindCoordinator answered without a coordinator");
            };
            (
                c.error_code,
                c.error_message.clone(),
                c.node_id.0,
                c.host.to_string(),
                c.port,
            )
        } else {
            (
                response.error_code,
                response.error_message.clone(),
                response.node_id.0,
                response.host.to_string(),
                response.port,
            )
        };
        if error_code != 0 {
            let detail = message
                .map(|m| format!(": {}", m.as_str()))
                .unwrap_or_default();
            bail!(
                "finding the coordinator of transactional id {transactional_id:?}: {}{detail}",
                error_name(error_code)
            );
        }
        self.brokers.insert(node_id, format!("{host}:{port}"));
        Ok(node_id)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn error_names_follow_kafka() {
        assert_eq!(error_name(105), "TRANSACTIONAL_ID_NOT_FOUND");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(30000), "UNKNOWN_ERROR_CODE_30000");
    }

    #[test]
    fn versions_are_picked_within_both_ranges() {
        let key = ApiKey::ListTransactions;
        assert_eq!(pick_version(key, 0..=1, Some((0, 2))).unwrap(), 1);
        assert_eq!(pick_version(key, 0..=1, Some((0, 0))).unwrap(), 0);
        assert_eq!(pick_version(key, 1..=1, Some((0, 1))).unwrap(), 1);
        let err = pick_version(key, 1..=1, Some((0, 0))).unwrap_err();
        assert!(err.to_string().contains("ListTransactions v0-0"), "{err}");
        assert!(pick_version(key, 0..=1, None).is_err());
    }

    #[test]
    fn requests_are_framed_with_their_header() {
        // A connection over a local listener that echoes nothing: only the
        // encoded frame is checked, by reading what the client wrote.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let stream = TcpStream::connect(address).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut connection = Connection {
            address: address.to_string(),
            client_id: "fjord-test",
            stream,
            correlation_id: 6,
            versions: BTreeMap::new(),
        };
        let request = kafka_protocol::messages::DescribeTransactionsRequest::default();
        assert!(connection.send(&request, 0).is_err(), "nobody answers");
        let mut size = [0u8; 4];
        server.read_exact(&mut size).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        server.read_exact(&mut body).unwrap();
        let mut buf = body.as_slice();
        let header = RequestHeader::decode(&mut buf, 2).unwrap();
        assert_eq!(header.request_api_key, ApiKey::DescribeTransactions as i16);
        assert_eq!(header.request_api_version, 0);
        assert_eq!(header.correlation_id, 7);
        assert_eq!(header.client_id.as_deref(), Some("fjord-test"));
    }
}
