//! The hosted logs follow the image: created, reopened with their data, deleted, replaced
//! when a topic of the same name comes back with a new id, and reconfigured.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fjord_protocol::batch::{build_batch, BatchSpec, RecordSpec};
use uuid::Uuid;

use super::*;
use crate::config::BrokerConfig;
use crate::flusher::Flusher;

fn cluster_config(dir: &Path) -> Arc<BrokerConfig> {
    let props: BTreeMap<String, String> = [
        ("process.roles", "broker,controller"),
        ("node.id", "1"),
        ("controller.quorum.voters", "1@127.0.0.1:1"),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:1",
        ),
        ("controller.listener.names", "CONTROLLER"),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ),
        ("log.dirs", dir.to_str().unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Arc::new(BrokerConfig::from_properties(&props).unwrap().0)
}

fn open(dir: &Path) -> LogManager {
    LogManager::open(cluster_config(dir), Flusher::start()).unwrap()
}

fn hosted(name: &str, id: u128, count: i32, here: &[i32]) -> HostedTopic {
    HostedTopic {
        name: name.into(),
        id: Uuid::from_u128(id),
        partition_count: count,
        hosted: here.iter().copied().collect::<BTreeSet<i32>>(),
        configs: BTreeMap::new(),
    }
}

fn append_one(logs: &LogManager, topic: &str, partition: i32) -> i64 {
    let p = logs
        .topic(topic)
        .unwrap()
        .partition(partition)
        .unwrap()
        .clone();
    let mut batch = build_batch(
        &BatchSpec::default(),
        &[RecordSpec {
            timestamp: 1,
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            headers: Vec::new(),
        }],
    );
    p.become_leader(1, 0, 0, vec![1], vec![1], 1).unwrap();
    p.append(&mut batch, 1).unwrap();
    p.offsets().unwrap().log_end_offset
}

#[tokio::test]
async fn only_hosted_partitions_get_logs_marked_with_the_topic_id() {
    let dir = tempfile::tempdir().unwrap();
    let logs = open(dir.path());
    let report = logs.sync_topics(&[hosted("orders", 7, 6, &[1, 4])]);
    assert!(report.failures.is_empty());
    let topic = logs.topic("orders").unwrap();
    assert_eq!(topic.partition_count(), 6);
    assert_eq!(
        topic.hosted().map(|p| p.index).collect::<Vec<_>>(),
        vec![1, 4]
    );
    assert!(topic.partition(0).is_none());
    for p in [1, 4] {
        let marker = dir.path().join(format!("orders-{p}/partition.metadata"));
        let text = std::fs::read_to_string(marker).unwrap();
        assert_eq!(
            text,
            format!(
                "version: 0\ntopic_id: {}\n",
                base64_url(Uuid::from_u128(7).as_bytes())
            )
        );
    }
    assert!(!dir.path().join("orders-0").exists());
    // Cluster mode never writes the single-node files.
    assert!(!dir.path().join(super::super::TOPICS_FILE).exists());
}

#[tokio::test]
async fn logs_reopen_with_their_data_and_go_when_the_topic_goes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let logs = open(dir.path());
        logs.sync_topics(&[hosted("t", 1, 2, &[0, 1])]);
        assert_eq!(append_one(&logs, "t", 0), 1);
        assert_eq!(append_one(&logs, "t", 0), 2);
        logs.shutdown().unwrap();
    }
    let logs = open(dir.path());
    // Nothing is opened before the image says so.
    assert!(logs.topic("t").is_none());
    logs.sync_topics(&[hosted("t", 1, 2, &[0, 1])]);
    let p0 = logs.topic("t").unwrap().partition(0).unwrap().clone();
    assert_eq!(p0.offsets().unwrap().log_end_offset, 2);
    // The topic is deleted from the image: its logs go.
    logs.sync_topics(&[]);
    assert!(logs.topic("t").is_none());
    assert!(!p0.is_open());
    assert!(!dir.path().join("t-0").exists());
    assert!(!dir.path().join("t-1").exists());
}

#[tokio::test]
async fn a_recreated_topic_of_the_same_name_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    {
        let logs = open(dir.path());
        logs.sync_topics(&[hosted("t", 1, 1, &[0])]);
        append_one(&logs, "t", 0);
        logs.shutdown().unwrap();
    }
    // Deleted and recreated while this broker was down: the image has a new id.
    let logs = open(dir.path());
    logs.sync_topics(&[hosted("t", 2, 1, &[0])]);
    let topic = logs.topic("t").unwrap();
    assert_eq!(topic.id, Uuid::from_u128(2));
    let p0 = topic.partition(0).unwrap();
    assert_eq!(p0.offsets().unwrap().log_end_offset, 0);
    // And while running: the old logs are deleted, the new ones empty.
    append_one(&logs, "t", 0);
    logs.sync_topics(&[hosted("t", 3, 1, &[0])]);
    let p0 = logs.topic("t").unwrap().partition(0).unwrap().clone();
    assert_eq!(p0.offsets().unwrap().log_end_offset, 0);
}

#[tokio::test]
async fn partitions_moved_away_are_deleted_and_strays_removed_once_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    {
        let logs = open(dir.path());
        logs.sync_topics(&[hosted("a", 1, 2, &[0, 1]), hosted("b", 2, 1, &[0])]);
        logs.shutdown().unwrap();
    }
    let logs = open(dir.path());
    logs.sync_topics(&[hosted("a", 1, 2, &[0, 1])]);
    logs.sync_topics(&[hosted("a", 1, 2, &[1])]);
    assert!(!dir.path().join("a-0").exists());
    assert!(dir.path().join("a-1").exists());
    // "b" was deleted while the broker was down; its directory is a stray.
    assert!(dir.path().join("b-0").exists());
    std::fs::create_dir_all(dir.path().join("not-a-partition")).unwrap();
    assert_eq!(logs.remove_stray_logs().unwrap(), 1);
    assert!(!dir.path().join("b-0").exists());
    assert!(dir.path().join("a-1").exists());
    assert!(dir.path().join("not-a-partition").exists());
}

#[tokio::test]
async fn topic_configs_follow_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let logs = open(dir.path());
    logs.sync_topics(&[hosted("t", 1, 1, &[0])]);
    let mut changed = hosted("t", 1, 1, &[0]);
    changed
        .configs
        .insert("retention.ms".into(), "12345".into());
    logs.sync_topics(&[changed.clone()]);
    let topic = logs.topic("t").unwrap();
    let overrides = topic.config_snapshot().overrides;
    assert_eq!(
        overrides.get("retention.ms").map(String::as_str),
        Some("12345")
    );
    // A value the broker cannot accept keeps the previous configuration.
    let mut bad = changed;
    bad.configs.insert("retention.ms".into(), "soon".into());
    logs.sync_topics(&[bad]);
    let overrides = logs.topic("t").unwrap().config_snapshot().overrides;
    assert_eq!(
        overrides.get("retention.ms").map(String::as_str),
        Some("12345")
    );
}

#[tokio::test]
async fn single_node_topic_changes_are_refused_in_cluster_mode() {
    let dir = tempfile::tempdir().unwrap();
    let logs = open(dir.path());
    let new = super::super::NewTopic {
        name: "t".into(),
        num_partitions: 1,
        replication_factor: 1,
        has_assignments: false,
        configs: BTreeMap::new(),
    };
    assert!(matches!(
        logs.create_topic(&new),
        Err(TopicError::ManagedByController)
    ));
    assert!(matches!(
        logs.create_internal_topic("__consumer_offsets", 1, BTreeMap::new()),
        Err(TopicError::ManagedByController)
    ));
    assert!(logs.follows_image());
}

#[tokio::test]
async fn a_log_dir_of_another_cluster_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("meta.properties"),
        "version=1\ncluster.id=someone-else\nnode.id=1\n",
    )
    .unwrap();
    let err = LogManager::open(cluster_config(dir.path()), Flusher::start()).unwrap_err();
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        chain.push_str(&format!(": {e}"));
        source = e.source();
    }
    assert!(chain.contains("belongs to cluster someone-else"), "{chain}");
}
