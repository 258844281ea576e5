#!/usr/bin/env python3
"""Times the original project's query layer on the benchmark archive, for comparison.

The original Python server reads the Go bridge's `messages.db` through the functions in its
`whatsapp-mcp-server/whatsapp.py`. `generate_archive --to original:PATH` writes the same
archive `benches/mcp_tools.rs` measures in that layout; this script calls those functions
directly (no MCP layer, no JSON-RPC: that only flatters them) with the operations and search
terms of `benches/mcp_tools.rs`, and prints median and p99 the same way.

    cargo run --release --example generate_archive -- --to original:/tmp/messages.db
    python3 benches/original_compare.py /path/to/whatsapp-mcp/whatsapp-mcp-server /tmp/messages.db

The original is not part of this repository and is not run by the test suite.
"""

import argparse
import math
import random
import sqlite3
import sys
import time
import types

# The terms benches/mcp_tools.rs searches for, in the same order.
SEARCHES = [
    "kilimanjaro",
    "tomorrow",
    "cumpleanos",
    "спасибо",
    "شكرا",
    "ありがとう",
    "打电话",
    "grüße",
    "boarding-pass",
    '"see later" train',
]


def quantile(samples, q):
    """The q-quantile by the nearest-rank method, as benches/support/measure.rs takes it."""
    ordered = sorted(samples)
    rank = min(max(math.ceil(q * len(ordered)), 1), len(ordered))
    return ordered[rank - 1]


def report(name, samples, found=None):
    ms = [s * 1000 for s in samples]
    line = (
        f"{name:<58} median {quantile(ms, 0.5):9.2f} ms  p99 {quantile(ms, 0.99):9.2f} ms"
        f"  ({len(ms)} runs)"
    )
    if found is not None:
        line += f"  {found} rows"
    print(line, flush=True)


def shown(output):
    """How many messages a list_messages answer holds: it returns them as text, one line each
    starting with the time in brackets (or an empty list after a database error)."""
    if isinstance(output, str):
        return sum(1 for line in output.splitlines() if line.startswith("["))
    return len(output)


def timed(samples, call, *args, **kwargs):
    started = time.perf_counter()
    out = call(*args, **kwargs)
    samples.append(time.perf_counter() - started)
    return out


def repeat(rounds, budget, op):
    """Runs op() up to `rounds` times, stopping early once `budget` seconds are spent."""
    samples = []
    began = time.perf_counter()
    for _ in range(rounds):
        op(samples)
        if len(samples) > 1 and time.perf_counter() - began > budget:
            break
    return samples


def load_original(server_dir, database):
    # Only the read functions are timed; the send path's HTTP client and audio helper are
    # imported by the module but never called, so stand-ins do if they are not installed.
    for name in ("requests", "audio"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    sys.path.insert(0, server_dir)
    import whatsapp  # noqa: E402  (the original project's module)

    whatsapp.MESSAGES_DB_PATH = database
    return whatsapp


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("server_dir", help="the original's whatsapp-mcp-server directory")
    parser.add_argument("database", help="a messages.db written by generate_archive original:")
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--search-rounds", type=int, default=11)
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per operation")
    args = parser.parse_args()

    wa = load_original(args.server_dir, args.database)
    db = sqlite3.connect(args.database)
    chats = [row[0] for row in db.execute("SELECT jid FROM chats ORDER BY jid")]
    names = [row[0] for row in db.execute(
        "SELECT name FROM chats WHERE name IS NOT NULL AND jid LIKE '%@s.whatsapp.net' ORDER BY jid")]
    total = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    # The busiest chats, where paging matters, as benches/mcp_tools.rs pages through them.
    busy = [row[0] for row in db.execute(
        "SELECT chat_jid FROM messages GROUP BY chat_jid ORDER BY COUNT(*) DESC LIMIT 100")]
    messages = [row for row in db.execute(
        "SELECT id, chat_jid FROM messages WHERE rowid % 997 = 0")]
    db.close()
    print(f"original query layer: {total} messages, {len(chats)} chats, {args.database}")

    rng = random.Random(20260101)
    rounds, budget = args.rounds, args.budget

    samples = repeat(rounds, budget, lambda s: timed(s, wa.list_chats, page=rng.randrange(10)))
    report("list_chats (20, last message)", samples)

    samples = repeat(rounds, budget, lambda s: timed(
        s, wa.list_messages, chat_jid=rng.choice(busy), page=rng.randrange(10),
        include_context=False))
    report("list_messages chat, page (no context)", samples)

    samples = repeat(rounds, budget, lambda s: timed(
        s, wa.list_messages, chat_jid=rng.choice(busy), page=rng.randrange(10),
        include_context=True))
    report("list_messages chat, page, context 1+1 (its default)", samples)

    samples = repeat(rounds, budget, lambda s: timed(
        s, wa.search_contacts, rng.choice(names).split()[0]))
    report("search_contacts (first name)", samples)

    def context(s):
        message_id, _ = rng.choice(messages)
        timed(s, wa.get_message_context, message_id, before=5, after=5)

    report("get_message_context (5 + 5)", repeat(rounds, budget, context))

    everything = []
    for term in SEARCHES:
        found = None

        def search(s):
            nonlocal found
            found = shown(timed(s, wa.list_messages, query=term, limit=20, include_context=False))

        samples = repeat(args.search_rounds, budget / 4, search)
        # The first call warms the page cache, as benches/mcp_tools.rs drops its first round.
        samples = samples[1:] or samples
        everything.extend(samples)
        report(f"search {term!r}", samples, found)
    report("full-text search, all terms", everything)


if __name__ == "__main__":
    main()
