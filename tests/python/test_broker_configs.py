"""Dynamic broker configuration: IncrementalAlterConfigs through confluent-kafka (librdkafka) on
this broker's BROKER resource ("1"), legacy AlterConfigs through kafka-python on the cluster-wide
default entity ("", which librdkafka cannot name), the sources DescribeConfigs reports, and
INVALID_CONFIG for read-only, unknown and invalid keys."""

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
)

TIMEOUT = 15
SET = AlterConfigOpType.SET
DELETE = AlterConfigOpType.DELETE


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create(client, name):
    futures = client.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    futures[name].result(TIMEOUT)


def alter(client, name, entries, validate_only=False):
    resource = ConfigResource(ConfigResource.Type.BROKER, name, incremental_configs=entries)
    futures = client.incremental_alter_configs([resource], validate_only=validate_only)
    return futures[resource].result(TIMEOUT)


def describe(client, resource_type, name):
    resource = ConfigResource(resource_type, name)
    return client.describe_configs([resource])[resource].result(TIMEOUT)


def legacy_alter_default_entity(broker, configs):
    """AlterConfigs (whole-set replace) on the default entity through kafka-python:
    librdkafka refuses an empty resource name client-side, so confluent-kafka cannot address
    Kafka's `<default>` broker entity. Returns (error_code, error_message)."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KpConfigResource
    from kafka.admin import ConfigResourceType

    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        response = client.alter_configs(
            [KpConfigResource(ConfigResourceType.BROKER, "", configs=configs)]
        )
    finally:
        client.close()
    (error_code, error_message, _type, name) = response.resources[0]
    assert name == ""
    return error_code, error_message


def test_broker_entity_set_validate_only_and_delete(broker):
    client = admin(broker)
    create(client, "dyn-py")

    alter(client, "1", [ConfigEntry("log.retention.ms", "3600000", incremental_operation=SET)])

    configs = describe(client, ConfigResource.Type.BROKER, "1")
    assert configs["log.retention.ms"].value == "3600000"
    assert configs["log.retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert not configs["log.retention.ms"].is_read_only
    assert configs["listeners"].is_read_only

    topic = describe(client, ConfigResource.Type.TOPIC, "dyn-py")
    assert topic["retention.ms"].value == "3600000"
    assert topic["retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value

    # validate_only changes nothing.
    alter(
        client,
        "1",
        [ConfigEntry("log.retention.ms", "5000", incremental_operation=SET)],
        validate_only=True,
    )
    assert describe(client, ConfigResource.Type.TOPIC, "dyn-py")["retention.ms"].value == "3600000"

    alter(client, "1", [ConfigEntry("log.retention.ms", None, incremental_operation=DELETE)])
    topic = describe(client, ConfigResource.Type.TOPIC, "dyn-py")
    assert topic["retention.ms"].value == "604800000"
    assert topic["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value


def test_default_entity_sets_cluster_wide_defaults_below_the_broker_entity(broker):
    client = admin(broker)
    create(client, "dyn-default-py")
    code, message = legacy_alter_default_entity(
        broker, {"log.segment.bytes": "2097152", "log.retention.ms": "7200000"}
    )
    assert code == 0, message

    topic = describe(client, ConfigResource.Type.TOPIC, "dyn-default-py")
    assert topic["segment.bytes"].value == "2097152"
    assert topic["segment.bytes"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    configs = describe(client, ConfigResource.Type.BROKER, "1")
    assert configs["log.segment.bytes"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value

    # The per-broker entity wins over the default one.
    alter(client, "1", [ConfigEntry("log.retention.ms", "3600000", incremental_operation=SET)])
    assert describe(client, ConfigResource.Type.TOPIC, "dyn-default-py")["retention.ms"].value == (
        "3600000"
    )
    alter(client, "1", [ConfigEntry("log.retention.ms", None, incremental_operation=DELETE)])
    assert describe(client, ConfigResource.Type.TOPIC, "dyn-default-py")["retention.ms"].value == (
        "7200000"
    )

    # Read-only and unknown keys are refused on the default entity too, changing nothing.
    for key, value in [("listeners", "PLAINTEXT://127.0.0.1:1"), ("log.retention.msx", "1")]:
        code, message = legacy_alter_default_entity(broker, {key: value})
        assert code == KafkaError.INVALID_CONFIG, message
        assert key in message
    assert describe(client, ConfigResource.Type.TOPIC, "dyn-default-py")["segment.bytes"].value == (
        "2097152"
    )

    # An empty whole set removes every default-entity value.
    code, message = legacy_alter_default_entity(broker, {})
    assert code == 0, message
    topic = describe(client, ConfigResource.Type.TOPIC, "dyn-default-py")
    assert topic["segment.bytes"].value == "1073741824"
    assert topic["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("listeners", "PLAINTEXT://127.0.0.1:1", ["listeners", "read-only"]),
        ("num.io.threads", "4", ["num.io.threads", "read-only"]),
        ("log.retention.msx", "1", ["log.retention.msx"]),
        ("log.segment.bytes", "10", ["log.segment.bytes"]),
    ],
)
def test_read_only_unknown_and_bad_broker_keys_are_refused(broker, key, value, words):
    client = admin(broker)
    with pytest.raises(KafkaException) as raised:
        alter(
            client,
            "1",
            [
                ConfigEntry("log.retention.ms", "1000", incremental_operation=SET),
                ConfigEntry(key, value, incremental_operation=SET),
            ],
        )
    error = raised.value.args[0]
    assert error.code() == KafkaError.INVALID_CONFIG
    for word in words:
        assert word in error.str()
    # Refused as a whole: the valid entry of the same request is not in force either.
    configs = describe(client, ConfigResource.Type.BROKER, "1")
    assert configs["log.retention.ms"].value == "604800000"
