//! Three `fjord server` processes in cluster mode (Kafka's KRaft keys through the testkit's
//! `Cluster`), checked with librdkafka and raw protocol requests: the cluster forms and
//! reports its brokers and active controller, topics spread their leaders over the brokers
//! and serve produce, fetch and a consumer group across them, requests at the wrong broker
//! are refused the way Kafka refuses them, a new active controller takes over after a
//! kill -9, and a replication factor above the broker count is refused. Nodes with a single
//! role join too: a broker-only node follows the voters from outside (also across a kill -9 of
//! the active controller) and hosts replicas, and controller-only voters serve brokers that
//! are broker-only.

mod common;
#[path = "common/groups.rs"]
#[allow(dead_code)]
mod group_support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::raw::{fetch_request, topic_name, RawConnection};
use common::*;
use fjord_testkit::{free_ports, wait_until, Cluster, ManagedProcess, NodeRoles};
use group_support::*;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeClusterResponse, FindCoordinatorRequest, GroupId,
    MetadataResponse, OffsetFetchRequest, ProduceRequest,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AlterConfig, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const NODES: u32 = 3;
const PARTITIONS: i32 = 6;
const RECORDS: usize = 3000;
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Kafka error codes the tests expect.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const NOT_COORDINATOR: i16 = 16;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

/// Settings for fast tests: quick heartbeats and fencing, no initial rebalance delay, few
/// offsets partitions.
const CLUSTER_OVERRIDES: &[(&str, &str)] = &[
    ("broker.heartbeat.interval.ms", "500"),
    ("broker.session.timeout.ms", "4000"),
    ("controller.quorum.election.timeout.ms", "1000"),
    ("group.initial.rebalance.delay.ms", "0"),
    ("offsets.topic.num.partitions", "6"),
    ("transaction.state.log.num.partitions", "6"),
];
/// Metadata v12 over a raw connection (`None`: every topic).
fn raw_metadata(address: SocketAddr, topics: Option<&[&str]>) -> MetadataResponse {
    common::raw::metadata_v12(address, topics)
}

/// DescribeCluster v1 over a raw connection (librdkafka's admin API has no DescribeCluster).
fn raw_describe_cluster(address: SocketAddr) -> DescribeClusterResponse {
    RawConnection::connect(address).request(&DescribeClusterRequest::default(), 1)
}

/// Whether every running node with the broker role lists `count` brokers in its metadata.
fn lists_brokers(cluster: &Cluster, count: usize) -> bool {
    (1..=cluster.node_count())
        .filter(|n| cluster.is_running(*n) && cluster.node(*n).roles.is_broker())
        .all(|n| {
            let address = cluster.node(n).bootstrap_address;
            std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
                && raw_metadata(address, Some(&[])).brokers.len() == count
        })
}

fn start_cluster() -> Cluster {
    let mut builder = Cluster::builder(fjord_bin()).nodes(NODES);
    for (key, value) in CLUSTER_OVERRIDES {
        builder = builder.override_config(*key, *value);
    }
    builder
        .ready_when(START_TIMEOUT, |cluster| {
            lists_brokers(cluster, NODES as usize)
        })
        .start()
        .unwrap_or_else(|e| panic!("cluster did not start: {e:#}"))
}

/// `bootstrap.servers` of every node except `node`.
fn bootstrap_without(cluster: &Cluster, node: u32) -> String {
    (1..=cluster.node_count())
        .filter(|n| *n != node)
        .map(|n| cluster.node(n).bootstrap_address.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The partition leaders of `topic` from a raw Metadata to `address`: index to (leader,
/// leader epoch). Waits (bounded) until that broker has applied at least `partitions`
/// partitions of the topic: a change is answered once the answering broker has it, and the
/// others follow the metadata image a moment later.
fn leaders(address: SocketAddr, topic: &str, partitions: usize) -> BTreeMap<i32, (i32, i32)> {
    let mut last = None;
    wait_until(Duration::from_secs(10), || {
        let metadata = raw_metadata(address, Some(&[topic]));
        let t = metadata.topics[0].clone();
        let ready = t.error_code == 0 && t.partitions.len() >= partitions;
        last = Some(t);
        ready
    })
    .unwrap_or_else(|e| panic!("metadata of {topic} at {address}: {last:?}: {e}"));
    last.expect("read at least once")
        .partitions
        .iter()
        .map(|p| (p.partition_index, (p.leader_id.0, p.leader_epoch)))
        .collect()
}

/// CreateTopics through a fresh librdkafka admin client (so its metadata, and with it the
/// controller it sends to, is current), bounded by `timeout`.
fn try_create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication: i32,
    timeout: Duration,
) -> Result<Result<String, (String, RDKafkaErrorCode)>, rdkafka::error::KafkaError> {
    let admin = admin(bootstrap);
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let options = rdkafka::admin::AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    let mut results = futures::executor::block_on(admin.create_topics([&new_topic], &options))?;
    Ok(results.pop().expect("one result"))
}

fn create_topic_result(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Result<String, (String, RDKafkaErrorCode)> {
    try_create_topic(bootstrap, topic, partitions, replication, CALL_TIMEOUT)
        .expect("CreateTopics request")
}

/// Records spread round-robin over the partitions.
fn records_round_robin(count: usize, seed: u64) -> Vec<TestRecord> {
    let mut records = generate_records(count, seed, now_ms() - 60_000);
    for (i, record) in records.iter_mut().enumerate() {
        record.partition = Some((i % PARTITIONS as usize) as i32);
    }
    records
}

fn produce_acks_all(bootstrap: &str, topic: &str, records: &[TestRecord]) -> Vec<(i32, i64)> {
    produce_ok(
        bootstrap,
        topic,
        records,
        &[
            ("acks", "all"),
            ("linger.ms", "5"),
            ("batch.num.messages", "500"),
        ],
        Duration::from_secs(60),
    )
}

fn all_partitions_from_start() -> Vec<(i32, Offset)> {
    (0..PARTITIONS).map(|p| (p, Offset::Beginning)).collect()
}

#[test]
fn three_nodes_form_a_cluster_that_serves_topics_and_groups_across_brokers() {
    let started = Instant::now();
    let cluster = start_cluster();
    let bootstrap = cluster.bootstrap();
    eprintln!("cluster ready after {:?}", started.elapsed());

    // Metadata through librdkafka: three brokers at the nodes' PLAINTEXT addresses.
    let consumer = consumer(&bootstrap);
    let metadata = consumer
        .fetch_metadata(None, CALL_TIMEOUT)
        .expect("fetch metadata");
    let brokers: BTreeMap<i32, String> = metadata
        .brokers()
        .iter()
        .map(|b| (b.id(), format!("{}:{}", b.host(), b.port())))
        .collect();
    let expected: BTreeMap<i32, String> = (1..=NODES)
        .map(|n| (n as i32, cluster.node(n).bootstrap_address.to_string()))
        .collect();
    assert_eq!(brokers, expected);

    // Every node agrees on the cluster id and the active controller, in Metadata and in
    // DescribeCluster.
    let mut cluster_ids = BTreeSet::new();
    let mut controllers = BTreeSet::new();
    for n in 1..=NODES {
        let address = cluster.node(n).bootstrap_address;
        let metadata = raw_metadata(address, None);
        assert_eq!(metadata.brokers.len(), NODES as usize);
        cluster_ids.insert(metadata.cluster_id.clone().expect("cluster id").to_string());
        controllers.insert(metadata.controller_id.0);
        let described = raw_describe_cluster(address);
        assert_eq!(described.error_code, 0);
        let ids: BTreeSet<i32> = described.brokers.iter().map(|b| b.broker_id.0).collect();
        assert_eq!(ids, (1..=NODES as i32).collect());
        for b in &described.brokers {
            let node = cluster.node(b.broker_id.0 as u32).bootstrap_address;
            assert_eq!(format!("{}:{}", b.host, b.port), node.to_string());
        }
        cluster_ids.insert(described.cluster_id.to_string());
        controllers.insert(described.controller_id.0);
    }
    assert_eq!(cluster_ids.len(), 1, "cluster ids {cluster_ids:?}");
    assert_eq!(controllers.len(), 1, "controllers {controllers:?}");
    let controller = *controllers.first().unwrap();
    assert!((1..=NODES as i32).contains(&controller), "{controller}");

    // More replicas than brokers is refused.
    assert_eq!(
        create_topic_result(&bootstrap, "replicated", 3, 4),
        Err((
            "replicated".to_string(),
            RDKafkaErrorCode::InvalidReplicationFactor
        ))
    );

    // Six partitions, one replica each: leaders on all three brokers.
    let topic = "spread";
    create_topic(&bootstrap, topic, PARTITIONS);
    let led = leaders(
        cluster.node(1).bootstrap_address,
        topic,
        PARTITIONS as usize,
    );
    for n in 2..=NODES {
        let seen = leaders(
            cluster.node(n).bootstrap_address,
            topic,
            PARTITIONS as usize,
        );
        assert_eq!(seen, led, "node {n} agrees on the leaders");
    }
    assert_eq!(led.len(), PARTITIONS as usize);
    let leader_set: BTreeSet<i32> = led.values().map(|(l, _)| *l).collect();
    assert_eq!(leader_set, (1..=NODES as i32).collect(), "leaders {led:?}");

    // A broker that does not lead a partition refuses it, with the leader as a hint (Fetch
    // v12), and an epoch the leader has not reached yet is UNKNOWN_LEADER_EPOCH.
    let (partition, (leader, epoch)) = led.iter().next().map(|(p, l)| (*p, *l)).unwrap();
    let other = (1..=NODES).find(|n| *n as i32 != leader).unwrap();
    let mut raw = RawConnection::connect(cluster.node(other).bootstrap_address);
    let mut fetch = fetch_request(topic, 0);
    fetch.topics[0].partitions[0].partition = partition;
    let refused = raw.request(&fetch, 12);
    let p = &refused.responses[0].partitions[0];
    assert_eq!(p.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(
        (p.current_leader.leader_id.0, p.current_leader.leader_epoch),
        (leader, epoch)
    );
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(
                    common::raw::encode_batch(1, 10, now_ms()).freeze(),
                ))])]);
    let produced = raw.request(&produce, 9);
    assert_eq!(
        produced.responses[0].partition_responses[0].error_code,
        NOT_LEADER_OR_FOLLOWER
    );
    let mut at_leader = RawConnection::connect(cluster.node(leader as u32).bootstrap_address);
    fetch.topics[0].partitions[0].current_leader_epoch = epoch + 1;
    let ahead = at_leader.request(&fetch, 12);
    assert_eq!(
        ahead.responses[0].partitions[0].error_code,
        UNKNOWN_LEADER_EPOCH
    );

    // A consumer group across the brokers: two members share the six partitions (settled
    // before anything is produced, so no rebalance replays records) and get every record
    // exactly once; the coordinator is one broker, and the others refuse the group with
    // NOT_COORDINATOR.
    let group = "cluster-group";
    let members: Vec<GroupMember> = ["a", "b"]
        .iter()
        .map(|name| GroupMember::start(&bootstrap, group, topic, name, &[], false))
        .collect();
    wait_for_stable_cover(
        Duration::from_secs(60),
        Duration::from_secs(1),
        PARTITIONS,
        "two members share the partitions",
        || members.iter().map(|m| m.assignment()).collect(),
    );

    // 3,000 records with acks=all, read back exactly once from the three leaders.
    let records = records_round_robin(RECORDS, 11);
    let positions = produce_acks_all(&bootstrap, topic, &records);
    let consumed = consume(
        &bootstrap,
        topic,
        &all_partitions_from_start(),
        RECORDS,
        Duration::from_secs(60),
    );
    assert_consumed_exactly(&records, &positions, &consumed);

    let deadline = Instant::now() + Duration::from_secs(90);
    while members
        .iter()
        .map(|m| m.state.record_count())
        .sum::<usize>()
        < RECORDS
    {
        assert!(
            Instant::now() < deadline,
            "the group received {} of {RECORDS} records; assignments {:?}, errors {:?}",
            members
                .iter()
                .map(|m| m.state.record_count())
                .sum::<usize>(),
            members.iter().map(|m| m.assignment()).collect::<Vec<_>>(),
            members.iter().map(|m| m.state.errors()).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Linger: nothing more may arrive.
    std::thread::sleep(Duration::from_secs(1));
    let received: Vec<(String, Vec<(i32, i64)>)> = members
        .iter()
        .map(|m| (m.name.clone(), m.state.records()))
        .collect();
    assert_exactly_once(&positions, &received);
    for member in &members {
        member.with_consumer(Duration::from_secs(30), |c| {
            c.commit_consumer_state(CommitMode::Sync)
                .expect("commit offsets")
        });
    }
    let find = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_static_str(group))
        .with_key_type(0);
    let found = RawConnection::connect(cluster.node(1).bootstrap_address).request(&find, 3);
    assert_eq!(found.error_code, 0, "{found:?}");
    let coordinator = found.node_id.0;
    assert!((1..=NODES as i32).contains(&coordinator));
    let offset_fetch = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes((0..PARTITIONS).collect())]));
    for n in 1..=NODES {
        let answer =
            RawConnection::connect(cluster.node(n).bootstrap_address).request(&offset_fetch, 7);
        if n as i32 == coordinator {
            assert_eq!(answer.error_code, 0);
            let committed: i64 = answer.topics[0]
                .partitions
                .iter()
                .map(|p| p.committed_offset)
                .sum();
            assert_eq!(committed, RECORDS as i64, "{answer:?}");
        } else {
            assert_eq!(answer.error_code, NOT_COORDINATOR, "node {n}");
        }
    }
    for member in members {
        member.close(Duration::from_secs(30));
    }
    // A fresh consumer of the group resumes at the committed offsets through librdkafka.
    let resumed = group_consumer(&bootstrap, group, "c", &[], false);
    let mut wanted = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        wanted.add_partition(topic, p);
    }
    let committed = resumed
        .committed_offsets(wanted, CALL_TIMEOUT)
        .expect("committed offsets");
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            other => panic!("partition {} has {other:?}", e.partition()),
        })
        .sum();
    assert_eq!(total, RECORDS as i64);
    eprintln!("scenario done after {:?}", started.elapsed());
}

#[test]
fn a_new_active_controller_takes_over_after_kill_9() {
    let cluster = start_cluster();
    let bootstrap = cluster.bootstrap();
    let topic = "before-failover";
    create_topic(&bootstrap, topic, PARTITIONS);
    let records = records_round_robin(600, 21);
    let positions = produce_acks_all(&bootstrap, topic, &records);

    let active = raw_describe_cluster(cluster.node(1).bootstrap_address)
        .controller_id
        .0;
    assert!((1..=NODES as i32).contains(&active));
    let victim = active as u32;
    let before = leaders(
        cluster.node(victim).bootstrap_address,
        topic,
        PARTITIONS as usize,
    );
    cluster.kill(victim).expect("kill -9 the active controller");
    let killed_at = Instant::now();

    // Topic creation works again within 15 s, at a new active controller.
    let survivors = bootstrap_without(&cluster, victim);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match try_create_topic(&survivors, "after-failover", 3, 1, Duration::from_secs(3)) {
            Ok(Ok(_)) => break,
            // An earlier attempt timed out on the client but went through.
            Ok(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) if attempts > 1 => break,
            other => assert!(
                killed_at.elapsed() < Duration::from_secs(15),
                "topic creation still failing {:?} after the kill ({attempts} attempts): {other:?}",
                killed_at.elapsed()
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let recovered_in = killed_at.elapsed();
    eprintln!("topic created {recovered_in:?} after the kill ({attempts} attempts)");
    let survivor = (1..=NODES).find(|n| *n != victim).unwrap();
    let new_active = raw_describe_cluster(cluster.node(survivor).bootstrap_address)
        .controller_id
        .0;
    assert_ne!(new_active, active);
    assert!((1..=NODES as i32).contains(&new_active));

    // The dead broker is fenced once its session ends: the survivors stop listing it, and
    // its partitions have no leader until it returns.
    wait_until(Duration::from_secs(20), || lists_brokers(&cluster, 2))
        .expect("the killed broker leaves the metadata");
    let offline: Vec<i32> = leaders(
        cluster.node(survivor).bootstrap_address,
        topic,
        PARTITIONS as usize,
    )
    .into_iter()
    .filter(|(_, (leader, _))| *leader == -1)
    .map(|(p, _)| p)
    .collect();
    let victims: Vec<i32> = before
        .iter()
        .filter(|(_, (leader, _))| *leader == active)
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(offline, victims);

    // Back after a restart: it registers again, leads its partitions at a newer epoch, and
    // every acknowledged record is still there exactly once.
    cluster.restart(victim).expect("restart the killed node");
    wait_until(Duration::from_secs(30), || {
        lists_brokers(&cluster, NODES as usize)
    })
    .expect("the restarted broker is listed again");
    let mut after = BTreeMap::new();
    wait_until(Duration::from_secs(20), || {
        after = leaders(
            cluster.node(survivor).bootstrap_address,
            topic,
            PARTITIONS as usize,
        );
        after.values().all(|(l, _)| *l != -1)
    })
    .expect("every partition has a leader again");
    for p in &victims {
        assert_eq!(
            after[p].0, active,
            "partition {p} returns to its only replica"
        );
        assert!(
            after[p].1 > before[p].1,
            "partition {p} has a newer leader epoch"
        );
    }
    let consumed = consume(
        &cluster.bootstrap(),
        topic,
        &all_partitions_from_start(),
        records.len(),
        Duration::from_secs(60),
    );
    assert_consumed_exactly(&records, &positions, &consumed);
    // A client still at the old epoch is fenced.
    let p = victims[0];
    let mut fetch = fetch_request(topic, 0);
    fetch.topics[0].partitions[0].partition = p;
    fetch.topics[0].partitions[0].current_leader_epoch = before[&p].1;
    let fenced = RawConnection::connect(cluster.node(victim).bootstrap_address).request(&fetch, 12);
    assert_eq!(
        fenced.responses[0].partitions[0].error_code,
        FENCED_LEADER_EPOCH
    );
    // The topic created meanwhile is usable from the whole cluster.
    assert_clients_work(&cluster.bootstrap(), "after-failover");

    // A graceful stop asks the controller to fence the broker first, and the broker comes
    // back on restart.
    let third = (1..=NODES)
        .find(|n| *n != victim && *n != survivor)
        .unwrap();
    cluster.stop(third).expect("graceful stop");
    let logs = cluster.logs(third);
    assert!(
        logs.contains("controlled shutdown: fenced by the controller")
            && logs.contains("stopped cleanly"),
        "{}",
        cluster.logs_tail(third, 4096)
    );
    cluster
        .restart(third)
        .expect("restart after a graceful stop");
    wait_until(Duration::from_secs(30), || {
        lists_brokers(&cluster, NODES as usize)
    })
    .expect("the stopped broker is listed again");
    assert_clients_work(&cluster.bootstrap(), "after-restarts");
}

#[test]
fn transactions_commit_and_abort_across_brokers() {
    let cluster = start_cluster();
    let bootstrap = cluster.bootstrap();
    let topic = "tx-spread";
    create_topic(&bootstrap, topic, PARTITIONS);
    let leader_set: BTreeSet<i32> = leaders(
        cluster.node(1).bootstrap_address,
        topic,
        PARTITIONS as usize,
    )
    .values()
    .map(|(l, _)| *l)
    .collect();
    assert_eq!(leader_set.len(), NODES as usize);

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", "cluster-tx")
        .set("linger.ms", "5")
        .create()
        .expect("create transactional producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init_transactions");
    let send = |prefix: &str| -> Vec<String> {
        let values: Vec<String> = (0..60).map(|i| format!("{prefix}-{i:02}")).collect();
        send_values(&producer, topic, PARTITIONS, &values);
        values
    };
    producer.begin_transaction().expect("begin");
    let committed = send("a");
    producer.commit_transaction(CALL_TIMEOUT).expect("commit a");
    producer.begin_transaction().expect("begin");
    let aborted = send("b");
    producer.abort_transaction(CALL_TIMEOUT).expect("abort b");

    // A consume-transform-produce step: the group's offsets commit with the transaction,
    // through the group's coordinator, wherever it is.
    let group = "cluster-tx-group";
    let source = group_consumer(&bootstrap, group, "tx-reader", &[], false);
    producer.begin_transaction().expect("begin");
    let mut also_committed = send("c");
    let mut offsets = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        offsets
            .add_partition_offset(topic, p, Offset::Offset(5))
            .expect("offset");
    }
    producer
        .send_offsets_to_transaction(
            &offsets,
            &source.group_metadata().expect("group metadata"),
            CALL_TIMEOUT,
        )
        .expect("send offsets to the transaction");
    producer.commit_transaction(CALL_TIMEOUT).expect("commit c");

    let mut expected = committed;
    expected.append(&mut also_committed);
    expected.sort();
    let seen = read_values(
        &bootstrap,
        topic,
        PARTITIONS,
        "read_committed",
        Duration::from_secs(2),
    );
    assert_eq!(seen, expected, "read_committed sees a and c, not b");
    let all = read_values(
        &bootstrap,
        topic,
        PARTITIONS,
        "read_uncommitted",
        Duration::from_secs(2),
    );
    assert_eq!(all.len(), expected.len() + aborted.len());

    let mut wanted = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        wanted.add_partition(topic, p);
    }
    let committed_offsets = source
        .committed_offsets(wanted, CALL_TIMEOUT)
        .expect("committed offsets");
    for e in committed_offsets.elements() {
        assert_eq!(e.offset(), Offset::Offset(5), "partition {}", e.partition());
    }
}

/// The partition directories of `topic` in node `node`'s data directory.
fn partition_dirs(cluster: &Cluster, node: u32, topic: &str) -> BTreeSet<i32> {
    std::fs::read_dir(cluster.node(node).data_dir)
        .expect("list the data dir")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let (t, p) = name.rsplit_once('-')?;
            (t == topic).then(|| p.parse().ok()).flatten()
        })
        .collect()
}

#[test]
fn topic_admin_goes_through_the_controller_to_every_broker() {
    let cluster = start_cluster();
    let bootstrap = cluster.bootstrap();
    let admin = admin(&bootstrap);
    let options = admin_options();

    // Explicit replica assignments: partition 0 on broker 2, partition 1 on broker 3.
    let assigned = NewTopic::new("assigned", 2, TopicReplication::Variable(&[&[2], &[3]]));
    let created = futures::executor::block_on(admin.create_topics([&assigned], &options))
        .expect("CreateTopics");
    assert_eq!(created, vec![Ok("assigned".to_string())]);
    let led = leaders(cluster.node(1).bootstrap_address, "assigned", 2);
    assert_eq!(led[&0].0, 2);
    assert_eq!(led[&1].0, 3);
    // Each broker has the logs of exactly the partitions it holds (once it has applied the
    // image: the answering broker waits for its own image only).
    let dirs_are = |expected: [BTreeSet<i32>; 3]| {
        wait_until(Duration::from_secs(10), || {
            (1..=NODES).all(|n| partition_dirs(&cluster, n, "assigned") == expected[n as usize - 1])
        })
        .unwrap_or_else(|e| {
            let found: Vec<_> = (1..=NODES)
                .map(|n| partition_dirs(&cluster, n, "assigned"))
                .collect();
            panic!("partition directories {found:?}, expected {expected:?}: {e}")
        })
    };
    dirs_are([BTreeSet::new(), BTreeSet::from([0]), BTreeSet::from([1])]);
    // Several replicas in an assignment: the first leads, both hold the log.
    let replicated = NewTopic::new("assigned-twice", 1, TopicReplication::Variable(&[&[3, 1]]));
    let created = futures::executor::block_on(admin.create_topics([&replicated], &options))
        .expect("CreateTopics");
    assert_eq!(created, vec![Ok("assigned-twice".to_string())]);
    assert_eq!(
        leaders(cluster.node(1).bootstrap_address, "assigned-twice", 1)[&0].0,
        3
    );
    wait_until(Duration::from_secs(10), || {
        partition_dirs(&cluster, 3, "assigned-twice") == BTreeSet::from([0])
            && partition_dirs(&cluster, 1, "assigned-twice") == BTreeSet::from([0])
            && partition_dirs(&cluster, 2, "assigned-twice").is_empty()
    })
    .expect("replica logs on brokers 3 and 1 only");

    // validate_only creates nothing.
    let dry = NewTopic::new("dry-run", 3, TopicReplication::Fixed(1));
    let checked = futures::executor::block_on(
        admin.create_topics([&dry], &admin_options().validate_only(true)),
    )
    .expect("CreateTopics");
    assert_eq!(checked, vec![Ok("dry-run".to_string())]);
    assert!(raw_metadata(cluster.node(2).bootstrap_address, None)
        .topics
        .iter()
        .all(|t| t.name.as_ref().map(|n| n.as_str()) != Some("dry-run")));

    // CreatePartitions with an explicit replica for the new partition.
    let grown = futures::executor::block_on(admin.create_partitions(
        [&NewPartitions::new("assigned", 3).assign(&[&[1]])],
        &options,
    ))
    .expect("CreatePartitions");
    assert_eq!(grown, vec![Ok("assigned".to_string())]);
    assert_eq!(
        leaders(cluster.node(3).bootstrap_address, "assigned", 3)[&2].0,
        1
    );
    dirs_are([
        BTreeSet::from([2]),
        BTreeSet::from([0]),
        BTreeSet::from([1]),
    ]);

    // A topic config set through one broker is in force on every broker.
    let altered = futures::executor::block_on(admin.alter_configs(
        [&AlterConfig::new(ResourceSpecifier::Topic("assigned")).set("retention.ms", "123456")],
        &options,
    ))
    .expect("AlterConfigs");
    assert!(altered.iter().all(Result::is_ok), "{altered:?}");
    for n in 1..=NODES {
        let node_admin = admin_one(&cluster, n);
        let retention = || {
            let described = futures::executor::block_on(
                node_admin.describe_configs([&ResourceSpecifier::Topic("assigned")], &options),
            )
            .expect("DescribeConfigs");
            let resource = described[0].as_ref().expect("topic configs");
            resource.get("retention.ms").and_then(|e| e.value.clone())
        };
        wait_until(Duration::from_secs(10), || {
            retention().as_deref() == Some("123456")
        })
        .unwrap_or_else(|e| panic!("node {n} has retention.ms {:?}: {e}", retention()));
    }

    // A broker's dynamic config goes through the metadata image back to that broker.
    let altered = futures::executor::block_on(admin.alter_configs(
        [&AlterConfig::new(ResourceSpecifier::Broker(2)).set("log.retention.ms", "654321")],
        &options,
    ))
    .expect("AlterConfigs");
    assert!(altered.iter().all(Result::is_ok), "{altered:?}");
    let described = futures::executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Broker(2)], &options),
    )
    .expect("DescribeConfigs");
    let resource = described[0].as_ref().expect("broker configs");
    let retention = resource.get("log.retention.ms").expect("log.retention.ms");
    assert_eq!(retention.value.as_deref(), Some("654321"));
    assert_eq!(
        retention.source,
        rdkafka::admin::ConfigSource::DynamicBroker
    );

    // Deleting the topic removes its logs from every broker.
    let deleted = futures::executor::block_on(admin.delete_topics(&["assigned"], &options))
        .expect("DeleteTopics");
    assert_eq!(deleted, vec![Ok("assigned".to_string())]);
    wait_until(Duration::from_secs(10), || {
        (1..=NODES).all(|n| partition_dirs(&cluster, n, "assigned").is_empty())
    })
    .expect("every broker removes the deleted topic's logs");
    let metadata = raw_metadata(cluster.node(1).bootstrap_address, Some(&["assigned"]));
    assert_eq!(
        metadata.topics[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );

    // Auto-creation through Metadata goes through the controller too.
    assert_clients_work(&bootstrap, "auto-created");
    assert!(leaders(cluster.node(2).bootstrap_address, "auto-created", 1).len() == 1);
}

/// An admin client that talks to node `node` only.
fn admin_one(
    cluster: &Cluster,
    node: u32,
) -> rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> {
    admin(&cluster.node(node).bootstrap_address.to_string())
}

#[test]
fn a_controller_only_node_votes_and_serves_no_clients() {
    let ports = free_ports(3).expect("ports");
    let (controller_1, plaintext_2, controller_2) = (ports[0], ports[1], ports[2]);
    let voters = format!("1@127.0.0.1:{controller_1},2@127.0.0.1:{controller_2}");
    let dirs = [
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    ];
    let command = |settings: &[(&str, String)]| {
        let mut command = std::process::Command::new(fjord_bin());
        command
            .arg("server")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        for (key, value) in settings {
            command.arg("--override").arg(format!("{key}={value}"));
        }
        command
    };
    let common = |id: i32, dir: &tempfile::TempDir| {
        vec![
            ("node.id", id.to_string()),
            ("controller.quorum.voters", voters.clone()),
            ("controller.listener.names", "CONTROLLER".to_string()),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".to_string(),
            ),
            ("broker.heartbeat.interval.ms", "500".to_string()),
            ("log.dirs", dir.path().display().to_string()),
        ]
    };
    let controller = ManagedProcess::new("controller-only node 1");
    let mut settings = common(1, &dirs[0]);
    settings.push(("process.roles", "controller".to_string()));
    settings.push((
        "listeners",
        format!("CONTROLLER://127.0.0.1:{controller_1}"),
    ));
    controller.spawn(command(&settings)).expect("spawn node 1");
    let broker = ManagedProcess::new("node 2");
    let mut settings = common(2, &dirs[1]);
    settings.push(("process.roles", "broker,controller".to_string()));
    settings.push((
        "listeners",
        format!("PLAINTEXT://127.0.0.1:{plaintext_2},CONTROLLER://127.0.0.1:{controller_2}"),
    ));
    broker.spawn(command(&settings)).expect("spawn node 2");
    controller
        .wait_for_line(START_TIMEOUT, |l| {
            l.contains("fjord controller listening on CONTROLLER://")
                .then_some(())
        })
        .expect("node 1 listens");
    broker
        .wait_for_line(START_TIMEOUT, |l| {
            l.contains("listening on PLAINTEXT://").then_some(())
        })
        .expect("node 2 serves clients");

    let address: SocketAddr = format!("127.0.0.1:{plaintext_2}").parse().unwrap();
    let metadata = raw_metadata(address, None);
    let brokers: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
    assert_eq!(brokers, vec![2], "only node 2 is a broker");
    // Clients are given a broker as the controller, which forwards admin requests to the
    // active controller wherever it is.
    assert_eq!(metadata.controller_id.0, 2);
    create_topic(&address.to_string(), "two-voters", 2);
    assert_clients_work(&address.to_string(), "two-voters");
    assert!(
        !controller.logs().contains("registered with the controller"),
        "a controller-only node does not register as a broker"
    );
    broker.stop(Duration::from_secs(20)).expect("stop node 2");
    controller
        .stop(Duration::from_secs(20))
        .expect("stop node 1");
    assert!(controller.logs().contains("stopped cleanly"));
}

/// The node that has the broker role only in [`start_with_a_broker_only_node`].
const BROKER_ONLY: u32 = 4;

/// Three combined nodes and node 4, a broker-only node, each listing four brokers.
fn start_with_a_broker_only_node() -> Cluster {
    let mut builder = Cluster::builder(fjord_bin())
        .nodes(4)
        .roles(BROKER_ONLY, NodeRoles::Broker);
    for (key, value) in CLUSTER_OVERRIDES {
        builder = builder.override_config(*key, *value);
    }
    builder
        .ready_when(START_TIMEOUT, |cluster| lists_brokers(cluster, 4))
        .start()
        .unwrap_or_else(|e| panic!("cluster did not start: {e:#}"))
}

/// Per partition of `topic` in the raw Metadata of `address`: (leader, replicas, ISR).
fn replicas(address: SocketAddr, topic: &str) -> BTreeMap<i32, (i32, Vec<i32>, Vec<i32>)> {
    let metadata = raw_metadata(address, Some(&[topic]));
    metadata.topics[0]
        .partitions
        .iter()
        .map(|p| {
            let ids = |nodes: &[kafka_protocol::messages::BrokerId]| {
                let mut ids: Vec<i32> = nodes.iter().map(|b| b.0).collect();
                ids.sort_unstable();
                ids
            };
            (
                p.partition_index,
                (p.leader_id.0, ids(&p.replica_nodes), ids(&p.isr_nodes)),
            )
        })
        .collect()
}

/// The controller id in `address`'s Metadata and in its DescribeCluster.
fn controller_ids(address: SocketAddr) -> (i32, i32) {
    (
        raw_metadata(address, Some(&[])).controller_id.0,
        raw_describe_cluster(address).controller_id.0,
    )
}

/// The controller id `address` gives clients, the same in Metadata and DescribeCluster.
fn controller_id(address: SocketAddr) -> i32 {
    let (from_metadata, described) = controller_ids(address);
    assert_eq!(
        from_metadata, described,
        "Metadata and DescribeCluster at {address}"
    );
    described
}

#[test]
fn a_broker_only_node_hosts_replicas_and_follows_a_new_active_controller() {
    let started = Instant::now();
    let cluster = start_with_a_broker_only_node();
    let only_four = cluster.node(BROKER_ONLY).bootstrap_address;
    let through_four = only_four.to_string();
    eprintln!("cluster ready after {:?}", started.elapsed());

    // Node 4 binds no CONTROLLER listener: it follows the voters from outside and registers.
    let logs = cluster.logs(BROKER_ONLY);
    assert!(
        logs.contains("following the controller quorum from outside")
            && logs.contains("registered with the controller")
            && !logs.contains("controller started"),
        "{}",
        cluster.logs_tail(BROKER_ONLY, 4096)
    );
    assert!(
        std::net::TcpStream::connect_timeout(
            &cluster.node(BROKER_ONLY).controller_address,
            Duration::from_secs(1)
        )
        .is_err(),
        "a broker-only node has no CONTROLLER listener"
    );

    // librdkafka, bootstrapped at node 4 alone, sees the four brokers at their addresses.
    let metadata = consumer(&through_four)
        .fetch_metadata(None, CALL_TIMEOUT)
        .expect("fetch metadata");
    let brokers: BTreeMap<i32, String> = metadata
        .brokers()
        .iter()
        .map(|b| (b.id(), format!("{}:{}", b.host(), b.port())))
        .collect();
    let expected: BTreeMap<i32, String> = (1..=4)
        .map(|n| (n as i32, cluster.node(n).bootstrap_address.to_string()))
        .collect();
    assert_eq!(brokers, expected);
    // Raw Metadata and DescribeCluster: every broker lists node 4 and names the same active
    // controller, a voter (which is also a broker, so it is given to clients).
    let mut controllers = BTreeSet::new();
    for n in 1..=4 {
        let address = cluster.node(n).bootstrap_address;
        let described = raw_describe_cluster(address);
        assert_eq!(described.error_code, 0);
        let ids: BTreeSet<i32> = described.brokers.iter().map(|b| b.broker_id.0).collect();
        assert_eq!(ids, (1..=4).collect(), "node {n}");
        controllers.insert(controller_id(address));
    }
    assert_eq!(controllers.len(), 1, "controllers {controllers:?}");
    let active = *controllers.first().unwrap();
    assert!((1..=3).contains(&active), "{active}");

    // A replication-factor-3 topic created through node 4: a quarter of the replicas land on
    // it, every replica joins the ISR, and librdkafka produces and consumes through it.
    let topic = "replicated";
    assert_eq!(
        try_create_topic(&through_four, topic, 4, 3, CALL_TIMEOUT).expect("CreateTopics"),
        Ok(topic.to_string())
    );
    let mut placed = BTreeMap::new();
    wait_until(Duration::from_secs(20), || {
        placed = replicas(only_four, topic);
        placed.len() == 4 && placed.values().all(|(_, r, isr)| r.len() == 3 && isr == r)
    })
    .unwrap_or_else(|e| panic!("replicas and ISRs of {topic}: {placed:?}: {e}"));
    let hosted: BTreeSet<i32> = placed
        .iter()
        .filter(|(_, (_, replicas, _))| replicas.contains(&(BROKER_ONLY as i32)))
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(
        hosted.len(),
        3,
        "node 4 holds three of the twelve replicas: {placed:?}"
    );
    wait_until(Duration::from_secs(10), || {
        partition_dirs(&cluster, BROKER_ONLY, topic) == hosted
    })
    .expect("node 4 has the logs of its replicas");
    let records: Vec<TestRecord> = generate_records(600, 41, now_ms() - 60_000)
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.partition = Some((i % 4) as i32);
            r
        })
        .collect();
    let positions = produce_acks_all(&through_four, topic, &records);
    let from_start: Vec<(i32, Offset)> = (0..4).map(|p| (p, Offset::Beginning)).collect();
    let consumed = consume(
        &through_four,
        topic,
        &from_start,
        records.len(),
        Duration::from_secs(60),
    );
    assert_consumed_exactly(&records, &positions, &consumed);
    // acks=all was answered with node 4 in every ISR it belongs to: it has the records.
    let after = replicas(only_four, topic);
    for p in &hosted {
        assert!(after[p].2.contains(&(BROKER_ONLY as i32)), "{after:?}");
    }

    // kill -9 the active controller: the two other voters elect a new one, and node 4 follows
    // it (it names it to clients, and sees the dead broker fenced).
    cluster
        .kill(active as u32)
        .expect("kill -9 the active controller");
    let killed_at = Instant::now();
    let mut seen = (0, 0);
    wait_until(Duration::from_secs(20), || {
        seen = controller_ids(only_four);
        seen.0 == seen.1 && seen.0 != active && (1..=3).contains(&seen.0)
    })
    .unwrap_or_else(|e| panic!("node 4 names {seen:?} as the controller: {e}"));
    eprintln!(
        "node 4 names controller {} {:?} after the kill",
        seen.0,
        killed_at.elapsed()
    );
    wait_until(Duration::from_secs(20), || {
        raw_metadata(only_four, Some(&[])).brokers.len() == 3
    })
    .expect("node 4 sees the killed broker fenced");

    // Topic creation through node 4 still works, at the new active controller, and the new
    // topic (three replicas on the three live brokers, so one on node 4) serves clients.
    let mut attempts = 0;
    loop {
        attempts += 1;
        match try_create_topic(
            &through_four,
            "after-failover",
            3,
            3,
            Duration::from_secs(3),
        ) {
            Ok(Ok(_)) => break,
            // An earlier attempt timed out on the client but went through.
            Ok(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) if attempts > 1 => break,
            other => assert!(
                killed_at.elapsed() < Duration::from_secs(30),
                "topic creation through node 4 still failing {:?} after the kill: {other:?}",
                killed_at.elapsed()
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut created = BTreeMap::new();
    wait_until(Duration::from_secs(10), || {
        created = replicas(only_four, "after-failover");
        created.len() == 3
            && created
                .values()
                .all(|(_, r, _)| r.contains(&(BROKER_ONLY as i32)) && !r.contains(&active))
    })
    .unwrap_or_else(|e| panic!("after-failover: {created:?}: {e}"));
    assert_clients_work(&through_four, "after-failover");
    // Leadership of the first topic moved off the dead broker, and every acknowledged record
    // is still read exactly once through node 4.
    let moved = replicas(only_four, topic);
    assert!(
        moved
            .values()
            .all(|(leader, _, _)| *leader != active && *leader != -1),
        "{moved:?}"
    );
    let consumed = consume(
        &through_four,
        topic,
        &from_start,
        records.len(),
        Duration::from_secs(60),
    );
    assert_consumed_exactly(&records, &positions, &consumed);

    // A graceful stop of node 4 is a controlled shutdown through the remote quorum, and it
    // registers again after a restart.
    cluster.stop(BROKER_ONLY).expect("graceful stop of node 4");
    let logs = cluster.logs(BROKER_ONLY);
    assert!(
        logs.contains("controlled shutdown: fenced by the controller")
            && logs.contains("stopped cleanly"),
        "{}",
        cluster.logs_tail(BROKER_ONLY, 4096)
    );
    cluster.restart(BROKER_ONLY).expect("restart node 4");
    wait_until(Duration::from_secs(30), || {
        raw_metadata(only_four, Some(&[])).brokers.len() == 3
    })
    .expect("node 4 is listed again");
    assert_clients_work(&through_four, "after-restart");
    eprintln!("scenario done after {:?}", started.elapsed());
}

#[test]
fn broker_only_nodes_form_a_cluster_around_a_controller_only_node() {
    // Kafka's isolated mode: node 1 is the only voter, nodes 2 and 3 are brokers only.
    let mut builder = Cluster::builder(fjord_bin())
        .nodes(3)
        .roles(1, NodeRoles::Controller)
        .roles(2, NodeRoles::Broker)
        .roles(3, NodeRoles::Broker)
        .override_config("offsets.topic.replication.factor", "2")
        .override_config("transaction.state.log.replication.factor", "2");
    for (key, value) in CLUSTER_OVERRIDES {
        builder = builder.override_config(*key, *value);
    }
    let cluster = builder
        .ready_when(START_TIMEOUT, |cluster| lists_brokers(cluster, 2))
        .start()
        .unwrap_or_else(|e| panic!("cluster did not start: {e:#}"));
    let bootstrap = cluster.bootstrap();
    assert_eq!(
        bootstrap,
        format!(
            "{},{}",
            cluster.node(2).bootstrap_address,
            cluster.node(3).bootstrap_address
        )
    );
    assert!(!cluster.logs(1).contains("registered with the controller"));

    // The active controller is not a broker, so each broker names itself as the controller
    // (clients send admin requests to it, and it forwards them).
    for n in [2, 3] {
        let address = cluster.node(n).bootstrap_address;
        let ids: BTreeSet<i32> = raw_describe_cluster(address)
            .brokers
            .iter()
            .map(|b| b.broker_id.0)
            .collect();
        assert_eq!(ids, BTreeSet::from([2, 3]));
        assert_eq!(controller_id(address), n as i32);
    }

    // Replicated between the two broker-only nodes; a consumer group works too.
    let topic = "isolated";
    assert_eq!(
        try_create_topic(&bootstrap, topic, 2, 2, CALL_TIMEOUT).expect("CreateTopics"),
        Ok(topic.to_string())
    );
    let address = cluster.node(2).bootstrap_address;
    let mut placed = BTreeMap::new();
    wait_until(Duration::from_secs(20), || {
        placed = replicas(address, topic);
        placed.len() == 2 && placed.values().all(|(_, r, isr)| *r == [2, 3] && isr == r)
    })
    .unwrap_or_else(|e| panic!("replicas of {topic}: {placed:?}: {e}"));
    assert_clients_work(&bootstrap, topic);
    let member = GroupMember::start(&bootstrap, "isolated-group", topic, "a", &[], false);
    wait_for_stable_cover(
        Duration::from_secs(60),
        Duration::from_secs(1),
        2,
        "one member gets both partitions",
        || vec![member.assignment()],
    );
    member.close(Duration::from_secs(30));
}

#[test]
fn a_broker_killed_mid_transaction_exposes_no_partial_transaction() {
    let cluster = start_cluster();
    let bootstrap = cluster.bootstrap();
    let topic = "tx-kill";
    create_topic(&bootstrap, topic, PARTITIONS);
    let leader_set: BTreeSet<i32> = leaders(
        cluster.node(1).bootstrap_address,
        topic,
        PARTITIONS as usize,
    )
    .values()
    .map(|(l, _)| *l)
    .collect();
    assert_eq!(
        leader_set.len(),
        NODES as usize,
        "partitions on every broker"
    );
    let transactional = |bootstrap: &str| -> ThreadedProducer<DefaultProducerContext> {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("transactional.id", "cluster-kill-tx")
            .set("linger.ms", "5")
            .create()
            .expect("create transactional producer");
        producer
            .init_transactions(Duration::from_secs(60))
            .expect("init_transactions");
        producer
    };
    let send = |producer: &ThreadedProducer<DefaultProducerContext>, prefix: &str| {
        let values: Vec<String> = (0..60).map(|i| format!("{prefix}-{i:02}")).collect();
        send_values(producer, topic, PARTITIONS, &values);
        values
    };
    let mut expected = {
        let producer = transactional(&bootstrap);
        producer.begin_transaction().expect("begin");
        let done = send(&producer, "done");
        producer.commit_transaction(CALL_TIMEOUT).expect("commit");
        producer.begin_transaction().expect("begin");
        send(&producer, "open");
        // The transaction is open, its records acknowledged on every broker.
        cluster.kill(2).expect("kill -9 node 2");
        done
    };
    cluster.restart(2).expect("restart node 2");
    wait_until(START_TIMEOUT, || lists_brokers(&cluster, NODES as usize))
        .expect("node 2 is back in the cluster");
    let seen = read_values(
        &bootstrap,
        topic,
        PARTITIONS,
        "read_committed",
        Duration::from_secs(3),
    );
    assert_eq!(seen, expected, "only the committed transaction is visible");

    // A new instance fences the old one, whose open transaction is aborted, and carries on.
    let producer = transactional(&bootstrap);
    producer.begin_transaction().expect("begin");
    expected.extend(send(&producer, "after"));
    producer.commit_transaction(CALL_TIMEOUT).expect("commit");
    expected.sort();
    let seen = read_values(
        &bootstrap,
        topic,
        PARTITIONS,
        "read_committed",
        Duration::from_secs(3),
    );
    assert_eq!(seen, expected, "the open transaction never appears");
}
