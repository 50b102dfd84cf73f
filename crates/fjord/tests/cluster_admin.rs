//! Leader elections and partition reassignments on real clusters (the testkit's `Cluster`),
//! through raw ElectLeaders, AlterPartitionReassignments and ListPartitionReassignments
//! requests sent to a broker that forwards them to the active controller, and through
//! `fjord leader-election`, `fjord reassign-partitions` and `fjord topics --describe`.
//!
//! With one replica per partition: a partition led by its preferred replica needs no
//! election, a leaderless one has no eligible leader, and reassignments naming unknown
//! brokers, repeated brokers or unknown partitions are refused. With three replicas: a
//! preferred election moves leadership back to a restarted broker, and a partition moves
//! onto other brokers while a producer writes to it, followed with `--verify`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::raw::{topic_name, RawConnection};
use common::tool::{run_tool, tool_ok};
use common::*;
use fjord_testkit::{wait_until, Cluster};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, MetadataResponse,
};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::topic_partition_list::Offset;

const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Kafka error codes the tests expect.
const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_REQUEST: i16 = 42;
const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
const ELECTION_NOT_NEEDED: i16 = 84;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

/// Settings for fast tests: quick heartbeats and fencing, few internal partitions.
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

/// Whether every running node's metadata lists `count` brokers.
fn lists_brokers(cluster: &Cluster, count: usize) -> bool {
    (1..=cluster.node_count())
        .filter(|n| cluster.is_running(*n) && !cluster.is_paused(*n))
        .all(|n| {
            let address = cluster.node(n).bootstrap_address;
            std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
                && raw_metadata(address, Some(&[])).brokers.len() == count
        })
}

fn start_cluster(nodes: u32) -> Cluster {
    let mut builder = Cluster::builder(fjord_bin()).nodes(nodes);
    for (key, value) in CLUSTER_OVERRIDES {
        builder = builder.override_config(*key, *value);
    }
    builder
        .ready_when(START_TIMEOUT, move |cluster| {
            lists_brokers(cluster, nodes as usize)
        })
        .start()
        .unwrap_or_else(|e| panic!("cluster did not start: {e:#}"))
}

/// One partition as Metadata reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionState {
    leader: i32,
    leader_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

/// The partitions of `topic` per the broker at `address`, once it reports at least
/// `count` of them (a change reaches the other brokers' images a moment after the one that
/// answered it).
fn partitions(address: SocketAddr, topic: &str, count: usize) -> BTreeMap<i32, PartitionState> {
    let mut last = None;
    wait_until(Duration::from_secs(15), || {
        let metadata = raw_metadata(address, Some(&[topic]));
        let t = metadata.topics[0].clone();
        let ready = t.error_code == 0 && t.partitions.len() >= count;
        last = Some(t);
        ready
    })
    .unwrap_or_else(|e| panic!("metadata of {topic} at {address}: {last:?}: {e}"));
    last.expect("read at least once")
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                PartitionState {
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                },
            )
        })
        .collect()
}

/// Waits until every running node reports `topic` as `ready` says.
fn wait_for_partitions(
    cluster: &Cluster,
    topic: &str,
    count: usize,
    what: &str,
    ready: impl Fn(&BTreeMap<i32, PartitionState>) -> bool,
) -> BTreeMap<i32, PartitionState> {
    let mut last = BTreeMap::new();
    wait_until(Duration::from_secs(60), || {
        let mut all = true;
        let serving = |n: &u32| cluster.is_running(*n) && !cluster.is_paused(*n);
        for n in (1..=cluster.node_count()).filter(serving) {
            last = partitions(cluster.node(n).bootstrap_address, topic, count);
            all &= ready(&last);
        }
        all
    })
    .unwrap_or_else(|e| panic!("{what}: last seen {last:?}: {e}"));
    last
}

/// The active controller as the cluster reports it, and a running broker that is not it,
/// so requests sent there are forwarded.
fn controller_and_other(cluster: &Cluster) -> (i32, u32) {
    let controller = raw_metadata(cluster.node(1).bootstrap_address, Some(&[]))
        .controller_id
        .0;
    let other = (1..=cluster.node_count())
        .find(|n| *n as i32 != controller && cluster.is_running(*n))
        .expect("a broker other than the controller");
    (controller, other)
}

/// ElectLeaders at `version` (`None`: every partition).
fn elect(
    address: SocketAddr,
    version: i16,
    election_type: i8,
    partitions: Option<&[(&str, &[i32])]>,
) -> ElectLeadersResponse {
    let request = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_timeout_ms(30_000)
        .with_topic_partitions(partitions.map(|list| {
            list.iter()
                .map(|(topic, ps)| {
                    TopicPartitions::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(ps.to_vec())
                })
                .collect()
        }));
    RawConnection::connect(address).request(&request, version)
}

/// (topic, partition) -> (error code, message) of an ElectLeaders answer.
fn election_results(response: &ElectLeadersResponse) -> BTreeMap<(String, i32), (i16, String)> {
    response
        .replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result.iter().map(|p| {
                (
                    (t.topic.to_string(), p.partition_id),
                    (
                        p.error_code,
                        p.error_message
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                    ),
                )
            })
        })
        .collect()
}

/// AlterPartitionReassignments v0; `None` replicas cancel.
fn reassign(
    address: SocketAddr,
    targets: &[(&str, i32, Option<&[i32]>)],
) -> AlterPartitionReassignmentsResponse {
    let mut topics: Vec<ReassignableTopic> = Vec::new();
    for (topic, partition, replicas) in targets {
        let p = ReassignablePartition::default()
            .with_partition_index(*partition)
            .with_replicas(replicas.map(|r| r.iter().copied().map(BrokerId).collect()));
        match topics.iter_mut().find(|t| t.name.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                ReassignableTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(topics);
    RawConnection::connect(address).request(&request, 0)
}

/// (topic, partition) -> (error code, message) of an AlterPartitionReassignments answer.
fn reassignment_results(
    response: &AlterPartitionReassignmentsResponse,
) -> BTreeMap<(String, i32), (i16, Option<String>)> {
    assert_eq!(response.error_code, NONE, "{response:?}");
    response
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    (t.name.to_string(), p.partition_index),
                    (
                        p.error_code,
                        p.error_message.as_ref().map(|m| m.to_string()),
                    ),
                )
            })
        })
        .collect()
}

/// ListPartitionReassignments v0 of everything.
fn list_reassignments(address: SocketAddr) -> ListPartitionReassignmentsResponse {
    RawConnection::connect(address).request(
        &ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000),
        0,
    )
}

fn key(topic: &str, partition: i32) -> (String, i32) {
    (topic.to_string(), partition)
}

/// Writes `text` to a fresh file in `dir` and returns its path.
fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write file");
    path.to_string_lossy().into_owned()
}

#[test]
fn elections_and_reassignments_are_answered_by_the_controller() {
    let cluster = start_cluster(3);
    let bootstrap = cluster.bootstrap();
    let topic = "admin";
    create_topic(&bootstrap, topic, 3);
    let before = wait_for_partitions(&cluster, topic, 3, "three led partitions", |ps| {
        ps.values().all(|p| p.leader > 0)
    });
    let (_, other) = controller_and_other(&cluster);
    let address = cluster.node(other).bootstrap_address;

    // Preferred and unclean elections: every partition is led by its only replica.
    let not_needed = "Leader election not needed for topic partition.".to_string();
    for (version, election_type) in [(2, PREFERRED), (2, UNCLEAN), (1, UNCLEAN), (0, PREFERRED)] {
        let response = elect(
            address,
            version,
            election_type,
            Some(&[(topic, &[2, 0, 1, 7]), ("missing", &[0])]),
        );
        assert_eq!(response.error_code, NONE);
        let mut expected: BTreeMap<(String, i32), (i16, String)> = (0..3)
            .map(|p| (key(topic, p), (ELECTION_NOT_NEEDED, not_needed.clone())))
            .collect();
        expected.insert(
            key(topic, 7),
            (
                UNKNOWN_TOPIC_OR_PARTITION,
                "No such partition as admin-7".into(),
            ),
        );
        expected.insert(
            key("missing", 0),
            (
                UNKNOWN_TOPIC_OR_PARTITION,
                "No such topic as missing".into(),
            ),
        );
        assert_eq!(
            election_results(&response),
            expected,
            "v{version} type {election_type}"
        );
        // Results keep the request's order.
        let order: Vec<i32> = response.replica_election_results[0]
            .partition_result
            .iter()
            .map(|p| p.partition_id)
            .collect();
        assert_eq!(order, vec![2, 0, 1, 7]);
    }
    // Over everything: every topic is listed, with no partition needing an election.
    let everything = elect(address, 2, PREFERRED, None);
    assert_eq!(everything.error_code, NONE);
    assert!(everything
        .replica_election_results
        .iter()
        .any(|t| t.topic.as_str() == topic));
    assert!(election_results(&everything).is_empty(), "{everything:?}");
    // An election type Kafka does not know refuses the whole request.
    let bad = elect(address, 2, 5, Some(&[(topic, &[0])]));
    assert_eq!(bad.error_code, INVALID_REQUEST);
    assert_eq!(election_results(&bad)[&key(topic, 0)].0, INVALID_REQUEST);

    // Nothing is being reassigned, on any broker.
    for n in 1..=3 {
        let listed = list_reassignments(cluster.node(n).bootstrap_address);
        assert_eq!(
            (listed.error_code, listed.error_message.clone()),
            (NONE, None)
        );
        assert!(listed.topics.is_empty(), "node {n}: {listed:?}");
    }

    // Reassignments the controller refuses, with Kafka's messages.
    let leader = |p: i32| before[&p].leader;
    let elsewhere = (1..=3).find(|b| *b != leader(2)).unwrap();
    let response = reassign(
        address,
        &[
            (topic, 0, Some(&[99])),
            (topic, 1, Some(&[leader(1), leader(1)])),
            (topic, 2, Some(&[])),
            (topic, 7, Some(&[leader(0)])),
            ("missing", 0, Some(&[1])),
        ],
    );
    let expected = BTreeMap::from([
        (
            key(topic, 0),
            (
                INVALID_REPLICA_ASSIGNMENT,
                Some(
                    "The manual partition assignment includes broker 99, but no such broker \
                     is registered."
                        .to_string(),
                ),
            ),
        ),
        (
            key(topic, 1),
            (
                INVALID_REPLICA_ASSIGNMENT,
                Some(format!(
                    "The manual partition assignment includes the broker {} more than once.",
                    leader(1)
                )),
            ),
        ),
        (
            key(topic, 2),
            (
                INVALID_REPLICA_ASSIGNMENT,
                Some("The manual partition assignment includes an empty replica list.".into()),
            ),
        ),
        (
            key(topic, 7),
            (
                UNKNOWN_TOPIC_OR_PARTITION,
                Some("Unable to find partition admin:7.".into()),
            ),
        ),
        (
            key("missing", 0),
            (
                UNKNOWN_TOPIC_OR_PARTITION,
                Some("Unable to find a topic named missing.".into()),
            ),
        ),
    ]);
    assert_eq!(reassignment_results(&response), expected);
    // A cancellation with nothing to cancel and a target equal to the current replicas (a
    // no-op).
    let response = reassign(address, &[(topic, 0, None), (topic, 1, Some(&[leader(1)]))]);
    let results = reassignment_results(&response);
    assert_eq!(
        results[&key(topic, 0)],
        (
            NO_REASSIGNMENT_IN_PROGRESS,
            Some("No partition reassignment is in progress.".into())
        )
    );
    assert_eq!(results[&key(topic, 1)], (NONE, None));
    // None of it moved anything.
    let after = wait_for_partitions(&cluster, topic, 3, "unchanged partitions", |ps| {
        *ps == before
    });
    assert_eq!(after, before);

    // The tools, against every broker at once.
    let elect_tool = |args: &[&str]| {
        let mut all = vec!["leader-election", "--bootstrap-server", bootstrap.as_str()];
        all.extend_from_slice(args);
        run_tool(&all)
    };
    let run = elect_tool(&[
        "--election-type",
        "PREFERRED",
        "--topic",
        topic,
        "--partition",
        "0",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout,
        "Valid replica already elected for partitions admin-0\n"
    );
    let run = elect_tool(&["--election-type", "unclean", "--all-topic-partitions"]);
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), ""), "{run:?}");
    let dir = tempfile::tempdir().expect("temp dir");
    let election_file = write_file(
        &dir,
        "election.json",
        r#"{"partitions": [{"topic": "admin", "partition": 1}, {"topic": "admin", "partition": 9}]}"#,
    );
    let run = elect_tool(&[
        "--election-type",
        "PREFERRED",
        "--path-to-json-file",
        &election_file,
    ]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.stdout,
        "Valid replica already elected for partitions admin-1\n\
         Error completing leader election (PREFERRED) for partition: admin-9: \
         UNKNOWN_TOPIC_OR_PARTITION: No such partition as admin-9\n"
    );
    assert!(
        run.stderr.contains("1 replica(s) could not be elected"),
        "{run:?}"
    );

    let reassign_tool = |args: &[&str]| reassign_tool(&bootstrap, args);
    let run = reassign_tool(&["--list"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "No partition reassignments found.\n"),
        "{run:?}"
    );
    let current: Vec<String> = (0..3)
        .map(|p| {
            format!(
                r#"{{"topic":"admin","partition":{p},"replicas":[{}]}}"#,
                leader(p)
            )
        })
        .collect();
    let same = write_file(
        &dir,
        "same.json",
        &format!(r#"{{"version":1,"partitions":[{}]}}"#, current.join(",")),
    );
    let run = reassign_tool(&["--execute", "--reassignment-json-file", &same]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let rollback: Vec<String> = (0..3)
        .map(|p| {
            format!(
                r#"{{"topic":"admin","partition":{p},"replicas":[{}],"log_dirs":["any"]}}"#,
                leader(p)
            )
        })
        .collect();
    assert_eq!(
        run.stdout,
        format!(
            "Current partition replica assignment\n\n\
             {{\"version\":1,\"partitions\":[{}]}}\n\n\
             Save this to use as the --reassignment-json-file option during rollback\n\
             Successfully started partition reassignments for admin-0,admin-1,admin-2\n",
            rollback.join(",")
        )
    );
    let run = reassign_tool(&["--verify", "--reassignment-json-file", &same]);
    assert_eq!(
        run.stdout,
        "Status of partition reassignment:\n\
         Reassignment of partition admin-0 is completed.\n\
         Reassignment of partition admin-1 is completed.\n\
         Reassignment of partition admin-2 is completed.\n",
        "{run:?}"
    );
    let run = reassign_tool(&["--cancel", "--reassignment-json-file", &same]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            Some(0),
            "None of the specified partition reassignments are active.\n"
        ),
        "{run:?}"
    );
    let unknown = write_file(
        &dir,
        "unknown.json",
        r#"{"version":1,"partitions":[{"topic":"admin","partition":0,"replicas":[99]}]}"#,
    );
    let run = reassign_tool(&["--execute", "--reassignment-json-file", &unknown]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("Unknown broker id 99"), "{run:?}");
    let moved = write_file(
        &dir,
        "moved.json",
        &format!(
            r#"{{"version":1,"partitions":[{{"topic":"admin","partition":2,"replicas":[{elsewhere}]}}]}}"#
        ),
    );
    let run = reassign_tool(&["--verify", "--reassignment-json-file", &moved]);
    assert_eq!(
        run.stdout,
        format!(
            "Status of partition reassignment:\n\
             There is no active reassignment of partition admin-2, but replica set is {} \
             rather than {elsewhere}.\n",
            leader(2)
        ),
        "{run:?}"
    );

    // --generate proposes Kafka's placement over the listed brokers and changes nothing.
    let topics_file = write_file(
        &dir,
        "topics.json",
        r#"{"version":1,"topics":[{"topic":"admin"}]}"#,
    );
    let run = reassign_tool(&[
        "--generate",
        "--topics-to-move-json-file",
        &topics_file,
        "--broker-list",
        "1,2",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "Current partition replica assignment");
    assert_eq!(
        lines[1],
        format!(r#"{{"version":1,"partitions":[{}]}}"#, rollback.join(","))
    );
    assert_eq!(
        (lines[2], lines[3]),
        ("", "Proposed partition reassignment configuration")
    );
    let proposed: serde_json::Value = serde_json::from_str(lines[4]).expect("proposal JSON");
    let proposed = proposed["partitions"].as_array().expect("partitions");
    assert_eq!(proposed.len(), 3);
    let leaders: BTreeSet<i64> = proposed
        .iter()
        .map(|p| {
            let replicas = p["replicas"].as_array().expect("replicas");
            assert_eq!(replicas.len(), 1, "{p}");
            replicas[0].as_i64().expect("broker id")
        })
        .collect();
    assert_eq!(leaders, BTreeSet::from([1, 2]), "{proposed:?}");

    // fjord topics --describe shows each partition's leader, replicas and ISR.
    let described = tool_ok(&[
        "topics",
        "--bootstrap-server",
        &bootstrap,
        "--describe",
        "--topic",
        topic,
    ]);
    for (p, state) in &before {
        let line = format!(
            "\tTopic: admin\tPartition: {p}\tLeader: {}\tReplicas: {}\tIsr: {}",
            state.leader, state.replicas[0], state.isr[0]
        );
        assert!(described.contains(&line), "{line:?} in {described}");
    }
}

#[test]
fn elections_of_an_offline_partition_find_no_eligible_leader() {
    let cluster = start_cluster(3);
    let bootstrap = cluster.bootstrap();
    let topic = "offline";
    create_topic(&bootstrap, topic, 3);
    let before = wait_for_partitions(&cluster, topic, 3, "three led partitions", |ps| {
        ps.values().all(|p| p.leader > 0)
    });
    // Kill a broker that is not the active controller; its partitions lose their only
    // replica once its session ends.
    let (controller, _) = controller_and_other(&cluster);
    let (partition, victim) = before
        .iter()
        .map(|(p, s)| (*p, s.leader))
        .find(|(_, leader)| *leader != controller)
        .expect("a partition led outside the controller");
    let offline: BTreeSet<(String, i32)> = before
        .iter()
        .filter(|(_, s)| s.leader == victim)
        .map(|(p, _)| key(topic, *p))
        .collect();
    cluster.kill(victim as u32).expect("kill the leader");
    let survivor = (1..=3).find(|n| *n != victim as u32).unwrap();
    let address = cluster.node(survivor).bootstrap_address;
    wait_until(Duration::from_secs(30), || {
        partitions(address, topic, 3)[&partition].leader == -1
    })
    .expect("the partition goes offline");

    let named: &[(&str, &[i32])] = &[(topic, &[partition])];
    let unclean = elect(address, 2, UNCLEAN, Some(named));
    assert_eq!(
        election_results(&unclean)[&key(topic, partition)],
        (
            ELIGIBLE_LEADERS_NOT_AVAILABLE,
            "Eligible topic partition leaders are not available.".into()
        )
    );
    let preferred = elect(address, 2, PREFERRED, Some(named));
    assert_eq!(
        election_results(&preferred)[&key(topic, partition)],
        (
            PREFERRED_LEADER_NOT_AVAILABLE,
            "The preferred leader was not available.".into()
        )
    );
    // Over everything, the offline partitions are the ones reported.
    let everything = election_results(&elect(address, 2, UNCLEAN, None));
    let reported: BTreeSet<(String, i32)> = everything
        .iter()
        .filter(|((t, _), _)| t == topic)
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(reported, offline, "{everything:?}");
    assert!(everything
        .values()
        .all(|(code, _)| *code == ELIGIBLE_LEADERS_NOT_AVAILABLE));
    let survivors = (1..=3u32)
        .filter(|n| *n != victim as u32)
        .map(|n| cluster.node(n).bootstrap_address.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let run = run_tool(&[
        "leader-election",
        "--bootstrap-server",
        &survivors,
        "--election-type",
        "UNCLEAN",
        "--topic",
        topic,
        "--partition",
        &partition.to_string(),
    ]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "Error completing leader election (UNCLEAN) for partition: {topic}-{partition}: \
             ELIGIBLE_LEADERS_NOT_AVAILABLE: Eligible topic partition leaders are not available.\n"
        )
    );

    // Back after a restart, the partition has its leader again and needs no election.
    cluster.restart(victim as u32).expect("restart the leader");
    wait_for_partitions(&cluster, topic, 3, "the partition is led again", |ps| {
        ps[&partition].leader == victim
    });
    let unclean = elect(address, 2, UNCLEAN, Some(named));
    assert_eq!(
        election_results(&unclean)[&key(topic, partition)].0,
        ELECTION_NOT_NEEDED
    );
}

/// Creates `topic` with the given replicas per partition.
fn create_assigned_topic(bootstrap: &str, topic: &str, assignment: &[&[i32]]) {
    let admin = admin(bootstrap);
    let new_topic = NewTopic::new(
        topic,
        assignment.len() as i32,
        TopicReplication::Variable(assignment),
    );
    let results = futures::executor::block_on(admin.create_topics([&new_topic], &admin_options()))
        .expect("CreateTopics request");
    assert_eq!(results, vec![Ok(topic.to_string())], "create topic {topic}");
}

#[test]
fn preferred_election_moves_leadership_back_after_a_broker_restart() {
    let cluster = start_cluster(3);
    let bootstrap = cluster.bootstrap();
    let topic = "preferred";
    // Every broker is the preferred leader of one partition.
    create_assigned_topic(&bootstrap, topic, &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]]);
    wait_for_partitions(&cluster, topic, 3, "fully replicated partitions", |ps| {
        ps.values()
            .all(|p| p.leader == p.replicas[0] && p.isr.len() == 3)
    });
    let records: Vec<TestRecord> = generate_records(300, 7, now_ms() - 60_000)
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.partition = Some((i % 3) as i32);
            r
        })
        .collect();
    let positions = produce_ok(
        &bootstrap,
        topic,
        &records,
        &[("acks", "all")],
        Duration::from_secs(60),
    );

    // A stopped broker hands its leadership to another replica and gets it back only
    // through a preferred election once it is in sync again.
    let (controller, _) = controller_and_other(&cluster);
    let victim = (1..=3u32).find(|n| *n as i32 != controller).unwrap() as i32;
    let led_by_victim = (victim - 1) as usize;
    cluster.stop(victim as u32).expect("graceful stop");
    wait_for_partitions(&cluster, topic, 3, "leadership moved away", |ps| {
        ps.values().all(|p| p.leader != victim && p.leader > 0)
    });
    cluster.restart(victim as u32).expect("restart");
    wait_for_partitions(
        &cluster,
        topic,
        3,
        "the restarted broker is in sync",
        |ps| ps.values().all(|p| p.isr.len() == 3),
    );
    let moved = partitions(cluster.node(victim as u32).bootstrap_address, topic, 3);
    assert_ne!(moved[&(led_by_victim as i32)].leader, victim, "{moved:?}");

    let run = run_tool(&[
        "leader-election",
        "--bootstrap-server",
        &bootstrap,
        "--election-type",
        "PREFERRED",
        "--all-topic-partitions",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "Successfully completed leader election (PREFERRED) for partitions \
             {topic}-{led_by_victim}"
        )),
        "{run:?}"
    );
    let after = wait_for_partitions(&cluster, topic, 3, "preferred leaders again", |ps| {
        ps.values().all(|p| p.leader == p.replicas[0])
    });
    assert!(
        after[&(led_by_victim as i32)].leader_epoch > moved[&(led_by_victim as i32)].leader_epoch
    );
    let again = elect(
        cluster.node(1).bootstrap_address,
        2,
        PREFERRED,
        Some(&[(topic, &[0, 1, 2])]),
    );
    assert!(election_results(&again)
        .values()
        .all(|(code, _)| *code == ELECTION_NOT_NEEDED));

    // Every acknowledged record is still there, once.
    let consumed = consume(
        &bootstrap,
        topic,
        &[
            (0, Offset::Beginning),
            (1, Offset::Beginning),
            (2, Offset::Beginning),
        ],
        records.len(),
        Duration::from_secs(60),
    );
    assert_consumed_exactly(&records, &positions, &consumed);
}

/// `bootstrap.servers` of every node but `node`.
fn bootstrap_without(cluster: &Cluster, node: u32) -> String {
    (1..=cluster.node_count())
        .filter(|n| *n != node)
        .map(|n| cluster.node(n).bootstrap_address.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs `fjord reassign-partitions --bootstrap-server BOOTSTRAP ARGS...`.
fn reassign_tool(bootstrap: &str, args: &[&str]) -> common::tool::ToolRun {
    let mut all = vec!["reassign-partitions", "--bootstrap-server", bootstrap];
    all.extend_from_slice(args);
    run_tool(&all)
}

#[test]
fn reassigning_a_replicated_partition_onto_other_brokers_while_producing() {
    // Four brokers, so that a partition with three replicas can move onto a replica set
    // that differs from its own. The broker being added is not the active controller, and
    // the replica being removed is the leader, so leadership moves too.
    let cluster = start_cluster(4);
    let (controller, _) = controller_and_other(&cluster);
    let added = (1..=4).rev().find(|b| *b != controller).unwrap();
    let original: Vec<i32> = (1..=4).filter(|b| *b != added).collect();
    let removed = original[0];
    let mut target: Vec<i32> = original[1..].to_vec();
    target.push(added);
    let topic = "moving";
    create_assigned_topic(&cluster.bootstrap(), topic, &[&original]);
    wait_for_partitions(&cluster, topic, 1, "a replicated partition", |ps| {
        ps[&0].isr.len() == 3 && ps[&0].leader == removed
    });
    // The added broker is paused for the first attempt, so the move cannot finish; the
    // clients and tools use the other brokers meanwhile.
    let others = bootstrap_without(&cluster, added as u32);
    let address = cluster.node(removed as u32).bootstrap_address;

    // A producer writes with acks=all for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let stop = Arc::clone(&stop);
        let bootstrap = others.clone();
        std::thread::spawn(move || {
            let mut acknowledged: Vec<(TestRecord, (i32, i64))> = Vec::new();
            let mut seed = 0;
            while !stop.load(Ordering::Relaxed) {
                seed += 1;
                let mut batch = generate_records(50, seed, now_ms() - 60_000);
                for r in &mut batch {
                    r.partition = Some(0);
                }
                // Idempotent, so that retries across the leader change write no duplicates.
                let deliveries = produce_all(
                    &bootstrap,
                    topic,
                    &batch,
                    &[("acks", "all"), ("enable.idempotence", "true")],
                    Duration::from_secs(30),
                );
                for (record, delivery) in batch.into_iter().zip(deliveries) {
                    let position = delivery.expect("every record is acknowledged");
                    acknowledged.push((record, position));
                }
            }
            acknowledged
        })
    };
    std::thread::sleep(Duration::from_secs(1));

    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_file(
        &dir,
        "move.json",
        &format!(
            r#"{{"version":1,"partitions":[{{"topic":"moving","partition":0,"replicas":{target:?}}}]}}"#
        ),
    );
    let target_text = target
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let merged_text = format!("{target_text},{removed}");
    let original_isr = partitions(address, topic, 1)[&0]
        .isr
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");

    // Started while the added broker cannot fetch: the move stays in progress, listed with
    // the replicas being added and removed, until it is cancelled.
    cluster.pause(added as u32).expect("pause the added broker");
    let run = reassign_tool(&others, &["--execute", "--reassignment-json-file", &file]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .ends_with("Successfully started partition reassignment for moving-0\n"),
        "{run:?}"
    );
    let run = reassign_tool(&others, &["--verify", "--reassignment-json-file", &file]);
    assert_eq!(
        run.stdout,
        "Status of partition reassignment:\n\
         Reassignment of partition moving-0 is still in progress.\n",
        "{run:?}"
    );
    let run = reassign_tool(&others, &["--list"]);
    assert_eq!(
        run.stdout,
        format!(
            "Current partition reassignments:\n\
             moving-0: replicas: {merged_text}. adding: {added}. removing: {removed}.\n"
        ),
        "{run:?}"
    );
    let described = tool_ok(&[
        "topics",
        "--bootstrap-server",
        &others,
        "--describe",
        "--topic",
        topic,
    ]);
    assert!(
        described.contains(&format!(
            "\tReplicas: {merged_text}\tIsr: {original_isr}\tAdding Replicas: {added}\t\
             Removing Replicas: {removed}\n"
        )),
        "{described}"
    );
    let listed = list_reassignments(address);
    let ongoing = &listed.topics[0].partitions[0];
    let ids = |list: &[BrokerId]| list.iter().map(|b| b.0).collect::<Vec<i32>>();
    assert_eq!(
        (
            ids(&ongoing.replicas),
            ids(&ongoing.adding_replicas),
            ids(&ongoing.removing_replicas)
        ),
        (
            [target.clone(), vec![removed]].concat(),
            vec![added],
            vec![removed]
        )
    );
    // A second --execute needs --additional while a move is running.
    let run = reassign_tool(&others, &["--execute", "--reassignment-json-file", &file]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr
            .contains("Cannot execute because there is an existing partition assignment."),
        "{run:?}"
    );
    let run = reassign_tool(&others, &["--cancel", "--reassignment-json-file", &file]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            Some(0),
            "Successfully cancelled partition reassignment for: moving-0\n"
        ),
        "{run:?}"
    );
    let run = reassign_tool(&others, &["--list"]);
    assert_eq!(run.stdout, "No partition reassignments found.\n", "{run:?}");
    // As in Kafka, the cancelled move leaves the original replicas in the merged order:
    // the target's, then the one it was removing.
    let reverted_text = target
        .iter()
        .filter(|b| **b != added)
        .chain([&removed])
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let run = reassign_tool(&others, &["--verify", "--reassignment-json-file", &file]);
    assert_eq!(
        run.stdout,
        format!(
            "Status of partition reassignment:\n\
             There is no active reassignment of partition moving-0, but replica set is \
             {reverted_text} rather than {target_text}.\n"
        ),
        "{run:?}"
    );

    // With the added broker back, the same move runs to completion.
    cluster
        .resume(added as u32)
        .expect("resume the added broker");
    wait_until(Duration::from_secs(30), || lists_brokers(&cluster, 4))
        .expect("the added broker is back");
    let bootstrap = cluster.bootstrap();
    let run = reassign_tool(
        &bootstrap,
        &["--execute", "--reassignment-json-file", &file],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    wait_until(Duration::from_secs(120), || {
        reassign_tool(&bootstrap, &["--verify", "--reassignment-json-file", &file])
            .stdout
            .contains("Reassignment of partition moving-0 is completed.")
    })
    .expect("the reassignment completes");
    for n in 1..=4 {
        let listed = list_reassignments(cluster.node(n).bootstrap_address);
        assert!(listed.topics.is_empty(), "node {n}: {listed:?}");
    }
    let after = wait_for_partitions(&cluster, topic, 1, "the new replicas", |ps| {
        ps[&0].replicas == target && ps[&0].leader > 0
    });
    let isr: BTreeSet<i32> = after[&0].isr.iter().copied().collect();
    assert!(
        isr.is_subset(&target.iter().copied().collect()),
        "{after:?}"
    );
    assert_eq!(after[&0].leader, target[0], "{after:?}");

    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let acknowledged = producer.join().expect("producer thread");
    assert!(!acknowledged.is_empty());
    let (records, positions): (Vec<TestRecord>, Vec<(i32, i64)>) = acknowledged.into_iter().unzip();
    let consumed = consume(
        &bootstrap,
        topic,
        &[(0, Offset::Beginning)],
        records.len(),
        Duration::from_secs(60),
    );
    assert_consumed_exactly(&records, &positions, &consumed);
}
