//! What the operator tools share: the connection flags, the client
//! configuration built from `--command-config` and friends, a librdkafka
//! context that keeps librdkafka's own chatter off the terminal, bounded
//! waits for the cluster, error wording, and text/JSON output helpers.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::client::Client;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::ClientContext;

/// Where the bootstrap servers come from when nothing says otherwise.
pub(crate) const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// How long the tools wait for the cluster to answer a metadata request
/// before declaring it unreachable.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long one admin operation (create, delete, describe, alter) may take.
pub(crate) const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Java client keys librdkafka does not know; they are dropped with a note
/// instead of making librdkafka refuse to start.
const JAVA_ONLY_KEYS: &[&str] = &[
    "key.serializer",
    "value.serializer",
    "key.deserializer",
    "value.deserializer",
    "default.api.timeout.ms",
    "sasl.jaas.config",
    "ssl.truststore.type",
    "ssl.keystore.type",
    "max.block.ms",
    "buffer.memory",
    "interceptor.classes",
    "partitioner.class",
];

/// The connection flags every tool takes, spelled as in Kafka's tools.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct ConnectionArgs {
    /// Broker(s) to bootstrap from, HOST:PORT[,HOST:PORT...]. Default
    /// 127.0.0.1:9092; a bootstrap.servers in --command-config is used when
    /// this flag is absent.
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub(crate) bootstrap_server: Option<String>,

    /// Client configuration properties file (Java .properties syntax), e.g.
    /// security settings. Passed to librdkafka; Java-only keys are dropped.
    #[arg(long = "command-config", value_name = "FILE")]
    pub(crate) command_config: Option<PathBuf>,
}

/// How results are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum OutputFormat {
    /// Kafka-style text (the default).
    #[default]
    Table,
    /// JSON on stdout, for scripts.
    Json,
}

/// Parses `KEY=VALUE` (as given to `--config`, `--property`,
/// `--producer-property`); the value may itself contain `=`, it is split at
/// the first one.
pub(crate) fn parse_kv(item: &str) -> anyhow::Result<(String, String)> {
    let Some((k, v)) = item.split_once('=') else {
        bail!("invalid property {item:?}: expected KEY=VALUE");
    };
    let k = k.trim();
    if k.is_empty() {
        bail!("invalid property {item:?}: empty key");
    }
    Ok((k.to_string(), v.to_string()))
}

/// Parses every item of a `KEY=VALUE` list, naming the flag in errors.
pub(crate) fn parse_kv_list(flag: &str, items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|i| parse_kv(i).with_context(|| flag.to_string()))
        .collect()
}

/// Reads and parses a Java `.properties` file, naming the file in errors.
pub(crate) fn load_properties(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading properties file {}", path.display()))?;
    Ok(crate::properties::parse(&text).into_iter().collect())
}

/// A client configuration assembled from several sources, later ones
/// overriding earlier ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClientSettings {
    /// Every librdkafka property except `bootstrap.servers`, in insertion order.
    entries: Vec<(String, String)>,
    bootstrap_from_props: Option<String>,
    /// Human-readable notes about keys that were dropped.
    pub(crate) notes: Vec<String>,
}

impl ClientSettings {
    /// Starts from the `--command-config` file, if any.
    pub(crate) fn from_connection(conn: &ConnectionArgs) -> anyhow::Result<Self> {
        let mut settings = Self::default();
        if let Some(path) = &conn.command_config {
            settings.extend(load_properties(path)?);
        }
        Ok(settings)
    }

    /// Sets one property (dropping Java-only keys with a note).
    pub(crate) fn set(&mut self, key: &str, value: &str) {
        if key == "bootstrap.servers" {
            self.bootstrap_from_props = Some(value.to_string());
            return;
        }
        if JAVA_ONLY_KEYS.contains(&key) {
            self.notes.push(format!(
                "ignoring {key}: a Java client setting librdkafka does not know"
            ));
            return;
        }
        self.entries.retain(|(k, _)| k != key);
        self.entries.push((key.to_string(), value.to_string()));
    }

    /// Sets a property only if no source set it yet.
    pub(crate) fn set_default(&mut self, key: &str, value: &str) {
        if self.get(key).is_none() {
            self.set(key, value);
        }
    }

    /// Sets every pair, in order.
    pub(crate) fn extend(&mut self, pairs: impl IntoIterator<Item = (String, String)>) {
        for (k, v) in pairs {
            self.set(&k, &v);
        }
    }

    /// The value of a property, if set.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The bootstrap servers: the flag wins over `bootstrap.servers` from the
    /// properties, as in Kafka's tools; then the default.
    pub(crate) fn bootstrap(&self, flag: Option<&str>) -> String {
        flag.map(str::to_string)
            .or_else(|| self.bootstrap_from_props.clone())
            .unwrap_or_else(|| DEFAULT_BOOTSTRAP.to_string())
    }

    /// Builds the librdkafka configuration, printing the notes to stderr.
    pub(crate) fn to_client_config(&self, bootstrap: &str) -> rdkafka::ClientConfig {
        for note in &self.notes {
            eprintln!("note: {note}");
        }
        let mut config = rdkafka::ClientConfig::new();
        for (k, v) in &self.entries {
            config.set(k, v);
        }
        config.set("bootstrap.servers", bootstrap);
        config
    }
}

/// librdkafka context for the tools: remembers the last client-level error
/// (e.g. "Connection refused") so a timeout can say why, instead of letting
/// librdkafka print every reconnect attempt.
#[derive(Debug, Default)]
pub(crate) struct QuietContext {
    last_error: Mutex<Option<String>>,
}

impl QuietContext {
    /// The last client-level error librdkafka reported, if any.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(target: "librdkafka", ?level, "{fac}: {log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", "client error: {error}: {reason}");
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason.to_string());
    }
}

impl ConsumerContext for QuietContext {}

/// Fetches cluster metadata (all topics, or one), bounded by
/// [`CONNECT_TIMEOUT`]; an unreachable cluster becomes one clear error naming
/// the bootstrap servers and librdkafka's last complaint.
pub(crate) fn fetch_metadata<C: ClientContext>(
    client: &Client<C>,
    topic: Option<&str>,
    bootstrap: &str,
    last_error: impl Fn() -> Option<String>,
) -> anyhow::Result<Metadata> {
    client
        .fetch_metadata(topic, CONNECT_TIMEOUT)
        .map_err(|e| unreachable_error(bootstrap, &e, last_error()))
}

/// The error for a cluster that did not answer in time.
pub(crate) fn unreachable_error(
    bootstrap: &str,
    error: &KafkaError,
    last_client_error: Option<String>,
) -> anyhow::Error {
    let mut message = format!(
        "could not reach the cluster at {bootstrap} within {} s ({error})",
        CONNECT_TIMEOUT.as_secs()
    );
    if let Some(reason) = last_client_error {
        message.push_str(&format!(": {reason}"));
    }
    anyhow::anyhow!(message)
}

/// Runs a blocking librdkafka call from async code without stalling the runtime.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Awaits an admin future, bounded by [`ADMIN_TIMEOUT`].
pub(crate) async fn bounded<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, KafkaError>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(ADMIN_TIMEOUT + Duration::from_secs(5), fut).await {
        Ok(result) => result.with_context(|| what.to_string()),
        Err(_) => bail!("{what}: no answer within {} s", ADMIN_TIMEOUT.as_secs()),
    }
}

/// Admin options with the tools' timeouts.
pub(crate) fn admin_options() -> rdkafka::admin::AdminOptions {
    rdkafka::admin::AdminOptions::new()
        .request_timeout(Some(ADMIN_TIMEOUT))
        .operation_timeout(Some(ADMIN_TIMEOUT))
}

/// Bytes as text: UTF-8 when valid, otherwise with invalid sequences replaced.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether `name` matches `pattern`, which is a topic name or a small regular
/// expression as Kafka's tools accept for `--topic` (whole-name match):
/// literal characters, `.` (any character), `*`, `+` and `?` after an atom,
/// `\` escapes, `|` alternatives, and an optional leading `^` / trailing `$`.
/// Character classes, groups and counted repetition are refused.
pub(crate) fn topic_matches(pattern: &str, name: &str) -> anyhow::Result<bool> {
    let pattern = pattern.strip_prefix('^').unwrap_or(pattern);
    let pattern = pattern
        .strip_suffix('$')
        .filter(|p| !p.ends_with('\\'))
        .unwrap_or(pattern);
    if let Some(c) = pattern.chars().find(|c| "[](){}^$".contains(*c)) {
        bail!("--topic {pattern:?}: `{c}` is not supported; use a name or a pattern of literals, `.`, `*`, `+`, `?` and `|`");
    }
    let name: Vec<char> = name.chars().collect();
    for alternative in split_alternatives(pattern) {
        let atoms = compile(&alternative)?;
        if match_atoms(&atoms, &name) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `pattern` is a plain topic name (no pattern characters except `.`,
/// which topic names may contain and which also matches itself).
pub(crate) fn is_literal_topic(pattern: &str) -> bool {
    !pattern.chars().any(|c| "*+?|\\[](){}^$".contains(c))
}

fn split_alternatives(pattern: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in pattern.chars() {
        if escaped {
            out.last_mut().expect("non-empty").push(c);
            escaped = false;
        } else if c == '\\' {
            out.last_mut().expect("non-empty").push(c);
            escaped = true;
        } else if c == '|' {
            out.push(String::new());
        } else {
            out.last_mut().expect("non-empty").push(c);
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Atom {
    Any,
    Char(char),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    One,
    ZeroOrMore,
    OneOrMore,
    ZeroOrOne,
}

fn compile(pattern: &str) -> anyhow::Result<Vec<(Atom, Repeat)>> {
    let mut out: Vec<(Atom, Repeat)> = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        let atom = match c {
            '.' => Atom::Any,
            '\\' => match chars.next() {
                Some(e) => Atom::Char(e),
                None => bail!("--topic {pattern:?}: trailing backslash"),
            },
            '*' | '+' | '?' => {
                let repeat = match c {
                    '*' => Repeat::ZeroOrMore,
                    '+' => Repeat::OneOrMore,
                    _ => Repeat::ZeroOrOne,
                };
                match out.last_mut() {
                    Some(last) if last.1 == Repeat::One => last.1 = repeat,
                    _ => bail!("--topic {pattern:?}: `{c}` must follow a character or `.`"),
                }
                continue;
            }
            c => Atom::Char(c),
        };
        out.push((atom, Repeat::One));
    }
    Ok(out)
}

fn match_atoms(atoms: &[(Atom, Repeat)], name: &[char]) -> bool {
    let Some(((atom, repeat), rest)) = atoms.split_first() else {
        return name.is_empty();
    };
    let fits = |c: &char| match atom {
        Atom::Any => true,
        Atom::Char(x) => x == c,
    };
    match repeat {
        Repeat::One => name.first().is_some_and(fits) && match_atoms(rest, &name[1..]),
        Repeat::ZeroOrOne => {
            (name.first().is_some_and(fits) && match_atoms(rest, &name[1..]))
                || match_atoms(rest, name)
        }
        Repeat::ZeroOrMore | Repeat::OneOrMore => {
            let run = name.iter().take_while(|c| fits(c)).count();
            let min = usize::from(*repeat == Repeat::OneOrMore);
            (min..=run).rev().any(|n| match_atoms(rest, &name[n..]))
        }
    }
}

/// The `"topic"` and `"partition"` of entry `i` of a `"partitions"` list in Kafka's tool JSON
/// (reassignment and election files), with a message naming the entry when one is missing.
pub(crate) fn json_topic_partition(
    entry: &serde_json::Value,
    i: usize,
) -> anyhow::Result<(String, i32)> {
    let topic = entry
        .get("topic")
        .and_then(|t| t.as_str())
        .with_context(|| format!("partitions[{i}] has no string \"topic\""))?;
    let partition = entry
        .get("partition")
        .and_then(|p| p.as_i64())
        .and_then(|p| i32::try_from(p).ok())
        .with_context(|| format!("partitions[{i}] has no integer \"partition\""))?;
    Ok((topic.to_string(), partition))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_parsing() {
        assert_eq!(
            parse_kv("a=b=c").unwrap(),
            ("a".to_string(), "b=c".to_string())
        );
        assert_eq!(parse_kv("k=").unwrap(), ("k".to_string(), String::new()));
        assert!(parse_kv("novalue").is_err());
        assert!(parse_kv("=v").is_err());
    }

    #[test]
    fn settings_precedence_and_java_keys() {
        let mut s = ClientSettings::default();
        s.extend([
            ("bootstrap.servers".to_string(), "file:1".to_string()),
            ("acks".to_string(), "1".to_string()),
            ("key.serializer".to_string(), "x".to_string()),
        ]);
        s.set("acks", "all");
        s.set_default("acks", "0");
        s.set_default("linger.ms", "5");
        assert_eq!(s.get("acks"), Some("all"));
        assert_eq!(s.get("linger.ms"), Some("5"));
        assert_eq!(s.get("key.serializer"), None);
        assert_eq!(s.notes.len(), 1);
        assert_eq!(s.bootstrap(None), "file:1");
        assert_eq!(s.bootstrap(Some("flag:1")), "flag:1");
        assert_eq!(ClientSettings::default().bootstrap(None), DEFAULT_BOOTSTRAP);
    }

    #[test]
    fn topic_patterns() {
        let m = |p: &str, n: &str| topic_matches(p, n).unwrap();
        assert!(m("orders", "orders"));
        assert!(!m("orders", "orders2"));
        assert!(m("orders.*", "orders"));
        assert!(m("orders.*", "orders-eu"));
        assert!(!m("orders.*", "xorders"));
        assert!(m("a.c", "abc"));
        assert!(m("a\\.c", "a.c"));
        assert!(!m("a\\.c", "abc"));
        assert!(m("x|y.+", "yz"));
        assert!(!m("x|y.+", "y"));
        assert!(m("^t-?1$", "t1"));
        assert!(m("^t-?1$", "t-1"));
        assert!(m("__.*", "__consumer_offsets"));
        assert!(topic_matches("[a-z]+", "a").is_err());
        assert!(topic_matches("*a", "a").is_err());
        assert!(is_literal_topic("my.topic_1-x"));
        assert!(!is_literal_topic("my.*"));
    }
}
