//! Helpers for the consumer-group tests (`tests/groups.rs`): a broker tuned
//! for fast rebalances, group consumers whose rebalance callbacks are
//! recorded, group members that poll on their own thread, and a group member
//! that runs as a child process so that it can be killed without LeaveGroup.
//!
//! ```text
//!   test thread ──start──► GroupMember thread: BaseConsumer<GroupContext>.poll()
//!        │                          │ pre/post_rebalance, messages
//!        │  snapshots               ▼
//!        └──────────────────── Arc<MemberState> (records, assignment, events)
//! ```
//!
//! Everything that waits is bounded: `wait_for` loops against a deadline,
//! consumers are closed on a helper thread with a timeout (librdkafka's close
//! loops until the group is left), and child processes are killed on drop.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fjord_testkit::BrokerProcess;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;

use crate::common::{generate_records, now_ms, produce_ok, start_broker, TestRecord};

/// Broker settings for group tests: no initial rebalance delay (Kafka's
/// default of 3 s would slow every join), few offsets partitions (faster
/// start) and a low minimum session timeout so eviction tests are fast.
pub(crate) const GROUP_BROKER_OVERRIDES: &[(&str, &str)] = &[
    ("group.initial.rebalance.delay.ms", "0"),
    ("offsets.topic.num.partitions", "5"),
    ("group.min.session.timeout.ms", "1000"),
];

/// Starts a broker with [`GROUP_BROKER_OVERRIDES`] plus `extra`.
pub(crate) fn start_group_broker(extra: &[(&str, &str)]) -> BrokerProcess {
    let mut overrides: Vec<(&str, &str)> = GROUP_BROKER_OVERRIDES.to_vec();
    overrides.extend_from_slice(extra);
    start_broker(&overrides)
}

/// Produces `count` records spread round-robin over `partitions` partitions
/// (record i goes to partition i % partitions) and returns the acknowledged
/// (partition, offset) positions.
pub(crate) fn fill_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    seed: u64,
) -> Vec<(i32, i64)> {
    let mut records: Vec<TestRecord> = generate_records(count, seed, now_ms() - 60_000);
    for (i, record) in records.iter_mut().enumerate() {
        record.partition = Some((i % partitions as usize) as i32);
    }
    produce_ok(
        bootstrap,
        topic,
        &records,
        &[
            ("acks", "all"),
            ("linger.ms", "5"),
            ("batch.num.messages", "1000"),
        ],
        Duration::from_secs(60),
    )
}

/// One rebalance callback as a consumer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RebalanceEvent {
    Assign(BTreeSet<i32>),
    Revoke(BTreeSet<i32>),
    Error(String),
}

/// What a group consumer saw, shared between its context and the test.
#[derive(Debug, Default)]
pub(crate) struct MemberState {
    /// Every (partition, offset) the application received, in order.
    records: Mutex<Vec<(i32, i64)>>,
    /// The current assignment, per the rebalance callbacks.
    assignment: Mutex<BTreeSet<i32>>,
    /// Every rebalance callback, in order.
    events: Mutex<Vec<RebalanceEvent>>,
    /// Consumer errors (poll errors, failed commits on revoke).
    errors: Mutex<Vec<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemberState {
    pub(crate) fn records(&self) -> Vec<(i32, i64)> {
        lock(&self.records).clone()
    }

    pub(crate) fn record_count(&self) -> usize {
        lock(&self.records).len()
    }

    pub(crate) fn assignment(&self) -> BTreeSet<i32> {
        lock(&self.assignment).clone()
    }

    pub(crate) fn events(&self) -> Vec<RebalanceEvent> {
        lock(&self.events).clone()
    }

    pub(crate) fn event_count(&self) -> usize {
        lock(&self.events).len()
    }

    pub(crate) fn errors(&self) -> Vec<String> {
        lock(&self.errors).clone()
    }

    fn push_record(&self, partition: i32, offset: i64) {
        lock(&self.records).push((partition, offset));
    }

    fn push_error(&self, error: String) {
        lock(&self.errors).push(error);
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> BTreeSet<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

/// Consumer context that records every rebalance callback and keeps the
/// current assignment; with `commit_on_revoke` it commits the consumed
/// positions synchronously before partitions are given up (the classic
/// at-least-once pattern that makes hand-overs exact).
pub(crate) struct GroupContext {
    pub(crate) state: Arc<MemberState>,
    commit_on_revoke: bool,
}

impl ClientContext for GroupContext {
    /// librdkafka's own log lines go to stderr (shown for failing tests);
    /// set `FJORD_TEST_RDKAFKA_DEBUG=cgrp,protocol` for its debug contexts.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        eprintln!("[rdkafka {level:?} {fac}] {log_message}");
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let event = match rebalance {
            Rebalance::Assign(tpl) => RebalanceEvent::Assign(partitions_of(tpl)),
            Rebalance::Revoke(tpl) => {
                if self.commit_on_revoke {
                    match consumer.commit_consumer_state(CommitMode::Sync) {
                        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                        Err(err) => self
                            .state
                            .push_error(format!("commit on revoke of {tpl:?} failed: {err}")),
                    }
                }
                RebalanceEvent::Revoke(partitions_of(tpl))
            }
            Rebalance::Error(err) => RebalanceEvent::Error(err.to_string()),
        };
        lock(&self.state.events).push(event);
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let mut assignment = lock(&self.state.assignment);
        match rebalance {
            Rebalance::Assign(tpl) => {
                if !cooperative {
                    assignment.clear();
                }
                assignment.extend(partitions_of(tpl));
            }
            Rebalance::Revoke(tpl) => {
                if cooperative {
                    for partition in partitions_of(tpl) {
                        assignment.remove(&partition);
                    }
                } else {
                    assignment.clear();
                }
            }
            Rebalance::Error(_) => {}
        }
    }
}

/// A group consumer as the tests use it.
pub(crate) type GroupConsumer = BaseConsumer<GroupContext>;

/// Group consumer settings: manual commits (offsets of delivered messages
/// are stored automatically), reset to earliest, short heartbeats, and a
/// bounded rebalance timeout (max.poll.interval.ms). `extra` overrides.
pub(crate) fn group_config(
    bootstrap: &str,
    group: &str,
    client_id: &str,
    extra: &[(&str, &str)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("client.id", client_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "true")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .set("allow.auto.create.topics", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("max.poll.interval.ms", "30000");
    if let Ok(debug) = std::env::var("FJORD_TEST_RDKAFKA_DEBUG") {
        config.set("debug", debug);
    }
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config
}

/// Creates a group consumer (not yet subscribed).
pub(crate) fn group_consumer(
    bootstrap: &str,
    group: &str,
    client_id: &str,
    extra: &[(&str, &str)],
    commit_on_revoke: bool,
) -> GroupConsumer {
    let context = GroupContext {
        state: Arc::new(MemberState::default()),
        commit_on_revoke,
    };
    group_config(bootstrap, group, client_id, extra)
        .create_with_context(context)
        .expect("create group consumer")
}

/// Transport hiccups (e.g. while the broker restarts) that librdkafka
/// recovers from by itself.
fn is_transient(err: &KafkaError) -> bool {
    matches!(
        err,
        KafkaError::MessageConsumption(
            RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure
        )
    )
}

/// Polls once; records a delivered message in the consumer's state. Returns
/// whether a message arrived.
pub(crate) fn poll_once(consumer: &GroupConsumer, timeout: Duration) -> bool {
    match consumer.poll(timeout) {
        None => false,
        Some(Ok(message)) => {
            consumer
                .context()
                .state
                .push_record(message.partition(), message.offset());
            true
        }
        Some(Err(err)) if is_transient(&err) => false,
        Some(Err(err)) => {
            consumer.context().state.push_error(format!("poll: {err}"));
            false
        }
    }
}

/// Polls until the consumer has received `count` more messages (not one
/// more: polling stops as soon as the count is reached) or the timeout
/// passes, which fails the test. Returns the new (partition, offset)s.
pub(crate) fn poll_exactly(
    consumer: &GroupConsumer,
    count: usize,
    timeout: Duration,
) -> Vec<(i32, i64)> {
    let state = &consumer.context().state;
    let before = state.record_count();
    let deadline = Instant::now() + timeout;
    while state.record_count() < before + count {
        assert!(
            Instant::now() < deadline,
            "received {} of {count} messages within {timeout:?}; assignment {:?}, events {:?}, errors {:?}",
            state.record_count() - before,
            state.assignment(),
            state.events(),
            state.errors()
        );
        poll_once(consumer, Duration::from_millis(100));
    }
    state.records()[before..].to_vec()
}

/// Polls for `duration`, recording whatever arrives; returns the new records.
pub(crate) fn poll_for(consumer: &GroupConsumer, duration: Duration) -> Vec<(i32, i64)> {
    let state = &consumer.context().state;
    let before = state.record_count();
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        poll_once(consumer, Duration::from_millis(50));
    }
    state.records()[before..].to_vec()
}

/// Closes (drops) a consumer on a helper thread and waits at most `timeout`
/// for librdkafka's close (unassign, LeaveGroup) to finish.
pub(crate) fn close_within<C: Send + 'static>(consumer: C, timeout: Duration, what: &str) {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(consumer);
        let _ = done_tx.send(());
    });
    if done_rx.recv_timeout(timeout).is_err() {
        panic!("closing {what} took longer than {timeout:?}");
    }
}

/// Committed offsets of `group` for partitions `0..partitions` of `topic`,
/// asked with a fresh consumer; `None` for a partition without a commit.
pub(crate) fn committed_with(
    consumer: &impl Consumer<GroupContext>,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<BTreeMap<i32, Option<i64>>, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for partition in 0..partitions {
        tpl.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(tpl, timeout)?;
    Ok(committed
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            (e.partition(), offset)
        })
        .collect())
}

/// Polls `check` every 50 ms until it returns `Ok`, or fails the test after
/// `timeout` with the last `Err` description.
pub(crate) fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) => {
                if Instant::now() >= deadline {
                    panic!("timed out after {timeout:?} waiting for {what}; last state: {last}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `Ok(assignments)` when every assignment is non-empty, they are pairwise
/// disjoint and together hold exactly partitions `0..partitions`.
pub(crate) fn check_cover(
    assignments: &[BTreeSet<i32>],
    partitions: i32,
) -> Result<Vec<BTreeSet<i32>>, String> {
    let mut union = BTreeSet::new();
    let mut total = 0;
    for assignment in assignments {
        if assignment.is_empty() {
            return Err(format!("a member has no partitions: {assignments:?}"));
        }
        total += assignment.len();
        union.extend(assignment.iter().copied());
    }
    let all: BTreeSet<i32> = (0..partitions).collect();
    if union != all || total != all.len() {
        return Err(format!(
            "assignments do not partition 0..{partitions}: {assignments:?}"
        ));
    }
    Ok(assignments.to_vec())
}

/// Waits until the assignments returned by `snapshot` cover `0..partitions`
/// (see [`check_cover`]) and stay unchanged for `settle`; returns them.
pub(crate) fn wait_for_stable_cover(
    timeout: Duration,
    settle: Duration,
    partitions: i32,
    what: &str,
    mut snapshot: impl FnMut() -> Vec<BTreeSet<i32>>,
) -> Vec<BTreeSet<i32>> {
    let mut since: Option<(Instant, Vec<BTreeSet<i32>>)> = None;
    wait_for(timeout, what, || {
        let current = snapshot();
        let covered = check_cover(&current, partitions)?;
        match &since {
            Some((at, previous)) if *previous == covered => {
                if at.elapsed() >= settle {
                    Ok(covered)
                } else {
                    Err(format!("settling: {covered:?}"))
                }
            }
            _ => {
                since = Some((Instant::now(), covered.clone()));
                Err(format!("just covered: {covered:?}"))
            }
        }
    })
}

/// A command run on a member's polling thread with its consumer.
type MemberCommand = Box<dyn FnOnce(&GroupConsumer) + Send>;

/// A subscribed group consumer polling on its own thread.
pub(crate) struct GroupMember {
    pub(crate) name: String,
    pub(crate) state: Arc<MemberState>,
    stop: Arc<AtomicBool>,
    commands: mpsc::Sender<MemberCommand>,
    thread: Option<JoinHandle<()>>,
}

impl GroupMember {
    /// Creates a consumer in `group` (with `extra` settings), subscribes it
    /// to `topic` and polls on a new thread until closed.
    pub(crate) fn start(
        bootstrap: &str,
        group: &str,
        topic: &str,
        name: &str,
        extra: &[(&str, &str)],
        commit_on_revoke: bool,
    ) -> GroupMember {
        let consumer = group_consumer(bootstrap, group, name, extra, commit_on_revoke);
        consumer.subscribe(&[topic]).expect("subscribe");
        let state = Arc::clone(&consumer.context().state);
        let stop = Arc::new(AtomicBool::new(false));
        let (commands, command_rx) = mpsc::channel::<MemberCommand>();
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("member-{name}"))
            .spawn(move || {
                while !thread_stop.load(Ordering::SeqCst) {
                    while let Ok(command) = command_rx.try_recv() {
                        command(&consumer);
                    }
                    poll_once(&consumer, Duration::from_millis(50));
                }
                // Dropping closes the consumer: revoke callbacks, LeaveGroup
                // (unless static), bounded by `close`'s join timeout.
                drop(consumer);
            })
            .expect("spawn member thread");
        GroupMember {
            name: name.to_string(),
            state,
            stop,
            commands,
            thread: Some(thread),
        }
    }

    pub(crate) fn assignment(&self) -> BTreeSet<i32> {
        self.state.assignment()
    }

    /// Runs `f` with the consumer on the polling thread and returns its result.
    pub(crate) fn with_consumer<T: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&GroupConsumer) -> T + Send + 'static,
    ) -> T {
        let (result_tx, result_rx) = mpsc::channel();
        self.commands
            .send(Box::new(move |consumer| {
                let _ = result_tx.send(f(consumer));
            }))
            .expect("member thread is running");
        result_rx
            .recv_timeout(timeout)
            .unwrap_or_else(|_| panic!("command on member {} timed out", self.name))
    }

    /// Stops polling and closes the consumer (LeaveGroup for dynamic
    /// members), waiting at most `timeout`.
    pub(crate) fn close(mut self, timeout: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take().expect("thread present until close");
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let result = thread.join();
            let _ = done_tx.send(result.is_ok());
        });
        match done_rx.recv_timeout(timeout) {
            Ok(true) => {}
            Ok(false) => panic!("member {} thread panicked", self.name),
            Err(_) => panic!("closing member {} took longer than {timeout:?}", self.name),
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        // On a failing test: stop polling; the thread closes the consumer
        // and is left to finish (or die with the process).
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Asserts that every position in `expected` was received exactly once
/// across `received` (one list per member) and nothing else was received.
pub(crate) fn assert_exactly_once(expected: &[(i32, i64)], received: &[(String, Vec<(i32, i64)>)]) {
    let mut seen: BTreeMap<(i32, i64), &str> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for (name, records) in received {
        for position in records {
            if let Some(first) = seen.insert(*position, name) {
                duplicates.push((*position, first.to_string(), name.clone()));
            }
        }
    }
    let expected_set: BTreeSet<(i32, i64)> = expected.iter().copied().collect();
    assert_eq!(
        expected_set.len(),
        expected.len(),
        "expected positions are unique"
    );
    let missing: Vec<_> = expected_set
        .iter()
        .filter(|p| !seen.contains_key(p))
        .collect();
    let unexpected: Vec<_> = seen.keys().filter(|p| !expected_set.contains(p)).collect();
    assert!(
        duplicates.is_empty() && missing.is_empty() && unexpected.is_empty(),
        "not exactly once: {} duplicates (first {:?}), {} missing (first {:?}), {} unexpected (first {:?}); per member: {:?}",
        duplicates.len(),
        duplicates.iter().take(5).collect::<Vec<_>>(),
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        unexpected.len(),
        unexpected.iter().take(5).collect::<Vec<_>>(),
        received
            .iter()
            .map(|(name, r)| (name.clone(), r.len()))
            .collect::<Vec<_>>()
    );
}

/// Per partition: the lowest offset and the count in `records`.
pub(crate) fn per_partition(records: &[(i32, i64)]) -> BTreeMap<i32, (i64, usize)> {
    let mut map: BTreeMap<i32, (i64, usize)> = BTreeMap::new();
    for (partition, offset) in records {
        let entry = map.entry(*partition).or_insert((*offset, 0));
        entry.0 = entry.0.min(*offset);
        entry.1 += 1;
    }
    map
}

/// Environment variable that turns the ignored test `child_group_member`
/// into a group member (see [`ChildMember`]).
pub(crate) const CHILD_ENV: &str = "FJORD_GROUPS_CHILD_MEMBER";

/// Line prefix the child prints whenever its assignment changes.
pub(crate) const CHILD_ASSIGNMENT_PREFIX: &str = "FJORD-CHILD-ASSIGNMENT ";

/// How long a child member lives at most (it is normally killed long before).
pub(crate) const CHILD_LIFETIME: Duration = Duration::from_secs(120);

/// The body of the child process: joins the group named in [`CHILD_ENV`]
/// (`bootstrap|group|topic|session.timeout.ms`) and prints its assignment on
/// every change until killed or [`CHILD_LIFETIME`] passes.
pub(crate) fn run_child_member(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let [bootstrap, group, topic, session_ms] = parts[..] else {
        panic!("bad {CHILD_ENV}: {spec:?}");
    };
    let consumer = group_consumer(
        bootstrap,
        group,
        "child-member",
        &[
            ("session.timeout.ms", session_ms),
            ("heartbeat.interval.ms", "300"),
        ],
        false,
    );
    consumer.subscribe(&[topic]).expect("subscribe");
    let started = Instant::now();
    let mut printed: Option<BTreeSet<i32>> = None;
    while started.elapsed() < CHILD_LIFETIME {
        poll_once(&consumer, Duration::from_millis(50));
        let assignment = consumer.context().state.assignment();
        if printed.as_ref() != Some(&assignment) {
            let list: Vec<String> = assignment.iter().map(i32::to_string).collect();
            println!("{CHILD_ASSIGNMENT_PREFIX}{}", list.join(","));
            use std::io::Write;
            let _ = std::io::stdout().flush();
            printed = Some(assignment);
        }
    }
}

/// A group member in a child process (this test binary re-run with only the
/// ignored `child_group_member` test), so it can be SIGKILLed: no
/// LeaveGroup, no commit, the coordinator must notice by session timeout.
pub(crate) struct ChildMember {
    child: Option<Child>,
    assignment: Arc<Mutex<Option<BTreeSet<i32>>>>,
    output: Arc<Mutex<String>>,
}

impl ChildMember {
    pub(crate) fn spawn(bootstrap: &str, group: &str, topic: &str, session_ms: u64) -> ChildMember {
        let exe = std::env::current_exe().expect("current test binary");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "child_group_member",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD_ENV,
                format!("{bootstrap}|{group}|{topic}|{session_ms}"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child member");
        let assignment = Arc::new(Mutex::new(None));
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        {
            let assignment = Arc::clone(&assignment);
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(list) = line.strip_prefix(CHILD_ASSIGNMENT_PREFIX) {
                        let parsed: BTreeSet<i32> = list
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(|s| s.parse().expect("partition number"))
                            .collect();
                        *lock(&assignment) = Some(parsed);
                    }
                    let mut out = lock(&output);
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let mut out = lock(&output);
                    if out.len() < 256 * 1024 {
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
            });
        }
        ChildMember {
            child: Some(child),
            assignment,
            output,
        }
    }

    /// The child's last printed assignment (empty before the first line).
    pub(crate) fn assignment(&self) -> BTreeSet<i32> {
        lock(&self.assignment).clone().unwrap_or_default()
    }

    /// Everything the child printed (for failure messages).
    pub(crate) fn output(&self) -> String {
        lock(&self.output).clone()
    }

    /// SIGKILL: the consumer dies without LeaveGroup.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL child member");
            child.wait().expect("reap child member");
        }
    }
}

impl Drop for ChildMember {
    fn drop(&mut self) {
        self.kill();
    }
}
