"""confluent-kafka (librdkafka, as bundled in the Python wheel) against a real
fjord broker. Consumers use assign() with explicit offsets; group.id is set
only because the client wants one: no group APIs are used (no subscribe, no
commits)."""

import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from helpers import CODEC_IDS, make_records, segment_batch_codecs, wait_until

PARTITIONS = 3


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap, "client.id": "fjord-pytest-admin"})


def create_topics(broker, topics, partitions=PARTITIONS):
    a = admin(broker)  # keep the client alive until the futures resolve
    futures = a.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics],
        operation_timeout=10,
        request_timeout=30,
    )
    for t, f in futures.items():
        assert f.result(timeout=30) is None, f"creating {t}"


def consumer(broker, **extra):
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "client.id": "fjord-pytest-consumer",
        "group.id": "fjord-pytest-unused-group",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "fetch.wait.max.ms": 200,
    }
    conf.update(extra)
    return Consumer(conf)


def produce(broker, topic, records, partition=None, **extra):
    """Produces records (with explicit timestamps); returns the delivery
    reports [(partition, offset, (ts_type, ts))] in send order."""
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "client.id": "fjord-pytest-producer",
        "linger.ms": 5,
        "acks": "all",
    }
    conf.update(extra)
    producer = Producer(conf)
    reports = [None] * len(records)
    errors = []

    def on_delivery(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                reports[i] = (msg.partition(), msg.offset(), msg.timestamp())
        return cb

    for i, r in enumerate(records):
        kwargs = {}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                producer.produce(
                    topic,
                    key=r["key"],
                    value=r["value"],
                    headers=r["headers"] or None,
                    timestamp=r["timestamp"],
                    on_delivery=on_delivery(i),
                    **kwargs,
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(60)
    assert remaining == 0, f"{remaining} messages not delivered within 60s"
    assert errors == [], f"delivery errors: {errors[:5]}"
    return reports


def consume_all(broker, topic, start_offsets, expected_count, timeout_s=60):
    """assign() each partition at its start offset; returns {(partition, offset): msg}."""
    c = consumer(broker)
    got = {}
    try:
        c.assign([TopicPartition(topic, p, off) for p, off in start_offsets.items()])
        deadline = time.monotonic() + timeout_s
        while len(got) < expected_count and time.monotonic() < deadline:
            for msg in c.consume(num_messages=1000, timeout=0.5):
                if msg.error():
                    raise KafkaException(msg.error())
                where = (msg.partition(), msg.offset())
                assert where not in got, f"record at partition {where[0]} offset {where[1]} delivered twice"
                got[where] = msg
        for msg in c.consume(num_messages=1000, timeout=0.3):
            assert msg.error() is not None or (msg.partition(), msg.offset()) in got, "an unexpected extra record arrived"
        watermarks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in start_offsets}
    finally:
        c.close()
    assert len(got) == expected_count, f"consumed {len(got)} records, expected {expected_count}"
    return got, watermarks


def header_list(msg):
    return [(k, v) for k, v in (msg.headers() or [])]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_confluent_round_trip_keeps_keys_values_headers_and_timestamps(broker, topic_name, codec):
    """2,000 records (null keys, null and empty values, repeated and empty
    headers, explicit CreateTime timestamps) come back byte-identical, the
    watermarks match what was produced, and the stored batches carry the codec
    (librdkafka silently sends uncompressed when it thinks the broker can't
    take the codec)."""
    create_topics(broker, [topic_name])
    records = make_records(2_000, seed=sum(codec.encode()) + 1000)
    reports = produce(broker, topic_name, records, **{"compression.type": codec})

    per_partition = {p: [] for p in range(PARTITIONS)}
    for partition, offset, _ in reports:
        per_partition[partition].append(offset)
    for p, offsets in per_partition.items():
        assert offsets == list(range(len(offsets))), f"partition {p}: offsets not 0..n-1 in send order"

    consumed, watermarks = consume_all(broker, topic_name, {p: OFFSET_BEGINNING for p in range(PARTITIONS)}, len(records))
    for p, offsets in per_partition.items():
        assert watermarks[p] == (0, len(offsets)), f"partition {p}: watermarks {watermarks[p]}"
    for i, (record, (partition, offset, ack_ts)) in enumerate(zip(records, reports)):
        assert ack_ts == (TIMESTAMP_CREATE_TIME, record["timestamp"]), f"record {i}: delivery report timestamp {ack_ts}"
        msg = consumed[(partition, offset)]
        got = (msg.key(), msg.value(), header_list(msg), msg.timestamp())
        want = (record["key"], record["value"], record["headers"], (TIMESTAMP_CREATE_TIME, record["timestamp"]))
        assert got == want, f"record {i} at partition {partition} offset {offset} differs"

    assert broker.stop() is not None
    for p in range(PARTITIONS):
        codecs = segment_batch_codecs(broker.log_dir, topic_name, p)
        assert codecs and set(codecs) == {CODEC_IDS[codec]}, f"partition {p}: stored codec ids {sorted(set(codecs))}"


def test_confluent_assign_at_offset_starts_there(broker, topic_name):
    """assign() with an explicit offset delivers exactly the records from that offset on."""
    create_topics(broker, [topic_name], partitions=1)
    records = make_records(500, seed=21)
    produce(broker, topic_name, records, partition=0)
    consumed, watermarks = consume_all(broker, topic_name, {0: 123}, 500 - 123)
    assert watermarks[0] == (0, 500)
    assert sorted(o for _, o in consumed) == list(range(123, 500))
    for off in (123, 250, 499):
        assert consumed[(0, off)].value() == records[off]["value"]


def test_confluent_offsets_for_times_finds_first_record_at_or_after_timestamp(broker, topic_name):
    """ListOffsets by timestamp: the earliest offset whose timestamp is >= the
    one asked; -1 (OFFSET_END) past the last record."""
    create_topics(broker, [topic_name], partitions=1)
    base = int(time.time() * 1000) - 600_000
    records = make_records(1_000, seed=31, base_ts_ms=base)
    for i, r in enumerate(records):
        r["timestamp"] = base + 10 * i  # 10 ms apart
    produce(broker, topic_name, records, partition=0, **{"batch.num.messages": 50})
    c = consumer(broker)
    try:
        asked = [base - 5, base, base + 1, base + 10 * 400, base + 10 * 400 + 3, base + 10 * 999, base + 10 * 999 + 1]
        want = [0, 0, 1, 400, 401, 999, -1]
        got = [c.offsets_for_times([TopicPartition(topic_name, 0, ts)], timeout=10)[0] for ts in asked]
        for tp in got:
            assert tp.error is None, tp.error
        assert [tp.offset for tp in got] == want
    finally:
        c.close()


def test_confluent_admin_creates_lists_and_deletes_topics(broker, topic_name):
    """AdminClient: create 2 topics (3 and 1 partitions), see them in
    list_topics with this broker as leader/replica/ISR, delete them."""
    a = admin(broker)
    t3, t1 = topic_name + "-three", topic_name + "-one"
    futures = a.create_topics(
        [NewTopic(t3, num_partitions=3, replication_factor=1), NewTopic(t1, num_partitions=1, replication_factor=1)],
        operation_timeout=10,
    )
    assert sorted(futures) == sorted([t3, t1])
    for f in futures.values():
        assert f.result(timeout=30) is None

    md = a.list_topics(timeout=10)
    assert len(md.brokers) == 1
    (node_id, b), = md.brokers.items()
    assert (b.host, b.port) == (broker.host, broker.port)
    assert md.controller_id == node_id
    for t, n in ((t3, 3), (t1, 1)):
        assert t in md.topics, f"{t} missing from {sorted(md.topics)}"
        topic = md.topics[t]
        assert topic.error is None
        assert sorted(topic.partitions) == list(range(n))
        for p in topic.partitions.values():
            assert (p.leader, p.replicas, p.isrs, p.error) == (node_id, [node_id], [node_id], None)

    # Creating an existing topic fails with TOPIC_ALREADY_EXISTS.
    again = a.create_topics([NewTopic(t1, num_partitions=1, replication_factor=1)], operation_timeout=10)
    with pytest.raises(KafkaException) as exc:
        again[t1].result(timeout=30)
    assert exc.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    deleted = a.delete_topics([t3, t1], operation_timeout=10)
    for f in deleted.values():
        assert f.result(timeout=30) is None
    wait_until(
        lambda: not ({t3, t1} & set(a.list_topics(timeout=10).topics)),
        10,
        what="deleted topics to leave metadata",
    )
