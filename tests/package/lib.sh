# Helpers for tests/package/run.sh: reporting, and booting a Debian root
# filesystem with systemd-nspawn and running commands inside it.
# Sourced, not run. Expects WORK, CACHE and START to be set by the caller.

PASSED=0
FAILED=0

log() { echo "--- $*"; }
section() { echo; echo "=== $* ==="; }
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }

summary() {
    echo
    echo "package tier took $((SECONDS - START)) s"
    echo "package: $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ] && exit 0
    exit 1
}

# wait_for SECONDS COMMAND...: retry COMMAND every 0.2 s until it succeeds or
# the time is up. These are polls of state that changes asynchronously
# (systemd jobs, the journal), each with a bound, not sleeps used as sync.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

# --- containers ------------------------------------------------------------

# Packages the test root filesystem carries beyond minbase: systemd as init,
# curl to talk to the sockets from inside the private network namespace, ufw
# for the profile check, iproute2 to give loopback a non-loopback address,
# passwd (useradd, usermod) for the local users who try the Unix socket,
# OpenSSH for README's `ssh HOST whatsapp-mcp stdio` between two containers.
ROOTFS_PACKAGES=systemd,systemd-sysv,dbus,curl,ufw,iproute2,passwd,openssh-server,openssh-client

NSPAWN_PID=""
LEADER=""
CT_NAME=""

# rootfs_tarball SUITE: print the path of a cached root filesystem tarball,
# creating it with mmdebstrap first if it is missing or older than a week. The
# package list is part of the name, so changing it never reuses a stale one.
rootfs_tarball() {
    local suite=$1 key tarball tmp
    key=$(printf '%s' "$ROOTFS_PACKAGES" | md5sum | cut -c1-8)
    tarball="$CACHE/$suite-minbase-$key.tar.zst"
    mkdir -p "$CACHE"
    if [ -s "$tarball" ] && [ -z "$(find "$tarball" -mtime +7)" ]; then
        echo "$tarball"
        return 0
    fi
    tmp="$CACHE/.$suite-$$.tar.zst"
    log "mmdebstrap $suite (cached afterwards in $CACHE)" >&2
    if mmdebstrap --quiet --variant=minbase --include="$ROOTFS_PACKAGES" \
        "$suite" "$tmp" >"$WORK/mmdebstrap-$suite.log" 2>&1; then
        mv -f "$tmp" "$tarball"
        echo "$tarball"
    else
        rm -f "$tmp"
        tail -20 "$WORK/mmdebstrap-$suite.log" >&2
        return 1
    fi
}

# in_ct COMMAND...: run COMMAND inside the booted container, with a clean
# environment.
in_ct() {
    nsenter -t "$LEADER" -a -- env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LC_ALL=C.UTF-8 TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

# The container's PID 1 is the child of the systemd-nspawn process.
find_leader() {
    LEADER=$(pgrep -P "$NSPAWN_PID" | head -n 1)
    [ -n "$LEADER" ] && [ "$(cat "/proc/$LEADER/comm" 2>/dev/null)" = systemd ]
}

# Sets BOOT_STATE; true once the boot has finished one way or the other.
system_state_settled() {
    BOOT_STATE=$(timeout 60 nsenter -t "$LEADER" -a -- systemctl is-system-running --wait 2>/dev/null)
    case "$BOOT_STATE" in
        running | degraded | maintenance | stopping) return 0 ;;
        *) return 1 ;;
    esac
}

nspawn_gone() { ! kill -0 "$NSPAWN_PID" 2>/dev/null; }

# boot_container SUITE [NAME]: unpack the suite's root filesystem and boot it
# with systemd as PID 1, its own network namespace (only loopback), and the
# directory holding the .deb mounted read-only at /debs. NAME (default SUITE)
# tells apart two machines of one suite.
boot_container() {
    local suite=$1 name=${2:-$1} tarball rootdir state
    tarball=$(rootfs_tarball "$suite") || return 1
    rootdir="$WORK/root-$name"
    mkdir -p "$rootdir"
    tar --zstd -xf "$tarball" -C "$rootdir" || return 1
    CT_NAME="wamcp-$name"
    # --keep-unit: no D-Bus on the host to register a scope with.
    systemd-nspawn -D "$rootdir" --boot --register=no --keep-unit \
        --private-network -M "$CT_NAME" --console=read-only \
        --bind-ro="$(dirname "$DEB")":/debs \
        </dev/null >"$WORK/console-$name.log" 2>&1 &
    NSPAWN_PID=$!
    if ! wait_for 30 find_leader; then
        echo "    no systemd inside the container; console:" >&2
        sed 's/^/    /' "$WORK/console-$name.log" >&2
        return 1
    fi
    # Right after PID 1 starts, its control socket may not exist yet and
    # systemctl fails at once instead of waiting; ask until it answers.
    if ! wait_for 90 system_state_settled; then
        echo "    systemctl is-system-running said '$BOOT_STATE'" >&2
        return 1
    fi
    state=$BOOT_STATE
    case "$state" in
        running) pass "[$name] container booted, systemd is running" ;;
        degraded)
            pass "[$name] container booted (degraded: $(in_ct systemctl list-units --failed --plain --no-legend | awk '{ print $1 }' | tr '\n' ' '))"
            ;;
        *)
            echo "    systemctl is-system-running said '$state'" >&2
            return 1
            ;;
    esac
}

stop_container() {
    [ -n "$NSPAWN_PID" ] || return 0
    if kill -0 "$NSPAWN_PID" 2>/dev/null; then
        [ -n "$LEADER" ] && timeout 10 nsenter -t "$LEADER" -a -- systemctl poweroff --no-block >/dev/null 2>&1
        if ! wait_for 20 nspawn_gone; then
            kill -TERM "$NSPAWN_PID" 2>/dev/null
            wait_for 10 nspawn_gone || kill -KILL "$NSPAWN_PID" 2>/dev/null
        fi
    fi
    wait "$NSPAWN_PID" 2>/dev/null
    NSPAWN_PID="" LEADER=""
}

# A second machine beside the one under test, for what crosses a network:
# booted like it, its PID 1 in PEER_LEADER, reached with in_peer.
PEER_NSPAWN_PID=""
PEER_LEADER=""

# boot_peer SUITE: boots the second machine and links the two with a veth
# pair, 10.231.0.1 (the machine under test) and 10.231.0.2 (the peer).
boot_peer() {
    local suite=$1 saved_pid=$NSPAWN_PID saved_leader=$LEADER saved_name=$CT_NAME ok=0
    boot_container "$suite" "$suite-peer" && ok=1
    PEER_NSPAWN_PID=$NSPAWN_PID PEER_LEADER=$LEADER
    NSPAWN_PID=$saved_pid LEADER=$saved_leader CT_NAME=$saved_name
    [ "$ok" = 1 ] || return 1
    ip link add wamcp-a type veth peer name wamcp-b &&
        ip link set wamcp-a netns "$LEADER" && ip link set wamcp-b netns "$PEER_LEADER" &&
        in_ct ip addr add 10.231.0.1/24 dev wamcp-a && in_ct ip link set wamcp-a up &&
        in_peer ip addr add 10.231.0.2/24 dev wamcp-b && in_peer ip link set wamcp-b up
}

in_peer() {
    nsenter -t "$PEER_LEADER" -a -- env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LC_ALL=C.UTF-8 TERM=dumb HOME=/root "$@"
}

stop_peer() {
    local saved_pid=$NSPAWN_PID saved_leader=$LEADER
    NSPAWN_PID=$PEER_NSPAWN_PID LEADER=$PEER_LEADER
    stop_container
    NSPAWN_PID=$saved_pid LEADER=$saved_leader
    PEER_NSPAWN_PID="" PEER_LEADER=""
}

cleanup() {
    [ -n "$PEER_NSPAWN_PID" ] && stop_peer
    stop_container
    if [ "${WHATSAPP_MCP_TEST_KEEP:-0}" = 1 ]; then
        echo "work directory kept: $WORK"
    else
        rm -rf --one-file-system "$WORK"
    fi
}
