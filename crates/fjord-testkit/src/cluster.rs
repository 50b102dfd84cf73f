//! A cluster of real `fjord server` processes on loopback, configured with
//! Kafka's KRaft keys, with crash, stop, pause and controller-link faults.
//!
//! ```text
//!                 controller.quorum.voters of node 1
//!   node 1 ──> 1@127.0.0.1:c1 (its own CONTROLLER listener)
//!          ──> 2@127.0.0.1:p12 ── LinkProxy 1→2 ──> node 2 CONTROLLER :c2
//!          ──> 3@127.0.0.1:p13 ── LinkProxy 1→3 ──> node 3 CONTROLLER :c3
//!   (without with_controller_link_proxies, every entry is the real :cN)
//!
//!   clients and replica fetchers ──> advertised PLAINTEXT :bN (never proxied)
//! ```
//!
//! # Roles
//!
//! Every node is `broker,controller` unless [`ClusterBuilder::roles`] says
//! otherwise. Only nodes with the controller role are voters and bind a
//! CONTROLLER listener; a broker-only node ([`NodeRoles::Broker`]) reaches
//! the voters over their CONTROLLER listeners (through its own proxies when
//! they are on) and a controller-only node ([`NodeRoles::Controller`])
//! serves no clients, so it is left out of [`Cluster::bootstrap`].
//!
//! # What the link faults cover
//!
//! Only the controller links are proxied. Every node's view of the quorum
//! comes from its own `controller.quorum.voters`, so a different address per
//! ordered pair is possible there. The data path is not: a follower fetches
//! from the partition leader's advertised PLAINTEXT listener, which the
//! leader registers with the controller and every broker and client learns
//! from metadata, so there is a single address for all observers and no way
//! to route one pair's traffic through a proxy of its own.
//!
//! Cutting the controller links is still enough to cut a leader off: in
//! KRaft, everything that gives a broker authority goes through the quorum.
//! Raft votes and metadata-log fetches, broker registration and heartbeats,
//! and the AlterPartition requests that shrink or expand an ISR all travel
//! over the CONTROLLER listener. An isolated node loses the active controller
//! (and its leadership of the quorum, if it held it); its broker session
//! expires, the controller fences it and moves partition leadership to ISR
//! members, and followers learn the new leader epoch from the metadata log
//! and stop fetching from the old leader. The old leader cannot shrink its
//! ISR without the controller, so once the followers have left, its high
//! watermark stops: `acks=all` writes it still accepts time out uncommitted,
//! and `acks=1` writes are truncated when it rejoins. [`Cluster::isolate`]
//! is therefore a controller-plane partition: clients can still reach the
//! node, and replica fetches still flow until the followers switch leaders.
//!
//! ```no_run
//! use std::time::Duration;
//! use fjord_testkit::Cluster;
//!
//! let cluster = Cluster::builder("target/debug/fjord")
//!     .nodes(3)
//!     .override_config("default.replication.factor", "3")
//!     .with_controller_link_proxies()
//!     .ready_when(Duration::from_secs(60), |cluster| {
//!         // e.g. a metadata request through rdkafka listing three brokers
//!         !cluster.bootstrap().is_empty()
//!     })
//!     .start()
//!     .expect("cluster starts");
//! cluster.isolate(1).expect("proxies are on");
//! cluster.heal_all();
//! cluster.kill(2).expect("kill -9");
//! cluster.restart(2).expect("same ports and data dir");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};

use crate::broker::{
    parse_controller_listening_address, parse_listening_address, reports_port_in_use,
    server_command, CONTROLLER_LISTENING_MARKER, LISTENING_MARKER, LOG_TAIL_IN_ERROR_BYTES,
    RESTART_ATTEMPTS_MAX, RESTART_RETRY_DELAY, START_TIMEOUT_DEFAULT, STOP_TIMEOUT_DEFAULT,
};
use crate::link_proxy::LinkProxy;
use crate::ports::free_ports;
use crate::process::{LineWait, ManagedProcess};
use crate::wait::wait_until;

/// Nodes in a cluster unless [`ClusterBuilder::nodes`] says otherwise.
const NODES_DEFAULT: u32 = 3;

/// Upper bound on nodes: each costs a process, and with proxies the number
/// of proxies grows with the square.
const NODES_MAX: u32 = 9;

/// How many times a start is tried with fresh ports when a node finds one
/// of its ports taken.
const START_ATTEMPTS_MAX: u32 = 5;

/// How often a start looks at the nodes that are not up yet.
const START_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How much of each node's log tail is printed when a test panics.
const LOG_TAIL_ON_PANIC_BYTES: usize = 16 * 1024;

/// What one node runs: Kafka's `process.roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeRoles {
    /// `broker,controller`: a voter that also serves clients (the default).
    #[default]
    Combined,
    /// `broker`: serves clients and follows the voters; not a voter, no
    /// CONTROLLER listener.
    Broker,
    /// `controller`: a voter that serves no clients.
    Controller,
}

impl NodeRoles {
    /// The `process.roles` value.
    pub fn process_roles(self) -> &'static str {
        match self {
            NodeRoles::Combined => "broker,controller",
            NodeRoles::Broker => "broker",
            NodeRoles::Controller => "controller",
        }
    }

    /// Whether the node serves clients on PLAINTEXT.
    pub fn is_broker(self) -> bool {
        self != NodeRoles::Controller
    }

    /// Whether the node is a voter with a CONTROLLER listener.
    pub fn is_controller(self) -> bool {
        self != NodeRoles::Broker
    }
}

/// The keys the harness sets on every node, which overrides may not change.
const MANAGED_KEYS: [&str; 9] = [
    "process.roles",
    "node.id",
    "controller.quorum.voters",
    "listeners",
    "advertised.listeners",
    "controller.listener.names",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "log.dirs",
];

type ReadyCheck = Box<dyn Fn(&Cluster) -> bool>;

/// Configures and starts a [`Cluster`].
pub struct ClusterBuilder {
    binary: PathBuf,
    node_count: u32,
    overrides: Vec<(String, String)>,
    node_overrides: Vec<(u32, String, String)>,
    roles: BTreeMap<u32, NodeRoles>,
    env: Vec<(String, String)>,
    start_timeout: Duration,
    stop_timeout: Duration,
    ready: Option<(Duration, ReadyCheck)>,
    controller_link_proxies: bool,
}

impl fmt::Debug for ClusterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterBuilder")
            .field("binary", &self.binary)
            .field("node_count", &self.node_count)
            .field("overrides", &self.overrides)
            .field("node_overrides", &self.node_overrides)
            .field("roles", &self.roles)
            .field("env", &self.env)
            .field("start_timeout", &self.start_timeout)
            .field("stop_timeout", &self.stop_timeout)
            .field(
                "ready_timeout",
                &self.ready.as_ref().map(|(timeout, _)| timeout),
            )
            .field("controller_link_proxies", &self.controller_link_proxies)
            .finish()
    }
}

impl ClusterBuilder {
    /// The number of nodes, with ids `1..=count` (default 3, at most 9).
    pub fn nodes(mut self, count: u32) -> Self {
        self.node_count = count;
        self
    }

    /// Adds `--override key=value` for every node. Later calls for the same
    /// key win. The KRaft keys the harness sets (`node.id`, `listeners`,
    /// `log.dirs`…) are refused by [`ClusterBuilder::start`].
    pub fn override_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.overrides.retain(|(k, _)| *k != key);
        self.overrides.push((key, value.into()));
        self
    }

    /// Adds `--override key=value` for one node, taking precedence over
    /// [`ClusterBuilder::override_config`] for that node.
    pub fn node_override(
        mut self,
        node: u32,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        let key = key.into();
        self.node_overrides
            .retain(|(n, k, _)| *n != node || *k != key);
        self.node_overrides.push((node, key, value.into()));
        self
    }

    /// Gives node `node` other roles than `broker,controller`. The voters
    /// are the nodes with the controller role; at least one is needed.
    pub fn roles(mut self, node: u32, roles: NodeRoles) -> Self {
        self.roles.insert(node, roles);
        self
    }

    /// Sets an environment variable for every node.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// How long a start or restart waits for a node's listening line
    /// (default 30 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// How long [`Cluster::stop`] waits after SIGTERM before SIGKILL
    /// (default 20 s).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// Makes [`ClusterBuilder::start`] return only once `ready` holds,
    /// checked every 50 ms for up to `timeout`, for example a metadata
    /// request that lists every broker. Listening nodes are not necessarily
    /// a working cluster: the quorum still has to elect a leader.
    pub fn ready_when(
        mut self,
        timeout: Duration,
        ready: impl Fn(&Cluster) -> bool + 'static,
    ) -> Self {
        self.ready = Some((timeout, Box::new(ready)));
        self
    }

    /// Routes every node's links to the other controllers through a
    /// [`LinkProxy`] per ordered pair, so [`Cluster::cut_link`],
    /// [`Cluster::isolate`] and [`Cluster::heal_all`] work.
    pub fn with_controller_link_proxies(mut self) -> Self {
        self.controller_link_proxies = true;
        self
    }

    /// Picks ports, starts every node at once, and waits until each logs
    /// `listening on PLAINTEXT://127.0.0.1:<its port>` (a controller-only
    /// node: `listening on CONTROLLER://…`), then for the
    /// [`ClusterBuilder::ready_when`] check if one was given. If a node exits
    /// because a port was taken after it was picked, every node is stopped
    /// and the start is retried with fresh ports (at most 5 attempts).
    pub fn start(self) -> Result<Cluster> {
        self.validate()?;
        let ClusterBuilder {
            binary,
            node_count,
            overrides,
            node_overrides,
            roles,
            env,
            start_timeout,
            stop_timeout,
            ready,
            controller_link_proxies,
        } = self;
        let root = tempfile::Builder::new()
            .prefix("fjord-cluster-")
            .tempdir()
            .context("create the cluster directory")?;
        let unassigned = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let nodes = (1..=node_count)
            .map(|id| {
                let mut node_config = overrides.clone();
                for (_, key, value) in node_overrides.iter().filter(|(n, _, _)| *n == id) {
                    node_config.retain(|(k, _)| k != key);
                    node_config.push((key.clone(), value.clone()));
                }
                Node {
                    id,
                    roles: roles.get(&id).copied().unwrap_or_default(),
                    plaintext: unassigned,
                    controller: unassigned,
                    data_dir: root.path().join(format!("node-{id}")),
                    overrides: node_config,
                    process: ManagedProcess::new(format!("node {id}")),
                }
            })
            .collect();
        let mut cluster = Cluster {
            binary,
            env,
            start_timeout,
            stop_timeout,
            controller_link_proxies,
            nodes,
            links: BTreeMap::new(),
            root,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            cluster.assign_ports()?;
            match cluster.launch(attempt) {
                Ok(()) => break,
                Err(Launch::PortTaken { node }) if attempt < START_ATTEMPTS_MAX => {
                    for other in &cluster.nodes {
                        other.process.terminate();
                        other.process.note(&format!(
                            "start attempt {attempt}: node {node} found a port taken; \
                             retrying with fresh ports"
                        ));
                    }
                }
                Err(Launch::PortTaken { node }) => bail!(
                    "node {node} found a port taken on each of {START_ATTEMPTS_MAX} start \
                     attempts\n{}",
                    cluster.log_report(LOG_TAIL_IN_ERROR_BYTES)
                ),
                Err(Launch::Failed(err)) => return Err(err),
            }
        }
        if let Some((timeout, ready)) = ready {
            wait_until(timeout, || ready(&cluster)).map_err(|err| {
                anyhow!(
                    "the cluster is up but not ready: {err}\n{}",
                    cluster.log_report(LOG_TAIL_IN_ERROR_BYTES)
                )
            })?;
        }
        Ok(cluster)
    }

    fn validate(&self) -> Result<()> {
        ensure!(
            (1..=NODES_MAX).contains(&self.node_count),
            "a cluster has between 1 and {NODES_MAX} nodes, not {}",
            self.node_count
        );
        let keys = self
            .overrides
            .iter()
            .map(|(key, _)| key)
            .chain(self.node_overrides.iter().map(|(_, key, _)| key));
        for key in keys {
            ensure!(
                !MANAGED_KEYS.contains(&key.as_str()),
                "`{key}` is set by the cluster harness and cannot be overridden"
            );
        }
        for (node, key, _) in &self.node_overrides {
            ensure!(
                (1..=self.node_count).contains(node),
                "override of `{key}` for node {node}, but node ids run from 1 to {}",
                self.node_count
            );
        }
        for node in self.roles.keys() {
            ensure!(
                (1..=self.node_count).contains(node),
                "roles for node {node}, but node ids run from 1 to {}",
                self.node_count
            );
        }
        let roles = |node| self.roles.get(&node).copied().unwrap_or_default();
        ensure!(
            (1..=self.node_count).any(|node| roles(node).is_controller()),
            "a cluster needs at least one node with the controller role"
        );
        Ok(())
    }
}

/// A snapshot of one node's addresses, directory and process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The `node.id`, from 1.
    pub id: u32,
    /// What the node runs.
    pub roles: NodeRoles,
    /// The PLAINTEXT listener clients and other brokers use (reserved but
    /// not bound on a controller-only node).
    pub bootstrap_address: SocketAddr,
    /// The node's real CONTROLLER listener, not a proxy in front of it
    /// (reserved but not bound on a broker-only node).
    pub controller_address: SocketAddr,
    /// The node's `log.dirs`, kept across kill, stop and restart.
    pub data_dir: PathBuf,
    /// The process id while the node is alive (paused counts as alive).
    pub pid: Option<u32>,
    /// Whether the node is paused by [`Cluster::pause`].
    pub paused: bool,
}

/// Real `fjord server` processes forming one cluster on 127.0.0.1, with
/// ports picked before the start and data under one temporary directory.
///
/// Node ids run from 1; passing any other id to a method is a bug in the
/// test and panics. Every method takes `&self`, so helper threads can share
/// the cluster (to pause a node while the test produces, say).
///
/// Dropping the cluster continues paused nodes, kills every node, closes the
/// proxies and removes the directory; if the test is panicking, the tail of
/// every node's log is printed first.
pub struct Cluster {
    binary: PathBuf,
    env: Vec<(String, String)>,
    start_timeout: Duration,
    stop_timeout: Duration,
    controller_link_proxies: bool,
    nodes: Vec<Node>,
    /// One proxy per ordered pair (from, to) when link proxies are on.
    links: BTreeMap<(u32, u32), LinkProxy>,
    /// Declared last so it is removed after the processes are gone.
    root: tempfile::TempDir,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("binary", &self.binary)
            .field("root", &self.root.path())
            .field("nodes", &self.nodes)
            .field("links", &self.links)
            .finish()
    }
}

#[derive(Debug)]
struct Node {
    id: u32,
    roles: NodeRoles,
    plaintext: SocketAddr,
    controller: SocketAddr,
    data_dir: PathBuf,
    /// The user's overrides for this node, node-specific ones merged in.
    overrides: Vec<(String, String)>,
    process: ManagedProcess,
}

impl Node {
    /// The address whose listening line says the node is up: PLAINTEXT,
    /// or CONTROLLER on a controller-only node.
    fn serving_address(&self) -> SocketAddr {
        if self.roles.is_broker() {
            self.plaintext
        } else {
            self.controller
        }
    }

    /// The text of that line.
    fn listening_marker(&self) -> &'static str {
        if self.roles.is_broker() {
            LISTENING_MARKER
        } else {
            CONTROLLER_LISTENING_MARKER
        }
    }

    /// The address in `line` if it is that line.
    fn listening_address(&self, line: &str) -> Option<SocketAddr> {
        if self.roles.is_broker() {
            parse_listening_address(line)
        } else {
            parse_controller_listening_address(line)
        }
    }
}

/// Why one start attempt failed.
enum Launch {
    /// A node exited reporting a port in use: worth another attempt.
    PortTaken {
        node: u32,
    },
    Failed(anyhow::Error),
}

impl Cluster {
    /// Returns a builder for a cluster run from the `fjord` binary at
    /// `binary` (in the `fjord` crate's tests: `env!("CARGO_BIN_EXE_fjord")`).
    pub fn builder(binary: impl Into<PathBuf>) -> ClusterBuilder {
        ClusterBuilder {
            binary: binary.into(),
            node_count: NODES_DEFAULT,
            overrides: Vec::new(),
            node_overrides: Vec::new(),
            roles: BTreeMap::new(),
            env: Vec::new(),
            start_timeout: START_TIMEOUT_DEFAULT,
            stop_timeout: STOP_TIMEOUT_DEFAULT,
            ready: None,
            controller_link_proxies: false,
        }
    }

    /// How many nodes the cluster has; their ids are `1..=node_count()`.
    pub fn node_count(&self) -> u32 {
        u32::try_from(self.nodes.len()).expect("at most NODES_MAX nodes")
    }

    /// `bootstrap.servers` for clients: `127.0.0.1:PORT,…` of every node
    /// with the broker role that is alive (paused nodes included), in node
    /// order. Empty if none is.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .filter(|node| node.roles.is_broker() && node.process.is_running())
            .map(|node| node.plaintext.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Addresses, data directory and process state of node `node`.
    pub fn node(&self, node: u32) -> NodeInfo {
        let node = self.node_ref(node);
        NodeInfo {
            id: node.id,
            roles: node.roles,
            bootstrap_address: node.plaintext,
            controller_address: node.controller,
            data_dir: node.data_dir.clone(),
            pid: node.process.pid(),
            paused: node.process.is_paused(),
        }
    }

    /// Everything node `node` wrote, across restarts, with the kit's
    /// `[testkit]` notes (starts, kills, link cuts) in between.
    pub fn logs(&self, node: u32) -> String {
        self.node_ref(node).process.logs()
    }

    /// The last `bytes_max` bytes of [`Cluster::logs`].
    pub fn logs_tail(&self, node: u32, bytes_max: usize) -> String {
        self.node_ref(node).process.logs_tail(bytes_max)
    }

    /// Whether node `node` is alive (paused counts as alive).
    pub fn is_running(&self, node: u32) -> bool {
        self.node_ref(node).process.is_running()
    }

    /// Whether node `node` is paused by [`Cluster::pause`].
    pub fn is_paused(&self, node: u32) -> bool {
        self.node_ref(node).process.is_paused()
    }

    /// Crash: SIGKILL, then reap. Returns the exit status.
    pub fn kill(&self, node: u32) -> Result<ExitStatus> {
        self.node_ref(node).process.kill()
    }

    /// Graceful stop: SIGTERM, then waits up to the stop timeout; a node
    /// still alive after that is killed and an error is returned.
    pub fn stop(&self, node: u32) -> Result<ExitStatus> {
        self.node_ref(node).process.stop(self.stop_timeout)
    }

    /// Freezes node `node` with SIGSTOP: its sockets stay open and nothing
    /// answers, as in a long GC pause.
    pub fn pause(&self, node: u32) -> Result<()> {
        self.node_ref(node).process.pause()
    }

    /// Continues a paused node with SIGCONT.
    pub fn resume(&self, node: u32) -> Result<()> {
        self.node_ref(node).process.resume()
    }

    /// Starts node `node` again with the same ports, data directory and
    /// settings, stopping it gracefully first if it is alive. While its old
    /// sockets are still closing, the node may exit with a port in use; that
    /// is retried every 500 ms, up to 10 attempts.
    pub fn restart(&self, node: u32) -> Result<()> {
        let node = self.node_ref(node);
        if node.process.is_running() {
            node.process.stop(self.stop_timeout)?;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            node.process.note(&format!(
                "restart attempt {attempt}: PLAINTEXT {}, CONTROLLER {}",
                node.plaintext, node.controller
            ));
            node.process.spawn(self.command(node))?;
            match node
                .process
                .await_line(self.start_timeout, |line| node.listening_address(line))
            {
                LineWait::Found(address) if address == node.serving_address() => return Ok(()),
                LineWait::Found(address) => {
                    node.process.terminate();
                    bail!(
                        "node {} restarted listening on {address} instead of {}",
                        node.id,
                        node.serving_address()
                    );
                }
                LineWait::Exited(_)
                    if attempt < RESTART_ATTEMPTS_MAX
                        && reports_port_in_use(&node.process.run_logs()) =>
                {
                    node.process.note(&format!(
                        "restart attempt {attempt} failed: a port is still in use"
                    ));
                    thread::sleep(RESTART_RETRY_DELAY);
                }
                LineWait::Exited(status) => bail!(
                    "node {} exited before listening (status {status:?}); log tail:\n{}",
                    node.id,
                    node.process.logs_tail(LOG_TAIL_IN_ERROR_BYTES)
                ),
                LineWait::TimedOut => {
                    node.process.terminate();
                    bail!(
                        "node {} did not log {:?} within {:?}; log tail:\n{}",
                        node.id,
                        node.listening_marker(),
                        self.start_timeout,
                        node.process.logs_tail(LOG_TAIL_IN_ERROR_BYTES)
                    );
                }
            }
        }
    }

    /// Cuts the controller links between `a` and `b` in both directions
    /// (one direction when only one of them is a voter). Fails unless the
    /// cluster was built [`ClusterBuilder::with_controller_link_proxies`],
    /// or when neither node is a voter.
    pub fn cut_link(&self, a: u32, b: u32) -> Result<()> {
        self.node_ref(a);
        self.node_ref(b);
        ensure!(a != b, "node {a} has no link to itself");
        let there = self.link(a, b);
        let back = self.link(b, a);
        let (there, back) = match (there, back) {
            (Err(error), Err(_)) if !self.controller_link_proxies => return Err(error),
            (Err(_), Err(_)) => bail!(
                "nodes {a} and {b} are both broker-only: there is no controller link between them"
            ),
            (there, back) => (there.ok(), back.ok()),
        };
        for link in there.into_iter().chain(back) {
            link.cut();
        }
        self.node_ref(a)
            .process
            .note(&format!("controller links with node {b} cut"));
        self.node_ref(b)
            .process
            .note(&format!("controller links with node {a} cut"));
        Ok(())
    }

    /// Cuts every controller link of node `node`, both directions, so it can
    /// reach no other controller and none can reach it.
    pub fn isolate(&self, node: u32) -> Result<()> {
        let roles = self.node_ref(node).roles;
        for other in self
            .nodes
            .iter()
            .filter(|n| n.id != node && (roles.is_controller() || n.roles.is_controller()))
        {
            self.cut_link(node, other.id)?;
        }
        Ok(())
    }

    /// Restores every cut controller link.
    pub fn heal_all(&self) {
        if self.links.values().any(LinkProxy::is_cut) {
            for node in &self.nodes {
                node.process.note("all controller links restored");
            }
        }
        for link in self.links.values() {
            link.restore();
        }
    }

    /// The proxy carrying node `from`'s connections to node `to`'s
    /// controller, if link proxies are on.
    pub fn controller_link(&self, from: u32, to: u32) -> Option<&LinkProxy> {
        self.links.get(&(from, to))
    }

    fn link(&self, from: u32, to: u32) -> Result<&LinkProxy> {
        self.links.get(&(from, to)).ok_or_else(|| {
            anyhow!("link faults need a cluster built with_controller_link_proxies()")
        })
    }

    fn node_ref(&self, node: u32) -> &Node {
        let count = self.nodes.len();
        usize::try_from(node)
            .ok()
            .and_then(|id| id.checked_sub(1))
            .and_then(|index| self.nodes.get(index))
            .unwrap_or_else(|| panic!("no node {node}: node ids run from 1 to {count}"))
    }

    /// The `server` command line of `node`: the KRaft keys for its roles,
    /// then the user's overrides.
    fn command(&self, node: &Node) -> Command {
        let voters = self
            .nodes
            .iter()
            .filter(|voter| voter.roles.is_controller())
            .map(|voter| {
                let address = match self.links.get(&(node.id, voter.id)) {
                    Some(proxy) => proxy.address(),
                    None => voter.controller,
                };
                format!("{}@{address}", voter.id)
            })
            .collect::<Vec<_>>()
            .join(",");
        let listeners = match node.roles {
            NodeRoles::Combined => format!(
                "PLAINTEXT://{},CONTROLLER://{}",
                node.plaintext, node.controller
            ),
            NodeRoles::Broker => format!("PLAINTEXT://{}", node.plaintext),
            NodeRoles::Controller => format!("CONTROLLER://{}", node.controller),
        };
        let broker = node.roles.is_broker();
        let managed = [
            Some(("process.roles", node.roles.process_roles().to_string())),
            Some(("node.id", node.id.to_string())),
            Some(("controller.quorum.voters", voters)),
            Some(("listeners", listeners)),
            broker.then(|| {
                (
                    "advertised.listeners",
                    format!("PLAINTEXT://{}", node.plaintext),
                )
            }),
            Some(("controller.listener.names", "CONTROLLER".to_string())),
            broker.then(|| ("inter.broker.listener.name", "PLAINTEXT".to_string())),
            Some((
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".to_string(),
            )),
            Some(("log.dirs", node.data_dir.display().to_string())),
        ];
        let overrides = managed
            .into_iter()
            .flatten()
            .map(|(key, value)| (key.to_string(), value))
            .chain(node.overrides.iter().cloned());
        server_command(&self.binary, overrides, &self.env)
    }

    /// Gives every node fresh ports and an empty data directory, and with
    /// link proxies on, fresh proxies to the new CONTROLLER ports of the
    /// voters, one per voter for every other node.
    fn assign_ports(&mut self) -> Result<()> {
        let ports = free_ports(self.nodes.len() * 2)?;
        for (node, pair) in self.nodes.iter_mut().zip(ports.chunks_exact(2)) {
            node.plaintext = SocketAddr::from((Ipv4Addr::LOCALHOST, pair[0]));
            node.controller = SocketAddr::from((Ipv4Addr::LOCALHOST, pair[1]));
            // A failed attempt may have left metadata tied to the old ports.
            if node.data_dir.exists() {
                std::fs::remove_dir_all(&node.data_dir)
                    .with_context(|| format!("clear {}", node.data_dir.display()))?;
            }
            std::fs::create_dir_all(&node.data_dir)
                .with_context(|| format!("create {}", node.data_dir.display()))?;
        }
        self.links.clear();
        if self.controller_link_proxies {
            for from in &self.nodes {
                for to in self
                    .nodes
                    .iter()
                    .filter(|to| to.id != from.id && to.roles.is_controller())
                {
                    let proxy = LinkProxy::start(to.controller).with_context(|| {
                        format!("start the controller link proxy {} -> {}", from.id, to.id)
                    })?;
                    self.links.insert((from.id, to.id), proxy);
                }
            }
        }
        Ok(())
    }

    /// Spawns every node, then waits for all of them together.
    fn launch(&self, attempt: u32) -> Result<(), Launch> {
        for node in &self.nodes {
            node.process.note(&format!(
                "cluster start attempt {attempt}: PLAINTEXT {}, CONTROLLER {}",
                node.plaintext, node.controller
            ));
            node.process
                .spawn(self.command(node))
                .map_err(Launch::Failed)?;
        }
        let deadline = Instant::now() + self.start_timeout;
        // The log position each node not yet up is read from.
        let mut pending: Vec<(&Node, usize)> = self
            .nodes
            .iter()
            .map(|node| (node, node.process.run_log_start()))
            .collect();
        loop {
            let mut still_pending = Vec::with_capacity(pending.len());
            for (node, mut cursor) in pending {
                match node
                    .process
                    .poll_line(&mut cursor, |line| node.listening_address(line))
                {
                    None | Some(LineWait::TimedOut) => still_pending.push((node, cursor)),
                    Some(LineWait::Found(address)) if address == node.serving_address() => {}
                    Some(LineWait::Found(address)) => {
                        return Err(Launch::Failed(anyhow!(
                            "node {} listens on {address} instead of {}",
                            node.id,
                            node.serving_address()
                        )))
                    }
                    Some(LineWait::Exited(_)) if reports_port_in_use(&node.process.run_logs()) => {
                        return Err(Launch::PortTaken { node: node.id })
                    }
                    Some(LineWait::Exited(status)) => {
                        return Err(Launch::Failed(anyhow!(
                            "node {} exited before listening (status {status:?}); log tail:\n{}",
                            node.id,
                            node.process.logs_tail(LOG_TAIL_IN_ERROR_BYTES)
                        )))
                    }
                }
            }
            if still_pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let ids: Vec<u32> = still_pending.iter().map(|(node, _)| node.id).collect();
                return Err(Launch::Failed(anyhow!(
                    "nodes {ids:?} did not log that they listen within {:?}\n{}",
                    self.start_timeout,
                    self.log_report(LOG_TAIL_IN_ERROR_BYTES)
                )));
            }
            pending = still_pending;
            thread::sleep(START_POLL_INTERVAL);
        }
    }

    /// The last `tail_bytes` of every node's log, each under a heading that
    /// names the node, its ports and its directory.
    fn log_report(&self, tail_bytes: usize) -> String {
        let mut report = String::new();
        for node in &self.nodes {
            report.push_str(&format!(
                "---- fjord node {} log (last {} KiB; process.roles={}, PLAINTEXT {}, CONTROLLER {}, data dir {}) ----\n{}\n---- end of node {} log ----\n",
                node.id,
                tail_bytes / 1024,
                node.roles.process_roles(),
                node.plaintext,
                node.controller,
                node.data_dir.display(),
                node.process.logs_tail(tail_bytes).trim_end(),
                node.id
            ));
        }
        report
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            node.process.terminate();
        }
        if thread::panicking() {
            eprintln!("{}", self.log_report(LOG_TAIL_ON_PANIC_BYTES));
        }
        // Closed before the directory goes, with the processes already gone.
        self.links.clear();
    }
}
