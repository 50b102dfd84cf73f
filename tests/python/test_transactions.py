"""Transactions with independent clients against a real fjord broker.

kafka-python and confluent-kafka (librdkafka) drive the client-side APIs
(InitProducerId with a transactional id, FindCoordinator for transactions,
AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn, read_committed
Fetch and ListOffsets). The admin APIs no client here sends (DescribeProducers,
DescribeTransactions, ListTransactions, WriteTxnMarkers) are encoded from
Kafka's message definitions in kafka_raw.py and sent over a plain socket.

Every wait is bounded, and every test has its own broker.
"""

import time
import uuid

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition as CkTopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.protocol.api_versions import ApiVersionsRequest_v3

from helpers import wait_until
from kafka_raw import (
    RawConnection,
    describe_producers,
    describe_transactions,
    list_transactions,
    write_txn_markers,
)

OVERRIDES = {
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.num.partitions": "3",
}
TIMEOUT_S = 30
# Long enough that the coordinator never times a transaction out during a test.
LONG_TXN_TIMEOUT_MS = 600_000

# Kafka error codes.
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
TRANSACTIONAL_ID_NOT_FOUND = 105
TRANSACTION_COORDINATOR_FENCED = 52

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def txn_broker(start_broker):
    return start_broker(OVERRIDES)


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topics(broker, partitions_by_topic):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "client.id": "fjord-pytest-admin"})
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in partitions_by_topic.items()],
        operation_timeout=10,
        request_timeout=TIMEOUT_S,
    )
    for t, f in futures.items():
        assert f.result(timeout=TIMEOUT_S) is None, f"creating {t}"


# kafka-python ----------------------------------------------------------------


def kp_producer(broker, **extra):
    conf = dict(
        bootstrap_servers=broker.bootstrap,
        client_id="fjord-pytest-producer",
        acks="all",
        linger_ms=5,
        max_block_ms=TIMEOUT_S * 1000,
        request_timeout_ms=TIMEOUT_S * 1000,
    )
    conf.update(extra)
    return KafkaProducer(**conf)


def kp_txn_producer(broker, transactional_id, **extra):
    """An initialised kafka-python transactional producer."""
    producer = kp_producer(broker, transactional_id=transactional_id, **extra)
    producer.init_transactions()
    return producer


def kp_send(producer, topic, values_by_partition):
    """Sends {partition: [value]}, flushes, returns {partition: [offset]}."""
    futures = {
        p: [producer.send(topic, value=v.encode(), partition=p) for v in values]
        for p, values in values_by_partition.items()
    }
    producer.flush(timeout=TIMEOUT_S)
    return {p: [f.get(timeout=TIMEOUT_S).offset for f in fs] for p, fs in futures.items()}


def kp_producer_id_and_epoch(producer):
    # kafka-python keeps the id and epoch from InitProducerId here (no public accessor).
    pe = producer._transaction_manager.producer_id_and_epoch
    return pe.producer_id, pe.epoch


def kp_read(broker, topic, partitions, isolation_level, expected_count, timeout_s=TIMEOUT_S, quiet_s=0.5):
    """Reads every partition from offset 0 with kafka-python until expected_count
    records arrived, then keeps polling quiet_s for extras. Returns
    ({(partition, offset): value}, {partition: end offset for this isolation level})."""
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        client_id=f"fjord-pytest-{isolation_level}",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation_level,
        fetch_max_wait_ms=100,
        request_timeout_ms=TIMEOUT_S * 1000,
    )
    got = {}

    def poll(timeout_ms):
        for tp, batch in consumer.poll(timeout_ms=timeout_ms).items():
            for rec in batch:
                where = (tp.partition, rec.offset)
                assert where not in got, f"{isolation_level}: offset {where} delivered twice"
                got[where] = rec.value.decode() if rec.value is not None else None

    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while len(got) < expected_count and time.monotonic() < deadline:
            poll(200)
        quiet_until = time.monotonic() + quiet_s
        while time.monotonic() < quiet_until:
            poll(100)
        end_offsets = {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()
    return got, end_offsets


def kp_end_offsets(broker, topic, partitions, isolation_level):
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        client_id=f"fjord-pytest-offsets-{isolation_level}",
        group_id=None,
        isolation_level=isolation_level,
        request_timeout_ms=TIMEOUT_S * 1000,
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


# confluent-kafka ---------------------------------------------------------------


def ck_producer(broker, **extra):
    conf = {"bootstrap.servers": broker.bootstrap, "client.id": "fjord-pytest-producer", "linger.ms": 5}
    conf.update(extra)
    return Producer(conf)


def ck_txn_producer(broker, transactional_id, **extra):
    producer = ck_producer(broker, **{"transactional.id": transactional_id, **extra})
    producer.init_transactions(TIMEOUT_S)
    return producer


def ck_produce(producer, topic, values_by_partition):
    """Produces {partition: [value]} and flushes; returns {partition: [offset]}."""
    offsets = {p: [] for p in values_by_partition}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            offsets[msg.partition()].append(msg.offset())

    for p, values in values_by_partition.items():
        for v in values:
            producer.produce(topic, value=v.encode(), partition=p, on_delivery=on_delivery)
    assert producer.flush(TIMEOUT_S) == 0, "records not delivered"
    assert errors == [], f"delivery errors: {errors[:5]}"
    return {p: sorted(o) for p, o in offsets.items()}


def ck_consumer(broker, group, **extra):
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "client.id": f"fjord-pytest-{group}",
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
    }
    conf.update(extra)
    return Consumer(conf)


def ck_poll(consumer, max_count, timeout_s):
    """Polls until max_count records arrived or timeout_s passed; returns the messages."""
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < max_count and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=max_count - len(got), timeout=0.2):
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(msg.error())
            got.append(msg)
    return got


def ck_committed(consumer, topic, partitions):
    """The group's committed offsets, asked with OffsetFetch. A pending transactional
    commit answers UNSTABLE_OFFSET_COMMIT until its marker is written: that is retried."""
    tps = [CkTopicPartition(topic, p) for p in range(partitions)]
    deadline = time.monotonic() + 10
    while True:
        try:
            committed = consumer.committed(tps, timeout=TIMEOUT_S)
            break
        except KafkaException as e:
            if e.args[0].code() != KafkaError.UNSTABLE_OFFSET_COMMIT or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    for tp in committed:
        assert tp.error is None, f"committed offset of {tp.topic}/{tp.partition}: {tp.error}"
    return {tp.partition: tp.offset for tp in committed}


# 1. kafka-python: commit, abort, read_committed / read_uncommitted -------------


def test_kafka_python_committed_transactions_are_visible_and_aborted_ones_only_to_read_uncommitted(txn_broker, topic_name):
    """Three transactions over 3 partitions (commit, abort, commit): read_committed
    sees exactly the two committed ones, read_uncommitted sees all three; neither
    ever gets a control record, yet each marker takes one offset."""
    create_topics(txn_broker, {topic_name: 3})
    per_partition = 10
    batches = {
        name: {p: [f"{name}-p{p}-{i}" for i in range(per_partition)] for p in range(3)}
        for name in ("first", "aborted", "second")
    }
    producer = kp_txn_producer(txn_broker, unique("kp-txn"))
    try:
        offsets = {}
        for name, commit in (("first", True), ("aborted", False), ("second", True)):
            producer.begin_transaction()
            offsets[name] = kp_send(producer, topic_name, batches[name])
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close(timeout=10)

    # Offsets are dense inside a transaction; each commit or abort marker takes one.
    for p in range(3):
        assert offsets["first"][p] == list(range(0, 10)), f"partition {p}: {offsets}"
        assert offsets["aborted"][p] == list(range(11, 21)), f"partition {p}: {offsets}"
        assert offsets["second"][p] == list(range(22, 32)), f"partition {p}: {offsets}"

    def expected(names):
        return {
            (p, offsets[name][p][i]): batches[name][p][i]
            for name in names
            for p in range(3)
            for i in range(per_partition)
        }

    committed_view, committed_ends = kp_read(txn_broker, topic_name, 3, "read_committed", 60)
    assert committed_view == expected(("first", "second"))
    uncommitted_view, uncommitted_ends = kp_read(txn_broker, topic_name, 3, "read_uncommitted", 90)
    assert uncommitted_view == expected(("first", "aborted", "second"))
    # Nothing is open: the last stable offset is the log end, past the last marker.
    assert committed_ends == {0: 33, 1: 33, 2: 33}
    assert uncommitted_ends == {0: 33, 1: 33, 2: 33}


# 2. confluent-kafka: consume-transform-produce with offsets in the transaction --


def test_confluent_consume_transform_produce_commits_offsets_only_with_the_transaction(txn_broker, topic_name):
    """One consume-transform-produce round committed with send_offsets_to_transaction:
    the group's committed offsets are the positions sent, and the output is visible
    to read_committed. A second round that aborts leaves the offsets and the
    read_committed output unchanged."""
    source, sink = f"{topic_name}-in", f"{topic_name}-out"
    create_topics(txn_broker, {source: 2, sink: 2})
    group = unique("ctp-group")
    plain = ck_producer(txn_broker, acks="all")
    ck_produce(plain, source, {p: [f"in-{p}-{i}" for i in range(5)] for p in range(2)})

    consumer = ck_consumer(
        txn_broker,
        group,
        **{"isolation.level": "read_committed", "session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
    )
    producer = ck_txn_producer(txn_broker, unique("ctp-txn"), **{"transaction.timeout.ms": 30_000})
    try:
        consumer.subscribe([source])

        def round_trip(count, commit):
            msgs = ck_poll(consumer, count, TIMEOUT_S)
            assert len(msgs) == count, f"consumed {len(msgs)} input records, expected {count}"
            producer.begin_transaction()
            for m in msgs:
                producer.produce(sink, value=b"out-" + m.value(), partition=m.partition())
            # librdkafka purges what it has not sent yet on abort: flush, so the
            # aborted records are in the log for read_uncommitted to see.
            assert producer.flush(TIMEOUT_S) == 0, "output records not delivered"
            positions = consumer.position(consumer.assignment())
            producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), TIMEOUT_S)
            if commit:
                producer.commit_transaction(TIMEOUT_S)
            else:
                producer.abort_transaction(TIMEOUT_S)
            return {tp.partition: tp.offset for tp in positions}, sorted(m.value().decode() for m in msgs)

        positions, inputs = round_trip(10, commit=True)
        assert positions == {0: 5, 1: 5}
        assert inputs == sorted(f"in-{p}-{i}" for p in range(2) for i in range(5))
        assert ck_committed(consumer, source, 2) == positions

        ck_produce(plain, source, {p: [f"in-{p}-{i}" for i in range(5, 8)] for p in range(2)})
        aborted_positions, _ = round_trip(6, commit=False)
        assert aborted_positions == {0: 8, 1: 8}
        assert ck_committed(consumer, source, 2) == positions, "an aborted transaction moved the committed offsets"
    finally:
        consumer.close()

    committed_out, _ = kp_read(txn_broker, sink, 2, "read_committed", 10)
    assert sorted(committed_out.values()) == sorted(f"out-in-{p}-{i}" for p in range(2) for i in range(5))
    uncommitted_out, _ = kp_read(txn_broker, sink, 2, "read_uncommitted", 16)
    assert sorted(uncommitted_out.values()) == sorted(f"out-in-{p}-{i}" for p in range(2) for i in range(8))


# 3. An open transaction is invisible to read_committed until it commits ---------


def test_read_committed_consumer_sees_an_open_transaction_only_after_commit(txn_broker, topic_name):
    """Records of a produced and flushed but uncommitted transaction reach
    read_uncommitted readers only; read_committed readers (confluent-kafka fetch,
    kafka-python ListOffsets) stop before them until the commit."""
    create_topics(txn_broker, {topic_name: 3})
    values = {p: [f"open-p{p}-{i}" for i in range(4)] for p in range(3)}
    producer = ck_txn_producer(txn_broker, unique("open-txn"), **{"transaction.timeout.ms": LONG_TXN_TIMEOUT_MS})
    reader_committed = ck_consumer(txn_broker, unique("rc"), **{"isolation.level": "read_committed"})
    reader_uncommitted = ck_consumer(txn_broker, unique("ru"), **{"isolation.level": "read_uncommitted"})
    try:
        for reader in (reader_committed, reader_uncommitted):
            reader.assign([CkTopicPartition(topic_name, p, OFFSET_BEGINNING) for p in range(3)])
        producer.begin_transaction()
        assert ck_produce(producer, topic_name, values) == {p: [0, 1, 2, 3] for p in range(3)}

        seen = ck_poll(reader_uncommitted, 12, TIMEOUT_S)
        assert sorted(m.value().decode() for m in seen) == sorted(v for vs in values.values() for v in vs)
        early = ck_poll(reader_committed, 12, 2.0)
        assert early == [], f"read_committed saw {len(early)} records of an open transaction"
        assert kp_end_offsets(txn_broker, topic_name, 3, "read_committed") == {0: 0, 1: 0, 2: 0}
        assert kp_end_offsets(txn_broker, topic_name, 3, "read_uncommitted") == {0: 4, 1: 4, 2: 4}

        producer.commit_transaction(TIMEOUT_S)
        late = ck_poll(reader_committed, 12, TIMEOUT_S)
        assert sorted((m.partition(), m.offset(), m.value().decode()) for m in late) == sorted(
            (p, i, v) for p, vs in values.items() for i, v in enumerate(vs)
        )
        assert ck_poll(reader_committed, 1, 0.5) == [], "read_committed got a record beyond the transaction"
    finally:
        reader_committed.close()
        reader_uncommitted.close()
    assert kp_end_offsets(txn_broker, topic_name, 3, "read_committed") == {0: 5, 1: 5, 2: 5}


# 4. Raw protocol: the admin-side transaction APIs ------------------------------


def test_api_versions_lists_the_transaction_apis(txn_broker):
    """ApiVersions v3 advertises every transaction API at the versions served."""
    with RawConnection(txn_broker.bootstrap) as conn:
        response = conn.call(
            ApiVersionsRequest_v3(client_software_name="fjord-pytest", client_software_version="1", _tagged_fields={})
        )
    assert response.error_code == 0
    versions = {key: (lo, hi) for key, lo, hi, _tags in response.api_versions}
    names = {
        22: "InitProducerId", 24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn",
        27: "WriteTxnMarkers", 28: "TxnOffsetCommit", 61: "DescribeProducers",
        65: "DescribeTransactions", 66: "ListTransactions",
    }
    wanted = {22: (0, 0), 24: (0, 3), 25: (0, 3), 26: (0, 3), 27: (1, 1), 28: (0, 3), 61: (0, 0), 65: (0, 0), 66: (0, 1)}
    for key, (lo, hi) in wanted.items():
        assert key in versions, f"ApiVersions does not list {names[key]} ({key})"
        got_lo, got_hi = versions[key]
        assert got_lo <= lo and got_hi >= hi, f"{names[key]} ({key}): versions {got_lo}-{got_hi}, need {lo}-{hi}"


def test_describe_producers_reports_idempotent_and_transactional_producers(txn_broker, topic_name):
    """DescribeProducers v0: an idempotent producer's id, epoch and last sequence;
    an open transaction's first offset as current_txn_start_offset (-1 once it
    commits); an unknown topic answers UNKNOWN_TOPIC_OR_PARTITION."""
    create_topics(txn_broker, {topic_name: 2})
    before_ms = int(time.time() * 1000)
    idempotent = kp_producer(txn_broker, enable_idempotence=True)
    try:
        assert kp_send(idempotent, topic_name, {0: [f"idem-{i}" for i in range(5)]}) == {0: [0, 1, 2, 3, 4]}
        idem_pid, idem_epoch = kp_producer_id_and_epoch(idempotent)
    finally:
        idempotent.close(timeout=10)
    assert idem_pid >= 0

    missing = unique("no-such-topic")
    with RawConnection(txn_broker.bootstrap) as conn:
        result = describe_producers(conn, {topic_name: [0, 1], missing: [0]})
        assert set(result) == {(topic_name, 0), (topic_name, 1), (missing, 0)}
        assert result[(missing, 0)][0] == UNKNOWN_TOPIC_OR_PARTITION
        assert result[(topic_name, 1)] == (NONE, [])
        error, producers = result[(topic_name, 0)]
        assert error == NONE
        assert len(producers) == 1, producers
        (idem,) = producers
        assert (idem["producer_id"], idem["producer_epoch"], idem["last_sequence"], idem["current_txn_start_offset"]) == (
            idem_pid, idem_epoch, 4, -1,
        )
        assert before_ms - 1000 <= idem["last_timestamp"] <= int(time.time() * 1000) + 1000, idem

        txn = kp_txn_producer(txn_broker, unique("dp-txn"), transaction_timeout_ms=LONG_TXN_TIMEOUT_MS)
        try:
            txn_pid, txn_epoch = kp_producer_id_and_epoch(txn)
            txn.begin_transaction()
            assert kp_send(txn, topic_name, {0: ["t-0", "t-1", "t-2"]}) == {0: [5, 6, 7]}

            error, producers = describe_producers(conn, {topic_name: [0]})[(topic_name, 0)]
            assert error == NONE
            by_pid = {p["producer_id"]: p for p in producers}
            assert set(by_pid) == {idem_pid, txn_pid}, producers
            open_txn = by_pid[txn_pid]
            assert (open_txn["producer_epoch"], open_txn["last_sequence"], open_txn["current_txn_start_offset"]) == (
                txn_epoch, 2, 5,
            )
            assert by_pid[idem_pid]["current_txn_start_offset"] == -1

            txn.commit_transaction()
        finally:
            txn.close(timeout=10)

        def txn_start_after_commit():
            _, producers = describe_producers(conn, {topic_name: [0]})[(topic_name, 0)]
            (entry,) = [p for p in producers if p["producer_id"] == txn_pid]
            return entry["current_txn_start_offset"] == -1 and entry

        entry = wait_until(txn_start_after_commit, 10, what="current_txn_start_offset -1 after commit")
        assert (entry["producer_epoch"], entry["last_sequence"]) == (txn_epoch, 2)


def test_list_transactions_reports_states_and_applies_filters(txn_broker, topic_name):
    """ListTransactions v0/v1: an initialised id is Empty, an open transaction
    Ongoing, a committed one CompleteCommit; state, producer-id and duration
    filters select, and unknown state names come back in unknown_state_filters."""
    create_topics(txn_broker, {topic_name: 1})
    idle_id, open_id = unique("lt-idle"), unique("lt-open")
    idle = kp_txn_producer(txn_broker, idle_id)
    txn = kp_txn_producer(txn_broker, open_id, transaction_timeout_ms=LONG_TXN_TIMEOUT_MS)
    try:
        idle_pid, _ = kp_producer_id_and_epoch(idle)
        open_pid, _ = kp_producer_id_and_epoch(txn)
        assert idle_pid != open_pid
        txn.begin_transaction()
        kp_send(txn, topic_name, {0: ["a", "b"]})

        def listed(response):
            assert response["error_code"] == NONE, response
            return {(s["transactional_id"], s["producer_id"], s["transaction_state"]) for s in response["transaction_states"]}

        with RawConnection(txn_broker.bootstrap) as conn:
            everything = list_transactions(conn)
            assert everything["unknown_state_filters"] == []
            assert listed(everything) >= {(idle_id, idle_pid, "Empty"), (open_id, open_pid, "Ongoing")}
            assert not {t for t, _, _ in listed(everything)} - {idle_id, open_id}, everything

            assert listed(list_transactions(conn, state_filters=["Ongoing"])) == {(open_id, open_pid, "Ongoing")}
            assert listed(list_transactions(conn, state_filters=["Empty"])) == {(idle_id, idle_pid, "Empty")}
            assert listed(list_transactions(conn, state_filters=["CompleteCommit"])) == set()
            assert listed(list_transactions(conn, producer_id_filters=[idle_pid])) == {(idle_id, idle_pid, "Empty")}
            assert listed(list_transactions(conn, producer_id_filters=[open_pid + idle_pid + 1000])) == set()

            unknown = list_transactions(conn, state_filters=["Ongoing", "NoSuchState"])
            assert unknown["unknown_state_filters"] == ["NoSuchState"]
            assert listed(unknown) == {(open_id, open_pid, "Ongoing")}

            # v1: only transactions running at least duration_filter ms are listed.
            assert (open_id, open_pid, "Ongoing") in listed(list_transactions(conn, duration_filter=-1))
            old = listed(list_transactions(conn, state_filters=["Ongoing"], duration_filter=3_600_000))
            assert old == set(), "a transaction opened seconds ago passed a one-hour duration filter"

            txn.commit_transaction()
            wait_until(
                lambda: listed(list_transactions(conn, state_filters=["CompleteCommit"])) == {(open_id, open_pid, "CompleteCommit")},
                10,
                what="the committed transaction to be listed as CompleteCommit",
            )
            assert listed(list_transactions(conn, state_filters=["Ongoing"])) == set()
    finally:
        txn.close(timeout=10)
        idle.close(timeout=10)


def test_describe_transactions_reports_an_open_transaction(txn_broker, topic_name):
    """DescribeTransactions v0: state, timeout, start time, producer id/epoch and
    partitions of an open transaction, CompleteCommit with no partitions after
    the commit, and TRANSACTIONAL_ID_NOT_FOUND for an unknown id."""
    create_topics(txn_broker, {topic_name: 3})
    tid, missing = unique("dt-txn"), unique("dt-missing")
    txn = kp_txn_producer(txn_broker, tid, transaction_timeout_ms=45_000)
    try:
        pid, epoch = kp_producer_id_and_epoch(txn)
        before_ms = int(time.time() * 1000)
        txn.begin_transaction()
        kp_send(txn, topic_name, {0: ["x"], 2: ["y", "z"]})
        after_ms = int(time.time() * 1000)

        with RawConnection(txn_broker.bootstrap) as conn:
            states, order = describe_transactions(conn, [tid, missing])
            assert order == [tid, missing]
            assert states[missing]["error_code"] == TRANSACTIONAL_ID_NOT_FOUND
            state = states[tid]
            assert state["error_code"] == NONE
            assert (state["transaction_state"], state["transaction_timeout_ms"]) == ("Ongoing", 45_000)
            assert (state["producer_id"], state["producer_epoch"]) == (pid, epoch)
            assert before_ms - 1000 <= state["transaction_start_time_ms"] <= after_ms + 1000, state
            assert [(t["topic"], sorted(t["partitions"])) for t in state["topics"]] == [(topic_name, [0, 2])]

            txn.commit_transaction()

            def committed():
                states, _ = describe_transactions(conn, [tid])
                return states[tid]["transaction_state"] == "CompleteCommit" and states[tid]

            state = wait_until(committed, 10, what="state CompleteCommit after commit")
            assert state["error_code"] == NONE
            assert (state["producer_id"], state["producer_epoch"]) == (pid, epoch)
            assert state["topics"] == []
    finally:
        txn.close(timeout=10)


def test_idle_transactional_ids_expire_and_restart_with_a_new_producer_id(start_broker, topic_name):
    """transactional.id.expiration.ms: an id idle past it is removed (DescribeTransactions
    answers TRANSACTIONAL_ID_NOT_FOUND), and the next producer with that id starts afresh."""
    broker = start_broker(
        dict(
            OVERRIDES,
            **{
                "transactional.id.expiration.ms": "1000",
                "transaction.remove.expired.transaction.cleanup.interval.ms": "300",
            },
        )
    )
    create_topics(broker, {topic_name: 1})
    tid = unique("exp-txn")
    txn = kp_txn_producer(broker, tid)
    try:
        pid, _ = kp_producer_id_and_epoch(txn)
        txn.begin_transaction()
        kp_send(txn, topic_name, {0: ["x"]})
        txn.commit_transaction()
    finally:
        txn.close(timeout=10)
    with RawConnection(broker.bootstrap) as conn:

        def expired():
            states, _ = describe_transactions(conn, [tid])
            return states[tid]["error_code"] == TRANSACTIONAL_ID_NOT_FOUND

        wait_until(expired, 15, what="the idle transactional id to expire")
    again = kp_txn_producer(broker, tid)
    try:
        new_pid, new_epoch = kp_producer_id_and_epoch(again)
        assert new_pid != pid and new_epoch == 0
    finally:
        again.close(timeout=10)


def test_write_txn_markers_aborts_a_hanging_transaction(txn_broker, topic_name):
    """A producer that opened a transaction and vanished leaves the last stable
    offset stuck; an abort marker written with WriteTxnMarkers v1 for its producer
    id and epoch (found with DescribeProducers) ends it: read_committed reaches
    the log end and the records stay invisible. Unknown partitions answer
    UNKNOWN_TOPIC_OR_PARTITION."""
    create_topics(txn_broker, {topic_name: 2})
    plain = kp_producer(txn_broker)
    try:
        assert kp_send(plain, topic_name, {0: ["ok-0", "ok-1", "ok-2"]}) == {0: [0, 1, 2]}
    finally:
        plain.close(timeout=10)

    hanging = kp_txn_producer(txn_broker, unique("hanging"), transaction_timeout_ms=LONG_TXN_TIMEOUT_MS)
    hanging.begin_transaction()
    assert kp_send(hanging, topic_name, {0: [f"hang-{i}" for i in range(5)]}) == {0: [3, 4, 5, 6, 7]}
    hanging.close(timeout=10)  # no commit, no abort

    assert kp_end_offsets(txn_broker, topic_name, 1, "read_committed") == {0: 3}
    assert kp_end_offsets(txn_broker, topic_name, 1, "read_uncommitted") == {0: 8}

    with RawConnection(txn_broker.bootstrap) as conn:
        error, producers = describe_producers(conn, {topic_name: [0]})[(topic_name, 0)]
        assert error == NONE
        open_txns = [p for p in producers if p["current_txn_start_offset"] >= 0]
        assert len(open_txns) == 1 and open_txns[0]["current_txn_start_offset"] == 3, producers
        (stuck,) = open_txns
        pid, epoch = stuck["producer_id"], stuck["producer_epoch"]

        missing = unique("no-such-topic")
        result = write_txn_markers(
            conn, [(pid, epoch, False, {topic_name: [0]}, stuck["coordinator_epoch"])]
        )
        assert result == {(pid, topic_name, 0): NONE}

        error, producers = describe_producers(conn, {topic_name: [0]})[(topic_name, 0)]
        assert error == NONE
        assert [p["current_txn_start_offset"] for p in producers if p["producer_id"] == pid] == [-1], producers

        unknown = write_txn_markers(
            conn, [(pid, epoch, False, {missing: [0], topic_name: [7]}, stuck["coordinator_epoch"])]
        )
        assert unknown == {
            (pid, missing, 0): UNKNOWN_TOPIC_OR_PARTITION,
            (pid, topic_name, 7): UNKNOWN_TOPIC_OR_PARTITION,
        }

    # The marker takes offset 8: the last stable offset is the log end again.
    assert kp_end_offsets(txn_broker, topic_name, 1, "read_committed") == {0: 9}
    assert kp_end_offsets(txn_broker, topic_name, 1, "read_uncommitted") == {0: 9}

    # A marker remembers its coordinator's epoch; one from an older coordinator is fenced.
    with RawConnection(txn_broker.bootstrap) as conn:
        assert write_txn_markers(conn, [(pid, epoch, False, {topic_name: [0]}, 5)]) == {
            (pid, topic_name, 0): NONE
        }
        assert write_txn_markers(conn, [(pid, epoch, False, {topic_name: [0]}, 4)]) == {
            (pid, topic_name, 0): TRANSACTION_COORDINATOR_FENCED
        }
        _, producers = describe_producers(conn, {topic_name: [0]})[(topic_name, 0)]
        assert [p["coordinator_epoch"] for p in producers if p["producer_id"] == pid] == [5], producers
    committed_view, _ = kp_read(txn_broker, topic_name, 1, "read_committed", 3)
    assert committed_view == {(0, 0): "ok-0", (0, 1): "ok-1", (0, 2): "ok-2"}
    uncommitted_view, _ = kp_read(txn_broker, topic_name, 1, "read_uncommitted", 8)
    assert sorted(uncommitted_view) == [(0, i) for i in range(8)]
