"""Leader elections and partition reassignments against a single-node broker,
with independent clients: kafka-python's KafkaAdminClient.perform_leader_election
(ElectLeaders v1) and its own AlterPartitionReassignments and
ListPartitionReassignments v0 protocol classes, confluent-kafka's
AdminClient.elect_leaders (librdkafka), and ElectLeaders v0 and v2 encoded from
Kafka's message definitions in kafka_raw.py.

A single node is a cluster of one broker with one replica per partition, and
that replica leads: every election is ELECTION_NOT_NEEDED, a reassignment
may only name this broker (a no-op), and nothing is ever being reassigned.
The answers are those of Kafka's controller for such a cluster.
"""

import uuid

import pytest
from confluent_kafka import ElectionType, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.admin import KafkaAdminClient
from kafka.errors import UnknownTopicOrPartitionError
from kafka.protocol.admin import (
    AlterPartitionReassignmentsRequest_v0,
    ListPartitionReassignmentsRequest_v0,
)
from kafka.protocol.api_versions import ApiVersionsRequest_v3

from kafka_raw import RawConnection, elect_leaders_v0, elect_leaders_v2

TIMEOUT_S = 30

# Kafka error codes.
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REPLICA_ASSIGNMENT = 39
INVALID_REQUEST = 42
ELECTION_NOT_NEEDED = 84
NO_REASSIGNMENT_IN_PROGRESS = 85

PREFERRED = 0
UNCLEAN = 1
NOT_NEEDED_MESSAGE = "Leader election not needed for topic partition."

pytestmark = pytest.mark.timeout(90)


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(broker, name, partitions):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)],
        request_timeout=TIMEOUT_S,
    )
    assert futures[name].result(timeout=TIMEOUT_S) is None


def node_id(broker):
    metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=TIMEOUT_S)
    (only,) = metadata.brokers.keys()
    return only


def results_by_partition(response):
    """{(topic, partition): (error_code, error_message)} of an ElectLeaders response dict."""
    out = {}
    for topic in response["replica_election_results"]:
        for p in topic["partition_result"]:
            out[(topic["topic"], p["partition_id"])] = (p["error_code"], p["error_message"])
    return out


def test_api_versions_lists_the_partition_admin_apis(broker):
    with RawConnection(broker.bootstrap) as conn:
        response = conn.call(
            ApiVersionsRequest_v3(client_software_name="fjord-pytest", client_software_version="1", _tagged_fields={})
        )
    versions = {key: (lo, hi) for key, lo, hi, _tags in response.api_versions}
    assert versions[43] == (0, 2), "ElectLeaders"
    assert versions[45] == (0, 0), "AlterPartitionReassignments"
    assert versions[46] == (0, 0), "ListPartitionReassignments"


def test_kafka_python_elections_are_not_needed_on_a_single_node(broker, topic_name):
    """perform_leader_election (ElectLeaders v1): preferred and unclean elections of a
    partition led by its only replica are ELECTION_NOT_NEEDED, which kafka-python accepts;
    an unknown topic raises UnknownTopicOrPartitionError."""
    create_topic(broker, topic_name, 2)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        for election_type in (PREFERRED, UNCLEAN):
            response = admin.perform_leader_election(election_type, {topic_name: [0, 1]})
            assert response.API_VERSION == 1
            assert response.error_code == NONE
            results = {
                (topic, p[0]): p[1:]
                for topic, partitions in response.replication_election_results
                for p in partitions
            }
            assert results == {
                (topic_name, 0): (ELECTION_NOT_NEEDED, NOT_NEEDED_MESSAGE),
                (topic_name, 1): (ELECTION_NOT_NEEDED, NOT_NEEDED_MESSAGE),
            }
        # Every partition the client knows (it names them all explicitly).
        admin.perform_leader_election(PREFERRED)
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.perform_leader_election(PREFERRED, {unique("missing"): [0]})
    finally:
        admin.close()


def test_confluent_kafka_elect_leaders(broker, topic_name):
    """librdkafka's ElectLeaders: ELECTION_NOT_NEEDED per named partition, an unknown
    partition UNKNOWN_TOPIC_OR_PARTITION, and nothing to report for all partitions."""
    create_topic(broker, topic_name, 2)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    wanted = [TopicPartition(topic_name, 0), TopicPartition(topic_name, 1), TopicPartition(topic_name, 7)]
    for election_type in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        results = admin.elect_leaders(election_type, wanted).result(timeout=TIMEOUT_S)
        codes = {
            (tp.topic, tp.partition): (error.code() if error is not None else KafkaError.NO_ERROR)
            for tp, error in results.items()
        }
        assert codes == {
            (topic_name, 0): KafkaError.ELECTION_NOT_NEEDED,
            (topic_name, 1): KafkaError.ELECTION_NOT_NEEDED,
            (topic_name, 7): KafkaError.UNKNOWN_TOPIC_OR_PART,
        }
    assert admin.elect_leaders(ElectionType.PREFERRED, None).result(timeout=TIMEOUT_S) == {}


def test_elect_leaders_v0_and_v2_answer_like_kafkas_controller(broker, topic_name):
    """v0 (preferred only) and v2 (flexible): named partitions get a result each in
    request order with Kafka's messages; an election over everything lists every topic
    with no partitions (none needed one); an unknown election type is INVALID_REQUEST for
    the whole request."""
    create_topic(broker, topic_name, 2)
    missing = unique("missing")
    with RawConnection(broker.bootstrap) as conn:
        v0 = elect_leaders_v0(conn, {topic_name: [1, 0, 5]})
        assert [r["topic"] for r in v0["replica_election_results"]] == [topic_name]
        assert [p["partition_id"] for p in v0["replica_election_results"][0]["partition_result"]] == [1, 0, 5]
        assert results_by_partition(v0) == {
            (topic_name, 0): (ELECTION_NOT_NEEDED, NOT_NEEDED_MESSAGE),
            (topic_name, 1): (ELECTION_NOT_NEEDED, NOT_NEEDED_MESSAGE),
            (topic_name, 5): (UNKNOWN_TOPIC_OR_PARTITION, f"No such partition as {topic_name}-5"),
        }

        everything = elect_leaders_v0(conn, None)
        listed = {r["topic"]: r["partition_result"] for r in everything["replica_election_results"]}
        assert listed.get(topic_name) == [], listed

        for election_type in (PREFERRED, UNCLEAN):
            v2 = elect_leaders_v2(conn, election_type, {topic_name: [0], missing: [0]})
            assert v2["error_code"] == NONE
            assert results_by_partition(v2) == {
                (topic_name, 0): (ELECTION_NOT_NEEDED, NOT_NEEDED_MESSAGE),
                (missing, 0): (UNKNOWN_TOPIC_OR_PARTITION, f"No such topic as {missing}"),
            }

        bad = elect_leaders_v2(conn, 7, {topic_name: [0, 1]})
        assert bad["error_code"] == INVALID_REQUEST
        assert {code for code, _ in results_by_partition(bad).values()} == {INVALID_REQUEST}
        assert len(results_by_partition(bad)) == 2


def reassign(conn, targets):
    """AlterPartitionReassignments v0 with kafka-python's class; targets is
    {(topic, partition): replicas or None} -> {(topic, partition): (code, message)}."""
    by_topic = {}
    for (topic, partition), replicas in targets.items():
        by_topic.setdefault(topic, []).append((partition, replicas, {}))
    request = AlterPartitionReassignmentsRequest_v0(
        timeout_ms=30000, topics=[(t, ps, {}) for t, ps in by_topic.items()], tags={}
    )
    response = conn.call(request).to_object()
    assert response["error_code"] == NONE, response
    out = {}
    for topic in response["responses"]:
        for p in topic["partitions"]:
            out[(topic["name"], p["partition_index"])] = (p["error_code"], p["error_message"])
    return out


def list_reassignments(conn, topics=None):
    request = ListPartitionReassignmentsRequest_v0(
        timeout_ms=30000,
        topics=None if topics is None else [(t, list(ps), {}) for t, ps in topics.items()],
        tags={},
    )
    return conn.call(request).to_object()


def test_reassignments_on_a_single_node(broker, topic_name):
    """kafka-python's AlterPartitionReassignments v0: a target of exactly this broker is a
    no-op success; other brokers, repeated brokers and empty lists are
    INVALID_REPLICA_ASSIGNMENT with Kafka's messages; a cancellation is
    NO_REASSIGNMENT_IN_PROGRESS; unknown topics and partitions are
    UNKNOWN_TOPIC_OR_PARTITION. ListPartitionReassignments v0 stays empty."""
    create_topic(broker, topic_name, 3)
    me = node_id(broker)
    other = me + 1
    missing = unique("missing")
    with RawConnection(broker.bootstrap) as conn:
        results = reassign(
            conn,
            {
                (topic_name, 0): [me],
                (topic_name, 1): [me, other],
                (topic_name, 2): [me, me],
                (topic_name, 3): [me],
                (missing, 0): [me],
            },
        )
        assert results == {
            (topic_name, 0): (NONE, None),
            (topic_name, 1): (
                INVALID_REPLICA_ASSIGNMENT,
                f"The manual partition assignment includes broker {other}, but no such broker is registered.",
            ),
            (topic_name, 2): (
                INVALID_REPLICA_ASSIGNMENT,
                f"The manual partition assignment includes the broker {me} more than once.",
            ),
            (topic_name, 3): (UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find partition {topic_name}:3."),
            (missing, 0): (UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find a topic named {missing}."),
        }
        results = reassign(conn, {(topic_name, 0): [], (topic_name, 1): None})
        assert results == {
            (topic_name, 0): (
                INVALID_REPLICA_ASSIGNMENT,
                "The manual partition assignment includes an empty replica list.",
            ),
            (topic_name, 1): (NO_REASSIGNMENT_IN_PROGRESS, "No partition reassignment is in progress."),
        }

        for topics in (None, {topic_name: [0, 1, 2]}, {missing: [0]}):
            listed = list_reassignments(conn, topics)
            assert listed["error_code"] == NONE
            assert listed["topics"] == [], listed
