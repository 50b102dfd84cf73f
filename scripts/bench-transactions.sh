#!/usr/bin/env bash
# Runs the transaction benchmarks recorded in docs/benchmarks.md: transactional produce at 1, 10
# and 100 records per transaction against an idempotent (non-transactional) baseline, then
# read_committed against read_uncommitted consume of the same data. Starts a release broker on
# 127.0.0.1 with a temporary data dir and stops it. Usage: scripts/bench-transactions.sh [RECORDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${1:-200000}
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
PROPS=(acks=all enable.idempotence=true linger.ms=5 batch.size=1000000)
produce() { # name topic records [perf flags...]
    local name=$1 topic=$2 n=$3; shift 3
    echo "== produce $name ($n records of 1 KiB)"
    "$BIN" perf produce --bootstrap-server "$ADDR" --broker-pid "$BROKER" --topic "$topic" \
        --num-records "$n" --record-size 1024 "$@" --producer-props "${PROPS[@]}" | tail -2
}
produce "idempotent, no transactions" tx-base "$N"
produce "transactions of 100 records" tx-100 "$N" --transactional-id bench-100 --transaction-size 100
produce "transactions of 10 records" tx-10 $((N / 10)) --transactional-id bench-10 --transaction-size 10
produce "transactions of 1 record" tx-1 $((N / 100)) --transactional-id bench-1 --transaction-size 1
for level in read_uncommitted read_committed; do
    echo "== consume tx-100 at $level (page cache)"
    "$BIN" perf consume --bootstrap-server "$ADDR" --broker-pid "$BROKER" --topic tx-100 \
        --messages "$N" --consumer-props "isolation.level=$level" | tail -2
done
