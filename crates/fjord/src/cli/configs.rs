//! `fjord configs`: describe and alter topic and broker configuration,
//! modelled on Apache Kafka's `kafka-configs.sh` (same flags, same output).
//!
//! # How `--alter` changes configs
//!
//! Kafka's tool uses IncrementalAlterConfigs (SET / DELETE per key). The
//! `rdkafka` crate only wraps the older AlterConfigs request, which *replaces*
//! the resource's whole set of overrides: every override not named in the
//! request falls back to its default. So `--alter` here does what Kafka's
//! tool did before incremental alters existed:
//!
//! 1. DescribeConfigs the resource and keep its current dynamic overrides
//!    (source `DYNAMIC_TOPIC_CONFIG` for topics, `DYNAMIC_BROKER_CONFIG` for
//!    brokers);
//! 2. refuse `--delete-config` keys that are not currently overridden
//!    (`Invalid config(s): ...`, as Kafka's tool says);
//! 3. remove the deleted keys, add or replace the added ones;
//! 4. send the merged set with AlterConfigs;
//! 5. read the overrides back and fail unless they equal the merged set,
//!    because rdkafka 0.39 drops the per-resource error code of AlterConfigs
//!    and DescribeConfigs answers (a refused change would otherwise look like
//!    success; the broker's reason text is not available either).
//!
//! The read and the write are two requests, so a change made by someone else
//! in between is overwritten (last writer wins). Sensitive overrides whose
//! value the broker does not reveal cannot be carried over; the tool refuses
//! to alter such a resource rather than silently dropping them.

use std::collections::BTreeMap;

use anyhow::{bail, ensure};
use clap::ArgGroup;
use rdkafka::admin::{
    AdminClient, AlterConfig, ConfigEntry, ConfigSource, OwnedResourceSpecifier, ResourceSpecifier,
};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;

use super::common::{self, ConnectionArgs, OutputFormat, QuietContext};

/// Flags of `fjord configs`; names follow kafka-configs.sh.
#[derive(clap::Args, Debug)]
#[command(group(
    ArgGroup::new("action")
        .required(true)
        .multiple(false)
        .args(["describe", "alter"])
))]
pub(crate) struct ConfigsArgs {
    /// Connection flags.
    #[command(flatten)]
    pub(crate) conn: ConnectionArgs,

    /// List the configs of the given entity (only dynamic overrides unless --all).
    #[arg(long)]
    pub(crate) describe: bool,

    /// Alter the configs of the given entity.
    #[arg(long)]
    pub(crate) alter: bool,

    /// Type of entity: topics or brokers.
    #[arg(long = "entity-type", value_enum, value_name = "TYPE")]
    pub(crate) entity_type: Option<EntityType>,

    /// Name of the entity: a topic name, or a broker id.
    #[arg(long = "entity-name", value_name = "NAME")]
    pub(crate) entity_name: Option<String>,

    /// Shortcut for --entity-type topics --entity-name TOPIC.
    #[arg(long, value_name = "TOPIC", conflicts_with_all = ["entity_type", "entity_name", "broker"])]
    pub(crate) topic: Option<String>,

    /// Shortcut for --entity-type brokers --entity-name ID.
    #[arg(long, value_name = "ID", conflicts_with_all = ["entity_type", "entity_name"])]
    pub(crate) broker: Option<String>,

    /// The cluster-wide default broker configs (not supported: the client
    /// library cannot address them).
    #[arg(long = "entity-default")]
    pub(crate) entity_default: bool,

    /// Configs to add or change: k1=v1,k2=[v1,v2,v2],k3=v3 (square brackets
    /// group list values that contain commas).
    #[arg(long = "add-config", value_name = "K=V,...")]
    pub(crate) add_config: Vec<String>,

    /// Config keys to remove (reset to default): k1,k2.
    #[arg(long = "delete-config", value_name = "K,...")]
    pub(crate) delete_config: Vec<String>,

    /// With --describe: list every config, including defaults.
    #[arg(long)]
    pub(crate) all: bool,

    /// Print Kafka-style text or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) output: OutputFormat,
}

/// The entity types `fjord configs` handles.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntityType {
    /// Topic configs.
    Topics,
    /// Broker configs.
    Brokers,
}

impl EntityType {
    /// Kafka's singular noun for output lines ("topic", "broker").
    fn singular(self) -> &'static str {
        match self {
            EntityType::Topics => "topic",
            EntityType::Brokers => "broker",
        }
    }

    /// The source of an entry that is a dynamic override of this entity.
    fn dynamic_source(self) -> ConfigSource {
        match self {
            EntityType::Topics => ConfigSource::DynamicTopic,
            EntityType::Brokers => ConfigSource::DynamicBroker,
        }
    }
}

/// A validated command line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Describe {
        entity: EntityType,
        name: Option<String>,
        all: bool,
    },
    Alter {
        entity: EntityType,
        name: String,
        add: Vec<(String, String)>,
        delete: Vec<String>,
    },
}

impl ConfigsArgs {
    fn action(&self) -> anyhow::Result<Action> {
        ensure!(
            !self.entity_default,
            "--entity-default is not supported: librdkafka cannot address the cluster-wide broker default; name a broker with --entity-name ID"
        );
        let (entity, name) = if let Some(t) = &self.topic {
            (EntityType::Topics, Some(t.clone()))
        } else if let Some(b) = &self.broker {
            (EntityType::Brokers, Some(b.clone()))
        } else {
            let Some(entity) = self.entity_type else {
                bail!("--entity-type topics|brokers is required (or --topic / --broker)");
            };
            (entity, self.entity_name.clone().filter(|n| !n.is_empty()))
        };
        if entity == EntityType::Brokers {
            if let Some(n) = &name {
                ensure!(
                    n.parse::<i32>().is_ok(),
                    "The entity name for brokers must be a valid integer broker id, but it is: {n}"
                );
            }
        }
        if self.describe {
            ensure!(
                self.add_config.is_empty() && self.delete_config.is_empty(),
                "--add-config and --delete-config are only valid with --alter"
            );
            return Ok(Action::Describe {
                entity,
                name,
                all: self.all,
            });
        }
        ensure!(!self.all, "--all is only valid with --describe");
        let Some(name) = name else {
            bail!("--entity-name is required with --alter");
        };
        let mut add = Vec::new();
        for item in &self.add_config {
            add.extend(parse_add_config(item)?);
        }
        let delete = parse_delete_config(&self.delete_config);
        ensure!(
            !add.is_empty() || !delete.is_empty(),
            "--alter needs --add-config and/or --delete-config"
        );
        if let Some((k, _)) = add.iter().find(|(k, _)| delete.contains(k)) {
            bail!("{k} is both added (--add-config) and deleted (--delete-config)");
        }
        Ok(Action::Alter {
            entity,
            name,
            add,
            delete,
        })
    }
}

/// Splits `s` at `sep` characters that are not inside `[...]`.
fn split_outside_brackets(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            c if c == sep && depth == 0 => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Parses Kafka's `--add-config` syntax: `k1=v1,k2=[v1,v2,v2],k3=v3`. Commas
/// inside square brackets belong to the value, and the brackets are removed
/// (as Kafka's tool does). Empty values are allowed (`k=`).
fn parse_add_config(spec: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in split_outside_brackets(spec, ',') {
        let parts = split_outside_brackets(pair, '=');
        let [key, value] = parts.as_slice() else {
            bail!("Invalid entity config: all configs to be added must be in the format \"key=val\" (got {pair:?}).");
        };
        let key = key.trim();
        ensure!(
            !key.is_empty(),
            "Invalid entity config: empty key in {pair:?}"
        );
        let value: String = value.chars().filter(|c| *c != '[' && *c != ']').collect();
        out.push((key.to_string(), value.trim().to_string()));
    }
    Ok(out)
}

/// Parses `--delete-config k1,k2` (possibly repeated).
fn parse_delete_config(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in items.iter().flat_map(|i| i.split(',')).map(str::trim) {
        if !key.is_empty() && !out.iter().any(|k| k == key) {
            out.push(key.to_string());
        }
    }
    out
}

/// Kafka's name for a config source.
fn source_name(source: &ConfigSource) -> &'static str {
    match source {
        ConfigSource::Unknown => "UNKNOWN",
        ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
        ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
        ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
        ConfigSource::Default => "DEFAULT_CONFIG",
    }
}

/// One config entry as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct EntryView {
    name: String,
    value: Option<String>,
    source: &'static str,
    sensitive: bool,
    read_only: bool,
}

impl EntryView {
    fn from_entry(e: &ConfigEntry) -> Self {
        EntryView {
            name: e.name.clone(),
            value: e.value.clone(),
            source: source_name(&e.source),
            sensitive: e.is_sensitive,
            read_only: e.is_read_only,
        }
    }

    /// Kafka's line: `  name=value sensitive=false synonyms={SOURCE:name=value}`.
    /// librdkafka's synonyms are not exposed by the client library, so the
    /// list holds the entry's own source (Kafka lists it first too).
    fn line(&self) -> String {
        let value = if self.sensitive {
            "null"
        } else {
            self.value.as_deref().unwrap_or("null")
        };
        format!(
            "  {}={value} sensitive={} synonyms={{{}:{}={value}}}",
            self.name, self.sensitive, self.source, self.name
        )
    }
}

/// One described entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct EntityView {
    entity_type: &'static str,
    entity_name: String,
    configs: Vec<EntryView>,
}

/// The text `--describe` prints for one entity.
fn render_entity(entity: EntityType, view: &EntityView, all: bool) -> String {
    let mut out = format!(
        "{} configs for {} {} are:\n",
        if all { "All" } else { "Dynamic" },
        entity.singular(),
        view.entity_name
    );
    for e in &view.configs {
        out.push_str(&e.line());
        out.push('\n');
    }
    out
}

/// Keeps the entries `--describe` shows (dynamic overrides, or all), sorted by name.
fn visible_entries(entity: EntityType, entries: &[ConfigEntry], all: bool) -> Vec<EntryView> {
    let dynamic = entity.dynamic_source();
    let mut out: Vec<EntryView> = entries
        .iter()
        .filter(|e| all || e.source == dynamic)
        .map(EntryView::from_entry)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Merges the current overrides with the requested change (see the module docs).
fn merge_overrides(
    current: &BTreeMap<String, String>,
    add: &[(String, String)],
    delete: &[String],
) -> anyhow::Result<BTreeMap<String, String>> {
    let invalid: Vec<&str> = delete
        .iter()
        .filter(|k| !current.contains_key(*k))
        .map(String::as_str)
        .collect();
    ensure!(
        invalid.is_empty(),
        "Invalid config(s): {}",
        invalid.join(",")
    );
    let mut merged = current.clone();
    for k in delete {
        merged.remove(k);
    }
    for (k, v) in add {
        merged.insert(k.clone(), v.clone());
    }
    Ok(merged)
}

fn entity_error(entity: EntityType, name: &str, code: RDKafkaErrorCode) -> anyhow::Error {
    match (entity, code) {
        (EntityType::Topics, RDKafkaErrorCode::UnknownTopicOrPartition) => {
            anyhow::anyhow!("Topic '{name}' does not exist")
        }
        _ => anyhow::anyhow!("{} {name}: {code}", entity.singular()),
    }
}

/// Runs `fjord configs`.
pub(crate) async fn run(args: ConfigsArgs) -> anyhow::Result<()> {
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
    // DescribeConfigs errors per resource are dropped by rdkafka 0.39, so an
    // unknown topic or broker is caught here, from the metadata.
    let target = match &action {
        Action::Describe { entity, name, .. } => name.as_ref().map(|n| (*entity, n)),
        Action::Alter { entity, name, .. } => Some((*entity, name)),
    };
    if let Some((entity, name)) = target {
        match entity {
            EntityType::Topics => ensure!(
                metadata.topics().iter().any(
                    |t| t.name() == name && (t.error().is_none() || !t.partitions().is_empty())
                ),
                "Topic '{name}' does not exist"
            ),
            EntityType::Brokers => ensure!(
                metadata
                    .brokers()
                    .iter()
                    .any(|b| b.id().to_string() == *name),
                "Broker {name} is not in the cluster (brokers: {})",
                metadata
                    .brokers()
                    .iter()
                    .map(|b| b.id().to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
    match action {
        Action::Describe { entity, name, all } => {
            let names: Vec<String> = match (&name, entity) {
                (Some(n), _) => vec![n.clone()],
                (None, EntityType::Topics) => {
                    let mut names: Vec<String> = metadata
                        .topics()
                        .iter()
                        .filter(|t| t.error().is_none() || !t.partitions().is_empty())
                        .map(|t| t.name().to_string())
                        .collect();
                    names.sort();
                    names
                }
                (None, EntityType::Brokers) => {
                    let mut ids: Vec<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
                    ids.sort_unstable();
                    ids.iter().map(i32::to_string).collect()
                }
            };
            let mut views = Vec::new();
            for n in &names {
                let entries = describe_entity(&admin, entity, n).await?;
                views.push(EntityView {
                    entity_type: match entity {
                        EntityType::Topics => "topics",
                        EntityType::Brokers => "brokers",
                    },
                    entity_name: n.clone(),
                    configs: visible_entries(entity, &entries, all),
                });
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                for v in &views {
                    print!("{}", render_entity(entity, v, all));
                }
            }
        }
        Action::Alter {
            entity,
            name,
            add,
            delete,
        } => {
            let entries = describe_entity(&admin, entity, &name).await?;
            let dynamic = entity.dynamic_source();
            let mut current = BTreeMap::new();
            for e in entries.iter().filter(|e| e.source == dynamic) {
                match &e.value {
                    Some(v) => {
                        current.insert(e.name.clone(), v.clone());
                    }
                    None if add.iter().any(|(k, _)| *k == e.name) || delete.contains(&e.name) => {
                        // Replaced or removed by this change anyway.
                        current.insert(e.name.clone(), String::new());
                    }
                    None => bail!(
                        "{} {name} has a sensitive override {} whose value the broker does not reveal; AlterConfigs would drop it (set it again with --add-config in the same command)",
                        entity.singular(),
                        e.name
                    ),
                }
            }
            let merged = merge_overrides(&current, &add, &delete)?;
            let broker_id;
            let specifier = match entity {
                EntityType::Topics => ResourceSpecifier::Topic(&name),
                EntityType::Brokers => {
                    broker_id = name.parse::<i32>()?;
                    ResourceSpecifier::Broker(broker_id)
                }
            };
            let mut request = AlterConfig::new(specifier);
            for (k, v) in &merged {
                request = request.set(k, v);
            }
            let results = common::bounded(
                &format!("altering configs of {} {name}", entity.singular()),
                admin.alter_configs([&request], &common::admin_options()),
            )
            .await?;
            for result in results {
                if let Err((_, code)) = result {
                    return Err(entity_error(entity, &name, code)
                        .context(format!("altering configs of {} {name}", entity.singular())));
                }
            }
            // rdkafka 0.39 drops the per-resource error of an AlterConfigs
            // answer, so a refused change looks like success: read back.
            let after = describe_entity(&admin, entity, &name).await?;
            let now: BTreeMap<String, String> = after
                .iter()
                .filter(|e| e.source == dynamic)
                .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
                .collect();
            let unchanged: Vec<String> = merged
                .iter()
                .filter(|(k, v)| now.get(*k) != Some(*v))
                .map(|(k, v)| format!("{k}={v}"))
                .chain(
                    now.keys()
                        .filter(|k| !merged.contains_key(*k))
                        .map(|k| format!("-{k}")),
                )
                .collect();
            ensure!(
                unchanged.is_empty(),
                "the broker did not apply the change to {} {name}: {} not in effect (the client library does not pass on the broker's reason; an invalid or unsupported value, or a resource that cannot be altered, are likely causes)",
                entity.singular(),
                unchanged.join(", ")
            );
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "entity_type": match entity { EntityType::Topics => "topics", EntityType::Brokers => "brokers" },
                        "entity_name": name,
                        "overrides": merged,
                    })
                );
            } else {
                println!(
                    "Completed updating config for {} {name}.",
                    entity.singular()
                );
            }
        }
    }
    Ok(())
}

/// DescribeConfigs for one entity, with Kafka-style errors.
async fn describe_entity(
    admin: &AdminClient<QuietContext>,
    entity: EntityType,
    name: &str,
) -> anyhow::Result<Vec<ConfigEntry>> {
    let specifier = match entity {
        EntityType::Topics => ResourceSpecifier::Topic(name),
        EntityType::Brokers => ResourceSpecifier::Broker(name.parse()?),
    };
    let results = common::bounded(
        &format!("describing configs of {} {name}", entity.singular()),
        admin.describe_configs([&specifier], &common::admin_options()),
    )
    .await?;
    for result in results {
        match result {
            Ok(resource) => {
                let matches = match (&resource.specifier, entity) {
                    (OwnedResourceSpecifier::Topic(t), EntityType::Topics) => t == name,
                    (OwnedResourceSpecifier::Broker(b), EntityType::Brokers) => {
                        b.to_string() == name
                    }
                    _ => false,
                };
                if matches {
                    return Ok(resource.entries);
                }
            }
            Err(code) => return Err(entity_error(entity, name, code)),
        }
    }
    bail!(
        "the broker returned no configs for {} {name}",
        entity.singular()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: ConfigsArgs,
    }

    fn action(argv: &[&str]) -> anyhow::Result<Action> {
        let cli = Cli::try_parse_from(std::iter::once("configs").chain(argv.iter().copied()))?;
        cli.args.action()
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn add_config_syntax() {
        assert_eq!(
            parse_add_config("a=1,b=[x,y,z],c=").unwrap(),
            vec![kv("a", "1"), kv("b", "x,y,z"), kv("c", "")]
        );
        assert_eq!(
            parse_add_config(" retention.ms = 1000 ").unwrap(),
            vec![kv("retention.ms", "1000")]
        );
        assert!(parse_add_config("a").is_err());
        assert!(parse_add_config("a=b=c").is_err());
        assert!(parse_add_config("=1").is_err());
        assert_eq!(
            parse_delete_config(&["a, b".to_string(), "c,a".to_string()]),
            vec!["a", "b", "c"]
        );
    }

    #[test]
    fn actions() {
        assert_eq!(
            action(&[
                "--entity-type",
                "topics",
                "--entity-name",
                "t",
                "--describe"
            ])
            .unwrap(),
            Action::Describe {
                entity: EntityType::Topics,
                name: Some("t".into()),
                all: false
            }
        );
        assert_eq!(
            action(&["--broker", "1", "--describe", "--all"]).unwrap(),
            Action::Describe {
                entity: EntityType::Brokers,
                name: Some("1".into()),
                all: true
            }
        );
        assert_eq!(
            action(&[
                "--topic",
                "t",
                "--alter",
                "--add-config",
                "retention.ms=1000,cleanup.policy=[compact,delete]",
                "--delete-config",
                "segment.ms"
            ])
            .unwrap(),
            Action::Alter {
                entity: EntityType::Topics,
                name: "t".into(),
                add: vec![
                    kv("retention.ms", "1000"),
                    kv("cleanup.policy", "compact,delete")
                ],
                delete: vec!["segment.ms".into()],
            }
        );
    }

    #[test]
    fn rejected_command_lines() {
        assert!(action(&["--describe"]).is_err(), "entity type needed");
        assert!(action(&["--entity-type", "topics", "--alter", "--add-config", "a=1"]).is_err());
        assert!(action(&["--topic", "t", "--alter"]).is_err());
        assert!(action(&["--topic", "t", "--describe", "--alter"]).is_err());
        assert!(action(&[
            "--entity-type",
            "brokers",
            "--entity-name",
            "x",
            "--describe"
        ])
        .is_err());
        assert!(action(&["--entity-type", "users", "--describe"]).is_err());
        assert!(action(&[
            "--topic",
            "t",
            "--alter",
            "--add-config",
            "a=1",
            "--delete-config",
            "a"
        ])
        .is_err());
        assert!(action(&["--topic", "t", "--describe", "--add-config", "a=1"]).is_err());
        assert!(action(&["--entity-type", "brokers", "--entity-default", "--describe"]).is_err());
    }

    #[test]
    fn merging_overrides() {
        let current: BTreeMap<String, String> = [kv("retention.ms", "1000"), kv("segment.ms", "5")]
            .into_iter()
            .collect();
        let merged = merge_overrides(
            &current,
            &[kv("cleanup.policy", "compact"), kv("retention.ms", "2000")],
            &["segment.ms".to_string()],
        )
        .unwrap();
        assert_eq!(
            merged,
            [kv("cleanup.policy", "compact"), kv("retention.ms", "2000")]
                .into_iter()
                .collect()
        );
        let err = merge_overrides(&current, &[], &["x".into(), "y".into()]).unwrap_err();
        assert_eq!(err.to_string(), "Invalid config(s): x,y");
    }

    #[test]
    fn describe_text_like_kafka() {
        let entries = vec![
            ConfigEntry {
                name: "segment.bytes".into(),
                value: Some("1024".into()),
                source: ConfigSource::Default,
                is_read_only: false,
                is_default: true,
                is_sensitive: false,
            },
            ConfigEntry {
                name: "retention.ms".into(),
                value: Some("1000".into()),
                source: ConfigSource::DynamicTopic,
                is_read_only: false,
                is_default: false,
                is_sensitive: false,
            },
        ];
        let view = EntityView {
            entity_type: "topics",
            entity_name: "t".into(),
            configs: visible_entries(EntityType::Topics, &entries, false),
        };
        assert_eq!(
            render_entity(EntityType::Topics, &view, false),
            "Dynamic configs for topic t are:\n  retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000}\n"
        );
        let all = visible_entries(EntityType::Topics, &entries, true);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].name, "retention.ms");
        assert_eq!(
            all[1].line(),
            "  segment.bytes=1024 sensitive=false synonyms={DEFAULT_CONFIG:segment.bytes=1024}"
        );
    }
}
