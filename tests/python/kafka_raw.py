"""Raw Kafka requests that no client library in the test set sends (or sends
correctly): DescribeProducers, DescribeTransactions, ListTransactions and
WriteTxnMarkers, and ElectLeaders v0 and v2 (kafka-python's own ElectLeaders
"v0" class is v1 under another name, and it has no v2).

The field lists are copied from Apache Kafka's message definitions
(clients/src/main/resources/common/message/*.json) and encoded with
kafka-python's generic protocol types, so nothing here shares code with the
broker's codec. All four are flexible versions: compact strings and arrays,
and every struct (the body and each array element) ends in tagged fields;
the request header is v2 and the response header v1 (both with tagged
fields), which kafka-python's Request/Response pick from FLEXIBLE_VERSION.

`RawConnection` frames requests itself (4-byte size, header, body) over a
plain socket and insists that a response is consumed to the last byte.
"""

import socket
import struct
from io import BytesIO

from kafka.protocol.api import Request, Response
from kafka.protocol.types import (
    Array,
    Boolean,
    CompactArray,
    CompactString,
    Int8,
    Int16,
    Int32,
    Int64,
    Schema,
    String,
    TaggedFields,
)

CLIENT_ID = "fjord-pytest-raw"
STRING = CompactString("utf-8")
TAGS = ("_tagged_fields", TaggedFields)


class DescribeProducersResponse_v0(Response):
    API_KEY = 61
    API_VERSION = 0
    FLEXIBLE_VERSION = True
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("topics", CompactArray(
            ("name", STRING),
            ("partitions", CompactArray(
                ("partition_index", Int32),
                ("error_code", Int16),
                ("error_message", STRING),
                ("active_producers", CompactArray(
                    ("producer_id", Int64),
                    ("producer_epoch", Int32),
                    ("last_sequence", Int32),
                    ("last_timestamp", Int64),
                    ("coordinator_epoch", Int32),
                    ("current_txn_start_offset", Int64),
                    TAGS,
                )),
                TAGS,
            )),
            TAGS,
        )),
        TAGS,
    )


class DescribeProducersRequest_v0(Request):
    API_KEY = 61
    API_VERSION = 0
    FLEXIBLE_VERSION = True
    RESPONSE_TYPE = DescribeProducersResponse_v0
    SCHEMA = Schema(
        ("topics", CompactArray(
            ("name", STRING),
            ("partition_indexes", CompactArray(Int32)),
            TAGS,
        )),
        TAGS,
    )


class DescribeTransactionsResponse_v0(Response):
    API_KEY = 65
    API_VERSION = 0
    FLEXIBLE_VERSION = True
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("transaction_states", CompactArray(
            ("error_code", Int16),
            ("transactional_id", STRING),
            ("transaction_state", STRING),
            ("transaction_timeout_ms", Int32),
            ("transaction_start_time_ms", Int64),
            ("producer_id", Int64),
            ("producer_epoch", Int16),
            ("topics", CompactArray(
                ("topic", STRING),
                ("partitions", CompactArray(Int32)),
                TAGS,
            )),
            TAGS,
        )),
        TAGS,
    )


class DescribeTransactionsRequest_v0(Request):
    API_KEY = 65
    API_VERSION = 0
    FLEXIBLE_VERSION = True
    RESPONSE_TYPE = DescribeTransactionsResponse_v0
    SCHEMA = Schema(
        ("transactional_ids", CompactArray(STRING)),
        TAGS,
    )


class ListTransactionsResponse_v0(Response):
    API_KEY = 66
    API_VERSION = 0
    FLEXIBLE_VERSION = True
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("unknown_state_filters", CompactArray(STRING)),
        ("transaction_states", CompactArray(
            ("transactional_id", STRING),
            ("producer_id", Int64),
            ("transaction_state", STRING),
            TAGS,
        )),
        TAGS,
    )


class ListTransactionsResponse_v1(Response):
    # Version 1 only adds DurationFilter to the request.
    API_KEY = 66
    API_VERSION = 1
    FLEXIBLE_VERSION = True
    SCHEMA = ListTransactionsResponse_v0.SCHEMA


class ListTransactionsRequest_v0(Request):
    API_KEY = 66
    API_VERSION = 0
    FLEXIBLE_VERSION = True
    RESPONSE_TYPE = ListTransactionsResponse_v0
    SCHEMA = Schema(
        ("state_filters", CompactArray(STRING)),
        ("producer_id_filters", CompactArray(Int64)),
        TAGS,
    )


class ListTransactionsRequest_v1(Request):
    API_KEY = 66
    API_VERSION = 1
    FLEXIBLE_VERSION = True
    RESPONSE_TYPE = ListTransactionsResponse_v1
    SCHEMA = Schema(
        ("state_filters", CompactArray(STRING)),
        ("producer_id_filters", CompactArray(Int64)),
        ("duration_filter", Int64),
        TAGS,
    )


class WriteTxnMarkersResponse_v1(Response):
    API_KEY = 27
    API_VERSION = 1
    FLEXIBLE_VERSION = True
    SCHEMA = Schema(
        ("markers", CompactArray(
            ("producer_id", Int64),
            ("topics", CompactArray(
                ("name", STRING),
                ("partitions", CompactArray(
                    ("partition_index", Int32),
                    ("error_code", Int16),
                    TAGS,
                )),
                TAGS,
            )),
            TAGS,
        )),
        TAGS,
    )


class WriteTxnMarkersRequest_v1(Request):
    API_KEY = 27
    API_VERSION = 1
    FLEXIBLE_VERSION = True
    RESPONSE_TYPE = WriteTxnMarkersResponse_v1
    SCHEMA = Schema(
        ("markers", CompactArray(
            ("producer_id", Int64),
            ("producer_epoch", Int16),
            ("transaction_result", Boolean),  # false = ABORT, true = COMMIT
            ("topics", CompactArray(
                ("name", STRING),
                ("partition_indexes", CompactArray(Int32)),
                TAGS,
            )),
            ("coordinator_epoch", Int32),
            TAGS,
        )),
        TAGS,
    )


class ElectLeadersResponse_v0(Response):
    API_KEY = 43
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("replica_election_results", Array(
            ("topic", String("utf-8")),
            ("partition_result", Array(
                ("partition_id", Int32),
                ("error_code", Int16),
                ("error_message", String("utf-8")),
            )),
        )),
    )


class ElectLeadersRequest_v0(Request):
    # Version 0 has no election type: it is always a preferred election.
    API_KEY = 43
    API_VERSION = 0
    RESPONSE_TYPE = ElectLeadersResponse_v0
    SCHEMA = Schema(
        ("topic_partitions", Array(
            ("topic", String("utf-8")),
            ("partitions", Array(Int32)),
        )),
        ("timeout_ms", Int32),
    )


class ElectLeadersResponse_v2(Response):
    API_KEY = 43
    API_VERSION = 2
    FLEXIBLE_VERSION = True
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("replica_election_results", CompactArray(
            ("topic", STRING),
            ("partition_result", CompactArray(
                ("partition_id", Int32),
                ("error_code", Int16),
                ("error_message", STRING),
                TAGS,
            )),
            TAGS,
        )),
        TAGS,
    )


class ElectLeadersRequest_v2(Request):
    API_KEY = 43
    API_VERSION = 2
    FLEXIBLE_VERSION = True
    RESPONSE_TYPE = ElectLeadersResponse_v2
    SCHEMA = Schema(
        ("election_type", Int8),
        ("topic_partitions", CompactArray(
            ("topic", STRING),
            ("partitions", CompactArray(Int32)),
            TAGS,
        )),
        ("timeout_ms", Int32),
        TAGS,
    )


def elect_leaders_v0(conn, partitions_by_topic):
    """A preferred election at v0 (None: every partition) -> the response as a dict."""
    topics = None if partitions_by_topic is None else [(t, list(ps)) for t, ps in partitions_by_topic.items()]
    return conn.call(ElectLeadersRequest_v0(topic_partitions=topics, timeout_ms=30000)).to_object()


def elect_leaders_v2(conn, election_type, partitions_by_topic):
    """An election at v2 (None: every partition) -> the response as a dict."""
    topics = None if partitions_by_topic is None else [(t, list(ps), {}) for t, ps in partitions_by_topic.items()]
    request = ElectLeadersRequest_v2(
        election_type=election_type, topic_partitions=topics, timeout_ms=30000, _tagged_fields={}
    )
    return conn.call(request).to_object()


def describe_producers(conn, partitions_by_topic):
    """{topic: [partition]} -> {(topic, partition): (error_code, [producer dict])}."""
    request = DescribeProducersRequest_v0(
        topics=[(t, list(ps), {}) for t, ps in partitions_by_topic.items()],
        _tagged_fields={},
    )
    response = conn.call(request).to_object()
    out = {}
    for topic in response["topics"]:
        for p in topic["partitions"]:
            out[(topic["name"], p["partition_index"])] = (p["error_code"], p["active_producers"])
    return out


def describe_transactions(conn, transactional_ids):
    """-> {transactional_id: state dict}, and the ids in response order."""
    request = DescribeTransactionsRequest_v0(transactional_ids=list(transactional_ids), _tagged_fields={})
    states = conn.call(request).to_object()["transaction_states"]
    return {s["transactional_id"]: s for s in states}, [s["transactional_id"] for s in states]


def list_transactions(conn, state_filters=(), producer_id_filters=(), duration_filter=None):
    """v0, or v1 when a duration filter is given; returns the response as a dict."""
    if duration_filter is None:
        request = ListTransactionsRequest_v0(
            state_filters=list(state_filters),
            producer_id_filters=list(producer_id_filters),
            _tagged_fields={},
        )
    else:
        request = ListTransactionsRequest_v1(
            state_filters=list(state_filters),
            producer_id_filters=list(producer_id_filters),
            duration_filter=duration_filter,
            _tagged_fields={},
        )
    return conn.call(request).to_object()


def write_txn_markers(conn, markers):
    """markers: [(producer_id, producer_epoch, commit, {topic: [partition]}, coordinator_epoch)]
    -> {(producer_id, topic, partition): error_code}."""
    request = WriteTxnMarkersRequest_v1(
        markers=[
            (pid, epoch, commit, [(t, list(ps), {}) for t, ps in topics.items()], coordinator_epoch, {})
            for pid, epoch, commit, topics, coordinator_epoch in markers
        ],
        _tagged_fields={},
    )
    response = conn.call(request).to_object()
    out = {}
    for marker in response["markers"]:
        for topic in marker["topics"]:
            for p in topic["partitions"]:
                out[(marker["producer_id"], topic["name"], p["partition_index"])] = p["error_code"]
    return out


class RawConnection:
    """One blocking socket to a broker; every read and write is bounded by timeout_s."""

    def __init__(self, bootstrap, timeout_s=15.0):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        self.correlation_id = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_exactly(self, n):
        chunks = []
        while n:
            chunk = self.sock.recv(min(n, 1 << 16))
            if not chunk:
                raise ConnectionError(f"broker closed the connection with {n} bytes of the response unread")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def call(self, request):
        """Sends one request and decodes its response, which must fill the frame exactly."""
        self.correlation_id += 1
        header = request.build_header(correlation_id=self.correlation_id, client_id=CLIENT_ID)
        payload = header.encode() + request.encode()
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", self._read_exactly(4))
        body = BytesIO(self._read_exactly(size))
        response_header = request.RESPONSE_TYPE.parse_header(body)
        assert response_header.correlation_id == self.correlation_id, (
            f"{type(request).__name__}: response correlation id {response_header.correlation_id}, "
            f"sent {self.correlation_id}"
        )
        response = request.RESPONSE_TYPE.decode(body)
        rest = body.read()
        assert rest == b"", f"{type(response).__name__}: {len(rest)} bytes left after decoding: {rest[:64]!r}"
        return response
