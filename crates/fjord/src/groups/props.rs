//! Client configuration for `fjord groups`: the `--command-config` file (Java
//! `.properties` syntax, as Kafka's tool reads it) combined with
//! `--bootstrap-server`.
//!
//! librdkafka accepts most common Java client names unchanged
//! (`security.protocol`, `sasl.mechanism`, `client.id`, ...); the few
//! Java-only keys that would make librdkafka refuse to start are dropped with
//! a note.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

/// Where the bootstrap servers come from when nothing says otherwise.
pub(super) const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// Java client keys librdkafka does not know; they are dropped with a note.
const JAVA_ONLY_KEYS: &[&str] = &[
    "key.serializer",
    "value.serializer",
    "key.deserializer",
    "value.deserializer",
    "default.api.timeout.ms",
    "sasl.jaas.config",
    "ssl.truststore.type",
    "ssl.keystore.type",
];

/// The client configuration the tool ends up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientSettings {
    /// The bootstrap servers actually used.
    pub(crate) bootstrap: String,
    /// Every other librdkafka property from the file.
    pub(crate) entries: BTreeMap<String, String>,
    /// Human-readable notes about keys that were dropped.
    pub(crate) notes: Vec<String>,
}

impl ClientSettings {
    /// Builds the `rdkafka` configuration from these settings.
    pub(crate) fn to_client_config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        for (k, v) in &self.entries {
            config.set(k, v);
        }
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }
}

/// Client properties files use Java `.properties` syntax; the binary has one parser for it.
pub(super) fn parse_properties(text: &str) -> Vec<(String, String)> {
    crate::properties::parse(text).into_iter().collect()
}

/// Combines the properties from the file with the `--bootstrap-server` flag,
/// which wins over a `bootstrap.servers` in the file (as in Kafka's tools).
pub(super) fn resolve(file: &[(String, String)], bootstrap_flag: Option<&str>) -> ClientSettings {
    let mut entries = BTreeMap::new();
    let mut notes = Vec::new();
    for (k, v) in file {
        if JAVA_ONLY_KEYS.contains(&k.as_str()) {
            notes.push(format!("ignoring {k}: not a librdkafka setting"));
        } else {
            entries.insert(k.clone(), v.clone());
        }
    }
    let from_file = entries.remove("bootstrap.servers");
    let bootstrap = bootstrap_flag
        .map(str::to_string)
        .or(from_file)
        .unwrap_or_else(|| DEFAULT_BOOTSTRAP.to_string());
    ClientSettings {
        bootstrap,
        entries,
        notes,
    }
}

/// Reads the optional `--command-config` file and resolves the settings.
pub(super) fn resolve_settings(
    bootstrap_flag: Option<&str>,
    command_config: Option<&Path>,
) -> anyhow::Result<ClientSettings> {
    let file = match command_config {
        Some(path) => parse_properties(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading --command-config {}", path.display()))?,
        ),
        None => Vec::new(),
    };
    Ok(resolve(&file, bootstrap_flag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn properties_syntax() {
        let text = "# comment\n! also\n\na=1\nb : 2\nc 3\nd=x=y\nlong=one\\\n  two\nempty=\n";
        let mut expected = vec![
            kv("a", "1"),
            kv("b", "2"),
            kv("c", "3"),
            kv("d", "x=y"),
            kv("long", "onetwo"),
            kv("empty", ""),
        ];
        expected.sort();
        assert_eq!(parse_properties(text), expected);
    }

    #[test]
    fn bootstrap_precedence_and_java_keys() {
        let file = vec![
            kv("bootstrap.servers", "file:1"),
            kv("security.protocol", "SASL_PLAINTEXT"),
            kv("key.deserializer", "org.Foo"),
        ];
        let s = resolve(&file, None);
        assert_eq!(s.bootstrap, "file:1");
        assert_eq!(
            s.entries.get("security.protocol").map(String::as_str),
            Some("SASL_PLAINTEXT")
        );
        assert!(!s.entries.contains_key("key.deserializer"));
        assert!(!s.entries.contains_key("bootstrap.servers"));
        assert_eq!(s.notes.len(), 1);
        assert_eq!(resolve(&file, Some("flag:2")).bootstrap, "flag:2");
        assert_eq!(resolve(&[], None).bootstrap, DEFAULT_BOOTSTRAP);
    }
}
