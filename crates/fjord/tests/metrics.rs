//! The Prometheus endpoint (`metrics.listener`): after real traffic from
//! librdkafka (produce with acks=all, fetch, a group commit), `GET /metrics`
//! reports per-topic bytes in/out, request histograms, log offsets and lag.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use common::{
    consume, create_topic, generate_records, now_ms, produce_ok, start_broker, watermarks,
    CALL_TIMEOUT,
};

const TOPIC: &str = "metered";
const GROUP: &str = "metered-group";
const RECORDS: usize = 200;

/// The address from the broker's `metrics on http://HOST:PORT/metrics` line.
fn metrics_address(logs: &str) -> SocketAddr {
    let marker = "metrics on http://";
    let start = logs
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} line in the broker log:\n{logs}"))
        + marker.len();
    let rest = &logs[start..];
    let end = rest.find("/metrics").expect("address ends with /metrics");
    rest[..end].parse().expect("a socket address")
}

/// `GET /metrics` over plain HTTP/1.0; returns the response head and body.
fn scrape(address: SocketAddr) -> (String, String) {
    let mut stream = TcpStream::connect_timeout(&address, CALL_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(CALL_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(CALL_TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: fjord\r\nConnection: close\r\n\r\n")
        .expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (head.to_string(), body.to_string())
}

/// Sample lines as `name{labels}` → value.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series and value");
            (series.to_string(), value.parse().expect("numeric value"))
        })
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no series {series}; have:\n{samples:#?}"))
}

#[test]
fn given_traffic_when_scraping_metrics_should_report_bytes_requests_offsets_and_lag() {
    let broker = start_broker(&[
        ("metrics.listener", "http://127.0.0.1:0"),
        ("offsets.topic.num.partitions", "1"),
        ("group.initial.rebalance.delay.ms", "0"),
    ]);
    let address = metrics_address(&broker.logs());
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, TOPIC, 2);

    let mut records = generate_records(RECORDS, 7, now_ms() - 1_000);
    for (i, r) in records.iter_mut().enumerate() {
        r.partition = Some((i % 2) as i32);
    }
    produce_ok(
        &bootstrap,
        TOPIC,
        &records,
        &[("acks", "all"), ("linger.ms", "5")],
        Duration::from_secs(30),
    );
    let consumed = consume(
        &bootstrap,
        TOPIC,
        &[(0, Offset::Beginning), (1, Offset::Beginning)],
        RECORDS,
        Duration::from_secs(30),
    );
    assert_eq!(consumed.len(), RECORDS);

    // Commit offset 10 on partition 0 and the end on partition 1 (a simple-consumer commit).
    let (_, end0) = watermarks(&bootstrap, TOPIC, 0);
    let (_, end1) = watermarks(&bootstrap, TOPIC, 1);
    let committer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(TOPIC, 0, Offset::Offset(10))
        .unwrap();
    offsets
        .add_partition_offset(TOPIC, 1, Offset::Offset(end1))
        .unwrap();
    committer
        .commit(&offsets, CommitMode::Sync)
        .expect("commit offsets");

    // Lag is computed from committed offsets; wait until the commit is visible.
    let lag0 =
        format!("kafka_consumergroup_lag{{group=\"{GROUP}\",topic=\"{TOPIC}\",partition=\"0\"}}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (head, body) = loop {
        let (head, body) = scrape(address);
        if body.contains(&lag0) || Instant::now() >= deadline {
            break (head, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(head.starts_with("HTTP/1."), "{head}");
    assert!(head.contains(" 200 "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let s = samples(&body);
    let t = format!("topic=\"{TOPIC}\"");

    let bytes_in = value(
        &s,
        &format!("kafka_server_brokertopicmetrics_bytesin_total{{{t}}}"),
    );
    let bytes_out = value(
        &s,
        &format!("kafka_server_brokertopicmetrics_bytesout_total{{{t}}}"),
    );
    let messages_in = value(
        &s,
        &format!("kafka_server_brokertopicmetrics_messagesin_total{{{t}}}"),
    );
    assert!(bytes_in > 0.0, "bytes in {bytes_in}");
    assert!(
        bytes_out >= bytes_in,
        "everything was read once: {bytes_out} < {bytes_in}"
    );
    assert_eq!(messages_in, RECORDS as f64);

    for api in ["Produce", "Fetch", "Metadata", "OffsetCommit"] {
        let count = value(
            &s,
            &format!("kafka_network_requestmetrics_requests_total{{request=\"{api}\"}}"),
        );
        assert!(count >= 1.0, "{api} requests: {count}");
        let inf = value(
            &s,
            &format!(
                "kafka_network_requestmetrics_totaltimems_bucket{{request=\"{api}\",le=\"+Inf\"}}"
            ),
        );
        assert_eq!(inf, count, "{api}: +Inf bucket equals the request count");
        let hist_count = value(
            &s,
            &format!("kafka_network_requestmetrics_totaltimems_count{{request=\"{api}\"}}"),
        );
        assert_eq!(hist_count, count);
        value(
            &s,
            &format!("kafka_network_requestmetrics_totaltimems_sum{{request=\"{api}\"}}"),
        );
        let first = value(
            &s,
            &format!(
                "kafka_network_requestmetrics_totaltimems_bucket{{request=\"{api}\",le=\"0.5\"}}"
            ),
        );
        assert!(first <= inf, "{api}: buckets are cumulative");
    }

    for (partition, end) in [(0, end0), (1, end1)] {
        let p = format!("{{{t},partition=\"{partition}\"}}");
        assert_eq!(
            value(&s, &format!("kafka_log_log_logendoffset{p}")),
            end as f64
        );
        assert_eq!(value(&s, &format!("kafka_log_log_logstartoffset{p}")), 0.0);
        assert!(value(&s, &format!("kafka_log_log_size{p}")) > 0.0);
    }
    assert!(end0 > 10, "partition 0 has more than 10 records");
    assert_eq!(value(&s, &lag0), (end0 - 10) as f64);
    let lag1 = format!("kafka_consumergroup_lag{{group=\"{GROUP}\",{t},partition=\"1\"}}");
    assert_eq!(value(&s, &lag1), 0.0);

    // Two partitions of the topic plus the one of __consumer_offsets.
    assert_eq!(value(&s, "kafka_server_replicamanager_partitioncount"), 3.0);
    assert_eq!(
        value(&s, "kafka_server_replicamanager_underreplicatedpartitions"),
        0.0
    );
    assert_eq!(
        value(
            &s,
            "kafka_controller_kafkacontroller_offlinepartitionscount"
        ),
        0.0
    );
    // The committer is still connected.
    assert!(value(&s, "kafka_server_socketservermetrics_connection_count") >= 1.0);
    for op in ["Produce", "Fetch"] {
        let size = value(
            &s,
            &format!(
                "kafka_server_delayedoperationpurgatory_purgatorysize{{delayedOperation=\"{op}\"}}"
            ),
        );
        assert!(size >= 0.0);
    }
    drop(committer);
}

#[test]
fn given_no_metrics_listener_should_not_serve_metrics() {
    let broker = start_broker(&[]);
    assert!(
        !broker.logs().contains("metrics on http://"),
        "metrics are off by default"
    );
}
