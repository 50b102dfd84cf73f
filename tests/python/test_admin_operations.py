"""Admin operations through confluent-kafka (librdkafka) and kafka-python: incremental and
legacy config changes with their error codes, DescribeCluster, DescribeLogDirs."""

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

TIMEOUT = 15


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create(client, name, partitions=1):
    futures = client.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(TIMEOUT)


def describe(client, name):
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    return client.describe_configs([resource])[resource].result(TIMEOUT)


def test_incremental_alter_configs_set_append_subtract_delete(broker):
    client = admin(broker)
    create(client, "inc-alter")
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "inc-alter",
        incremental_configs=[
            ConfigEntry("retention.ms", "123456", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    client.incremental_alter_configs([resource])[resource].result(TIMEOUT)
    configs = describe(client, "inc-alter")
    assert configs["retention.ms"].value == "123456"
    assert configs["segment.bytes"].value == "1048576"
    assert configs["retention.ms"].source == 1  # DYNAMIC_TOPIC_CONFIG

    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "inc-alter",
        incremental_configs=[
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ],
    )
    client.incremental_alter_configs([resource])[resource].result(TIMEOUT)
    configs = describe(client, "inc-alter")
    assert configs["retention.ms"].value == "604800000"
    assert configs["segment.bytes"].value == "1048576"

    # APPEND to a list key that already holds the only allowed value keeps it single.
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "inc-alter",
        incremental_configs=[
            ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.APPEND),
        ],
    )
    client.incremental_alter_configs([resource])[resource].result(TIMEOUT)
    assert describe(client, "inc-alter")["cleanup.policy"].value == "delete"


@pytest.mark.parametrize(
    "key,value",
    [("retention.msx", "1"), ("retention.ms", "soon"), ("cleanup.policy", "shred")],
)
def test_bad_config_is_invalid_config_with_a_message(broker, key, value):
    client = admin(broker)
    create(client, "bad-alter")
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "bad-alter",
        incremental_configs=[ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)],
    )
    with pytest.raises(Exception) as raised:
        client.incremental_alter_configs([resource])[resource].result(TIMEOUT)
    error = raised.value.args[0]
    assert error.code() == KafkaError.INVALID_CONFIG
    assert key in error.str() or value in error.str()


def test_append_to_a_non_list_config_is_refused(broker):
    client = admin(broker)
    create(client, "append-alter")
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "append-alter",
        incremental_configs=[
            ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.APPEND)
        ],
    )
    with pytest.raises(Exception) as raised:
        client.incremental_alter_configs([resource])[resource].result(TIMEOUT)
    assert raised.value.args[0].code() == KafkaError.INVALID_CONFIG


def test_create_partitions_and_describe_cluster(broker):
    client = admin(broker)
    create(client, "grow-py", 1)
    client.create_partitions([NewPartitions("grow-py", 3)])["grow-py"].result(TIMEOUT)
    metadata = client.list_topics(timeout=TIMEOUT)
    assert len(metadata.topics["grow-py"].partitions) == 3
    cluster = client.describe_cluster().result(TIMEOUT)
    assert [node.id for node in cluster.nodes] == [1]
    assert cluster.controller.id == 1
    assert cluster.cluster_id


def test_kafka_python_describe_log_dirs_reports_partition_sizes(broker):
    from kafka import KafkaAdminClient, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(50):
        producer.send("dirs-py", key=b"k", value=b"v" * 100)
    producer.flush(TIMEOUT)
    producer.close()
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        response = client.describe_log_dirs()
    finally:
        client.close()
    dirs = response.log_dirs if hasattr(response, "log_dirs") else response.results
    assert len(dirs) == 1
    entry = dirs[0]
    topics = entry[2] if isinstance(entry, tuple) else entry.topics
    sizes = {}
    for topic in topics:
        name = topic[0] if isinstance(topic, tuple) else topic.name
        for partition in topic[1] if isinstance(topic, tuple) else topic.partitions:
            index = partition[0] if isinstance(partition, tuple) else partition.partition_index
            size = partition[1] if isinstance(partition, tuple) else partition.partition_size
            sizes[(name, index)] = size
    assert sizes[("dirs-py", 0)] > 50 * 100
