# The life of the package in one booted container: install, socket activation,
# the service account, who may use the local socket and the TCP ports, status
# and logs, watchdog, restart, opening the sockets up, purge. And, in a
# container of its own, the upgrade from the previous release.
# Sourced by run.sh after boot_container; uses the helpers of lib.sh.

# The Unix socket of whatsapp-mcp-local.socket.
SOCK=/run/whatsapp-mcp/bridge.sock
# The API token the package generated, read from the container after install.
TOKEN=""

# Steps run in order and later ones build on earlier ones, so after the
# install fails there is nothing left to look at.
scenario() {
    local s=$1 deb
    deb="/debs/$(basename "$DEB")"

    if in_ct dpkg -i --force-confdef --force-confold "$deb" >"$WORK/dpkg-i-$s.log" 2>&1 &&
        dpkg_ok "$WORK/dpkg-i-$s.log"; then
        pass "[$s] dpkg -i $(basename "$DEB")"
    else
        fail "[$s] dpkg -i"
        sed 's/^/    /' "$WORK/dpkg-i-$s.log"
        return
    fi

    check_install "$s"
    TOKEN=$(in_ct cat /etc/whatsapp-mcp/token)
    check_units_here "$s"
    check_activation "$s" || { diagnose "$s"; return; }
    check_static_user "$s"
    check_status_and_endpoints "$s"
    check_local_access "$s"
    check_journal "$s"
    # A desktop client (alice's `whatsapp-mcp stdio`) stays connected from here through the
    # restart, the upgrade and the watchdog's restart; each is followed by a call of its own.
    start_stdio_client "$s"
    check_restart_keeps_state "$s"
    client_call_works "$s" "after systemctl restart"
    check_upgrade_in_place "$s"
    client_call_works "$s" "after apt install of a newer version"
    check_bad_config "$s"
    check_watchdog "$s"
    stop_stdio_client "$s"
    check_network_dropins "$s"
    check_remove_then_purge "$s"
}

# --- a stdio client connected throughout ---------------------------------------

CLIENT_ID=10

# start_stdio_client SUITE: alice's `whatsapp-mcp stdio` in the background, its
# input a FIFO this script holds open on fd 7, its output in a file; it
# initializes at once.
start_stdio_client() {
    local s=$1
    CLIENT_IN="$WORK/client-$s.in" CLIENT_OUT="$WORK/client-$s.out"
    rm -f "$CLIENT_IN" && mkfifo "$CLIENT_IN" && : >"$CLIENT_OUT"
    in_ct runuser -u alice -- whatsapp-mcp stdio <"$CLIENT_IN" >"$CLIENT_OUT" 2>"$CLIENT_OUT.err" &
    CLIENT_PID=$!
    exec 7>"$CLIENT_IN"
    printf '%s\n%s\n' \
        '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"desktop","version":"1"}}}' \
        '{"jsonrpc":"2.0","method":"notifications/initialized"}' >&7
    if wait_for 30 client_answered 1; then
        pass "[$s] a stdio client (alice) connected; it stays connected through what follows"
    else
        fail "[$s] the stdio client did not initialize: $(head -c 400 "$CLIENT_OUT.err")"
    fi
}

# client_answered ID: the client's output holds the answer to request ID.
client_answered() {
    jq -se --argjson id "$1" 'map(select(.id == $id)) | length > 0' "$CLIENT_OUT" >/dev/null 2>&1
}

# client_send: sends a get_sync_status call under the next id, left in CLIENT_ID.
client_send() {
    CLIENT_ID=$((CLIENT_ID + 1))
    printf '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"get_sync_status","arguments":{}}}\n' \
        "$CLIENT_ID" >&7
}

# client_result_ok ID: the answer to ID is a tool result, not an error.
client_result_ok() {
    jq -se --argjson id "$1" 'map(select(.id == $id)) | first
        | (.result != null and (.result.isError // false) == false)' "$CLIENT_OUT" >/dev/null 2>&1
}

# client_call_works SUITE WHEN: the connected client's next call is answered.
client_call_works() {
    local s=$1 when=$2 t0=$SECONDS
    client_send
    if wait_for 60 client_answered "$CLIENT_ID" && client_result_ok "$CLIENT_ID"; then
        pass "[$s] the stdio client's next call $when is answered ($((SECONDS - t0)) s), same client process"
    else
        fail "[$s] the stdio client's call $when: $(jq -c --argjson id "$CLIENT_ID" 'select(.id == $id)' "$CLIENT_OUT" 2>/dev/null | head -c 400); stderr: $(tail -c 400 "$CLIENT_OUT.err")"
    fi
}

# stop_stdio_client SUITE: end of input; the client exits 0, having stayed up
# throughout.
stop_stdio_client() {
    local s=$1 rc
    exec 7>&-
    wait "$CLIENT_PID"
    rc=$?
    if [ "$rc" = 0 ]; then
        pass "[$s] the stdio client ran throughout and exits 0 at the end of its input ($((CLIENT_ID - 10)) calls)"
    else
        fail "[$s] the stdio client exited $rc; stderr: $(tail -c 600 "$CLIENT_OUT.err")"
    fi
}

diagnose() {
    echo "    --- systemctl status"
    in_ct systemctl status --no-pager -l whatsapp-mcp.service whatsapp-mcp.socket whatsapp-mcp-mcp.socket \
        whatsapp-mcp-local.socket 2>&1 | sed 's/^/    /'
    echo "    --- journal"
    in_ct journalctl --no-pager -n 40 -u whatsapp-mcp.service 2>&1 | sed 's/^/    /'
}

unit_prop() { in_ct systemctl show -p "$2" --value "$1"; }

# The steps below restart the units far more often than anyone would by hand,
# which would trip systemd's start rate limit (5 starts in 10 s) and make a
# step fail for a reason of the test's own making. reset-failed also resets
# that counter, so each step calls this first.
reset_limits() {
    in_ct systemctl reset-failed whatsapp-mcp.service whatsapp-mcp.socket whatsapp-mcp-mcp.socket \
        whatsapp-mcp-local.socket 2>/dev/null
}

# dpkg_ok LOG: the maintainer scripts ran without shell errors.
dpkg_ok() {
    ! grep -E ': [0-9]+: |not found|Could not execute' "$1"
}

# tcurl ARGS...: curl inside the container, sending the installed token.
tcurl() { in_ct curl -H "Authorization: Bearer $TOKEN" "$@"; }

SOCKET_UNITS="whatsapp-mcp.socket whatsapp-mcp-mcp.socket whatsapp-mcp-local.socket"

# All three socket units are in STATE ("active", "enabled", ...).
sockets_are() {
    local prop=$1 want=$2
    # shellcheck disable=SC2086 # one word per unit
    [ "$(in_ct systemctl "$prop" $SOCKET_UNITS | tr '\n' ' ')" = "$want $want $want " ]
}

# stat_of PATH: file type, mode, owner and group of PATH inside the container.
stat_of() { in_ct stat -c '%F %a %U:%G' "$1" 2>&1; }

check_install() {
    local s=$1 out
    out=$(in_ct stat -c '%a %U:%G %s' /etc/whatsapp-mcp/token 2>&1)
    # 64 hex digits and a newline.
    if [ "$out" = "600 root:root 65" ] && in_ct grep -qxE '[0-9a-f]{64}' /etc/whatsapp-mcp/token; then
        pass "[$s] postinst created /etc/whatsapp-mcp/token (0600 root, 32 random bytes)"
    else
        fail "[$s] token file: $out"
    fi

    if in_ct whatsapp-mcp check-config >"$WORK/check-config-$s.log" 2>&1; then
        pass "[$s] whatsapp-mcp check-config accepts the installed configuration"
    else
        fail "[$s] whatsapp-mcp check-config:"
        sed 's/^/    /' "$WORK/check-config-$s.log"
    fi

    # The account from /usr/lib/sysusers.d/whatsapp-mcp.conf: a system UID,
    # its own group, home in the state directory, no login shell.
    local uid rest
    out=$(in_ct getent passwd whatsapp-mcp)
    uid=$(cut -d: -f3 <<<"$out")
    rest=$(cut -d: -f4- <<<"$out")
    if [ -n "$uid" ] && [ "$uid" -lt 1000 ] && [ "$uid" -gt 0 ] &&
        [ "$rest" = "$(in_ct getent group whatsapp-mcp | cut -d: -f3):WhatsApp MCP server:/var/lib/whatsapp-mcp:/usr/sbin/nologin" ]; then
        pass "[$s] postinst created the system user and group whatsapp-mcp (uid $uid, home /var/lib/whatsapp-mcp, no login shell)"
    else
        fail "[$s] account whatsapp-mcp: '$out', group '$(in_ct getent group whatsapp-mcp)'"
    fi

    out=$(in_ct ufw app info whatsapp-mcp 2>&1)
    if grep -qx '  8080,3000/tcp' <<<"$out"; then
        pass "[$s] ufw app info whatsapp-mcp lists 8080,3000/tcp"
    else
        fail "[$s] ufw app info whatsapp-mcp:"
        sed 's/^/    /' <<<"$out"
    fi
}

# The installed units, judged by this release's own systemd, which may know
# settings (and deprecations) that the host's does not.
check_units_here() {
    local s=$1 out score
    # shellcheck disable=SC2086 # one word per unit
    out=$(in_ct systemd-analyze verify --man=no whatsapp-mcp.service $SOCKET_UNITS 2>&1)
    if [ $? -eq 0 ] && [ -z "$out" ]; then
        pass "[$s] systemd-analyze verify of the installed units is silent"
    else
        fail "[$s] systemd-analyze verify of the installed units:"
        sed 's/^/    /' <<<"$out"
    fi
    score=$(in_ct systemd-analyze security whatsapp-mcp.service 2>&1 |
        sed -n 's/.*Overall exposure level for whatsapp-mcp.service: \([0-9.]*\).*/\1/p')
    if [ -n "$score" ] && awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'; then
        pass "[$s] systemd-analyze security exposure $score <= $MAX_EXPOSURE"
    else
        fail "[$s] systemd-analyze security exposure '${score:-?}' is above $MAX_EXPOSURE"
    fi
}

# The sockets listen, the service is not running; the first request starts it.
check_activation() {
    local s=$1 service
    if sockets_are is-active active && sockets_are is-enabled enabled; then
        pass "[$s] $SOCKET_UNITS are enabled and active"
    else
        # shellcheck disable=SC2086 # one word per unit
        fail "[$s] sockets: active='$(in_ct systemctl is-active $SOCKET_UNITS | tr '\n' ' ')' enabled='$(in_ct systemctl is-enabled $SOCKET_UNITS | tr '\n' ' ')'"
    fi

    # Only root and the whatsapp-mcp group may connect to the local socket.
    local sock dir
    sock=$(stat_of "$SOCK")
    dir=$(stat_of "${SOCK%/*}")
    if [ "$sock" = "socket 660 root:whatsapp-mcp" ] && [ "$dir" = "directory 755 root:root" ]; then
        pass "[$s] $SOCK is a socket, 0660 root:whatsapp-mcp, in a 0755 root directory"
    else
        fail "[$s] $SOCK: '$sock', its directory: '$dir'"
    fi

    service=$(in_ct systemctl is-active whatsapp-mcp.service)
    if [ "$service" = inactive ] && [ "$(unit_prop whatsapp-mcp.service MainPID)" = 0 ]; then
        pass "[$s] whatsapp-mcp.service is not running before the first connection"
    else
        fail "[$s] whatsapp-mcp.service is '$service' right after install"
    fi

    if in_ct curl -fsS --max-time 60 -o /dev/null http://127.0.0.1:8080/health 2>"$WORK/curl-$s.err"; then
        pass "[$s] GET 127.0.0.1:8080/health answered"
    else
        fail "[$s] GET 127.0.0.1:8080/health: $(cat "$WORK/curl-$s.err")"
        return 1
    fi
    if [ "$(in_ct systemctl is-active whatsapp-mcp.service)" = active ]; then
        pass "[$s] the connection started whatsapp-mcp.service"
    else
        fail "[$s] whatsapp-mcp.service is $(in_ct systemctl is-active whatsapp-mcp.service) after the request"
        return 1
    fi
}

has_status_line() {
    STATUS_OUT=$(in_ct systemctl status --no-pager whatsapp-mcp.service 2>&1)
    grep -q 'TriggeredBy:' <<<"$STATUS_OUT" && grep -q '^ *Status: "' <<<"$STATUS_OUT"
}

# mcp_reply_json FILE: the body of a POST /mcp response is a JSON-RPC 2.0 reply,
# sent either as plain JSON or as the data: line of a server-sent event.
mcp_reply_json() {
    if grep -q '^data:' "$1"; then
        sed -n 's/^data: *//p' "$1" | head -n 1
    else
        cat "$1"
    fi
}

check_status_and_endpoints() {
    local s=$1 body
    if wait_for 10 has_status_line; then
        pass "[$s] systemctl status shows TriggeredBy: and $(grep -o 'Status: .*' <<<"$STATUS_OUT" | head -n 1)"
    else
        fail "[$s] systemctl status lacks TriggeredBy: or Status:"
        sed 's/^/    /' <<<"$STATUS_OUT"
    fi

    body="$WORK/api-status-$s.json"
    if tcurl -fsS --max-time 10 http://127.0.0.1:8080/api/status >"$body" 2>&1 &&
        jq -e 'type == "object"' "$body" >/dev/null 2>&1; then
        pass "[$s] GET 127.0.0.1:8080/api/status with the token answered a JSON object"
    else
        fail "[$s] GET /api/status with the token: $(head -c 300 "$body")"
    fi
    body="$WORK/api-status-unix-$s.json"
    if in_ct curl -fsS --max-time 10 --unix-socket "$SOCK" http://localhost/api/status >"$body" 2>&1 &&
        jq -e 'type == "object"' "$body" >/dev/null 2>&1; then
        pass "[$s] GET /api/status on $SOCK answered a JSON object, no token"
    else
        fail "[$s] GET /api/status on $SOCK: $(head -c 300 "$body")"
    fi

    # The CLI with the packaged defaults: the local socket, no token.
    if in_ct whatsapp-mcp status >"$WORK/cli-status-$s.log" 2>&1; then
        pass "[$s] whatsapp-mcp status reaches the daemon through $SOCK"
    else
        fail "[$s] whatsapp-mcp status:"
        sed 's/^/    /' "$WORK/cli-status-$s.log"
    fi
    # And over TCP with the token. http://localhost:8080 resolves to ::1
    # first, while the socket is on 127.0.0.1 only: the client must still
    # find the daemon.
    if in_ct env WHATSAPP_BRIDGE_URL=http://localhost:8080 WHATSAPP_MCP_TOKEN="$TOKEN" \
        whatsapp-mcp status >"$WORK/cli-status-tcp-$s.log" 2>&1; then
        pass "[$s] whatsapp-mcp status reaches the daemon at http://localhost:8080 with the token"
    else
        fail "[$s] WHATSAPP_BRIDGE_URL=http://localhost:8080 whatsapp-mcp status:"
        sed 's/^/    /' "$WORK/cli-status-tcp-$s.log"
    fi

    # MCP initialize on the MCP port with the token, and on the local socket
    # without.
    check_mcp_initialize "$s" "127.0.0.1:3000/mcp with the token" \
        curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/mcp
    check_mcp_initialize "$s" "/mcp on $SOCK" curl --unix-socket "$SOCK" http://localhost/mcp
}

MCP_N=0
MCP_INITIALIZE='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"package-test","version":"0"}}}'

# mcp_post FILE COMMAND...: POST an MCP initialize with COMMAND (a curl
# command line inside the container, with the URL); FILE gets the body,
# MCP_CODE the status and MCP_CTYPE the content type.
mcp_post() {
    local file=$1 last
    shift
    in_ct "$@" -sS --max-time 10 -w '\n%{http_code} %{content_type}' \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        --data "$MCP_INITIALIZE" >"$file.raw" 2>&1
    # The last line holds "CODE CONTENT-TYPE", everything before it the body.
    last=$(tail -n 1 "$file.raw")
    head -n -1 "$file.raw" >"$file"
    MCP_CODE=${last%% *} MCP_CTYPE=${last#* }
}

# check_mcp_initialize SUITE WHAT COMMAND...: the initialize must succeed.
check_mcp_initialize() {
    local s=$1 what=$2 body reply
    shift 2
    MCP_N=$((MCP_N + 1))
    body="$WORK/mcp-$s-$MCP_N.body"
    mcp_post "$body" "$@"
    reply=$(mcp_reply_json "$body")
    case "$MCP_CODE" in
        200)
            if jq -e '.jsonrpc == "2.0" and .id == 1 and (.result.protocolVersion | type == "string")' \
                <<<"$reply" >/dev/null 2>&1; then
                pass "[$s] POST $what: initialize -> 200, result with protocolVersion ($MCP_CTYPE)"
            else
                fail "[$s] POST $what: initialize -> 200 but not an initialize result: $(head -c 300 "$body")"
            fi
            ;;
        *)
            fail "[$s] POST $what: initialize -> '$MCP_CODE': $(head -c 300 "$body")"
            ;;
    esac
}

# uid_of PID / gid_of PID: the real uid and gid of a process in the container.
uid_of() { in_ct awk '/^Uid:/ { print $2 }' "/proc/$1/status"; }
gid_of() { in_ct awk '/^Gid:/ { print $2 }' "/proc/$1/status"; }

# The service runs as the packaged account, not a dynamic one.
check_static_user() {
    local s=$1 user group dynamic pid uid gid
    user=$(unit_prop whatsapp-mcp.service User)
    group=$(unit_prop whatsapp-mcp.service Group)
    dynamic=$(unit_prop whatsapp-mcp.service DynamicUser)
    pid=$(unit_prop whatsapp-mcp.service MainPID)
    uid=$(uid_of "$pid")
    gid=$(gid_of "$pid")
    if [ "$user:$group:$dynamic" = whatsapp-mcp:whatsapp-mcp:no ] && [ "$pid" != 0 ] &&
        [ -n "$uid" ] && [ "$uid" = "$(in_ct id -u whatsapp-mcp)" ] &&
        [ "$gid" = "$(in_ct id -g whatsapp-mcp)" ]; then
        pass "[$s] the service runs as whatsapp-mcp:whatsapp-mcp (User=, Group=, main pid $pid has uid $uid gid $gid), no DynamicUser"
    else
        fail "[$s] service account: User='$user' Group='$group' DynamicUser='$dynamic', main pid $pid uid '$uid' gid '$gid', whatsapp-mcp is $(in_ct id whatsapp-mcp 2>&1)"
    fi
}

# as_user USER COMMAND...: run COMMAND inside the container as USER, with
# USER's groups and no token anywhere in its environment.
as_user() {
    local user=$1
    shift
    in_ct runuser -u "$user" -- "$@"
}

# bob is outside the whatsapp-mcp group: the kernel refuses him the local
# socket, and TCP wants the token, which he cannot read. alice is in the
# group: she gets the daemon's status and its MCP tools through the socket,
# with no token, and her first connection starts the stopped service.
check_local_access() {
    local s=$1 out rc code ok
    in_ct useradd --create-home bob
    in_ct useradd --create-home alice
    in_ct usermod -aG whatsapp-mcp alice

    out=$(as_user bob curl -sS --max-time 10 --unix-socket "$SOCK" http://localhost/api/status 2>&1)
    rc=$?
    if [ "$rc" = 7 ] && ! as_user bob test -w "$SOCK"; then
        pass "[$s] bob (not in the group) cannot connect to $SOCK (curl exit 7: ${out#curl: })"
    else
        fail "[$s] bob on $SOCK: curl exit $rc: $(head -c 300 <<<"$out")"
    fi
    if as_user bob whatsapp-mcp status >"$WORK/cli-status-bob-$s.log" 2>&1; then
        fail "[$s] whatsapp-mcp status as bob succeeded:"
        sed 's/^/    /' "$WORK/cli-status-bob-$s.log"
    else
        pass "[$s] whatsapp-mcp status as bob fails: $(head -n 1 "$WORK/cli-status-bob-$s.log")"
    fi

    # TCP without the token: refused on loopback too, but for /health.
    ok=1
    code=$(as_user bob curl -s --max-time 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/api/status)
    [ "$code" = 401 ] || ok=0
    mcp_post "$WORK/mcp-bob-$s.body" runuser -u bob -- curl http://127.0.0.1:3000/mcp
    [ "$MCP_CODE" = 401 ] || ok=0
    local health
    health=$(as_user bob curl -s --max-time 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/health)
    [ "$health" = 200 ] || ok=0
    if [ "$ok" = 1 ]; then
        pass "[$s] loopback TCP without the token: 401 on 8080/api/status and 3000/mcp, 200 on /health"
    else
        fail "[$s] loopback TCP without the token: 8080/api/status -> '$code', 3000/mcp -> '$MCP_CODE', /health -> '$health' (expected 401, 401, 200)"
    fi

    # alice: in the group, cannot read the token.
    if as_user alice cat /etc/whatsapp-mcp/token >/dev/null 2>&1 ||
        ! as_user alice id -nG | grep -qw whatsapp-mcp; then
        fail "[$s] alice: groups '$(as_user alice id -nG)', token readable by her"
        return
    fi
    # Stop the service: the local socket stays, and alice's first connection
    # starts the service again (socket activation through the Unix socket).
    in_ct systemctl stop whatsapp-mcp.service
    if [ "$(in_ct systemctl is-active whatsapp-mcp.service)" = inactive ] &&
        [ "$(in_ct systemctl is-active whatsapp-mcp-local.socket)" = active ] && in_ct test -S "$SOCK"; then
        pass "[$s] with the service stopped, whatsapp-mcp-local.socket still listens on $SOCK"
    else
        fail "[$s] after stopping the service: service $(in_ct systemctl is-active whatsapp-mcp.service), local socket $(in_ct systemctl is-active whatsapp-mcp-local.socket), $SOCK: $(stat_of "$SOCK")"
    fi
    reset_limits
    if as_user alice whatsapp-mcp status >"$WORK/cli-status-alice-$s.log" 2>&1 && is_active; then
        pass "[$s] whatsapp-mcp status as alice (group whatsapp-mcp, no token) works and started the service"
    else
        fail "[$s] whatsapp-mcp status as alice (service $(in_ct systemctl is-active whatsapp-mcp.service)):"
        sed 's/^/    /' "$WORK/cli-status-alice-$s.log"
    fi

    check_stdio_as "$s" alice
    check_shared_dirs "$s"
    check_ssh_client "$s"

    # The daemon logs each local client by the uid the kernel gives for the
    # connection: alice's own, which it only sees without PrivateUsers=.
    local alice_uid
    alice_uid=$(in_ct id -u alice)
    if wait_for 10 journal_has_local_uid "$alice_uid"; then
        pass "[$s] the journal names alice's connections by her uid ($alice_uid)"
    else
        fail "[$s] no 'local connection' journal entry with alice's uid $alice_uid; uids logged: $(jq -r 'select(.MESSAGE == "local connection") | .F_UID' "$WORK/journal-local-$s.json" 2>/dev/null | sort -u | tr '\n' ' ')"
    fi
}

# The outbox and the media directory are the group's: alice (in it) drops a
# file into the outbox that the service's user can read, and lists the media, but lists nothing else in the state
# directory and reads neither the archive nor the session; bob (not in it)
# reaches neither directory.
check_shared_dirs() {
    local s=$1 state=/var/lib/whatsapp-mcp ok=1 why=""
    [ "$(stat_of "$state/outbox")" = "directory 770 whatsapp-mcp:whatsapp-mcp" ] || { ok=0; why="$why outbox: $(stat_of "$state/outbox");"; }
    [ "$(stat_of "$state/media")" = "directory 750 whatsapp-mcp:whatsapp-mcp" ] || { ok=0; why="$why media: $(stat_of "$state/media");"; }
    as_user alice sh -c "echo to-send >$state/outbox/from-alice.txt" || { ok=0; why="$why alice cannot write to the outbox;"; }
    as_user whatsapp-mcp cat "$state/outbox/from-alice.txt" >/dev/null 2>&1 || { ok=0; why="$why the service's user cannot read alice's file;"; }
    as_user alice ls "$state/media" >/dev/null 2>&1 || { ok=0; why="$why alice cannot list the media;"; }
    as_user alice ls "$state" >/dev/null 2>&1 && { ok=0; why="$why alice lists the state directory;"; }
    as_user alice sh -c "cat $state/*.db" >/dev/null 2>&1 && { ok=0; why="$why alice reads a database;"; }
    as_user alice test -r "$state/whatsapp.db" && { ok=0; why="$why whatsapp.db readable by alice;"; }
    as_user bob sh -c "echo x >$state/outbox/from-bob.txt" 2>/dev/null && { ok=0; why="$why bob writes to the outbox;"; }
    as_user bob ls "$state/media" >/dev/null 2>&1 && { ok=0; why="$why bob lists the media;"; }
    if [ "$ok" = 1 ]; then
        pass "[$s] outbox (0770) and media (0750) are the group's: alice drops a file and lists media, but not the state directory or its databases; bob reaches neither"
    else
        fail "[$s] shared directories:$why"
    fi
    in_ct rm -f "$state/outbox/from-alice.txt"
}

# README's ssh entry, from a second machine: root there runs the entry's
# command (`ssh -T USER@HOST whatsapp-mcp stdio`, with alice and this machine's
# address) with an MCP exchange on its input; alice's stdio relay reaches the
# service through the local socket, so no port is opened and no token used.
check_ssh_client() {
    local s=$1 args out rc tools key
    args=$(awk '/<!-- tested: ssh -->/ { f = 1; next } f && /^```json/ { g = 1; next } g && /^```/ { exit } g' \
        "$ROOT/README.md" | jq -r '.mcpServers.whatsapp | [.command] + .args | join(" ")' 2>/dev/null)
    if [ -z "$args" ]; then
        fail "[$s] README has no JSON block marked 'tested: ssh'"
        return
    fi
    args=${args//USER@HOST/alice@10.231.0.1}
    if ! boot_peer "$s" >"$WORK/peer-$s.log" 2>&1; then
        fail "[$s] a second machine for the ssh client:"
        sed 's/^/    /' "$WORK/peer-$s.log"
        [ -n "$PEER_NSPAWN_PID" ] && stop_peer
        return
    fi
    # The peer's key in alice's authorized_keys, this machine's host key in the
    # peer's known_hosts: nothing is accepted blindly.
    in_peer sh -c 'mkdir -p -m 700 /root/.ssh && ssh-keygen -q -t ed25519 -N "" -f /root/.ssh/id_ed25519'
    key=$(in_peer cat /root/.ssh/id_ed25519.pub)
    in_ct sh -c "install -d -o alice -g alice -m 700 /home/alice/.ssh &&
        echo '$key' >/home/alice/.ssh/authorized_keys && chown alice /home/alice/.ssh/authorized_keys"
    in_ct systemctl start ssh.service >/dev/null 2>&1
    in_peer sh -c "echo '10.231.0.1 $(in_ct cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f1,2)' >/root/.ssh/known_hosts"
    out="$WORK/ssh-$s.out"
    : >"$out"
    # shellcheck disable=SC2086 # the entry's command and arguments, one word each
    mcp_session "$out" 60 '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_sync_status","arguments":{}}}' |
        in_peer timeout 90 $args >"$out" 2>"$out.err"
    rc=${PIPESTATUS[1]}
    if [ "$rc" = 0 ] &&
        jq -se 'map(select(.id == 1)) | first | .result.serverInfo.name | type == "string"' "$out" >/dev/null 2>&1 &&
        jq -se 'map(select(.id == 2)) | first | .result != null and (.result.isError // false) == false' \
            "$out" >/dev/null 2>&1; then
        pass "[$s] README's ssh entry from a second machine ($args): initialize and a tool call through alice's local socket, exit 0"
    else
        fail "[$s] ssh client ($args): exit $rc; stdout and stderr:"
        head -c 600 "$out" | sed 's/^/    /'
        head -c 600 "$out.err" | sed 's/^/    /'
    fi
    stop_peer
}

# journal_has_local_uid UID: the service logged a local connection from UID.
journal_has_local_uid() {
    in_ct journalctl -u whatsapp-mcp.service -o json --no-pager >"$WORK/journal-local-$s.json" 2>/dev/null
    jq -se --arg uid "$1" 'map(select(.MESSAGE == "local connection" and .F_UID == $uid)) | length > 0' \
        "$WORK/journal-local-$s.json" >/dev/null 2>&1
}

# mcp_session OUT SECONDS REQUEST: what a client writes to a stdio server:
# initialize, initialized and REQUEST (id 2); the input stays open until the
# answer to id 2 is in OUT or SECONDS pass (a bounded poll), then ends.
mcp_session() {
    local out=$1 deadline=$((SECONDS + $2))
    printf '%s\n%s\n%s\n' \
        '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}' \
        '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$3"
    until grep -q '"id": *2[,}]' "$out" || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
}

# check_stdio_as SUITE USER: `whatsapp-mcp stdio` run by USER answers an MCP
# initialize and lists the tools. Its stdin stays open until the tools/list
# reply is out (a bounded poll, like wait_for), then closes; stdio must then
# exit 0.
check_stdio_as() {
    local s=$1 user=$2 out rc tools
    out="$WORK/stdio-$user-$s.out"
    : >"$out"
    mcp_session "$out" 30 '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' |
        in_ct timeout 60 runuser -u "$user" -- whatsapp-mcp stdio >"$out" 2>"$out.err"
    rc=${PIPESTATUS[1]}
    tools=$(jq -s 'map(select(.id == 2)) | first | .result.tools | length' "$out" 2>/dev/null)
    if [ "$rc" = 0 ] &&
        jq -se 'map(select(.id == 1)) | first | .result.protocolVersion | type == "string"' "$out" >/dev/null 2>&1 &&
        [ -n "$tools" ] && [ "$tools" -gt 0 ]; then
        pass "[$s] whatsapp-mcp stdio as $user: initialize, then tools/list with $tools tools; exit 0 at end of input"
    else
        fail "[$s] whatsapp-mcp stdio as $user: exit $rc, $tools tools; stdout and stderr:"
        head -c 600 "$out" | sed 's/^/    /'
        head -c 600 "$out.err" | sed 's/^/    /'
    fi
}

journal_has_fields() {
    in_ct journalctl -u whatsapp-mcp.service -o json --no-pager >"$WORK/journal-$s.json" 2>/dev/null
    jq -se 'map(select(.SYSLOG_IDENTIFIER == "whatsapp-mcp" and has("TARGET"))) | length > 0' \
        "$WORK/journal-$s.json" >/dev/null 2>&1
}

check_journal() {
    local s=$1
    if wait_for 10 journal_has_fields; then
        pass "[$s] journalctl -u whatsapp-mcp -o json: lines with SYSLOG_IDENTIFIER=whatsapp-mcp and TARGET"
    else
        fail "[$s] no journal line with SYSLOG_IDENTIFIER=whatsapp-mcp and a TARGET field; the service logged:"
        jq -r 'select(._SYSTEMD_UNIT == "whatsapp-mcp.service") | "\(.SYSLOG_IDENTIFIER // "-") \(.MESSAGE)"' \
            "$WORK/journal-$s.json" 2>/dev/null | tail -n 10 | sed 's/^/    /'
    fi
}

is_active() { [ "$(in_ct systemctl is-active whatsapp-mcp.service)" = active ]; }

check_restart_keeps_state() {
    local s=$1 state=/var/lib/whatsapp-mcp before after st
    reset_limits
    st=$(stat_of "$state")
    if [ "$st" = "directory 710 whatsapp-mcp:whatsapp-mcp" ] && ! in_ct test -e /var/lib/private/whatsapp-mcp; then
        pass "[$s] state directory $state is a plain directory, 0710 whatsapp-mcp:whatsapp-mcp"
    else
        fail "[$s] state directory $state: '$st'; /var/lib/private/whatsapp-mcp: $(stat_of /var/lib/private/whatsapp-mcp)"
    fi

    in_ct sh -c "echo kept >$state/package-test-marker"
    before=$(in_ct find "$state" -maxdepth 1 -name '*.db' -printf '%f:%i\n' | sort | tr '\n' ' ')
    if in_ct systemctl restart whatsapp-mcp.service && wait_for 30 is_active; then
        after=$(in_ct find "$state" -maxdepth 1 -name '*.db' -printf '%f:%i\n' | sort | tr '\n' ' ')
        if [ -n "$before" ] && [ "$before" = "$after" ] &&
            [ "$(in_ct cat "$state/package-test-marker" 2>/dev/null)" = kept ]; then
            pass "[$s] systemctl restart keeps the state directory (database ${before% } and a marker file)"
        else
            fail "[$s] state after restart: databases before '$before', after '$after', marker $(in_ct cat "$state/package-test-marker" 2>&1)"
        fi
    else
        fail "[$s] systemctl restart whatsapp-mcp.service"
        diagnose "$s"
    fi
}

# When each socket unit last became active.
sockets_since() {
    local u
    for u in $SOCKET_UNITS; do
        printf '%s ' "$(unit_prop "$u" ActiveEnterTimestampMonotonic)"
    done
}

# The same binary repackaged under a higher version, in the directory the
# container sees as /debs: an upgrade without a second release build.
repack_higher() {
    local dir="$WORK/repack" version
    rm -rf "$dir" && dpkg-deb -R "$DEB" "$dir" || return 1
    version=$(sed -n 's/^Version: //p' "$dir/DEBIAN/control")
    UPGRADE_VERSION="$version+upgrade1"
    sed -i "s/^Version: .*/Version: $UPGRADE_VERSION/" "$dir/DEBIAN/control"
    UPGRADE_DEB="$(dirname "$DEB")/whatsapp-mcp_${UPGRADE_VERSION}_$(dpkg-deb -f "$DEB" Architecture).deb"
    dpkg-deb --root-owner-group -b "$dir" "$UPGRADE_DEB" >/dev/null && rm -rf "$dir"
}

# probe_tcp_until_stopped: inside the container, GET /health on 8080 over and
# over until /run/package-test-probe-stop appears; prints "answered failed".
probe_tcp_until_stopped() {
    in_ct sh -c 'n=0 f=0
        while [ ! -e /run/package-test-probe-stop ]; do
            if curl -s -o /dev/null --max-time 30 http://127.0.0.1:8080/health; then
                n=$((n + 1)); else f=$((f + 1)); fi
            sleep 0.05
        done
        echo "$n $f"'
}

# `apt install` of a newer version runs the upgrade path of the maintainer
# scripts: the running service is restarted, the token and state are kept,
# the sockets (whose unit files did not change) stay open throughout, and a
# client polling the TCP port meanwhile sees no refused or reset connection.
check_upgrade_in_place() {
    local s=$1 token_before token_after pid_before sockets_before sockets_after probe answered failed
    if ! repack_higher; then
        fail "[$s] repackaging $(basename "$DEB") under a higher version"
        return
    fi
    token_before=$(in_ct md5sum /etc/whatsapp-mcp/token)
    pid_before=$(unit_prop whatsapp-mcp.service MainPID)
    sockets_before=$(sockets_since)
    reset_limits
    in_ct rm -f /run/package-test-probe-stop
    probe_tcp_until_stopped >"$WORK/probe-$s.out" &
    probe=$!
    if in_ct env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o Dpkg::Options::=--force-confold "/debs/$(basename "$UPGRADE_DEB")" >"$WORK/apt-up-$s.log" 2>&1 &&
        dpkg_ok "$WORK/apt-up-$s.log" && wait_for 30 is_active; then
        in_ct touch /run/package-test-probe-stop
        wait "$probe"
        read -r answered failed <"$WORK/probe-$s.out"
        token_after=$(in_ct md5sum /etc/whatsapp-mcp/token)
        sockets_after=$(sockets_since)
        if [ "$(in_ct dpkg-query -W -f '${Version}' whatsapp-mcp)" = "$UPGRADE_VERSION" ] &&
            [ "$token_before" = "$token_after" ] &&
            [ "$(unit_prop whatsapp-mcp.service MainPID)" != "$pid_before" ] &&
            [ "$(in_ct cat /var/lib/whatsapp-mcp/package-test-marker 2>/dev/null)" = kept ] &&
            sockets_are is-active active && [ "$sockets_after" = "$sockets_before" ]; then
            pass "[$s] apt install of $UPGRADE_VERSION restarts the running service, keeps token, state and the open sockets"
        else
            fail "[$s] after the upgrade: version $(in_ct dpkg-query -W -f '${Version}' whatsapp-mcp), token kept=$([ "$token_before" = "$token_after" ] && echo yes || echo no), pid $pid_before -> $(unit_prop whatsapp-mcp.service MainPID), sockets active since '$sockets_before' -> '$sockets_after'"
        fi
        if [ "${failed:-x}" = 0 ] && [ "${answered:-0}" -gt 0 ]; then
            pass "[$s] during the upgrade $answered requests to 8080/health answered, none refused"
        else
            fail "[$s] during the upgrade: ${answered:-?} requests answered, ${failed:-?} refused or cut"
        fi
    else
        in_ct touch /run/package-test-probe-stop
        wait "$probe"
        fail "[$s] apt install of $(basename "$UPGRADE_DEB")"
        sed 's/^/    /' "$WORK/apt-up-$s.log"
        diagnose "$s"
    fi
    in_ct rm -f /run/package-test-probe-stop
}

is_failed() { [ "$(in_ct systemctl is-active whatsapp-mcp.service)" = failed ]; }

# A configuration error makes the daemon exit 78; RestartPreventExitStatus=78
# must leave the unit failed instead of restarting it over and over.
check_bad_config() {
    local s=$1 conf=/etc/whatsapp-mcp/config.toml restarts status
    reset_limits
    restarts=$(unit_prop whatsapp-mcp.service NRestarts)
    in_ct cp "$conf" "$conf.package-test"
    in_ct sh -c "echo 'no_such_key = 1' >>$conf"
    in_ct systemctl restart whatsapp-mcp.service >/dev/null 2>&1
    if wait_for 15 is_failed; then
        # Long enough for RestartSec=2s to have restarted it, were it going to.
        sleep 3
        status=$(unit_prop whatsapp-mcp.service ExecMainStatus)
        if is_failed && [ "$status" = 78 ] &&
            [ "$(unit_prop whatsapp-mcp.service NRestarts)" = "$restarts" ]; then
            pass "[$s] an unknown config key: exit 78, unit stays failed, no restart loop"
        else
            fail "[$s] bad config: exit status $status, Result=$(unit_prop whatsapp-mcp.service Result), NRestarts $restarts -> $(unit_prop whatsapp-mcp.service NRestarts), $(in_ct systemctl is-active whatsapp-mcp.service)"
            diagnose "$s"
        fi
    else
        fail "[$s] with an unknown config key the service is $(in_ct systemctl is-active whatsapp-mcp.service), expected failed"
    fi
    in_ct mv -f "$conf.package-test" "$conf"
    reset_limits
    if ! { in_ct systemctl start whatsapp-mcp.service && wait_for 30 is_active; }; then
        fail "[$s] service does not come back after restoring the config"
        diagnose "$s"
    fi
}

watchdog_fired() { [ "$(unit_prop whatsapp-mcp.service Result)" = watchdog ]; }

restarted_after() {
    local pid
    pid=$(unit_prop whatsapp-mcp.service MainPID)
    is_active && [ "$(unit_prop whatsapp-mcp.service NRestarts)" -gt "$1" ] &&
        [ "$pid" != 0 ] && [ "$pid" != "$2" ]
}

# Freeze the daemon so it stops pinging: systemd must notice, kill it and start
# a new one. A runtime drop-in shortens the watchdog to keep this quick.
check_watchdog() {
    local s=$1 dropin=/run/systemd/system/whatsapp-mcp.service.d pid restarts
    reset_limits
    in_ct mkdir -p "$dropin"
    in_ct sh -c "printf '[Service]\nWatchdogSec=4s\nRestartSec=3s\nTimeoutAbortSec=5s\n' >$dropin/package-test-watchdog.conf"
    in_ct systemctl daemon-reload
    if ! { in_ct systemctl restart whatsapp-mcp.service && wait_for 30 is_active; }; then
        fail "[$s] restart with a 4 s watchdog"
        diagnose "$s"
        return
    fi
    if [ "$(unit_prop whatsapp-mcp.service WatchdogUSec)" != 4s ]; then
        fail "[$s] WatchdogUSec is $(unit_prop whatsapp-mcp.service WatchdogUSec), expected 4s"
    fi
    pid=$(unit_prop whatsapp-mcp.service MainPID)
    restarts=$(unit_prop whatsapp-mcp.service NRestarts)
    # With the daemon alive and pinging, a full watchdog period passes quietly.
    sleep 5
    if [ "$(unit_prop whatsapp-mcp.service MainPID)" = "$pid" ] && is_active; then
        pass "[$s] the daemon keeps the 4 s watchdog fed"
    else
        fail "[$s] the daemon was restarted while not stalled (watchdog not fed?)"
    fi

    # kill is a shell builtin here: minbase has no /usr/bin/kill on bookworm.
    in_ct sh -c "kill -STOP $pid"
    # The connected client calls while the service hangs: the call waits in the
    # socket's queue, and the service systemd starts next answers it.
    local hung_call t0=$SECONDS
    [ -n "${CLIENT_PID:-}" ] && client_send && hung_call=$CLIENT_ID
    if wait_for 20 watchdog_fired; then
        pass "[$s] SIGSTOP on the main pid ends in Result=watchdog"
    else
        fail "[$s] no Result=watchdog after SIGSTOP (Result=$(unit_prop whatsapp-mcp.service Result))"
    fi
    if wait_for 30 restarted_after "$restarts" "$pid"; then
        pass "[$s] restarted automatically (NRestarts=$(unit_prop whatsapp-mcp.service NRestarts), new pid)"
    else
        fail "[$s] not restarted after the watchdog (NRestarts=$(unit_prop whatsapp-mcp.service NRestarts), state $(in_ct systemctl is-active whatsapp-mcp.service))"
        diagnose "$s"
    fi
    if [ -n "${hung_call:-}" ]; then
        if wait_for 60 client_answered "$hung_call" && client_result_ok "$hung_call"; then
            pass "[$s] the stdio client's call made while the service hung is answered by the restarted one ($((SECONDS - t0)) s)"
        else
            fail "[$s] the call made while the service hung: $(jq -c --argjson id "$hung_call" 'select(.id == $id)' "$CLIENT_OUT" 2>/dev/null | head -c 400); stderr: $(tail -c 400 "$CLIENT_OUT.err")"
        fi
    fi
    in_ct sh -c "kill -CONT $pid" 2>/dev/null
    in_ct rm -rf "$dropin"
    in_ct systemctl daemon-reload
}

# Install the example drop-ins from the documentation, as NETWORK.md tells an
# administrator to, and check both ports now answer on all addresses. A
# documentation address added to loopback plays the part of a remote
# client: it must be refused without the token and let in with it.
check_network_dropins() {
    local s=$1 ex=/usr/share/doc/whatsapp-mcp/examples code
    reset_limits
    if ! in_ct sh -ec "
        install -D -m 0644 $ex/bridge-listen-all.conf /etc/systemd/system/whatsapp-mcp.socket.d/listen.conf
        install -D -m 0644 $ex/mcp-listen-all.conf /etc/systemd/system/whatsapp-mcp-mcp.socket.d/listen.conf
        systemctl daemon-reload
        systemctl restart whatsapp-mcp.socket" >"$WORK/dropin-$s.log" 2>&1; then
        fail "[$s] installing the example drop-ins:"
        sed 's/^/    /' "$WORK/dropin-$s.log"
        return
    fi
    local listen
    listen=$(in_ct systemctl show -p Listen --value whatsapp-mcp.socket whatsapp-mcp-mcp.socket | tr -s '\n' ' ')
    if [ "$listen" = "[::]:8080 (Stream) [::]:3000 (Stream) " ]; then
        pass "[$s] example drop-ins move both sockets to [::] ($listen)"
    else
        fail "[$s] after the example drop-ins the sockets listen on '$listen'"
    fi

    in_ct ip addr add 192.0.2.1/32 dev lo
    local ok=1 url
    for url in http://127.0.0.1:8080/health 'http://[::1]:8080/health' http://127.0.0.1:3000/health 'http://[::1]:3000/health'; do
        in_ct curl -gfsS --max-time 30 -o /dev/null "$url" 2>>"$WORK/curl-$s.err" || ok=0
    done
    if [ "$ok" = 1 ]; then
        pass "[$s] both ports answer on 127.0.0.1 and [::1] without a token"
    else
        fail "[$s] loopback requests after the drop-ins: $(tail -n 2 "$WORK/curl-$s.err")"
    fi

    code=$(in_ct curl -s --max-time 10 -o /dev/null -w '%{http_code}' http://192.0.2.1:8080/api/status)
    if [ "$code" = 401 ]; then
        pass "[$s] a non-loopback request without the token is refused (401)"
    else
        fail "[$s] a non-loopback request without the token got '$code', expected 401"
    fi
    code=$(in_ct sh -c 'curl -s --max-time 10 -o /dev/null -w "%{http_code}" \
        -H "Authorization: Bearer $(cat /etc/whatsapp-mcp/token)" http://192.0.2.1:8080/api/status')
    if [ "$code" = 200 ]; then
        pass "[$s] the same request with the token from /etc/whatsapp-mcp/token is let in (200)"
    else
        fail "[$s] a non-loopback request with the installed token got '$code', expected 200"
    fi
    in_ct ip addr del 192.0.2.1/32 dev lo

    in_ct sh -c 'rm -rf /etc/systemd/system/whatsapp-mcp.socket.d /etc/systemd/system/whatsapp-mcp-mcp.socket.d
        systemctl daemon-reload && systemctl restart whatsapp-mcp.socket'
}

# shellcheck disable=SC2086 # one word per unit
all_units_inactive() {
    [ "$(in_ct systemctl is-active $SOCKET_UNITS whatsapp-mcp.service | sort -u | tr '\n' ' ')" = "inactive " ]
}

# Removal stops everything but keeps configuration, token and state; purge
# deletes them too.
check_remove_then_purge() {
    local s=$1 left kept
    if in_ct dpkg --remove whatsapp-mcp >"$WORK/dpkg-r-$s.log" 2>&1 && dpkg_ok "$WORK/dpkg-r-$s.log"; then
        pass "[$s] dpkg --remove whatsapp-mcp"
    else
        fail "[$s] dpkg --remove whatsapp-mcp"
        sed 's/^/    /' "$WORK/dpkg-r-$s.log"
    fi
    kept=$(in_ct sh -c 'ls /etc/whatsapp-mcp/token /etc/whatsapp-mcp/config.toml \
        /var/lib/whatsapp-mcp/package-test-marker 2>/dev/null | wc -l')
    if [ "$kept" = 3 ] && all_units_inactive && ! in_ct test -e "$SOCK"; then
        pass "[$s] after remove: units stopped, $SOCK gone; config, token and state kept"
    else
        # shellcheck disable=SC2086 # one word per unit
        fail "[$s] after remove: $kept of config/token/state kept, units $(in_ct systemctl is-active $SOCKET_UNITS whatsapp-mcp.service | tr '\n' ' '), $SOCK: $(stat_of "$SOCK")"
    fi

    if in_ct dpkg --purge whatsapp-mcp >"$WORK/dpkg-purge-$s.log" 2>&1 && dpkg_ok "$WORK/dpkg-purge-$s.log"; then
        pass "[$s] dpkg --purge whatsapp-mcp"
    else
        fail "[$s] dpkg --purge whatsapp-mcp"
        sed 's/^/    /' "$WORK/dpkg-purge-$s.log"
    fi
    left=$(in_ct sh -c 'ls -d /usr/lib/systemd/system/whatsapp-mcp* /lib/systemd/system/whatsapp-mcp* \
        /etc/systemd/system/*/whatsapp-mcp* /var/lib/whatsapp-mcp /var/lib/private/whatsapp-mcp \
        /etc/whatsapp-mcp /usr/bin/whatsapp-mcp /usr/lib/sysusers.d/whatsapp-mcp.conf \
        /run/whatsapp-mcp 2>/dev/null' | tr '\n' ' ')
    if [ -z "$left" ]; then
        pass "[$s] purge removed the units, their enablement, /etc/whatsapp-mcp, the state directory and /run/whatsapp-mcp"
    else
        fail "[$s] left behind after purge: $left"
    fi
    # Debian keeps system accounts on purge (see debian/postrm).
    if in_ct getent passwd whatsapp-mcp >/dev/null && in_ct getent group whatsapp-mcp >/dev/null; then
        pass "[$s] purge keeps the whatsapp-mcp user and group"
    else
        fail "[$s] the whatsapp-mcp account is gone after purge"
    fi
    if ! in_ct curl -s --max-time 5 -o /dev/null http://127.0.0.1:8080/health && all_units_inactive; then
        pass "[$s] nothing listens on 8080 and no whatsapp-mcp unit is active after purge"
    else
        fail "[$s] something of whatsapp-mcp still runs after purge"
    fi
}

# --- upgrade from the previous release -----------------------------------------

# state_files DIR: name:inode of each database file and the marker in DIR.
# SQLite's -wal and -shm files come and go with the connections, so they are
# not compared.
state_files() {
    in_ct find "$1" -maxdepth 1 \( -name '*.db' -o -name package-test-marker \) -printf '%f:%i\n' | sort | tr '\n' ' '
}

# The previous release ran as a dynamic user, with its state in
# /var/lib/private/whatsapp-mcp behind the /var/lib/whatsapp-mcp symlink, and
# trusted loopback without the token. Install it, let it create its archive
# (which also holds the WhatsApp session), leave a marker, then install the
# current package over it: the state must have moved to a plain
# /var/lib/whatsapp-mcp owned by whatsapp-mcp, the same files (same inodes)
# still there, the token unchanged, the service running as the new account and
# all three sockets listening.
upgrade_scenario() {
    local s=$1 old new private=/var/lib/private/whatsapp-mcp state=/var/lib/whatsapp-mcp
    local files_before files_after token_before owners st
    old="/debs/previous/$(basename "$PREVIOUS_DEB")"
    new="/debs/$(basename "$DEB")"

    if in_ct dpkg -i --force-confdef --force-confold "$old" >"$WORK/dpkg-i-old-$s.log" 2>&1 &&
        dpkg_ok "$WORK/dpkg-i-old-$s.log" &&
        in_ct curl -fsS --max-time 60 -o /dev/null http://127.0.0.1:8080/api/status &&
        wait_for 30 is_active; then
        pass "[$s] $(basename "$PREVIOUS_DEB") installed, its service started by a request"
    else
        fail "[$s] installing and starting $(basename "$PREVIOUS_DEB"):"
        sed 's/^/    /' "$WORK/dpkg-i-old-$s.log"
        diagnose "$s"
        return
    fi

    in_ct sh -c "echo kept >$private/package-test-marker"
    files_before=$(state_files "$private")
    st=$(stat_of "$state")
    if [ "$(unit_prop whatsapp-mcp.service DynamicUser)" = yes ] && [ "$st" = "symbolic link 777 root:root" ] &&
        grep -q 'whatsapp\.db:' <<<"$files_before"; then
        pass "[$s] before the upgrade: a dynamic user, state in $private ($(in_ct ls "$private" | tr '\n' ' '))"
    else
        fail "[$s] before the upgrade: DynamicUser=$(unit_prop whatsapp-mcp.service DynamicUser), $state: '$st', files in $private: '$files_before'"
    fi
    token_before=$(in_ct md5sum /etc/whatsapp-mcp/token)

    reset_limits
    if in_ct dpkg -i --force-confdef --force-confold "$new" >"$WORK/dpkg-up-$s.log" 2>&1 &&
        dpkg_ok "$WORK/dpkg-up-$s.log" && wait_for 30 is_active; then
        pass "[$s] upgrade to $(basename "$DEB"): dpkg -i ran cleanly and the service is running again"
    else
        fail "[$s] upgrade to $(basename "$DEB") (service $(in_ct systemctl is-active whatsapp-mcp.service)):"
        sed 's/^/    /' "$WORK/dpkg-up-$s.log"
        diagnose "$s"
        return
    fi

    check_static_user "$s"

    files_after=$(state_files "$state")
    st=$(stat_of "$state")
    owners=$(in_ct find "$state" \( ! -user whatsapp-mcp -o ! -group whatsapp-mcp \) -printf '%p %u:%g\n' | head -n 5)
    if [ "$st" = "directory 710 whatsapp-mcp:whatsapp-mcp" ] && ! in_ct test -e "$private" &&
        [ "$files_after" = "$files_before" ] && [ -z "$owners" ] &&
        [ "$(in_ct cat "$state/package-test-marker" 2>/dev/null)" = kept ]; then
        pass "[$s] state moved to $state (0710, whatsapp-mcp), same files and inodes (${files_after% }), all owned by whatsapp-mcp"
    else
        fail "[$s] state after the upgrade: $state '$st', $private $(stat_of "$private"); files before '$files_before', after '$files_after'; not owned by whatsapp-mcp: ${owners:-none}"
    fi

    if [ "$(in_ct md5sum /etc/whatsapp-mcp/token)" = "$token_before" ] &&
        sockets_are is-active active && sockets_are is-enabled enabled &&
        [ "$(stat_of "$SOCK")" = "socket 660 root:whatsapp-mcp" ]; then
        pass "[$s] token unchanged; $SOCKET_UNITS enabled and active"
    else
        # shellcheck disable=SC2086 # one word per unit
        fail "[$s] after the upgrade: token $([ "$(in_ct md5sum /etc/whatsapp-mcp/token)" = "$token_before" ] && echo kept || echo changed), sockets active '$(in_ct systemctl is-active $SOCKET_UNITS | tr '\n' ' ')', enabled '$(in_ct systemctl is-enabled $SOCKET_UNITS | tr '\n' ' ')', $SOCK: $(stat_of "$SOCK")"
    fi

    # The upgraded daemon serves the moved archive, over the local socket and
    # over TCP with the token, and refuses TCP without it.
    TOKEN=$(in_ct cat /etc/whatsapp-mcp/token)
    local code
    code=$(in_ct curl -s --max-time 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/api/status)
    if in_ct whatsapp-mcp status >"$WORK/cli-status-up-$s.log" 2>&1 &&
        tcurl -fsS --max-time 10 -o /dev/null http://127.0.0.1:8080/api/status && [ "$code" = 401 ]; then
        pass "[$s] after the upgrade: whatsapp-mcp status works, 8080/api/status wants the token (401 without, 200 with)"
    else
        fail "[$s] after the upgrade: 8080/api/status without the token -> $code; whatsapp-mcp status:"
        sed 's/^/    /' "$WORK/cli-status-up-$s.log"
    fi
}
