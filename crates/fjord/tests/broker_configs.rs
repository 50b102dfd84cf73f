//! Dynamic broker configuration with a real client (librdkafka through the `rdkafka` crate):
//! log defaults changed at runtime on a BROKER resource, reported by DescribeConfigs, inherited
//! by topics without an override, applied to existing partitions, and kept across a restart.
//!
//! The rdkafka crate reports every AlterConfigs resource as successful, so effects are checked
//! through DescribeConfigs; the error codes are checked by tests/python/test_broker_configs.py.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rdkafka::admin::{AlterConfig, ConfigEntry, ConfigSource, ResourceSpecifier};

fn describe(bootstrap: &str, resource: ResourceSpecifier<'_>, key: &str) -> ConfigEntry {
    let admin = admin(bootstrap);
    let results =
        futures::executor::block_on(admin.describe_configs([&resource], &admin_options()))
            .expect("DescribeConfigs");
    let resource = results
        .into_iter()
        .next()
        .expect("one result")
        .expect("describe ok");
    resource
        .entries
        .into_iter()
        .find(|e| e.name == key)
        .unwrap_or_else(|| panic!("{key} not described"))
}

fn alter(bootstrap: &str, change: AlterConfig<'_>) {
    let admin = admin(bootstrap);
    futures::executor::block_on(admin.alter_configs([&change], &admin_options()))
        .expect("AlterConfigs");
}

#[test]
fn given_dynamic_broker_retention_should_apply_to_topics_and_survive_restart() {
    let broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "inherits", 1);
    create_topic(&bootstrap, "overrides", 1);
    alter(
        &bootstrap,
        AlterConfig::new(ResourceSpecifier::Topic("overrides")).set("retention.ms", "9000000"),
    );

    alter(
        &bootstrap,
        AlterConfig::new(ResourceSpecifier::Broker(1)).set("log.retention.ms", "3600000"),
    );
    let check = |bootstrap: &str| {
        let entry = describe(bootstrap, ResourceSpecifier::Broker(1), "log.retention.ms");
        assert_eq!(entry.value.as_deref(), Some("3600000"));
        assert!(
            matches!(entry.source, ConfigSource::DynamicBroker),
            "{entry:?}"
        );
        assert!(!entry.is_read_only);
        let entry = describe(
            bootstrap,
            ResourceSpecifier::Topic("inherits"),
            "retention.ms",
        );
        assert_eq!(entry.value.as_deref(), Some("3600000"));
        assert!(
            matches!(entry.source, ConfigSource::DynamicBroker),
            "{entry:?}"
        );
        let entry = describe(
            bootstrap,
            ResourceSpecifier::Topic("overrides"),
            "retention.ms",
        );
        assert_eq!(
            entry.value.as_deref(),
            Some("9000000"),
            "a topic override wins"
        );
        assert!(
            matches!(entry.source, ConfigSource::DynamicTopic),
            "{entry:?}"
        );
    };
    check(&bootstrap);
    let listeners = describe(&bootstrap, ResourceSpecifier::Broker(1), "listeners");
    assert!(listeners.is_read_only, "static keys are read-only");

    // A refused change (read-only key) leaves everything as it was.
    alter(
        &bootstrap,
        AlterConfig::new(ResourceSpecifier::Broker(1))
            .set("log.retention.ms", "1")
            .set("listeners", "PLAINTEXT://127.0.0.1:1"),
    );
    check(&bootstrap);

    let mut broker = broker;
    restart(&mut broker);
    check(&broker.bootstrap());

    // The legacy whole-set AlterConfigs with no entries removes the dynamic value again.
    alter(
        &broker.bootstrap(),
        AlterConfig::new(ResourceSpecifier::Broker(1)),
    );
    let entry = describe(
        &broker.bootstrap(),
        ResourceSpecifier::Topic("inherits"),
        "retention.ms",
    );
    assert_eq!(entry.value.as_deref(), Some("604800000"));
    assert!(matches!(entry.source, ConfigSource::Default), "{entry:?}");
}

#[test]
fn given_dynamic_broker_segment_and_retention_bytes_should_apply_to_existing_partitions() {
    let broker = start_broker(&[("log.retention.check.interval.ms", "200")]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "shrinks", 1);
    alter(
        &bootstrap,
        AlterConfig::new(ResourceSpecifier::Broker(1))
            .set("log.segment.bytes", "4096")
            .set("log.retention.bytes", "8192"),
    );
    assert_eq!(
        describe(
            &bootstrap,
            ResourceSpecifier::Topic("shrinks"),
            "segment.bytes"
        )
        .value
        .as_deref(),
        Some("4096")
    );
    let mut records = generate_records(400, 13, now_ms());
    for r in &mut records {
        r.partition = Some(0);
        r.value = Some(vec![b'v'; 200]);
    }
    produce_ok(
        &bootstrap,
        "shrinks",
        &records,
        &[("linger.ms", "0"), ("batch.num.messages", "5")],
        Duration::from_secs(30),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let (low, high) = loop {
        let (low, high) = watermarks(&bootstrap, "shrinks", 0);
        if low > 0 || Instant::now() > deadline {
            break (low, high);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(high, 400);
    assert!(
        low > 0,
        "dynamic log.retention.bytes must delete old segments of an existing partition"
    );
}
