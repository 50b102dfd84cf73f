//! `fjord perf group-failover|group-rebalance|offset-commit`: consumer-group
//! benchmarks on librdkafka consumers running in this process.
//!
//! * `group-failover` measures how long a group takes to hand the partitions
//!   of a member that died (no LeaveGroup) to the survivors. librdkafka always
//!   sends LeaveGroup when a consumer is closed, so the victim runs as a child
//!   process of this binary (the hidden `perf group-member` subcommand) and is
//!   killed with SIGKILL; the survivors are in-process consumers whose
//!   rebalance callbacks report every assignment change with a time stamp.
//! * `group-rebalance` measures how long M members take to form a group in
//!   which every partition is assigned exactly once, and how long the group
//!   takes to absorb one more member.
//! * `offset-commit` measures synchronous OffsetCommit round trips (each one
//!   durable on the broker) with one or more concurrent committers.
//!
//! Assignment tracking assumes the classic protocol with librdkafka's default
//! eager assignors (range, roundrobin); a cooperative assignor given through
//! `--consumer-props` is followed incrementally.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;

use super::props::{self, ClientSettings};
use super::stats::{format_utc_millis, LatencyStats};
use super::{report_client_error, ErrorFilter, OutputFormat, Reporter};

/// How often member threads poll (rebalance callbacks are served by poll;
/// librdkafka wakes a poll as soon as an event arrives, so this only bounds
/// how quickly a member notices it should stop).
const POLL: Duration = Duration::from_millis(100);

/// A group counts as settled once no assignment changed for this long.
const SETTLE: Duration = Duration::from_millis(1000);

/// Options shared by the group benchmarks.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct GroupCommonArgs {
    /// Broker(s) to bootstrap from, host:port[,host:port...] (default 127.0.0.1:9092).
    #[arg(
        long = "bootstrap-server",
        alias = "broker-list",
        value_name = "HOST:PORT"
    )]
    pub(crate) bootstrap_server: Option<String>,

    /// Extra consumer configuration as KEY=VALUE pairs (librdkafka names).
    #[arg(long = "consumer-props", value_name = "KEY=VALUE", num_args = 1..)]
    pub(crate) consumer_props: Vec<String>,

    /// Print the result as text or as one JSON object on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub(crate) output: OutputFormat,

    /// Give up on any single phase (topic creation, forming the group,
    /// failover, commits of one committer) after this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 120_000)]
    pub(crate) timeout: u64,
}

/// Flags of `fjord perf group-failover`.
#[derive(clap::Args, Debug)]
pub(crate) struct GroupFailoverArgs {
    /// Topic the group subscribes to (created if missing).
    #[arg(long)]
    pub(crate) topic: String,

    /// Partitions to create the topic with (an existing topic keeps its own count).
    #[arg(long, value_name = "N", default_value_t = 12)]
    pub(crate) partitions: i32,

    /// Members of the group, the victim included (at least 2).
    #[arg(long, value_name = "M", default_value_t = 3)]
    pub(crate) members: usize,

    /// session.timeout.ms of every member; a comma-separated list runs the
    /// measurement once per value, e.g. 1000,3000,6000.
    #[arg(
        long = "session-timeout-ms",
        value_name = "MS",
        value_delimiter = ',',
        num_args = 1..,
        default_value = "10000"
    )]
    pub(crate) session_timeout_ms: Vec<u64>,

    /// heartbeat.interval.ms of every member. Default: a third of the
    /// session timeout, at most 3000 (librdkafka's default).
    #[arg(long = "heartbeat-interval-ms", value_name = "MS")]
    pub(crate) heartbeat_interval_ms: Option<u64>,

    /// Measurements per session timeout (each in a fresh group).
    #[arg(long, value_name = "R", default_value_t = 1)]
    pub(crate) runs: u32,

    /// Group id prefix; every run uses `<prefix>-s<session>-r<run>`.
    /// Default: fjord-perf-failover-<pid>.
    #[arg(long, value_name = "GROUP")]
    pub(crate) group: Option<String>,

    /// Options shared with the other group benchmarks.
    #[command(flatten)]
    pub(crate) common: GroupCommonArgs,
}

/// Flags of the hidden `fjord perf group-member` (the failover victim).
#[derive(clap::Args, Debug)]
pub(crate) struct GroupMemberArgs {
    /// Group to join.
    #[arg(long)]
    pub(crate) group: String,

    /// Topic to subscribe to.
    #[arg(long)]
    pub(crate) topic: String,

    /// session.timeout.ms.
    #[arg(long = "session-timeout-ms", value_name = "MS")]
    pub(crate) session_timeout_ms: u64,

    /// heartbeat.interval.ms.
    #[arg(long = "heartbeat-interval-ms", value_name = "MS")]
    pub(crate) heartbeat_interval_ms: u64,

    /// Exit (leaving the group) after this long even if never killed.
    #[arg(long = "max-lifetime-ms", value_name = "MS", default_value_t = 600_000)]
    pub(crate) max_lifetime_ms: u64,

    /// Broker(s) to bootstrap from.
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub(crate) bootstrap_server: Option<String>,

    /// Extra consumer configuration as KEY=VALUE pairs.
    #[arg(long = "consumer-props", value_name = "KEY=VALUE", num_args = 1..)]
    pub(crate) consumer_props: Vec<String>,
}

/// Flags of `fjord perf group-rebalance`.
#[derive(clap::Args, Debug)]
pub(crate) struct GroupRebalanceArgs {
    /// Topic the group subscribes to (created if missing).
    #[arg(long, default_value = "fjord-perf-rebalance")]
    pub(crate) topic: String,

    /// Partitions to create the topic with (an existing topic keeps its own count).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub(crate) partitions: i32,

    /// Members that join at once; one more joins afterwards.
    #[arg(long, value_name = "M", default_value_t = 50)]
    pub(crate) members: usize,

    /// session.timeout.ms of every member (librdkafka's default).
    #[arg(
        long = "session-timeout-ms",
        value_name = "MS",
        default_value_t = 45_000
    )]
    pub(crate) session_timeout_ms: u64,

    /// heartbeat.interval.ms of every member (librdkafka's default). Members
    /// learn of a rebalance from a heartbeat, so this bounds the rejoin delay.
    #[arg(
        long = "heartbeat-interval-ms",
        value_name = "MS",
        default_value_t = 3000
    )]
    pub(crate) heartbeat_interval_ms: u64,

    /// Group id. Default: fjord-perf-rebalance-<pid>.
    #[arg(long, value_name = "GROUP")]
    pub(crate) group: Option<String>,

    /// Options shared with the other group benchmarks.
    #[command(flatten)]
    pub(crate) common: GroupCommonArgs,
}

/// Flags of `fjord perf offset-commit`.
#[derive(clap::Args, Debug)]
pub(crate) struct OffsetCommitArgs {
    /// Group whose offsets are committed (no member ever joins it).
    #[arg(long, default_value = "fjord-perf-offset-commit")]
    pub(crate) group: String,

    /// Topic whose offsets are committed (created if missing).
    #[arg(long)]
    pub(crate) topic: String,

    /// Partitions of the topic; every commit carries one offset per partition.
    #[arg(long, value_name = "P", default_value_t = 1)]
    pub(crate) partitions: i32,

    /// Synchronous commits in total (split evenly between the committers).
    #[arg(long, value_name = "N")]
    pub(crate) commits: u64,

    /// Concurrent committers (one consumer and thread each) sharing the group.
    #[arg(long, value_name = "C", default_value_t = 1)]
    pub(crate) committers: usize,

    /// Options shared with the other group benchmarks.
    #[command(flatten)]
    pub(crate) common: GroupCommonArgs,
}

// ---------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------

/// How a set of member assignments covers the partitions 0..partitions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Coverage {
    /// Members without any assignment (not joined yet, or revoked).
    unassigned_members: usize,
    /// Partitions nobody owns.
    missing: Vec<i32>,
    /// Partitions owned by more than one member.
    duplicated: Vec<i32>,
}

impl Coverage {
    /// Every member has an assignment and every partition has exactly one owner.
    fn is_complete(&self) -> bool {
        self.unassigned_members == 0 && self.missing.is_empty() && self.duplicated.is_empty()
    }
}

/// Computes the [`Coverage`] of `partitions` by the given member assignments.
fn coverage<'a>(
    assignments: impl IntoIterator<Item = Option<&'a BTreeSet<i32>>>,
    partitions: i32,
) -> Coverage {
    let n = usize::try_from(partitions).unwrap_or(0);
    let mut owners = vec![0u32; n];
    let mut out = Coverage::default();
    for a in assignments {
        match a {
            None => out.unassigned_members += 1,
            Some(set) => {
                for &p in set {
                    if let Some(c) = usize::try_from(p).ok().and_then(|i| owners.get_mut(i)) {
                        *c += 1;
                    }
                }
            }
        }
    }
    for (p, &c) in owners.iter().enumerate() {
        let p = p as i32;
        match c {
            0 => out.missing.push(p),
            1 => {}
            _ => out.duplicated.push(p),
        }
    }
    out
}

/// Default heartbeat for a session timeout: a third of it (Kafka's advice),
/// at most librdkafka's default of 3000 ms and at least 1 ms.
fn default_heartbeat_ms(session_timeout_ms: u64) -> u64 {
    (session_timeout_ms / 3).clamp(1, 3000)
}

/// One assignment change reported by the victim process on its stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MemberEvent {
    /// The member now owns exactly these partitions.
    Assign(BTreeSet<i32>),
    /// The member owns nothing (eager revocation).
    Revoke,
}

impl MemberEvent {
    /// The line the victim prints: `assign 0,3,5` (possibly `assign `) or `revoke`.
    fn line(&self) -> String {
        match self {
            MemberEvent::Assign(set) => {
                let list: Vec<String> = set.iter().map(i32::to_string).collect();
                format!("assign {}", list.join(","))
            }
            MemberEvent::Revoke => "revoke".into(),
        }
    }

    /// Parses [`MemberEvent::line`]; anything else is `None`.
    fn parse(line: &str) -> Option<Self> {
        let line = line.trim_end();
        if line == "revoke" {
            return Some(MemberEvent::Revoke);
        }
        let rest = line.strip_prefix("assign")?;
        let rest = rest.trim();
        if rest.is_empty() {
            return Some(MemberEvent::Assign(BTreeSet::new()));
        }
        rest.split(',')
            .map(|p| p.trim().parse::<i32>().ok())
            .collect::<Option<BTreeSet<i32>>>()
            .map(MemberEvent::Assign)
    }
}

/// How long after the settle period run `run` of `runs` waits before the
/// kill: the runs' kills are spread evenly over one heartbeat interval.
fn kill_phase_ms(heartbeat_ms: u64, run: u32, runs: u32) -> u64 {
    let runs = u64::from(runs.max(1));
    let i = u64::from(run.max(1) - 1) % runs;
    heartbeat_ms * i / runs
}

/// Minimum, median and maximum of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Spread {
    min: f64,
    median: f64,
    max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Some(Self {
            min: v[0],
            median,
            max: v[v.len() - 1],
        })
    }
}

/// Splits `total` items between `workers` as evenly as possible.
fn split_evenly(total: u64, workers: usize) -> Vec<u64> {
    let w = workers.max(1) as u64;
    (0..w)
        .map(|i| total / w + u64::from(i < total % w))
        .collect()
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------
// Assignment board: what every member currently owns, with time stamps
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Slot {
    /// Counted in coverage checks.
    live: bool,
    assignment: Option<BTreeSet<i32>>,
    assigns: u32,
    last_event: Option<Instant>,
    last_assign: Option<Instant>,
    first_revoke: Option<Instant>,
}

/// Shared record of every member's assignment, updated from rebalance
/// callbacks (or the victim's stdout) and waited on by the measuring thread.
struct Board {
    partitions: i32,
    slots: Mutex<Vec<Slot>>,
    changed: Condvar,
    errors: Mutex<ErrorFilter>,
    fatal: Mutex<Option<String>>,
}

impl Board {
    fn new(partitions: i32, members: usize) -> Arc<Self> {
        Arc::new(Self {
            partitions,
            slots: Mutex::new(vec![Slot::default(); members]),
            changed: Condvar::new(),
            errors: Mutex::new(ErrorFilter::default()),
            fatal: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, slot: usize, f: impl FnOnce(&mut Slot)) {
        let mut slots = self.lock();
        if let Some(s) = slots.get_mut(slot) {
            f(s);
        }
        drop(slots);
        self.changed.notify_all();
    }

    fn set_live(&self, slot: usize, live: bool) {
        self.update(slot, |s| s.live = live);
    }

    /// Applies an eager (full) assignment change.
    fn apply(&self, slot: usize, event: MemberEvent, at: Instant) {
        self.update(slot, |s| {
            s.last_event = Some(at);
            match event {
                MemberEvent::Assign(set) => {
                    s.assignment = Some(set);
                    s.assigns += 1;
                    s.last_assign = Some(at);
                }
                MemberEvent::Revoke => {
                    s.assignment = None;
                    s.first_revoke.get_or_insert(at);
                }
            }
        });
    }

    /// Applies an incremental (cooperative) assignment change.
    fn apply_incremental(&self, slot: usize, added: bool, parts: &BTreeSet<i32>, at: Instant) {
        self.update(slot, |s| {
            s.last_event = Some(at);
            let set = s.assignment.get_or_insert_with(BTreeSet::new);
            if added {
                set.extend(parts);
                s.assigns += 1;
                s.last_assign = Some(at);
            } else {
                set.retain(|p| !parts.contains(p));
                s.first_revoke.get_or_insert(at);
            }
        });
    }

    fn fail(&self, why: String) {
        self.fatal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(why);
        self.changed.notify_all();
    }

    fn fatal(&self) -> Option<String> {
        self.fatal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets per-phase marks (first revocation) before a new phase.
    fn clear_marks(&self) {
        for s in self.lock().iter_mut() {
            s.first_revoke = None;
        }
    }

    /// Coverage of the partitions by the live members.
    fn live_coverage(slots: &[Slot], partitions: i32) -> Coverage {
        coverage(
            slots
                .iter()
                .filter(|s| s.live)
                .map(|s| s.assignment.as_ref()),
            partitions,
        )
    }

    /// Waits until `pred` (called with the slots and the current time)
    /// returns a value, a member failed, or `deadline` passed.
    fn wait_for<T>(
        &self,
        deadline: Instant,
        what: &str,
        mut pred: impl FnMut(&[Slot], Instant) -> Option<T>,
    ) -> anyhow::Result<T> {
        let mut slots = self.lock();
        loop {
            if let Some(why) = self.fatal() {
                bail!("{what}: {why}");
            }
            let now = Instant::now();
            if let Some(v) = pred(&slots, now) {
                return Ok(v);
            }
            if now >= deadline {
                let cov = Self::live_coverage(&slots, self.partitions);
                bail!(
                    "timed out waiting for {what}: {} member(s) without assignment, \
                     {} partition(s) unowned, {} owned twice",
                    cov.unassigned_members,
                    cov.missing.len(),
                    cov.duplicated.len()
                );
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            slots = self
                .changed
                .wait_timeout(slots, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until the live members own every partition exactly once and
    /// nothing changed for [`SETTLE`]; returns when the last change happened.
    fn wait_settled(&self, deadline: Instant, what: &str) -> anyhow::Result<Instant> {
        let partitions = self.partitions;
        self.wait_for(deadline, what, |slots, now| {
            if !Self::live_coverage(slots, partitions).is_complete() {
                return None;
            }
            let last = last_event(slots)?;
            (now.duration_since(last) >= SETTLE).then_some(last)
        })
    }
}

/// The latest assignment change among the live members.
fn last_event(slots: &[Slot]) -> Option<Instant> {
    slots
        .iter()
        .filter(|s| s.live)
        .filter_map(|s| s.last_event)
        .max()
}

fn partitions_of(tpl: &TopicPartitionList, topic: &str) -> BTreeSet<i32> {
    tpl.elements()
        .iter()
        .filter(|e| e.topic() == topic)
        .map(|e| e.partition())
        .collect()
}

/// Consumer context of an in-process member: reports rebalances to the board.
struct MemberContext {
    slot: usize,
    topic: String,
    board: Arc<Board>,
}

impl ClientContext for MemberContext {
    fn error(&self, error: KafkaError, reason: &str) {
        report_client_error(
            &self.board.errors,
            &format!("member {}", self.slot),
            &error,
            reason,
        );
    }
}

impl ConsumerContext for MemberContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let at = Instant::now();
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts = partitions_of(tpl, &self.topic);
                if cooperative {
                    self.board.apply_incremental(self.slot, true, &parts, at);
                } else {
                    self.board.apply(self.slot, MemberEvent::Assign(parts), at);
                }
            }
            Rebalance::Revoke(tpl) => {
                if cooperative {
                    let parts = partitions_of(tpl, &self.topic);
                    self.board.apply_incremental(self.slot, false, &parts, at);
                } else {
                    self.board.apply(self.slot, MemberEvent::Revoke, at);
                }
            }
            Rebalance::Error(e) => {
                eprintln!("member {}: rebalance error: {e}", self.slot);
            }
        }
    }
}

/// The consumer configuration of a group member.
fn member_settings(
    bootstrap: Option<&str>,
    consumer_props: &[String],
    group: &str,
    session_ms: u64,
    heartbeat_ms: u64,
) -> anyhow::Result<ClientSettings> {
    let cli = props::parse_kv_list(consumer_props).context("--consumer-props")?;
    let defaults = [
        ("enable.auto.commit", "false"),
        ("auto.offset.reset", "latest"),
    ];
    let mut settings = props::resolve(&defaults, &[], &cli, bootstrap);
    for (k, v) in [
        ("group.id", group.to_string()),
        ("session.timeout.ms", session_ms.to_string()),
        ("heartbeat.interval.ms", heartbeat_ms.to_string()),
    ] {
        settings.entries.insert(k.into(), v);
    }
    Ok(settings)
}

/// An in-process member: a thread that subscribes and polls until told to stop.
struct Member {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Member {
    fn spawn(slot: usize, settings: &ClientSettings, topic: &str, board: &Arc<Board>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let config = settings.to_client_config();
        let context = MemberContext {
            slot,
            topic: topic.to_string(),
            board: Arc::clone(board),
        };
        board.set_live(slot, true);
        let (topic, shared, flag) = (topic.to_string(), Arc::clone(board), Arc::clone(&stop));
        let handle = thread::Builder::new()
            .name(format!("member-{slot}"))
            .spawn(move || {
                let consumer: BaseConsumer<MemberContext> = match config
                    .create_with_context(context)
                {
                    Ok(c) => c,
                    Err(e) => return shared.fail(format!("member {slot}: creating consumer: {e}")),
                };
                if let Err(e) = consumer.subscribe(&[&topic]) {
                    return shared.fail(format!("member {slot}: subscribing to {topic}: {e}"));
                }
                while !flag.load(Ordering::Relaxed) {
                    // Messages (if the topic has any) are simply dropped.
                    let _ = consumer.poll(POLL);
                }
                // Dropping the consumer closes it: LeaveGroup, then exit.
            });
        let handle = match handle {
            Ok(h) => h,
            Err(e) => {
                board.fail(format!("member {slot}: spawning thread: {e}"));
                thread::spawn(|| ())
            }
        };
        Self { stop, handle }
    }

    fn stop_all(members: Vec<Member>) {
        for m in &members {
            m.stop.store(true, Ordering::Relaxed);
        }
        for m in members {
            let _ = m.handle.join();
        }
    }
}

/// Creates `topic` with `partitions` partitions unless it exists and returns
/// the partition count the broker reports for it.
fn ensure_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> anyhow::Result<i32> {
    if partitions < 1 {
        bail!("--partitions must be at least 1");
    }
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .with_context(|| format!("creating an admin client for {bootstrap}"))?;
    let opts = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let handle = tokio::runtime::Handle::try_current()
        .context("the perf tools run inside the tokio runtime")?;
    let results = handle
        .block_on(admin.create_topics([&new_topic], &opts))
        .with_context(|| format!("creating topic {topic} on {bootstrap}"))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name}: {code:?}"),
        }
    }
    let deadline = Instant::now() + timeout;
    loop {
        let md = admin
            .inner()
            .fetch_metadata(Some(topic), timeout)
            .with_context(|| format!("fetching metadata of {topic} from {bootstrap}"))?;
        if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
            let ready = t.error().is_none()
                && !t.partitions().is_empty()
                && t.partitions().iter().all(|p| p.leader() >= 0);
            if ready {
                return Ok(t.partitions().len() as i32);
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "topic {topic} has no leaders after {} ms",
                timeout.as_millis()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn bootstrap_of(common: &GroupCommonArgs) -> anyhow::Result<String> {
    // Resolve exactly as the consumers will (props may carry bootstrap.servers).
    Ok(member_settings(
        common.bootstrap_server.as_deref(),
        &common.consumer_props,
        "-",
        1,
        1,
    )?
    .bootstrap)
}

// ---------------------------------------------------------------------------
// group-member (the failover victim, a child process)
// ---------------------------------------------------------------------------

/// Context of the victim: prints every assignment change as a line on stdout.
struct PrintingContext {
    topic: String,
    errors: Mutex<ErrorFilter>,
}

impl PrintingContext {
    fn say(&self, event: &MemberEvent) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", event.line());
        let _ = out.flush();
    }
}

impl ClientContext for PrintingContext {
    fn error(&self, error: KafkaError, reason: &str) {
        report_client_error(&self.errors, "victim", &error, reason);
    }
}

impl ConsumerContext for PrintingContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.say(&MemberEvent::Assign(partitions_of(tpl, &self.topic)))
            }
            Rebalance::Revoke(_) => self.say(&MemberEvent::Revoke),
            Rebalance::Error(e) => eprintln!("victim: rebalance error: {e}"),
        }
    }
}

/// Runs the victim: joins the group and polls until killed, until stdin
/// closes (the parent is gone) or until the maximum lifetime passed.
pub(super) fn run_member(args: GroupMemberArgs) -> anyhow::Result<()> {
    let settings = member_settings(
        args.bootstrap_server.as_deref(),
        &args.consumer_props,
        &args.group,
        args.session_timeout_ms,
        args.heartbeat_interval_ms,
    )?;
    let consumer: BaseConsumer<PrintingContext> = settings
        .to_client_config()
        .create_with_context(PrintingContext {
            topic: args.topic.clone(),
            errors: Mutex::new(ErrorFilter::default()),
        })
        .context("creating the member's consumer")?;
    consumer
        .subscribe(&[&args.topic])
        .with_context(|| format!("subscribing to {}", args.topic))?;
    let parent_gone = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&parent_gone);
    thread::spawn(move || {
        let mut sink = String::new();
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read_line(&mut sink), Ok(n) if n > 0) {
            sink.clear();
        }
        flag.store(true, Ordering::Relaxed);
    });
    let end = Instant::now() + Duration::from_millis(args.max_lifetime_ms);
    while !parent_gone.load(Ordering::Relaxed) && Instant::now() < end {
        let _ = consumer.poll(POLL);
    }
    Ok(())
}

/// The victim child process and the thread that relays its stdout.
struct Victim {
    child: Child,
    /// Held open so the child does not see EOF; dropped after the kill.
    _stdin: Option<ChildStdin>,
    reader: Option<JoinHandle<()>>,
}

impl Victim {
    fn spawn(
        slot: usize,
        bootstrap: &str,
        args: &GroupFailoverArgs,
        group: &str,
        session_ms: u64,
        heartbeat_ms: u64,
        board: &Arc<Board>,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the fjord binary")?;
        let mut cmd = Command::new(exe);
        cmd.args(["perf", "group-member", "--bootstrap-server", bootstrap])
            .args(["--group", group, "--topic", &args.topic])
            .args(["--session-timeout-ms", &session_ms.to_string()])
            .args(["--heartbeat-interval-ms", &heartbeat_ms.to_string()])
            .args([
                "--max-lifetime-ms",
                &args.common.timeout.saturating_mul(3).to_string(),
            ]);
        if !args.common.consumer_props.is_empty() {
            cmd.arg("--consumer-props")
                .args(&args.common.consumer_props);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the victim process (fjord perf group-member)")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("victim stdout")?;
        board.set_live(slot, true);
        let board = Arc::clone(board);
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(event) = MemberEvent::parse(&line) {
                    board.apply(slot, event, Instant::now());
                }
            }
        });
        Ok(Self {
            child,
            _stdin: stdin,
            reader: Some(reader),
        })
    }

    /// SIGKILLs the victim (`Child::kill` sends SIGKILL on Unix: no
    /// LeaveGroup, no clean TCP shutdown by the client) and reaps it.
    fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("killing the victim")?;
        self.child.wait().context("reaping the victim")?;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        Ok(())
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        if self.reader.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// group-failover
// ---------------------------------------------------------------------------

/// One failover measurement.
#[derive(Debug, Clone, Serialize)]
struct FailoverRun {
    group: String,
    session_timeout_ms: u64,
    heartbeat_interval_ms: u64,
    run: u32,
    /// Start of the members until the group owned every partition once.
    stable_ms: f64,
    /// Partitions the victim owned when it was killed.
    victim_partitions: usize,
    /// Time from the last assignment (all members in step) to the kill.
    kill_after_assign_ms: f64,
    /// Wall-clock time of the kill (UTC), to match against the broker's log.
    killed_at: String,
    /// Kill until the first survivor was told to rebalance (its revocation).
    detect_ms: Option<f64>,
    /// Kill until the survivors owned every partition again.
    failover_ms: f64,
}

#[derive(Serialize)]
struct FailoverSummary {
    session_timeout_ms: u64,
    heartbeat_interval_ms: u64,
    runs: usize,
    failover_ms: Option<Spread>,
    detect_ms: Option<Spread>,
}

#[derive(Serialize)]
struct FailoverReport<'a> {
    tool: &'static str,
    topic: &'a str,
    partitions: i32,
    members: usize,
    runs: &'a [FailoverRun],
    summary: Vec<FailoverSummary>,
}

const FAILOVER_HEADER: &str =
    "session.timeout.ms, heartbeat.interval.ms, run, members, partitions, \
     victim.partitions, stable.ms, kill.after.assign.ms, detect.ms, failover.ms";

/// Runs the failover benchmark (blocking).
pub(super) fn run_failover(args: GroupFailoverArgs) -> anyhow::Result<()> {
    let reporter = Reporter::new(args.common.output);
    if args.members < 2 {
        bail!("--members must be at least 2 (one victim and one survivor)");
    }
    if args.session_timeout_ms.is_empty() || args.runs == 0 {
        bail!("nothing to do: give --session-timeout-ms and --runs >= 1");
    }
    let timeout = Duration::from_millis(args.common.timeout.max(1));
    let bootstrap = bootstrap_of(&args.common)?;
    let partitions = ensure_topic(&bootstrap, &args.topic, args.partitions, timeout)?;
    if partitions != args.partitions {
        eprintln!(
            "note: topic {} already exists with {partitions} partitions",
            args.topic
        );
    }
    if (partitions as usize) < args.members {
        bail!(
            "{partitions} partitions for {} members: the victim might own nothing; \
             use at least as many partitions as members",
            args.members
        );
    }
    let prefix = args
        .group
        .clone()
        .unwrap_or_else(|| format!("fjord-perf-failover-{}", std::process::id()));
    if args.common.output == OutputFormat::Text {
        println!("{FAILOVER_HEADER}");
    }
    let mut runs = Vec::new();
    for &session_ms in &args.session_timeout_ms {
        let heartbeat_ms = args
            .heartbeat_interval_ms
            .unwrap_or_else(|| default_heartbeat_ms(session_ms));
        for run in 1..=args.runs {
            let group = format!("{prefix}-s{session_ms}-r{run}");
            let r = failover_once(
                &args,
                &bootstrap,
                partitions,
                &group,
                session_ms,
                heartbeat_ms,
                run,
            )
            .with_context(|| format!("group {group}"))?;
            if args.common.output == OutputFormat::Text {
                println!(
                    "{}, {}, {}, {}, {}, {}, {:.0}, {:.0}, {}, {:.0}",
                    r.session_timeout_ms,
                    r.heartbeat_interval_ms,
                    r.run,
                    args.members,
                    partitions,
                    r.victim_partitions,
                    r.stable_ms,
                    r.kill_after_assign_ms,
                    r.detect_ms.map_or("-".into(), |d| format!("{d:.0}")),
                    r.failover_ms
                );
            } else {
                reporter.progress(&format!(
                    "session.timeout.ms={session_ms} run {run}: failover {:.0} ms",
                    r.failover_ms
                ));
            }
            runs.push(r);
        }
    }
    let summary: Vec<FailoverSummary> = args
        .session_timeout_ms
        .iter()
        .map(|&s| {
            let of_s: Vec<&FailoverRun> =
                runs.iter().filter(|r| r.session_timeout_ms == s).collect();
            let fail: Vec<f64> = of_s.iter().map(|r| r.failover_ms).collect();
            let det: Vec<f64> = of_s.iter().filter_map(|r| r.detect_ms).collect();
            FailoverSummary {
                session_timeout_ms: s,
                heartbeat_interval_ms: of_s.first().map_or(0, |r| r.heartbeat_interval_ms),
                runs: of_s.len(),
                failover_ms: Spread::of(&fail),
                detect_ms: Spread::of(&det),
            }
        })
        .collect();
    match args.common.output {
        OutputFormat::Text => {
            for s in &summary {
                if let Some(f) = s.failover_ms {
                    println!(
                        "session.timeout.ms={} heartbeat.interval.ms={}: failover min/median/max \
                         {:.0}/{:.0}/{:.0} ms over {} run(s)",
                        s.session_timeout_ms,
                        s.heartbeat_interval_ms,
                        f.min,
                        f.median,
                        f.max,
                        s.runs
                    );
                }
            }
        }
        OutputFormat::Json => {
            let report = FailoverReport {
                tool: "perf group-failover",
                topic: &args.topic,
                partitions,
                members: args.members,
                runs: &runs,
                summary,
            };
            println!("{}", serde_json::to_string(&report)?);
        }
    }
    Ok(())
}

fn failover_once(
    args: &GroupFailoverArgs,
    bootstrap: &str,
    partitions: i32,
    group: &str,
    session_ms: u64,
    heartbeat_ms: u64,
    run: u32,
) -> anyhow::Result<FailoverRun> {
    let timeout = Duration::from_millis(args.common.timeout.max(1));
    let settings = member_settings(
        Some(bootstrap),
        &args.common.consumer_props,
        group,
        session_ms,
        heartbeat_ms,
    )?;
    let board = Board::new(partitions, args.members);
    let victim_slot = args.members - 1;
    let start = Instant::now();
    let mut victim = Victim::spawn(
        victim_slot,
        bootstrap,
        args,
        group,
        session_ms,
        heartbeat_ms,
        &board,
    )?;
    let members: Vec<Member> = (0..victim_slot)
        .map(|slot| Member::spawn(slot, &settings, &args.topic, &board))
        .collect();
    let result = (|| {
        let settled = board.wait_settled(Instant::now() + timeout, "the group to form")?;
        let stable_ms = ms(settled.duration_since(start));
        let victim_partitions = board.lock()[victim_slot]
            .assignment
            .as_ref()
            .map_or(0, BTreeSet::len);
        if victim_partitions == 0 {
            bail!("the victim owns no partition; nothing would fail over");
        }
        // Members heartbeat in lock step from the moment they were assigned,
        // so the kill's phase within a heartbeat interval decides when the
        // victim's session ends and when survivors hear of it. Spread the
        // kills of successive runs evenly over one interval.
        let phase = Duration::from_millis(kill_phase_ms(heartbeat_ms, run, args.runs));
        let kill_at = settled + SETTLE + phase;
        thread::sleep(kill_at.saturating_duration_since(Instant::now()));
        board.clear_marks();
        let killed = Instant::now();
        let killed_at = format_utc_millis(epoch_ms());
        victim.kill()?;
        board.set_live(victim_slot, false);
        let partitions = board.partitions;
        let recovered = board.wait_for(
            killed + timeout,
            "the survivors to take over every partition",
            |slots, _| {
                Board::live_coverage(slots, partitions)
                    .is_complete()
                    .then(|| last_event(slots))
                    .flatten()
            },
        )?;
        let detect = board
            .lock()
            .iter()
            .filter(|s| s.live)
            .filter_map(|s| s.first_revoke)
            .min();
        Ok(FailoverRun {
            group: group.to_string(),
            session_timeout_ms: session_ms,
            heartbeat_interval_ms: heartbeat_ms,
            run,
            stable_ms,
            victim_partitions,
            kill_after_assign_ms: ms(killed.duration_since(settled)),
            killed_at,
            detect_ms: detect.map(|d| ms(d.saturating_duration_since(killed))),
            failover_ms: ms(recovered.saturating_duration_since(killed)),
        })
    })();
    drop(victim);
    Member::stop_all(members);
    result
}

// ---------------------------------------------------------------------------
// group-rebalance
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct RebalanceReport<'a> {
    tool: &'static str,
    group: &'a str,
    topic: &'a str,
    partitions: i32,
    members: usize,
    session_timeout_ms: u64,
    heartbeat_interval_ms: u64,
    /// Start of all members until every one owned its share (all stable).
    join_ms: f64,
    /// Most assignments any initial member received before the group
    /// settled (1 = the group formed in a single generation).
    join_assignments_max: u32,
    /// Start of the extra member until every member was reassigned.
    rejoin_ms: f64,
    /// Start of the extra member until the first old member was revoked.
    rejoin_detect_ms: Option<f64>,
}

/// Runs the rebalance benchmark (blocking).
pub(super) fn run_rebalance(args: GroupRebalanceArgs) -> anyhow::Result<()> {
    let reporter = Reporter::new(args.common.output);
    if args.members == 0 {
        bail!("--members must be at least 1");
    }
    let timeout = Duration::from_millis(args.common.timeout.max(1));
    let bootstrap = bootstrap_of(&args.common)?;
    let partitions = ensure_topic(&bootstrap, &args.topic, args.partitions, timeout)?;
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("fjord-perf-rebalance-{}", std::process::id()));
    let settings = member_settings(
        Some(&bootstrap),
        &args.common.consumer_props,
        &group,
        args.session_timeout_ms,
        args.heartbeat_interval_ms,
    )?;
    let m = args.members;
    let board = Board::new(partitions, m + 1);
    reporter.progress(&format!(
        "starting {m} members in group {group} on {} ({partitions} partitions)",
        args.topic
    ));
    let start = Instant::now();
    let mut members: Vec<Member> = (0..m)
        .map(|slot| Member::spawn(slot, &settings, &args.topic, &board))
        .collect();
    let result = (|| -> anyhow::Result<(f64, u32, f64, Option<f64>)> {
        // Exact moment the last member got its share; then make sure it held.
        let partitions = board.partitions;
        let formed =
            board.wait_for(start + timeout, "all members to be assigned", |slots, _| {
                Board::live_coverage(slots, partitions)
                    .is_complete()
                    .then(|| last_event(slots))
                    .flatten()
            })?;
        let settled = board.wait_settled(Instant::now() + timeout, "the group to settle")?;
        if settled != formed {
            eprintln!(
                "note: the assignment changed again {:.0} ms after every member was assigned",
                ms(settled.duration_since(formed))
            );
        }
        let join_ms = ms(formed.duration_since(start));
        let join_assignments_max = board.lock().iter().map(|s| s.assigns).max().unwrap_or(0);
        reporter.progress(&format!(
            "{m} members stable after {join_ms:.0} ms; adding member {}",
            m + 1
        ));
        board.clear_marks();
        let added = Instant::now();
        members.push(Member::spawn(m, &settings, &args.topic, &board));
        let rejoined = board.wait_for(
            added + timeout,
            "the group to absorb the extra member",
            |slots, _| {
                let all_new = slots
                    .iter()
                    .filter(|s| s.live)
                    .all(|s| s.last_assign.is_some_and(|t| t >= added));
                (all_new && Board::live_coverage(slots, partitions).is_complete())
                    .then(|| last_event(slots))
                    .flatten()
            },
        )?;
        let detect = board
            .lock()
            .iter()
            .take(m)
            .filter_map(|s| s.first_revoke)
            .min();
        Ok((
            join_ms,
            join_assignments_max,
            ms(rejoined.duration_since(added)),
            detect.map(|d| ms(d.saturating_duration_since(added))),
        ))
    })();
    reporter.progress("stopping members");
    Member::stop_all(members);
    let (join_ms, join_assignments_max, rejoin_ms, rejoin_detect_ms) = result?;
    let report = RebalanceReport {
        tool: "perf group-rebalance",
        group: &group,
        topic: &args.topic,
        partitions,
        members: m,
        session_timeout_ms: args.session_timeout_ms,
        heartbeat_interval_ms: args.heartbeat_interval_ms,
        join_ms,
        join_assignments_max,
        rejoin_ms,
        rejoin_detect_ms,
    };
    match args.common.output {
        OutputFormat::Text => {
            println!(
                "members, partitions, heartbeat.interval.ms, join.ms, join.assignments.max, \
                 rejoin.detect.ms, rejoin.ms"
            );
            println!(
                "{m}, {partitions}, {}, {join_ms:.0}, {join_assignments_max}, {}, {rejoin_ms:.0}",
                args.heartbeat_interval_ms,
                rejoin_detect_ms.map_or("-".into(), |d| format!("{d:.0}")),
            );
        }
        OutputFormat::Json => println!("{}", serde_json::to_string(&report)?),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// offset-commit
// ---------------------------------------------------------------------------

struct NoisyContext {
    errors: Mutex<ErrorFilter>,
}

impl ClientContext for NoisyContext {
    fn error(&self, error: KafkaError, reason: &str) {
        report_client_error(&self.errors, "committer", &error, reason);
    }
}

impl ConsumerContext for NoisyContext {}

/// What one committer thread did.
#[derive(Default)]
struct CommitterResult {
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    last_offset: i64,
}

#[derive(Serialize)]
struct CommitReport<'a> {
    tool: &'static str,
    group: &'a str,
    topic: &'a str,
    partitions: i32,
    committers: usize,
    commits: u64,
    errors: u64,
    elapsed_ms: f64,
    commits_per_sec: f64,
    offsets_per_sec: f64,
    avg_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    /// OffsetFetch returned the last committed offsets.
    verified: bool,
}

/// Runs the offset-commit benchmark (blocking).
pub(super) fn run_offset_commit(args: OffsetCommitArgs) -> anyhow::Result<()> {
    let reporter = Reporter::new(args.common.output);
    if args.committers == 0 || args.commits == 0 {
        bail!("--commits and --committers must be at least 1");
    }
    let timeout = Duration::from_millis(args.common.timeout.max(1));
    let bootstrap = bootstrap_of(&args.common)?;
    let partitions = ensure_topic(&bootstrap, &args.topic, args.partitions, timeout)?;
    let cli = props::parse_kv_list(&args.common.consumer_props).context("--consumer-props")?;
    let mut settings = props::resolve(
        &[("enable.auto.commit", "false")],
        &[],
        &cli,
        Some(&bootstrap),
    );
    settings
        .entries
        .insert("group.id".into(), args.group.clone());
    let shares = split_evenly(args.commits, args.committers);
    let barrier = Arc::new(Barrier::new(args.committers + 1));
    let mut handles = Vec::new();
    for (c, &n) in shares.iter().enumerate() {
        let config = settings.to_client_config();
        let (topic, barrier) = (args.topic.clone(), Arc::clone(&barrier));
        handles.push(thread::spawn(move || {
            committer(c, n, config, &topic, partitions, timeout, &barrier)
        }));
    }
    reporter.progress(&format!(
        "{} committer(s) ready to commit {} offsets each time to group {}",
        args.committers, partitions, args.group
    ));
    barrier.wait();
    let start = Instant::now();
    let mut results = Vec::new();
    for h in handles {
        results.push(
            h.join()
                .map_err(|_| anyhow::anyhow!("committer thread panicked"))??,
        );
    }
    let elapsed = start.elapsed();
    let mut stats = LatencyStats::new();
    let verified = verify_commits(&settings, &args.topic, partitions, &results, timeout)?;
    let (mut errors, mut first_error) = (0, None);
    for r in &results {
        for &l in &r.latencies_us {
            stats.record(l);
        }
        errors += r.errors;
        if first_error.is_none() {
            first_error.clone_from(&r.first_error);
        }
    }
    let commits: u64 = results.iter().map(|r| r.latencies_us.len() as u64).sum();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let report = CommitReport {
        tool: "perf offset-commit",
        group: &args.group,
        topic: &args.topic,
        partitions,
        committers: args.committers,
        commits,
        errors,
        elapsed_ms: ms(elapsed),
        commits_per_sec: commits as f64 / secs,
        offsets_per_sec: (commits * partitions as u64) as f64 / secs,
        avg_ms: stats.avg_ms(),
        p50_ms: stats.percentile_ms(0.50),
        p99_ms: stats.percentile_ms(0.99),
        p999_ms: stats.percentile_ms(0.999),
        max_ms: stats.max_ms(),
        verified,
    };
    match args.common.output {
        OutputFormat::Text => println!(
            "{} commits ({} committer(s), {} offset(s) each) in {:.0} ms, {:.1} commits/sec, \
             {:.2} ms avg latency, {:.2} ms 50th, {:.2} ms 99th, {:.2} ms 99.9th, \
             {:.2} ms max latency, {} errors, offsets verified: {}",
            report.commits,
            report.committers,
            partitions,
            report.elapsed_ms,
            report.commits_per_sec,
            report.avg_ms,
            report.p50_ms,
            report.p99_ms,
            report.p999_ms,
            report.max_ms,
            report.errors,
            if verified { "yes" } else { "NO" }
        ),
        OutputFormat::Json => println!("{}", serde_json::to_string(&report)?),
    }
    if let Some(e) = first_error {
        bail!("{errors} commit(s) failed; first: {e}");
    }
    if !verified {
        bail!("OffsetFetch did not return the last committed offsets");
    }
    Ok(())
}

/// One committer: `n` synchronous commits of `partitions` offsets each.
/// Offsets are distinct per committer (`committer * 1e12 + i`) and grow.
fn committer(
    committer: usize,
    n: u64,
    config: rdkafka::ClientConfig,
    topic: &str,
    partitions: i32,
    timeout: Duration,
    barrier: &Barrier,
) -> anyhow::Result<CommitterResult> {
    let made = (|| {
        let consumer: BaseConsumer<NoisyContext> = config
            .create_with_context(NoisyContext {
                errors: Mutex::new(ErrorFilter::default()),
            })
            .context("creating a committer")?;
        let mut tpl = TopicPartitionList::with_capacity(partitions as usize);
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::End)?;
        }
        consumer.assign(&tpl).context("assigning partitions")?;
        // Warm-up (untimed): finds the coordinator and connects to it.
        let base = committer as i64 * 1_000_000_000_000;
        commit_all(&consumer, &mut tpl, base)?;
        anyhow::Ok((consumer, tpl, base))
    })();
    barrier.wait();
    let (consumer, mut tpl, base) = made.with_context(|| format!("committer {committer}"))?;
    let mut out = CommitterResult {
        latencies_us: Vec::with_capacity(n as usize),
        ..CommitterResult::default()
    };
    let deadline = Instant::now() + timeout;
    for i in 1..=n {
        let offset = base + i as i64;
        let t = Instant::now();
        match commit_all(&consumer, &mut tpl, offset) {
            Ok(()) => {
                out.latencies_us.push(t.elapsed().as_micros() as u64);
                out.last_offset = offset;
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| format!("{e:#}"));
                if out.errors >= 10 {
                    break;
                }
            }
        }
        if Instant::now() >= deadline {
            out.first_error.get_or_insert_with(|| {
                format!(
                    "committer {committer}: stopped after {} of {n} commits: timeout",
                    i
                )
            });
            break;
        }
    }
    Ok(out)
}

/// Reads the group's offsets back (OffsetFetch): every partition must hold
/// the last offset of one of the committers (they race on the same partitions).
fn verify_commits(
    settings: &ClientSettings,
    topic: &str,
    partitions: i32,
    results: &[CommitterResult],
    timeout: Duration,
) -> anyhow::Result<bool> {
    let lasts: BTreeSet<i64> = results
        .iter()
        .map(|r| r.last_offset)
        .filter(|&o| o > 0)
        .collect();
    if lasts.is_empty() {
        return Ok(false);
    }
    let consumer: BaseConsumer<NoisyContext> = settings
        .to_client_config()
        .create_with_context(NoisyContext {
            errors: Mutex::new(ErrorFilter::default()),
        })
        .context("creating a consumer to read offsets back")?;
    let mut tpl = TopicPartitionList::with_capacity(partitions as usize);
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, timeout)
        .context("fetching committed offsets")?;
    Ok(committed.count() == partitions as usize
        && committed
            .elements()
            .iter()
            .all(|e| matches!(e.offset(), Offset::Offset(o) if lasts.contains(&o))))
}

fn commit_all(
    consumer: &BaseConsumer<NoisyContext>,
    tpl: &mut TopicPartitionList,
    offset: i64,
) -> anyhow::Result<()> {
    tpl.set_all_offsets(Offset::Offset(offset))?;
    consumer.commit(tpl, CommitMode::Sync)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[i32]) -> BTreeSet<i32> {
        v.iter().copied().collect()
    }

    #[test]
    fn coverage_complete_only_with_exactly_one_owner_each() {
        let (a, b) = (set(&[0, 1]), set(&[2]));
        assert!(coverage([Some(&a), Some(&b)], 3).is_complete());
        let c = coverage([Some(&a), None], 3);
        assert_eq!(c.unassigned_members, 1);
        assert_eq!(c.missing, vec![2]);
        let dup = set(&[1, 2]);
        let c = coverage([Some(&a), Some(&dup)], 3);
        assert_eq!(c.duplicated, vec![1]);
        assert!(!c.is_complete());
        // An empty assignment is an assignment (more members than partitions).
        let empty = BTreeSet::new();
        assert!(coverage([Some(&a), Some(&b), Some(&empty)], 3).is_complete());
        // Partitions outside the range are ignored.
        let odd = set(&[0, 1, 2, 7, -1]);
        assert!(coverage([Some(&odd)], 3).is_complete());
    }

    #[test]
    fn member_lines_round_trip() {
        for e in [
            MemberEvent::Assign(set(&[0, 3, 5])),
            MemberEvent::Assign(BTreeSet::new()),
            MemberEvent::Revoke,
        ] {
            assert_eq!(MemberEvent::parse(&e.line()), Some(e));
        }
        assert_eq!(MemberEvent::parse("assign 1,x"), None);
        assert_eq!(MemberEvent::parse("hello"), None);
        assert_eq!(
            MemberEvent::parse("assign 2,1\n"),
            Some(MemberEvent::Assign(set(&[1, 2])))
        );
    }

    #[test]
    fn heartbeat_defaults_to_a_third_capped() {
        assert_eq!(default_heartbeat_ms(1000), 333);
        assert_eq!(default_heartbeat_ms(6000), 2000);
        assert_eq!(default_heartbeat_ms(45_000), 3000);
        assert_eq!(default_heartbeat_ms(1), 1);
    }

    #[test]
    fn kill_phases_spread_over_one_interval() {
        let phases: Vec<u64> = (1..=4).map(|r| kill_phase_ms(1000, r, 4)).collect();
        assert_eq!(phases, vec![0, 250, 500, 750]);
        assert_eq!(kill_phase_ms(1000, 1, 1), 0);
        assert_eq!(kill_phase_ms(1000, 0, 0), 0);
    }

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: super::super::PerfCommand,
    }

    #[test]
    fn parses_group_flags() {
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "perf",
            "group-failover",
            "--topic",
            "t",
            "--session-timeout-ms",
            "1000,3000,6000",
            "--runs",
            "2",
            "--output",
            "json",
        ])
        .unwrap();
        let super::super::PerfCommand::GroupFailover(a) = cli.cmd else {
            panic!("not group-failover")
        };
        assert_eq!(a.session_timeout_ms, vec![1000, 3000, 6000]);
        assert_eq!((a.members, a.partitions, a.runs), (3, 12, 2));
        assert_eq!(a.common.output, OutputFormat::Json);
        let cli = Cli::try_parse_from(["perf", "group-rebalance"]).unwrap();
        let super::super::PerfCommand::GroupRebalance(a) = cli.cmd else {
            panic!("not group-rebalance")
        };
        assert_eq!((a.members, a.partitions), (50, 100));
        let cli = Cli::try_parse_from([
            "perf",
            "offset-commit",
            "--topic",
            "t",
            "--commits",
            "10",
            "--committers",
            "4",
        ])
        .unwrap();
        let super::super::PerfCommand::OffsetCommit(a) = cli.cmd else {
            panic!("not offset-commit")
        };
        assert_eq!((a.commits, a.committers, a.partitions), (10, 4, 1));
        assert!(Cli::try_parse_from(["perf", "offset-commit", "--topic", "t"]).is_err());
    }

    #[test]
    fn spread_and_split() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert_eq!(Spread::of(&[4.0, 1.0]).unwrap().median, 2.5);
        assert!(Spread::of(&[]).is_none());
        assert_eq!(split_evenly(10, 3), vec![4, 3, 3]);
        assert_eq!(split_evenly(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(split_evenly(5, 0), vec![5]);
    }

    #[test]
    fn board_wait_reports_settled_time_of_last_change() {
        let board = Board::new(2, 2);
        board.set_live(0, true);
        board.set_live(1, true);
        let t0 = Instant::now();
        board.apply(0, MemberEvent::Assign(set(&[0])), t0);
        let t1 = Instant::now();
        board.apply(1, MemberEvent::Assign(set(&[1])), t1);
        let got = board
            .wait_for(
                Instant::now() + Duration::from_secs(1),
                "test",
                |slots, _| {
                    Board::live_coverage(slots, 2)
                        .is_complete()
                        .then(|| last_event(slots))
                        .flatten()
                },
            )
            .unwrap();
        assert_eq!(got, t1);
        // A dead member no longer counts: its partition goes missing.
        board.set_live(1, false);
        let err = board
            .wait_for(Instant::now(), "coverage", |slots, _| {
                Board::live_coverage(slots, 2).is_complete().then_some(())
            })
            .unwrap_err();
        assert!(err.to_string().contains("1 partition(s) unowned"), "{err}");
    }
}
