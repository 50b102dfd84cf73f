//! The operator tools a Kafka user already knows:
//!
//! | command                     | modelled on                    |
//! |-----------------------------|--------------------------------|
//! | `fjord topics`              | `kafka-topics.sh`              |
//! | `fjord configs`             | `kafka-configs.sh`             |
//! | `fjord produce`             | `kafka-console-producer.sh`    |
//! | `fjord consume`             | `kafka-console-consumer.sh`    |
//! | `fjord leader-election`     | `kafka-leader-election.sh`     |
//! | `fjord reassign-partitions` | `kafka-reassign-partitions.sh` |
//!
//! Like the perf and groups tools, they reach the cluster only over the wire
//! (through librdkafka where it has the calls), so they work the same against
//! Fjord and against an Apache Kafka cluster. Flag names, output lines and messages follow Kafka's
//! tools so that scripts and habits carry over; `--output json` gives a
//! machine-readable form instead.
//!
//! Layout: `common.rs` holds what every tool shares (connection flags, client
//! configuration, the quiet librdkafka context, bounded waits, error wording
//! and table rendering); each tool has its own file with its flags, its pure
//! parsing/formatting (unit-tested there) and its calls to the cluster.
//! `topic_ids.rs` asks the broker for topic ids with one raw Metadata request,
//! because librdkafka does not expose them. librdkafka has no API for leader
//! elections and reassignments either: `leader_election.rs` and
//! `reassign_partitions.rs` (like `fjord transactions`) use `kafka_client.rs`,
//! a small blocking client that speaks the protocol itself (PLAINTEXT only).

pub(crate) mod common;
pub(crate) mod configs;
pub(crate) mod consume;
pub(crate) mod kafka_client;
pub(crate) mod leader_election;
pub(crate) mod produce;
pub(crate) mod reassign_partitions;
mod topic_ids;
pub(crate) mod topics;
