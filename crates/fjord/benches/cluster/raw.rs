//! A minimal blocking Kafka protocol client for the requests the cluster benchmarks time
//! exactly: Metadata from one chosen broker (librdkafka picks its own), and CreateTopics and
//! DeleteTopics without a client's own metadata round trips in front of them.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DeleteTopicsRequest, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;

/// Connect, read and write timeout of every request.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long CreateTopics and DeleteTopics may take on the broker.
const ADMIN_TIMEOUT_MS: i32 = 60_000;

/// Largest response accepted.
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// One connection to one broker; requests are sent one at a time.
pub(crate) struct Connection {
    stream: TcpStream,
    correlation_id: i32,
}

impl Connection {
    /// Connects with bounded timeouts.
    pub(crate) fn connect(address: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect_timeout(&address, IO_TIMEOUT)
            .with_context(|| format!("connect to {address}"))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            correlation_id: 0,
        })
    }

    /// Sends `request` at `version` and decodes the answer.
    pub(crate) fn request<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("fjord-cluster-bench")));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version))?;
        request.encode(&mut body, version)?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size);
        ensure!(
            size >= 4 && (size as usize) <= RESPONSE_BYTES_MAX,
            "implausible response size {size}"
        );
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body)?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(
            &mut body,
            <R::Response as HeaderVersion>::header_version(version),
        )?;
        ensure!(
            header.correlation_id == self.correlation_id,
            "response to correlation id {} instead of {}",
            header.correlation_id,
            self.correlation_id
        );
        <R::Response as Decodable>::decode(&mut body, version)
    }

    /// Metadata of `topics` (no topic: only brokers and the controller), without creating
    /// missing topics.
    pub(crate) fn metadata(&mut self, topics: &[&str]) -> Result<MetadataResponse> {
        let request = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name))))
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        self.request(&request, 12)
    }

    /// Creates `topic`: `partitions` partitions of `replication_factor` replicas placed by the
    /// controller, or exactly `assignment` (replica lists, preferred leader first).
    pub(crate) fn create_topic(
        &mut self,
        topic: &str,
        partitions: i32,
        replication_factor: i16,
        assignment: Option<&[Vec<i32>]>,
    ) -> Result<()> {
        let mut creatable = CreatableTopic::default().with_name(topic_name(topic));
        match assignment {
            Some(lists) => {
                creatable = creatable
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
                    .with_assignments(
                        lists
                            .iter()
                            .enumerate()
                            .map(|(index, replicas)| {
                                CreatableReplicaAssignment::default()
                                    .with_partition_index(index as i32)
                                    .with_broker_ids(
                                        replicas.iter().map(|&b| BrokerId(b)).collect(),
                                    )
                            })
                            .collect(),
                    );
            }
            None => {
                creatable = creatable
                    .with_num_partitions(partitions)
                    .with_replication_factor(replication_factor);
            }
        }
        let request = CreateTopicsRequest::default()
            .with_topics(vec![creatable])
            .with_timeout_ms(ADMIN_TIMEOUT_MS);
        let response = self.request(&request, 7)?;
        let result = response.topics.first().context("no CreateTopics result")?;
        if result.error_code != 0 {
            bail!(
                "CreateTopics {topic}: {:?} {:?}",
                ResponseError::try_from_code(result.error_code),
                result.error_message
            );
        }
        Ok(())
    }

    /// Deletes `topic`.
    pub(crate) fn delete_topic(&mut self, topic: &str) -> Result<()> {
        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name(topic)])
            .with_timeout_ms(ADMIN_TIMEOUT_MS);
        let response = self.request(&request, 5)?;
        let result = response
            .responses
            .first()
            .context("no DeleteTopics result")?;
        if result.error_code != 0 {
            bail!(
                "DeleteTopics {topic}: {:?}",
                ResponseError::try_from_code(result.error_code)
            );
        }
        Ok(())
    }
}

/// One partition as a broker's Metadata shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionView {
    pub(crate) partition: i32,
    pub(crate) leader: i32,
    pub(crate) replicas: Vec<i32>,
    pub(crate) isr: BTreeSet<i32>,
}

/// The partitions of `topic` in one broker's answer; empty while it does not know the topic.
pub(crate) fn partitions(response: &MetadataResponse, topic: &str) -> Vec<PartitionView> {
    response
        .topics
        .iter()
        .filter(|t| t.error_code == 0 && t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .flat_map(|t| &t.partitions)
        .map(|p| PartitionView {
            partition: p.partition_index,
            leader: p.leader_id.0,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
        })
        .collect()
}

/// Metadata of `topic` from the broker at `address` on a fresh connection.
pub(crate) fn topic_view(address: SocketAddr, topic: &str) -> Result<Vec<PartitionView>> {
    let response = Connection::connect(address)?.metadata(&[topic])?;
    Ok(partitions(&response, topic))
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}
