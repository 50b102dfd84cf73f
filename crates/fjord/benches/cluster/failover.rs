//! Failover: kill -9 a partition leader under acks=all load and time until every partition
//! acknowledges again.
//!
//! Two librdkafka producers (one with librdkafka's defaults, one refreshing metadata every
//! 100 ms) each send one small record to every partition per tick. A record counts for the
//! failover only if it was handed to the client after the victim was dead: such a record can
//! be acknowledged only by a new leader (partitions the victim led) or once the victim has
//! left the ISR (partitions it followed, as acks=all waits for every ISR member), so nothing
//! acknowledged in flight at the kill is mistaken for recovery.
//!
//! With `FJORD_BENCH_LOAD_DEBUG=broker,topic,metadata` (librdkafka `debug` contexts) the
//! producers' logs go to stderr, timed in ms from the producer's start like the kill.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, ensure, Context, Result};
use fjord_testkit::Cluster;
use rdkafka::config::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::raw::{self, Connection, PartitionView};
use crate::{create_and_wait, log_line_ms, ms_since, start_cluster, Args, NODES, POLL_INTERVAL};

/// Value bytes of each load record.
const RECORD_BYTES: usize = 100;

/// Not yet: the initial value of the kill mark and of the per-partition first acks.
const NONE: u64 = u64::MAX;

/// The producers measured at every kill: a name and the properties set on top of acks=all.
const CLIENTS: [(&str, &[(&str, &str)]); 2] = [
    ("librdkafka defaults", &[]),
    (
        "metadata refresh 100 ms",
        &[("topic.metadata.refresh.interval.ms", "100")],
    ),
];

/// How long after the session timeout every partition must be acknowledging again.
const RECOVERY_SLACK: Duration = Duration::from_secs(60);

/// What the producer's delivery callback records.
struct Shared {
    start: Instant,
    /// Records sent at or after this (ns since `start`) count for the failover.
    counted_from_ns: AtomicU64,
    /// Per partition: acknowledgements so far.
    acked: Vec<AtomicU64>,
    /// Per partition: ns since `start` of the first acknowledgement of a counted record.
    first_ack_ns: Vec<AtomicU64>,
    failed: AtomicU64,
    stop: AtomicBool,
    /// Whether librdkafka's log lines are printed (with `FJORD_BENCH_LOAD_DEBUG`).
    verbose: bool,
    /// The producer's name in [`CLIENTS`].
    name: &'static str,
}

struct LoadContext(Arc<Shared>);

impl ClientContext for LoadContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        if !self.0.verbose {
            return;
        }
        eprintln!(
            "{:>9.3} ms {} {level:?} {fac}: {log_message}",
            self.0.start.elapsed().as_secs_f64() * 1000.0,
            self.0.name
        );
    }
}

impl ProducerContext for LoadContext {
    /// Send time, ns since `start`.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let shared = &self.0;
        match result {
            Ok(message) => {
                let Ok(partition) = usize::try_from(message.partition()) else {
                    return;
                };
                let now = shared.start.elapsed().as_nanos() as u64;
                if let Some(acked) = shared.acked.get(partition) {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                if sent_ns as u64 >= shared.counted_from_ns.load(Ordering::Acquire) {
                    if let Some(first) = shared.first_ack_ns.get(partition) {
                        first.fetch_min(now, Ordering::AcqRel);
                    }
                }
            }
            Err(_) => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The producer thread and what it records.
struct Load {
    shared: Arc<Shared>,
    thread: JoinHandle<Result<()>>,
}

impl Load {
    fn start(
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        tick: Duration,
        (name, props): (&'static str, &[(&str, &str)]),
    ) -> Result<Load> {
        let count = partitions as usize;
        let debug = std::env::var("FJORD_BENCH_LOAD_DEBUG").ok();
        let shared = Arc::new(Shared {
            start: Instant::now(),
            counted_from_ns: AtomicU64::new(NONE),
            acked: (0..count).map(|_| AtomicU64::new(0)).collect(),
            first_ack_ns: (0..count).map(|_| AtomicU64::new(NONE)).collect(),
            failed: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            verbose: debug.is_some(),
            name,
        });
        let mut config = ClientConfig::new();
        if let Some(debug) = debug {
            config
                .set("debug", debug)
                .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
        }
        for (key, value) in props {
            config.set(*key, *value);
        }
        let producer: ThreadedProducer<LoadContext> = config
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("message.timeout.ms", "120000")
            .set("queue.buffering.max.messages", "2000000")
            .create_with_context(LoadContext(shared.clone()))
            .context("create the load producer")?;
        let topic = topic.to_string();
        let thread = thread::spawn(move || {
            let payload = vec![b'x'; RECORD_BYTES];
            let shared = producer.context().0.clone();
            while !shared.stop.load(Ordering::Acquire) {
                for partition in 0..partitions {
                    let sent_ns = shared.start.elapsed().as_nanos() as usize;
                    let record = BaseRecord::<(), [u8], usize>::with_opaque_to(&topic, sent_ns)
                        .partition(partition)
                        .payload(&payload);
                    if let Err((error, _)) = producer.send(record) {
                        bail!("send to {topic}-{partition}: {error}");
                    }
                }
                thread::sleep(tick);
            }
            producer
                .flush(Duration::from_secs(30))
                .context("flush the load producer")?;
            Ok(())
        });
        Ok(Load { shared, thread })
    }

    /// Waits until every partition has acknowledged `records` records.
    fn wait_acked(&self, records: u64, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        while self
            .shared
            .acked
            .iter()
            .any(|a| a.load(Ordering::Relaxed) < records)
        {
            ensure!(
                Instant::now() < deadline,
                "the load was not acknowledged on every partition within {within:?}"
            );
            thread::sleep(POLL_INTERVAL);
        }
        Ok(())
    }

    /// Counts only records sent from now on.
    fn count_from_now(&self) {
        let now = self.shared.start.elapsed().as_nanos() as u64;
        self.shared.counted_from_ns.store(now, Ordering::Release);
    }

    /// Per partition, ms from `kill` to the first acknowledgement of a counted record.
    fn first_acks_ms(&self, kill: Instant) -> Vec<Option<f64>> {
        let kill_ns = kill.duration_since(self.shared.start).as_nanos() as u64;
        self.shared
            .first_ack_ns
            .iter()
            .map(|first| match first.load(Ordering::Acquire) {
                NONE => None,
                ns => Some(ns.saturating_sub(kill_ns) as f64 / 1e6),
            })
            .collect()
    }

    fn finish(self) -> Result<u64> {
        self.shared.stop.store(true, Ordering::Release);
        match self.thread.join() {
            Ok(result) => result?,
            Err(_) => bail!("the load thread panicked"),
        }
        Ok(self.shared.failed.load(Ordering::Relaxed))
    }
}

/// When one producer saw the partitions acknowledge again, in ms from the kill.
#[derive(Debug, Clone)]
struct Acks {
    /// The first counted acknowledgement on any partition.
    first: f64,
    /// Every partition the victim led had a counted acknowledgement.
    led: f64,
    /// Every partition the victim followed had one (NaN without such partitions).
    followed: f64,
    /// Every partition had one.
    all: f64,
}

/// One kill and what it cost, in ms from the kill.
#[derive(Debug, Clone)]
struct Outcome {
    /// Partitions the victim led.
    led: usize,
    /// The controller's log line fencing the victim.
    fenced_ms: Option<f64>,
    /// Both survivors' Metadata show new leaders for the victim's partitions.
    leaders_ms: f64,
    /// Both survivors' Metadata show the victim in no ISR.
    isr_ms: f64,
    /// Per producer of [`CLIENTS`].
    acks: Vec<Acks>,
}

/// The failover runs of one detection setting, on a cluster of its own.
pub(crate) fn run(args: &Args, session_ms: u64, heartbeat_ms: u64) -> Result<()> {
    println!(
        "== failover: broker.session.timeout.ms={session_ms} broker.heartbeat.interval.ms={heartbeat_ms}, three nodes, replication factor 3, min.insync.replicas=2"
    );
    let cluster = start_cluster(
        args,
        &[
            ("broker.session.timeout.ms", session_ms.to_string()),
            ("broker.heartbeat.interval.ms", heartbeat_ms.to_string()),
            ("default.replication.factor", "3".into()),
            ("min.insync.replicas", "2".into()),
        ],
    )?;
    let within = Duration::from_millis(session_ms) + RECOVERY_SLACK;
    let mut cases: Vec<(i32, bool)> = args
        .failover_partitions
        .iter()
        .map(|&partitions| (partitions, false))
        .collect();
    if args.failover_kill_controller {
        cases.push((1, true));
    }
    let mut summary = Vec::new();
    for (partitions, kill_controller) in cases {
        let mut outcomes = Vec::new();
        let case = if kill_controller {
            format!("{partitions} partition(s), the victim is the active controller")
        } else {
            format!("{partitions} partition(s)")
        };
        for run in 1..=args.failover_runs {
            let topic = format!(
                "failover-{session_ms}-{partitions}{}-{run}",
                if kill_controller { "c" } else { "" }
            );
            let outcome = kill_once(&cluster, &topic, partitions, kill_controller, run, within)?;
            let acks: Vec<String> = CLIENTS
                .iter()
                .zip(&outcome.acks)
                .map(|((name, _), a)| {
                    format!(
                        "{name}: first ack {:.0}, every partition it led {:.0}, it followed {:.0}, every partition {:.0}",
                        a.first, a.led, a.followed, a.all
                    )
                })
                .collect();
            println!(
                "  {case}, run {run}: victim led {}; fenced (controller log) {}; new leaders in Metadata {:.0}, victim out of every ISR {:.0}; {} (ms from the kill)",
                outcome.led,
                outcome
                    .fenced_ms
                    .map_or("?".to_string(), |ms| format!("{ms:.0}")),
                outcome.leaders_ms,
                outcome.isr_ms,
                acks.join("; "),
            );
            outcomes.push(outcome);
        }
        summary.push((case, outcomes));
    }
    crate::save_logs(&cluster, &format!("failover-{session_ms}"))?;
    println!(
        "== failover summary, session {session_ms} ms / heartbeat {heartbeat_ms} ms (ms from the kill; median / max over runs)"
    );
    println!(
        "| case | fenced | new leaders visible | victim out of ISRs | every partition acks ({}) | every partition acks ({}) |",
        CLIENTS[0].0, CLIENTS[1].0
    );
    for (case, outcomes) in &summary {
        let stat = |f: &dyn Fn(&Outcome) -> Option<f64>| {
            let mut values: Vec<f64> = outcomes.iter().filter_map(f).collect();
            values.sort_by(f64::total_cmp);
            match values.len() {
                0 => "?".to_string(),
                n => format!("{:.0} / {:.0}", median(&values), values[n - 1]),
            }
        };
        println!(
            "| {case} | {} | {} | {} | {} | {} |",
            stat(&|o| o.fenced_ms),
            stat(&|o| Some(o.leaders_ms)),
            stat(&|o| Some(o.isr_ms)),
            stat(&|o| Some(o.acks[0].all)),
            stat(&|o| Some(o.acks[1].all)),
        );
    }
    Ok(())
}

/// The active controller, once every node names the same one.
fn active_controller(cluster: &Cluster) -> Result<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let named: BTreeSet<i32> = (1..=NODES)
            .map(|n| {
                Connection::connect(cluster.node(n).bootstrap_address)
                    .and_then(|mut c| c.metadata(&[]))
                    .map_or(-1, |m| m.controller_id.0)
            })
            .collect();
        if let [controller] = named.into_iter().collect::<Vec<_>>()[..] {
            if controller > 0 {
                return Ok(controller);
            }
        }
        ensure!(
            Instant::now() < deadline,
            "the nodes do not agree on the active controller"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Creates `topic`, loads it, kills a leader (the active controller or, by default, a node
/// that is not), measures, restarts the victim and deletes the topic.
fn kill_once(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    kill_controller: bool,
    run: u32,
    within: Duration,
) -> Result<Outcome> {
    let controller = active_controller(cluster)?;
    // The victim leads partition 0: placed first in its replica list when there is one
    // partition, otherwise whichever candidate the controller's placement made the leader of
    // the most partitions. Killing the active controller adds a quorum election, so unless
    // that is the case asked for, the victim is another node, chosen in turn.
    let candidates: Vec<i32> = (1..=NODES as i32)
        .filter(|&n| (n == controller) == kill_controller)
        .collect();
    let wanted = candidates[(run as usize - 1) % candidates.len()];
    let assignment: Vec<Vec<i32>> = vec![std::iter::once(wanted)
        .chain((1..=NODES as i32).filter(|&n| n != wanted))
        .collect()];
    let view = create_and_wait(
        cluster,
        topic,
        partitions,
        (partitions == 1).then_some(assignment.as_slice()),
    )?;
    let victim = if partitions == 1 {
        view[0].leader
    } else {
        *candidates
            .iter()
            .max_by_key(|&&n| view.iter().filter(|p| p.leader == n).count())
            .context("no candidate")?
    };
    ensure!(
        (victim == controller) == kill_controller,
        "{topic}: partition 0 is led by node {victim}, the active controller is {controller}"
    );
    let led: BTreeSet<i32> = view
        .iter()
        .filter(|p| p.leader == victim)
        .map(|p| p.partition)
        .collect();
    let tick = if partitions == 1 {
        Duration::from_millis(2)
    } else {
        Duration::from_millis(10)
    };
    let loads = CLIENTS
        .iter()
        .map(|&client| Load::start(&cluster.bootstrap(), topic, partitions, tick, client))
        .collect::<Result<Vec<Load>>>()?;
    for load in &loads {
        load.wait_acked(20, Duration::from_secs(30))?;
    }
    thread::sleep(Duration::from_millis(500));

    let survivors: Vec<_> = (1..=NODES)
        .filter(|&n| n as i32 != victim)
        .map(|n| cluster.node(n).bootstrap_address)
        .collect();
    let wall_kill = SystemTime::now();
    let kill = Instant::now();
    cluster.kill(victim as u32).context("kill -9 the leader")?;
    for load in &loads {
        load.count_from_now();
    }
    if std::env::var_os("FJORD_BENCH_LOAD_DEBUG").is_some() {
        eprintln!(
            "{:>9.3} ms killed node {victim}",
            kill.duration_since(loads[0].shared.start).as_secs_f64() * 1000.0
        );
    }

    let mut leaders_ms = None;
    let mut isr_ms = None;
    loop {
        if leaders_ms.is_none() || isr_ms.is_none() {
            let views: Option<Vec<Vec<PartitionView>>> = survivors
                .iter()
                .map(|&address| raw::topic_view(address, topic).ok())
                .collect();
            let now = ms_since(kill);
            if let Some(views) = views {
                let moved = views.iter().all(|v| {
                    v.iter()
                        .filter(|p| led.contains(&p.partition))
                        .all(|p| p.leader >= 0 && p.leader != victim)
                });
                let shrunk = views
                    .iter()
                    .all(|v| v.len() == view.len() && v.iter().all(|p| !p.isr.contains(&victim)));
                if moved && leaders_ms.is_none() {
                    leaders_ms = Some(now);
                }
                if shrunk && isr_ms.is_none() {
                    isr_ms = Some(now);
                }
            }
        }
        let acked: Vec<Vec<Option<f64>>> = loads.iter().map(|l| l.first_acks_ms(kill)).collect();
        let missing: Vec<usize> = (0..partitions as usize)
            .filter(|&p| acked.iter().any(|a| a[p].is_none()))
            .collect();
        if leaders_ms.is_some() && isr_ms.is_some() && missing.is_empty() {
            break;
        }
        if kill.elapsed() > within {
            bail!(
                "{topic}: {} partitions ({:?}...) not acknowledging {within:?} after the kill of node {victim} (leaders moved: {leaders_ms:?}, ISR shrunk: {isr_ms:?})",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
        }
        thread::sleep(POLL_INTERVAL);
    }
    let acks = loads
        .iter()
        .map(|load| {
            let acked: Vec<f64> = load.first_acks_ms(kill).into_iter().flatten().collect();
            let max_of = |filter: &dyn Fn(i32) -> bool| {
                acked
                    .iter()
                    .enumerate()
                    .filter(|(p, _)| filter(*p as i32))
                    .map(|(_, ms)| *ms)
                    .fold(f64::NAN, f64::max)
            };
            Acks {
                first: acked.iter().cloned().fold(f64::INFINITY, f64::min),
                led: max_of(&|p| led.contains(&p)),
                followed: max_of(&|p| !led.contains(&p)),
                all: max_of(&|_| true),
            }
        })
        .collect();
    let outcome = Outcome {
        led: led.len(),
        fenced_ms: (1..=NODES)
            .filter(|&n| n as i32 != victim)
            .filter_map(|n| fenced_after(&cluster.logs(n), victim, wall_kill))
            .filter(|ms| *ms < within.as_secs_f64() * 1000.0)
            .min_by(f64::total_cmp),
        leaders_ms: leaders_ms.unwrap_or(f64::NAN),
        isr_ms: isr_ms.unwrap_or(f64::NAN),
        acks,
    };
    if std::env::var_os("FJORD_BENCH_LOAD_DEBUG").is_some() {
        print_broker_logs(cluster, victim, topic, wall_kill);
    }
    for load in loads {
        let failed = load.finish()?;
        ensure!(failed == 0, "{topic}: {failed} records failed");
    }

    cluster
        .restart(victim as u32)
        .context("restart the victim")?;
    Connection::connect(survivors[0])?.delete_topic(topic)?;
    Ok(outcome)
}

/// The survivors' log lines since the kill about `topic`, replica fetching or fencing, timed
/// in ms from the kill (with `FJORD_TEST_LOG=debug` the brokers log every refused fetch).
fn print_broker_logs(cluster: &Cluster, victim: i32, topic: &str, kill: SystemTime) {
    for node in (1..=NODES).filter(|&n| n as i32 != victim) {
        for line in cluster.logs(node).lines() {
            let relevant = ["fetch", "fenc", "ISR", "leader"]
                .iter()
                .any(|word| line.contains(word))
                || line.contains(topic);
            let Some(ms) = log_line_ms(line, "", false, kill).filter(|ms| *ms < 600_000.0) else {
                continue;
            };
            if relevant {
                eprintln!("node {node} +{ms:.1} ms: {line}");
            }
        }
    }
}

/// Milliseconds from `kill` to the last `broker session expired` line for `victim` in a
/// controller's log (a day, less a little, when that line is older than the kill).
fn fenced_after(log: &str, victim: i32, kill: SystemTime) -> Option<f64> {
    let victim = format!("broker_id={victim}");
    let line = log
        .lines()
        .rev()
        .find(|line| line.contains("broker session expired") && line.contains(&victim))?;
    log_line_ms(line, "broker session expired", false, kill)
}

/// The median of sorted `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
