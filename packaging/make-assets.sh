#!/bin/sh
# Generate the files the .deb ships but the repository does not hold: the man
# pages, whatsapp-mcp(1) and whatsapp-mcp.toml(5), and the shell completions,
# all printed by the built binary itself so they always match its command line
# and configuration keys.
#
# usage: packaging/make-assets.sh [BINARY [OUTDIR]]
# defaults: target/release/whatsapp-mcp and target/assets (paths that
# [package.metadata.deb] in Cargo.toml refers to).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-${CARGO_TARGET_DIR:-$root/target}/release/whatsapp-mcp}
out=${2:-$root/target/assets}

if [ ! -x "$bin" ]; then
    echo "make-assets: $bin is missing; run 'cargo build --release' first" >&2
    exit 1
fi

mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" manpage --section 1 >"$tmp/whatsapp-mcp.1"
"$bin" manpage --section 5 >"$tmp/whatsapp-mcp.toml.5"
# -n leaves the name and time stamp out of the gzip header, so the same page
# always compresses to the same bytes (reproducible packages).
for page in whatsapp-mcp.1 whatsapp-mcp.toml.5; do
    gzip -9n <"$tmp/$page" >"$out/$page.gz"
done

for shell in bash zsh fish; do
    "$bin" completions "$shell" >"$tmp/completion.$shell"
    if [ ! -s "$tmp/completion.$shell" ]; then
        echo "make-assets: empty $shell completion" >&2
        exit 1
    fi
done
cp "$tmp/completion.bash" "$out/whatsapp-mcp.bash"
cp "$tmp/completion.zsh" "$out/_whatsapp-mcp"
cp "$tmp/completion.fish" "$out/whatsapp-mcp.fish"

echo "make-assets: wrote man pages and completions to $out"
