//! Cluster benchmarks, recorded in docs/benchmarks.md (`scripts/bench-cluster.sh` runs them):
//!
//! * `throughput`: `fjord perf produce` with acks=all against one node, then against a
//!   three-node cluster (replication factor 3, `min.insync.replicas=2`), the same records
//!   and settings for both, unthrottled and at a fixed rate for latency, in rounds;
//! * `failover`: librdkafka producers write acks=all to 1 or 100 partitions, a node that
//!   leads partition 0 (or a third of the 100) and is not the active controller is killed
//!   with SIGKILL, and the time from the kill to the first acknowledgement of a record sent
//!   after it is taken per partition, next to when the controller fenced the node and when
//!   the survivors' Metadata showed the new leaders;
//! * `metadata`: a topic of 1,000 partitions (replication factor 3) is created and every
//!   broker's Metadata is polled until it shows all of them with a leader and a full ISR,
//!   and each node's data directory until it holds all of its replicas.
//!
//! Every broker is a `fjord server` process on 127.0.0.1 started through `fjord-testkit`,
//! which kills it when its handle is dropped; every wait is bounded. `FJORD_TEST_LOG` sets
//! the brokers' log filter (as in the tests), `FJORD_BENCH_LOGS=DIR` keeps every cluster's
//! broker logs in DIR, and `FJORD_BENCH_LOAD_DEBUG` turns on the failover producers'
//! librdkafka debug log and prints the survivors' log lines about the failover.

mod failover;
mod raw;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use fjord_testkit::{BrokerProcess, Cluster};

use raw::Connection;

/// Nodes in the cluster.
const NODES: u32 = 3;

/// How long a cluster may take to elect a controller and register every broker.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a new topic may take to have a leader and a full ISR on every broker.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How often conditions only Metadata shows are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Linux's `USER_HZ`: the unit of `utime` and `stime` in `/proc/PID/stat`.
const USER_HZ: f64 = 100.0;

#[derive(Parser, Debug)]
#[command(about = "Fjord cluster benchmarks: replicated produce, failover, metadata propagation")]
struct Args {
    /// The fjord binary to start brokers from and run `perf produce` with (default: the
    /// workspace's release build).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/fjord"))]
    fjord: PathBuf,

    /// Which benchmarks to run, comma-separated: throughput, failover, metadata.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "throughput,failover,metadata"
    )]
    only: Vec<String>,

    /// Records per unthrottled produce run.
    #[arg(long, default_value_t = 200_000)]
    records: u64,

    /// Record size in bytes.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,

    /// Records of the fixed-rate latency run.
    #[arg(long, default_value_t = 512_000)]
    latency_records: u64,

    /// Rate of the latency run in records per second (51,200 x 1 KiB = 50 MB/s).
    #[arg(long, default_value_t = 51_200)]
    latency_rate: u64,

    /// Rounds of the throughput benchmark, each on a fresh node and a fresh cluster.
    #[arg(long, default_value_t = 2)]
    throughput_rounds: u32,

    /// Failure detection settings of the failover runs as SESSION/HEARTBEAT pairs of
    /// `broker.session.timeout.ms`/`broker.heartbeat.interval.ms`.
    #[arg(long, value_delimiter = ',', default_value = "9000/2000,2000/500")]
    detection: Vec<String>,

    /// Partition counts of the failover runs.
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    failover_partitions: Vec<i32>,

    /// Also kill the node that is both the active controller and the leader of one
    /// partition (a quorum election on top of the broker failover).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    failover_kill_controller: bool,

    /// Kills per detection setting and partition count.
    #[arg(long, default_value_t = 3)]
    failover_runs: u32,

    /// Partitions of the topic whose creation is timed.
    #[arg(long, default_value_t = 1000)]
    metadata_partitions: i32,

    /// Topics created one after another in the metadata benchmark.
    #[arg(long, default_value_t = 3)]
    metadata_runs: u32,

    /// Extra broker settings as KEY=VALUE for every broker started, after the benchmark's own.
    #[arg(long = "broker-override", value_name = "KEY=VALUE")]
    broker_overrides: Vec<String>,

    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.fjord.exists(),
        "{} not found: build it with `cargo build --release -p fjord`",
        args.fjord.display()
    );
    for part in &args.only {
        ensure!(
            ["throughput", "failover", "metadata"].contains(&part.as_str()),
            "unknown benchmark `{part}`"
        );
    }
    println!("{}", machine_note());
    let wants = |part: &str| args.only.iter().any(|p| p == part);
    if wants("throughput") {
        throughput(&args)?;
    }
    if wants("failover") {
        for setting in &args.detection {
            let (session, heartbeat) = setting
                .split_once('/')
                .and_then(|(s, h)| Some((s.parse().ok()?, h.parse().ok()?)))
                .with_context(|| format!("--detection {setting}: expected SESSION/HEARTBEAT"))?;
            failover::run(&args, session, heartbeat)?;
        }
    }
    if wants("metadata") {
        metadata(&args)?;
    }
    Ok(())
}

/// Cores, kernel and load, printed first so every result carries them.
fn machine_note() -> String {
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cores} cores; Linux {}; load average {}",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// `--broker-override` as key and value pairs.
fn broker_overrides(args: &Args) -> Result<Vec<(String, String)>> {
    args.broker_overrides
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--broker-override {kv}: expected KEY=VALUE"))
        })
        .collect()
}

/// Starts three nodes with `overrides` and `--broker-override`, and waits until every one
/// lists all three brokers.
fn start_cluster(args: &Args, overrides: &[(&str, String)]) -> Result<Cluster> {
    let mut builder = Cluster::builder(&args.fjord)
        .nodes(NODES)
        .start_timeout(Duration::from_secs(60));
    for (key, value) in overrides {
        builder = builder.override_config(*key, value.clone());
    }
    for (key, value) in broker_overrides(args)? {
        builder = builder.override_config(key, value);
    }
    builder
        .ready_when(CLUSTER_READY_TIMEOUT, |cluster| {
            (1..=cluster.node_count()).all(|n| {
                Connection::connect(cluster.node(n).bootstrap_address)
                    .and_then(|mut c| c.metadata(&[]))
                    .is_ok_and(|m| m.brokers.len() == NODES as usize)
            })
        })
        .start()
        .context("start the cluster")
}

/// Writes every node's log to `$FJORD_BENCH_LOGS/<label>-node-<n>.log` when that variable
/// names a directory, so a run can be examined after its cluster is gone.
fn save_logs(cluster: &Cluster, label: &str) -> Result<()> {
    let Some(dir) = std::env::var_os("FJORD_BENCH_LOGS") else {
        return Ok(());
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    for n in 1..=cluster.node_count() {
        let path = dir.join(format!("{label}-node-{n}.log"));
        std::fs::write(&path, cluster.logs(n))
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// The PLAINTEXT address of every running node.
fn running_addresses(cluster: &Cluster) -> Vec<(u32, SocketAddr)> {
    (1..=cluster.node_count())
        .filter(|&n| cluster.is_running(n))
        .map(|n| (n, cluster.node(n).bootstrap_address))
        .collect()
}

/// Creates `topic` through node `through` (retrying while, say, a restarted node is still
/// fenced), then waits until every running node shows each partition with a leader and
/// `replicas` in-sync replicas. Returns the partitions as the first node shows them.
fn create_and_wait(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    assignment: Option<&[Vec<i32>]>,
) -> Result<Vec<raw::PartitionView>> {
    let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
    loop {
        let (_, address) = running_addresses(cluster)[0];
        let created = Connection::connect(address)
            .and_then(|mut c| c.create_topic(topic, partitions, NODES as i16, assignment));
        match created {
            Ok(()) => break,
            Err(error) if Instant::now() < deadline => {
                eprintln!("retrying topic creation: {error:#}");
                thread::sleep(Duration::from_millis(500));
            }
            Err(error) => return Err(error),
        }
    }
    let expected = assignment.map_or(partitions, |a| a.len() as i32) as usize;
    loop {
        let views: Vec<_> = running_addresses(cluster)
            .into_iter()
            .map(|(_, address)| raw::topic_view(address, topic))
            .collect::<Result<_>>()
            .unwrap_or_default();
        let ready = !views.is_empty()
            && views.iter().all(|view| {
                view.len() == expected
                    && view
                        .iter()
                        .all(|p| p.leader >= 0 && p.isr.len() == p.replicas.len())
            });
        if ready {
            let mut first = views.into_iter().next().unwrap_or_default();
            first.sort_by_key(|p| p.partition);
            return Ok(first);
        }
        ensure!(
            Instant::now() < deadline,
            "{topic}: not every partition has a leader and a full ISR on every node within {TOPIC_READY_TIMEOUT:?}"
        );
        thread::sleep(POLL_INTERVAL);
    }
}

/// User plus system CPU seconds of each process so far.
fn cpu_seconds(pids: &[u32]) -> Vec<f64> {
    pids.iter()
        .map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let fields: Vec<&str> = stat
                .rfind(')')
                .map(|close| stat[close + 1..].split_whitespace().collect())
                .unwrap_or_default();
            // After the `)` closing field 2, field N is fields[N - 3]: utime 14, stime 15.
            let ticks = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
            (ticks(14).unwrap_or(0) + ticks(15).unwrap_or(0)) as f64 / USER_HZ
        })
        .collect()
}

/// What one `fjord perf produce` run reported, with the brokers' CPU time during it.
#[derive(Debug, Clone)]
struct PerfResult {
    records_per_sec: f64,
    mb_per_sec: f64,
    avg_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    /// CPU seconds per GiB of payload, summed over every broker.
    cpu_s_per_gib: f64,
    /// CPU seconds of each broker during the run, in the order of the pids given.
    cpu_s: Vec<f64>,
}

/// Runs `fjord perf produce` (bounded to 10 minutes) and parses its JSON summary.
#[allow(clippy::too_many_arguments)]
fn perf_produce(
    fjord: &Path,
    bootstrap: &str,
    pids: &[u32],
    topic: &str,
    records: u64,
    record_size: usize,
    rate: Option<u64>,
    props: &[&str],
) -> Result<PerfResult> {
    let out_dir = tempfile::tempdir()?;
    let stdout = out_dir.path().join("stdout");
    let stderr = out_dir.path().join("stderr");
    let mut command = Command::new(fjord);
    command
        .args([
            "perf",
            "produce",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
        ])
        .args(["--num-records", &records.to_string()])
        .args(["--record-size", &record_size.to_string()])
        .args(["--output", "json", "--reporting-interval", "3600000"])
        .args(["--broker-pid", &pids[0].to_string()]);
    if let Some(rate) = rate {
        command.args(["--throughput", &rate.to_string()]);
    }
    command
        .arg("--producer-props")
        .args(props)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout)?)
        .stderr(File::create(&stderr)?);
    let shown = format!(
        "fjord perf produce --topic {topic} --num-records {records} --record-size {record_size}{} --producer-props {}",
        rate.map(|r| format!(" --throughput {r}")).unwrap_or_default(),
        props.join(" ")
    );
    println!("  {shown}");
    let cpu_before = cpu_seconds(pids);
    let mut child = command.spawn().context("spawn fjord perf produce")?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{shown}` did not finish within 10 minutes");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let cpu_after = cpu_seconds(pids);
    let text = std::fs::read_to_string(&stdout)?;
    ensure!(
        status.success(),
        "`{shown}` failed ({status}): {}{}",
        text,
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    let json: serde_json::Value = serde_json::from_str(text.trim()).context("perf JSON")?;
    let number = |key: &str| {
        json.get(key)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    let cpu_s: Vec<f64> = cpu_after
        .iter()
        .zip(&cpu_before)
        .map(|(a, b)| a - b)
        .collect();
    let cpu: f64 = cpu_s.iter().sum();
    let gib = records as f64 * record_size as f64 / (1u64 << 30) as f64;
    let result = PerfResult {
        records_per_sec: number("records_per_sec"),
        mb_per_sec: number("mb_per_sec"),
        avg_ms: number("avg_latency_ms"),
        p50_ms: number("p50_ms"),
        p99_ms: number("p99_ms"),
        p999_ms: number("p999_ms"),
        max_ms: number("max_latency_ms"),
        cpu_s_per_gib: cpu / gib,
        cpu_s,
    };
    println!(
        "  {:.0} records/s, {:.1} MB/s, avg {:.2} ms, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms, broker CPU {:.2} s ({:.2} s per GiB, all brokers; per broker {})",
        result.records_per_sec,
        result.mb_per_sec,
        result.avg_ms,
        result.p50_ms,
        result.p99_ms,
        result.p999_ms,
        result.max_ms,
        cpu,
        result.cpu_s_per_gib,
        result
            .cpu_s
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join("/")
    );
    Ok(result)
}

/// The two produce runs of the throughput benchmark against one bootstrap.
fn produce_pair(
    args: &Args,
    bootstrap: &str,
    pids: &[u32],
    topics: (&str, &str),
) -> Result<(PerfResult, PerfResult)> {
    let unthrottled = perf_produce(
        &args.fjord,
        bootstrap,
        pids,
        topics.0,
        args.records,
        args.record_size,
        None,
        &["acks=all", "linger.ms=5", "batch.size=1000000"],
    )?;
    let latency = perf_produce(
        &args.fjord,
        bootstrap,
        pids,
        topics.1,
        args.latency_records,
        args.record_size,
        Some(args.latency_rate),
        &["acks=all", "linger.ms=0"],
    )?;
    Ok((unthrottled, latency))
}

/// Produces one record with acks=all to every topic and waits for its acknowledgement, so the
/// timed runs start with every follower fetching (right after creation a follower whose first
/// fetch was refused may pause for `replica.fetch.backoff.ms`, which acks=all then waits out).
/// Returns the time each acknowledgement took once the client knew the topic's leader.
fn warm_up(bootstrap: &str, topics: &[&str]) -> Result<Vec<f64>> {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "60000")
        .create()
        .context("create the warm-up producer")?;
    topics
        .iter()
        .map(|topic| {
            // Timed from a known leader: the client's own metadata lookup is not counted.
            producer
                .client()
                .fetch_metadata(Some(topic), Duration::from_secs(30))
                .with_context(|| format!("metadata of {topic}"))?;
            let start = Instant::now();
            producer
                .send(BaseRecord::<(), [u8]>::to(topic).payload(b"warm-up".as_slice()))
                .map_err(|(e, _)| e)
                .with_context(|| format!("warm-up send to {topic}"))?;
            producer
                .flush(Duration::from_secs(60))
                .with_context(|| format!("warm-up record to {topic} not acknowledged"))?;
            Ok(ms_since(start))
        })
        .collect()
}

/// One round's produce runs against a fresh single node.
fn throughput_single(args: &Args, round: u32) -> Result<(PerfResult, PerfResult)> {
    println!("== throughput round {round}: one node, acks=all, one partition");
    let mut builder = BrokerProcess::builder(&args.fjord);
    for (key, value) in broker_overrides(args)? {
        builder = builder.override_config(key, value);
    }
    let broker = builder.start().context("start the single node")?;
    let pid = broker.pid().context("single node pid")?;
    let bootstrap = broker.bootstrap();
    let mut admin = Connection::connect(broker.address())?;
    admin.create_topic("tput", 1, 1, None)?;
    admin.create_topic("tlat", 1, 1, None)?;
    warm_up(&bootstrap, &["tput", "tlat"])?;
    produce_pair(args, &bootstrap, &[pid], ("tput", "tlat"))
}

/// One round's produce runs against a fresh three-node cluster.
fn throughput_cluster(args: &Args, round: u32) -> Result<(PerfResult, PerfResult)> {
    println!(
        "== throughput round {round}: three nodes, replication factor 3, min.insync.replicas=2, acks=all, one partition"
    );
    let cluster = start_cluster(
        args,
        &[
            ("default.replication.factor", "3".into()),
            ("min.insync.replicas", "2".into()),
        ],
    )?;
    let tput = create_and_wait(&cluster, "tput", 1, None)?;
    let tlat = create_and_wait(&cluster, "tlat", 1, None)?;
    println!(
        "  tput-0 led by node {}, tlat-0 by node {}; the other two nodes follow (CPU listed per node 1/2/3)",
        tput[0].leader, tlat[0].leader
    );
    let warm = warm_up(&cluster.bootstrap(), &["tput", "tlat"])?;
    println!(
        "  first acks=all record acknowledged after {:.0} ms (tput), {:.0} ms (tlat)",
        warm[0], warm[1]
    );
    let pids: Vec<u32> = (1..=NODES).filter_map(|n| cluster.node(n).pid).collect();
    let results = produce_pair(args, &cluster.bootstrap(), &pids, ("tput", "tlat"))?;
    save_logs(&cluster, &format!("throughput-{round}"))?;
    Ok(results)
}

/// acks=all produce on one node and on three nodes with replication factor 3, in rounds.
fn throughput(args: &Args) -> Result<()> {
    let mut rounds = Vec::new();
    for round in 1..=args.throughput_rounds {
        // Odd rounds start with the single node, even rounds with the cluster, so neither
        // always runs while the kernel is still writing back the other's data.
        let (single, three) = if round % 2 == 1 {
            let single = throughput_single(args, round)?;
            (single, throughput_cluster(args, round)?)
        } else {
            let three = throughput_cluster(args, round)?;
            (throughput_single(args, round)?, three)
        };
        rounds.push((single, three));
    }
    println!("== throughput summary (ratio: three nodes / one node in the same round)");
    println!(
        "| round | case | records/s | MB/s | avg / p50 / p99 / p99.9 latency (ms) | broker CPU s per GiB (all brokers) |"
    );
    for (i, ((single, single_latency), (three, three_latency))) in rounds.iter().enumerate() {
        for (name, r) in [
            ("1 node, unthrottled", single),
            ("3 nodes, unthrottled", three),
            ("1 node, fixed rate", single_latency),
            ("3 nodes, fixed rate", three_latency),
        ] {
            println!(
                "| {} | {name} | {:.0} | {:.1} | {:.2} / {:.2} / {:.2} / {:.2} | {:.2} |",
                i + 1,
                r.records_per_sec,
                r.mb_per_sec,
                r.avg_ms,
                r.p50_ms,
                r.p99_ms,
                r.p999_ms,
                r.cpu_s_per_gib
            );
        }
        println!(
            "round {}: ratios three nodes / one node: throughput {:.2}, CPU per GiB {:.2}; at a fixed rate p50 {:.2}, p99 {:.2}",
            i + 1,
            three.records_per_sec / single.records_per_sec,
            three.cpu_s_per_gib / single.cpu_s_per_gib,
            three_latency.p50_ms / single_latency.p50_ms,
            three_latency.p99_ms / single_latency.p99_ms,
        );
    }
    Ok(())
}

/// Partition directories `<topic>-<n>` in `dir`.
fn replica_dirs(dir: &Path, topic: &str) -> usize {
    let prefix = format!("{topic}-");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name().to_str().is_some_and(|name| {
                        name.strip_prefix(&prefix).is_some_and(|rest| {
                            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                        })
                    })
                })
                .count()
        })
        .unwrap_or(0)
}

/// Milliseconds since `start`.
fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// Creates topics of `--metadata-partitions` partitions and times their propagation.
///
/// CreateTopics is sent from a thread of its own, so every broker's Metadata is polled from
/// the moment the request leaves, not only once the receiving broker has answered.
fn metadata(args: &Args) -> Result<()> {
    let partitions = args.metadata_partitions;
    println!(
        "== metadata: CreateTopics of {partitions} partitions x 3 replicas on three nodes (default settings)"
    );
    let cluster = start_cluster(args, &[])?;
    let nodes: Vec<(u32, SocketAddr, PathBuf)> = (1..=NODES)
        .map(|n| {
            let info = cluster.node(n);
            (n, info.bootstrap_address, info.data_dir)
        })
        .collect();
    let controller = Connection::connect(nodes[0].1)?
        .metadata(&[])?
        .controller_id
        .0;
    println!("  active controller: node {controller}; CreateTopics sent to node 1");
    let mut rows = Vec::new();
    for run in 1..=args.metadata_runs {
        let topic = format!("meta{run}");
        let wall_start = SystemTime::now();
        let start = Instant::now();
        let creator = {
            let (address, topic) = (nodes[0].1, topic.clone());
            thread::spawn(move || -> Result<f64> {
                Connection::connect(address)?.create_topic(
                    &topic,
                    partitions,
                    NODES as i16,
                    None,
                )?;
                Ok(ms_since(start))
            })
        };
        // Per node: all partitions with a leader; all with a full ISR; all replica dirs.
        let mut led: BTreeMap<u32, f64> = BTreeMap::new();
        let mut in_sync: BTreeMap<u32, f64> = BTreeMap::new();
        let mut dirs: BTreeMap<u32, f64> = BTreeMap::new();
        let mut first_dir: BTreeMap<u32, f64> = BTreeMap::new();
        let deadline = start + Duration::from_secs(300);
        while led.len() < nodes.len() || in_sync.len() < nodes.len() || dirs.len() < nodes.len() {
            ensure!(
                Instant::now() < deadline,
                "{topic}: not propagated within 300 s (led {led:?}, in sync {in_sync:?}, dirs {dirs:?})"
            );
            for (node, address, data_dir) in &nodes {
                if !led.contains_key(node) || !in_sync.contains_key(node) {
                    let view = raw::topic_view(*address, &topic).unwrap_or_default();
                    let now = ms_since(start);
                    let with_leader = view.iter().filter(|p| p.leader >= 0).count();
                    let full = view
                        .iter()
                        .filter(|p| p.leader >= 0 && p.isr.len() == NODES as usize)
                        .count();
                    if with_leader == partitions as usize {
                        led.entry(*node).or_insert(now);
                    }
                    if full == partitions as usize {
                        in_sync.entry(*node).or_insert(now);
                    }
                }
                if !dirs.contains_key(node) {
                    let count = replica_dirs(data_dir, &topic);
                    if count > 0 {
                        first_dir.entry(*node).or_insert(ms_since(start));
                    }
                    if count == partitions as usize {
                        dirs.insert(*node, ms_since(start));
                    }
                }
            }
            thread::sleep(POLL_INTERVAL);
        }
        let answered = match creator.join() {
            Ok(answered) => answered?,
            Err(_) => bail!("the CreateTopics thread panicked"),
        };
        // Each broker logs `following topic` once it has created the logs of all its
        // replicas, then one line per partition as it takes its role.
        let logs: Vec<String> = nodes.iter().map(|(n, _, _)| cluster.logs(*n)).collect();
        let logged = |needle: &str, last: bool| -> BTreeMap<u32, f64> {
            nodes
                .iter()
                .zip(&logs)
                .filter_map(|((n, _, _), log)| {
                    Some((*n, log_line_ms(log, needle, last, wall_start)?))
                })
                .collect()
        };
        let logs_created = logged(&format!("following topic topic={topic} "), false);
        let roles_taken = logged(&format!(" partition={topic}-"), true);
        let max = |m: &BTreeMap<u32, f64>| m.values().cloned().fold(0.0, f64::max);
        println!(
            "  run {run}: CreateTopics answered after {answered:.0} ms; node 1/2/3: first replica directory {} ms, logs created {} ms (broker log), roles taken {} ms (broker log), every partition led in Metadata {} ms, full ISR {} ms, replica directories complete {} ms",
            join_ms(&first_dir),
            join_ms(&logs_created),
            join_ms(&roles_taken),
            join_ms(&led),
            join_ms(&in_sync),
            join_ms(&dirs)
        );
        let min = |m: &BTreeMap<u32, f64>| m.values().cloned().fold(f64::INFINITY, f64::min);
        rows.push((
            answered,
            min(&first_dir),
            max(&logs_created),
            max(&led),
            max(&in_sync),
            max(&dirs),
        ));
        let start = Instant::now();
        Connection::connect(nodes[0].1)?.delete_topic(&topic)?;
        let deleted_answer = ms_since(start);
        let deadline = start + Duration::from_secs(300);
        while nodes
            .iter()
            .any(|(_, _, dir)| replica_dirs(dir, &topic) > 0)
        {
            ensure!(
                Instant::now() < deadline,
                "{topic}: replicas not removed within 300 s"
            );
            thread::sleep(POLL_INTERVAL);
        }
        println!(
            "  run {run}: DeleteTopics answered after {deleted_answer:.0} ms; every replica directory gone after {:.0} ms",
            ms_since(start)
        );
    }
    save_logs(&cluster, "metadata")?;
    println!("== metadata summary ({partitions} partitions, replication factor 3; ms from sending CreateTopics; first replica directory: fastest node, others: slowest node)");
    println!("| run | CreateTopics answered | first replica directory | logs created (broker log) | all led in Metadata, every broker | full ISR, every broker | all replica dirs, every node |");
    for (i, (answered, first, created, led, in_sync, dirs)) in rows.iter().enumerate() {
        println!(
            "| {} | {answered:.0} | {first:.0} | {created:.0} | {led:.0} | {in_sync:.0} | {dirs:.0} |",
            i + 1
        );
    }
    Ok(())
}

/// Milliseconds from `since` to the first (or last) line of `log` containing `needle`, from
/// the UTC time of day the broker's log lines start with.
fn log_line_ms(log: &str, needle: &str, last: bool, since: SystemTime) -> Option<f64> {
    let mut lines = log.lines().filter(|line| line.contains(needle));
    let line = if last {
        lines.next_back()
    } else {
        lines.next()
    }?;
    let logged = seconds_of_day(line)?;
    let since = since.duration_since(UNIX_EPOCH).ok()?.as_secs_f64() % 86_400.0;
    Some((logged - since).rem_euclid(86_400.0) * 1000.0)
}

/// Seconds since midnight UTC of a line starting `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn seconds_of_day(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?;
    let time = stamp.split_once('T')?.1.strip_suffix('Z')?;
    let mut parts = time.split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}

/// `a/b/c` of per-node milliseconds.
fn join_ms(per_node: &BTreeMap<u32, f64>) -> String {
    per_node
        .values()
        .map(|ms| format!("{ms:.0}"))
        .collect::<Vec<_>>()
        .join("/")
}
