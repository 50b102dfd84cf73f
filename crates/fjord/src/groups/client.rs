//! Every call `fjord groups` makes to the cluster, through librdkafka.
//!
//! * groups, states and members: `fetch_group_list` (ListGroups, then
//!   DescribeGroups on the broker that listed the group); member assignments
//!   are decoded with [`super::assignment`];
//! * committed offsets: a consumer configured with `group.id = G` (it never
//!   joins the group) asks `committed_offsets` (OffsetFetch) for every
//!   partition of every topic, because librdkafka cannot ask "all topics";
//! * log start / end offsets: `offsets_for_times` with Kafka's special
//!   timestamps -2 / -1 (one ListOffsets per broker instead of one round
//!   trip per partition);
//! * delete: the admin client's DeleteGroups;
//! * reset: a synchronous `commit` (OffsetCommit with generation -1, which
//!   the coordinator accepts only while the group has no members).
//!
//! All calls block; [`super::run`] runs them on tokio's blocking pool.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::groups::GroupInfo;
use rdkafka::metadata::Metadata;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::json;

use super::assignment::decode_assignment;
use super::props::ClientSettings;
use super::render::{self, GroupDesc, MemberDesc, OffsetRow, ResetRow, StateRow};
use super::reset::{self, PartitionState, ResetSpec, TopicScope};
use super::{DescribeView, GroupSelection, OutputFormat};

/// Internal topics whose committed offsets are not looked up.
const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// States in which a group may be reset or deleted (no active members).
const INACTIVE_STATES: &[&str] = &["Empty", "Dead"];

/// Client context that keeps librdkafka's last client-level error (e.g.
/// "connection refused") so failures can say *why*, instead of logging
/// every reconnect attempt.
#[derive(Default)]
pub(crate) struct ToolContext {
    last_error: Mutex<Option<String>>,
}

impl ClientContext for ToolContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!("client error: {error}: {reason}");
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason.to_string());
    }
}

impl ConsumerContext for ToolContext {}

impl ToolContext {
    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

type ToolConsumer = BaseConsumer<ToolContext>;

/// Which partitions a group has committed offsets for, and at what offset.
type Offsets = BTreeMap<(String, i32), i64>;

/// The tool's connection settings; clients are created per operation.
pub(crate) struct GroupTool {
    settings: ClientSettings,
    timeout: Duration,
    /// A group-less consumer for metadata and group listing.
    lookup: ToolConsumer,
}

impl GroupTool {
    pub(crate) fn new(settings: ClientSettings, timeout: Duration) -> anyhow::Result<Self> {
        let lookup = Self::consumer_config(&settings, None)
            .create_with_context(ToolContext::default())
            .context("creating the client (check --command-config)")?;
        Ok(Self {
            settings,
            timeout,
            lookup,
        })
    }

    fn consumer_config(settings: &ClientSettings, group: Option<&str>) -> rdkafka::ClientConfig {
        let mut config = settings.to_client_config();
        if let Some(group) = group {
            config.set("group.id", group);
        }
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        if !settings.entries.contains_key("client.id") {
            config.set("client.id", "fjord-groups");
        }
        // Lag is measured against the high watermark, as Kafka's tool does.
        if !settings.entries.contains_key("isolation.level") {
            config.set("isolation.level", "read_uncommitted");
        }
        config
    }

    /// A consumer configured with `group.id = group`; it never joins.
    fn group_consumer(&self, group: &str) -> anyhow::Result<ToolConsumer> {
        Self::consumer_config(&self.settings, Some(group))
            .create_with_context(ToolContext::default())
            .with_context(|| format!("creating a client for group '{group}'"))
    }

    /// Wraps a client error with what was being done and the last
    /// connection-level error librdkafka reported, if any. Those errors are
    /// only delivered when a client is polled, so both the failing client
    /// and the lookup client are polled (they have nothing assigned, so a
    /// poll returns no records).
    fn fail(&self, doing: &str, err: KafkaError, client: &ToolConsumer) -> anyhow::Error {
        let _ = client.poll(Duration::ZERO);
        let _ = self.lookup.poll(Duration::ZERO);
        let mut msg = format!("{doing} (bootstrap {}): {err}", self.settings.bootstrap);
        match client
            .context()
            .last_error()
            .or_else(|| self.lookup.context().last_error())
        {
            Some(last) => msg.push_str(&format!("; last client error: {last}")),
            None if matches!(
                err.rdkafka_error_code(),
                Some(RDKafkaErrorCode::OperationTimedOut)
            ) =>
            {
                msg.push_str(&format!(
                    "; no answer within {} ms: is a broker reachable there? (raise --timeout \
                     for a slow cluster)",
                    self.timeout.as_millis()
                ));
            }
            None => {}
        }
        anyhow!(msg)
    }

    // ---- cluster queries -------------------------------------------------

    fn metadata(&self, topic: Option<&str>) -> anyhow::Result<Metadata> {
        self.lookup
            .fetch_metadata(topic, self.timeout)
            .map_err(|e| self.fail("fetching metadata", e, &self.lookup))
    }

    /// Every group the cluster lists (all protocol types), sorted by name.
    fn all_groups(&self) -> anyhow::Result<Vec<GroupDesc>> {
        let list = self
            .lookup
            .fetch_group_list(None, self.timeout)
            .map_err(|e| self.fail("listing consumer groups", e, &self.lookup))?;
        let mut groups: Vec<GroupDesc> = list.groups().iter().map(group_desc).collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        groups.dedup_by(|a, b| a.name == b.name);
        Ok(groups)
    }

    /// The consumer groups (protocol type `consumer` or none) of the cluster.
    fn consumer_groups(&self) -> anyhow::Result<Vec<GroupDesc>> {
        Ok(self
            .all_groups()?
            .into_iter()
            .filter(is_consumer_group)
            .collect())
    }

    /// One group, or `None` when no broker lists it.
    fn find_group(&self, name: &str) -> anyhow::Result<Option<GroupDesc>> {
        let list = self
            .lookup
            .fetch_group_list(Some(name), self.timeout)
            .map_err(|e| {
                self.fail(
                    &format!("describing consumer group '{name}'"),
                    e,
                    &self.lookup,
                )
            })?;
        // librdkafka may report the group once per broker that knows it;
        // prefer an entry with a live state over "Dead".
        let mut found: Option<GroupDesc> = None;
        for g in list.groups().iter().filter(|g| g.name() == name) {
            let desc = group_desc(g);
            if found.as_ref().is_none_or(|f| f.state == "Dead") {
                found = Some(desc);
            }
        }
        Ok(found)
    }

    /// Groups named by the selection, with their descriptions (`None`:
    /// unknown to the cluster).
    fn selected(
        &self,
        selection: &GroupSelection,
    ) -> anyhow::Result<Vec<(String, Option<GroupDesc>)>> {
        match selection {
            GroupSelection::All => Ok(self
                .consumer_groups()?
                .into_iter()
                .map(|g| (g.name.clone(), Some(g)))
                .collect()),
            GroupSelection::Named(names) => names
                .iter()
                .map(|n| Ok((n.clone(), self.find_group(n)?)))
                .collect(),
        }
    }

    /// Every partition of every non-internal topic in the cluster.
    fn all_partitions(&self) -> anyhow::Result<Vec<(String, i32)>> {
        let metadata = self.metadata(None)?;
        let mut out = Vec::new();
        for topic in metadata.topics() {
            if topic.error().is_some() || INTERNAL_TOPICS.contains(&topic.name()) {
                continue;
            }
            for p in topic.partitions() {
                out.push((topic.name().to_string(), p.id()));
            }
        }
        Ok(out)
    }

    /// The partition ids of one topic; fails when the topic does not exist.
    fn topic_partitions(&self, topic: &str) -> anyhow::Result<Vec<i32>> {
        let metadata = self.metadata(Some(topic))?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
            bail!("topic '{topic}' does not exist");
        };
        if let Some(err) = t.error() {
            let code = RDKafkaErrorCode::from(err);
            if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                bail!("topic '{topic}' does not exist");
            }
            bail!("topic '{topic}': {code}");
        }
        let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The committed offsets of `group` among `partitions` (partitions
    /// without a commit are left out).
    fn committed(
        &self,
        consumer: &ToolConsumer,
        group: &str,
        partitions: &[(String, i32)],
    ) -> anyhow::Result<Offsets> {
        let mut out = Offsets::new();
        if partitions.is_empty() {
            return Ok(out);
        }
        let tpl = tpl_of(partitions, Offset::Invalid)?;
        let result = consumer.committed_offsets(tpl, self.timeout).map_err(|e| {
            self.fail(
                &format!("fetching committed offsets of group '{group}'"),
                e,
                consumer,
            )
        })?;
        for e in result.elements() {
            if let Err(err) = e.error() {
                tracing::warn!(
                    "committed offset of {}-{} for group '{group}': {err}",
                    e.topic(),
                    e.partition()
                );
                continue;
            }
            if let Offset::Offset(o) = e.offset() {
                out.insert((e.topic().to_string(), e.partition()), o);
            }
        }
        Ok(out)
    }

    /// `offsets_for_times` for `partitions` at one timestamp (or Kafka's
    /// special -1 latest / -2 earliest); `None` where no offset was found.
    fn offsets_at(
        &self,
        consumer: &ToolConsumer,
        partitions: &[(String, i32)],
        at: Offset,
        what: &str,
    ) -> anyhow::Result<BTreeMap<(String, i32), Option<i64>>> {
        let mut out = BTreeMap::new();
        if partitions.is_empty() {
            return Ok(out);
        }
        let tpl = tpl_of(partitions, at)?;
        let result = consumer
            .offsets_for_times(tpl, self.timeout)
            .map_err(|e| self.fail(&format!("fetching {what} offsets"), e, consumer))?;
        for e in result.elements() {
            let key = (e.topic().to_string(), e.partition());
            if let Err(err) = e.error() {
                bail!("fetching the {what} offset of {}-{}: {err}", key.0, key.1);
            }
            out.insert(
                key,
                match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                },
            );
        }
        Ok(out)
    }

    /// Log-end offsets; partitions whose offset could not be read are left
    /// out (shown as "-") with a warning instead of failing the describe.
    fn log_end_offsets(&self, consumer: &ToolConsumer, partitions: &[(String, i32)]) -> Offsets {
        match self.offsets_at(consumer, partitions, Offset::End, "log-end") {
            Ok(map) => map.into_iter().filter_map(|(k, v)| Some((k, v?))).collect(),
            Err(err) => {
                eprintln!("Warning: {err:#}");
                Offsets::new()
            }
        }
    }

    /// The coordinator column of `--describe --state`: known for certain
    /// only on a single-broker cluster (librdkafka does not expose which
    /// broker answered DescribeGroups).
    fn coordinator_label(&self) -> Option<String> {
        let metadata = self.metadata(None).ok()?;
        match metadata.brokers() {
            [only] => Some(format!("{}:{} ({})", only.host(), only.port(), only.id())),
            _ => None,
        }
    }

    // ---- actions ---------------------------------------------------------

    pub(crate) fn list(
        &self,
        with_state: bool,
        states: &[String],
        output: OutputFormat,
    ) -> anyhow::Result<()> {
        let groups: Vec<GroupDesc> = self
            .consumer_groups()?
            .into_iter()
            .filter(|g| states.is_empty() || states.contains(&g.state.to_ascii_lowercase()))
            .collect();
        match output {
            OutputFormat::Json => {
                let items: Vec<_> = groups
                    .iter()
                    .map(|g| json!({"group": g.name, "state": g.state}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            }
            OutputFormat::Table if with_state => {
                let pairs: Vec<(String, String)> = groups
                    .iter()
                    .map(|g| (g.name.clone(), g.state.clone()))
                    .collect();
                print!("{}", render::list_state_table(&pairs));
            }
            OutputFormat::Table => {
                for g in &groups {
                    println!("{}", g.name);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn describe(
        &self,
        selection: &GroupSelection,
        view: DescribeView,
        output: OutputFormat,
    ) -> anyhow::Result<()> {
        let mut missing = Vec::new();
        let mut json_items = Vec::new();
        let mut state_rows = Vec::new();
        let coordinator = if view == DescribeView::State {
            self.coordinator_label()
        } else {
            None
        };
        for (name, desc) in self.selected(selection)? {
            // Offsets are needed for the offsets view, and to tell an
            // offsets-only group (committed by assign()-ing consumers, not
            // listed by every broker) from a group that does not exist.
            let needs_offsets =
                view == DescribeView::Offsets || desc.as_ref().is_none_or(|d| d.state == "Dead");
            let mut offsets_view = None;
            let mut desc = desc;
            if needs_offsets {
                let consumer = self.group_consumer(&name)?;
                let mut partitions = self.all_partitions()?;
                if let Some(d) = &desc {
                    for m in &d.members {
                        partitions.extend(m.assignment.iter().cloned());
                    }
                }
                partitions.sort();
                partitions.dedup();
                let committed = self.committed(&consumer, &name, &partitions)?;
                if desc.as_ref().is_none_or(|d| d.state == "Dead") {
                    if committed.is_empty() {
                        missing.push(name.clone());
                        continue;
                    }
                    desc = Some(GroupDesc {
                        name: name.clone(),
                        state: "Empty".into(),
                        protocol_type: String::new(),
                        protocol: String::new(),
                        members: Vec::new(),
                    });
                }
                let desc = desc.as_ref().expect("set above");
                if view == DescribeView::Offsets {
                    let mut wanted: BTreeSet<(String, i32)> = committed.keys().cloned().collect();
                    for m in &desc.members {
                        wanted.extend(m.assignment.iter().cloned());
                    }
                    let wanted: Vec<(String, i32)> = wanted.into_iter().collect();
                    let log_end = self.log_end_offsets(&consumer, &wanted);
                    offsets_view = Some(render::offset_rows(desc, &committed, &log_end));
                }
            }
            let desc = desc.expect("groups without a description were skipped");
            if output == OutputFormat::Table && view != DescribeView::State {
                match desc.state.as_str() {
                    "Empty" | "Dead" => {
                        eprintln!("\nConsumer group '{name}' has no active members.")
                    }
                    "PreparingRebalance" | "CompletingRebalance" => {
                        eprintln!("\nWarning: Consumer group '{name}' is rebalancing.")
                    }
                    _ => {}
                }
            }
            match view {
                DescribeView::Offsets => {
                    let rows: Vec<OffsetRow> = offsets_view.unwrap_or_default();
                    match output {
                        OutputFormat::Table => {
                            println!();
                            print!("{}", render::offsets_table(&name, &rows));
                        }
                        OutputFormat::Json => json_items.push(json!({
                            "group": name,
                            "state": desc.state,
                            "offsets": rows,
                        })),
                    }
                }
                DescribeView::Members { verbose } => match output {
                    OutputFormat::Table => {
                        println!();
                        print!("{}", render::members_table(&desc, verbose));
                    }
                    OutputFormat::Json => {
                        let members: Vec<_> = desc
                            .members
                            .iter()
                            .map(|m| {
                                let assignment: Vec<_> = m
                                    .assignment
                                    .iter()
                                    .map(|(t, p)| json!({"topic": t, "partition": p}))
                                    .collect();
                                json!({
                                    "consumer_id": m.consumer_id,
                                    "host": m.host,
                                    "client_id": m.client_id,
                                    "partitions": m.assignment.len(),
                                    "assignment": assignment,
                                })
                            })
                            .collect();
                        json_items.push(json!({
                            "group": name,
                            "state": desc.state,
                            "members": members,
                        }));
                    }
                },
                DescribeView::State => {
                    let row = StateRow {
                        group: name.clone(),
                        coordinator: coordinator.clone(),
                        assignment_strategy: desc.protocol.clone(),
                        state: desc.state.clone(),
                        members: desc.members.len(),
                    };
                    match output {
                        OutputFormat::Table => state_rows.push(row),
                        OutputFormat::Json => json_items.push(serde_json::to_value(&row)?),
                    }
                }
            }
        }
        if !state_rows.is_empty() {
            println!();
            print!("{}", render::state_table(&state_rows));
        }
        if output == OutputFormat::Json {
            println!("{}", serde_json::to_string_pretty(&json_items)?);
        }
        if !missing.is_empty() {
            match missing.as_slice() {
                [one] => bail!("Consumer group '{one}' does not exist."),
                _ => bail!("Consumer groups {} do not exist.", quote_list(&missing)),
            }
        }
        Ok(())
    }

    pub(crate) fn delete(
        &self,
        selection: &GroupSelection,
        output: OutputFormat,
    ) -> anyhow::Result<()> {
        let names: Vec<String> = match selection {
            GroupSelection::Named(names) => names.clone(),
            GroupSelection::All => self
                .consumer_groups()?
                .into_iter()
                .map(|g| g.name)
                .collect(),
        };
        if names.is_empty() {
            match output {
                OutputFormat::Table => println!("There are no consumer groups to delete."),
                OutputFormat::Json => println!("[]"),
            }
            return Ok(());
        }
        let admin: AdminClient<ToolContext> = self
            .settings
            .to_client_config()
            .create_with_context(ToolContext::default())
            .context("creating the admin client")?;
        let opts = AdminOptions::new()
            .request_timeout(Some(self.timeout))
            .operation_timeout(Some(self.timeout));
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let results = tokio::runtime::Handle::current()
            .block_on(admin.delete_groups(&refs, &opts))
            .map_err(|e| self.fail("deleting consumer groups", e, &self.lookup))?;
        let mut deleted = Vec::new();
        let mut failed = Vec::new();
        for r in results {
            match r {
                Ok(g) => deleted.push(g),
                Err((g, code)) => failed.push((g, code)),
            }
        }
        match output {
            OutputFormat::Json => {
                let mut items: Vec<_> = deleted
                    .iter()
                    .map(|g| json!({"group": g, "deleted": true, "error": null}))
                    .collect();
                items.extend(failed.iter().map(
                    |(g, code)| json!({"group": g, "deleted": false, "error": code.to_string()}),
                ));
                println!("{}", serde_json::to_string_pretty(&items)?);
            }
            OutputFormat::Table => {
                if failed.is_empty() {
                    println!(
                        "Deletion of requested consumer groups ({}) was successful.",
                        quote_list(&deleted)
                    );
                } else {
                    println!("Deletion of some consumer groups failed:");
                    for (g, code) in &failed {
                        println!("* Group '{g}' could not be deleted due to: {code}");
                    }
                    if !deleted.is_empty() {
                        println!(
                            "\nThese consumer groups were deleted successfully: {}",
                            quote_list(&deleted)
                        );
                    }
                }
            }
        }
        if !failed.is_empty() {
            let names: Vec<String> = failed.iter().map(|(g, _)| g.clone()).collect();
            bail!("could not delete consumer group(s) {}", quote_list(&names));
        }
        Ok(())
    }

    pub(crate) fn reset(
        &self,
        selection: &GroupSelection,
        scope: &TopicScope,
        spec: ResetSpec,
        execute: bool,
        output: OutputFormat,
    ) -> anyhow::Result<()> {
        let mut failures: Vec<String> = Vec::new();
        let mut json_items = Vec::new();
        for (name, desc) in self.selected(selection)? {
            let state = desc.as_ref().map_or("Dead", |d| d.state.as_str());
            if !INACTIVE_STATES.contains(&state) {
                let msg = format!(
                    "Assignments can only be reset if the group '{name}' is inactive, \
                     but the current state is {state}."
                );
                failures.push(msg);
                continue;
            }
            match self.reset_group(&name, scope, spec, execute) {
                Ok(rows) => match output {
                    OutputFormat::Table => {
                        println!();
                        print!("{}", render::reset_table(&rows));
                    }
                    OutputFormat::Json => json_items.extend(
                        rows.iter()
                            .map(serde_json::to_value)
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                },
                Err(err) => {
                    failures.push(format!("resetting group '{name}': {err:#}"));
                }
            }
        }
        if output == OutputFormat::Json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "executed": execute,
                    "offsets": json_items,
                }))?
            );
        }
        match failures.len() {
            0 => Ok(()),
            1 => Err(anyhow!(failures.remove(0))),
            n => Err(anyhow!(
                "{n} groups could not be reset:\n{}",
                failures.join("\n")
            )),
        }
    }

    /// Computes (and with `execute` commits) the new offsets of one group.
    fn reset_group(
        &self,
        group: &str,
        scope: &TopicScope,
        spec: ResetSpec,
        execute: bool,
    ) -> anyhow::Result<Vec<ResetRow>> {
        let consumer = self.group_consumer(group)?;
        let (partitions, committed) = match scope {
            TopicScope::AllTopics => {
                let all = self.all_partitions()?;
                let committed = self.committed(&consumer, group, &all)?;
                let partitions: Vec<(String, i32)> = committed.keys().cloned().collect();
                (partitions, committed)
            }
            TopicScope::Topics(specs) => {
                let mut partitions = Vec::new();
                for spec in specs {
                    let existing = self.topic_partitions(&spec.topic)?;
                    match &spec.partitions {
                        None => {
                            partitions.extend(existing.iter().map(|p| (spec.topic.clone(), *p)))
                        }
                        Some(wanted) => {
                            for p in wanted {
                                if !existing.contains(p) {
                                    bail!(
                                        "topic '{}' has no partition {p} (partitions: 0..{})",
                                        spec.topic,
                                        existing.len()
                                    );
                                }
                                partitions.push((spec.topic.clone(), *p));
                            }
                        }
                    }
                }
                partitions.sort();
                partitions.dedup();
                let committed = self.committed(&consumer, group, &partitions)?;
                (partitions, committed)
            }
        };
        if partitions.is_empty() {
            bail!("no partitions to reset (the group has no committed offsets)");
        }
        let low = self.offsets_at(&consumer, &partitions, Offset::Beginning, "earliest")?;
        let high = self.offsets_at(&consumer, &partitions, Offset::End, "latest")?;
        let by_time = match spec {
            ResetSpec::ToTimestamp(ts) => {
                self.offsets_at(&consumer, &partitions, Offset::Offset(ts), "by-time")?
            }
            _ => BTreeMap::new(),
        };
        let mut rows = Vec::with_capacity(partitions.len());
        for tp in &partitions {
            let label = format!("{}-{}", tp.0, tp.1);
            let (Some(Some(low)), Some(Some(high))) = (low.get(tp), high.get(tp)) else {
                bail!("could not read the earliest/latest offsets of {label}");
            };
            let state = PartitionState {
                low: *low,
                high: *high,
                committed: committed.get(tp).copied(),
                by_time: by_time.get(tp).copied().flatten(),
            };
            let target = reset::target_offset(spec, state, &label)?;
            if let Some(warning) = target.warning {
                eprintln!("WARN: {warning}");
            }
            rows.push(ResetRow {
                group: group.to_string(),
                topic: tp.0.clone(),
                partition: tp.1,
                new_offset: target.offset,
            });
        }
        if execute {
            let mut tpl = TopicPartitionList::with_capacity(rows.len());
            for r in &rows {
                tpl.add_partition_offset(&r.topic, r.partition, Offset::Offset(r.new_offset))
                    .context("building the offsets to commit")?;
            }
            consumer.commit(&tpl, CommitMode::Sync).map_err(|e| {
                self.fail(
                    &format!("committing the new offsets of group '{group}'"),
                    e,
                    &consumer,
                )
            })?;
        }
        Ok(rows)
    }
}

/// Whether a group uses the consumer protocol (or none: offsets-only groups).
fn is_consumer_group(g: &GroupDesc) -> bool {
    g.protocol_type.is_empty() || g.protocol_type == "consumer"
}

/// Copies librdkafka's group description, decoding member assignments of
/// consumer-protocol groups.
fn group_desc(g: &GroupInfo) -> GroupDesc {
    let consumer = g.protocol_type() == "consumer";
    let members = g
        .members()
        .iter()
        .map(|m| {
            let assignment = match m.assignment() {
                Some(bytes) if consumer => match decode_assignment(bytes) {
                    Ok(a) => a.partitions().map(|(t, p)| (t.to_string(), p)).collect(),
                    Err(err) => {
                        eprintln!("Warning: group '{}' member '{}': {err}", g.name(), m.id());
                        Vec::new()
                    }
                },
                _ => Vec::new(),
            };
            MemberDesc {
                consumer_id: m.id().to_string(),
                host: m.client_host().to_string(),
                client_id: m.client_id().to_string(),
                assignment,
            }
        })
        .collect();
    GroupDesc {
        name: g.name().to_string(),
        state: g.state().to_string(),
        protocol_type: g.protocol_type().to_string(),
        protocol: g.protocol().to_string(),
        members,
    }
}

/// A topic-partition list with every partition at `offset`.
fn tpl_of(partitions: &[(String, i32)], offset: Offset) -> anyhow::Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for (t, p) in partitions {
        tpl.add_partition_offset(t, *p, offset)
            .with_context(|| format!("adding {t}-{p} to a request"))?;
    }
    Ok(tpl)
}

/// `'a', 'b'` as Kafka's messages list group names.
fn quote_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_consumer_filter() {
        assert_eq!(quote_list(&["a".into(), "b".into()]), "'a', 'b'");
        let mut g = GroupDesc {
            name: "g".into(),
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            members: vec![],
        };
        assert!(is_consumer_group(&g));
        g.protocol_type = String::new();
        assert!(is_consumer_group(&g));
        g.protocol_type = "connect".into();
        assert!(!is_consumer_group(&g));
    }
}
