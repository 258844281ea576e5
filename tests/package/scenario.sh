# The life of the package in one booted container: install, socket activation,
# status and logs, watchdog, restart, opening the sockets up, purge.
# Sourced by run.sh after boot_container; uses the helpers of lib.sh.

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
    check_units_here "$s"
    check_activation "$s" || { diagnose "$s"; return; }
    check_status_and_endpoints "$s"
    check_journal "$s"
    check_restart_keeps_state "$s"
    check_reinstall "$s"
    check_bad_config "$s"
    check_watchdog "$s"
    check_network_dropins "$s"
    check_remove_then_purge "$s"
}

diagnose() {
    echo "    --- systemctl status"
    in_ct systemctl status --no-pager -l whatsapp-mcp.service whatsapp-mcp.socket whatsapp-mcp-mcp.socket 2>&1 | sed 's/^/    /'
    echo "    --- journal"
    in_ct journalctl --no-pager -n 40 -u whatsapp-mcp.service 2>&1 | sed 's/^/    /'
}

unit_prop() { in_ct systemctl show -p "$2" --value "$1"; }

# The steps below restart the units far more often than anyone would by hand,
# which would trip systemd's start rate limit (5 starts in 10 s) and make a
# step fail for a reason of the test's own making. reset-failed also resets
# that counter, so each step calls this first.
reset_limits() {
    in_ct systemctl reset-failed whatsapp-mcp.service whatsapp-mcp.socket whatsapp-mcp-mcp.socket 2>/dev/null
}

# dpkg_ok LOG: the maintainer scripts ran without shell errors.
dpkg_ok() {
    ! grep -E ': [0-9]+: |not found|Could not execute' "$1"
}

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
    out=$(in_ct systemd-analyze verify --man=no whatsapp-mcp.service whatsapp-mcp.socket whatsapp-mcp-mcp.socket 2>&1)
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
    local s=$1 sockets enabled service
    sockets=$(in_ct systemctl is-active whatsapp-mcp.socket whatsapp-mcp-mcp.socket | tr '\n' ' ')
    enabled=$(in_ct systemctl is-enabled whatsapp-mcp.socket whatsapp-mcp-mcp.socket | tr '\n' ' ')
    if [ "$sockets" = "active active " ] && [ "$enabled" = "enabled enabled " ]; then
        pass "[$s] whatsapp-mcp.socket and whatsapp-mcp-mcp.socket are enabled and active"
    else
        fail "[$s] sockets: active='$sockets' enabled='$enabled'"
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
    local s=$1 body code ctype
    if wait_for 10 has_status_line; then
        pass "[$s] systemctl status shows TriggeredBy: and $(grep -o 'Status: .*' <<<"$STATUS_OUT" | head -n 1)"
    else
        fail "[$s] systemctl status lacks TriggeredBy: or Status:"
        sed 's/^/    /' <<<"$STATUS_OUT"
    fi

    body="$WORK/api-status-$s.json"
    if in_ct curl -fsS --max-time 10 http://127.0.0.1:8080/api/status >"$body" 2>&1 &&
        jq -e 'type == "object"' "$body" >/dev/null 2>&1; then
        pass "[$s] GET 127.0.0.1:8080/api/status answered a JSON object"
    else
        fail "[$s] GET /api/status: $(head -c 300 "$body")"
    fi

    # The CLI with the packaged defaults (WHATSAPP_BRIDGE_URL is
    # http://localhost:8080, which resolves to ::1 first, while the socket is on
    # 127.0.0.1 only) must still find the daemon.
    if in_ct whatsapp-mcp status >"$WORK/cli-status-$s.log" 2>&1; then
        pass "[$s] whatsapp-mcp status reaches the socket-activated daemon"
    else
        fail "[$s] whatsapp-mcp status:"
        sed 's/^/    /' "$WORK/cli-status-$s.log"
    fi

    # MCP initialize on the second socket must succeed.
    body="$WORK/mcp-$s.body"
    local request='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"package-test","version":"0"}}}'
    in_ct curl -sS --max-time 10 -w '\n%{http_code} %{content_type}' \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        --data "$request" http://127.0.0.1:3000/mcp >"$body.raw" 2>&1
    # The last line holds "CODE CONTENT-TYPE", everything before it the body.
    code=$(tail -n 1 "$body.raw")
    head -n -1 "$body.raw" >"$body"
    ctype=${code#* }
    code=${code%% *}
    local reply
    reply=$(mcp_reply_json "$body")
    case "$code" in
        200)
            if jq -e '.jsonrpc == "2.0" and .id == 1 and (.result.protocolVersion | type == "string")' \
                <<<"$reply" >/dev/null 2>&1; then
                pass "[$s] POST 127.0.0.1:3000/mcp initialize -> 200, result with protocolVersion ($ctype)"
            else
                fail "[$s] POST /mcp initialize -> 200 but not an initialize result: $(head -c 300 "$body")"
            fi
            ;;
        *)
            fail "[$s] POST /mcp initialize -> '$code': $(head -c 300 "$body")"
            ;;
    esac
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
    local s=$1 state=/var/lib/private/whatsapp-mcp before after mode link
    reset_limits
    mode=$(in_ct stat -c '%a' "$state" 2>&1)
    link=$(in_ct readlink /var/lib/whatsapp-mcp 2>&1)
    if [ "$mode" = 700 ] && [ "$link" = private/whatsapp-mcp ]; then
        pass "[$s] state directory $state is 0700, /var/lib/whatsapp-mcp links to it"
    else
        fail "[$s] state directory: mode '$mode', /var/lib/whatsapp-mcp -> '$link'"
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

# Installing the package over itself runs the upgrade path of the maintainer
# scripts: the running service is restarted, the token and state are kept, and
# the sockets (whose unit files did not change) stay open throughout.
check_reinstall() {
    local s=$1 token_before token_after pid_before sockets_before sockets_after
    token_before=$(in_ct md5sum /etc/whatsapp-mcp/token)
    pid_before=$(unit_prop whatsapp-mcp.service MainPID)
    sockets_before="$(unit_prop whatsapp-mcp.socket ActiveEnterTimestampMonotonic) $(unit_prop whatsapp-mcp-mcp.socket ActiveEnterTimestampMonotonic)"
    reset_limits
    if in_ct dpkg -i --force-confdef --force-confold "/debs/$(basename "$DEB")" >"$WORK/dpkg-re-$s.log" 2>&1 &&
        dpkg_ok "$WORK/dpkg-re-$s.log" && wait_for 30 is_active; then
        token_after=$(in_ct md5sum /etc/whatsapp-mcp/token)
        sockets_after="$(unit_prop whatsapp-mcp.socket ActiveEnterTimestampMonotonic) $(unit_prop whatsapp-mcp-mcp.socket ActiveEnterTimestampMonotonic)"
        if [ "$token_before" = "$token_after" ] &&
            [ "$(unit_prop whatsapp-mcp.service MainPID)" != "$pid_before" ] &&
            [ "$(in_ct cat /var/lib/private/whatsapp-mcp/package-test-marker 2>/dev/null)" = kept ] &&
            [ "$(in_ct systemctl is-active whatsapp-mcp.socket whatsapp-mcp-mcp.socket | tr '\n' ' ')" = "active active " ] &&
            [ "$sockets_after" = "$sockets_before" ]; then
            pass "[$s] reinstall (upgrade path) restarts the running service, keeps token, state and the open sockets"
        else
            fail "[$s] after reinstall: token kept=$([ "$token_before" = "$token_after" ] && echo yes || echo no), pid $pid_before -> $(unit_prop whatsapp-mcp.service MainPID), sockets active since '$sockets_before' -> '$sockets_after'"
        fi
    else
        fail "[$s] reinstalling the package"
        sed 's/^/    /' "$WORK/dpkg-re-$s.log"
        diagnose "$s"
    fi
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
        /var/lib/private/whatsapp-mcp/package-test-marker 2>/dev/null | wc -l')
    if [ "$kept" = 3 ] &&
        [ "$(in_ct systemctl is-active whatsapp-mcp.socket whatsapp-mcp-mcp.socket whatsapp-mcp.service | sort -u | tr '\n' ' ')" = "inactive " ]; then
        pass "[$s] after remove: units stopped; config, token and state kept"
    else
        fail "[$s] after remove: $kept of config/token/state kept, units $(in_ct systemctl is-active whatsapp-mcp.socket whatsapp-mcp-mcp.socket whatsapp-mcp.service | tr '\n' ' ')"
    fi

    if in_ct dpkg --purge whatsapp-mcp >"$WORK/dpkg-purge-$s.log" 2>&1 && dpkg_ok "$WORK/dpkg-purge-$s.log"; then
        pass "[$s] dpkg --purge whatsapp-mcp"
    else
        fail "[$s] dpkg --purge whatsapp-mcp"
        sed 's/^/    /' "$WORK/dpkg-purge-$s.log"
    fi
    left=$(in_ct sh -c 'ls -d /usr/lib/systemd/system/whatsapp-mcp* /lib/systemd/system/whatsapp-mcp* \
        /etc/systemd/system/*/whatsapp-mcp* /var/lib/whatsapp-mcp /var/lib/private/whatsapp-mcp \
        /etc/whatsapp-mcp /usr/bin/whatsapp-mcp 2>/dev/null' | tr '\n' ' ')
    if [ -z "$left" ]; then
        pass "[$s] purge removed the units, their enablement, /etc/whatsapp-mcp and the state directory"
    else
        fail "[$s] left behind after purge: $left"
    fi
    if ! in_ct curl -s --max-time 5 -o /dev/null http://127.0.0.1:8080/health &&
        [ "$(in_ct systemctl is-active whatsapp-mcp.socket whatsapp-mcp-mcp.socket whatsapp-mcp.service | sort -u | tr '\n' ' ')" = "inactive " ]; then
        pass "[$s] nothing listens on 8080 and no whatsapp-mcp unit is active after purge"
    else
        fail "[$s] something of whatsapp-mcp still runs after purge"
    fi
}
