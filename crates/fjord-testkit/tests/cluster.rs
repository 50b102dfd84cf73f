//! Exercises `Cluster` against `standin-broker`, a stand-in for `fjord
//! server` built with this crate: it logs the overrides it was given, binds
//! its listeners, and greets every other controller in
//! `controller.quorum.voters` every 100 ms, logging each greeting it hears as
//! `heard from node <id> on CONTROLLER`.

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use fjord_testkit::{process_state, wait_until, Cluster, ClusterBuilder, NodeRoles};

const STANDIN: &str = env!("CARGO_BIN_EXE_standin-broker");

/// Long enough for in-flight greetings to land after a fault.
const SETTLE: Duration = Duration::from_millis(400);

/// How long a cut link must stay silent.
const QUIET: Duration = Duration::from_millis(1000);

const WAIT: Duration = Duration::from_secs(20);

fn standin_cluster() -> ClusterBuilder {
    Cluster::builder(STANDIN)
}

/// How many greetings `receiver` has heard from `sender` over its CONTROLLER listener.
fn heard(cluster: &Cluster, receiver: u32, sender: u32) -> usize {
    cluster
        .logs(receiver)
        .matches(&format!("heard from node {sender} on CONTROLLER"))
        .count()
}

fn all_pairs(count: u32) -> Vec<(u32, u32)> {
    (1..=count)
        .flat_map(|a| (1..=count).map(move |b| (a, b)))
        .filter(|(a, b)| a != b)
        .collect()
}

fn every_controller_heard_every_other(cluster: &Cluster) -> bool {
    all_pairs(cluster.node_count())
        .into_iter()
        .all(|(receiver, sender)| heard(cluster, receiver, sender) > 0)
}

fn proc_exists(pid: u32) -> bool {
    PathBuf::from(format!("/proc/{pid}")).exists()
}

/// The value of `key` as node `node` received it.
fn override_value(cluster: &Cluster, node: u32, key: &str) -> Option<String> {
    let prefix = format!("override {key}=");
    let logs = cluster.logs(node);
    let values: Vec<&str> = logs
        .lines()
        .filter_map(|line| line.split_once(&prefix).map(|(_, value)| value))
        .collect();
    assert!(values.len() <= 1, "{key} passed more than once: {values:?}");
    values.first().map(|value| value.to_string())
}

/// Snapshot of greeting counts for `pairs`, after in-flight greetings landed.
fn settled_counts(cluster: &Cluster, pairs: &[(u32, u32)]) -> Vec<usize> {
    thread::sleep(SETTLE);
    pairs.iter().map(|&(r, s)| heard(cluster, r, s)).collect()
}

#[test]
fn starts_every_node_with_the_kraft_settings() {
    let cluster = standin_cluster()
        .nodes(3)
        .override_config("num.partitions", "3")
        .override_config("default.replication.factor", "3")
        .node_override(2, "num.partitions", "6")
        .start()
        .expect("start");
    assert_eq!(cluster.node_count(), 3);
    let nodes: Vec<_> = (1..=3).map(|n| cluster.node(n)).collect();

    let ports: HashSet<u16> = nodes
        .iter()
        .flat_map(|n| [n.bootstrap_address.port(), n.controller_address.port()])
        .collect();
    assert_eq!(ports.len(), 6, "distinct ports: {nodes:?}");
    let bootstrap: Vec<String> = nodes
        .iter()
        .map(|n| n.bootstrap_address.to_string())
        .collect();
    assert_eq!(cluster.bootstrap(), bootstrap.join(","));
    let voters = nodes
        .iter()
        .map(|n| format!("{}@{}", n.id, n.controller_address))
        .collect::<Vec<_>>()
        .join(",");
    let root = nodes[0].data_dir.parent().expect("root").to_path_buf();

    for node in &nodes {
        let n = node.id;
        assert_eq!(node.data_dir, root.join(format!("node-{n}")));
        assert!(node.data_dir.is_dir());
        assert!(node.pid.is_some() && !node.paused);
        let b = node.bootstrap_address;
        let c = node.controller_address;
        assert_eq!(b.ip().to_string(), "127.0.0.1");
        let expected = [
            ("process.roles", "broker,controller".to_string()),
            ("node.id", n.to_string()),
            ("controller.quorum.voters", voters.clone()),
            ("listeners", format!("PLAINTEXT://{b},CONTROLLER://{c}")),
            ("advertised.listeners", format!("PLAINTEXT://{b}")),
            ("controller.listener.names", "CONTROLLER".into()),
            ("inter.broker.listener.name", "PLAINTEXT".into()),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
            ),
            ("log.dirs", node.data_dir.display().to_string()),
            ("default.replication.factor", "3".into()),
            ("num.partitions", if n == 2 { "6" } else { "3" }.into()),
        ];
        for (key, value) in expected {
            assert_eq!(
                override_value(&cluster, n, key).as_deref(),
                Some(value.as_str()),
                "node {n} {key}"
            );
        }
        TcpStream::connect_timeout(&b, Duration::from_secs(5)).expect("PLAINTEXT accepts");
    }

    wait_until(WAIT, || every_controller_heard_every_other(&cluster))
        .expect("the voters reach each other directly");
    assert!(cluster.controller_link(1, 2).is_none());
    let err = cluster.cut_link(1, 2).expect_err("no proxies");
    assert!(
        err.to_string().contains("with_controller_link_proxies"),
        "{err}"
    );
    drop(cluster);
    assert!(!root.exists(), "the cluster directory is removed on drop");
}

#[test]
fn kill_restart_stop_pause_resume_and_drop() {
    let cluster = standin_cluster()
        .ready_when(WAIT, every_controller_heard_every_other)
        .start()
        .expect("start");
    assert!(
        every_controller_heard_every_other(&cluster),
        "start returns only once the ready check holds"
    );
    let before = cluster.node(1);
    let first_pid = before.pid.expect("running");

    let status = cluster.kill(1).expect("kill");
    assert_eq!(status.signal(), Some(9));
    assert!(!cluster.is_running(1));
    assert!(!proc_exists(first_pid));
    assert_eq!(cluster.node(1).pid, None);
    assert_eq!(
        cluster.bootstrap(),
        format!(
            "{},{}",
            cluster.node(2).bootstrap_address,
            cluster.node(3).bootstrap_address
        ),
        "bootstrap lists live nodes only"
    );
    assert!(cluster.kill(1).is_err(), "already dead");

    cluster.restart(1).expect("restart after kill");
    let after = cluster.node(1);
    assert_eq!(after.bootstrap_address, before.bootstrap_address);
    assert_eq!(after.controller_address, before.controller_address);
    assert_eq!(after.data_dir, before.data_dir);
    assert_ne!(after.pid, None);
    assert!(
        cluster.logs(1).contains("node 1 start #2 in"),
        "the data dir survived: {}",
        cluster.logs(1)
    );
    assert_eq!(cluster.bootstrap().split(',').count(), 3);

    let status = cluster.stop(3).expect("stop");
    assert_eq!(status.signal(), Some(15), "ended by SIGTERM");
    assert!(!cluster.is_running(3));
    cluster.restart(3).expect("restart after stop");
    assert!(cluster.is_running(3));

    let paused_pid = cluster.node(2).pid.expect("running");
    // The cluster is shared with a helper thread, as a fault-injecting thread would.
    thread::scope(|scope| {
        scope.spawn(|| cluster.pause(2).expect("pause"));
    });
    assert!(cluster.is_paused(2) && cluster.node(2).paused);
    assert!(cluster.is_running(2), "paused is alive");
    assert_eq!(process_state(paused_pid), Some('T'));
    let pairs = [(1, 2), (1, 3)];
    let frozen = settled_counts(&cluster, &pairs);
    thread::sleep(QUIET);
    assert_eq!(
        heard(&cluster, 1, 2),
        frozen[0],
        "a paused node sends nothing"
    );
    assert!(heard(&cluster, 1, 3) > frozen[1], "the others carry on");
    cluster.resume(2).expect("resume");
    assert!(!cluster.is_paused(2));
    wait_until(WAIT, || heard(&cluster, 1, 2) > frozen[0]).expect("greets again");

    cluster
        .restart(2)
        .expect("restart while running stops first");
    assert_ne!(cluster.node(2).pid, Some(paused_pid));
    assert!(cluster.logs(2).contains("exited after SIGTERM"));

    cluster.pause(3).expect("pause before drop");
    let pids: Vec<u32> = (1..=3).filter_map(|n| cluster.node(n).pid).collect();
    assert_eq!(pids.len(), 3);
    let root = cluster.node(1).data_dir.parent().unwrap().to_path_buf();
    drop(cluster);
    for pid in pids {
        assert!(!proc_exists(pid), "pid {pid} left behind");
    }
    assert!(!root.exists());
}

#[test]
fn restart_retries_while_the_port_is_still_taken() {
    let cluster = standin_cluster().nodes(1).start().expect("start");
    let address = cluster.node(1).bootstrap_address;
    cluster.kill(1).expect("kill");
    let squatter = TcpListener::bind(address).expect("take the port");
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(1200));
        drop(squatter);
    });
    let started = Instant::now();
    cluster.restart(1).expect("restart once the port is free");
    release.join().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1000));
    assert_eq!(cluster.node(1).bootstrap_address, address);
    let logs = cluster.logs(1);
    assert!(
        logs.contains("restart attempt 1 failed: a port is still in use"),
        "{logs}"
    );
    assert!(logs.contains("Address already in use"), "{logs}");
}

#[test]
fn start_retries_with_fresh_ports_when_a_port_is_taken() {
    let marker_dir = tempfile::tempdir().expect("temp dir");
    let marker = marker_dir.path().join("failed-once");
    let cluster = standin_cluster()
        .node_override(2, "standin.fail.once.file", marker.display().to_string())
        .start()
        .expect("start succeeds on the second attempt");
    assert!(marker.exists());
    let attempt_ports = |node: u32, attempt: u32| -> u16 {
        let prefix = format!("cluster start attempt {attempt}: PLAINTEXT 127.0.0.1:");
        let logs = cluster.logs(node);
        let line = logs
            .lines()
            .find_map(|line| line.split_once(&prefix).map(|(_, rest)| rest.to_string()))
            .unwrap_or_else(|| panic!("no attempt {attempt} in {logs}"));
        line.split(',').next().unwrap().parse().unwrap()
    };
    for node in 1..=3 {
        let first = attempt_ports(node, 1);
        let second = attempt_ports(node, 2);
        assert_ne!(first, second, "node {node} got fresh ports");
        assert_eq!(second, cluster.node(node).bootstrap_address.port());
        assert!(cluster
            .logs(node)
            .contains("node 2 found a port taken; retrying with fresh ports"));
        assert!(!cluster.logs(node).contains("cluster start attempt 3"));
    }
    assert!(cluster.logs(2).contains("Address already in use"));
    assert!(
        cluster.logs(2).contains("node 2 start #1 in"),
        "the data directory was emptied between attempts: {}",
        cluster.logs(2)
    );
}

#[test]
fn a_node_that_exits_before_listening_fails_the_start_at_once() {
    let started = Instant::now();
    let err = Cluster::builder("/bin/false")
        .start()
        .expect_err("nothing listens");
    let err = format!("{err:#}");
    assert!(err.contains("exited before listening"), "{err}");
    assert!(!err.contains("attempt 2"), "not retried: {err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(Cluster::builder("/nonexistent/fjord").start().is_err());
}

#[test]
fn a_cluster_that_never_becomes_ready_fails_with_every_log() {
    let err = standin_cluster()
        .ready_when(Duration::from_millis(300), |_| false)
        .start()
        .expect_err("never ready");
    let err = format!("{err:#}");
    assert!(err.contains("up but not ready"), "{err}");
    for node in 1..=3 {
        assert!(
            err.contains(&format!("---- fjord node {node} log")),
            "{err}"
        );
        assert!(err.contains(&format!("node {node} start #1")), "{err}");
    }
}

#[test]
fn refuses_settings_the_harness_owns_and_unknown_nodes() {
    let err = standin_cluster()
        .override_config("node.id", "7")
        .start()
        .expect_err("managed key");
    assert!(
        err.to_string()
            .contains("`node.id` is set by the cluster harness"),
        "{err}"
    );
    let err = standin_cluster()
        .node_override(1, "listeners", "PLAINTEXT://127.0.0.1:9092")
        .start()
        .expect_err("managed key");
    assert!(err.to_string().contains("`listeners`"), "{err}");
    let err = standin_cluster()
        .node_override(4, "num.partitions", "1")
        .start()
        .expect_err("no node 4");
    assert!(err.to_string().contains("node 4"), "{err}");
    assert!(standin_cluster().nodes(0).start().is_err());
    assert!(standin_cluster().nodes(10).start().is_err());
}

#[test]
fn nodes_get_the_listeners_and_voters_of_their_roles() {
    // Node 1 is a controller only, node 2 combined, nodes 3 and 4 brokers only.
    let cluster = standin_cluster()
        .nodes(4)
        .roles(1, NodeRoles::Controller)
        .roles(3, NodeRoles::Broker)
        .roles(4, NodeRoles::Broker)
        .start()
        .expect("start");
    let node = |n| cluster.node(n);
    assert_eq!(node(1).roles, NodeRoles::Controller);
    assert_eq!(node(2).roles, NodeRoles::Combined);
    let voters = format!(
        "1@{},2@{}",
        node(1).controller_address,
        node(2).controller_address
    );
    let listeners = |n: u32| match node(n).roles {
        NodeRoles::Controller => format!("CONTROLLER://{}", node(n).controller_address),
        NodeRoles::Combined => format!(
            "PLAINTEXT://{},CONTROLLER://{}",
            node(n).bootstrap_address,
            node(n).controller_address
        ),
        NodeRoles::Broker => format!("PLAINTEXT://{}", node(n).bootstrap_address),
    };
    for n in 1..=4 {
        let value = |key| override_value(&cluster, n, key);
        assert_eq!(
            value("process.roles").as_deref(),
            Some(node(n).roles.process_roles()),
            "node {n}"
        );
        assert_eq!(
            value("controller.quorum.voters"),
            Some(voters.clone()),
            "node {n}"
        );
        assert_eq!(value("listeners"), Some(listeners(n)), "node {n}");
        assert_eq!(
            value("controller.listener.names").as_deref(),
            Some("CONTROLLER"),
            "node {n}"
        );
        let advertised = value("advertised.listeners");
        if n == 1 {
            assert_eq!(
                advertised, None,
                "a controller-only node advertises nothing"
            );
        } else {
            assert_eq!(
                advertised,
                Some(format!("PLAINTEXT://{}", node(n).bootstrap_address))
            );
        }
    }
    // Clients are sent to the nodes with the broker role only.
    let bootstrap: Vec<String> = (2..=4)
        .map(|n| node(n).bootstrap_address.to_string())
        .collect();
    assert_eq!(cluster.bootstrap(), bootstrap.join(","));
    // Every node reaches both voters; nobody connects to a broker-only node's controller
    // port, which it does not bind.
    wait_until(WAIT, || {
        [(1, 2), (1, 3), (1, 4), (2, 1), (2, 3), (2, 4)]
            .iter()
            .all(|&(receiver, sender)| heard(&cluster, receiver, sender) > 0)
    })
    .expect("every node greets the voters");
    for broker in [3, 4] {
        assert!(
            !cluster.logs(broker).contains("listening on CONTROLLER://"),
            "node {broker} binds no CONTROLLER listener"
        );
    }
    // A controller-only node is up once its CONTROLLER listener is, also on restart.
    cluster.kill(1).expect("kill");
    cluster
        .restart(1)
        .expect("restart the controller-only node");
    let count = heard(&cluster, 1, 3);
    wait_until(WAIT, || heard(&cluster, 1, 3) > count).expect("node 3 greets node 1 again");
}

#[test]
fn broker_only_nodes_reach_the_voters_through_their_own_proxies() {
    let cluster = standin_cluster()
        .nodes(3)
        .roles(2, NodeRoles::Broker)
        .roles(3, NodeRoles::Broker)
        .with_controller_link_proxies()
        .start()
        .expect("start");
    // Only the voter has proxies in front of it.
    for (from, to) in all_pairs(3) {
        assert_eq!(
            cluster.controller_link(from, to).is_some(),
            to == 1,
            "{from} -> {to}"
        );
    }
    let voters = override_value(&cluster, 2, "controller.quorum.voters").expect("voters");
    assert_eq!(
        voters,
        format!("1@{}", cluster.controller_link(2, 1).unwrap().address())
    );
    wait_until(WAIT, || {
        heard(&cluster, 1, 2) > 0 && heard(&cluster, 1, 3) > 0
    })
    .expect("both brokers greet the voter");

    let err = cluster
        .cut_link(2, 3)
        .expect_err("no link between two brokers");
    assert!(err.to_string().contains("broker-only"), "{err}");
    cluster.isolate(2).expect("isolate a broker-only node");
    assert!(cluster.controller_link(2, 1).unwrap().is_cut());
    let counts = settled_counts(&cluster, &[(1, 2), (1, 3)]);
    thread::sleep(QUIET);
    assert_eq!(heard(&cluster, 1, 2), counts[0], "2 -> 1 is cut");
    assert!(heard(&cluster, 1, 3) > counts[1], "3 -> 1 still flows");
    cluster.heal_all();
    wait_until(WAIT, || heard(&cluster, 1, 2) > counts[0]).expect("healed");
}

#[test]
fn a_cluster_needs_a_voter_and_roles_for_its_own_nodes() {
    let err = standin_cluster()
        .nodes(2)
        .roles(1, NodeRoles::Broker)
        .roles(2, NodeRoles::Broker)
        .start()
        .expect_err("no voter");
    assert!(err.to_string().contains("controller role"), "{err}");
    let err = standin_cluster()
        .roles(4, NodeRoles::Broker)
        .start()
        .expect_err("no node 4");
    assert!(err.to_string().contains("node 4"), "{err}");
}

#[test]
#[should_panic(expected = "no node 4: node ids run from 1 to 3")]
fn an_unknown_node_id_panics() {
    let cluster = standin_cluster().start().expect("start");
    cluster.logs(4);
}

#[test]
fn controller_links_go_through_proxies_that_cut_and_heal() {
    let cluster = standin_cluster()
        .with_controller_link_proxies()
        .ready_when(WAIT, every_controller_heard_every_other)
        .start()
        .expect("start");

    for node in 1..=3 {
        let voters = override_value(&cluster, node, "controller.quorum.voters").expect("voters");
        let expected = (1..=3)
            .map(|voter| {
                let address = if voter == node {
                    cluster.node(voter).controller_address
                } else {
                    let link = cluster.controller_link(node, voter).expect("proxy");
                    assert_eq!(link.target(), cluster.node(voter).controller_address);
                    assert_ne!(link.address(), link.target());
                    link.address()
                };
                format!("{voter}@{address}")
            })
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(voters, expected, "node {node}");
    }

    cluster.cut_link(1, 2).expect("cut");
    assert!(cluster.controller_link(1, 2).unwrap().is_cut());
    assert!(cluster.controller_link(2, 1).unwrap().is_cut());
    assert!(!cluster.controller_link(1, 3).unwrap().is_cut());
    let pairs = [(2, 1), (1, 2), (1, 3), (3, 1), (2, 3)];
    let seen_before = cluster.controller_link(1, 2).unwrap().connections_seen();
    let counts = settled_counts(&cluster, &pairs);
    thread::sleep(QUIET);
    assert_eq!(heard(&cluster, 2, 1), counts[0], "1 -> 2 is cut");
    assert_eq!(heard(&cluster, 1, 2), counts[1], "2 -> 1 is cut");
    for (i, &(receiver, sender)) in pairs.iter().enumerate().skip(2) {
        assert!(
            heard(&cluster, receiver, sender) > counts[i],
            "{sender} -> {receiver} still flows"
        );
    }
    assert!(
        cluster.controller_link(1, 2).unwrap().connections_seen() > seen_before,
        "node 1 kept trying through the cut link"
    );
    assert!(cluster.logs(1).contains("controller links with node 2 cut"));

    cluster.heal_all();
    assert!(!cluster.controller_link(1, 2).unwrap().is_cut());
    wait_until(WAIT, || {
        heard(&cluster, 2, 1) > counts[0] && heard(&cluster, 1, 2) > counts[1]
    })
    .expect("healed");

    cluster.isolate(3).expect("isolate");
    let pairs = [(3, 1), (3, 2), (1, 3), (2, 3), (1, 2), (2, 1)];
    let counts = settled_counts(&cluster, &pairs);
    thread::sleep(QUIET);
    for (i, &(receiver, sender)) in pairs.iter().enumerate() {
        let now = heard(&cluster, receiver, sender);
        if receiver == 3 || sender == 3 {
            assert_eq!(now, counts[i], "{sender} -> {receiver} is cut");
        } else {
            assert!(now > counts[i], "{sender} -> {receiver} still flows");
        }
    }

    cluster.heal_all();
    let counts = settled_counts(&cluster, &all_pairs(3));
    wait_until(WAIT, || {
        all_pairs(3)
            .iter()
            .zip(&counts)
            .all(|(&(receiver, sender), &count)| heard(&cluster, receiver, sender) > count)
    })
    .expect("every link flows again");

    // The proxies outlive a node's restart: the ports stay the same.
    cluster.kill(2).expect("kill");
    cluster.restart(2).expect("restart");
    let count = heard(&cluster, 1, 2);
    wait_until(WAIT, || {
        heard(&cluster, 1, 2) > count && heard(&cluster, 2, 1) > 0
    })
    .expect("the restarted node is reachable through the same proxies");
}

/// Run only as a child process by
/// `a_panicking_test_prints_every_node_log_and_leaves_nothing_behind`.
#[test]
#[ignore = "panics on purpose; run by another test"]
fn panicking_cluster_test() {
    let cluster = standin_cluster()
        .with_controller_link_proxies()
        .start()
        .expect("start");
    cluster.pause(2).expect("pause");
    for node in 1..=3 {
        println!("\ncluster-pid={}", cluster.node(node).pid.expect("running"));
    }
    let root = cluster
        .node(1)
        .data_dir
        .parent()
        .unwrap()
        .display()
        .to_string();
    println!("\ncluster-root={root}");
    panic!("deliberate panic with a live cluster");
}

#[test]
fn a_panicking_test_prints_every_node_log_and_leaves_nothing_behind() {
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "panicking_cluster_test",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("run the panicking test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("deliberate panic"), "{stderr}");
    for node in 1..=3 {
        assert!(
            stderr.contains(&format!("---- fjord node {node} log")),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("---- end of node {node} log")),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("node {node} start #1")),
            "{stderr}"
        );
    }
    let pids: Vec<u32> = stdout
        .lines()
        .filter_map(|line| line.split_once("cluster-pid=").map(|(_, pid)| pid))
        .map(|pid| pid.parse().expect("pid"))
        .collect();
    assert_eq!(pids.len(), 3, "{stdout}");
    for pid in pids {
        assert!(!proc_exists(pid), "pid {pid} left behind");
    }
    let root = stdout
        .lines()
        .find_map(|line| line.split_once("cluster-root=").map(|(_, root)| root))
        .expect("root line");
    assert!(!Path::new(root).exists(), "{root} left behind");
}
