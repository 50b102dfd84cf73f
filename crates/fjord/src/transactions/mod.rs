//! `fjord transactions`: list, describe and abort transactions and inspect
//! the producers of a partition, modelled on Apache Kafka's
//! `kafka-transactions.sh` (same subcommands, flags and columns).
//!
//! | subcommand           | requests                                         |
//! |----------------------|--------------------------------------------------|
//! | `list`               | ListTransactions to every broker                 |
//! | `describe`           | FindCoordinator (transaction), DescribeTransactions |
//! | `describe-producers` | DescribeProducers to the partition leader        |
//! | `abort`              | DescribeProducers, then WriteTxnMarkers (abort)  |
//! | `find-hanging`       | Metadata, DescribeProducers, ListTransactions, DescribeTransactions |
//!
//! Unlike the other tools, this one does not go through librdkafka, which
//! has no API for these calls: `cli/kafka_client.rs` speaks the protocol itself. The
//! connection flags and `--output` may be given before or after the
//! subcommand (`fjord transactions --bootstrap-server B list`, as Kafka
//! writes it, or `fjord transactions list --bootstrap-server B`).
//!
//! Layout: this file holds the command line and the flow of each
//! subcommand, with the pure decisions (which producer an abort targets,
//! which open transactions are hanging) as plain functions tested below;
//! `cli/kafka_client.rs` the connections and requests; `render.rs` the output.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::ProducerState;
use kafka_protocol::messages::describe_transactions_response::TransactionState as DescribedState;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest,
    ProducerId, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::cli::common::{self, ConnectionArgs, OutputFormat};
use crate::cli::kafka_client::{self, error_name, topic_name, Cluster};

mod render;

use render::{
    AbortedTransaction, DescribedTransaction, HangingTransaction, ListedTransaction, ProducerRow,
    TopicPartition,
};

/// States in which the coordinator still drives a transaction to its end.
const LIVE_STATES: &[&str] = &[
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "PrepareEpochFence",
];

/// Flags of `fjord transactions`; names follow kafka-transactions.sh.
#[derive(clap::Args, Debug)]
pub(crate) struct TransactionsArgs {
    /// Broker(s) to bootstrap from, HOST:PORT[,HOST:PORT...]. Default
    /// 127.0.0.1:9092; a bootstrap.servers in --command-config is used when
    /// this flag is absent.
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT", global = true)]
    pub(crate) bootstrap_server: Option<String>,

    /// Client configuration properties file (Java .properties syntax). Only
    /// bootstrap.servers and security.protocol=PLAINTEXT are honoured: this
    /// tool speaks the protocol itself, without TLS or SASL.
    #[arg(long = "command-config", value_name = "FILE", global = true)]
    pub(crate) command_config: Option<PathBuf>,

    /// Print Kafka-style tables or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub(crate) output: OutputFormat,

    #[command(subcommand)]
    pub(crate) command: TransactionsCommand,
}

/// The subcommands of kafka-transactions.sh.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum TransactionsCommand {
    /// List transactions known to the coordinators of the cluster.
    List(ListArgs),
    /// Describe the state of one transaction.
    Describe(DescribeArgs),
    /// Describe the active producers of one partition.
    DescribeProducers(DescribeProducersArgs),
    /// Abort an open transaction on one partition by writing an abort marker.
    Abort(AbortArgs),
    /// Find open transactions that have not written for longer than the
    /// maximum transaction timeout.
    FindHanging(FindHangingArgs),
}

/// Flags of `list`.
#[derive(clap::Args, Debug)]
pub(crate) struct ListArgs {
    /// Only transactions in this state (Empty, Ongoing, PrepareCommit,
    /// PrepareAbort, CompleteCommit, CompleteAbort, Dead, PrepareEpochFence);
    /// repeatable, or comma-separated.
    #[arg(long = "state", value_name = "STATE", value_delimiter = ',')]
    pub(crate) states: Vec<String>,

    /// Only transactions of this producer id; repeatable, or comma-separated.
    #[arg(long = "producer-id", value_name = "ID", value_delimiter = ',')]
    pub(crate) producer_ids: Vec<i64>,

    /// Only transactions running for at least this many milliseconds.
    #[arg(long = "duration-filter", value_name = "MS")]
    pub(crate) duration_filter: Option<i64>,
}

/// Flags of `describe`.
#[derive(clap::Args, Debug)]
pub(crate) struct DescribeArgs {
    /// Transactional id of the transaction to describe.
    #[arg(long = "transactional-id", value_name = "ID")]
    pub(crate) transactional_id: String,
}

/// Flags of `describe-producers`.
#[derive(clap::Args, Debug)]
pub(crate) struct DescribeProducersArgs {
    /// Topic of the partition.
    #[arg(long, value_name = "TOPIC")]
    pub(crate) topic: String,

    /// Partition index.
    #[arg(long, value_name = "PARTITION")]
    pub(crate) partition: i32,

    /// Ask this broker (a replica) instead of the partition leader.
    #[arg(long = "broker-id", value_name = "ID")]
    pub(crate) broker_id: Option<i32>,
}

/// Flags of `abort`: the transaction is named by its start offset, or
/// explicitly by producer id, epoch and coordinator epoch.
#[derive(clap::Args, Debug)]
pub(crate) struct AbortArgs {
    /// Topic of the partition.
    #[arg(long, value_name = "TOPIC")]
    pub(crate) topic: String,

    /// Partition index.
    #[arg(long, value_name = "PARTITION")]
    pub(crate) partition: i32,

    /// Offset of the first record of the transaction to abort (see the
    /// CurrentTransactionStartOffset of describe-producers).
    #[arg(long = "start-offset", value_name = "OFFSET", conflicts_with_all = ["producer_id", "producer_epoch", "coordinator_epoch"])]
    pub(crate) start_offset: Option<i64>,

    /// Producer id of the transaction to abort.
    #[arg(long = "producer-id", value_name = "ID")]
    pub(crate) producer_id: Option<i64>,

    /// Producer epoch of the transaction to abort.
    #[arg(long = "producer-epoch", value_name = "EPOCH")]
    pub(crate) producer_epoch: Option<i16>,

    /// Coordinator epoch to write the marker with.
    #[arg(long = "coordinator-epoch", value_name = "EPOCH")]
    pub(crate) coordinator_epoch: Option<i32>,
}

/// Flags of `find-hanging`.
#[derive(clap::Args, Debug)]
pub(crate) struct FindHangingArgs {
    /// Look at every partition this broker is a replica of.
    #[arg(
        long = "broker-id",
        value_name = "ID",
        required_unless_present = "topic"
    )]
    pub(crate) broker_id: Option<i32>,

    /// Look at the partitions of this topic (all, or --partition).
    #[arg(long, value_name = "TOPIC", conflicts_with = "broker_id")]
    pub(crate) topic: Option<String>,

    /// With --topic: only this partition.
    #[arg(long, value_name = "PARTITION", requires = "topic")]
    pub(crate) partition: Option<i32>,

    /// A transaction whose producer has not written for longer than this
    /// many minutes is a candidate (the brokers' transaction.max.timeout.ms).
    #[arg(
        long = "max-transaction-timeout",
        value_name = "MINUTES",
        default_value_t = 15
    )]
    pub(crate) max_transaction_timeout: i64,
}

/// Runs `fjord transactions`.
pub(crate) async fn run(args: TransactionsArgs) -> anyhow::Result<()> {
    let conn = ConnectionArgs {
        bootstrap_server: args.bootstrap_server.clone(),
        command_config: args.command_config.clone(),
    };
    let bootstrap = kafka_client::bootstrap(&conn, "fjord transactions")?;
    let json = args.output == OutputFormat::Json;
    let output = common::blocking(move || -> anyhow::Result<String> {
        let mut cluster = Cluster::new(&bootstrap, "fjord-transactions")?;
        match &args.command {
            TransactionsCommand::List(a) => {
                let rows = list(&mut cluster, a)?;
                Ok(if json {
                    serde_json::to_string_pretty(&rows)?
                } else {
                    render::list_table(&rows)
                })
            }
            TransactionsCommand::Describe(a) => {
                let d = describe(&mut cluster, &a.transactional_id)?;
                Ok(if json {
                    serde_json::to_string_pretty(&d)?
                } else {
                    render::describe_table(&d)
                })
            }
            TransactionsCommand::DescribeProducers(a) => {
                let rows = describe_producers(&mut cluster, a)?;
                Ok(if json {
                    serde_json::to_string_pretty(&rows)?
                } else {
                    render::producers_table(&rows)
                })
            }
            TransactionsCommand::Abort(a) => {
                let aborted = abort(&mut cluster, a)?;
                Ok(if json {
                    serde_json::to_string_pretty(&aborted)?
                } else {
                    render::abort_line(&aborted)
                })
            }
            TransactionsCommand::FindHanging(a) => {
                let rows = find_hanging(&mut cluster, a)?;
                Ok(if json {
                    serde_json::to_string_pretty(&rows)?
                } else {
                    render::hanging_table(&rows)
                })
            }
        }
    })?;
    if output.ends_with('\n') {
        print!("{output}");
    } else {
        println!("{output}");
    }
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `list`: ListTransactions to every broker (each answers for the
/// transactions it coordinates), sorted by transactional id.
fn list(cluster: &mut Cluster, args: &ListArgs) -> anyhow::Result<Vec<ListedTransaction>> {
    let states: Vec<String> = args
        .states
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    // The duration filter exists from v1 on; without it v0 does as well.
    let oldest = if args.duration_filter.is_some() { 1 } else { 0 };
    let mut request = ListTransactionsRequest::default()
        .with_state_filters(
            states
                .iter()
                .map(|s| StrBytes::from_string(s.clone()))
                .collect(),
        )
        .with_producer_id_filters(args.producer_ids.iter().map(|p| ProducerId(*p)).collect());
    if let Some(ms) = args.duration_filter {
        ensure!(ms >= 0, "--duration-filter must not be negative");
        request = request.with_duration_filter(ms);
    }
    let mut rows = Vec::new();
    let mut unknown_states = Vec::new();
    for broker in cluster.broker_ids()? {
        let response = cluster
            .send_to(broker, ApiKey::ListTransactions, oldest..=1, &request)
            .with_context(|| format!("listing the transactions of broker {broker}"))?;
        ensure!(
            response.error_code == 0,
            "listing the transactions of broker {broker}: {}",
            error_name(response.error_code)
        );
        for s in &response.unknown_state_filters {
            if !unknown_states.contains(&s.to_string()) {
                unknown_states.push(s.to_string());
            }
        }
        rows.extend(
            response
                .transaction_states
                .iter()
                .map(|t| ListedTransaction {
                    transactional_id: t.transactional_id.0.to_string(),
                    coordinator: broker,
                    producer_id: t.producer_id.0,
                    transaction_state: t.transaction_state.to_string(),
                }),
        );
    }
    if !unknown_states.is_empty() {
        eprintln!(
            "WARNING: the cluster knows no transaction state {}",
            unknown_states.join(", ")
        );
    }
    rows.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    Ok(rows)
}

/// `describe`: DescribeTransactions at the coordinator of the id.
fn describe(cluster: &mut Cluster, transactional_id: &str) -> anyhow::Result<DescribedTransaction> {
    let coordinator = cluster.transaction_coordinator(transactional_id)?;
    let state = describe_at(cluster, coordinator, transactional_id)?;
    if state.error_code != 0 {
        bail!(
            "transactional id {transactional_id:?}: {}",
            error_name(state.error_code)
        );
    }
    Ok(described(coordinator, &state, now_ms()))
}

/// One DescribeTransactions call for one id at `coordinator`.
fn describe_at(
    cluster: &mut Cluster,
    coordinator: i32,
    transactional_id: &str,
) -> anyhow::Result<DescribedState> {
    let request =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(
            StrBytes::from_string(transactional_id.to_string()),
        )]);
    let response = cluster
        .send_to(coordinator, ApiKey::DescribeTransactions, 0..=0, &request)
        .with_context(|| format!("describing transactional id {transactional_id:?}"))?;
    response
        .transaction_states
        .into_iter()
        .next()
        .context("DescribeTransactions answered without a transaction")
}

/// The `describe` row of a DescribeTransactions answer, durations as of `now_ms`.
fn described(coordinator: i32, state: &DescribedState, now_ms: i64) -> DescribedTransaction {
    let started = (state.transaction_start_time_ms >= 0).then_some(state.transaction_start_time_ms);
    let mut topic_partitions: Vec<TopicPartition> = state
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| TopicPartition {
                topic: t.topic.0.to_string(),
                partition: *p,
            })
        })
        .collect();
    topic_partitions.sort();
    DescribedTransaction {
        coordinator_id: coordinator,
        transactional_id: state.transactional_id.0.to_string(),
        producer_id: state.producer_id.0,
        producer_epoch: state.producer_epoch,
        transaction_state: state.transaction_state.to_string(),
        transaction_timeout_ms: state.transaction_timeout_ms,
        current_transaction_start_time_ms: started,
        transaction_duration_ms: started.map(|s| now_ms.saturating_sub(s).max(0)),
        topic_partitions,
    }
}

/// DescribeProducers for partitions of one topic at broker `node`; an error
/// of any partition is an error.
fn producers_at(
    cluster: &mut Cluster,
    node: i32,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<Vec<(i32, Vec<ProducerState>)>> {
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(topic_name(topic))
        .with_partition_indexes(partitions.to_vec())]);
    let response = cluster
        .send_to(node, ApiKey::DescribeProducers, 0..=0, &request)
        .with_context(|| format!("describing the producers of {topic} at broker {node}"))?;
    let mut out = Vec::new();
    for t in response.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                let detail = p
                    .error_message
                    .as_ref()
                    .map(|m| format!(": {}", m.as_str()))
                    .unwrap_or_default();
                bail!(
                    "{topic}-{}: {}{detail}",
                    p.partition_index,
                    error_name(p.error_code)
                );
            }
            out.push((p.partition_index, p.active_producers));
        }
    }
    Ok(out)
}

/// The producers of one partition, from its leader (or `broker`).
fn partition_producers(
    cluster: &mut Cluster,
    topic: &str,
    partition: i32,
    broker: Option<i32>,
) -> anyhow::Result<Vec<ProducerState>> {
    let node = match broker {
        Some(b) => b,
        None => cluster.leader(topic, partition)?,
    };
    let answered = producers_at(cluster, node, topic, &[partition])?;
    answered
        .into_iter()
        .find(|(p, _)| *p == partition)
        .map(|(_, producers)| producers)
        .with_context(|| format!("DescribeProducers did not answer for {topic}-{partition}"))
}

fn producer_row(p: &ProducerState) -> ProducerRow {
    ProducerRow {
        producer_id: p.producer_id.0,
        producer_epoch: p.producer_epoch,
        latest_coordinator_epoch: (p.coordinator_epoch >= 0).then_some(p.coordinator_epoch),
        last_sequence: p.last_sequence,
        last_timestamp: p.last_timestamp,
        current_transaction_start_offset: (p.current_txn_start_offset >= 0)
            .then_some(p.current_txn_start_offset),
    }
}

/// `describe-producers`.
fn describe_producers(
    cluster: &mut Cluster,
    args: &DescribeProducersArgs,
) -> anyhow::Result<Vec<ProducerRow>> {
    let producers = partition_producers(cluster, &args.topic, args.partition, args.broker_id)?;
    let mut rows: Vec<ProducerRow> = producers.iter().map(producer_row).collect();
    rows.sort_by_key(|r| r.producer_id);
    Ok(rows)
}

/// The transaction an `abort` targets: producer id, epoch and coordinator
/// epoch, and the start offset it was found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AbortTarget {
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    start_offset: Option<i64>,
}

/// Finds the producer whose open transaction starts at `start_offset`, as
/// Kafka's tool does; a coordinator epoch the partition never saw (-1)
/// becomes 0.
fn target_by_start_offset(
    producers: &[ProducerState],
    topic: &str,
    partition: i32,
    start_offset: i64,
) -> anyhow::Result<AbortTarget> {
    let Some(p) = producers
        .iter()
        .find(|p| p.current_txn_start_offset == start_offset)
    else {
        let open: Vec<String> = producers
            .iter()
            .filter(|p| p.current_txn_start_offset >= 0)
            .map(|p| p.current_txn_start_offset.to_string())
            .collect();
        let hint = if open.is_empty() {
            "no transaction is open there".to_string()
        } else {
            format!("open transactions start at {}", open.join(", "))
        };
        bail!("Could not find any open transactions starting at offset {start_offset} on partition {topic}-{partition} ({hint})");
    };
    let producer_epoch = i16::try_from(p.producer_epoch)
        .with_context(|| format!("producer epoch {} out of range", p.producer_epoch))?;
    Ok(AbortTarget {
        producer_id: p.producer_id.0,
        producer_epoch,
        coordinator_epoch: p.coordinator_epoch.max(0),
        start_offset: Some(start_offset),
    })
}

/// The target of `abort` from its flags, without asking the cluster.
fn explicit_target(args: &AbortArgs) -> anyhow::Result<Option<AbortTarget>> {
    if args.start_offset.is_some() {
        return Ok(None);
    }
    let (Some(producer_id), Some(producer_epoch), Some(coordinator_epoch)) = (
        args.producer_id,
        args.producer_epoch,
        args.coordinator_epoch,
    ) else {
        bail!("The transaction to abort must be identified either with --start-offset (to abort the transaction starting at a specific offset) or with --producer-id, --producer-epoch and --coordinator-epoch (to abort a specific producer's transaction)");
    };
    Ok(Some(AbortTarget {
        producer_id,
        producer_epoch,
        coordinator_epoch,
        start_offset: None,
    }))
}

/// `abort`: WriteTxnMarkers (abort) for one producer on one partition, sent
/// to the partition leader.
fn abort(cluster: &mut Cluster, args: &AbortArgs) -> anyhow::Result<AbortedTransaction> {
    let (topic, partition) = (args.topic.as_str(), args.partition);
    let target = match (explicit_target(args)?, args.start_offset) {
        (Some(target), _) => target,
        (None, Some(start_offset)) => {
            let producers = partition_producers(cluster, topic, partition, None)?;
            target_by_start_offset(&producers, topic, partition, start_offset)?
        }
        (None, None) => unreachable!("explicit_target refuses a missing --start-offset"),
    };
    let leader = cluster.leader(topic, partition)?;
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(target.producer_id))
            .with_producer_epoch(target.producer_epoch)
            .with_transaction_result(false)
            .with_coordinator_epoch(target.coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(vec![partition])])]);
    let response = cluster
        .send_to(leader, ApiKey::WriteTxnMarkers, 1..=1, &request)
        .with_context(|| format!("writing the abort marker on {topic}-{partition}"))?;
    let results: Vec<i16> = response
        .markers
        .iter()
        .flat_map(|m| m.topics.iter())
        .flat_map(|t| t.partitions.iter())
        .filter(|p| p.partition_index == partition)
        .map(|p| p.error_code)
        .collect();
    match results.as_slice() {
        [] => bail!("WriteTxnMarkers did not answer for {topic}-{partition}"),
        [0, ..] => {}
        [code, ..] => bail!(
            "aborting the transaction of producer {} on {topic}-{partition}: {}",
            target.producer_id,
            error_name(*code)
        ),
    }
    Ok(AbortedTransaction {
        topic: topic.to_string(),
        partition,
        producer_id: target.producer_id,
        producer_epoch: target.producer_epoch,
        coordinator_epoch: target.coordinator_epoch,
        start_offset: target.start_offset,
    })
}

/// An open transaction on one partition, as its producer state shows it.
#[derive(Debug, Clone)]
struct OpenTransaction {
    partition: TopicPartition,
    producer: ProducerState,
}

/// Open transactions whose producer has not written for longer than
/// `max_timeout_ms`: only those can be hanging.
fn hanging_candidates(
    open: Vec<OpenTransaction>,
    max_timeout_ms: i64,
    now_ms: i64,
) -> Vec<OpenTransaction> {
    open.into_iter()
        .filter(|o| o.producer.current_txn_start_offset >= 0)
        .filter(|o| now_ms.saturating_sub(o.producer.last_timestamp) >= max_timeout_ms)
        .collect()
}

/// Whether the coordinator's view (`described`, `None` when no coordinator
/// lists the producer) leaves `open` without anyone to complete it: the
/// coordinator has no live transaction of that producer id and epoch that
/// includes the partition.
fn is_hanging(open: &OpenTransaction, described: Option<&DescribedState>) -> bool {
    let Some(d) = described else {
        return true;
    };
    let live = LIVE_STATES.contains(&d.transaction_state.as_str());
    let same_producer = d.producer_id.0 == open.producer.producer_id.0
        && i32::from(d.producer_epoch) == open.producer.producer_epoch;
    let includes_partition = d.topics.iter().any(|t| {
        t.topic.0.as_str() == open.partition.topic
            && t.partitions.contains(&open.partition.partition)
    });
    !(live && same_producer && includes_partition)
}

/// `find-hanging`.
fn find_hanging(
    cluster: &mut Cluster,
    args: &FindHangingArgs,
) -> anyhow::Result<Vec<HangingTransaction>> {
    ensure!(
        args.max_transaction_timeout >= 0,
        "--max-transaction-timeout must not be negative"
    );
    // Which partitions to ask about, grouped by the broker to ask.
    let mut by_broker: std::collections::BTreeMap<(i32, String), Vec<i32>> = Default::default();
    match (&args.topic, args.broker_id) {
        (Some(topic), _) => {
            for p in cluster.partitions(Some(&[topic.as_str()]))? {
                if args.partition.is_none_or(|wanted| wanted == p.partition) && p.leader >= 0 {
                    by_broker
                        .entry((p.leader, p.topic))
                        .or_default()
                        .push(p.partition);
                }
            }
            if let Some(wanted) = args.partition {
                ensure!(
                    !by_broker.is_empty(),
                    "topic {topic} has no partition {wanted} with a leader"
                );
            }
        }
        (None, Some(broker)) => {
            for p in cluster.partitions(None)? {
                if p.replicas.contains(&broker) {
                    by_broker
                        .entry((broker, p.topic))
                        .or_default()
                        .push(p.partition);
                }
            }
        }
        (None, None) => bail!("find-hanging needs --broker-id or --topic"),
    }
    let mut open = Vec::new();
    for ((node, topic), partitions) in &by_broker {
        for (partition, producers) in producers_at(cluster, *node, topic, partitions)? {
            open.extend(producers.into_iter().map(|producer| OpenTransaction {
                partition: TopicPartition {
                    topic: topic.clone(),
                    partition,
                },
                producer,
            }));
        }
    }
    let now = now_ms();
    let max_timeout_ms = args.max_transaction_timeout.saturating_mul(60_000);
    let candidates = hanging_candidates(open, max_timeout_ms, now);
    if candidates.is_empty() {
        return Ok(Vec::new());
    }

    // Ask the coordinators which transactional ids these producers belong to.
    let mut producer_ids: Vec<i64> = candidates
        .iter()
        .map(|c| c.producer.producer_id.0)
        .collect();
    producer_ids.sort_unstable();
    producer_ids.dedup();
    let listed = list(
        cluster,
        &ListArgs {
            states: Vec::new(),
            producer_ids,
            duration_filter: None,
        },
    )?;
    let mut hanging = Vec::new();
    for c in candidates {
        let mut described = None;
        for l in listed
            .iter()
            .filter(|l| l.producer_id == c.producer.producer_id.0)
        {
            let d = describe_at(cluster, l.coordinator, &l.transactional_id)?;
            if d.error_code == 0 {
                described = Some(d);
                break;
            }
        }
        if is_hanging(&c, described.as_ref()) {
            hanging.push(HangingTransaction {
                topic: c.partition.topic.clone(),
                partition: c.partition.partition,
                producer_id: c.producer.producer_id.0,
                producer_epoch: c.producer.producer_epoch,
                coordinator_epoch: (c.producer.coordinator_epoch >= 0)
                    .then_some(c.producer.coordinator_epoch),
                start_offset: c.producer.current_txn_start_offset,
                last_timestamp: c.producer.last_timestamp,
                duration_min: now.saturating_sub(c.producer.last_timestamp) / 60_000,
            });
        }
    }
    Ok(hanging)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use kafka_protocol::messages::describe_transactions_response::TopicData;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: TransactionsArgs,
    }

    fn parse(argv: &[&str]) -> Result<TransactionsArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("transactions").chain(argv.iter().copied()))
            .map(|c| c.args)
    }

    fn producer(id: i64, epoch: i32, start: i64, last_timestamp: i64) -> ProducerState {
        ProducerState::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch)
            .with_coordinator_epoch(-1)
            .with_last_sequence(4)
            .with_last_timestamp(last_timestamp)
            .with_current_txn_start_offset(start)
    }

    #[test]
    fn connection_flags_go_before_or_after_the_subcommand() {
        let before = parse(&["--bootstrap-server", "h:1", "--output", "json", "list"]).unwrap();
        assert_eq!(before.bootstrap_server.as_deref(), Some("h:1"));
        assert_eq!(before.output, OutputFormat::Json);
        let after = parse(&[
            "describe",
            "--transactional-id",
            "x",
            "--bootstrap-server",
            "h:2",
        ])
        .unwrap();
        assert_eq!(after.bootstrap_server.as_deref(), Some("h:2"));
        assert_eq!(after.output, OutputFormat::Table);
        let TransactionsCommand::Describe(d) = after.command else {
            panic!("describe expected");
        };
        assert_eq!(d.transactional_id, "x");
    }

    #[test]
    fn list_filters_repeat_or_split_at_commas() {
        let args = parse(&[
            "list",
            "--state",
            "Ongoing,PrepareAbort",
            "--state",
            "Empty",
            "--producer-id",
            "3",
            "--duration-filter",
            "100",
        ])
        .unwrap();
        let TransactionsCommand::List(l) = args.command else {
            panic!("list expected");
        };
        assert_eq!(l.states, ["Ongoing", "PrepareAbort", "Empty"]);
        assert_eq!(l.producer_ids, [3]);
        assert_eq!(l.duration_filter, Some(100));
    }

    #[test]
    fn abort_takes_a_start_offset_or_an_explicit_producer() {
        let by_offset = parse(&[
            "abort",
            "--topic",
            "t",
            "--partition",
            "0",
            "--start-offset",
            "5",
        ])
        .unwrap();
        let TransactionsCommand::Abort(a) = by_offset.command else {
            panic!("abort expected");
        };
        assert_eq!(explicit_target(&a).unwrap(), None);

        let explicit = parse(&[
            "abort",
            "--topic",
            "t",
            "--partition",
            "0",
            "--producer-id",
            "9",
            "--producer-epoch",
            "1",
            "--coordinator-epoch",
            "0",
        ])
        .unwrap();
        let TransactionsCommand::Abort(a) = explicit.command else {
            panic!("abort expected");
        };
        assert_eq!(
            explicit_target(&a).unwrap(),
            Some(AbortTarget {
                producer_id: 9,
                producer_epoch: 1,
                coordinator_epoch: 0,
                start_offset: None,
            })
        );

        let neither = parse(&[
            "abort",
            "--topic",
            "t",
            "--partition",
            "0",
            "--producer-id",
            "9",
        ])
        .unwrap();
        let TransactionsCommand::Abort(a) = neither.command else {
            panic!("abort expected");
        };
        assert!(explicit_target(&a)
            .unwrap_err()
            .to_string()
            .contains("--start-offset"));

        assert!(parse(&[
            "abort",
            "--topic",
            "t",
            "--partition",
            "0",
            "--start-offset",
            "5",
            "--producer-id",
            "9"
        ])
        .is_err());
    }

    #[test]
    fn find_hanging_needs_a_broker_or_a_topic() {
        assert!(parse(&["find-hanging"]).is_err());
        assert!(parse(&["find-hanging", "--partition", "1"]).is_err());
        let args = parse(&["find-hanging", "--broker-id", "1"]).unwrap();
        let TransactionsCommand::FindHanging(f) = args.command else {
            panic!("find-hanging expected");
        };
        assert_eq!(f.max_transaction_timeout, 15);
    }

    #[test]
    fn abort_finds_the_producer_by_start_offset() {
        let mut with_epoch = producer(8, 3, 40, 0);
        with_epoch.coordinator_epoch = 5;
        let producers = [producer(7, 0, -1, 0), with_epoch, producer(9, 1, 12, 0)];
        assert_eq!(
            target_by_start_offset(&producers, "t", 0, 12).unwrap(),
            AbortTarget {
                producer_id: 9,
                producer_epoch: 1,
                coordinator_epoch: 0,
                start_offset: Some(12),
            }
        );
        assert_eq!(
            target_by_start_offset(&producers, "t", 0, 40)
                .unwrap()
                .coordinator_epoch,
            5
        );
        let err = target_by_start_offset(&producers, "t", 0, 13)
            .unwrap_err()
            .to_string();
        assert!(err.contains("offset 13 on partition t-0"), "{err}");
        assert!(err.contains("start at 40, 12"), "{err}");
        let none = target_by_start_offset(&[], "t", 0, 1)
            .unwrap_err()
            .to_string();
        assert!(none.contains("no transaction is open"), "{none}");
    }

    #[test]
    fn only_old_open_transactions_are_candidates() {
        let open = |id, start, last| OpenTransaction {
            partition: TopicPartition {
                topic: "t".into(),
                partition: 0,
            },
            producer: producer(id, 0, start, last),
        };
        let now = 1_000_000;
        let kept = hanging_candidates(
            vec![open(1, 5, 0), open(2, -1, 0), open(3, 5, now - 10)],
            60_000,
            now,
        );
        let ids: Vec<i64> = kept.iter().map(|o| o.producer.producer_id.0).collect();
        assert_eq!(ids, [1]);
    }

    #[test]
    fn a_transaction_is_hanging_unless_its_coordinator_still_runs_it_there() {
        let open = OpenTransaction {
            partition: TopicPartition {
                topic: "t".into(),
                partition: 1,
            },
            producer: producer(5, 2, 10, 0),
        };
        let state = |name: &str, epoch: i16, partitions: Vec<i32>| {
            DescribedState::default()
                .with_producer_id(ProducerId(5))
                .with_producer_epoch(epoch)
                .with_transaction_state(StrBytes::from_string(name.to_string()))
                .with_topics(vec![TopicData::default()
                    .with_topic(topic_name("t"))
                    .with_partitions(partitions)])
        };
        assert!(!is_hanging(&open, Some(&state("Ongoing", 2, vec![0, 1]))));
        assert!(!is_hanging(&open, Some(&state("PrepareAbort", 2, vec![1]))));
        assert!(is_hanging(&open, None));
        assert!(is_hanging(&open, Some(&state("Ongoing", 2, vec![0]))));
        assert!(is_hanging(&open, Some(&state("Ongoing", 3, vec![1]))));
        assert!(is_hanging(
            &open,
            Some(&state("CompleteCommit", 2, vec![1]))
        ));
    }

    #[test]
    fn describe_rows_compute_the_duration() {
        let state = DescribedState::default()
            .with_transactional_id(TransactionalId(StrBytes::from_static_str("app")))
            .with_producer_id(ProducerId(3))
            .with_transaction_state(StrBytes::from_static_str("Ongoing"))
            .with_transaction_start_time_ms(1_000)
            .with_topics(vec![
                TopicData::default()
                    .with_topic(topic_name("b"))
                    .with_partitions(vec![1, 0]),
                TopicData::default()
                    .with_topic(topic_name("a"))
                    .with_partitions(vec![2]),
            ]);
        let d = described(1, &state, 4_500);
        assert_eq!(d.current_transaction_start_time_ms, Some(1_000));
        assert_eq!(d.transaction_duration_ms, Some(3_500));
        let tps: Vec<String> = d.topic_partitions.iter().map(|tp| tp.to_string()).collect();
        assert_eq!(tps, ["a-2", "b-0", "b-1"]);
        let idle = described(1, &state.clone().with_transaction_start_time_ms(-1), 4_500);
        assert_eq!(idle.transaction_duration_ms, None);
    }
}
