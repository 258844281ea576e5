#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, the Rust tests (unit, integration,
# socket activation, journald) and the package tier (units, .deb, lintian, booted containers).
#
#   sudo bash tests/run.sh
#
# Runs as root on a fresh Debian machine with a Rust toolchain: it installs the Debian packages
# and cargo tools it needs when they are missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh needs root: it installs packages, starts a private journald and boots containers" >&2
    exit 2
fi

step() { printf '\n=== %s\n' "$*"; }

# Debian packages the Rust tests call: systemd-socket-activate and systemd-journald (systemd),
# unshare and nsenter (util-linux), curl, and a PostgreSQL server for throwaway clusters
# (postgresql; pg_ctlcluster stands for it because initdb is not on PATH), and ffmpeg, which
# converts voice notes.
need=()
for pair in systemd-socket-activate:systemd /lib/systemd/systemd-journald:systemd \
    systemd-cat:systemd unshare:util-linux curl:curl stat:coreutils \
    pg_ctlcluster:postgresql runuser:util-linux ffmpeg:ffmpeg; do
    cmd=${pair%%:*} pkg=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "$cmd" ]; then
        need+=("$pkg")
    fi
done
if [ ${#need[@]} -gt 0 ]; then
    step "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --all-targets --all-features -- -D warnings

step "cargo test"
cargo test --locked --all-targets --features fake-engine

step "MCP client tests (official Python SDK)"
# tests/python drives the real binary, built with the fake engine, over stdio, legacy SSE and
# Streamable HTTP with the `mcp` package from PyPI, installed into a venv under target/.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
fi
target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
venv=$ROOT/target/python-venv
if ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
    rm -rf "$venv"
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
cargo build --locked --features fake-engine
# Any failure counts, including pytest's exit code 5 (no tests collected).
if ! PYTHONDONTWRITEBYTECODE=1 WHATSAPP_MCP_BIN="$target_dir/debug/whatsapp-mcp" \
    "$venv/bin/python" -m pytest -q tests/python; then
    echo "the Python MCP client tests failed" >&2
    exit 1
fi

step "package tier"
bash tests/package/run.sh

step "all tests passed"
