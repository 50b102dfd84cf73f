#!/usr/bin/env bash
# Runs the cluster benchmarks recorded in docs/benchmarks.md: acks=all produce on three nodes
# (replication factor 3, min.insync.replicas=2) against one node, leader failover with 1 and 100
# partitions, and the propagation of a 1,000-partition topic. Every broker is a release
# `fjord server` on 127.0.0.1 with a temporary data dir, started and stopped by the benchmark
# (crates/fjord/benches/cluster); on exit, anything of its process group still alive is killed.
# Usage: scripts/bench-cluster.sh [--only throughput,failover,metadata] [other flags, see --help]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -q -p fjord
cargo bench -q -p fjord --bench cluster --no-run
set -m # the benchmark and every broker it starts get a process group of their own
cargo bench -q -p fjord --bench cluster -- --fjord "$PWD/target/release/fjord" "$@" &
BENCH=$!
trap 'kill -KILL -- -$BENCH 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
wait $BENCH
