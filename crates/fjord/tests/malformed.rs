//! Malformed input over raw TCP: oversized frames, truncated headers, random
//! bytes, unknown API keys and versions. Each must cost at most that one
//! connection; other connections and librdkafka clients keep working.

mod common;

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, BytesMut};
use common::raw::{RawConnection, ReadOutcome};
use common::*;
use fjord_testkit::BrokerProcess;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, StrBytes};

/// socket.request.max.bytes default.
const SOCKET_REQUEST_MAX_BYTES: i32 = 104_857_600;

/// API ranges Fjord advertises (api key -> (min, max)).
fn expected_ranges() -> BTreeMap<i16, (i16, i16)> {
    BTreeMap::from([
        (0, (0, 9)),  // Produce (v0-v2 advertised but refused, as Kafka 4 does)
        (1, (4, 12)), // Fetch
        (2, (1, 7)),  // ListOffsets
        (3, (0, 12)), // Metadata
        (8, (2, 9)),  // OffsetCommit
        (9, (1, 9)),  // OffsetFetch
        (10, (0, 4)), // FindCoordinator
        (11, (0, 9)), // JoinGroup
        (12, (0, 4)), // Heartbeat
        (13, (0, 5)), // LeaveGroup
        (14, (0, 5)), // SyncGroup
        (15, (0, 5)), // DescribeGroups
        (16, (0, 5)), // ListGroups
        (18, (0, 4)), // ApiVersions
        (19, (2, 7)), // CreateTopics
        (20, (1, 6)), // DeleteTopics
        (21, (0, 2)), // DeleteRecords
        (22, (0, 4)), // InitProducerId
        (23, (2, 4)), // OffsetForLeaderEpoch
        (24, (0, 3)), // AddPartitionsToTxn
        (25, (0, 3)), // AddOffsetsToTxn
        (26, (0, 3)), // EndTxn
        (27, (1, 1)), // WriteTxnMarkers
        (28, (0, 3)), // TxnOffsetCommit
        (32, (1, 4)), // DescribeConfigs
        (33, (0, 2)), // AlterConfigs
        (35, (0, 4)), // DescribeLogDirs (v0 is v1 on the wire)
        (37, (0, 3)), // CreatePartitions
        (42, (0, 2)), // DeleteGroups
        (43, (0, 2)), // ElectLeaders
        (44, (0, 1)), // IncrementalAlterConfigs
        (45, (0, 0)), // AlterPartitionReassignments
        (46, (0, 0)), // ListPartitionReassignments
        (47, (0, 0)), // OffsetDelete
        (60, (0, 1)), // DescribeCluster
        (61, (0, 0)), // DescribeProducers
        (65, (0, 0)), // DescribeTransactions
        (66, (0, 1)), // ListTransactions
    ])
}

fn assert_advertises_expected_ranges(response: &ApiVersionsResponse) {
    let advertised: BTreeMap<i16, (i16, i16)> = response
        .api_keys
        .iter()
        .map(|k| (k.api_key, (k.min_version, k.max_version)))
        .collect();
    assert_eq!(
        advertised.len(),
        response.api_keys.len(),
        "an api key listed twice"
    );
    for (key, range) in expected_ranges() {
        assert_eq!(
            advertised.get(&key),
            Some(&range),
            "advertised range of api key {key}"
        );
    }
    // Nothing beyond the table: an api advertised without being listed here is unserved
    // or untested.
    assert_eq!(advertised, expected_ranges(), "the advertised table");
}

/// An ApiVersions v3 round trip on an existing connection.
fn api_versions_v3(connection: &mut RawConnection) -> ApiVersionsResponse {
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("fjord-it"))
        .with_client_software_version(StrBytes::from_static_str("1.0"));
    connection.request(&request, 3)
}

/// After a malformed request on another connection: a connection opened
/// before it still works, new connections work, librdkafka works.
fn assert_broker_unaffected(broker: &BrokerProcess, bystander: &mut RawConnection, topic: &str) {
    assert_eq!(
        api_versions_v3(bystander).error_code,
        0,
        "connection opened before the bad one"
    );
    let mut fresh = RawConnection::connect(broker.address());
    assert_eq!(api_versions_v3(&mut fresh).error_code, 0, "new connection");
    assert_clients_work(&broker.bootstrap(), topic);
}

/// A request header v1 (api key, version, correlation id, client id) for hand-made frames.
fn header_v1(api_key: i16, version: i16, correlation_id: i32) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_i16(api_key);
    buf.put_i16(version);
    buf.put_i32(correlation_id);
    buf.put_i16(7);
    buf.put_slice(b"fjordit");
    buf
}

#[test]
fn given_api_versions_v0_and_v3_should_advertise_exactly_the_supported_ranges() {
    let broker = start_broker(&[]);
    let mut connection = RawConnection::connect(broker.address());
    let v3 = api_versions_v3(&mut connection);
    assert_eq!(v3.error_code, 0);
    assert_advertises_expected_ranges(&v3);
    let v0 = connection.request(&ApiVersionsRequest::default(), 0);
    assert_eq!(v0.error_code, 0);
    assert_advertises_expected_ranges(&v0);
}

#[test]
fn given_frame_larger_than_socket_request_max_bytes_should_close_only_that_connection() {
    let broker = start_broker(&[("auto.create.topics.enable", "true")]);
    let mut bystander = RawConnection::connect(broker.address());

    let mut bad = RawConnection::connect(broker.address());
    let mut frame = (SOCKET_REQUEST_MAX_BYTES + 1).to_be_bytes().to_vec();
    frame.extend_from_slice(&header_v1(18, 3, 1));
    let _ = bad.write_raw(&frame);
    bad.assert_closed("frame of socket.request.max.bytes + 1");

    let mut negative = RawConnection::connect(broker.address());
    let _ = negative.write_raw(&(-1i32).to_be_bytes());
    negative.assert_closed("negative frame size");

    assert_broker_unaffected(&broker, &mut bystander, "after-oversized-frame");
}

#[test]
fn given_truncated_request_header_should_close_only_that_connection() {
    let broker = start_broker(&[("auto.create.topics.enable", "true")]);
    let mut bystander = RawConnection::connect(broker.address());

    // Api key and version, then half a correlation id.
    let mut bad = RawConnection::connect(broker.address());
    let _ = bad.write_frame(&[0, 18, 0, 3, 0, 0]);
    bad.assert_closed("frame with a truncated header");

    // A client id length pointing past the end of the frame.
    let mut bad = RawConnection::connect(broker.address());
    let mut header = BytesMut::new();
    header.put_i16(3);
    header.put_i16(1);
    header.put_i32(5);
    header.put_i16(200);
    header.put_slice(b"short");
    let _ = bad.write_frame(&header);
    bad.assert_closed("client id longer than the frame");

    // An empty frame.
    let mut bad = RawConnection::connect(broker.address());
    let _ = bad.write_frame(&[]);
    bad.assert_closed("empty frame");

    // A connection that ends in the middle of a frame.
    let mut bad = RawConnection::connect(broker.address());
    let _ = bad.write_raw(&[0, 0, 0, 100, 0, 18, 0]);
    bad.shutdown_write();
    bad.assert_closed("EOF in the middle of a frame");

    assert_broker_unaffected(&broker, &mut bystander, "after-truncated-header");
}

#[test]
fn given_random_bytes_should_close_only_that_connection() {
    let broker = start_broker(&[("auto.create.topics.enable", "true")]);
    let mut bystander = RawConnection::connect(broker.address());
    for seed in 1..=5u64 {
        let mut rng = Rng::new(seed);
        let mut noise = rng.bytes(4096);
        // Vary the first byte so some prefixes read as huge or negative sizes
        // and others as plausible ones followed by garbage.
        noise[0] = [0x00, 0x7f, 0xff, 0x00, 0x10][seed as usize - 1];
        let mut bad = RawConnection::connect(broker.address());
        let _ = bad.write_raw(&noise);
        bad.shutdown_write();
        // Garbage never yields a response: the broker closes the connection.
        loop {
            match bad.read_frame() {
                ReadOutcome::Closed => break,
                // Noise that happens to parse as a request may get an (error)
                // answer before the broker reaches the garbage; keep reading.
                ReadOutcome::Frame(frame) => {
                    assert!(frame.len() >= 4, "response shorter than a correlation id")
                }
            }
        }
    }
    assert_broker_unaffected(&broker, &mut bystander, "after-random-bytes");
}

#[test]
fn given_unknown_api_key_should_answer_unsupported_version_or_close() {
    let broker = start_broker(&[("auto.create.topics.enable", "true")]);
    let mut bystander = RawConnection::connect(broker.address());

    let mut bad = RawConnection::connect(broker.address());
    let _ = bad.write_frame(&header_v1(999, 0, 4242));
    match bad.read_frame() {
        ReadOutcome::Closed => {}
        ReadOutcome::Frame(mut frame) => {
            assert!(frame.len() >= 6, "response too short: {frame:02x?}");
            assert_eq!(
                frame.get_i32(),
                4242,
                "correlation id of the error response"
            );
            assert_eq!(frame.get_i16(), 35, "UNSUPPORTED_VERSION for api key 999");
        }
    }
    // Also an existing key at a version nobody supports (Metadata v999).
    let mut bad = RawConnection::connect(broker.address());
    let _ = bad.write_frame(&header_v1(3, 999, 4343));
    match bad.read_frame() {
        ReadOutcome::Closed => {}
        ReadOutcome::Frame(mut frame) => {
            assert!(frame.len() >= 6, "response too short: {frame:02x?}");
            assert_eq!(
                frame.get_i32(),
                4343,
                "correlation id of the error response"
            );
            assert_eq!(frame.get_i16(), 35, "UNSUPPORTED_VERSION for Metadata v999");
        }
    }
    assert_broker_unaffected(&broker, &mut bystander, "after-unknown-api-key");
}

#[test]
fn given_api_versions_v127_should_answer_v0_error_35_with_supported_ranges() {
    let broker = start_broker(&[("auto.create.topics.enable", "true")]);
    let mut bystander = RawConnection::connect(broker.address());

    let mut connection = RawConnection::connect(broker.address());
    // Header v2 (flexible): key, version, correlation id, client id, no tags;
    // then a v3-shaped body the broker cannot know how to read.
    let mut request = BytesMut::new();
    request.put_i16(18);
    request.put_i16(127);
    request.put_i32(777);
    request.put_i16(7);
    request.put_slice(b"fjordit");
    request.put_u8(0);
    request.put_u8(9);
    request.put_slice(b"fjord-it");
    request.put_u8(4);
    request.put_slice(b"1.0");
    request.put_u8(0);
    connection
        .write_frame(&request)
        .expect("send ApiVersions v127");
    let ReadOutcome::Frame(mut frame) = connection.read_frame() else {
        panic!("broker closed the connection instead of answering ApiVersions v127");
    };
    assert_eq!(frame.get_i32(), 777, "correlation id (response header v0)");
    let response =
        ApiVersionsResponse::decode(&mut frame, 0).expect("decode ApiVersions v0 response");
    assert!(
        frame.is_empty(),
        "{} trailing bytes after a v0 ApiVersions response",
        frame.len()
    );
    assert_eq!(response.error_code, 35, "UNSUPPORTED_VERSION");
    assert_advertises_expected_ranges(&response);

    // The same connection stays usable: the client retries at a supported version.
    assert_eq!(
        api_versions_v3(&mut connection).error_code,
        0,
        "retry at v3 on the same connection"
    );
    assert_broker_unaffected(&broker, &mut bystander, "after-api-versions-v127");
}
