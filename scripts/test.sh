#!/usr/bin/env bash
# Runs Fjord's whole test suite on a Debian (bookworm) machine that has the
# Rust toolchain, gcc and python3 with pip. Installs what else it needs:
#   - Debian packages: kcat (the librdkafka command-line client) and the
#     build tools librdkafka (rdkafka-sys) needs;
#   - a Python virtualenv in .venv with the pinned packages from
#     tests/python/requirements.txt (kafka-python, confluent-kafka, pytest).
# Then: cargo fmt --check, clippy (-D warnings), the Rust tests (nextest),
# a release build of the `fjord` binary and the Python client tests against it.
#
# Usage: scripts/test.sh [--setup-only] [--python-only] [-- PYTEST_ARGS...]
#   --setup-only   only install the Debian packages and the virtualenv
#   --python-only  skip fmt/clippy/Rust tests; build fjord and run pytest
# Environment: PYTHON (default python3) picks the interpreter for .venv.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

SETUP_ONLY=0
PYTHON_ONLY=0
PYTEST_EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --setup-only) SETUP_ONLY=1 ;;
        --python-only) PYTHON_ONLY=1 ;;
        --) shift; PYTEST_EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "scripts/test.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

PY=${PYTHON:-python3}
VENV=$ROOT/.venv
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
REQUIREMENTS=$ROOT/tests/python/requirements.txt
# Debian packages: kcat for the client tests; make, gcc, g++ and pkg-config
# for rdkafka-sys, which builds librdkafka with its own configure + make
# (its configure requires a C++ compiler); zlib1g-dev so libz-sys links the
# system zlib instead of compiling its own.
APT_PACKAGES=(kcat make gcc g++ pkg-config zlib1g-dev)

STEP_NAMES=()
STEP_RESULTS=()
STEP_TIMES=()
FAILED=0

log() { printf '\n==> %s\n' "$*"; }

# run_step NAME COMMAND...: runs the command, records ok/FAILED and its time,
# and never aborts the script (so one report covers every step).
run_step() {
    local name=$1; shift
    log "$name: $*"
    local start=$SECONDS rc=0
    "$@" || rc=$?
    STEP_NAMES+=("$name")
    STEP_TIMES+=("$((SECONDS - start))s")
    if [ "$rc" -eq 0 ]; then
        STEP_RESULTS+=("ok")
    else
        STEP_RESULTS+=("FAILED (exit $rc)")
        FAILED=1
    fi
    return 0
}

skip_step() {
    STEP_NAMES+=("$1"); STEP_RESULTS+=("skipped: $2"); STEP_TIMES+=("-")
    FAILED=1
}

last_step_ok() { [ "${STEP_RESULTS[${#STEP_RESULTS[@]}-1]}" = ok ]; }

summary() {
    echo
    echo "================ Fjord test summary ================"
    local i
    for i in "${!STEP_NAMES[@]}"; do
        printf '  %-22s %-22s %s\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_TIMES[$i]}"
    done
    echo "  total time: $((SECONDS))s"
    if [ "$FAILED" -eq 0 ]; then
        echo "RESULT: every step succeeded"
    else
        echo "RESULT: FAILURE (see the steps above)"
    fi
    echo "===================================================="
}

# ---------------------------------------------------------------- setup ---

install_debian_packages() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    if [ ${#missing[@]} -eq 0 ]; then
        echo "Debian packages already installed: ${APT_PACKAGES[*]}"
        return 0
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "need root or sudo to install: ${missing[*]}" >&2; return 1; }
        sudo=(sudo)
    fi
    echo "installing Debian packages: ${missing[*]}"
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600)
    "${apt[@]}" update
    "${apt[@]}" install -y --no-install-recommends "${missing[@]}"
    command -v kcat >/dev/null || { echo "kcat is still missing after apt-get install" >&2; return 1; }
}

setup_venv() {
    local stamp_file=$VENV/.fjord-requirements-stamp
    local stamp
    stamp="$("$PY" -c 'import sys; print(sys.version)') $(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
    if [ -x "$VENV/bin/python" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
        echo "virtualenv $VENV is up to date"
        return 0
    fi
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$VENV/bin/python" -m pip install -q -r "$REQUIREMENTS"
    "$VENV/bin/python" -m pip freeze --all | grep -iE '^(kafka-python|confluent-kafka|pytest|pytest-timeout|python-snappy|cramjam|lz4|zstandard)=='
    echo "$stamp" >"$stamp_file"
}

log "setup: Debian packages"
SETUP_START=$SECONDS
set -o errtrace
trap 'echo "scripts/test.sh: setup FAILED (command above exited non-zero)" >&2' ERR
install_debian_packages
log "setup: Python virtualenv ($VENV)"
setup_venv
trap - ERR
echo "setup took $((SECONDS - SETUP_START))s"
STEP_NAMES+=("setup"); STEP_RESULTS+=("ok"); STEP_TIMES+=("$((SECONDS - SETUP_START))s")

if [ "$SETUP_ONLY" -eq 1 ]; then
    summary
    exit 0
fi

# ----------------------------------------------------------------- rust ---

if [ "$PYTHON_ONLY" -eq 0 ]; then
    run_step "cargo fmt" cargo fmt --all -- --check
    run_step "cargo clippy" cargo clippy --workspace --all-targets --release -- -D warnings
    if cargo nextest --version >/dev/null 2>&1; then
        run_step "rust tests (nextest)" cargo nextest run --workspace --release --no-fail-fast
    else
        echo "cargo-nextest not found; using cargo test"
        run_step "rust tests (cargo)" cargo test --workspace --release --no-fail-fast
    fi
fi

# --------------------------------------------------------------- python ---

run_step "cargo build fjord" cargo build --release -p fjord
if last_step_ok; then
    run_pytest() {
        local rc=0
        # Bounded as a whole; every test is also bounded by pytest-timeout.
        FJORD_BIN=$TARGET_DIR/release/fjord PYTHONDONTWRITEBYTECODE=1 \
            timeout --kill-after=30 1200 \
            "$VENV/bin/python" -m pytest -ra \
            "$ROOT/tests/python" ${PYTEST_EXTRA[@]+"${PYTEST_EXTRA[@]}"} || rc=$?
        if [ "$rc" -eq 5 ]; then
            echo "pytest collected no tests: counted as a failure" >&2
        fi
        return "$rc"
    }
    run_step "python client tests" run_pytest
else
    skip_step "python client tests" "fjord did not build"
fi

summary
exit "$FAILED"
