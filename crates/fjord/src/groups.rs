//! `fjord groups`: list, describe and delete consumer groups and reset their
//! committed offsets, modelled on Apache Kafka's `kafka-consumer-groups.sh`.
//!
//! Like the perf tools, this command reaches the cluster only through
//! `rdkafka` (librdkafka), so it works the same against Fjord and against an
//! Apache Kafka cluster. Flag names, column headers and messages follow
//! Kafka's tool so that scripts and habits carry over.
//!
//! Layout: this file holds the command line, its validation into an
//! [`Action`] and the dispatch; `groups/client.rs` every call to the cluster;
//! `groups/assignment.rs` the decoding of the consumer protocol's assignment
//! bytes; `groups/reset.rs` the pure arithmetic of `--reset-offsets`
//! (specs, topic scopes, date and duration parsing, target offsets);
//! `groups/render.rs` the tables and the JSON output.

use std::path::PathBuf;

use anyhow::bail;
use clap::ArgGroup;

mod assignment;
mod client;
mod props;
mod render;
mod reset;

use reset::{ResetSpec, TopicScope};

/// How results are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum OutputFormat {
    /// Kafka-style aligned columns (the default).
    #[default]
    Table,
    /// One JSON document on stdout.
    Json,
}

/// Flags of `fjord groups`; names follow kafka-consumer-groups.sh.
#[derive(clap::Args, Debug)]
#[command(group(
    ArgGroup::new("action")
        .required(true)
        .multiple(false)
        .args(["list", "describe", "delete", "reset_offsets"])
))]
#[command(group(
    ArgGroup::new("reset_spec")
        .multiple(false)
        .args(["to_earliest", "to_latest", "to_current", "to_offset", "to_datetime", "shift_by", "by_duration"])
))]
pub(crate) struct GroupsArgs {
    /// Broker(s) to bootstrap from, host:port[,host:port...]. Default
    /// 127.0.0.1:9092; a bootstrap.servers in --command-config is used when
    /// this flag is absent.
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub(crate) bootstrap_server: Option<String>,

    /// Client configuration properties file (Java .properties syntax), e.g.
    /// security settings. Passed to librdkafka; Java-only keys are dropped.
    #[arg(long = "command-config", value_name = "FILE")]
    pub(crate) command_config: Option<PathBuf>,

    /// List all consumer groups.
    #[arg(long)]
    pub(crate) list: bool,

    /// Describe consumer groups: committed offsets, log-end offsets and lag
    /// per partition (or members with --members, state with --state).
    #[arg(long)]
    pub(crate) describe: bool,

    /// Delete consumer groups (only groups without active members).
    #[arg(long)]
    pub(crate) delete: bool,

    /// Reset the committed offsets of consumer groups (only groups without
    /// active members). Prints the plan; changes nothing without --execute.
    #[arg(long = "reset-offsets")]
    pub(crate) reset_offsets: bool,

    /// The consumer group to act on (may be repeated).
    #[arg(long, value_name = "GROUP")]
    pub(crate) group: Vec<String>,

    /// Act on every consumer group of the cluster.
    #[arg(long = "all-groups", conflicts_with = "group")]
    pub(crate) all_groups: bool,

    /// Reset: topic to reset, with optional partitions (TOPIC or
    /// TOPIC:0,1,2); may be repeated.
    #[arg(long, value_name = "TOPIC[:P1,P2]")]
    pub(crate) topic: Vec<String>,

    /// Reset: every topic the group has committed offsets for.
    #[arg(long = "all-topics", conflicts_with = "topic")]
    pub(crate) all_topics: bool,

    /// Reset to the earliest offset (the log start).
    #[arg(long = "to-earliest")]
    pub(crate) to_earliest: bool,

    /// Reset to the latest offset (the log end).
    #[arg(long = "to-latest")]
    pub(crate) to_latest: bool,

    /// Reset to the current committed offset (log end where none is committed).
    #[arg(long = "to-current")]
    pub(crate) to_current: bool,

    /// Reset to this offset (clamped to the partition's [log start, log end]).
    #[arg(long = "to-offset", value_name = "OFFSET")]
    pub(crate) to_offset: Option<i64>,

    /// Reset to the first offset whose timestamp is at or after this time:
    /// YYYY-MM-DDTHH:mm:SS.sss, with an optional zone (Z, +hh:mm, -hhmm);
    /// without a zone the time is UTC.
    #[arg(long = "to-datetime", value_name = "YYYY-MM-DDTHH:mm:SS.sss")]
    pub(crate) to_datetime: Option<String>,

    /// Move the committed offset by N (may be negative), clamped to the
    /// partition's [log start, log end].
    #[arg(long = "shift-by", value_name = "N", allow_negative_numbers = true)]
    pub(crate) shift_by: Option<i64>,

    /// Reset to the offsets of this long ago (ISO-8601 duration such as
    /// PT1H30M or P1DT2H).
    #[arg(long = "by-duration", value_name = "PnDTnHnMnS")]
    pub(crate) by_duration: Option<String>,

    /// Only print the offsets a reset would commit (the default).
    #[arg(long = "dry-run", conflicts_with = "execute")]
    pub(crate) dry_run: bool,

    /// Commit the reset offsets.
    #[arg(long)]
    pub(crate) execute: bool,

    /// Describe: show the group's members and their assignments.
    #[arg(long)]
    pub(crate) members: bool,

    /// Describe: show offsets and lag per partition (the default view).
    #[arg(long)]
    pub(crate) offsets: bool,

    /// Describe --members: also print each member's assigned partitions.
    #[arg(long)]
    pub(crate) verbose: bool,

    /// List: add a STATE column, or with a value keep only groups in those
    /// states (comma-separated, case-insensitive: Stable,Empty,...).
    /// Describe: show the group's state, coordinator and member count.
    #[arg(long, value_name = "STATES", num_args = 0..=1)]
    pub(crate) state: Option<Option<String>>,

    /// Print results as a table or as JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) output: OutputFormat,

    /// Timeout for each request to the cluster, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub(crate) timeout: u64,
}

/// Which groups an action applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GroupSelection {
    /// The named groups, in the order given (duplicates removed).
    Named(Vec<String>),
    /// Every group in the cluster.
    All,
}

/// What `--describe` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DescribeView {
    Offsets,
    Members { verbose: bool },
    State,
}

/// A validated command: what to do, with everything parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    List {
        /// Whether to print the STATE column.
        with_state: bool,
        /// Keep only groups in these states (lower-cased); empty keeps all.
        states: Vec<String>,
    },
    Describe {
        groups: GroupSelection,
        view: DescribeView,
    },
    Delete {
        groups: GroupSelection,
    },
    Reset {
        groups: GroupSelection,
        scope: TopicScope,
        spec: ResetSpec,
        execute: bool,
    },
}

impl GroupsArgs {
    fn group_selection(&self, action: &str) -> anyhow::Result<GroupSelection> {
        if self.all_groups {
            return Ok(GroupSelection::All);
        }
        if self.group.is_empty() {
            bail!("{action} needs --group GROUP or --all-groups");
        }
        let mut names: Vec<String> = Vec::new();
        for g in &self.group {
            if g.is_empty() {
                bail!("--group must not be empty");
            }
            if !names.contains(g) {
                names.push(g.clone());
            }
        }
        Ok(GroupSelection::Named(names))
    }

    fn reset_spec_given(&self) -> bool {
        self.to_earliest
            || self.to_latest
            || self.to_current
            || self.to_offset.is_some()
            || self.to_datetime.is_some()
            || self.shift_by.is_some()
            || self.by_duration.is_some()
    }

    /// Checks the flag combination and turns it into an [`Action`]; `now_ms`
    /// is the clock used by `--by-duration`.
    pub(crate) fn action(&self, now_ms: i64) -> anyhow::Result<Action> {
        let reset_only = [
            (!self.topic.is_empty(), "--topic"),
            (self.all_topics, "--all-topics"),
            (
                self.reset_spec_given(),
                "a --to-*/--shift-by/--by-duration option",
            ),
            (self.dry_run, "--dry-run"),
            (self.execute, "--execute"),
        ];
        let describe_only = [
            (self.members, "--members"),
            (self.offsets, "--offsets"),
            (self.verbose, "--verbose"),
        ];
        let misplaced = |allowed_reset: bool, allowed_describe: bool| -> anyhow::Result<()> {
            if !allowed_reset {
                if let Some((_, name)) = reset_only.iter().find(|(set, _)| *set) {
                    bail!("{name} is only valid with --reset-offsets");
                }
            }
            if !allowed_describe {
                if let Some((_, name)) = describe_only.iter().find(|(set, _)| *set) {
                    bail!("{name} is only valid with --describe");
                }
            }
            Ok(())
        };
        if self.list {
            misplaced(false, false)?;
            if self.all_groups || !self.group.is_empty() {
                bail!("--list takes no --group/--all-groups: it lists every group");
            }
            let states = match &self.state {
                Some(Some(list)) => parse_states(list)?,
                _ => Vec::new(),
            };
            return Ok(Action::List {
                with_state: self.state.is_some(),
                states,
            });
        }
        if self.describe {
            misplaced(false, true)?;
            let groups = self.group_selection("--describe")?;
            if matches!(self.state, Some(Some(_))) {
                bail!("--state takes no value with --describe (state filters apply to --list)");
            }
            let chosen = [self.members, self.offsets, self.state.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if chosen > 1 {
                bail!("--members, --offsets and --state are mutually exclusive");
            }
            if self.verbose && !self.members {
                bail!("--verbose is only valid with --describe --members");
            }
            let view = if self.members {
                DescribeView::Members {
                    verbose: self.verbose,
                }
            } else if self.state.is_some() {
                DescribeView::State
            } else {
                DescribeView::Offsets
            };
            return Ok(Action::Describe { groups, view });
        }
        if self.state.is_some() {
            bail!("--state is only valid with --list or --describe");
        }
        if self.delete {
            misplaced(false, false)?;
            return Ok(Action::Delete {
                groups: self.group_selection("--delete")?,
            });
        }
        // --reset-offsets (clap guarantees exactly one action).
        misplaced(true, false)?;
        let groups = self.group_selection("--reset-offsets")?;
        let scope = if self.all_topics {
            TopicScope::AllTopics
        } else if self.topic.is_empty() {
            bail!("--reset-offsets needs --topic TOPIC[:PARTITIONS] or --all-topics");
        } else {
            TopicScope::Topics(
                self.topic
                    .iter()
                    .map(|t| reset::parse_topic_spec(t))
                    .collect::<anyhow::Result<_>>()?,
            )
        };
        let spec = if self.to_earliest {
            ResetSpec::ToEarliest
        } else if self.to_latest {
            ResetSpec::ToLatest
        } else if self.to_current {
            ResetSpec::ToCurrent
        } else if let Some(offset) = self.to_offset {
            ResetSpec::ToOffset(offset)
        } else if let Some(n) = self.shift_by {
            ResetSpec::ShiftBy(n)
        } else if let Some(text) = &self.to_datetime {
            ResetSpec::ToTimestamp(reset::parse_datetime(text)?)
        } else if let Some(text) = &self.by_duration {
            ResetSpec::ToTimestamp(now_ms - reset::parse_duration_ms(text)?)
        } else {
            bail!(
                "--reset-offsets needs one of --to-earliest, --to-latest, --to-current, \
                 --to-offset, --to-datetime, --by-duration, --shift-by"
            );
        };
        Ok(Action::Reset {
            groups,
            scope,
            spec,
            execute: self.execute,
        })
    }
}

/// Kafka's consumer group states, as `--state` accepts them.
const KNOWN_STATES: &[&str] = &[
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
    "Dead",
    "Empty",
];

/// Parses a comma-separated `--state` filter into lower-cased state names.
fn parse_states(list: &str) -> anyhow::Result<Vec<String>> {
    let mut states = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(known) = KNOWN_STATES.iter().find(|k| k.eq_ignore_ascii_case(item)) else {
            bail!(
                "unknown group state {item:?}; valid states: {}",
                KNOWN_STATES.join(", ")
            );
        };
        states.push(known.to_ascii_lowercase());
    }
    if states.is_empty() {
        bail!("--state needs at least one state name when given a value");
    }
    Ok(states)
}

/// Runs `fjord groups` to completion. librdkafka's calls block, so the work
/// runs on tokio's blocking pool.
pub(crate) async fn run(args: GroupsArgs) -> anyhow::Result<()> {
    let action = args.action(reset::now_ms())?;
    let settings = props::resolve_settings(
        args.bootstrap_server.as_deref(),
        args.command_config.as_deref(),
    )?;
    for note in &settings.notes {
        eprintln!("note: {note}");
    }
    if matches!(action, Action::Reset { execute: false, .. }) && !args.dry_run {
        eprintln!(
            "WARN: No action will be performed as the --execute option is missing. \
             Add --dry-run to state that explicitly, or --execute to commit the new offsets."
        );
    }
    let timeout = std::time::Duration::from_millis(args.timeout.max(1));
    let output = args.output;
    tokio::task::spawn_blocking(move || {
        let tool = client::GroupTool::new(settings, timeout)?;
        match action {
            Action::List { with_state, states } => tool.list(with_state, &states, output),
            Action::Describe { groups, view } => tool.describe(&groups, view, output),
            Action::Delete { groups } => tool.delete(&groups, output),
            Action::Reset {
                groups,
                scope,
                spec,
                execute,
            } => tool.reset(&groups, &scope, spec, execute, output),
        }
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use reset::TopicSpec;

    #[derive(Parser, Debug)]
    struct TestCli {
        #[command(flatten)]
        args: GroupsArgs,
    }

    fn parse(line: &[&str]) -> Result<GroupsArgs, clap::Error> {
        let mut argv = vec!["groups"];
        argv.extend_from_slice(line);
        TestCli::try_parse_from(argv).map(|c| c.args)
    }

    fn action(line: &[&str]) -> anyhow::Result<Action> {
        parse(line)?.action(1_000_000)
    }

    #[test]
    fn list_and_state_filter() {
        assert_eq!(
            action(&["--list"]).unwrap(),
            Action::List {
                with_state: false,
                states: vec![]
            }
        );
        assert_eq!(
            action(&["--list", "--state"]).unwrap(),
            Action::List {
                with_state: true,
                states: vec![]
            }
        );
        assert_eq!(
            action(&["--list", "--state", "stable,EMPTY"]).unwrap(),
            Action::List {
                with_state: true,
                states: vec!["stable".into(), "empty".into()]
            }
        );
        assert!(action(&["--list", "--state", "bogus"]).is_err());
        assert!(action(&["--list", "--group", "g"]).is_err());
    }

    #[test]
    fn defaults() {
        let args = parse(&["--list"]).unwrap();
        assert_eq!(args.output, OutputFormat::Table);
        assert_eq!(args.timeout, 5000);
        assert_eq!(args.bootstrap_server, None);
        let args = parse(&["--list", "--output", "json", "--bootstrap-server", "h:1"]).unwrap();
        assert_eq!(args.output, OutputFormat::Json);
        assert_eq!(args.bootstrap_server.as_deref(), Some("h:1"));
    }

    #[test]
    fn exactly_one_action_is_required() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--list", "--describe"]).is_err());
        assert!(parse(&["--delete", "--reset-offsets", "--group", "g"]).is_err());
    }

    #[test]
    fn describe_views() {
        assert_eq!(
            action(&["--describe", "--group", "g"]).unwrap(),
            Action::Describe {
                groups: GroupSelection::Named(vec!["g".into()]),
                view: DescribeView::Offsets
            }
        );
        assert_eq!(
            action(&[
                "--describe",
                "--group",
                "a",
                "--group",
                "b",
                "--group",
                "a",
                "--members"
            ])
            .unwrap(),
            Action::Describe {
                groups: GroupSelection::Named(vec!["a".into(), "b".into()]),
                view: DescribeView::Members { verbose: false }
            }
        );
        assert_eq!(
            action(&["--describe", "--all-groups", "--members", "--verbose"]).unwrap(),
            Action::Describe {
                groups: GroupSelection::All,
                view: DescribeView::Members { verbose: true }
            }
        );
        assert_eq!(
            action(&["--describe", "--state", "--group", "g"]).unwrap(),
            Action::Describe {
                groups: GroupSelection::Named(vec!["g".into()]),
                view: DescribeView::State
            }
        );
        assert!(action(&["--describe"]).is_err());
        assert!(parse(&["--describe", "--all-groups", "--group", "g"]).is_err());
        assert!(action(&["--describe", "--group", "g", "--members", "--state"]).is_err());
        assert!(action(&["--describe", "--group", "g", "--verbose"]).is_err());
        assert!(action(&["--describe", "--group", "g", "--to-earliest"]).is_err());
        assert!(action(&["--describe", "--group", "g", "--execute"]).is_err());
    }

    #[test]
    fn delete_needs_groups() {
        assert_eq!(
            action(&["--delete", "--group", "g"]).unwrap(),
            Action::Delete {
                groups: GroupSelection::Named(vec!["g".into()])
            }
        );
        assert!(action(&["--delete"]).is_err());
        assert!(action(&["--delete", "--group", "g", "--members"]).is_err());
    }

    #[test]
    fn reset_specs() {
        let reset = |extra: &[&str]| {
            let mut line = vec!["--reset-offsets", "--group", "g", "--topic", "t"];
            line.extend_from_slice(extra);
            action(&line)
        };
        let spec_of = |a: Action| match a {
            Action::Reset { spec, .. } => spec,
            other => panic!("not a reset: {other:?}"),
        };
        assert_eq!(
            spec_of(reset(&["--to-earliest"]).unwrap()),
            ResetSpec::ToEarliest
        );
        assert_eq!(
            spec_of(reset(&["--to-latest"]).unwrap()),
            ResetSpec::ToLatest
        );
        assert_eq!(
            spec_of(reset(&["--to-current"]).unwrap()),
            ResetSpec::ToCurrent
        );
        assert_eq!(
            spec_of(reset(&["--to-offset", "42"]).unwrap()),
            ResetSpec::ToOffset(42)
        );
        assert_eq!(
            spec_of(reset(&["--shift-by", "-3"]).unwrap()),
            ResetSpec::ShiftBy(-3)
        );
        assert_eq!(
            spec_of(reset(&["--to-datetime", "1970-01-01T00:00:01.500"]).unwrap()),
            ResetSpec::ToTimestamp(1500)
        );
        assert_eq!(
            spec_of(reset(&["--by-duration", "PT10S"]).unwrap()),
            ResetSpec::ToTimestamp(1_000_000 - 10_000)
        );
        // No spec, two specs, bad values.
        assert!(reset(&[]).is_err());
        assert!(reset(&["--to-earliest", "--to-latest"]).is_err());
        assert!(reset(&["--to-datetime", "yesterday"]).is_err());
        assert!(reset(&["--to-offset", "x"]).is_err());
    }

    #[test]
    fn reset_scope_and_mode() {
        let a = action(&[
            "--reset-offsets",
            "--group",
            "g",
            "--topic",
            "a",
            "--topic",
            "b:0,2",
            "--to-earliest",
            "--execute",
        ])
        .unwrap();
        assert_eq!(
            a,
            Action::Reset {
                groups: GroupSelection::Named(vec!["g".into()]),
                scope: TopicScope::Topics(vec![
                    TopicSpec {
                        topic: "a".into(),
                        partitions: None
                    },
                    TopicSpec {
                        topic: "b".into(),
                        partitions: Some(vec![0, 2])
                    },
                ]),
                spec: ResetSpec::ToEarliest,
                execute: true,
            }
        );
        let a = action(&[
            "--reset-offsets",
            "--all-groups",
            "--all-topics",
            "--to-latest",
            "--dry-run",
        ])
        .unwrap();
        assert!(matches!(
            a,
            Action::Reset {
                groups: GroupSelection::All,
                scope: TopicScope::AllTopics,
                execute: false,
                ..
            }
        ));
        // Scope is required; --topic and --all-topics conflict; dry-run and execute conflict.
        assert!(action(&["--reset-offsets", "--group", "g", "--to-earliest"]).is_err());
        assert!(parse(&[
            "--reset-offsets",
            "--group",
            "g",
            "--topic",
            "t",
            "--all-topics",
            "--to-earliest"
        ])
        .is_err());
        assert!(parse(&[
            "--reset-offsets",
            "--group",
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--dry-run",
            "--execute"
        ])
        .is_err());
        assert!(action(&[
            "--reset-offsets",
            "--group",
            "g",
            "--topic",
            "t:x",
            "--to-earliest"
        ])
        .is_err());
    }
}
