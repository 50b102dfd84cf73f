//! Kafka error codes for invalid requests, sent as raw protocol messages so
//! the exact code is visible (clients would retry or hide some of them).

mod common;

use bytes::Bytes;
use common::raw::{self, fetch_request, RawConnection};
use common::*;
use fjord_testkit::BrokerProcess;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, MetadataRequest, ProduceRequest, ProduceResponse,
};
use kafka_protocol::records::RecordBatchDecoder;

const TOPIC: &str = "errors";
const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const CORRUPT_MESSAGE: i16 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_REQUIRED_ACKS: i16 = 21;
const INVALID_REQUEST: i16 = 42;

fn produce_request(topic: &str, acks: i16, batch: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(raw::topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])])
}

fn partition_result(response: &ProduceResponse) -> (i16, i64) {
    assert_eq!(response.responses.len(), 1, "one topic in the response");
    assert_eq!(
        response.responses[0].partition_responses.len(),
        1,
        "one partition in the response"
    );
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.index, 0);
    (partition.error_code, partition.base_offset)
}

/// A broker with a one-partition topic holding 10 records (offsets 0..10).
fn broker_with_topic(overrides: &[(&str, &str)]) -> BrokerProcess {
    let broker = start_broker(overrides);
    create_topic(&broker.bootstrap(), TOPIC, 1);
    let mut connection = RawConnection::connect(broker.address());
    let response = connection.request(
        &produce_request(TOPIC, -1, raw::encode_batch(10, 10, now_ms()).freeze()),
        9,
    );
    assert_eq!(partition_result(&response), (NONE, 0), "valid raw produce");
    broker
}

#[test]
fn given_batch_with_corrupted_crc_when_producing_should_answer_corrupt_message() {
    let broker = broker_with_topic(&[]);
    let mut connection = RawConnection::connect(broker.address());
    for (version, flip_at) in [(9, 0), (3, 1), (7, 30)] {
        let mut batch = raw::encode_batch(3, 50, now_ms());
        // flip_at 0: the last byte (record data); 1: the CRC itself; 30: firstTimestamp.
        let position = match flip_at {
            0 => batch.len() - 1,
            1 => 18,
            other => other,
        };
        batch[position] ^= 0x5A;
        let response = connection.request(&produce_request(TOPIC, 1, batch.freeze()), version);
        assert_eq!(
            partition_result(&response).0,
            CORRUPT_MESSAGE,
            "Produce v{version}, byte {position} flipped"
        );
    }
    // A batch whose length field disagrees with the bytes sent.
    let mut batch = raw::encode_batch(2, 20, now_ms());
    let len = batch.len();
    batch.truncate(len - 5);
    let response = connection.request(&produce_request(TOPIC, 1, batch.freeze()), 9);
    assert_eq!(
        partition_result(&response).0,
        CORRUPT_MESSAGE,
        "truncated batch"
    );

    assert_eq!(
        watermarks(&broker.bootstrap(), TOPIC, 0),
        (0, 10),
        "nothing corrupt was appended"
    );
    let response = connection.request(
        &produce_request(TOPIC, 1, raw::encode_batch(1, 5, now_ms()).freeze()),
        9,
    );
    assert_eq!(
        partition_result(&response),
        (NONE, 10),
        "the same connection keeps working"
    );
    assert_clients_work(&broker.bootstrap(), TOPIC);
}

#[test]
fn given_acks_5_when_producing_should_answer_invalid_required_acks() {
    let broker = broker_with_topic(&[]);
    let mut connection = RawConnection::connect(broker.address());
    for acks in [5, 2, -2] {
        let response = connection.request(
            &produce_request(TOPIC, acks, raw::encode_batch(1, 5, now_ms()).freeze()),
            9,
        );
        assert_eq!(
            partition_result(&response).0,
            INVALID_REQUIRED_ACKS,
            "acks={acks}"
        );
    }
    assert_eq!(
        watermarks(&broker.bootstrap(), TOPIC, 0),
        (0, 10),
        "nothing appended with invalid acks"
    );
    let response = connection.request(
        &produce_request(TOPIC, 1, raw::encode_batch(1, 5, now_ms()).freeze()),
        9,
    );
    assert_eq!(partition_result(&response), (NONE, 10));
    assert_clients_work(&broker.bootstrap(), TOPIC);
}

#[test]
fn given_batch_over_max_message_bytes_when_producing_should_answer_message_too_large() {
    let broker = broker_with_topic(&[("message.max.bytes", "10000")]);
    let mut connection = RawConnection::connect(broker.address());
    let big = raw::encode_batch(1, 20_000, now_ms());
    assert!(big.len() > 10_000);
    let response = connection.request(&produce_request(TOPIC, 1, big.freeze()), 9);
    assert_eq!(
        partition_result(&response).0,
        MESSAGE_TOO_LARGE,
        "20 kB batch with message.max.bytes=10000"
    );
    let fits = raw::encode_batch(1, 9_000, now_ms());
    assert!(fits.len() < 10_000);
    let response = connection.request(&produce_request(TOPIC, 1, fits.freeze()), 9);
    assert_eq!(partition_result(&response), (NONE, 10), "a 9 kB batch fits");
    assert_clients_work(&broker.bootstrap(), TOPIC);
}

#[test]
fn given_fetch_beyond_log_end_should_answer_offset_out_of_range() {
    let broker = broker_with_topic(&[]);
    let mut connection = RawConnection::connect(broker.address());
    for version in [4, 12] {
        let response = connection.request(&fetch_request(TOPIC, 1000), version);
        let partition = &response.responses[0].partitions[0];
        assert_eq!(
            partition.error_code, OFFSET_OUT_OF_RANGE,
            "Fetch v{version} at 1000"
        );
        let response = connection.request(&fetch_request(TOPIC, -5), version);
        assert_eq!(
            response.responses[0].partitions[0].error_code, OFFSET_OUT_OF_RANGE,
            "Fetch v{version} at -5"
        );

        // At exactly the log end: no error, no records, high watermark 10.
        let response = connection.request(&fetch_request(TOPIC, 10), version);
        let partition = &response.responses[0].partitions[0];
        assert_eq!(
            partition.error_code, NONE,
            "Fetch v{version} at the log end"
        );
        assert_eq!(partition.high_watermark, 10);
        assert!(
            partition.records.as_ref().is_none_or(|r| r.is_empty()),
            "no records at the log end"
        );

        // From 4: the stored batch with offsets 0..10 (batches are returned whole) or later.
        let response = connection.request(&fetch_request(TOPIC, 4), version);
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, NONE);
        let mut records = partition.records.clone().expect("records");
        assert!(records.len() >= 61, "a whole batch: {records:02x?}");
        let base_offset = i64::from_be_bytes(records[0..8].try_into().expect("8 bytes"));
        let record_count = i32::from_be_bytes(records[57..61].try_into().expect("4 bytes"));
        assert_eq!(
            (base_offset, record_count),
            (0, 10),
            "Fetch v{version} from 4 returns the stored batch (base offset, record count)"
        );
        let sets = RecordBatchDecoder::decode_all(&mut records).expect("decode fetched batches");
        let offsets: Vec<i64> = sets
            .iter()
            .flat_map(|s| s.records.iter().map(|r| r.offset))
            .collect();
        assert_eq!(
            offsets,
            (0..10).collect::<Vec<_>>(),
            "the whole stored batch"
        );
    }
    assert_clients_work(&broker.bootstrap(), TOPIC);
}

/// Names Kafka refuses: bad characters, "." and "..", longer than 249.
fn invalid_names() -> Vec<String> {
    vec![
        "bad name".to_string(),
        "slash/topic".to_string(),
        "..".to_string(),
        ".".to_string(),
        "ünïcode".to_string(),
        "n".repeat(250),
    ]
}

#[test]
fn given_invalid_topic_names_when_requesting_metadata_should_answer_invalid_topic() {
    let broker = start_broker(&[("auto.create.topics.enable", "true")]);
    let mut connection = RawConnection::connect(broker.address());
    for name in invalid_names() {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(raw::topic_name(&name)))
            ]))
            .with_allow_auto_topic_creation(true);
        let response = connection.request(&request, 12);
        assert_eq!(response.topics.len(), 1);
        assert_eq!(
            response.topics[0].error_code, INVALID_TOPIC_EXCEPTION,
            "Metadata for {name:?}"
        );
    }
    assert_clients_work(&broker.bootstrap(), "valid.name_with-all-chars.09");
}

#[test]
fn given_invalid_topic_names_when_producing_should_answer_invalid_topic() {
    let broker = start_broker(&[("auto.create.topics.enable", "true")]);
    let mut connection = RawConnection::connect(broker.address());
    let mut codes = Vec::new();
    for name in invalid_names() {
        let response = connection.request(
            &produce_request(&name, 1, raw::encode_batch(1, 5, now_ms()).freeze()),
            9,
        );
        codes.push((name, partition_result(&response).0));
    }
    let expected: Vec<(String, i16)> = invalid_names()
        .into_iter()
        .map(|name| (name, INVALID_TOPIC_EXCEPTION))
        .collect();
    assert_eq!(codes, expected, "Produce error code per invalid topic name");
    assert_clients_work(&broker.bootstrap(), "valid.name_with-all-chars.09");
}

#[test]
fn given_explicit_replica_assignment_when_creating_topic_should_answer_invalid_request() {
    let broker = start_broker(&[]);
    let mut connection = RawConnection::connect(broker.address());
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(raw::topic_name("assigned"))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(0)])])]);
    let response = connection.request(&request, 7);
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].error_code, INVALID_REQUEST);
    assert_eq!(
        partition_count(&broker.bootstrap(), "assigned"),
        Err(rdkafka::error::RDKafkaErrorCode::UnknownTopicOrPartition)
    );

    // Replication factor 3 on one node, and 0 partitions, via the raw request.
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(raw::topic_name("rf3"))
                .with_num_partitions(1)
                .with_replication_factor(3),
            CreatableTopic::default()
                .with_name(raw::topic_name("p0"))
                .with_num_partitions(0)
                .with_replication_factor(1),
            CreatableTopic::default()
                .with_name(raw::topic_name("ok"))
                .with_num_partitions(2)
                .with_replication_factor(1),
        ]);
    let response = connection.request(&request, 7);
    let codes: Vec<(String, i16)> = response
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![("rf3".into(), 38), ("p0".into(), 37), ("ok".into(), 0)]
    );
    let ok = &response.topics[2];
    assert_eq!(
        (ok.num_partitions, ok.replication_factor),
        (2, 1),
        "CreateTopics v7 reports the result"
    );
}
