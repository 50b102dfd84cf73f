//! `fjord leader-election`: preferred or unclean leader elections, modelled
//! on Apache Kafka's `kafka-leader-election.sh` (same flags, JSON file and
//! output lines).
//!
//! One ElectLeaders request goes to the controller the cluster names (a
//! broker forwards it to the active controller). Partitions already led as
//! asked are reported as "Valid replica already elected"; any other
//! per-partition error is printed and makes the command fail, as in Kafka.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, ensure, Context};
use clap::ArgGroup;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest};
use serde::Serialize;

use super::common::{self, ConnectionArgs, OutputFormat};
use super::kafka_client::{self, error_name, topic_name, Cluster};

/// ELECTION_NOT_NEEDED: the partition already has the leader asked for.
const ELECTION_NOT_NEEDED: i16 = 84;

/// Flags of `fjord leader-election`; names follow kafka-leader-election.sh.
#[derive(clap::Args, Debug)]
#[command(group(
    ArgGroup::new("partitions")
        .required(true)
        .multiple(false)
        .args(["topic", "all_topic_partitions", "path_to_json_file"])
))]
pub(crate) struct LeaderElectionArgs {
    /// Broker(s) to bootstrap from, HOST:PORT[,HOST:PORT...]. Default
    /// 127.0.0.1:9092; a bootstrap.servers in --admin.config is used when
    /// this flag is absent.
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub(crate) bootstrap_server: Option<String>,

    /// Client configuration properties file. Only bootstrap.servers and
    /// security.protocol=PLAINTEXT are honoured: this tool speaks the
    /// protocol itself, without TLS or SASL.
    #[arg(
        long = "admin.config",
        visible_alias = "command-config",
        value_name = "FILE"
    )]
    pub(crate) admin_config: Option<PathBuf>,

    /// PREFERRED: move leadership to the first replica when it is in sync;
    /// UNCLEAN: give a leaderless partition any live replica as leader.
    #[arg(long = "election-type", value_enum, ignore_case = true)]
    pub(crate) election_type: ElectionType,

    /// Topic of the partition to elect a leader for (with --partition).
    #[arg(long, value_name = "TOPIC", requires = "partition")]
    pub(crate) topic: Option<String>,

    /// Partition to elect a leader for (with --topic).
    #[arg(long, value_name = "PARTITION", requires = "topic")]
    pub(crate) partition: Option<i32>,

    /// Elect leaders for every partition that needs the election.
    #[arg(long = "all-topic-partitions")]
    pub(crate) all_topic_partitions: bool,

    /// JSON file naming the partitions:
    /// {"partitions": [{"topic": "foo", "partition": 1}, ...]}.
    #[arg(long = "path-to-json-file", value_name = "FILE")]
    pub(crate) path_to_json_file: Option<PathBuf>,

    /// Print Kafka-style text or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) output: OutputFormat,
}

/// Kafka's election types, spelled as kafka-leader-election.sh prints them.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "UPPER")]
pub(crate) enum ElectionType {
    /// The first replica, if it is alive and in sync.
    Preferred,
    /// Any live replica of a leaderless partition, even out of sync.
    Unclean,
}

impl ElectionType {
    fn code(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ElectionType::Preferred => "PREFERRED",
            ElectionType::Unclean => "UNCLEAN",
        }
    }
}

/// One partition, printed as Kafka's `TopicPartition` is: `topic-partition`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct Partition {
    pub(crate) topic: String,
    pub(crate) partition: i32,
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A partition whose election failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Failure {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) error: String,
    pub(crate) message: Option<String>,
}

/// What the cluster answered, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Outcome {
    pub(crate) election_type: &'static str,
    pub(crate) succeeded: Vec<Partition>,
    pub(crate) not_needed: Vec<Partition>,
    pub(crate) failed: Vec<Failure>,
}

/// Reads Kafka's election JSON: `{"partitions": [{"topic": T, "partition": P}]}`,
/// refusing duplicates as Kafka does.
fn parse_json(text: &str) -> anyhow::Result<Vec<Partition>> {
    let value: serde_json::Value =
        serde_json::from_str(text).context("the election data is not valid JSON")?;
    let Some(list) = value.get("partitions") else {
        bail!("Replica election data is missing \"partitions\" field");
    };
    let list = list
        .as_array()
        .context("\"partitions\" must be a JSON array")?;
    let mut partitions = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let (topic, partition) = super::common::json_topic_partition(entry, i)?;
        partitions.push(Partition { topic, partition });
    }
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<String> = partitions
        .iter()
        .filter(|p| !seen.insert((*p).clone()))
        .map(ToString::to_string)
        .collect();
    ensure!(
        duplicates.is_empty(),
        "Replica election data contains duplicate partitions: {}",
        duplicates.into_iter().collect::<Vec<_>>().join(",")
    );
    Ok(partitions)
}

/// The partitions named on the command line, or `None` for all.
fn requested(args: &LeaderElectionArgs) -> anyhow::Result<Option<Vec<Partition>>> {
    if let Some(path) = &args.path_to_json_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return parse_json(&text).map(Some);
    }
    match (&args.topic, args.partition) {
        (Some(topic), Some(partition)) => Ok(Some(vec![Partition {
            topic: topic.clone(),
            partition,
        }])),
        _ => Ok(None),
    }
}

/// The request for `partitions` (`None`: every partition).
fn request(election_type: ElectionType, partitions: Option<&[Partition]>) -> ElectLeadersRequest {
    let mut request = ElectLeadersRequest::default();
    request.election_type = election_type.code();
    request.timeout_ms = i32::try_from(common::ADMIN_TIMEOUT.as_millis()).unwrap_or(i32::MAX);
    request.topic_partitions = partitions.map(|partitions| {
        let mut by_topic: Vec<TopicPartitions> = Vec::new();
        for p in partitions {
            match by_topic.iter_mut().find(|t| t.topic.as_str() == p.topic) {
                Some(t) => t.partitions.push(p.partition),
                None => {
                    let mut t = TopicPartitions::default();
                    t.topic = topic_name(&p.topic);
                    t.partitions = vec![p.partition];
                    by_topic.push(t);
                }
            }
        }
        by_topic
    });
    request
}

/// Sorts the per-partition results into Kafka's three groups.
fn outcome(
    election_type: ElectionType,
    results: &[kafka_protocol::messages::elect_leaders_response::ReplicaElectionResult],
) -> Outcome {
    let mut out = Outcome {
        election_type: election_type.name(),
        ..Outcome::default()
    };
    for topic in results {
        for p in &topic.partition_result {
            let partition = Partition {
                topic: topic.topic.to_string(),
                partition: p.partition_id,
            };
            match p.error_code {
                0 => out.succeeded.push(partition),
                ELECTION_NOT_NEEDED => out.not_needed.push(partition),
                code => out.failed.push(Failure {
                    topic: partition.topic,
                    partition: partition.partition,
                    error: error_name(code),
                    message: p.error_message.as_ref().map(|m| m.to_string()),
                }),
            }
        }
    }
    out.succeeded.sort();
    out.not_needed.sort();
    out.failed
        .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    out
}

fn join(partitions: &[Partition]) -> String {
    partitions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Kafka's output lines.
fn render(outcome: &Outcome) -> String {
    let mut lines = Vec::new();
    if !outcome.succeeded.is_empty() {
        lines.push(format!(
            "Successfully completed leader election ({}) for partitions {}",
            outcome.election_type,
            join(&outcome.succeeded)
        ));
    }
    if !outcome.not_needed.is_empty() {
        lines.push(format!(
            "Valid replica already elected for partitions {}",
            join(&outcome.not_needed)
        ));
    }
    for f in &outcome.failed {
        let message = f
            .message
            .as_ref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        lines.push(format!(
            "Error completing leader election ({}) for partition: {}-{}: {}{message}",
            outcome.election_type, f.topic, f.partition, f.error
        ));
    }
    lines.join("\n")
}

/// Runs `fjord leader-election`.
pub(crate) async fn run(args: LeaderElectionArgs) -> anyhow::Result<()> {
    let conn = ConnectionArgs {
        bootstrap_server: args.bootstrap_server.clone(),
        command_config: args.admin_config.clone(),
    };
    let bootstrap = kafka_client::bootstrap(&conn, "fjord leader-election")?;
    let partitions = requested(&args)?;
    let election_type = args.election_type;
    let outcome = common::blocking(move || -> anyhow::Result<Outcome> {
        let mut cluster = Cluster::new(&bootstrap, "fjord-leader-election")?;
        let request = request(election_type, partitions.as_deref());
        let response = cluster
            .send_to_controller(ApiKey::ElectLeaders, 0..=2, &request)
            .context("electing leaders")?;
        match response.error_code {
            0 => {}
            31 => bail!("Not authorized to perform leader election"),
            code => bail!("electing leaders: {}", error_name(code)),
        }
        Ok(outcome(election_type, &response.replica_election_results))
    })?;
    let text = if args.output == OutputFormat::Json {
        serde_json::to_string_pretty(&outcome)?
    } else {
        render(&outcome)
    };
    if !text.is_empty() {
        println!("{text}");
    }
    ensure!(
        outcome.failed.is_empty(),
        "{} replica(s) could not be elected",
        outcome.failed.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::elect_leaders_response::{
        PartitionResult, ReplicaElectionResult,
    };
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn p(topic: &str, partition: i32) -> Partition {
        Partition {
            topic: topic.into(),
            partition,
        }
    }

    #[test]
    fn json_files_follow_kafka() {
        let parsed = parse_json(
            r#"{"partitions": [{"topic": "foo", "partition": 1}, {"topic": "bar", "partition": 0}]}"#,
        )
        .unwrap();
        assert_eq!(parsed, vec![p("foo", 1), p("bar", 0)]);
        let err = parse_json(r#"{"version": 1}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Replica election data is missing \"partitions\" field"
        );
        let err = parse_json(
            r#"{"partitions": [{"topic": "a", "partition": 1}, {"topic": "a", "partition": 1}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Replica election data contains duplicate partitions: a-1"
        );
        assert!(parse_json(r#"{"partitions": [{"topic": "a"}]}"#).is_err());
        assert!(parse_json("not json").is_err());
    }

    #[test]
    fn requests_group_partitions_by_topic() {
        let r = request(
            ElectionType::Unclean,
            Some(&[p("a", 1), p("b", 0), p("a", 0)]),
        );
        assert_eq!(r.election_type, 1);
        let topics = r.topic_partitions.unwrap();
        assert_eq!(topics.len(), 2);
        assert_eq!(topics[0].topic.as_str(), "a");
        assert_eq!(topics[0].partitions, vec![1, 0]);
        assert!(request(ElectionType::Preferred, None)
            .topic_partitions
            .is_none());
    }

    #[test]
    fn output_lines_follow_kafka() {
        let result = |partition_id, error_code: i16, message: Option<&str>| {
            let mut r = PartitionResult::default();
            r.partition_id = partition_id;
            r.error_code = error_code;
            r.error_message = message.map(|m| StrBytes::from_string(m.to_string()));
            r
        };
        let mut t = ReplicaElectionResult::default();
        t.topic = topic_name("t");
        t.partition_result = vec![
            result(2, 0, None),
            result(
                0,
                84,
                Some("Leader election not needed for topic partition."),
            ),
            result(1, 0, None),
            result(3, 80, Some("The preferred leader was not available.")),
        ];
        let outcome = outcome(ElectionType::Preferred, &[t]);
        assert_eq!(
            render(&outcome),
            "Successfully completed leader election (PREFERRED) for partitions t-1, t-2\n\
             Valid replica already elected for partitions t-0\n\
             Error completing leader election (PREFERRED) for partition: t-3: \
             PREFERRED_LEADER_NOT_AVAILABLE: The preferred leader was not available."
        );
        assert_eq!(render(&Outcome::default()), "");
    }
}
