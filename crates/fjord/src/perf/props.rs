//! Client configuration for the perf tools: `KEY=VALUE` lists, Java
//! `.properties` files, and how they combine with `--bootstrap-server`.
//!
//! Kafka users bring Java client configuration; librdkafka accepts most of the
//! common names unchanged (`acks`, `linger.ms`, `batch.size`,
//! `compression.type`, `client.id`, ...). The few Java-only keys that would
//! make librdkafka refuse to start are translated or dropped with a note, so a
//! `producer.properties` written for Kafka's tool mostly just works.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};

/// Where the bootstrap servers come from when nothing says otherwise.
pub(super) const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// Parses `KEY=VALUE` items (as given to `--producer-props`); the value may
/// itself contain `=`, it is split at the first one.
pub(super) fn parse_kv_list(items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| {
            let Some((k, v)) = item.split_once('=') else {
                bail!("invalid property {item:?}: expected KEY=VALUE");
            };
            let k = k.trim();
            if k.is_empty() {
                bail!("invalid property {item:?}: empty key");
            }
            Ok((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Client properties files use Java `.properties` syntax; the binary has one parser for it.
pub(super) fn parse_properties(text: &str) -> Vec<(String, String)> {
    crate::properties::parse(text).into_iter().collect()
}

/// Reads and parses a `.properties` file, naming the file in any error.
pub(super) fn load_properties_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading properties file {}", path.display()))?;
    Ok(parse_properties(&text))
}

/// The client configuration a perf tool ends up with.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ClientSettings {
    /// The bootstrap servers actually used.
    pub(super) bootstrap: String,
    /// Every other librdkafka property, later sources overriding earlier ones.
    pub(super) entries: BTreeMap<String, String>,
    /// Human-readable notes about keys that were translated or dropped.
    pub(super) notes: Vec<String>,
}

impl ClientSettings {
    /// Builds the `rdkafka` configuration from these settings.
    pub(super) fn to_client_config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        for (k, v) in &self.entries {
            config.set(k, v);
        }
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }
}

/// Combines the configuration sources in increasing precedence: `defaults`,
/// the properties file, the `KEY=VALUE` list, then the explicit
/// `--bootstrap-server` flag (which wins over any `bootstrap.servers`, as in
/// Kafka's tools); without any of them the bootstrap is [`DEFAULT_BOOTSTRAP`].
pub(super) fn resolve(
    defaults: &[(&str, &str)],
    file: &[(String, String)],
    props: &[(String, String)],
    bootstrap_flag: Option<&str>,
) -> ClientSettings {
    let mut entries: BTreeMap<String, String> = defaults
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut notes = Vec::new();
    for (k, v) in file.iter().chain(props) {
        match k.as_str() {
            "key.serializer" | "value.serializer" | "key.deserializer" | "value.deserializer" => {
                notes.push(format!("ignoring {k}: the perf tools move raw bytes"));
            }
            "max.block.ms" => {
                notes.push(format!(
                    "ignoring {k}: librdkafka never blocks; a full queue is retried"
                ));
            }
            "buffer.memory" => match v.parse::<u64>() {
                Ok(bytes) => {
                    let kb = (bytes / 1024).max(1);
                    notes.push(format!("{k}={v} -> queue.buffering.max.kbytes={kb}"));
                    entries.insert("queue.buffering.max.kbytes".into(), kb.to_string());
                }
                Err(_) => {
                    // Let librdkafka report the bad value in its own words.
                    entries.insert(k.clone(), v.clone());
                }
            },
            _ => {
                entries.insert(k.clone(), v.clone());
            }
        }
    }
    let from_props = entries.remove("bootstrap.servers");
    let bootstrap = bootstrap_flag
        .map(str::to_string)
        .or(from_props)
        .unwrap_or_else(|| DEFAULT_BOOTSTRAP.to_string());
    ClientSettings {
        bootstrap,
        entries,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn kv_list_splits_at_first_equals() {
        let got = parse_kv_list(&s(&[
            "acks=all",
            "sasl.jaas.config=a=b",
            " linger.ms = 5 ",
            "x=",
        ]))
        .unwrap();
        assert_eq!(
            got,
            vec![
                kv("acks", "all"),
                kv("sasl.jaas.config", "a=b"),
                kv("linger.ms", "5"),
                kv("x", "")
            ]
        );
    }

    #[test]
    fn kv_list_rejects_malformed_items() {
        assert!(parse_kv_list(&s(&["acks"])).is_err());
        assert!(parse_kv_list(&s(&["=1"])).is_err());
    }

    #[test]
    fn properties_file_syntax() {
        let text = "# comment\n! also comment\n\nacks = all\nlinger.ms:5\nclient.id perf\n\
                    compression.type=\\\n   lz4\nempty=\n  bootstrap.servers=h:1,h:2  \n";
        let mut expected = vec![
            kv("acks", "all"),
            kv("linger.ms", "5"),
            kv("client.id", "perf"),
            kv("compression.type", "lz4"),
            kv("empty", ""),
            kv("bootstrap.servers", "h:1,h:2"),
        ];
        expected.sort();
        assert_eq!(parse_properties(text), expected);
    }

    #[test]
    fn bootstrap_precedence() {
        let file = vec![kv("bootstrap.servers", "file:1")];
        let props = vec![kv("bootstrap.servers", "props:1")];
        assert_eq!(resolve(&[], &[], &[], None).bootstrap, DEFAULT_BOOTSTRAP);
        assert_eq!(resolve(&[], &file, &[], None).bootstrap, "file:1");
        assert_eq!(resolve(&[], &file, &props, None).bootstrap, "props:1");
        let r = resolve(&[], &file, &props, Some("flag:1"));
        assert_eq!(r.bootstrap, "flag:1");
        assert!(!r.entries.contains_key("bootstrap.servers"));
    }

    #[test]
    fn later_sources_override_and_java_keys_are_translated() {
        let defaults = [("group.id", "g"), ("acks", "1")];
        let file = vec![
            kv("acks", "0"),
            kv("key.serializer", "x.ByteArraySerializer"),
        ];
        let props = vec![kv("acks", "all"), kv("buffer.memory", "67108864")];
        let r = resolve(&defaults, &file, &props, None);
        assert_eq!(r.entries.get("acks").map(String::as_str), Some("all"));
        assert_eq!(r.entries.get("group.id").map(String::as_str), Some("g"));
        assert_eq!(
            r.entries
                .get("queue.buffering.max.kbytes")
                .map(String::as_str),
            Some("65536")
        );
        assert!(!r.entries.contains_key("key.serializer"));
        assert!(!r.entries.contains_key("buffer.memory"));
        assert_eq!(r.notes.len(), 2);
    }
}
