#!/usr/bin/env bash
# Package tier: checks the systemd units, builds the .deb, lints it, and
# installs it in booted Debian containers (systemd as PID 1) to watch socket
# activation, the watchdog, state handling and purge for real.
#
#   bash tests/package/run.sh
#
# Needs root. Installs what it lacks (apt-get, cargo install cargo-deb).
# Environment knobs:
#   WHATSAPP_MCP_TEST_SUITES   Debian suites to boot (default "bookworm trixie")
#   WHATSAPP_MCP_TEST_CACHE    where root filesystem tarballs are kept
#                              (default ${XDG_CACHE_HOME:-/var/cache}/whatsapp-mcp-tests)
#   WHATSAPP_MCP_TEST_KEEP=1   keep the work directory for inspection
#
# Prints one PASS:/FAIL: line per check and a closing "N passed, N failed"
# line; exits non-zero if anything failed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/package"
SUITES=${WHATSAPP_MCP_TEST_SUITES:-bookworm trixie}
CACHE=${WHATSAPP_MCP_TEST_CACHE:-${XDG_CACHE_HOME:-/var/cache}/whatsapp-mcp-tests}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# Highest acceptable `systemd-analyze security` exposure for the service.
MAX_EXPOSURE=2.0

# shellcheck source=tests/package/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/package/scenario.sh
. "$HERE/scenario.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/package/run.sh must run as root (it installs packages and boots containers)" >&2
    exit 2
fi

WORK=$(mktemp -d /var/tmp/whatsapp-mcp-pkgtest.XXXXXX)
trap cleanup EXIT
trap 'exit 130' INT TERM
START=$SECONDS

# --- tools -----------------------------------------------------------------

ensure_tools() {
    local missing=() cmd pkg
    for pair in systemd-analyze:systemd systemd-nspawn:systemd-container \
        mmdebstrap:mmdebstrap lintian:lintian curl:curl zstd:zstd jq:jq \
        nsenter:util-linux pgrep:procps gzip:gzip; do
        cmd=${pair%%:*} pkg=${pair#*:}
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq >"$WORK/apt-update.log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >"$WORK/apt-install.log" 2>&1 || {
            cat "$WORK/apt-install.log" >&2
            return 1
        }
    fi
    # The packaging relies on how cargo-deb 3.x lays out units and splices the
    # systemd snippets into debian/postinst and postrm; another major version
    # is replaced rather than trusted.
    if ! cargo deb --version 2>/dev/null | grep -q '^cargo-deb 3\.'; then
        log "installing cargo-deb 3.x"
        cargo install cargo-deb --version '^3.8' --locked --force >"$WORK/cargo-deb-install.log" 2>&1 || {
            tail -20 "$WORK/cargo-deb-install.log" >&2
            return 1
        }
    fi
}

# --- 1. unit files -----------------------------------------------------------

check_units() {
    section "unit files"
    # `systemd-analyze verify` also checks that ExecStart= points to an
    # executable and that every referenced unit exists, both judged against
    # the root it runs in. Give it a throwaway root holding this system's own
    # units (for sockets.target and friends), ours, and a placeholder at
    # /usr/bin/whatsapp-mcp. Man pages are checked in the package step
    # (lintian), since `man` only looks at the real system.
    local vroot="$WORK/verify-root" err="$WORK/verify.stderr" units
    mkdir -p "$vroot/usr/lib/systemd/system" "$vroot/usr/bin" "$vroot/etc"
    cp -a /lib/systemd/system/. "$vroot/usr/lib/systemd/system/"
    cp "$ROOT"/systemd/*.service "$ROOT"/systemd/*.socket "$vroot/usr/lib/systemd/system/"
    printf '#!/bin/sh\nexit 0\n' >"$vroot/usr/bin/whatsapp-mcp"
    chmod 755 "$vroot/usr/bin/whatsapp-mcp"
    units=$(cd "$ROOT/systemd" && ls -- *.socket *.service)
    # shellcheck disable=SC2086 # one word per unit
    if systemd-analyze verify --root="$vroot" --man=no $units 2>"$err" && [ ! -s "$err" ]; then
        pass "systemd-analyze verify: $(tr '\n' ' ' <<<"$units")(no output on stderr)"
    else
        fail "systemd-analyze verify printed:"
        sed 's/^/    /' "$err"
    fi

    local report="$WORK/security.txt" score
    systemd-analyze security --offline=true "$ROOT/systemd/whatsapp-mcp.service" >"$report" 2>&1
    score=$(sed -n 's/.*Overall exposure level for whatsapp-mcp.service: \([0-9.]*\).*/\1/p' "$report")
    if [ -n "$score" ] && awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'; then
        pass "systemd-analyze security exposure $score <= $MAX_EXPOSURE"
    else
        fail "systemd-analyze security exposure '${score:-?}' is above $MAX_EXPOSURE"
        grep -E '^ *✗' "$report" | sed 's/^/    /'
    fi
}

# --- 2. the .deb -------------------------------------------------------------

DEB=""

build_deb() {
    section "package"
    log "cargo build --release"
    if ! (cd "$ROOT" && cargo build --release) >"$WORK/cargo-build.log" 2>&1; then
        fail "cargo build --release"
        tail -30 "$WORK/cargo-build.log" | sed 's/^/    /'
        return 1
    fi
    pass "cargo build --release"

    if "$ROOT/packaging/make-assets.sh" "$TARGET_DIR/release/whatsapp-mcp" "$ROOT/target/assets" \
        >"$WORK/assets.log" 2>&1; then
        pass "man pages and shell completions generated by the binary"
    else
        fail "packaging/make-assets.sh"
        sed 's/^/    /' "$WORK/assets.log"
        return 1
    fi

    mkdir -p "$WORK/debs"
    if ! (cd "$ROOT" && cargo deb --no-build --output "$WORK/debs/") >"$WORK/cargo-deb.log" 2>&1; then
        fail "cargo deb --no-build"
        tail -30 "$WORK/cargo-deb.log" | sed 's/^/    /'
        return 1
    fi
    DEB=$(find "$WORK/debs" -name '*.deb' | head -n 1)
    if [ -z "$DEB" ]; then
        fail "cargo deb produced no .deb"
        return 1
    fi
    pass "cargo deb --no-build -> $(basename "$DEB")"

    # The shipped binary has no test seams: no fake engine, no switch that points the WhatsApp
    # client at another server (those builds also skip WhatsApp's certificate check).
    local shipped="$WORK/shipped-bin"
    mkdir -p "$shipped"
    dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$shipped" ./usr/bin/whatsapp-mcp
    if ! grep -qaE 'WHATSAPP_MCP_FAKE_WA_SERVER|WHATSAPP_MCP_FAKE_SEED' "$shipped/usr/bin/whatsapp-mcp"; then
        pass "the packaged binary carries no test seams (fake engine, stand-in server switch)"
    else
        fail "the packaged binary was built with the fake-engine feature"
    fi

    # What the package must hold, and what it must not (the token is made at
    # install time, never shipped).
    local listing="$WORK/deb-contents.txt" f absent=""
    dpkg-deb -c "$DEB" | awk '{ print $NF }' | sed 's|^\./|/|' >"$listing"
    for f in /usr/bin/whatsapp-mcp \
        /usr/lib/systemd/system/whatsapp-mcp.service \
        /usr/lib/systemd/system/whatsapp-mcp.socket \
        /usr/lib/systemd/system/whatsapp-mcp-mcp.socket \
        /etc/whatsapp-mcp/config.toml \
        /etc/ufw/applications.d/whatsapp-mcp \
        /usr/share/man/man1/whatsapp-mcp.1.gz \
        /usr/share/man/man5/whatsapp-mcp.toml.5.gz \
        /usr/share/bash-completion/completions/whatsapp-mcp \
        /usr/share/zsh/vendor-completions/_whatsapp-mcp \
        /usr/share/fish/vendor_completions.d/whatsapp-mcp.fish \
        /usr/share/doc/whatsapp-mcp/copyright \
        /usr/share/doc/whatsapp-mcp/changelog.Debian.gz \
        /usr/share/doc/whatsapp-mcp/NETWORK.md; do
        grep -qxF "$f" "$listing" || absent="$absent $f"
    done
    if [ -z "$absent" ] && ! grep -q '/etc/whatsapp-mcp/token' "$listing"; then
        pass "package contents (binary, 3 units, config, ufw profile, man pages, completions, docs; no token)"
    else
        fail "package contents: missing:${absent:- none}"
    fi
    local conffiles
    conffiles=$(dpkg-deb --info "$DEB" conffiles 2>/dev/null)
    if grep -qx /etc/whatsapp-mcp/config.toml <<<"$conffiles" && ! grep -q token <<<"$conffiles"; then
        pass "conffiles: config.toml is one, the token is not"
    else
        fail "conffiles are: $(tr '\n' ' ' <<<"$conffiles")"
    fi

    # cargo-deb splices the systemd snippets into debian/postinst and postrm.
    # The token must exist before the snippets start the sockets, since the
    # service will not start without it.
    local ctl="$WORK/control" script order
    mkdir -p "$ctl" && dpkg-deb -e "$DEB" "$ctl"
    order=$(awk '/^ *make_token$/ && !t { t = NR } /deb-systemd-invoke/ && !d { d = NR }
        END { print (t && d && t < d) ? "ok" : "wrong" }' "$ctl/postinst")
    for script in preinst postinst prerm postrm; do
        [ -f "$ctl/$script" ] && ! sh -n "$ctl/$script" && order="syntax error in $script"
    done
    if [ "$order" = ok ]; then
        pass "maintainer scripts parse, and postinst makes the token before starting the sockets"
    else
        fail "maintainer scripts: $order"
    fi

    if lintian --fail-on error,warning "$DEB" >"$WORK/lintian.log" 2>&1; then
        pass "lintian --fail-on error,warning"
        grep -E '^[IWEP]:' "$WORK/lintian.log" | sed 's/^/    /'
    else
        fail "lintian --fail-on error,warning"
        sed 's/^/    /' "$WORK/lintian.log"
    fi
    return 0
}

# --- 3. booted containers ----------------------------------------------------

run_suites() {
    local suite
    for suite in $SUITES; do
        section "booted Debian $suite"
        if ! boot_container "$suite"; then
            fail "[$suite] container boot"
            continue
        fi
        scenario "$suite"
        stop_container
    done
}

ensure_tools || { fail "installing the tools this tier needs"; summary; }
check_units
if build_deb; then
    run_suites
else
    fail "container tests skipped: no package"
fi
summary
