//! Replication on a three-node cluster under faults, judged by librdkafka: a producer with
//! acks=all (and idempotence) writes continuously to a topic with replication factor 3 and
//! `min.insync.replicas=2` while a node is killed, paused, cut off from the quorum or
//! restarted; afterwards every acknowledged record must be consumable exactly once, at the
//! offset it was acknowledged at, in order per partition, and the cluster must have served
//! again within a bound.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::raw::{topic_name, RawConnection};
use common::*;
use fjord_testkit::{wait_until, Cluster};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{MetadataResponse, ProduceRequest};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const NODES: u32 = 3;
const PARTITIONS: i32 = 3;
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the cluster may take to acknowledge writes again after a fault.
const SERVE_AGAIN_WITHIN: Duration = Duration::from_secs(30);

/// Fast failure detection: quick heartbeats and fencing, and a short lag bound so a paused
/// follower leaves the ISR within seconds.
const OVERRIDES: &[(&str, &str)] = &[
    ("broker.heartbeat.interval.ms", "500"),
    ("broker.session.timeout.ms", "4000"),
    ("controller.quorum.election.timeout.ms", "1000"),
    ("replica.lag.time.max.ms", "3000"),
    ("replica.fetch.backoff.ms", "200"),
    ("group.initial.rebalance.delay.ms", "0"),
    ("offsets.topic.num.partitions", "3"),
    ("transaction.state.log.num.partitions", "3"),
    ("default.replication.factor", "3"),
    ("min.insync.replicas", "2"),
    ("metrics.listener", "http://127.0.0.1:0"),
];

fn start(proxies: bool) -> Cluster {
    let mut builder = Cluster::builder(fjord_bin()).nodes(NODES);
    for (key, value) in OVERRIDES {
        builder = builder.override_config(*key, *value);
    }
    if proxies {
        builder = builder.with_controller_link_proxies();
    }
    builder
        .ready_when(START_TIMEOUT, |cluster| {
            (1..=cluster.node_count()).all(|n| {
                let address = cluster.node(n).bootstrap_address;
                std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
                    && metadata(address, &[]).brokers.len() == NODES as usize
            })
        })
        .start()
        .unwrap_or_else(|e| panic!("cluster did not start: {e:#}"))
}

fn metadata(address: SocketAddr, topics: &[&str]) -> MetadataResponse {
    common::raw::metadata_v12(address, Some(topics))
}

/// (leader, ISR) of `topic`-`partition` when every running node agrees on it (a node just
/// resumed or restarted may still answer from an older image).
fn partition_state(cluster: &Cluster, topic: &str, partition: i32) -> Option<(i32, BTreeSet<i32>)> {
    let mut seen = BTreeSet::new();
    for node in
        (1..=cluster.node_count()).filter(|n| cluster.is_running(*n) && !cluster.is_paused(*n))
    {
        let response = metadata(cluster.node(node).bootstrap_address, &[topic]);
        let t = response.topics.first()?;
        let p = t
            .partitions
            .iter()
            .find(|p| p.partition_index == partition)?;
        seen.insert((
            p.leader_id.0,
            p.isr_nodes.iter().map(|b| b.0).collect::<BTreeSet<i32>>(),
        ));
    }
    if seen.len() == 1 {
        seen.pop_first()
    } else {
        None
    }
}

fn wait_for_state(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    what: &str,
    within: Duration,
    ok: impl Fn(i32, &BTreeSet<i32>) -> bool,
) -> (i32, BTreeSet<i32>) {
    let mut last = None;
    wait_until(within, || {
        last = partition_state(cluster, topic, partition);
        last.as_ref().is_some_and(|(l, isr)| ok(*l, isr))
    })
    .unwrap_or_else(|e| panic!("{topic}-{partition}: {what}; last seen {last:?}: {e}"));
    last.expect("seen")
}

fn all_in_sync(cluster: &Cluster, topic: &str) {
    for p in 0..PARTITIONS {
        wait_for_state(
            cluster,
            topic,
            p,
            "all three in sync",
            SERVE_AGAIN_WITHIN,
            |l, isr| l > 0 && isr.len() == NODES as usize,
        );
    }
}

/// One metric's value from `node`'s `/metrics` (the endpoint it logged at start).
fn metric(cluster: &Cluster, node: u32, name: &str) -> f64 {
    use std::io::{Read, Write};
    let logs = cluster.logs(node);
    let address = logs
        .rsplit("metrics on http://")
        .next()
        .and_then(|rest| rest.split('/').next())
        .expect("the node logged its metrics address")
        .to_string();
    let mut stream = std::net::TcpStream::connect(&address).expect("connect to /metrics");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut body = String::new();
    stream.read_to_string(&mut body).expect("read");
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} not in /metrics of node {node}"))
        .trim()
        .parse()
        .expect("a number")
}

fn create_replicated(bootstrap: &str, topic: &str) {
    let new_topic = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(3));
    let results =
        futures::executor::block_on(admin(bootstrap).create_topics([&new_topic], &admin_options()))
            .expect("CreateTopics");
    assert_eq!(results, vec![Ok(topic.to_string())]);
}

/// Acknowledged records: (partition, offset, sequence number), with when each was acked.
#[derive(Default)]
struct Acks {
    acked: Vec<(i32, i64, u64, Instant)>,
    failed: usize,
}

struct AckContext(Arc<Mutex<Acks>>);

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        let mut acks = self.0.lock().unwrap();
        match result {
            Ok(m) => acks
                .acked
                .push((m.partition(), m.offset(), *seq, Instant::now())),
            Err(_) => acks.failed += 1,
        }
    }
}

/// A producer writing sequence numbers round-robin over the partitions, acks=all, until
/// stopped.
struct Load {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Acks>>,
    thread: JoinHandle<u64>,
}

impl Load {
    fn start(bootstrap: &str, topic: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Acks::default()));
        let producer: ThreadedProducer<AckContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "120000")
            .set("request.timeout.ms", "10000")
            .set("retry.backoff.ms", "100")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create_with_context(AckContext(acks.clone()))
            .expect("create producer");
        let (topic, flag) = (topic.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut seq = 0u64;
            while !flag.load(Ordering::Acquire) {
                let value = seq.to_string();
                let record = BaseRecord::with_opaque_to(&topic, Box::new(seq))
                    .partition((seq % PARTITIONS as u64) as i32)
                    .key(&value)
                    .payload(&value);
                match producer.send(record) {
                    Ok(()) => seq += 1,
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
                // About 500 records a second: enough to be under load, little enough for CI.
                if seq.is_multiple_of(10) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = producer.flush(Duration::from_secs(120));
            seq
        });
        Load { stop, acks, thread }
    }

    fn acked_count(&self) -> usize {
        self.acks.lock().unwrap().acked.len()
    }

    /// Waits until `more` further records are acknowledged; returns how long that took.
    fn wait_for_more(&self, more: usize, within: Duration) -> Duration {
        let started = Instant::now();
        let target = self.acked_count() + more;
        wait_until(within, || self.acked_count() >= target)
            .unwrap_or_else(|e| panic!("no {more} more acknowledgements: {e}"));
        started.elapsed()
    }

    /// The first acknowledgement at or after `since`.
    fn first_ack_after(&self, since: Instant, within: Duration) -> Duration {
        wait_until(within, || {
            self.acks.lock().unwrap().acked.iter().any(|a| a.3 >= since)
        })
        .unwrap_or_else(|e| panic!("nothing acknowledged after the fault: {e}"));
        let acks = self.acks.lock().unwrap();
        acks.acked
            .iter()
            .filter(|a| a.3 >= since)
            .map(|a| a.3)
            .min()
            .expect("one")
            - since
    }

    fn finish(self) -> (Vec<(i32, i64, u64)>, u64) {
        self.stop.store(true, Ordering::Release);
        let sent = self.thread.join().expect("producer thread");
        let acks = self.acks.lock().unwrap();
        (acks.acked.iter().map(|a| (a.0, a.1, a.2)).collect(), sent)
    }
}

/// Every record of every partition, read from the start to the high watermark.
fn read_all(bootstrap: &str, topic: &str) -> BTreeMap<i32, Vec<(i64, u64)>> {
    let consumer: BaseConsumer = consumer_config(bootstrap)
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let mut ends = BTreeMap::new();
    for p in 0..PARTITIONS {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, CALL_TIMEOUT)
            .expect("watermarks");
        ends.insert(p, high);
    }
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    let mut out: BTreeMap<i32, Vec<(i64, u64)>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = |out: &BTreeMap<i32, Vec<(i64, u64)>>| {
        ends.iter().all(|(p, end)| {
            *end == 0
                || out
                    .get(p)
                    .and_then(|v| v.last())
                    .is_some_and(|(o, _)| o + 1 >= *end)
        })
    };
    while !done(&out) {
        assert!(
            Instant::now() < deadline,
            "reading {topic} to {ends:?} timed out; have {:?}",
            out.iter().map(|(p, v)| (p, v.len())).collect::<Vec<_>>()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let seq: u64 = std::str::from_utf8(m.payload().expect("value"))
                    .expect("utf8")
                    .parse()
                    .expect("a sequence number");
                out.entry(m.partition())
                    .or_default()
                    .push((m.offset(), seq));
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
    out
}

/// Checks the promise: every acknowledged record is in the log exactly once, at its
/// acknowledged offset, in the order it was produced per partition; no record appears
/// twice at all.
fn assert_acknowledged_records_intact(bootstrap: &str, topic: &str, acked: &[(i32, i64, u64)]) {
    let log = read_all(bootstrap, topic);
    let mut seen = BTreeSet::new();
    for (p, records) in &log {
        for (offset, seq) in records {
            assert!(
                seen.insert(*seq),
                "sequence {seq} appears twice (partition {p} offset {offset})"
            );
        }
    }
    let at: BTreeMap<(i32, i64), u64> = log
        .iter()
        .flat_map(|(p, records)| records.iter().map(move |(o, s)| ((*p, *o), *s)))
        .collect();
    for (p, offset, seq) in acked {
        assert_eq!(
            at.get(&(*p, *offset)),
            Some(seq),
            "acknowledged record {seq} at {p}/{offset} is not there"
        );
    }
    for p in 0..PARTITIONS {
        let mut mine: Vec<(u64, i64)> = acked
            .iter()
            .filter(|a| a.0 == p)
            .map(|a| (a.2, a.1))
            .collect();
        mine.sort();
        assert!(
            mine.windows(2).all(|w| w[0].1 < w[1].1),
            "partition {p}: acknowledged records out of order"
        );
    }
    eprintln!(
        "{} acknowledged records intact; {} records in the log",
        acked.len(),
        seen.len()
    );
}

#[test]
fn killing_a_partition_leader_under_load_loses_no_acknowledged_record() {
    let cluster = start(false);
    let bootstrap = cluster.bootstrap();
    let topic = "kill-leader";
    create_replicated(&bootstrap, topic);
    all_in_sync(&cluster, topic);
    let load = Load::start(&bootstrap, topic);
    load.wait_for_more(500, SERVE_AGAIN_WITHIN);

    let (leader, _) = partition_state(&cluster, topic, 0).expect("partition 0");
    let killed_at = Instant::now();
    cluster.kill(leader as u32).expect("kill -9 the leader");
    let (new_leader, isr) = wait_for_state(
        &cluster,
        topic,
        0,
        "a new leader",
        SERVE_AGAIN_WITHIN,
        |l, _| l > 0 && l != leader,
    );
    assert!(
        !isr.contains(&leader),
        "the dead leader left the ISR: {isr:?}"
    );
    let failover = load.first_ack_after(killed_at, SERVE_AGAIN_WITHIN);
    load.wait_for_more(500, SERVE_AGAIN_WITHIN);
    eprintln!(
        "leader {leader} killed; {new_leader} leads; first acknowledgement after {failover:?}"
    );

    cluster.restart(leader as u32).expect("restart");
    all_in_sync(&cluster, topic);
    load.wait_for_more(200, SERVE_AGAIN_WITHIN);
    let (acked, sent) = load.finish();
    eprintln!("{sent} sent, {} acknowledged", acked.len());
    assert_acknowledged_records_intact(&bootstrap, topic, &acked);
}

#[test]
fn a_paused_follower_leaves_the_isr_and_rejoins_after_resuming() {
    let cluster = start(false);
    let bootstrap = cluster.bootstrap();
    let topic = "pause-follower";
    create_replicated(&bootstrap, topic);
    all_in_sync(&cluster, topic);
    let (leader, _) = partition_state(&cluster, topic, 0).expect("partition 0");
    let follower = (1..=NODES as i32).find(|n| *n != leader).unwrap();
    let load = Load::start(&bootstrap, topic);
    load.wait_for_more(300, SERVE_AGAIN_WITHIN);

    cluster.pause(follower as u32).expect("SIGSTOP");
    wait_for_state(
        &cluster,
        topic,
        0,
        "the paused follower leaves the ISR",
        SERVE_AGAIN_WITHIN,
        |_, isr| !isr.contains(&follower) && isr.len() == 2,
    );
    let leader = leader as u32;
    let gauge = |name: &str| metric(&cluster, leader, name);
    assert!(gauge("kafka_server_replicamanager_underreplicatedpartitions") >= 1.0);
    assert!(gauge("kafka_server_replicamanager_isrshrinks_total") >= 1.0);
    let controllers: f64 = (1..=NODES)
        .filter(|n| *n != follower as u32)
        .map(|n| {
            metric(
                &cluster,
                n,
                "kafka_controller_kafkacontroller_activecontrollercount",
            )
        })
        .sum();
    assert_eq!(
        controllers, 1.0,
        "one active controller among the running nodes"
    );
    // Two in sync satisfy min.insync.replicas=2: writes keep being acknowledged.
    load.wait_for_more(300, SERVE_AGAIN_WITHIN);

    cluster.resume(follower as u32).expect("SIGCONT");
    all_in_sync(&cluster, topic);
    assert!(gauge("kafka_server_replicamanager_isrexpands_total") >= 1.0);
    wait_until(SERVE_AGAIN_WITHIN, || {
        gauge("kafka_server_replicamanager_underreplicatedpartitions") == 0.0
    })
    .expect("nothing under-replicated once the follower is back");
    load.wait_for_more(300, SERVE_AGAIN_WITHIN);
    let (acked, _) = load.finish();
    assert_acknowledged_records_intact(&bootstrap, topic, &acked);
}

/// A raw acks=`acks` produce of one batch of `count` records with values `first..` to
/// `address`; the partition-level error code (or the transport failure).
fn raw_produce(address: SocketAddr, topic: &str, partition: i32, acks: i16, values: &[u64]) -> i16 {
    let values: Vec<Vec<u8>> = values.iter().map(|v| v.to_string().into_bytes()).collect();
    let batch = common::raw::encode_values(&values, now_ms());
    let produce = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(3000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch.freeze()))])]);
    let response = RawConnection::connect(address).request(&produce, 9);
    response.responses[0].partition_responses[0].error_code
}

#[test]
fn a_leader_cut_off_from_the_quorum_stops_acknowledging_and_its_tail_is_truncated() {
    let cluster = start(true);
    let bootstrap = cluster.bootstrap();
    let topic = "isolated-leader";
    create_replicated(&bootstrap, topic);
    all_in_sync(&cluster, topic);
    let load = Load::start(&bootstrap, topic);
    load.wait_for_more(300, SERVE_AGAIN_WITHIN);

    let (old, _) = partition_state(&cluster, topic, 0).expect("partition 0");
    let old_address = cluster.node(old as u32).bootstrap_address;
    let isolated_at = Instant::now();
    cluster
        .isolate(old as u32)
        .expect("cut the old leader's controller links");
    let observer = (1..=NODES).find(|n| *n as i32 != old).unwrap();
    // The others elect a new leader once the old one's session expires.
    let mut new_leader = -1;
    wait_until(SERVE_AGAIN_WITHIN, || {
        let response = metadata(cluster.node(observer).bootstrap_address, &[topic]);
        new_leader = response.topics[0]
            .partitions
            .iter()
            .find(|p| p.partition_index == 0)
            .map_or(-1, |p| p.leader_id.0);
        new_leader > 0 && new_leader != old
    })
    .expect("a new leader for partition 0");
    // Once its followers have moved to the new leader, the old one still takes writes but
    // can acknowledge none with acks=all; acks=1 writes land in a tail nobody else has.
    let refused = raw_produce(old_address, topic, 0, -1, &[9_000_000_001]);
    assert_ne!(
        refused, 0,
        "acks=all at the cut-off leader must not be acknowledged"
    );
    let divergent = raw_produce(old_address, topic, 0, 1, &[9_000_000_002, 9_000_000_003]);
    eprintln!("acks=all at the old leader: error {refused}; acks=1: error {divergent}");
    let failover = load.first_ack_after(isolated_at, SERVE_AGAIN_WITHIN);
    eprintln!(
        "old leader {old} cut off; {new_leader} leads; first acknowledgement after {failover:?}"
    );
    load.wait_for_more(300, SERVE_AGAIN_WITHIN);

    cluster.heal_all();
    all_in_sync(&cluster, topic);
    load.wait_for_more(200, SERVE_AGAIN_WITHIN);
    let (acked, _) = load.finish();
    let log = read_all(&bootstrap, topic);
    let values: BTreeSet<u64> = log.values().flatten().map(|(_, s)| *s).collect();
    assert!(
        !values.contains(&9_000_000_002) && !values.contains(&9_000_000_001),
        "the old leader's unreplicated tail is gone"
    );
    assert_acknowledged_records_intact(&bootstrap, topic, &acked);
}

#[test]
fn a_rolling_restart_under_load_loses_no_acknowledged_record() {
    let cluster = start(false);
    let bootstrap = cluster.bootstrap();
    let topic = "rolling";
    create_replicated(&bootstrap, topic);
    all_in_sync(&cluster, topic);
    let load = Load::start(&bootstrap, topic);
    load.wait_for_more(300, SERVE_AGAIN_WITHIN);
    for node in 1..=NODES {
        cluster.stop(node).expect("clean stop");
        load.wait_for_more(200, SERVE_AGAIN_WITHIN);
        cluster.restart(node).expect("restart");
        all_in_sync(&cluster, topic);
        load.wait_for_more(200, SERVE_AGAIN_WITHIN);
    }
    let (acked, _) = load.finish();
    assert_acknowledged_records_intact(&bootstrap, topic, &acked);
}

#[test]
fn acks_all_needs_min_insync_replicas() {
    let cluster = start(false);
    let bootstrap = cluster.bootstrap();
    let topic = "min-isr";
    // Every replica must be in sync for this topic.
    let new_topic = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(3))
        .set("min.insync.replicas", "3");
    let results = futures::executor::block_on(
        admin(&bootstrap).create_topics([&new_topic], &admin_options()),
    )
    .expect("CreateTopics");
    assert_eq!(results, vec![Ok(topic.to_string())]);
    all_in_sync(&cluster, topic);
    let (leader, _) = partition_state(&cluster, topic, 0).expect("partition 0");
    let address = cluster.node(leader as u32).bootstrap_address;
    assert_eq!(raw_produce(address, topic, 0, -1, &[1]), 0);
    // One follower gone: the ISR shrinks to two, below min.insync.replicas=3.
    let follower = (1..=NODES).find(|n| *n as i32 != leader).unwrap();
    cluster.pause(follower).expect("pause");
    let mut code = 0;
    wait_until(SERVE_AGAIN_WITHIN, || {
        code = raw_produce(address, topic, 0, -1, &[2]);
        code == 19 // NOT_ENOUGH_REPLICAS
    })
    .unwrap_or_else(|e| panic!("acks=all answered {code}: {e}"));
    // acks=1 is still taken.
    assert_eq!(raw_produce(address, topic, 0, 1, &[3]), 0);
    cluster.resume(follower).expect("resume");
    all_in_sync(&cluster, topic);
    assert_eq!(raw_produce(address, topic, 0, -1, &[4]), 0);
}

#[test]
fn killing_the_active_controller_under_load_loses_nothing_and_topics_can_still_be_created() {
    let cluster = start(false);
    let bootstrap = cluster.bootstrap();
    let topic = "kill-controller";
    create_replicated(&bootstrap, topic);
    all_in_sync(&cluster, topic);
    let load = Load::start(&bootstrap, topic);
    load.wait_for_more(300, SERVE_AGAIN_WITHIN);

    let describe = kafka_protocol::messages::DescribeClusterRequest::default();
    let active = RawConnection::connect(cluster.node(1).bootstrap_address)
        .request(&describe, 1)
        .controller_id
        .0;
    assert!((1..=NODES as i32).contains(&active), "{active}");
    let killed_at = Instant::now();
    cluster
        .kill(active as u32)
        .expect("kill -9 the active controller");
    let survivor = (1..=NODES).find(|n| *n as i32 != active).unwrap();
    let survivors = cluster.node(survivor).bootstrap_address.to_string();
    // A new controller takes over and topic creation works again.
    let mut created = false;
    wait_until(SERVE_AGAIN_WITHIN, || {
        let new_topic = NewTopic::new("after-controller-kill", 1, TopicReplication::Fixed(2));
        let options = admin_options().request_timeout(Some(Duration::from_secs(5)));
        created = matches!(
            futures::executor::block_on(admin(&survivors).create_topics([&new_topic], &options))
                .as_deref(),
            Ok([Ok(_)])
                | Ok([Err((
                    _,
                    rdkafka::error::RDKafkaErrorCode::TopicAlreadyExists
                ))])
        );
        created
    })
    .expect("topic creation works at a new active controller");
    eprintln!(
        "controller {active} killed; topic created after {:?}",
        killed_at.elapsed()
    );
    load.wait_for_more(300, SERVE_AGAIN_WITHIN);
    cluster.restart(active as u32).expect("restart");
    all_in_sync(&cluster, topic);
    let (acked, _) = load.finish();
    assert_acknowledged_records_intact(&bootstrap, topic, &acked);
}

#[test]
fn a_consumer_group_keeps_consuming_when_its_coordinator_dies() {
    let cluster = start(false);
    let bootstrap = cluster.bootstrap();
    let topic = "group-failover";
    let group = "survivors";
    create_replicated(&bootstrap, topic);
    all_in_sync(&cluster, topic);
    let load = Load::start(&bootstrap, topic);
    load.wait_for_more(200, SERVE_AGAIN_WITHIN);

    // One group member, committing as it goes.
    let consumed = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let member = {
        let (consumed, stop, bootstrap) = (consumed.clone(), stop.clone(), bootstrap.clone());
        std::thread::spawn(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", group)
                .set("auto.offset.reset", "earliest")
                .set("enable.auto.commit", "true")
                .set("auto.commit.interval.ms", "200")
                .set("session.timeout.ms", "10000")
                .set("fetch.wait.max.ms", "100")
                .set("topic.metadata.refresh.interval.ms", "1000")
                .create()
                .expect("group consumer");
            consumer.subscribe(&[topic]).expect("subscribe");
            while !stop.load(Ordering::Acquire) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                    let seq: u64 = std::str::from_utf8(m.payload().expect("value"))
                        .unwrap()
                        .parse()
                        .unwrap();
                    consumed.lock().unwrap().insert(seq);
                }
            }
            let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
        })
    };
    wait_until(SERVE_AGAIN_WITHIN, || consumed.lock().unwrap().len() >= 200)
        .expect("the group consumes");

    let find = kafka_protocol::messages::FindCoordinatorRequest::default()
        .with_key(kafka_protocol::protocol::StrBytes::from_static_str(group))
        .with_key_type(0);
    let found = RawConnection::connect(cluster.node(1).bootstrap_address).request(&find, 3);
    assert_eq!(found.error_code, 0, "{found:?}");
    let coordinator = found.node_id.0;
    let killed_at = Instant::now();
    cluster
        .kill(coordinator as u32)
        .expect("kill -9 the group coordinator");
    // Another broker takes the group over once the dead one is fenced.
    let survivor = (1..=NODES).find(|n| *n as i32 != coordinator).unwrap();
    let mut new_coordinator = coordinator;
    wait_until(SERVE_AGAIN_WITHIN, || {
        let moved =
            RawConnection::connect(cluster.node(survivor).bootstrap_address).request(&find, 3);
        new_coordinator = moved.node_id.0;
        moved.error_code == 0 && new_coordinator != coordinator
    })
    .expect("the coordinator moves to a live broker");
    let before = consumed.lock().unwrap().len();
    wait_until(SERVE_AGAIN_WITHIN, || {
        consumed.lock().unwrap().len() >= before + 300
    })
    .expect("the group keeps consuming after its coordinator died");
    // The member commits through the new coordinator, which kept the earlier commits.
    let committed = || -> i64 {
        let fetch = kafka_protocol::messages::OffsetFetchRequest::default()
            .with_group_id(kafka_protocol::messages::GroupId(
                kafka_protocol::protocol::StrBytes::from_static_str(group),
            ))
            .with_topics(Some(vec![
                kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes((0..PARTITIONS).collect()),
            ]));
        let answer = RawConnection::connect(cluster.node(new_coordinator as u32).bootstrap_address)
            .request(&fetch, 7);
        answer.topics[0]
            .partitions
            .iter()
            .map(|p| p.committed_offset.max(0))
            .sum()
    };
    let first = committed();
    assert!(first > 0, "commits made before the kill are kept");
    wait_until(SERVE_AGAIN_WITHIN, || committed() > first)
        .expect("commits reach the new coordinator");
    eprintln!(
        "coordinator {coordinator} killed; {new_coordinator} took over; consuming and committing again after {:?}",
        killed_at.elapsed()
    );

    let (acked, _) = load.finish();
    let all: BTreeSet<u64> = acked.iter().map(|a| a.2).collect();
    wait_until(Duration::from_secs(60), || {
        consumed.lock().unwrap().is_superset(&all)
    })
    .unwrap_or_else(|e| {
        let missing = all.difference(&consumed.lock().unwrap()).count();
        panic!("{missing} acknowledged records never consumed by the group: {e}")
    });
    stop.store(true, Ordering::Release);
    member.join().expect("member thread");
    cluster.restart(coordinator as u32).expect("restart");
    assert_acknowledged_records_intact(&bootstrap, topic, &acked);
}

#[test]
fn a_transaction_outlives_the_death_of_its_coordinator_and_is_never_seen_in_part() {
    let cluster = start(false);
    let bootstrap = cluster.bootstrap();
    let topic = "tx-replicated";
    create_replicated(&bootstrap, topic);
    all_in_sync(&cluster, topic);
    let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", "survivor-tx")
        .set("linger.ms", "5")
        .set("transaction.timeout.ms", "60000")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(Duration::from_secs(60))
        .expect("init_transactions");
    let send = |prefix: &str| -> Vec<String> {
        let values: Vec<String> = (0..30).map(|i| format!("{prefix}-{i:02}")).collect();
        send_values(&producer, topic, PARTITIONS, &values);
        values
    };
    producer.begin_transaction().expect("begin");
    let mut expected = send("first");
    producer
        .commit_transaction(Duration::from_secs(30))
        .expect("commit");

    // Mid-transaction, the transaction coordinator dies.
    let find = kafka_protocol::messages::FindCoordinatorRequest::default()
        .with_key(kafka_protocol::protocol::StrBytes::from_static_str(
            "survivor-tx",
        ))
        .with_key_type(1);
    let coordinator = RawConnection::connect(cluster.node(1).bootstrap_address)
        .request(&find, 3)
        .node_id
        .0;
    producer.begin_transaction().expect("begin");
    expected.extend(send("second"));
    cluster
        .kill(coordinator as u32)
        .expect("kill -9 the transaction coordinator");
    for p in 0..PARTITIONS {
        wait_for_state(
            &cluster,
            topic,
            p,
            "a live leader",
            SERVE_AGAIN_WITHIN,
            |l, _| l > 0 && l != coordinator,
        );
    }
    let partial = read_values(
        &bootstrap,
        topic,
        PARTITIONS,
        "read_committed",
        Duration::from_secs(2),
    );
    assert_eq!(
        partial,
        {
            let mut first: Vec<String> = expected
                .iter()
                .filter(|v| v.starts_with("first"))
                .cloned()
                .collect();
            first.sort();
            first
        },
        "an open transaction is never visible to read_committed"
    );
    // The producer finds the new coordinator, which has the transaction, and commits it.
    producer
        .commit_transaction(Duration::from_secs(60))
        .expect("commit at the new coordinator");
    producer.begin_transaction().expect("begin");
    expected.extend(send("third"));
    producer
        .commit_transaction(Duration::from_secs(30))
        .expect("commit");
    expected.sort();
    let seen = read_values(
        &bootstrap,
        topic,
        PARTITIONS,
        "read_committed",
        Duration::from_secs(3),
    );
    assert_eq!(
        seen, expected,
        "every committed transaction, each record once"
    );
    cluster.restart(coordinator as u32).expect("restart");
}

#[test]
fn followers_follow_deleted_records_so_a_new_leader_keeps_the_low_watermark() {
    let cluster = start(false);
    let bootstrap = cluster.bootstrap();
    let topic = "delete-records";
    create_replicated(&bootstrap, topic);
    all_in_sync(&cluster, topic);
    let (leader, _) = partition_state(&cluster, topic, 0).expect("partition 0");
    let address = cluster.node(leader as u32).bootstrap_address;
    for chunk in 0..10u64 {
        let values: Vec<u64> = (chunk * 10..chunk * 10 + 10).collect();
        assert_eq!(raw_produce(address, topic, 0, -1, &values), 0);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(60))
        .unwrap();
    let deleted =
        futures::executor::block_on(admin(&bootstrap).delete_records(&tpl, &admin_options()))
            .expect("DeleteRecords");
    assert_eq!(
        deleted.find_partition(topic, 0).unwrap().offset(),
        Offset::Offset(60)
    );
    // One more acks=all write: its fetch round carries the new log start to the followers.
    assert_eq!(raw_produce(address, topic, 0, -1, &[100]), 0);
    std::thread::sleep(Duration::from_millis(500));
    cluster.kill(leader as u32).expect("kill -9 the leader");
    wait_for_state(
        &cluster,
        topic,
        0,
        "a new leader",
        SERVE_AGAIN_WITHIN,
        |l, _| l > 0 && l != leader,
    );
    let consumer = consumer(&cluster.bootstrap());
    let mut low = -1;
    wait_until(SERVE_AGAIN_WITHIN, || {
        low = consumer
            .fetch_watermarks(topic, 0, CALL_TIMEOUT)
            .map(|(l, _)| l)
            .unwrap_or(-1);
        low >= 0
    })
    .expect("watermarks from the new leader");
    assert_eq!(
        low, 60,
        "the new leader starts where the old one deleted up to"
    );
    cluster.restart(leader as u32).expect("restart");
}
