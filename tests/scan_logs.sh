#!/usr/bin/env bash
# Fails when a secret the test suite uses (tests/log_secrets.txt) appears in any log its
# processes wrote into DIR (WHATSAPP_MCP_TEST_LOG_DIR: the binary's stderr, at debug level,
# from the Rust tests' wrapper and the Python tests' fixtures).
#
#   bash tests/scan_logs.sh DIR
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${1:?usage: scan_logs.sh DIR}
list=$ROOT/tests/log_secrets.txt

shopt -s nullglob
logs=("$dir"/*.log "$dir"/*.stderr)
if [ ${#logs[@]} -eq 0 ]; then
    echo "no logs in $dir: the test processes' stderr was not captured" >&2
    exit 1
fi

failed=0 checked=0
while IFS= read -r secret; do
    if [ -z "$secret" ] || [ "${secret:0:1}" = "#" ]; then
        continue
    fi
    # Show only the start of a secret, even a test one.
    shown="${secret:0:6}…"
    if ! grep -rqF --exclude=log_secrets.txt -- "$secret" "$ROOT/src" "$ROOT/tests"; then
        echo "tests/log_secrets.txt: $shown is used nowhere any more; remove or update it" >&2
        failed=1
        continue
    fi
    if hits=$(grep -lF -- "$secret" "${logs[@]}"); then
        echo "a secret ($shown) is in the logs:" >&2
        echo "$hits" >&2
        failed=1
    fi
    checked=$((checked + 1))
done <"$list"

bytes=$(cat "${logs[@]}" | wc -c)
echo "scanned ${#logs[@]} logs ($bytes bytes) for $checked secrets"
exit $failed
