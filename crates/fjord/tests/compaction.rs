//! Log compaction seen by a real client: many versions of 1,000 keys plus tombstones on a
//! `cleanup.policy=compact` topic with small segments; the cleaner keeps the latest value per
//! key, never reorders offsets, drops tombstones after `delete.retention.ms`, and loses nothing
//! when the broker is killed while cleaning.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::topic_partition_list::Offset;

const KEYS: usize = 1_000;
const VERSIONS: usize = 5;

fn create_compacted(bootstrap: &str, topic: &str) {
    let admin = admin(bootstrap);
    let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "16384")
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("delete.retention.ms", "1000");
    let results = futures::executor::block_on(admin.create_topics([&new_topic], &admin_options()))
        .expect("CreateTopics");
    assert_eq!(results, vec![Ok(topic.to_string())]);
}

/// Versions 0..VERSIONS of every key, every 7th key deleted at the end, then filler records so
/// all of it sits in segments the cleaner may touch. Returns the expected latest value per key.
fn produce_history(bootstrap: &str, topic: &str) -> (BTreeMap<String, Option<Vec<u8>>>, usize) {
    let now = now_ms();
    let mut records = Vec::new();
    let mut latest = BTreeMap::new();
    for version in 0..VERSIONS {
        for k in 0..KEYS {
            let key = format!("key-{k:04}");
            let value = format!("{key}-v{version}").into_bytes();
            latest.insert(key.clone(), Some(value.clone()));
            records.push(TestRecord {
                partition: Some(0),
                key: Some(key.into_bytes()),
                value: Some(value),
                headers: Vec::new(),
                timestamp_ms: now,
            });
        }
    }
    for k in (0..KEYS).step_by(7) {
        let key = format!("key-{k:04}");
        latest.insert(key.clone(), None);
        records.push(TestRecord {
            partition: Some(0),
            key: Some(key.into_bytes()),
            value: None,
            headers: Vec::new(),
            timestamp_ms: now,
        });
    }
    for f in 0..200 {
        let key = format!("filler-{f:04}");
        let value = vec![b'f'; 100];
        latest.insert(key.clone(), Some(value.clone()));
        records.push(TestRecord {
            partition: Some(0),
            key: Some(key.into_bytes()),
            value: Some(value),
            headers: Vec::new(),
            timestamp_ms: now,
        });
    }
    let total = records.len();
    produce_ok(
        bootstrap,
        topic,
        &records,
        &[("linger.ms", "5"), ("batch.num.messages", "50")],
        Duration::from_secs(60),
    );
    (latest, total)
}

/// Reads the whole partition up to its high watermark; checks offsets only increase;
/// returns the last value per key and how many records were read.
fn read_back(bootstrap: &str, topic: &str) -> (BTreeMap<String, Option<Vec<u8>>>, usize) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::topic_partition_list::TopicPartitionList;

    let (low, high) = watermarks(bootstrap, topic, 0);
    let mut config = consumer_config(bootstrap);
    config.set("enable.partition.eof", "true");
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(low))
        .expect("offset");
    consumer.assign(&tpl).expect("assign");
    let mut last = BTreeMap::new();
    let mut previous = -1;
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while previous < high - 1 {
        assert!(
            Instant::now() < deadline,
            "reading {topic} did not reach {high}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => panic!("consume error: {e}"),
            Some(Ok(m)) => {
                assert!(
                    m.offset() > previous,
                    "offsets must strictly increase: {} after {previous}",
                    m.offset()
                );
                previous = m.offset();
                count += 1;
                let key = String::from_utf8(m.key().expect("every record has a key").to_vec())
                    .expect("utf8");
                last.insert(key, m.payload().map(<[u8]>::to_vec));
            }
        }
    }
    (last, count)
}

fn wait_for_compaction(bootstrap: &str, topic: &str, produced: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, count) = read_back(bootstrap, topic);
        if count < produced / 2 {
            return count;
        }
        assert!(
            Instant::now() < deadline,
            "no compaction after 30 s ({count} of {produced} records left)"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn live(map: &BTreeMap<String, Option<Vec<u8>>>) -> BTreeMap<String, Vec<u8>> {
    map.iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
        .collect()
}

#[test]
fn given_compacted_topic_when_cleaner_runs_should_keep_latest_value_per_key() {
    let broker = start_broker(&[("log.cleaner.backoff.ms", "200")]);
    let bootstrap = broker.bootstrap();
    create_compacted(&bootstrap, "compacted");
    let (latest, produced) = produce_history(&bootstrap, "compacted");
    let left = wait_for_compaction(&bootstrap, "compacted", produced);
    let (seen, _) = read_back(&bootstrap, "compacted");
    assert_eq!(
        live(&seen),
        live(&latest),
        "the latest value of every live key survives"
    );
    assert!(left < produced);

    // Tombstones go once delete.retention.ms (1 s) has passed and another pass ran.
    std::thread::sleep(Duration::from_millis(1500));
    let more: Vec<TestRecord> = (0..400)
        .map(|i| TestRecord {
            partition: Some(0),
            key: Some(format!("later-{i:04}").into_bytes()),
            value: Some(vec![b'l'; 100]),
            headers: Vec::new(),
            timestamp_ms: now_ms(),
        })
        .collect();
    produce_ok(
        &bootstrap,
        "compacted",
        &more,
        &[("batch.num.messages", "50")],
        Duration::from_secs(30),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (seen, _) = read_back(&bootstrap, "compacted");
        let tombstones = seen
            .iter()
            .filter(|(k, v)| k.starts_with("key-") && v.is_none())
            .count();
        let deleted_keys_present = seen
            .keys()
            .filter(|k| latest.get(*k).is_some_and(|v| v.is_none()))
            .count();
        if tombstones == 0 && deleted_keys_present == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{tombstones} tombstones still present after delete.retention.ms"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn given_kill_during_cleaning_when_restarted_should_lose_nothing() {
    let mut broker = start_broker(&[("log.cleaner.backoff.ms", "50")]);
    let bootstrap = broker.bootstrap();
    create_compacted(&bootstrap, "compacted-kill");
    let (latest, _) = produce_history(&bootstrap, "compacted-kill");
    // Kill at a few points while the cleaner is busy, restarting each time.
    for delay_ms in [30u64, 90, 170] {
        std::thread::sleep(Duration::from_millis(delay_ms));
        broker.kill().expect("kill -9");
        restart(&mut broker);
    }
    let (seen, _) = read_back(&broker.bootstrap(), "compacted-kill");
    assert_eq!(
        live(&seen),
        live(&latest),
        "no live key lost or changed by an interrupted clean"
    );
}
