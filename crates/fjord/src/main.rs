//! `fjord`: one binary for the broker and the tools around it.

mod cli;
mod groups;
mod perf;
mod properties;
mod server;
mod transactions;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

/// Fjord: an event streaming platform that speaks the Apache Kafka protocol.
#[derive(Debug, Parser)]
#[command(name = "fjord", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker (a complete single-node cluster with no flags).
    Server(server::ServerArgs),
    /// Measure produce or consume throughput and latency against a cluster.
    #[command(subcommand)]
    Perf(perf::PerfCommand),
    /// List, describe, delete consumer groups and reset their offsets (like kafka-consumer-groups.sh).
    Groups(groups::GroupsArgs),
    /// Create, list, describe, alter and delete topics (like kafka-topics.sh).
    Topics(cli::topics::TopicsArgs),
    /// Describe and alter topic and broker configs (like kafka-configs.sh).
    Configs(cli::configs::ConfigsArgs),
    /// Produce lines from stdin or a file as records (like kafka-console-producer.sh).
    Produce(cli::produce::ProduceArgs),
    /// Print records of a topic (like kafka-console-consumer.sh).
    Consume(cli::consume::ConsumeArgs),
    /// List, describe and abort transactions and show the producers of a partition (like kafka-transactions.sh).
    Transactions(transactions::TransactionsArgs),
    /// Elect preferred or unclean partition leaders (like kafka-leader-election.sh).
    LeaderElection(cli::leader_election::LeaderElectionArgs),
    /// Move partitions to new replicas, verify, cancel and list the moves (like kafka-reassign-partitions.sh).
    ReassignPartitions(cli::reassign_partitions::ReassignPartitionsArgs),
}

/// `RUST_LOG` (default `info`), with openraft at `warn` unless named: it logs every vote and
/// replication step at INFO, which would bury the controller's own lines ("became the active
/// controller", fencing, registrations).
fn log_filter() -> tracing_subscriber::EnvFilter {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string());
    let spec = if spec.contains("openraft") {
        spec
    } else {
        format!("{spec},openraft=warn")
    };
    tracing_subscriber::EnvFilter::try_new(spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(log_filter())
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => server::run(args).await,
        Command::Perf(cmd) => perf::run(cmd).await,
        Command::Groups(args) => groups::run(args).await,
        Command::Topics(args) => cli::topics::run(args).await,
        Command::Configs(args) => cli::configs::run(args).await,
        Command::Produce(args) => cli::produce::run(args).await,
        Command::Consume(args) => cli::consume::run(args).await,
        Command::Transactions(args) => transactions::run(args).await,
        Command::LeaderElection(args) => cli::leader_election::run(args).await,
        Command::ReassignPartitions(args) => cli::reassign_partitions::run(args).await,
    }
}
