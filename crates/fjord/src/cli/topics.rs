//! `fjord topics`: create, list, describe, alter and delete topics, modelled
//! on Apache Kafka's `kafka-topics.sh` (same flags, same output lines).
//!
//! `--topic` names one topic; for `--list`, `--describe`, `--alter` and
//! `--delete` it may also be a small regular expression as in Kafka's tool
//! (see [`common::topic_matches`]). A name without pattern characters matches
//! only itself (Kafka would also let the `.` in `my.topic` match `my-topic`;
//! Fjord does not, so a delete never takes a topic nobody named).

use std::collections::BTreeMap;

use anyhow::{bail, ensure};
use clap::ArgGroup;
use rdkafka::admin::{
    AdminClient, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;

use super::common::{self, ConnectionArgs, OutputFormat, QuietContext};

/// Topics the cluster keeps for itself: listed unless `--exclude-internal`,
/// never deleted.
const INTERNAL_TOPICS: &[&str] = &[
    "__consumer_offsets",
    "__transaction_state",
    "__cluster_metadata",
];

/// Longest legal topic name, as in Kafka.
const TOPIC_NAME_MAX: usize = 249;

/// Flags of `fjord topics`; names follow kafka-topics.sh.
#[derive(clap::Args, Debug)]
#[command(group(
    ArgGroup::new("action")
        .required(true)
        .multiple(false)
        .args(["create", "list", "describe", "alter", "delete"])
))]
pub(crate) struct TopicsArgs {
    /// Connection flags.
    #[command(flatten)]
    pub(crate) conn: ConnectionArgs,

    /// Create a new topic.
    #[arg(long)]
    pub(crate) create: bool,

    /// List all available topics.
    #[arg(long)]
    pub(crate) list: bool,

    /// Describe the given topic(s), or every topic without --topic.
    #[arg(long)]
    pub(crate) describe: bool,

    /// Alter the number of partitions of a topic (increase only).
    #[arg(long)]
    pub(crate) alter: bool,

    /// Delete a topic.
    #[arg(long)]
    pub(crate) delete: bool,

    /// The topic to create, alter, describe or delete. Except for --create it
    /// may be a regular expression (literals, `.`, `*`, `+`, `?`, `|`).
    #[arg(long, value_name = "TOPIC")]
    pub(crate) topic: Option<String>,

    /// The number of partitions for the topic being created or altered.
    /// Default for --create: the broker's num.partitions.
    #[arg(long, value_name = "N")]
    pub(crate) partitions: Option<i32>,

    /// The replication factor for each partition of the topic being created.
    /// Default: the broker's default.replication.factor.
    #[arg(long = "replication-factor", value_name = "R")]
    pub(crate) replication_factor: Option<i32>,

    /// A topic configuration override for the topic being created, KEY=VALUE;
    /// may be repeated. (To change configs of an existing topic use
    /// `fjord configs --alter`.)
    #[arg(long, value_name = "KEY=VALUE")]
    pub(crate) config: Vec<String>,

    /// When altering, deleting or describing: act only if the topic exists,
    /// and succeed quietly if it does not.
    #[arg(long = "if-exists")]
    pub(crate) if_exists: bool,

    /// When creating: succeed quietly if the topic already exists.
    #[arg(long = "if-not-exists")]
    pub(crate) if_not_exists: bool,

    /// Leave internal topics (__consumer_offsets, ...) out of --list and --describe.
    #[arg(long = "exclude-internal")]
    pub(crate) exclude_internal: bool,

    /// --describe: only topics with configuration overrides.
    #[arg(long = "topics-with-overrides")]
    pub(crate) topics_with_overrides: bool,

    /// --describe: only partitions whose ISR is smaller than their replica set.
    #[arg(long = "under-replicated-partitions")]
    pub(crate) under_replicated_partitions: bool,

    /// --describe: only partitions without a leader.
    #[arg(long = "unavailable-partitions")]
    pub(crate) unavailable_partitions: bool,

    /// Print Kafka-style text or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) output: OutputFormat,
}

/// What a validated command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Create {
        topic: String,
        partitions: i32,
        replication_factor: i32,
        configs: Vec<(String, String)>,
        if_not_exists: bool,
    },
    List {
        pattern: Option<String>,
    },
    Describe {
        pattern: Option<String>,
        filter: DescribeFilter,
    },
    Alter {
        pattern: String,
        partitions: i32,
    },
    Delete {
        pattern: String,
    },
}

/// The `--describe` filters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct DescribeFilter {
    topics_with_overrides: bool,
    under_replicated: bool,
    unavailable: bool,
}

impl DescribeFilter {
    fn partitions_only(self) -> bool {
        self.under_replicated || self.unavailable
    }

    fn keeps(self, p: &PartitionDescription) -> bool {
        (!self.under_replicated || p.isr.len() < p.replicas.len())
            && (!self.unavailable || p.leader < 0)
    }
}

/// Checks a topic name the way Kafka does before asking the broker.
fn validate_topic_name(name: &str) -> anyhow::Result<()> {
    ensure!(!name.is_empty(), "Topic name is illegal, it can't be empty");
    ensure!(
        name != "." && name != "..",
        "Topic name cannot be \".\" or \"..\""
    );
    ensure!(
        name.len() <= TOPIC_NAME_MAX,
        "Topic name is illegal, it can't be longer than {TOPIC_NAME_MAX} characters, topic name: {name}"
    );
    ensure!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'),
        "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
    );
    Ok(())
}

impl TopicsArgs {
    /// Validates flag combinations as kafka-topics.sh does.
    fn action(&self) -> anyhow::Result<Action> {
        let creating_or_altering = self.create || self.alter;
        if !creating_or_altering {
            ensure!(
                self.partitions.is_none(),
                "--partitions is only valid with --create or --alter"
            );
            ensure!(
                self.config.is_empty(),
                "--config is only valid with --create"
            );
        }
        ensure!(
            self.replication_factor.is_none() || self.create,
            "--replication-factor is only valid with --create"
        );
        ensure!(
            !self.if_not_exists || self.create,
            "--if-not-exists is only valid with --create"
        );
        ensure!(
            !self.if_exists || self.alter || self.delete || self.describe,
            "--if-exists is only valid with --alter, --delete or --describe"
        );
        let describe_filters = self.topics_with_overrides
            || self.under_replicated_partitions
            || self.unavailable_partitions;
        ensure!(
            !describe_filters || self.describe,
            "--topics-with-overrides, --under-replicated-partitions and --unavailable-partitions are only valid with --describe"
        );
        let need_topic = |what: &str| -> anyhow::Result<String> {
            match &self.topic {
                Some(t) if !t.is_empty() => Ok(t.clone()),
                _ => bail!("--topic is required with --{what}"),
            }
        };
        if self.create {
            let topic = need_topic("create")?;
            validate_topic_name(&topic)?;
            if let Some(p) = self.partitions {
                ensure!(p >= 1, "The partitions must be greater than 0");
            }
            if let Some(r) = self.replication_factor {
                ensure!(
                    (1..=i32::from(i16::MAX)).contains(&r),
                    "The replication factor must be between 1 and {}",
                    i16::MAX
                );
            }
            return Ok(Action::Create {
                topic,
                partitions: self.partitions.unwrap_or(-1),
                replication_factor: self.replication_factor.unwrap_or(-1),
                configs: common::parse_kv_list("--config", &self.config)?,
                if_not_exists: self.if_not_exists,
            });
        }
        if self.alter {
            let pattern = need_topic("alter")?;
            ensure!(
                self.config.is_empty(),
                "--config cannot be used with --alter; change topic configs with `fjord configs --alter --entity-type topics --entity-name {pattern} --add-config KEY=VALUE`"
            );
            let Some(partitions) = self.partitions else {
                bail!("--alter needs --partitions N (the new, larger partition count)");
            };
            ensure!(partitions >= 1, "The partitions must be greater than 0");
            return Ok(Action::Alter {
                pattern,
                partitions,
            });
        }
        if self.delete {
            return Ok(Action::Delete {
                pattern: need_topic("delete")?,
            });
        }
        if self.list {
            return Ok(Action::List {
                pattern: self.topic.clone(),
            });
        }
        Ok(Action::Describe {
            pattern: self.topic.clone(),
            filter: DescribeFilter {
                topics_with_overrides: self.topics_with_overrides,
                under_replicated: self.under_replicated_partitions,
                unavailable: self.unavailable_partitions,
            },
        })
    }
}

/// One partition as `--describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct PartitionDescription {
    partition: i32,
    /// -1 when the partition has no leader (printed as `none`).
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    /// Replicas an ongoing reassignment is adding (empty when not moving).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    adding_replicas: Vec<i32>,
    /// Replicas an ongoing reassignment is removing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    removing_replicas: Vec<i32>,
}

/// One topic as `--describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct TopicDescription {
    topic: String,
    topic_id: Option<String>,
    partition_count: usize,
    replication_factor: usize,
    /// The non-default configs (overrides and broker-level settings), sorted.
    configs: BTreeMap<String, Option<String>>,
    partitions: Vec<PartitionDescription>,
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

impl TopicDescription {
    /// Kafka's topic line: `Topic: T\tTopicId: ..\tPartitionCount: N\tReplicationFactor: R\tConfigs: k=v,..`.
    fn topic_line(&self) -> String {
        let mut line = format!("Topic: {}", self.topic);
        if let Some(id) = &self.topic_id {
            line.push_str(&format!("\tTopicId: {id}"));
        }
        let configs = self
            .configs
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("null")))
            .collect::<Vec<_>>()
            .join(",");
        line.push_str(&format!(
            "\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {configs}",
            self.partition_count, self.replication_factor
        ));
        line
    }

    /// Kafka's partition line: `\tTopic: T\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1`,
    /// with `\tAdding Replicas: ..\tRemoving Replicas: ..` while the partition is moving.
    fn partition_line(&self, p: &PartitionDescription) -> String {
        let leader = if p.leader < 0 {
            "none".to_string()
        } else {
            p.leader.to_string()
        };
        let mut line = format!(
            "\tTopic: {}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}",
            self.topic,
            p.partition,
            join_ids(&p.replicas),
            join_ids(&p.isr)
        );
        if !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty() {
            line.push_str(&format!(
                "\tAdding Replicas: {}\tRemoving Replicas: {}",
                join_ids(&p.adding_replicas),
                join_ids(&p.removing_replicas)
            ));
        }
        line
    }
}

/// The text `--describe` prints for these topics under `filter`.
fn render_describe(topics: &[TopicDescription], filter: DescribeFilter) -> String {
    let mut out = String::new();
    for t in topics {
        if filter.topics_with_overrides {
            if !t.configs.is_empty() {
                out.push_str(&t.topic_line());
                out.push('\n');
            }
            continue;
        }
        if !filter.partitions_only() {
            out.push_str(&t.topic_line());
            out.push('\n');
        }
        for p in t.partitions.iter().filter(|p| filter.keeps(p)) {
            out.push_str(&t.partition_line(p));
            out.push('\n');
        }
    }
    out
}

/// The names of `metadata`'s topics that `pattern` selects, sorted.
fn select_topics(
    metadata: &Metadata,
    pattern: Option<&str>,
    exclude_internal: bool,
) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for t in metadata.topics() {
        let name = t.name();
        if t.error().is_some() && t.partitions().is_empty() {
            continue;
        }
        if exclude_internal && INTERNAL_TOPICS.contains(&name) {
            continue;
        }
        let selected = match pattern {
            None => true,
            Some(p) if common::is_literal_topic(p) => p == name,
            Some(p) => common::topic_matches(p, name)?,
        };
        if selected {
            names.push(name.to_string());
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

fn missing_topic_error(pattern: &str) -> anyhow::Error {
    anyhow::anyhow!("Topic '{pattern}' does not exist as expected")
}

/// Runs `fjord topics`.
pub(crate) async fn run(args: TopicsArgs) -> anyhow::Result<()> {
    let action = args.action()?;
    let settings = common::ClientSettings::from_connection(&args.conn)?;
    let bootstrap = settings.bootstrap(args.conn.bootstrap_server.as_deref());
    let admin: AdminClient<QuietContext> = settings
        .to_client_config(&bootstrap)
        .create_with_context(QuietContext::default())?;
    let metadata = common::blocking(|| {
        common::fetch_metadata(admin.inner(), None, &bootstrap, || {
            admin.inner().context().last_error()
        })
    })?;
    let json = args.output == OutputFormat::Json;
    match action {
        Action::Create {
            topic,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
        } => {
            if topic.contains('.') || topic.contains('_') {
                eprintln!("WARNING: Due to limitations in metric names, topics with a period ('.') or underscore ('_') could collide. To avoid issues it is best to use either, but not both.");
            }
            let mut new_topic = NewTopic::new(
                &topic,
                partitions,
                TopicReplication::Fixed(replication_factor),
            );
            for (k, v) in &configs {
                new_topic = new_topic.set(k, v);
            }
            let results = common::bounded(
                &format!("creating topic {topic}"),
                admin.create_topics([&new_topic], &common::admin_options()),
            )
            .await?;
            let mut created = true;
            for result in results {
                match result {
                    Ok(_) => {}
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) if if_not_exists => {
                        created = false;
                    }
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                        bail!("Topic '{topic}' already exists.")
                    }
                    Err((_, code)) => bail!("Error while creating topic {topic}: {code}"),
                }
            }
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "topic": topic, "created": created })
                );
            } else if created {
                println!("Created topic {topic}.");
            }
        }
        Action::List { pattern } => {
            let names = select_topics(&metadata, pattern.as_deref(), args.exclude_internal)?;
            if json {
                println!("{}", serde_json::to_string(&names)?);
            } else {
                for name in names {
                    println!("{name}");
                }
            }
        }
        Action::Describe { pattern, filter } => {
            let names = select_topics(&metadata, pattern.as_deref(), args.exclude_internal)?;
            if names.is_empty() {
                if let Some(p) = &pattern {
                    if !args.if_exists {
                        return Err(missing_topic_error(p));
                    }
                }
            }
            let descriptions = describe(&admin, &metadata, &names, &bootstrap, &settings).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&descriptions)?);
            } else {
                print!("{}", render_describe(&descriptions, filter));
            }
        }
        Action::Alter {
            pattern,
            partitions,
        } => {
            let names = select_topics(&metadata, Some(&pattern), false)?;
            if names.is_empty() {
                if args.if_exists {
                    return Ok(());
                }
                return Err(missing_topic_error(&pattern));
            }
            let mut altered = Vec::new();
            for name in &names {
                let current = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == name)
                    .map_or(0, |t| t.partitions().len());
                if partitions as usize == current {
                    bail!("Topic {name} already has {current} partitions.");
                }
                if (partitions as usize) < current {
                    bail!("The number of partitions for a topic can only be increased. Topic {name} currently has {current} partitions, {partitions} would not be an increase.");
                }
                let request = NewPartitions::new(name, partitions as usize);
                let results = common::bounded(
                    &format!("adding partitions to topic {name}"),
                    admin.create_partitions([&request], &common::admin_options()),
                )
                .await?;
                for result in results {
                    if let Err((_, code)) = result {
                        bail!("Error while altering topic {name}: {code}");
                    }
                }
                altered.push(serde_json::json!({ "topic": name, "partitions_before": current, "partitions": partitions }));
                if !json {
                    println!("Altered topic {name}: partitions {current} -> {partitions}.");
                }
            }
            if json {
                println!("{}", serde_json::Value::Array(altered));
            }
        }
        Action::Delete { pattern } => {
            let names = select_topics(&metadata, Some(&pattern), false)?;
            if names.is_empty() {
                if args.if_exists {
                    if json {
                        println!("[]");
                    }
                    return Ok(());
                }
                return Err(missing_topic_error(&pattern));
            }
            if let Some(internal) = names.iter().find(|n| INTERNAL_TOPICS.contains(&n.as_str())) {
                bail!("Topic {internal} is a kafka internal topic and is not allowed to be marked for deletion.");
            }
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let results = common::bounded(
                &format!("deleting topic(s) {}", names.join(",")),
                admin.delete_topics(&refs, &common::admin_options()),
            )
            .await?;
            let mut failed = Vec::new();
            for result in results {
                match result {
                    Ok(name) => {
                        if !json {
                            println!("Deleted topic {name}.");
                        }
                    }
                    Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) if args.if_exists => {
                        let _ = name;
                    }
                    Err((name, code)) => failed.push(format!("{name}: {code}")),
                }
            }
            if json {
                println!("{}", serde_json::to_string(&names)?);
            }
            ensure!(
                failed.is_empty(),
                "Error while deleting topics: {}",
                failed.join("; ")
            );
        }
    }
    Ok(())
}

/// Builds the descriptions of `names`: partitions from the metadata, the
/// non-default configs from DescribeConfigs, and topic ids when available.
async fn describe(
    admin: &AdminClient<QuietContext>,
    metadata: &Metadata,
    names: &[String],
    bootstrap: &str,
    settings: &common::ClientSettings,
) -> anyhow::Result<Vec<TopicDescription>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let specifiers: Vec<ResourceSpecifier<'_>> = names
        .iter()
        .map(|n| ResourceSpecifier::Topic(n.as_str()))
        .collect();
    let config_results = common::bounded(
        "describing topic configs",
        admin.describe_configs(&specifiers, &common::admin_options()),
    )
    .await?;
    let mut configs: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for result in config_results {
        match result {
            Ok(resource) => {
                let rdkafka::admin::OwnedResourceSpecifier::Topic(name) = &resource.specifier
                else {
                    continue;
                };
                let entries = resource
                    .entries
                    .iter()
                    .filter(|e| match e.source {
                        ConfigSource::Default => false,
                        ConfigSource::Unknown => !e.is_default,
                        _ => true,
                    })
                    .map(|e| (e.name.clone(), e.value.clone()))
                    .collect();
                configs.insert(name.clone(), entries);
            }
            Err(code) => eprintln!("warning: describing topic configs: {code}"),
        }
    }
    let plaintext = settings
        .get("security.protocol")
        .is_none_or(|p| p.eq_ignore_ascii_case("plaintext"));
    let (ids, moving) = if plaintext {
        let bootstrap = bootstrap.to_string();
        tokio::task::spawn_blocking(move || {
            let ids = super::topic_ids::fetch(&bootstrap);
            // Best effort, like the ids: a cluster without ListPartitionReassignments just
            // shows no moves.
            let moving = super::reassign_partitions::ongoing_reassignments(&bootstrap)
                .unwrap_or_else(|e| {
                    tracing::debug!("listing partition reassignments: {e:#}");
                    BTreeMap::new()
                });
            (ids, moving)
        })
        .await
        .unwrap_or_default()
    } else {
        (BTreeMap::new(), BTreeMap::new())
    };
    let mut out = Vec::new();
    for name in names {
        let Some(topic) = metadata.topics().iter().find(|t| t.name() == name) else {
            continue;
        };
        let mut partitions: Vec<PartitionDescription> = topic
            .partitions()
            .iter()
            .map(|p| {
                let ongoing = moving.get(&(name.clone(), p.id()));
                PartitionDescription {
                    partition: p.id(),
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    isr: p.isr().to_vec(),
                    adding_replicas: ongoing.map(|o| o.adding.clone()).unwrap_or_default(),
                    removing_replicas: ongoing.map(|o| o.removing.clone()).unwrap_or_default(),
                }
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        out.push(TopicDescription {
            topic: name.clone(),
            topic_id: ids.get(name).cloned(),
            partition_count: partitions.len(),
            replication_factor: partitions.first().map_or(0, |p| p.replicas.len()),
            configs: configs.remove(name).unwrap_or_default(),
            partitions,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: TopicsArgs,
    }

    fn action(argv: &[&str]) -> anyhow::Result<Action> {
        let cli = Cli::try_parse_from(std::iter::once("topics").chain(argv.iter().copied()))?;
        cli.args.action()
    }

    #[test]
    fn create_flags() {
        let a = action(&[
            "--create",
            "--topic",
            "t",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "cleanup.policy=compact",
            "--config",
            "retention.ms=1000",
            "--if-not-exists",
            "--bootstrap-server",
            "h:1",
        ])
        .unwrap();
        assert_eq!(
            a,
            Action::Create {
                topic: "t".into(),
                partitions: 3,
                replication_factor: 1,
                configs: vec![
                    ("cleanup.policy".into(), "compact".into()),
                    ("retention.ms".into(), "1000".into())
                ],
                if_not_exists: true,
            }
        );
        let a = action(&["--create", "--topic", "t"]).unwrap();
        assert!(matches!(
            a,
            Action::Create {
                partitions: -1,
                replication_factor: -1,
                ..
            }
        ));
    }

    #[test]
    fn rejects_bad_combinations() {
        assert!(action(&[]).is_err(), "an action is required");
        assert!(action(&["--create", "--list"]).is_err());
        assert!(action(&["--create"]).is_err(), "create needs a topic");
        assert!(action(&["--create", "--topic", "a b"]).is_err());
        assert!(action(&["--create", "--topic", "t", "--partitions", "0"]).is_err());
        assert!(action(&["--create", "--topic", "t", "--if-exists"]).is_err());
        assert!(action(&["--list", "--partitions", "3"]).is_err());
        assert!(action(&["--delete", "--topic", "t", "--if-not-exists"]).is_err());
        assert!(action(&["--alter", "--topic", "t"]).is_err());
        assert!(action(&[
            "--alter",
            "--topic",
            "t",
            "--partitions",
            "2",
            "--config",
            "a=b"
        ])
        .is_err());
        assert!(action(&["--delete"]).is_err());
        assert!(action(&["--list", "--under-replicated-partitions"]).is_err());
        assert!(action(&["--create", "--topic", "t", "--config", "novalue"]).is_err());
    }

    #[test]
    fn other_actions() {
        assert_eq!(action(&["--list"]).unwrap(), Action::List { pattern: None });
        assert_eq!(
            action(&["--describe", "--topic", "t.*", "--if-exists"]).unwrap(),
            Action::Describe {
                pattern: Some("t.*".into()),
                filter: DescribeFilter::default()
            }
        );
        assert_eq!(
            action(&["--alter", "--topic", "t", "--partitions", "4"]).unwrap(),
            Action::Alter {
                pattern: "t".into(),
                partitions: 4
            }
        );
        assert_eq!(
            action(&["--delete", "--topic", "t", "--if-exists"]).unwrap(),
            Action::Delete {
                pattern: "t".into()
            }
        );
    }

    fn sample() -> TopicDescription {
        TopicDescription {
            topic: "orders".into(),
            topic_id: Some("AAAAAAAAAAAAAAAAAAAAAQ".into()),
            partition_count: 2,
            replication_factor: 1,
            configs: [
                ("cleanup.policy".to_string(), Some("compact".to_string())),
                ("retention.ms".to_string(), Some("1000".to_string())),
            ]
            .into_iter()
            .collect(),
            partitions: vec![
                PartitionDescription {
                    partition: 0,
                    leader: 1,
                    replicas: vec![1],
                    isr: vec![1],
                    adding_replicas: vec![],
                    removing_replicas: vec![],
                },
                PartitionDescription {
                    partition: 1,
                    leader: -1,
                    replicas: vec![1, 2],
                    isr: vec![],
                    adding_replicas: vec![],
                    removing_replicas: vec![],
                },
            ],
        }
    }

    #[test]
    fn describe_text_like_kafka() {
        let text = render_describe(&[sample()], DescribeFilter::default());
        assert_eq!(
            text,
            "Topic: orders\tTopicId: AAAAAAAAAAAAAAAAAAAAAQ\tPartitionCount: 2\tReplicationFactor: 1\tConfigs: cleanup.policy=compact,retention.ms=1000\n\
             \tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\n\
             \tTopic: orders\tPartition: 1\tLeader: none\tReplicas: 1,2\tIsr: \n"
        );
        let mut no_id = sample();
        no_id.topic_id = None;
        no_id.configs.clear();
        assert!(no_id
            .topic_line()
            .starts_with("Topic: orders\tPartitionCount: 2\tReplicationFactor: 1\tConfigs: "));
    }

    #[test]
    fn a_moving_partition_shows_its_added_and_removed_replicas() {
        let mut moving = sample();
        moving.partitions[0].replicas = vec![2, 3, 1];
        moving.partitions[0].adding_replicas = vec![2, 3];
        moving.partitions[0].removing_replicas = vec![1];
        assert_eq!(
            moving.partition_line(&moving.partitions[0]),
            "\tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 2,3,1\tIsr: 1\t\
             Adding Replicas: 2,3\tRemoving Replicas: 1"
        );
        let v = serde_json::to_value(&moving).unwrap();
        assert_eq!(v["partitions"][0]["adding_replicas"][1], 3);
        assert!(v["partitions"][1].get("adding_replicas").is_none());
    }

    #[test]
    fn describe_filters() {
        let only_unavailable = render_describe(
            &[sample()],
            DescribeFilter {
                unavailable: true,
                ..DescribeFilter::default()
            },
        );
        assert_eq!(
            only_unavailable,
            "\tTopic: orders\tPartition: 1\tLeader: none\tReplicas: 1,2\tIsr: \n"
        );
        let mut plain = sample();
        plain.topic = "plain".into();
        plain.configs.clear();
        let overrides = render_describe(
            &[sample(), plain],
            DescribeFilter {
                topics_with_overrides: true,
                ..DescribeFilter::default()
            },
        );
        assert_eq!(overrides.lines().count(), 1);
        assert!(overrides.starts_with("Topic: orders\t"));
    }

    #[test]
    fn describe_json_shape() {
        let v = serde_json::to_value([sample()]).unwrap();
        assert_eq!(v[0]["topic"], "orders");
        assert_eq!(v[0]["partition_count"], 2);
        assert_eq!(v[0]["configs"]["retention.ms"], "1000");
        assert_eq!(v[0]["partitions"][1]["leader"], -1);
        assert_eq!(v[0]["partitions"][0]["isr"][0], 1);
    }

    #[test]
    fn topic_name_rules() {
        assert!(validate_topic_name("a.b_c-D9").is_ok());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
        assert!(validate_topic_name("é").is_err());
    }
}
