"""Polls, with the official Python SDK over every transport: `send_poll` sends one and archives
it, votes arriving from contacts (by option hash, as WhatsApp carries them, through the fake
engine's inbox and the real ingest path) are tallied by `get_poll_results` with each voter's
latest choice, a poll a contact asks is kept too, and bad polls are refused with a clear error
before anything is sent.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from conftest import ADA, BOB, GROUP, TRANSPORTS, Server, deliver, serving

pytestmark = pytest.mark.anyio

# Generous: a vote lands within one look at the inbox (50 ms).
LAND_LIMIT = 10.0


@pytest.fixture(params=TRANSPORTS)
async def server(request: pytest.FixtureRequest, tmp_path: Path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    async with serving(request.param, tmp_path, WHATSAPP_MCP_FAKE_INBOX=str(inbox)) as server:
        yield server


async def results_when(server: Server, chat: str, poll_id: str, done: Any) -> dict[str, Any]:
    """get_poll_results, asked again until the poll is there and `done(results)` holds."""
    assert server.session is not None
    arguments = {"chat_jid": chat, "message_id": poll_id}
    deadline = time.monotonic() + LAND_LIMIT
    while time.monotonic() < deadline:
        answer = await server.session.call_tool("get_poll_results", arguments)
        if not answer.is_error and done(answer.structured_content):
            break
        await anyio.sleep(0.05)
    return await server.call("get_poll_results", arguments)


def tally(results: dict[str, Any]) -> dict[str, list[str]]:
    """Who chose each answer (voters sorted: votes in one second have no order)."""
    return {o["name"]: sorted(v["jid"] for v in o["voters"]) for o in results["options"]}


async def test_a_poll_sent_to_a_group_is_tallied_as_votes_come(server: Server) -> None:
    sent = await server.call(
        "send_poll",
        {
            "recipient": GROUP,
            "question": "Where shall we eat?",
            "options": ["Pizza", " Soup ", "Sushi"],
            "multiple_answers": True,
        },
    )
    poll_id = sent["message"]["id"]
    listed = await server.call("list_messages", {"chat_jid": GROUP, "limit": 1})
    assert listed["messages"][0]["text"] == "[poll] Where shall we eat? (Pizza / Soup / Sushi)"
    results = await server.call("get_poll_results", {"chat_jid": GROUP, "message_id": poll_id})
    assert results["question"] == "Where shall we eat?"
    assert results["selectable"] == 3
    assert tally(results) == {"Pizza": [], "Soup": [], "Sushi": []}

    vote = lambda voter, options: deliver(  # noqa: E731
        server.sandbox,
        {"chat": GROUP, "sender": voter, "vote": {"poll_id": poll_id, "options": options}},
    )
    vote(ADA, ["Pizza"])
    vote(BOB, ["Soup", "Sushi"])
    results = await results_when(server, GROUP, poll_id, lambda r: r["voter_count"] == 2)
    assert tally(results) == {"Pizza": [ADA], "Soup": [BOB], "Sushi": [BOB]}
    # Ada changes her mind: her latest vote is the one counted.
    vote(ADA, ["Sushi"])
    results = await results_when(server, GROUP, poll_id, lambda r: not tally(r)["Pizza"])
    assert tally(results) == {"Pizza": [], "Soup": [BOB], "Sushi": [ADA, BOB]}
    sushi = {o["name"]: o for o in results["options"]}["Sushi"]
    assert sushi["votes"] == 2
    assert {v["name"] for v in sushi["voters"]} == {"Ada Lovelace", "Bob's Bikes"}
    # Bob takes his vote back.
    vote(BOB, [])
    results = await results_when(server, GROUP, poll_id, lambda r: r["voter_count"] == 1)
    assert tally(results) == {"Pizza": [], "Soup": [], "Sushi": [ADA]}


async def test_a_poll_a_contact_asks_is_kept_with_its_votes(server: Server) -> None:
    deliver(
        server.sandbox,
        {"chat": ADA, "id": "ADA-POLL-1", "poll": {"question": "Tea?", "options": ["Yes", "No"]}},
    )
    deliver(server.sandbox, {"chat": ADA, "vote": {"poll_id": "ADA-POLL-1", "options": ["No"]}})
    results = await results_when(server, ADA, "ADA-POLL-1", lambda r: r["voter_count"] == 1)
    assert results["selectable"] == 1
    assert tally(results) == {"Yes": [], "No": [ADA]}
    found = await server.call("list_messages", {"chat_jid": ADA, "query": "Tea"})
    assert [m["id"] for m in found["messages"]] == ["ADA-POLL-1"]


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"question": "One?", "options": ["only"]}, "2 to 12 answers, not 1"),
        ({"question": "Many?", "options": [str(n) for n in range(13)]}, "not 13"),
        ({"question": "Twice?", "options": ["a", "b", " a"]}, '"a" is there twice'),
        ({"question": "Blank?", "options": ["a", " "]}, "an answer is empty"),
        ({"question": " ", "options": ["a", "b"]}, "question"),
    ],
)
async def test_a_bad_poll_is_refused_and_nothing_is_sent(
    server: Server, arguments: dict[str, Any], words: str
) -> None:
    before = await server.call("list_messages", {"chat_jid": ADA, "limit": 1})
    text = await server.fail("send_poll", {"recipient": ADA, **arguments})
    assert words in text, text
    after = await server.call("list_messages", {"chat_jid": ADA, "limit": 1})
    assert after["messages"][0]["id"] == before["messages"][0]["id"]


async def test_results_of_a_message_that_is_no_poll_say_so(server: Server) -> None:
    text = await server.fail("get_poll_results", {"chat_jid": ADA, "message_id": "DEMO-A1"})
    assert "no poll with id" in text and "DEMO-A1" in text, text
