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
#   WHATSAPP_MCP_TEST_PREVIOUS commit whose package the upgrade test starts
#                              from (default f9b6aec, the 0.1.0 release); its
#                              .deb is cached beside the root filesystems
#
# Prints one PASS:/FAIL: line per check and a closing "N passed, N failed"
# line; exits non-zero if anything failed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/package"
SUITES=${WHATSAPP_MCP_TEST_SUITES:-bookworm trixie}
CACHE=${WHATSAPP_MCP_TEST_CACHE:-${XDG_CACHE_HOME:-/var/cache}/whatsapp-mcp-tests}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# Highest acceptable `systemd-analyze security` exposure for the service. The
# 0.1.0 units scored 1.1 in the booted bookworm and trixie containers and 1.2
# offline here; with PrivateUsers= gone (peer uids and the socket's group must
# be the host's) the service scores 1.2 everywhere. Every other open item is
# something the daemon needs (network, AF_UNIX, the host's root directory).
MAX_EXPOSURE=1.2
# The last release: its package is installed first and upgraded in place.
PREVIOUS=${WHATSAPP_MCP_TEST_PREVIOUS:-f9b6aec}

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
        nsenter:util-linux pgrep:procps gzip:gzip git:git; do
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
PREVIOUS_DEB=""

# package_tree SRC OUTDIR NAME: make the .deb of the source tree SRC the way a
# release is made: `cargo build --release`, packaging/make-assets.sh, then
# `cargo deb --no-build` into OUTDIR. Every tree shares TARGET_DIR, so an older
# tree rebuilds only what differs. On success PKG_DEB is the .deb; on failure
# PKG_STEP names the step and PKG_LOG holds its output. NAME prefixes the logs.
package_tree() {
    local src=$1 out=$2 name=$3
    PKG_DEB=""
    PKG_STEP="cargo build --release" PKG_LOG="$WORK/$name-cargo-build.log"
    (cd "$src" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release) >"$PKG_LOG" 2>&1 || return 1
    PKG_STEP="packaging/make-assets.sh" PKG_LOG="$WORK/$name-assets.log"
    "$src/packaging/make-assets.sh" "$TARGET_DIR/release/whatsapp-mcp" "$src/target/assets" \
        >"$PKG_LOG" 2>&1 || return 1
    PKG_STEP="cargo deb --no-build" PKG_LOG="$WORK/$name-cargo-deb.log"
    mkdir -p "$out"
    (cd "$src" && CARGO_TARGET_DIR=$TARGET_DIR cargo deb --no-build --output "$out/") \
        >"$PKG_LOG" 2>&1 || return 1
    PKG_DEB=$(find "$out" -maxdepth 1 -name '*.deb' | head -n 1)
    PKG_STEP="cargo deb produced no .deb"
    [ -n "$PKG_DEB" ]
}

# git in the repository, which may belong to another user than root (git
# refuses such a repository unless told it is safe).
repo_git() { git -c safe.directory="$ROOT" -C "$ROOT" "$@"; }

# The package of the previous release, for the upgrade test: built from its
# commit (a git archive of it, so the repository is left as it was) and kept in
# CACHE under the commit's name, since it never changes. Built before the
# current package, so the release binary left in TARGET_DIR is the current one.
build_previous_deb() {
    local commit src cached t0=$SECONDS
    if ! commit=$(repo_git rev-parse --verify --quiet "$PREVIOUS^{commit}"); then
        fail "upgrade test: commit $PREVIOUS is not in the repository (a shallow clone?)"
        return 1
    fi
    cached=$(find "$CACHE" -maxdepth 1 -name "whatsapp-mcp-previous-$commit-*.deb" 2>/dev/null | head -n 1)
    mkdir -p "$WORK/debs/previous"
    if [ -n "$cached" ]; then
        cp "$cached" "$WORK/debs/previous/${cached##*/whatsapp-mcp-previous-"$commit"-}"
        PREVIOUS_DEB=$(find "$WORK/debs/previous" -name '*.deb' | head -n 1)
        pass "previous release $PREVIOUS: $(basename "$PREVIOUS_DEB") from $CACHE"
        return 0
    fi
    log "building the package of $PREVIOUS for the upgrade test"
    src="$WORK/previous-src"
    mkdir -p "$src"
    if ! repo_git archive --format=tar "$commit" | tar -x -C "$src"; then
        fail "git archive $PREVIOUS"
        return 1
    fi
    if ! package_tree "$src" "$WORK/debs/previous" previous; then
        fail "previous release $PREVIOUS: $PKG_STEP"
        tail -30 "$PKG_LOG" | sed 's/^/    /'
        return 1
    fi
    PREVIOUS_DEB=$PKG_DEB
    mkdir -p "$CACHE"
    cp "$PREVIOUS_DEB" "$CACHE/.previous-$$.deb" &&
        mv -f "$CACHE/.previous-$$.deb" "$CACHE/whatsapp-mcp-previous-$commit-$(basename "$PREVIOUS_DEB")"
    rm -rf --one-file-system "$src"
    pass "previous release $PREVIOUS: built $(basename "$PREVIOUS_DEB") in $((SECONDS - t0)) s"
}

build_deb() {
    section "package"
    build_previous_deb
    log "cargo build --release"
    local t0=$SECONDS
    if ! package_tree "$ROOT" "$WORK/debs" current; then
        fail "$PKG_STEP"
        tail -30 "$PKG_LOG" | sed 's/^/    /'
        return 1
    fi
    DEB=$PKG_DEB
    pass "cargo build --release, man pages and completions from the binary, cargo deb --no-build -> $(basename "$DEB") ($((SECONDS - t0)) s)"

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
        /usr/lib/systemd/system/whatsapp-mcp-local.socket \
        /usr/lib/sysusers.d/whatsapp-mcp.conf \
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
        pass "package contents (binary, 4 units, sysusers.d file, config, ufw profile, man pages, completions, docs; no token)"
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
    # service will not start without it, and so must the whatsapp-mcp group
    # (systemd-sysusers, cargo-deb's part for the sysusers.d file), which owns
    # the local socket.
    local ctl="$WORK/control" script order
    mkdir -p "$ctl" && dpkg-deb -e "$DEB" "$ctl"
    order=$(awk '/^ *systemd-sysusers .*whatsapp-mcp\.conf$/ && !u { u = NR } /^ *make_token$/ && !t { t = NR }
        /deb-systemd-invoke/ && !d { d = NR }
        END { print (u && t && d && u < d && t < d) ? "ok" : "wrong" }' "$ctl/postinst")
    for script in preinst postinst prerm postrm; do
        [ -f "$ctl/$script" ] && ! sh -n "$ctl/$script" && order="syntax error in $script"
    done
    if [ "$order" = ok ]; then
        pass "maintainer scripts parse, and postinst makes the user and the token before starting the sockets"
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
        # The upgrade from the previous release, in a container of its own so
        # that it starts from a system that never had the account.
        [ -n "$PREVIOUS_DEB" ] || continue
        section "booted Debian $suite: upgrade from $(basename "$PREVIOUS_DEB")"
        if ! boot_container "$suite"; then
            fail "[$suite] container boot"
            continue
        fi
        upgrade_scenario "$suite"
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
