"""Consumer groups with kafka-python (its own implementation of the classic
group protocol) and confluent-kafka (librdkafka): subscribe, consume, commit,
close, rejoin and continue exactly at the committed offsets; two members
split the partitions.

Every wait is bounded; the broker runs with no initial rebalance delay.
"""

import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

GROUP_OVERRIDES = {
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.num.partitions": "5",
    "group.min.session.timeout.ms": "1000",
}
JOIN_TIMEOUT_S = 60
CONSUME_TIMEOUT_S = 60


def create_topic(broker, topic, partitions):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "client.id": "fjord-pytest-admin"})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=10,
        request_timeout=30,
    )
    for t, f in futures.items():
        assert f.result(timeout=30) is None, f"creating {t}"


def produce(broker, topic, partitions, count, start=0):
    """Sends record i (value b"v-i") to partition i % partitions with
    kafka-python; returns the acknowledged [(partition, offset)]."""
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        client_id="fjord-pytest-producer",
        acks="all",
        linger_ms=5,
        max_block_ms=30_000,
        request_timeout_ms=30_000,
    )
    try:
        futures = [
            producer.send(topic, key=f"k-{i}".encode(), value=f"v-{i}".encode(), partition=i % partitions)
            for i in range(start, start + count)
        ]
        producer.flush(timeout=60)
        metadata = [f.get(timeout=30) for f in futures]
    finally:
        producer.close(timeout=10)
    return [(m.partition, m.offset) for m in metadata]


def kp_consumer(broker, group, topic, **extra):
    conf = dict(
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        client_id=f"fjord-pytest-{group}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        max_poll_interval_ms=30_000,
        request_timeout_ms=30_000,
        fetch_max_wait_ms=100,
    )
    conf.update(extra)
    consumer = KafkaConsumer(**conf)
    consumer.subscribe([topic])
    return consumer


def kp_poll_exactly(consumer, count, timeout_s=CONSUME_TIMEOUT_S):
    """Polls until exactly `count` records arrived (never asks for more than
    are still wanted); returns their [(partition, offset)]."""
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count:
        assert time.monotonic() < deadline, (
            f"received {len(got)} of {count} records in {timeout_s}s; assignment {consumer.assignment()}"
        )
        batches = consumer.poll(timeout_ms=200, max_records=min(500, count - len(got)))
        for records in batches.values():
            got.extend((r.partition, r.offset) for r in records)
    return got


def assert_exactly_once(expected, received):
    """received: {name: [(partition, offset)]}; every expected position once."""
    seen = {}
    duplicates = []
    for name, positions in received.items():
        for p in positions:
            if p in seen:
                duplicates.append((p, seen[p], name))
            seen[p] = name
    expected = set(expected)
    missing = sorted(expected - set(seen))
    unexpected = sorted(set(seen) - expected)
    assert not duplicates and not missing and not unexpected, (
        f"{len(duplicates)} duplicates (e.g. {duplicates[:5]}), {len(missing)} missing (e.g. {missing[:5]}), "
        f"{len(unexpected)} unexpected (e.g. {unexpected[:5]})"
    )


def next_offsets(positions):
    nxt = {}
    for p, o in positions:
        nxt[p] = max(nxt.get(p, 0), o + 1)
    return nxt


def test_kafka_python_group_commits_and_a_new_member_resumes_at_the_commit(start_broker, topic_name):
    broker = start_broker(overrides=GROUP_OVERRIDES)
    group = "kp-resume"
    create_topic(broker, topic_name, 3)
    positions = produce(broker, topic_name, 3, 3000)

    first = kp_consumer(broker, group, topic_name)
    try:
        committed_part = kp_poll_exactly(first, 1200)
        first.commit()  # synchronous: the positions after the returned records
        # kafka-python commits every assigned partition's position, also 0
        # for a partition it has not read from yet.
        consumed_to = next_offsets(committed_part)
        expected = {p: consumed_to.get(p, 0) for p in range(3)}
        for p in range(3):
            assert first.position(TopicPartition(topic_name, p)) == expected[p], f"position of {p}"
            assert first.committed(TopicPartition(topic_name, p)) == expected[p], f"committed offset of {p}"
        # Read on without committing: these records must come again.
        uncommitted = kp_poll_exactly(first, 300)
    finally:
        first.close(autocommit=False)

    second = kp_consumer(broker, group, topic_name)
    try:
        rest = kp_poll_exactly(second, 3000 - len(committed_part))
        extra = second.poll(timeout_ms=1000)
        assert extra == {} or all(not v for v in extra.values()), f"extra records: {extra}"
        for p in range(3):
            offsets = [o for q, o in rest if q == p]
            # (a partition read to its end before the commit has nothing left)
            assert (min(offsets) if offsets else 1000) == expected[p], f"partition {p} resumed at its committed offset"
        assert set(uncommitted) <= set(rest), "uncommitted records are delivered again"
        second.commit()
        for p in range(3):
            assert second.committed(TopicPartition(topic_name, p)) == 1000, f"final commit of {p}"
    finally:
        second.close(autocommit=False)
    assert_exactly_once(positions, {"first (committed)": committed_part, "second": rest})


def test_kafka_python_two_members_split_the_partitions(start_broker, topic_name):
    broker = start_broker(overrides=GROUP_OVERRIDES)
    group = "kp-split"
    create_topic(broker, topic_name, 4)

    stop = threading.Event()
    consumers = [kp_consumer(broker, group, topic_name, client_id=f"member-{i}") for i in range(2)]
    received = {i: [] for i in range(2)}
    errors = []

    def run(i):
        try:
            while not stop.is_set():
                for records in consumers[i].poll(timeout_ms=100).values():
                    received[i].extend((r.partition, r.offset) for r in records)
        except Exception as e:  # reported by the test thread
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        stable_since = None
        last = None
        while True:
            assignments = [{tp.partition for tp in c.assignment()} for c in consumers]
            split = all(assignments) and set().union(*assignments) == {0, 1, 2, 3} and sum(map(len, assignments)) == 4
            if split and assignments == last:
                if time.monotonic() - stable_since >= 1.0:
                    break
            else:
                stable_since = time.monotonic()
            last = assignments
            assert not errors, errors
            assert time.monotonic() < deadline, f"assignments never split: {assignments}"
            time.sleep(0.1)
        assert sorted(map(len, assignments)) == [2, 2], assignments
        # Records produced while the group is stable reach their owners once.
        positions = produce(broker, topic_name, 4, 2000)
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while sum(len(r) for r in received.values()) < 2000:
            assert not errors, errors
            assert time.monotonic() < deadline, f"received {[len(r) for r in received.values()]}"
            time.sleep(0.1)
        time.sleep(1)
        assert [{tp.partition for tp in c.assignment()} for c in consumers] == assignments, "no rebalance"
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        for c in consumers:
            c.close(autocommit=False)
    assert not errors, errors
    for i, a in enumerate(assignments):
        assert {p for p in received[i]} == {p for p in positions if p[0] in a}, f"member {i} owns {a}"
    assert_exactly_once(positions, {f"member-{i}": r for i, r in received.items()})


def ck_consumer(broker, group, **extra):
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "client.id": f"fjord-pytest-{group}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "max.poll.interval.ms": 30000,
        "fetch.wait.max.ms": 100,
    }
    conf.update(extra)
    return Consumer(conf)


def ck_consume(consumer, count, timeout_s=CONSUME_TIMEOUT_S):
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=min(500, count - len(got)), timeout=0.2):
            if msg.error():
                raise KafkaException(msg.error())
            got.append((msg.partition(), msg.offset(), msg.value()))
    assert len(got) == count, f"consumed {len(got)} of {count} records; assignment {consumer.assignment()}"
    return got


def test_confluent_kafka_group_round_trip(start_broker, topic_name):
    broker = start_broker(overrides=GROUP_OVERRIDES)
    group = "ck-round-trip"
    create_topic(broker, topic_name, 2)
    positions = produce(broker, topic_name, 2, 1000)

    first = ck_consumer(broker, group)
    try:
        first.subscribe([topic_name])
        got = ck_consume(first, 1000)
        assert sorted((p, o) for p, o, _ in got) == sorted(positions)
        assert {v for _, _, v in got} == {f"v-{i}".encode() for i in range(1000)}
        first.commit(asynchronous=False)
        committed = first.committed([CkTopicPartition(topic_name, p) for p in range(2)], timeout=10)
        assert [(tp.partition, tp.offset, tp.error) for tp in committed] == [(0, 500, None), (1, 500, None)]
    finally:
        first.close()

    second = ck_consumer(broker, group)
    try:
        second.subscribe([topic_name])
        # Joins, fetches the committed offsets and finds nothing new.
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while len(second.assignment()) < 2:
            assert time.monotonic() < deadline, f"assignment {second.assignment()}"
            assert second.poll(0.1) is None, "nothing new after the commit"
        assert second.consume(num_messages=100, timeout=1.0) == []
        more = produce(broker, topic_name, 2, 10, start=1000)
        got = ck_consume(second, 10)
        assert sorted((p, o) for p, o, _ in got) == sorted(more)
        assert sorted(o for _, o in more) == [500, 500, 501, 501, 502, 502, 503, 503, 504, 504]
        second.commit(asynchronous=False)
        committed = second.committed([CkTopicPartition(topic_name, p) for p in range(2)], timeout=10)
        assert [(tp.partition, tp.offset) for tp in committed] == [(0, 505), (1, 505)]
    finally:
        second.close()
