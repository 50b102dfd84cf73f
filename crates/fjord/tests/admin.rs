//! Topic administration through librdkafka's AdminClient and raw requests:
//! create/delete with their errors, describe_configs, auto-creation.

mod common;

use std::future::Future;
use std::time::Duration;

use common::raw::{self, RawConnection};
use common::*;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    DescribeConfigsRequest, MetadataRequest, MetadataResponse, ProduceRequest,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Upper bound for a whole admin scenario.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(90);

/// Awaits `future` with the per-call timeout.
async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(CALL_TIMEOUT, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what} did not complete within {CALL_TIMEOUT:?}"),
    }
}

/// Runs an async scenario with an overall deadline.
async fn scenario(future: impl Future<Output = ()>) {
    tokio::time::timeout(SCENARIO_TIMEOUT, future)
        .await
        .expect("scenario timed out");
}

/// Raw Metadata v12 for `topics`.
fn raw_metadata(
    broker: &fjord_testkit::BrokerProcess,
    topics: &[&str],
    allow_auto_create: bool,
) -> MetadataResponse {
    let request = MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(raw::topic_name(t))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(allow_auto_create);
    RawConnection::connect(broker.address()).request(&request, 12)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_admin_client_when_creating_and_deleting_topics_should_apply_and_report_kafka_errors()
{
    let broker = start_broker(&[("num.partitions", "5")]);
    let bootstrap = broker.bootstrap();
    scenario(async {
        let admin = admin(&bootstrap);
        let options = admin_options();

        let created = bounded(
            "create",
            admin.create_topics(
                [
                    &NewTopic::new("orders", 3, TopicReplication::Fixed(1)),
                    &NewTopic::new("defaults", -1, TopicReplication::Fixed(-1)),
                ],
                &options,
            ),
        )
        .await
        .expect("CreateTopics");
        assert_eq!(
            created,
            vec![Ok("orders".to_string()), Ok("defaults".to_string())]
        );
        assert_eq!(partition_count(&bootstrap, "orders"), Ok(3));
        assert_eq!(
            partition_count(&bootstrap, "defaults"),
            Ok(5),
            "-1 partitions means num.partitions"
        );

        let failures = bounded(
            "create failures",
            admin.create_topics(
                [
                    &NewTopic::new("orders", 3, TopicReplication::Fixed(1)),
                    &NewTopic::new("zero-partitions", 0, TopicReplication::Fixed(1)),
                    &NewTopic::new("three-replicas", 1, TopicReplication::Fixed(3)),
                    &NewTopic::new("bad name!", 1, TopicReplication::Fixed(1)),
                    &NewTopic::new("__internal-lookalike", 1, TopicReplication::Fixed(1)),
                    &NewTopic::new("..", 1, TopicReplication::Fixed(1)),
                ],
                &options,
            ),
        )
        .await
        .expect("CreateTopics");
        assert_eq!(
            failures,
            vec![
                Err(("orders".to_string(), RDKafkaErrorCode::TopicAlreadyExists)),
                Err((
                    "zero-partitions".to_string(),
                    RDKafkaErrorCode::InvalidPartitions
                )),
                Err((
                    "three-replicas".to_string(),
                    RDKafkaErrorCode::InvalidReplicationFactor
                )),
                Err(("bad name!".to_string(), RDKafkaErrorCode::InvalidTopic)),
                Err((
                    "__internal-lookalike".to_string(),
                    RDKafkaErrorCode::InvalidTopic
                )),
                Err(("..".to_string(), RDKafkaErrorCode::InvalidTopic)),
            ]
        );
        let long_name = "x".repeat(250);
        let too_long = bounded(
            "create long name",
            admin.create_topics(
                [&NewTopic::new(&long_name, 1, TopicReplication::Fixed(1))],
                &options,
            ),
        )
        .await
        .expect("CreateTopics");
        assert_eq!(
            too_long,
            vec![Err((long_name.clone(), RDKafkaErrorCode::InvalidTopic))]
        );
        let max_name = "y".repeat(249);
        let longest = bounded(
            "create 249-char name",
            admin.create_topics(
                [&NewTopic::new(&max_name, 1, TopicReplication::Fixed(1))],
                &options,
            ),
        )
        .await
        .expect("CreateTopics");
        assert_eq!(
            longest,
            vec![Ok(max_name.clone())],
            "249 characters is legal"
        );
        for failed in ["zero-partitions", "three-replicas"] {
            assert_eq!(
                partition_count(&bootstrap, failed),
                Err(RDKafkaErrorCode::UnknownTopicOrPartition),
                "{failed} must not exist"
            );
        }

        let validated = bounded(
            "validate only",
            admin.create_topics(
                [&NewTopic::new("dry-run", 2, TopicReplication::Fixed(1))],
                &admin_options().validate_only(true),
            ),
        )
        .await
        .expect("CreateTopics validate_only");
        assert_eq!(validated, vec![Ok("dry-run".to_string())]);
        assert_eq!(
            partition_count(&bootstrap, "dry-run"),
            Err(RDKafkaErrorCode::UnknownTopicOrPartition),
            "validate_only must not create"
        );
        let validated_bad = bounded(
            "validate only (already exists)",
            admin.create_topics(
                [&NewTopic::new("orders", 2, TopicReplication::Fixed(1))],
                &admin_options().validate_only(true),
            ),
        )
        .await
        .expect("CreateTopics validate_only");
        assert_eq!(
            validated_bad,
            vec![Err((
                "orders".to_string(),
                RDKafkaErrorCode::TopicAlreadyExists
            ))]
        );

        // Write to it, delete it, recreate it empty.
        produce_ok(
            &bootstrap,
            "orders",
            &generate_records(30, 1, now_ms()),
            &[],
            Duration::from_secs(20),
        );
        let deleted = bounded("delete", admin.delete_topics(&["orders"], &options))
            .await
            .expect("DeleteTopics");
        assert_eq!(deleted, vec![Ok("orders".to_string())]);
        assert_eq!(
            partition_count(&bootstrap, "orders"),
            Err(RDKafkaErrorCode::UnknownTopicOrPartition)
        );
        let deleted_again = bounded(
            "delete again",
            admin.delete_topics(&["orders", "never-existed"], &options),
        )
        .await
        .expect("DeleteTopics");
        assert_eq!(
            deleted_again,
            vec![
                Err((
                    "orders".to_string(),
                    RDKafkaErrorCode::UnknownTopicOrPartition
                )),
                Err((
                    "never-existed".to_string(),
                    RDKafkaErrorCode::UnknownTopicOrPartition
                )),
            ]
        );
        let recreated = bounded(
            "recreate",
            admin.create_topics(
                [&NewTopic::new("orders", 2, TopicReplication::Fixed(1))],
                &options,
            ),
        )
        .await
        .expect("CreateTopics");
        assert_eq!(recreated, vec![Ok("orders".to_string())]);
        assert_eq!(partition_count(&bootstrap, "orders"), Ok(2));
        assert_eq!(
            watermarks(&bootstrap, "orders", 0),
            (0, 0),
            "a recreated topic starts empty"
        );
        assert_eq!(
            watermarks(&bootstrap, "orders", 1),
            (0, 0),
            "a recreated topic starts empty"
        );
        let stale = broker.partition_dir("orders", 2);
        assert!(
            !stale.exists(),
            "deleted partition directory {} still there",
            stale.display()
        );
        assert_clients_work(&bootstrap, "orders");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_topic_and_broker_when_describing_configs_should_show_effective_values() {
    let broker = start_broker(&[("log.segment.bytes", "1048576"), ("num.partitions", "4")]);
    let bootstrap = broker.bootstrap();
    scenario(async {
        let admin = admin(&bootstrap);
        let created = bounded(
            "create",
            admin.create_topics(
                [
                    &NewTopic::new("plain", 1, TopicReplication::Fixed(1)),
                    &NewTopic::new("tuned", 1, TopicReplication::Fixed(1))
                        .set("retention.ms", "3600000")
                        .set("max.message.bytes", "500000"),
                    // A key not acted on yet accepts only its default: refused, not ignored.
                    &NewTopic::new("compacted", 1, TopicReplication::Fixed(1))
                        .set("preallocate", "true"),
                    &NewTopic::new("typo", 1, TopicReplication::Fixed(1))
                        .set("retention.msx", "1"),
                ],
                &admin_options(),
            ),
        )
        .await
        .expect("CreateTopics");
        assert_eq!(
            created,
            vec![
                Ok("plain".to_string()),
                Ok("tuned".to_string()),
                Err(("compacted".to_string(), RDKafkaErrorCode::InvalidConfig)),
                Err(("typo".to_string(), RDKafkaErrorCode::InvalidConfig)),
            ]
        );

        let node_id = {
            let metadata = consumer(&bootstrap)
                .fetch_metadata(None, CALL_TIMEOUT)
                .expect("metadata");
            assert_eq!(metadata.brokers().len(), 1, "one node");
            metadata.brokers()[0].id()
        };
        let described = bounded(
            "describe",
            admin.describe_configs(
                [
                    &ResourceSpecifier::Topic("plain"),
                    &ResourceSpecifier::Topic("tuned"),
                    &ResourceSpecifier::Broker(node_id),
                ],
                &admin_options(),
            ),
        )
        .await
        .expect("DescribeConfigs");
        assert_eq!(described.len(), 3);
        let value = |index: usize, name: &str| -> Option<String> {
            let resource = described[index]
                .as_ref()
                .unwrap_or_else(|err| panic!("resource {index}: {err:?}"));
            resource
                .get(name)
                .unwrap_or_else(|| panic!("resource {index} lacks {name}"))
                .value
                .clone()
        };
        assert_eq!(value(0, "retention.ms").as_deref(), Some("604800000"));
        assert_eq!(
            value(0, "segment.bytes").as_deref(),
            Some("1048576"),
            "broker's log.segment.bytes"
        );
        assert_eq!(value(0, "cleanup.policy").as_deref(), Some("delete"));
        assert_eq!(
            value(1, "retention.ms").as_deref(),
            Some("3600000"),
            "topic override"
        );
        assert_eq!(
            value(1, "max.message.bytes").as_deref(),
            Some("500000"),
            "topic override"
        );
        assert_eq!(value(1, "cleanup.policy").as_deref(), Some("delete"));
        assert_eq!(value(1, "segment.bytes").as_deref(), Some("1048576"));
        assert_eq!(value(2, "log.segment.bytes").as_deref(), Some("1048576"));
        assert_eq!(value(2, "num.partitions").as_deref(), Some("4"));
        assert_eq!(
            value(2, "auto.create.topics.enable").as_deref(),
            Some("true")
        );

        // rdkafka's describe_configs drops per-resource errors (it always
        // yields Ok), so the missing-topic error is checked on the wire.
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("no-such-topic"))
                .with_configuration_keys(None),
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("plain"))
                .with_configuration_keys(Some(vec![StrBytes::from_static_str("retention.ms")])),
        ]);
        let response = RawConnection::connect(broker.address()).request(&request, 4);
        /// (resource name, error code, [(config name, value)]).
        type Described = Vec<(String, i16, Vec<(String, Option<String>)>)>;
        let results: Described = response
            .results
            .iter()
            .map(|r| {
                (
                    r.resource_name.to_string(),
                    r.error_code,
                    r.configs.iter().map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))).collect(),
                )
            })
            .collect();
        assert_eq!(
            results,
            vec![
                ("no-such-topic".to_string(), 3, vec![]),
                ("plain".to_string(), 0, vec![("retention.ms".to_string(), Some("604800000".to_string()))]),
            ],
            "DescribeConfigs v4: missing topic -> UNKNOWN_TOPIC_OR_PARTITION; configuration_keys filter"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_auto_create_when_producing_to_new_topic_should_create_it_with_num_partitions() {
    let broker = start_broker(&[
        ("num.partitions", "3"),
        ("auto.create.topics.enable", "true"),
    ]);
    let bootstrap = broker.bootstrap();
    scenario(async {
        let records = generate_records(60, 3, now_ms());
        let bootstrap2 = bootstrap.clone();
        let positions = tokio::task::spawn_blocking(move || {
            produce_ok(
                &bootstrap2,
                "auto-by-produce",
                &records,
                &[],
                Duration::from_secs(30),
            )
        })
        .await
        .expect("producer task");
        assert_eq!(positions.len(), 60);
        assert_eq!(partition_count(&bootstrap, "auto-by-produce"), Ok(3));
        for partition in 0..3 {
            assert!(
                broker.partition_dir("auto-by-produce", partition).is_dir(),
                "partition dir {partition}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_auto_create_when_metadata_requests_a_new_topic_should_create_it_only_if_allowed() {
    let broker = start_broker(&[("num.partitions", "3")]);
    scenario(async {
        let not_allowed = raw_metadata(&broker, &["meta-no-auto"], false);
        assert_eq!(not_allowed.topics.len(), 1);
        assert_eq!(
            not_allowed.topics[0].error_code, 3,
            "UNKNOWN_TOPIC_OR_PARTITION without allow_auto_topic_creation"
        );
        assert_eq!(
            partition_count(&broker.bootstrap(), "meta-no-auto"),
            Err(RDKafkaErrorCode::UnknownTopicOrPartition)
        );

        let allowed = raw_metadata(&broker, &["meta-auto"], true);
        assert_eq!(allowed.topics.len(), 1);
        // Kafka answers LEADER_NOT_AVAILABLE (5) while a fresh topic is being created, or 0.
        assert!(
            [0, 5].contains(&allowed.topics[0].error_code),
            "auto-create via metadata: error {}",
            allowed.topics[0].error_code
        );
        let again = raw_metadata(&broker, &["meta-auto"], false);
        assert_eq!(again.topics[0].error_code, 0);
        assert_eq!(
            again.topics[0].partitions.len(),
            3,
            "num.partitions honored"
        );
        let mut indexes: Vec<i32> = again.topics[0]
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .collect();
        indexes.sort_unstable();
        assert_eq!(indexes, vec![0, 1, 2]);
        for partition in &again.topics[0].partitions {
            assert_eq!(partition.error_code, 0);
            assert_eq!(
                partition.leader_id, again.brokers[0].node_id,
                "the only node leads"
            );
        }
        assert_eq!(again.brokers.len(), 1);
        assert_eq!(again.brokers[0].host.as_str(), "127.0.0.1");
        assert_eq!(
            again.brokers[0].port,
            i32::from(broker.address().port()),
            "advertised port is the bound port"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_auto_create_disabled_when_producing_to_missing_topic_should_fail_unknown_topic() {
    let broker = start_broker(&[("auto.create.topics.enable", "false")]);
    let bootstrap = broker.bootstrap();
    scenario(async {
        let allowed = raw_metadata(&broker, &["missing"], true);
        assert_eq!(
            allowed.topics[0].error_code, 3,
            "metadata must not auto-create when disabled"
        );

        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(raw::topic_name("missing"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(raw::encode_batch(1, 10, now_ms()).freeze()))])]);
        let response = RawConnection::connect(broker.address()).request(&request, 9);
        assert_eq!(
            response.responses[0].partition_responses[0].error_code, 3,
            "raw produce to a missing topic"
        );

        let records = generate_records(3, 4, now_ms());
        let bootstrap2 = bootstrap.clone();
        let deliveries = tokio::task::spawn_blocking(move || {
            produce_all(
                &bootstrap2,
                "missing",
                &records,
                &[
                    ("topic.metadata.propagation.max.ms", "1000"),
                    ("message.timeout.ms", "20000"),
                ],
                Duration::from_secs(25),
            )
        })
        .await
        .expect("producer task");
        for delivery in &deliveries {
            assert!(
                matches!(
                    delivery,
                    Err(KafkaError::MessageProduction(
                        RDKafkaErrorCode::UnknownTopicOrPartition
                    ))
                ),
                "delivery to a missing topic: {delivery:?}"
            );
        }
        assert_eq!(
            partition_count(&bootstrap, "missing"),
            Err(RDKafkaErrorCode::UnknownTopicOrPartition)
        );
    })
    .await;
}
