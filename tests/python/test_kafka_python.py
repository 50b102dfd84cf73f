"""kafka-python (a pure-Python client) against a real fjord broker.

Consumers use manual partition assignment with group_id=None: the broker has
no consumer-group APIs yet.
"""

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import codec as kafka_codec
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import UnknownTopicOrPartitionError

from helpers import CODEC_IDS, make_records, segment_batch_codecs

N_RECORDS = 10_000
PARTITIONS = 3
CREATE_TIME = 0  # ConsumerRecord.timestamp_type for CreateTime

CODEC_AVAILABLE = {
    "none": lambda: True,
    "gzip": kafka_codec.has_gzip,
    "snappy": kafka_codec.has_snappy,
    "lz4": kafka_codec.has_lz4,
    "zstd": kafka_codec.has_zstd,
}


def admin_client(broker):
    return KafkaAdminClient(
        bootstrap_servers=broker.bootstrap,
        client_id="fjord-pytest-admin",
        request_timeout_ms=30_000,
    )


def create_topic(broker, topic, partitions=PARTITIONS, configs=None):
    admin = admin_client(broker)
    try:
        response = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1, topic_configs=configs or {})],
            timeout_ms=10_000,
        )
        errors = [(t, code) for t, code, *_ in response.topic_errors]
        assert errors == [(topic, 0)], f"CreateTopics answered {response}"
    finally:
        admin.close()


def produce(broker, topic, records, **producer_config):
    """Sends every record; returns [(partition, offset, timestamp)] in send order."""
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        client_id="fjord-pytest-producer",
        linger_ms=5,
        batch_size=64 * 1024,
        max_block_ms=30_000,
        request_timeout_ms=30_000,
        **producer_config,
    )
    try:
        futures = [
            producer.send(
                topic,
                key=r["key"],
                value=r["value"],
                headers=r["headers"],
                timestamp_ms=r["timestamp"],
            )
            for r in records
        ]
        producer.flush(timeout=60)
        metadata = [f.get(timeout=30) for f in futures]
    finally:
        producer.close(timeout=10)
    return [(m.partition, m.offset, m.timestamp) for m in metadata]


def consume_all(broker, topic, partitions, expected_count, timeout_s=60):
    """Reads every partition from the beginning with manual assignment until
    expected_count records arrived; returns {(partition, offset): record} and
    the end offsets the broker reports."""
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        client_id="fjord-pytest-consumer",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=200,
        # kafka-python refuses response frames above receive_message_max_bytes (1,000,000 by
        # default) although its own fetch_max_bytes default is 50 MiB; keep them consistent.
        fetch_max_bytes=900_000,
        max_poll_records=5_000,
        request_timeout_ms=30_000,
    )
    got = {}
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while len(got) < expected_count and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                for rec in batch:
                    where = (tp.partition, rec.offset)
                    assert where not in got, f"record at partition {where[0]} offset {where[1]} delivered twice"
                    got[where] = rec
        # A little more polling: nothing beyond the expected records may arrive.
        for tp, batch in consumer.poll(timeout_ms=300).items():
            for rec in batch:
                got[(tp.partition, rec.offset)] = rec
        end_offsets = consumer.end_offsets(tps)
    finally:
        consumer.close()
    assert len(got) == expected_count, f"consumed {len(got)} records, expected {expected_count}"
    return got, {tp.partition: off for tp, off in end_offsets.items()}


def assert_round_trip(records, placements, consumed, end_offsets, partitions):
    # Offsets are dense per partition, in send order, starting at 0.
    per_partition = {p: [] for p in range(partitions)}
    for partition, offset, _ts in placements:
        per_partition[partition].append(offset)
    for p, offsets in per_partition.items():
        assert offsets == list(range(len(offsets))), f"partition {p}: offsets not 0..n-1 in send order"
        assert end_offsets[p] == len(offsets), f"partition {p}: end offset {end_offsets[p]}, expected {len(offsets)}"
    for i, (record, (partition, offset, ack_ts)) in enumerate(zip(records, placements)):
        assert ack_ts == record["timestamp"], f"record {i}: acknowledged timestamp {ack_ts}, sent {record['timestamp']}"
        rec = consumed[(partition, offset)]
        got = (rec.key, rec.value, list(rec.headers), rec.timestamp, rec.timestamp_type)
        want = (record["key"], record["value"], record["headers"], record["timestamp"], CREATE_TIME)
        assert got == want, f"record {i} at partition {partition} offset {offset} differs"


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_kafka_python_10k_records_round_trip_exactly(start_broker, topic_name, codec):
    """10,000 records with keys, null and empty values and headers, sent with
    one compression codec, come back identical from all 3 partitions, and the
    batches are stored on disk with the codec the producer used."""
    assert CODEC_AVAILABLE[codec](), f"kafka-python cannot use {codec}: its library is missing (tests/python/requirements.txt)"
    broker = start_broker()
    create_topic(broker, topic_name)
    records = make_records(N_RECORDS, seed=sum(codec.encode()))
    placements = produce(broker, topic_name, records, acks=1, compression_type=None if codec == "none" else codec)
    assert {p for p, _, _ in placements} == set(range(PARTITIONS)), "keyed records did not spread over all partitions"
    consumed, end_offsets = consume_all(broker, topic_name, PARTITIONS, N_RECORDS)
    assert_round_trip(records, placements, consumed, end_offsets, PARTITIONS)

    # Batches are stored as the producer sent them (no re-compression).
    assert broker.stop() is not None
    for p in range(PARTITIONS):
        codecs = segment_batch_codecs(broker.log_dir, topic_name, p)
        assert codecs, f"partition {p}: no batches on disk"
        # kafka-python sends a batch uncompressed when compressing does not make it smaller
        # (DefaultRecordBatchBuilder._maybe_compress), so codec 0 may appear beside the codec.
        assert CODEC_IDS[codec] in codecs, f"partition {p}: stored codec ids {sorted(set(codecs))}"
        assert set(codecs) <= {0, CODEC_IDS[codec]}, f"partition {p}: stored codec ids {sorted(set(codecs))}"


def test_kafka_python_acks_all_produce_is_acknowledged_and_readable(broker, topic_name):
    """acks=all: every send is acknowledged with dense offsets and reads back exactly."""
    create_topic(broker, topic_name)
    records = make_records(2_000, seed=7)
    placements = produce(broker, topic_name, records, acks="all", compression_type="gzip")
    consumed, end_offsets = consume_all(broker, topic_name, PARTITIONS, len(records))
    assert_round_trip(records, placements, consumed, end_offsets, PARTITIONS)


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_kafka_python_acks_all_records_survive_broker_restart(start_broker, topic_name, stop):
    """Records acknowledged with acks=all are all still there, unchanged, after
    the broker is stopped (cleanly, or with SIGKILL) and restarted on the same log dir."""
    first = start_broker()
    create_topic(first, topic_name)
    records = make_records(3_000, seed=11)
    placements = produce(first, topic_name, records, acks="all", compression_type="lz4")
    if stop == "sigterm":
        assert first.stop() == 0, "fjord did not exit 0 on SIGTERM"
    else:
        first.kill()
    second = start_broker(log_dir=first.log_dir)
    consumed, end_offsets = consume_all(second, topic_name, PARTITIONS, len(records))
    assert_round_trip(records, placements, consumed, end_offsets, PARTITIONS)

    # And the restarted broker keeps appending after the recovered offsets.
    more = make_records(100, seed=12, base_ts_ms=records[-1]["timestamp"] + 1)
    more_placements = produce(second, topic_name, more, acks="all")
    counts = {p: sum(1 for q, _, _ in placements if q == p) for p in range(PARTITIONS)}
    for partition, offset, _ in more_placements:
        assert offset == counts[partition], f"partition {partition}: new record got offset {offset}, expected {counts[partition]}"
        counts[partition] += 1


def test_kafka_python_describe_configs_returns_topic_overrides(broker, topic_name):
    """A config given at CreateTopics is reported by DescribeConfigs as a
    topic override (source DYNAMIC_TOPIC_CONFIG = 1)."""
    create_topic(broker, topic_name, configs={"retention.ms": "3600000", "cleanup.policy": "delete"})
    admin = admin_client(broker)
    try:
        responses = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)])
    finally:
        admin.close()
    assert len(responses) == 1
    resources = responses[0].resources
    assert len(resources) == 1
    error_code, error_message, resource_type, resource_name, entries = resources[0][:5]
    assert (error_code, resource_type, resource_name) == (0, ConfigResourceType.TOPIC.value, topic_name), error_message
    by_name = {e[0]: e for e in entries}
    assert by_name["retention.ms"][1] == "3600000"
    assert by_name["cleanup.policy"][1] == "delete"
    if responses[0].API_VERSION >= 1:
        assert by_name["retention.ms"][3] == 1, f"retention.ms config_source {by_name['retention.ms'][3]}, expected 1 (DYNAMIC_TOPIC_CONFIG)"


def test_kafka_python_admin_lists_and_describes_topics(broker, topic_name):
    """KafkaAdminClient.list_topics/describe_topics (Metadata v8 asking for
    authorized operations) show the topic with its 3 partitions on this broker."""
    create_topic(broker, topic_name)
    admin = admin_client(broker)
    try:
        assert topic_name in admin.list_topics()
        (topic,) = admin.describe_topics([topic_name])
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    (node,) = cluster["brokers"]
    assert (node["host"], node["port"]) == (broker.host, broker.port)
    assert cluster["controller_id"] == node["node_id"]
    assert (topic["topic"], topic["error_code"], topic["is_internal"]) == (topic_name, 0, False)
    parts = sorted(topic["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == list(range(PARTITIONS))
    for p in parts:
        assert (p["error_code"], p["leader"], p["replicas"], p["isr"]) == (0, node["node_id"], [node["node_id"]], [node["node_id"]])


def test_kafka_python_delete_topic_removes_it_and_recreation_starts_empty(broker, topic_name):
    """DeleteTopics succeeds, a second delete answers UNKNOWN_TOPIC_OR_PARTITION,
    and a topic re-created with the same name starts at offset 0 with none of
    the old records."""
    create_topic(broker, topic_name)
    produce(broker, topic_name, make_records(300, seed=3), acks=1)
    admin = admin_client(broker)
    try:
        response = admin.delete_topics([topic_name], timeout_ms=10_000)
        assert [(t, code) for t, code in response.topic_error_codes] == [(topic_name, 0)]
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_topics([topic_name], timeout_ms=10_000)
    finally:
        admin.close()

    create_topic(broker, topic_name, partitions=1)
    records = make_records(20, seed=4)
    placements = produce(broker, topic_name, records, acks=1)
    assert [o for _, o, _ in placements] == list(range(20))
    consumed, end_offsets = consume_all(broker, topic_name, 1, 20)
    assert_round_trip(records, placements, consumed, end_offsets, 1)


def test_offset_for_leader_epoch_answers_where_the_single_nodes_epoch_ends(broker, topic_name):
    """OffsetForLeaderEpoch v2-4 with kafka-python's own encoding: a single node has led every
    partition at epoch 0 since its log began, so epoch 0 ends at the log end; an epoch it never
    had is undefined, a current leader epoch ahead of it is UNKNOWN_LEADER_EPOCH, and an unknown
    topic is UNKNOWN_TOPIC_OR_PARTITION."""
    from kafka.protocol.offset_for_leader_epoch import (
        OffsetForLeaderEpochRequest,
        OffsetForLeaderEpochResponse,
    )
    from kafka_raw import RawConnection

    # kafka-python's v4 classes use the compact schema but not the flexible headers that
    # go with it; these add them.
    class ResponseV4(OffsetForLeaderEpochResponse[4]):
        FLEXIBLE_VERSION = True

    class RequestV4(OffsetForLeaderEpochRequest[4]):
        FLEXIBLE_VERSION = True
        RESPONSE_TYPE = ResponseV4

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for i in range(7):
        producer.send(topic_name, value=b"v%d" % i, partition=0)
    producer.flush(timeout=30)
    producer.close()

    def ask(version, topic, current_leader_epoch, leader_epoch):
        partition = (0, current_leader_epoch, leader_epoch)
        if version >= 4:
            request = RequestV4(replica_id=-1, topics=[(topic, [partition + ({},)], {})], tags={})
        elif version == 3:
            request = OffsetForLeaderEpochRequest[version](replica_id=-1, topics=[(topic, [partition])])
        else:
            request = OffsetForLeaderEpochRequest[version](topics=[(topic, [partition])])
        with RawConnection(broker.bootstrap) as conn:
            response = conn.call(request)
        (answer,) = response.topics[0][1]
        # (error_code, partition, leader_epoch, end_offset[, tags])
        return answer[0], answer[2], answer[3]

    for version in (2, 3, 4):
        assert ask(version, topic_name, 0, 0) == (0, 0, 7), version
        assert ask(version, topic_name, -1, 5) == (0, -1, -1), version
        assert ask(version, topic_name, 1, 0)[0] == 75, version  # UNKNOWN_LEADER_EPOCH
        assert ask(version, "no-such-topic-" + topic_name, -1, 0)[0] == 3, version
