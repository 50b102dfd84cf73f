#!/usr/bin/env bash
# Runs the single-node produce/consume benchmark matrix recorded in docs/benchmarks.md.
# Starts a release broker on 127.0.0.1 with a temporary data dir, runs `fjord perf` against
# it, and stops it. Usage: scripts/bench.sh [RECORDS_1KIB] [RECORDS_100B]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N1K=${1:-1000000}
N100=${2:-5000000}
cargo build --release -q -p fjord
BIN=target/release/fjord
DATA=$(mktemp -d)
LOG=$DATA/broker.log
"$BIN" server --override listeners=PLAINTEXT://127.0.0.1:0 --override "log.dirs=$DATA/data" 2>"$LOG" &
BROKER=$!
trap 'kill -TERM $BROKER 2>/dev/null; wait $BROKER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do grep -q 'listening on' "$LOG" && break; sleep 0.1; done
ADDR=$(grep -o 'PLAINTEXT://[0-9.]*:[0-9]*' "$LOG" | head -1 | sed 's#PLAINTEXT://##')
echo "broker pid $BROKER at $ADDR; $(nproc) cores; $(uname -r)"
run_produce() { # name topic records size props...
    local name=$1 topic=$2 n=$3 size=$4; shift 4
    echo "== produce $name"
    "$BIN" perf produce --bootstrap-server "$ADDR" --broker-pid "$BROKER" --topic "$topic" \
        --num-records "$n" --record-size "$size" --producer-props "$@" | tail -2
}
run_produce "1KiB acks=1 none" t1k-a1 "$N1K" 1024 acks=1 linger.ms=5 batch.size=1000000
run_produce "1KiB acks=all none" t1k-all "$N1K" 1024 acks=all linger.ms=5 batch.size=1000000
run_produce "1KiB acks=1 lz4" t1k-a1-lz4 "$N1K" 1024 acks=1 linger.ms=5 batch.size=1000000 compression.type=lz4
run_produce "1KiB acks=all lz4" t1k-all-lz4 "$N1K" 1024 acks=all linger.ms=5 batch.size=1000000 compression.type=lz4
run_produce "100B acks=1 none" t100-a1 "$N100" 100 acks=1 linger.ms=5 batch.size=1000000
run_produce "100B acks=all none" t100-all "$N100" 100 acks=all linger.ms=5 batch.size=1000000
run_produce "100B acks=1 lz4" t100-a1-lz4 "$N100" 100 acks=1 linger.ms=5 batch.size=1000000 compression.type=lz4
run_produce "100B acks=all lz4" t100-all-lz4 "$N100" 100 acks=all linger.ms=5 batch.size=1000000 compression.type=lz4
echo "== produce latency: 1KiB acks=all at 50 MB/s (51200 records/s), linger.ms=0"
"$BIN" perf produce --bootstrap-server "$ADDR" --broker-pid "$BROKER" --topic tlat \
    --num-records 512000 --record-size 1024 --throughput 51200 --producer-props acks=all linger.ms=0 | tail -2
for t in t1k-a1 t100-a1; do
    echo "== consume $t (page cache)"
    "$BIN" perf consume --bootstrap-server "$ADDR" --broker-pid "$BROKER" --topic "$t" | tail -2
done
