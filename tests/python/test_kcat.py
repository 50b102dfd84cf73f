"""kcat (Debian's package, built on librdkafka 2.0.2) against a real fjord
broker: metadata listing, keyed and header-carrying produce, compressed
produce, and consuming (simple consumer, no group) with -o / -e / -c."""

import json
import re
import shutil
import subprocess

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from helpers import CODEC_IDS, segment_batch_codecs

KCAT_TIMEOUT_S = 60


def kcat(broker, *args, stdin=b""):
    if shutil.which("kcat") is None:
        pytest.fail("kcat is not installed (scripts/test.sh installs Debian's kcat)", pytrace=False)
    cmd = ["kcat", "-b", broker.bootstrap, *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=KCAT_TIMEOUT_S)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} exited {proc.returncode}\nstderr:\n{proc.stderr.decode(errors='replace')}"
    )
    return proc.stdout.decode()


def create_topics(broker, topics):
    """topics: {name: partitions}, created with confluent-kafka's AdminClient."""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = a.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics.items()], operation_timeout=10
    )
    for f in futures.values():
        f.result(timeout=30)


def consume_lines(broker, topic, *extra):
    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k %s %h %o\\n", *extra)
    return out.splitlines()


def test_kcat_metadata_lists_the_broker_and_topics(broker, topic_name):
    """`kcat -L` (text and -J JSON) shows one broker at the listening address
    as controller, and each topic with its partitions led by that broker."""
    t3, t1 = topic_name + "-three", topic_name + "-one"
    create_topics(broker, {t3: 3, t1: 1})

    meta = json.loads(kcat(broker, "-L", "-J"))
    assert len(meta["brokers"]) == 1, meta["brokers"]
    node = meta["brokers"][0]["id"]
    assert meta["brokers"] == [{"id": node, "name": f"127.0.0.1:{broker.port}"}]
    assert meta["controllerid"] == node
    topics = {t["topic"]: t for t in meta["topics"]}
    for t, n in ((t3, 3), (t1, 1)):
        assert t in topics, f"{t} missing from {sorted(topics)}"
        parts = sorted(topics[t]["partitions"], key=lambda p: p["partition"])
        assert [p["partition"] for p in parts] == list(range(n))
        for p in parts:
            assert (p["leader"], p["replicas"], p["isrs"]) == (node, [{"id": node}], [{"id": node}]), p
            assert "error" not in p, p

    text = kcat(broker, "-L")
    lines = text.splitlines()
    assert " 1 brokers:" in lines, text
    assert f"  broker {node} at 127.0.0.1:{broker.port} (controller)" in lines, text
    assert f'  topic "{t3}" with 3 partitions:' in lines, text
    assert f'  topic "{t1}" with 1 partitions:' in lines, text
    for p in range(3):
        assert f"    partition {p}, leader {node}, replicas: {node}, isrs: {node}" in lines, text

    only = kcat(broker, "-L", "-t", t1)
    assert re.findall(r'topic "([^"]+)"', only) == [t1], only


def test_kcat_produces_keyed_lines_and_consumes_them_in_order(broker, topic_name):
    """`-P -K:` stores key and value of every line; `-C -o beginning -e -f
    '%k %s %h %o'` prints them back in order with offsets 0..n-1."""
    create_topics(broker, {topic_name: 1})
    lines = [f"key-{i}:value number {i}" for i in range(200)]
    kcat(broker, "-P", "-t", topic_name, "-K:", stdin=("\n".join(lines) + "\n").encode())
    expected = [f"key-{i} value number {i}  {i}" for i in range(200)]
    assert consume_lines(broker, topic_name) == expected


def test_kcat_produces_headers_and_consumes_them(broker, topic_name):
    """`-H k=v` (twice) attaches both headers, in order, to every message."""
    create_topics(broker, {topic_name: 1})
    lines = [f"k{i}:v{i}" for i in range(50)]
    kcat(
        broker, "-P", "-t", topic_name, "-K:", "-H", "source=kcat", "-H", "trace=abc-123",
        stdin=("\n".join(lines) + "\n").encode(),
    )
    expected = [f"k{i} v{i} source=kcat,trace=abc-123 {i}" for i in range(50)]
    assert consume_lines(broker, topic_name) == expected


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kcat_compressed_produce_round_trips_and_is_stored_compressed(start_broker, topic_name, codec):
    """`-z CODEC` produce: every line comes back, and the stored batches carry
    the codec kcat used."""
    broker = start_broker()
    create_topics(broker, {topic_name: 1})
    lines = [f"k{i % 10}:" + f"compressible payload {i} " * 20 for i in range(1_000)]
    kcat(broker, "-P", "-t", topic_name, "-K:", "-z", codec, stdin=("\n".join(lines) + "\n").encode())
    expected = [f"k{i % 10} " + f"compressible payload {i} " * 20 + f"  {i}" for i in range(1_000)]
    assert consume_lines(broker, topic_name) == expected
    assert broker.stop() is not None
    codecs = segment_batch_codecs(broker.log_dir, topic_name, 0)
    assert codecs and set(codecs) == {CODEC_IDS[codec]}, f"stored codec ids {sorted(set(codecs))}"


def test_kcat_consumes_from_absolute_and_relative_offsets(broker, topic_name):
    """`-o 10 -c 5` reads offsets 10..14; `-o -5 -e` reads the last five
    (a ListOffsets for the log end)."""
    create_topics(broker, {topic_name: 1})
    kcat(broker, "-P", "-t", topic_name, stdin=("\n".join(f"m{i}" for i in range(30)) + "\n").encode())
    out = kcat(broker, "-C", "-t", topic_name, "-o", "10", "-c", "5", "-f", "%s@%o\\n")
    assert out.splitlines() == [f"m{i}@{i}" for i in range(10, 15)]
    out = kcat(broker, "-C", "-t", topic_name, "-o", "-5", "-e", "-f", "%s@%o\\n")
    assert out.splitlines() == [f"m{i}@{i}" for i in range(25, 30)]
