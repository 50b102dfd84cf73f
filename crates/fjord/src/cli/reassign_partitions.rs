//! `fjord reassign-partitions`: move partitions to new replica sets, follow
//! and cancel the moves, modelled on Apache Kafka's
//! `kafka-reassign-partitions.sh` (same actions, flags, JSON file and output
//! lines).
//!
//! | action       | requests                                                      |
//! |--------------|---------------------------------------------------------------|
//! | `--generate` | Metadata (a proposal only: nothing is changed)                |
//! | `--execute`  | ListPartitionReassignments, Metadata, AlterPartitionReassignments |
//! | `--verify`   | ListPartitionReassignments, Metadata                          |
//! | `--cancel`   | ListPartitionReassignments, AlterPartitionReassignments (cancel) |
//! | `--list`     | ListPartitionReassignments                                    |
//!
//! The reassignment JSON is Kafka's:
//! `{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2,3]}]}`.
//! Moving replicas between log directories (`log_dirs` other than `"any"`)
//! and replication throttles are not offered: the cluster has neither.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{bail, ensure, Context};
use clap::ArgGroup;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ApiKey, BrokerId, ListPartitionReassignmentsRequest,
};
use serde::Serialize;

use fjord_controller::placement::{place_replicas, PlacementBroker, PlacementStart};

use super::common::{self, ConnectionArgs, OutputFormat};
use super::kafka_client::{self, error_name, topic_name, Cluster};
use super::leader_election::Partition;

/// The only version of the reassignment JSON.
const JSON_VERSION: i64 = 1;

/// Kafka's `log_dirs` entry for "wherever the broker likes".
const ANY_LOG_DIR: &str = "any";

/// Kafka's refusal to start while other reassignments run, without --additional.
const EXISTING_REASSIGNMENTS: &str = "Cannot execute because there is an existing partition \
     assignment.  Use --additional to override this and create a new partition assignment in \
     addition to the existing one. The --additional flag can also be used to change the \
     throttle by resubmitting the current reassignment.";

/// Flags of `fjord reassign-partitions`; names follow kafka-reassign-partitions.sh.
#[derive(clap::Args, Debug)]
#[command(group(
    ArgGroup::new("action")
        .required(true)
        .multiple(false)
        .args(["generate", "execute", "verify", "cancel", "list"])
))]
pub(crate) struct ReassignPartitionsArgs {
    /// Connection flags. Only bootstrap.servers and
    /// security.protocol=PLAINTEXT are honoured from --command-config: this
    /// tool speaks the protocol itself, without TLS or SASL.
    #[command(flatten)]
    pub(crate) conn: ConnectionArgs,

    /// Propose a reassignment of the topics in --topics-to-move-json-file onto the
    /// brokers of --broker-list (Kafka's replica placement); nothing is changed.
    #[arg(long, requires_all = ["topics_to_move_json_file", "broker_list"])]
    pub(crate) generate: bool,

    /// Start the reassignment given by --reassignment-json-file.
    #[arg(long)]
    pub(crate) execute: bool,

    /// Report whether the reassignment given by --reassignment-json-file
    /// completed.
    #[arg(long)]
    pub(crate) verify: bool,

    /// Cancel the active reassignments of the partitions in
    /// --reassignment-json-file, restoring their replica sets.
    #[arg(long)]
    pub(crate) cancel: bool,

    /// List every active partition reassignment.
    #[arg(long)]
    pub(crate) list: bool,

    /// The reassignment JSON:
    /// {"version":1,"partitions":[{"topic":"foo","partition":1,"replicas":[1,2,3]}]}.
    #[arg(
        long = "reassignment-json-file",
        value_name = "FILE",
        required_unless_present_any = ["list", "generate"],
        conflicts_with_all = ["list", "generate"]
    )]
    pub(crate) reassignment_json_file: Option<PathBuf>,

    /// With --generate, the topics to move:
    /// {"version":1,"topics":[{"topic":"foo"},{"topic":"bar"}]}.
    #[arg(
        long = "topics-to-move-json-file",
        value_name = "FILE",
        requires = "generate"
    )]
    pub(crate) topics_to_move_json_file: Option<PathBuf>,

    /// With --generate, the brokers to place the replicas on, as "1,2,3".
    #[arg(long = "broker-list", value_name = "IDS", requires = "generate")]
    pub(crate) broker_list: Option<String>,

    /// With --generate, place replicas without regard to the brokers' racks.
    #[arg(long = "disable-rack-aware", requires = "generate")]
    pub(crate) disable_rack_aware: bool,

    /// With --execute: start even though other reassignments are running.
    #[arg(long, requires = "execute")]
    pub(crate) additional: bool,

    /// Print Kafka-style text or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) output: OutputFormat,
}

/// One partition's target replicas from the JSON file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Target {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) replicas: Vec<i32>,
}

impl Target {
    fn key(&self) -> Partition {
        Partition {
            topic: self.topic.clone(),
            partition: self.partition,
        }
    }
}

/// One active reassignment, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Ongoing {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) replicas: Vec<i32>,
    pub(crate) adding: Vec<i32>,
    pub(crate) removing: Vec<i32>,
}

/// Where one partition of the file stands, for --verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub(crate) enum Status {
    /// Not moving, on the target replicas.
    Completed,
    /// Still moving.
    InProgress,
    /// Not moving, on other replicas (an empty list: no such partition).
    Differs { current: Vec<i32> },
}

/// A --verify line's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Verified {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) target: Vec<i32>,
    #[serde(flatten)]
    pub(crate) status: Status,
}

/// Kafka's reassignment JSON, as written for rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct AssignmentJson {
    version: i64,
    partitions: Vec<AssignmentEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct AssignmentEntry {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
    log_dirs: Vec<String>,
}

/// Refuses a tool JSON of a version other than 1 (a missing version means 1).
fn check_json_version(value: &serde_json::Value) -> anyhow::Result<()> {
    if let Some(version) = value.get("version") {
        let version = version.as_i64().context("\"version\" must be an integer")?;
        ensure!(
            version == JSON_VERSION,
            "Not supported version field value {version}"
        );
    }
    Ok(())
}

/// Reads Kafka's reassignment JSON (version 1; a missing version means 1).
pub(crate) fn parse_json(text: &str) -> anyhow::Result<Vec<Target>> {
    let value: serde_json::Value =
        serde_json::from_str(text).context("the reassignment data is not valid JSON")?;
    ensure!(
        value.is_object(),
        "the reassignment data must be a JSON object"
    );
    check_json_version(&value)?;
    let Some(list) = value.get("partitions") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .context("\"partitions\" must be a JSON array")?;
    let mut targets = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let (topic, partition) = super::common::json_topic_partition(entry, i)?;
        let replicas = entry
            .get("replicas")
            .and_then(|r| r.as_array())
            .with_context(|| format!("partitions[{i}] has no \"replicas\" array"))?
            .iter()
            .map(|r| r.as_i64().and_then(|r| i32::try_from(r).ok()))
            .collect::<Option<Vec<i32>>>()
            .with_context(|| format!("partitions[{i}].replicas must hold broker ids"))?;
        if let Some(dirs) = entry.get("log_dirs") {
            let dirs = dirs
                .as_array()
                .and_then(|d| d.iter().map(|d| d.as_str()).collect::<Option<Vec<_>>>())
                .with_context(|| format!("partitions[{i}].log_dirs must hold strings"))?;
            ensure!(
                dirs.len() == replicas.len(),
                "Size of replicas list {replicas:?} is different from size of log dirs list \
                 {dirs:?} for partition {topic}-{partition}"
            );
            ensure!(
                dirs.iter().all(|d| *d == ANY_LOG_DIR),
                "partition {topic}-{partition}: moving replicas between log directories is not \
                 supported (log_dirs must be \"any\")"
            );
        }
        targets.push(Target {
            topic,
            partition,
            replicas,
        });
    }
    Ok(targets)
}

/// Kafka's checks before --execute: something to do, no empty replica list, no
/// partition named twice, no broker twice in a list.
fn check_execute(targets: &[Target]) -> anyhow::Result<()> {
    ensure!(
        !targets.is_empty(),
        "Partition reassignment list cannot be empty"
    );
    ensure!(
        targets.iter().all(|t| !t.replicas.is_empty()),
        "Partition replica list cannot be empty"
    );
    let mut seen = BTreeSet::new();
    let twice: BTreeSet<String> = targets
        .iter()
        .filter(|t| !seen.insert(t.key()))
        .map(|t| t.key().to_string())
        .collect();
    ensure!(
        twice.is_empty(),
        "Partition reassignment contains duplicate topic partitions: {}",
        twice.into_iter().collect::<Vec<_>>().join(",")
    );
    let repeated: Vec<String> = targets
        .iter()
        .filter_map(|t| {
            let mut seen = BTreeSet::new();
            let dups: BTreeSet<i32> = t
                .replicas
                .iter()
                .copied()
                .filter(|r| !seen.insert(*r))
                .collect();
            (!dups.is_empty()).then(|| {
                format!(
                    "{} contains multiple entries for {}",
                    t.key(),
                    dups.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                )
            })
        })
        .collect();
    ensure!(
        repeated.is_empty(),
        "Partition replica lists may not contain duplicate entries: {}",
        repeated.join(". ")
    );
    Ok(())
}

fn ids(list: &[i32]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// --verify's judgement of each target, sorted by partition.
fn verify_states(
    targets: &[Target],
    ongoing: &BTreeMap<Partition, Ongoing>,
    current: &BTreeMap<Partition, Vec<i32>>,
) -> Vec<Verified> {
    let mut out: Vec<Verified> = targets
        .iter()
        .map(|t| {
            let status = if ongoing.contains_key(&t.key()) {
                Status::InProgress
            } else {
                let now = current.get(&t.key()).cloned().unwrap_or_default();
                if now == t.replicas {
                    Status::Completed
                } else {
                    Status::Differs { current: now }
                }
            };
            Verified {
                topic: t.topic.clone(),
                partition: t.partition,
                target: t.replicas.clone(),
                status,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    out
}

/// Kafka's --verify lines.
fn render_verify(states: &[Verified]) -> String {
    let mut lines = vec!["Status of partition reassignment:".to_string()];
    for s in states {
        let partition = format!("{}-{}", s.topic, s.partition);
        lines.push(match &s.status {
            Status::Completed => format!("Reassignment of partition {partition} is completed."),
            Status::InProgress => {
                format!("Reassignment of partition {partition} is still in progress.")
            }
            Status::Differs { current } => format!(
                "There is no active reassignment of partition {partition}, but replica set is \
                 {} rather than {}.",
                ids(current),
                ids(&s.target)
            ),
        });
    }
    lines.join("\n")
}

/// Kafka's --list text.
fn render_list(ongoing: &[Ongoing]) -> String {
    if ongoing.is_empty() {
        return "No partition reassignments found.".to_string();
    }
    let mut lines = vec!["Current partition reassignments:".to_string()];
    for o in ongoing {
        let mut line = format!(
            "{}-{}: replicas: {}.",
            o.topic,
            o.partition,
            ids(&o.replicas)
        );
        if !o.adding.is_empty() {
            line.push_str(&format!(" adding: {}.", ids(&o.adding)));
        }
        if !o.removing.is_empty() {
            line.push_str(&format!(" removing: {}.", ids(&o.removing)));
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// The current assignment of `partitions` as Kafka's JSON, for rollback.
fn assignment_json(current: &BTreeMap<Partition, Vec<i32>>) -> AssignmentJson {
    AssignmentJson {
        version: JSON_VERSION,
        partitions: current
            .iter()
            .map(|(p, replicas)| AssignmentEntry {
                topic: p.topic.clone(),
                partition: p.partition,
                replicas: replicas.clone(),
                log_dirs: vec![ANY_LOG_DIR.to_string(); replicas.len()],
            })
            .collect(),
    }
}

/// Reads Kafka's topics-to-move JSON (version 1; a missing version means 1), refusing a
/// topic named twice.
fn parse_topics_json(text: &str) -> anyhow::Result<Vec<String>> {
    let value: serde_json::Value =
        serde_json::from_str(text).context("the topics to move are not valid JSON")?;
    ensure!(
        value.is_object(),
        "the topics to move must be a JSON object"
    );
    check_json_version(&value)?;
    let mut topics = Vec::new();
    if let Some(list) = value.get("topics") {
        let list = list.as_array().context("\"topics\" must be a JSON array")?;
        for (i, entry) in list.iter().enumerate() {
            let topic = entry
                .get("topic")
                .and_then(|t| t.as_str())
                .with_context(|| format!("topics[{i}] has no string \"topic\""))?;
            topics.push(topic.to_string());
        }
    }
    let mut seen = BTreeSet::new();
    let twice: BTreeSet<&String> = topics.iter().filter(|t| !seen.insert(*t)).collect();
    ensure!(
        twice.is_empty(),
        "List of topics to reassign contains duplicate entries: [{}]",
        twice
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(topics)
}

/// Parses --broker-list ("1,2,3"), refusing a broker named twice.
fn parse_broker_list(text: &str) -> anyhow::Result<Vec<i32>> {
    let brokers = text
        .split(',')
        .map(|b| {
            b.trim()
                .parse::<i32>()
                .with_context(|| format!("--broker-list: {b:?} is not a broker id"))
        })
        .collect::<anyhow::Result<Vec<i32>>>()?;
    let mut seen = BTreeSet::new();
    let twice: BTreeSet<i32> = brokers
        .iter()
        .copied()
        .filter(|b| !seen.insert(*b))
        .collect();
    ensure!(
        twice.is_empty(),
        "Broker list contains duplicate entries: [{}]",
        ids(&twice.into_iter().collect::<Vec<_>>()).replace(',', ", ")
    );
    Ok(brokers)
}

/// Kafka's proposal for --generate: each topic keeps its partition count and replication
/// factor (that of its first partition) and gets Kafka's replica placement over `brokers`,
/// rack-aware when every one of them has a rack.
fn propose(
    current: &BTreeMap<Partition, Vec<i32>>,
    brokers: &[PlacementBroker],
    start: impl Fn(&str) -> PlacementStart,
) -> anyhow::Result<BTreeMap<Partition, Vec<i32>>> {
    let mut by_topic: BTreeMap<&str, Vec<&Partition>> = BTreeMap::new();
    for p in current.keys() {
        by_topic.entry(&p.topic).or_default().push(p);
    }
    let mut proposed = BTreeMap::new();
    for (topic, partitions) in by_topic {
        let replication_factor = current[partitions[0]].len();
        let count = i32::try_from(partitions.len()).context("too many partitions")?;
        let rf = i16::try_from(replication_factor).context("replication factor too large")?;
        let placed = place_replicas(brokers, 0, count, rf, start(topic)).map_err(|_| {
            anyhow::anyhow!(
                "Replication factor: {replication_factor} larger than available brokers: {}.",
                brokers.len()
            )
        })?;
        for (partition, replicas) in (0..).zip(placed) {
            proposed.insert(
                Partition {
                    topic: topic.to_string(),
                    partition,
                },
                replicas,
            );
        }
    }
    Ok(proposed)
}

/// --generate: the current assignment of the topics and Kafka's proposal.
fn generate(
    cluster: &mut Cluster,
    topics: &[String],
    broker_list: &[i32],
    rack_aware: bool,
    json: bool,
) -> anyhow::Result<String> {
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let metadata = cluster.metadata(Some(&names))?;
    let mut current = BTreeMap::new();
    for t in &metadata.topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        ensure!(
            t.error_code == 0,
            "topic {name}: {}",
            error_name(t.error_code)
        );
        for p in &t.partitions {
            current.insert(
                Partition {
                    topic: name.clone(),
                    partition: p.partition_index,
                },
                p.replica_nodes.iter().map(|r| r.0).collect::<Vec<i32>>(),
            );
        }
    }
    let brokers: Vec<PlacementBroker> = metadata
        .brokers
        .iter()
        .filter(|b| broker_list.contains(&b.node_id.0))
        .map(|b| PlacementBroker {
            broker_id: b.node_id.0,
            rack: if rack_aware {
                b.rack.as_ref().map(|r| r.to_string())
            } else {
                None
            },
        })
        .collect();
    let racked = brokers.iter().filter(|b| b.rack.is_some()).count();
    ensure!(
        racked == 0 || racked == brokers.len(),
        "Not all brokers have rack information. Add --disable-rack-aware in command line to \
         make replica assignment without rack information."
    );
    // Kafka starts each topic's round-robin at a random broker.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let start = |topic: &str| {
        let mut hash = seed;
        for b in topic.bytes() {
            hash = hash.wrapping_mul(31).wrapping_add(u128::from(b));
        }
        PlacementStart {
            start_index: (hash % 1_000_003) as usize,
            replica_shift: ((hash >> 64) % 1_000_003) as usize,
        }
    };
    let proposed = propose(&current, &brokers, start)?;
    let current = assignment_json(&current);
    let proposed = assignment_json(&proposed);
    if json {
        #[derive(Serialize)]
        struct Generated<'a> {
            current_assignment: &'a AssignmentJson,
            proposed_assignment: &'a AssignmentJson,
        }
        return Ok(serde_json::to_string_pretty(&Generated {
            current_assignment: &current,
            proposed_assignment: &proposed,
        })?);
    }
    Ok(format!(
        "Current partition replica assignment\n{}\n\nProposed partition reassignment \
         configuration\n{}",
        serde_json::to_string(&current)?,
        serde_json::to_string(&proposed)?
    ))
}

/// Active reassignments (of `partitions`, or all), by partition.
fn list_reassignments(
    cluster: &mut Cluster,
    partitions: Option<&[Partition]>,
) -> anyhow::Result<BTreeMap<Partition, Ongoing>> {
    let mut request = ListPartitionReassignmentsRequest::default();
    request.timeout_ms = i32::try_from(common::ADMIN_TIMEOUT.as_millis()).unwrap_or(i32::MAX);
    request.topics = partitions.map(|partitions| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for p in partitions {
            by_topic.entry(&p.topic).or_default().push(p.partition);
        }
        by_topic
            .into_iter()
            .map(|(topic, indexes)| {
                let mut t = ListPartitionReassignmentsTopics::default();
                t.name = topic_name(topic);
                t.partition_indexes = indexes;
                t
            })
            .collect()
    });
    let response = cluster
        .send_to_controller(ApiKey::ListPartitionReassignments, 0..=0, &request)
        .context("listing partition reassignments")?;
    if response.error_code != 0 {
        let detail = response
            .error_message
            .as_ref()
            .map(|m| format!(": {}", m.as_str()))
            .unwrap_or_default();
        bail!(
            "listing partition reassignments: {}{detail}",
            error_name(response.error_code)
        );
    }
    let brokers = |list: &[BrokerId]| list.iter().map(|b| b.0).collect::<Vec<i32>>();
    let mut out = BTreeMap::new();
    for t in &response.topics {
        for p in &t.partitions {
            let o = Ongoing {
                topic: t.name.to_string(),
                partition: p.partition_index,
                replicas: brokers(&p.replicas),
                adding: brokers(&p.adding_replicas),
                removing: brokers(&p.removing_replicas),
            };
            out.insert(
                Partition {
                    topic: o.topic.clone(),
                    partition: o.partition,
                },
                o,
            );
        }
    }
    Ok(out)
}

/// Every ongoing reassignment, by (topic, partition), for `fjord topics --describe`.
pub(crate) fn ongoing_reassignments(
    bootstrap: &str,
) -> anyhow::Result<BTreeMap<(String, i32), Ongoing>> {
    let mut cluster = Cluster::new(bootstrap, "fjord-topics")?;
    Ok(list_reassignments(&mut cluster, None)?
        .into_iter()
        .map(|(p, o)| ((p.topic, p.partition), o))
        .collect())
}

/// The replicas of every partition of the topics of `targets` that exists.
fn current_replicas(
    cluster: &mut Cluster,
    targets: &[Target],
) -> anyhow::Result<BTreeMap<Partition, Vec<i32>>> {
    let topics: BTreeSet<&str> = targets.iter().map(|t| t.topic.as_str()).collect();
    let topics: Vec<&str> = topics.into_iter().collect();
    let metadata = cluster.metadata(Some(&topics))?;
    let mut out = BTreeMap::new();
    for t in &metadata.topics {
        if t.error_code != 0 {
            continue;
        }
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        for p in &t.partitions {
            out.insert(
                Partition {
                    topic: name.clone(),
                    partition: p.partition_index,
                },
                p.replica_nodes.iter().map(|r| r.0).collect(),
            );
        }
    }
    Ok(out)
}

/// AlterPartitionReassignments for `changes` (`None` replicas: cancel);
/// returns the partitions refused, with the reason.
fn alter(
    cluster: &mut Cluster,
    changes: &[(Partition, Option<Vec<i32>>)],
) -> anyhow::Result<Vec<(Partition, String)>> {
    let mut topics: Vec<ReassignableTopic> = Vec::new();
    for (p, replicas) in changes {
        let mut partition = ReassignablePartition::default();
        partition.partition_index = p.partition;
        partition.replicas = replicas
            .as_ref()
            .map(|r| r.iter().copied().map(BrokerId).collect());
        match topics.iter_mut().find(|t| t.name.as_str() == p.topic) {
            Some(t) => t.partitions.push(partition),
            None => {
                let mut t = ReassignableTopic::default();
                t.name = topic_name(&p.topic);
                t.partitions = vec![partition];
                topics.push(t);
            }
        }
    }
    let mut request = AlterPartitionReassignmentsRequest::default();
    request.timeout_ms = i32::try_from(common::ADMIN_TIMEOUT.as_millis()).unwrap_or(i32::MAX);
    request.topics = topics;
    let response = cluster
        .send_to_controller(ApiKey::AlterPartitionReassignments, 0..=0, &request)
        .context("altering partition reassignments")?;
    let reason = |code: i16, message: Option<&str>| match message {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => error_name(code),
    };
    if response.error_code != 0 {
        bail!(
            "altering partition reassignments: {}",
            reason(
                response.error_code,
                response.error_message.as_ref().map(|m| m.as_str())
            )
        );
    }
    let mut refused = Vec::new();
    for t in &response.responses {
        for p in &t.partitions {
            if p.error_code != 0 {
                refused.push((
                    Partition {
                        topic: t.name.to_string(),
                        partition: p.partition_index,
                    },
                    reason(p.error_code, p.error_message.as_ref().map(|m| m.as_str())),
                ));
            }
        }
    }
    refused.sort();
    Ok(refused)
}

fn joined(partitions: &[Partition], separator: &str) -> String {
    partitions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(separator)
}

/// --execute: Kafka's checks, the current assignment for rollback, then the
/// request.
fn execute(
    cluster: &mut Cluster,
    targets: &[Target],
    additional: bool,
    json: bool,
) -> anyhow::Result<String> {
    check_execute(targets)?;
    ensure!(
        additional || list_reassignments(cluster, None)?.is_empty(),
        EXISTING_REASSIGNMENTS
    );
    let brokers: BTreeSet<i32> = cluster.broker_ids()?.into_iter().collect();
    if let Some(unknown) = targets
        .iter()
        .flat_map(|t| t.replicas.iter())
        .find(|b| !brokers.contains(b))
    {
        bail!("Unknown broker id {unknown}");
    }
    let all = current_replicas(cluster, targets)?;
    let wanted: BTreeSet<Partition> = targets.iter().map(Target::key).collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|p| !all.contains_key(*p))
        .map(ToString::to_string)
        .collect();
    ensure!(
        missing.is_empty(),
        "Unable to find partition: {}",
        missing.join(", ")
    );
    let current: BTreeMap<Partition, Vec<i32>> = all
        .into_iter()
        .filter(|(p, _)| wanted.contains(p))
        .collect();
    let rollback = assignment_json(&current);
    if !json {
        // Printed before the request, as Kafka does, so a rollback is possible whatever
        // happens next.
        println!("{}", rollback_text(&rollback)?);
    }
    let changes: Vec<(Partition, Option<Vec<i32>>)> = targets
        .iter()
        .map(|t| (t.key(), Some(t.replicas.clone())))
        .collect();
    let refused = alter(cluster, &changes)?;
    if !refused.is_empty() {
        let lines: Vec<String> = refused
            .iter()
            .map(|(p, reason)| format!("{p}: {reason}"))
            .collect();
        bail!("Error reassigning partition(s):\n{}", lines.join("\n"));
    }
    let started: Vec<Partition> = wanted.into_iter().collect();
    if json {
        #[derive(Serialize)]
        struct Executed<'a> {
            current_assignment: &'a AssignmentJson,
            started: &'a [Partition],
        }
        return Ok(serde_json::to_string_pretty(&Executed {
            current_assignment: &rollback,
            started: &started,
        })?);
    }
    Ok(format!(
        "Successfully started partition reassignment{} for {}",
        if started.len() == 1 { "" } else { "s" },
        joined(&started, ",")
    ))
}

/// Kafka's rollback paragraph.
fn rollback_text(rollback: &AssignmentJson) -> anyhow::Result<String> {
    Ok(format!(
        "Current partition replica assignment\n\n{}\n\nSave this to use as the \
         --reassignment-json-file option during rollback",
        serde_json::to_string(rollback)?
    ))
}

/// --cancel: cancels the partitions of the file that are moving.
fn cancel(cluster: &mut Cluster, targets: &[Target], json: bool) -> anyhow::Result<String> {
    let wanted: Vec<Partition> = targets
        .iter()
        .map(Target::key)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let moving: Vec<Partition> = list_reassignments(cluster, Some(&wanted))?
        .into_keys()
        .filter(|p| wanted.contains(p))
        .collect();
    if !moving.is_empty() {
        let changes: Vec<(Partition, Option<Vec<i32>>)> =
            moving.iter().map(|p| (p.clone(), None)).collect();
        let refused = alter(cluster, &changes)?;
        if !refused.is_empty() {
            let lines: Vec<String> = refused
                .iter()
                .map(|(p, reason)| format!("{p}: {reason}"))
                .collect();
            bail!(
                "Error cancelling partition reassignment{} for:\n{}",
                if refused.len() == 1 { "" } else { "s" },
                lines.join("\n")
            );
        }
    }
    if json {
        #[derive(Serialize)]
        struct Cancelled<'a> {
            cancelled: &'a [Partition],
        }
        return Ok(serde_json::to_string_pretty(&Cancelled {
            cancelled: &moving,
        })?);
    }
    Ok(if moving.is_empty() {
        "None of the specified partition reassignments are active.".to_string()
    } else {
        format!(
            "Successfully cancelled partition reassignment{} for: {}",
            if moving.len() == 1 { "" } else { "s" },
            joined(&moving, ",")
        )
    })
}

/// Runs `fjord reassign-partitions`.
pub(crate) async fn run(args: ReassignPartitionsArgs) -> anyhow::Result<()> {
    let bootstrap = kafka_client::bootstrap(&args.conn, "fjord reassign-partitions")?;
    let targets = match &args.reassignment_json_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_json(&text).with_context(|| format!("reading {}", path.display()))?
        }
        None => Vec::new(),
    };
    let to_move = match &args.topics_to_move_json_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_topics_json(&text).with_context(|| format!("reading {}", path.display()))?
        }
        None => Vec::new(),
    };
    let broker_list = args
        .broker_list
        .as_deref()
        .map(parse_broker_list)
        .transpose()?
        .unwrap_or_default();
    let json = args.output == OutputFormat::Json;
    let output = common::blocking(move || -> anyhow::Result<String> {
        let mut cluster = Cluster::new(&bootstrap, "fjord-reassign-partitions")?;
        if args.generate {
            return generate(
                &mut cluster,
                &to_move,
                &broker_list,
                !args.disable_rack_aware,
                json,
            );
        }
        if args.list {
            let ongoing: Vec<Ongoing> = list_reassignments(&mut cluster, None)?
                .into_values()
                .collect();
            return Ok(if json {
                serde_json::to_string_pretty(&ongoing)?
            } else {
                render_list(&ongoing)
            });
        }
        if args.verify {
            let ongoing = list_reassignments(&mut cluster, None)?;
            let current = current_replicas(&mut cluster, &targets)?;
            let states = verify_states(&targets, &ongoing, &current);
            return Ok(if json {
                serde_json::to_string_pretty(&states)?
            } else {
                render_verify(&states)
            });
        }
        if args.cancel {
            return cancel(&mut cluster, &targets, json);
        }
        execute(&mut cluster, &targets, args.additional, json)
    })?;
    println!("{output}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(topic: &str, partition: i32, replicas: &[i32]) -> Target {
        Target {
            topic: topic.into(),
            partition,
            replicas: replicas.to_vec(),
        }
    }

    fn p(topic: &str, partition: i32) -> Partition {
        Partition {
            topic: topic.into(),
            partition,
        }
    }

    #[test]
    fn json_files_follow_kafka() {
        let parsed = parse_json(
            r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2,3]},
                {"topic":"t","partition":1,"replicas":[2],"log_dirs":["any"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            parsed,
            vec![target("t", 0, &[1, 2, 3]), target("t", 1, &[2])]
        );
        assert_eq!(parse_json(r#"{"version":1}"#).unwrap(), vec![]);
        let err = parse_json(r#"{"version":2,"partitions":[]}"#).unwrap_err();
        assert_eq!(err.to_string(), "Not supported version field value 2");
        let err = parse_json(
            r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1,2],"log_dirs":["any"]}]}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("Size of replicas list [1, 2]"),
            "{err}"
        );
        let err = parse_json(
            r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1],"log_dirs":["/data"]}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("log directories"), "{err}");
        assert!(parse_json(r#"{"partitions":[{"topic":"t","replicas":[1]}]}"#).is_err());
        assert!(
            parse_json(r#"{"partitions":[{"topic":"t","partition":0,"replicas":["a"]}]}"#).is_err()
        );
        assert!(parse_json("[]").is_err());
    }

    #[test]
    fn generate_inputs_follow_kafka() {
        assert_eq!(
            parse_topics_json(r#"{"version":1,"topics":[{"topic":"a"},{"topic":"b"}]}"#).unwrap(),
            vec!["a".to_string(), "b".to_string()]
        );
        assert_eq!(
            parse_topics_json(r#"{"topics":[{"topic":"a"},{"topic":"a"}]}"#)
                .unwrap_err()
                .to_string(),
            "List of topics to reassign contains duplicate entries: [a]"
        );
        assert_eq!(
            parse_topics_json(r#"{"version":2}"#)
                .unwrap_err()
                .to_string(),
            "Not supported version field value 2"
        );
        assert_eq!(parse_broker_list("1, 2,3").unwrap(), vec![1, 2, 3]);
        assert_eq!(
            parse_broker_list("1,2,1").unwrap_err().to_string(),
            "Broker list contains duplicate entries: [1]"
        );
        assert!(parse_broker_list("1,x").is_err());
    }

    #[test]
    fn proposals_keep_partition_counts_and_replication_factors() {
        let current = BTreeMap::from([
            (p("a", 0), vec![1, 2]),
            (p("a", 1), vec![2, 1]),
            (p("a", 2), vec![1, 2]),
            (p("b", 0), vec![1]),
        ]);
        let brokers: Vec<PlacementBroker> = [2, 3, 4]
            .into_iter()
            .map(|broker_id| PlacementBroker {
                broker_id,
                rack: None,
            })
            .collect();
        let proposed = propose(&current, &brokers, |_| PlacementStart::default()).unwrap();
        // Kafka's round-robin from broker index 0: leaders 2, 3, 4; followers shifted by one.
        assert_eq!(
            proposed,
            BTreeMap::from([
                (p("a", 0), vec![2, 3]),
                (p("a", 1), vec![3, 4]),
                (p("a", 2), vec![4, 2]),
                (p("b", 0), vec![2]),
            ])
        );
        let err = propose(&current, &brokers[..1], |_| PlacementStart::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Replication factor: 2 larger than available brokers: 1."
        );
    }

    #[test]
    fn execute_checks_follow_kafka() {
        assert_eq!(
            check_execute(&[]).unwrap_err().to_string(),
            "Partition reassignment list cannot be empty"
        );
        assert_eq!(
            check_execute(&[target("t", 0, &[])])
                .unwrap_err()
                .to_string(),
            "Partition replica list cannot be empty"
        );
        assert_eq!(
            check_execute(&[target("t", 0, &[1]), target("t", 0, &[2])])
                .unwrap_err()
                .to_string(),
            "Partition reassignment contains duplicate topic partitions: t-0"
        );
        assert_eq!(
            check_execute(&[target("t", 0, &[1, 2, 1]), target("u", 1, &[3, 3])])
                .unwrap_err()
                .to_string(),
            "Partition replica lists may not contain duplicate entries: t-0 contains multiple \
             entries for 1. u-1 contains multiple entries for 3"
        );
        assert!(check_execute(&[target("t", 0, &[1, 2])]).is_ok());
    }

    #[test]
    fn verify_lines_follow_kafka() {
        let targets = [
            target("t", 2, &[3]),
            target("t", 0, &[1, 2]),
            target("t", 1, &[2, 3]),
            target("gone", 0, &[1]),
        ];
        let ongoing = BTreeMap::from([(
            p("t", 1),
            Ongoing {
                topic: "t".into(),
                partition: 1,
                replicas: vec![2, 3, 1],
                adding: vec![2, 3],
                removing: vec![1],
            },
        )]);
        let current = BTreeMap::from([
            (p("t", 0), vec![1, 2]),
            (p("t", 1), vec![2, 3, 1]),
            (p("t", 2), vec![1]),
        ]);
        let states = verify_states(&targets, &ongoing, &current);
        assert_eq!(
            render_verify(&states),
            "Status of partition reassignment:\n\
             There is no active reassignment of partition gone-0, but replica set is  rather \
             than 1.\n\
             Reassignment of partition t-0 is completed.\n\
             Reassignment of partition t-1 is still in progress.\n\
             There is no active reassignment of partition t-2, but replica set is 1 rather \
             than 3."
        );
        assert_eq!(
            serde_json::to_value(&states[1]).unwrap(),
            serde_json::json!({"topic": "t", "partition": 0, "target": [1, 2], "state": "completed"})
        );
    }

    #[test]
    fn list_and_rollback_text_follow_kafka() {
        assert_eq!(render_list(&[]), "No partition reassignments found.");
        let ongoing = [
            Ongoing {
                topic: "t".into(),
                partition: 0,
                replicas: vec![2, 3, 1],
                adding: vec![2, 3],
                removing: vec![1],
            },
            Ongoing {
                topic: "t".into(),
                partition: 1,
                replicas: vec![1, 2],
                adding: vec![2],
                removing: vec![],
            },
        ];
        assert_eq!(
            render_list(&ongoing),
            "Current partition reassignments:\n\
             t-0: replicas: 2,3,1. adding: 2,3. removing: 1.\n\
             t-1: replicas: 1,2. adding: 2."
        );
        let current = BTreeMap::from([(p("t", 0), vec![1]), (p("a", 3), vec![2, 1])]);
        assert_eq!(
            rollback_text(&assignment_json(&current)).unwrap(),
            "Current partition replica assignment\n\n\
             {\"version\":1,\"partitions\":[{\"topic\":\"a\",\"partition\":3,\"replicas\":[2,1],\
             \"log_dirs\":[\"any\",\"any\"]},{\"topic\":\"t\",\"partition\":0,\"replicas\":[1],\
             \"log_dirs\":[\"any\"]}]}\n\n\
             Save this to use as the --reassignment-json-file option during rollback"
        );
    }
}
