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
# converts voice notes, and ip (iproute2) for the network namespaces of tests/remote_access.rs
# and tests/reverse_proxy.rs; the latter also runs nginx (package `nginx`: on bookworm
# `nginx-light` only pulls it in with an extra module) with a certificate from openssl.
# Node.js and npm (package npm) run README's mcp-remote entry and the official TypeScript SDK
# in tests/python.
need=()
for pair in systemd-socket-activate:systemd /lib/systemd/systemd-journald:systemd \
    systemd-cat:systemd unshare:util-linux curl:curl stat:coreutils \
    pg_ctlcluster:postgresql runuser:util-linux ffmpeg:ffmpeg ip:iproute2 \
    /usr/sbin/nginx:nginx openssl:openssl npx:npm; do
    cmd=${pair%%:*} pkg=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "$cmd" ]; then
        need+=("$pkg")
    fi
done
if [ ${#need[@]} -gt 0 ]; then
    step "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
    # The nginx package enables its own service, which a booted machine starts on port 80 of
    # every address. The test runs a private nginx inside a network namespace and needs none of
    # it, so an nginx installed here is stopped and disabled rather than left as an open port.
    if [[ " ${need[*]} " == *" nginx "* ]]; then
        if [ -d /run/systemd/system ]; then
            systemctl disable --now nginx.service >/dev/null 2>&1 || true
        else
            service nginx stop >/dev/null 2>&1 || true
        fi
    fi
fi

# Every binary the tests spawn copies its stderr here, at debug level (the Rust tests through a
# wrapper from tests/common, the Python tests through their fixtures); the last step scans
# these logs for the tokens, QR and pairing codes and message bodies the suite uses.
export WHATSAPP_MCP_TEST_LOG_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/test-logs
rm -rf "$WHATSAPP_MCP_TEST_LOG_DIR"
mkdir -p "$WHATSAPP_MCP_TEST_LOG_DIR"

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

step "fuzzing (cargo fuzz, libFuzzer)"
# fuzz/ is a workspace of its own with two targets: bytes POSTed as JSON-RPC to /mcp and
# /messages in process, and config parsing (TOML plus environment). Each runs for a bounded
# time from the committed seeds. cargo fuzz passes compiler flags that only nightly accepts;
# RUSTC_BOOTSTRAP=1 lets the stable compiler take them. No sanitizer: the crate forbids unsafe
# code and the harnesses look for panics and broken invariants. Optimised, because the whole
# dependency tree is instrumented: about 16 minutes from nothing on 2 cores, while an
# unoptimised build saves 10 of them but runs 80 times fewer inputs. It lives in target/fuzz.
# libfuzzer-sys compiles libFuzzer itself, which is C++.
if ! command -v c++ >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
fuzz_seconds=${WHATSAPP_MCP_FUZZ_SECONDS:-60}
fuzz_dir=${CARGO_TARGET_DIR:-$ROOT/target}/fuzz
export RUSTC_BOOTSTRAP=1
cargo fuzz build --sanitizer none --target-dir "$fuzz_dir"
for target in mcp_request config_load; do
    mkdir -p "$fuzz_dir/corpus/$target" "$fuzz_dir/artifacts/$target" "$fuzz_dir/tmp"
    # Findings land in target/fuzz/artifacts; the run stops at the first one and fails.
    TMPDIR=$fuzz_dir/tmp cargo fuzz run --sanitizer none --target-dir "$fuzz_dir" "$target" \
        "$fuzz_dir/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$fuzz_seconds" -print_final_stats=1 \
        -artifact_prefix="$fuzz_dir/artifacts/$target/" </dev/null
    rm -rf "$fuzz_dir/tmp"
done
unset RUSTC_BOOTSTRAP

step "package tier"
bash tests/package/run.sh

step "no secrets in the test logs"
bash tests/scan_logs.sh "$WHATSAPP_MCP_TEST_LOG_DIR"

step "all tests passed"
