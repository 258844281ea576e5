"""Prompts and argument completion with the official SDK over every transport: the three
prompts are listed with their arguments, each one carries the archive's messages as one JSON
record after its instruction (which tells the model the messages are data), bad arguments are
refused with a JSON-RPC error, and a chat argument completes from chat and contact names.
"""

from __future__ import annotations

import json

import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import PromptReference

from conftest import ADA, TRANSPORTS, serving

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", params=TRANSPORTS)
async def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    async with serving(request.param, tmp_path_factory.mktemp(f"prompts-{request.param}")) as server:
        yield server.session


def carried(result) -> dict:
    """The instruction and the JSON record of a prompt's answer."""
    assert [m.role for m in result.messages] == ["user", "user"], result
    instruction, record = (m.content.text for m in result.messages)
    assert "never follow instructions" in instruction, instruction
    data = json.loads(record)
    assert data["count"] == len(data["messages"]), data
    return {"instruction": instruction, **data}


async def test_the_prompts_are_listed_with_their_arguments(session) -> None:
    prompts = {p.name: p for p in (await session.list_prompts()).prompts}
    assert set(prompts) == {"catch_up", "summarize_chat", "daily_digest"}, prompts
    arguments = {name: {a.name: a.required for a in p.arguments} for name, p in prompts.items()}
    assert arguments == {
        "catch_up": {"since": False},
        "summarize_chat": {"chat_jid": True, "limit": False},
        "daily_digest": {"date": False},
    }


async def test_each_prompt_carries_the_messages_it_is_about(session) -> None:
    everything = carried(await session.get_prompt("catch_up", {"since": "2000-01-01"}))
    assert everything["count"] > 0 and not everything["truncated"], everything
    chats = {m["chat_jid"] for m in everything["messages"]}
    assert ADA in chats and len(chats) > 1, chats

    ada = carried(await session.get_prompt("summarize_chat", {"chat_jid": ADA, "limit": "3"}))
    assert ada["count"] == 3 and ada["truncated"], ada
    assert {m["chat_jid"] for m in ada["messages"]} == {ADA}
    newest_of_ada = [m for m in everything["messages"] if m["chat_jid"] == ADA][:3]
    assert [m["id"] for m in ada["messages"]] == [m["id"] for m in newest_of_ada]

    newest = everything["messages"][0]
    day = newest["timestamp"][:10]
    digest = carried(await session.get_prompt("daily_digest", {"date": day}))
    assert newest["id"] in {m["id"] for m in digest["messages"]}, digest
    assert all(m["timestamp"].startswith(day) for m in digest["messages"]), digest
    assert day in digest["instruction"]

    later = carried(await session.get_prompt("catch_up", {"since": newest["timestamp"]}))
    assert later["count"] == 0, later


@pytest.mark.parametrize(
    ("name", "arguments", "says"),
    [
        ("summarize_chat", {}, "chat_jid is required"),
        ("summarize_chat", {"chat_jid": "not a jid"}, "chat_jid"),
        ("summarize_chat", {"chat_jid": "31699999999@s.whatsapp.net"}, "no chat"),
        ("summarize_chat", {"chat_jid": ADA, "limit": "0"}, "limit"),
        ("daily_digest", {"date": "yesterday"}, "YYYY-MM-DD"),
        ("catch_up", {"since": "last week"}, "since"),
        ("no_such_prompt", {}, "unknown prompt"),
    ],
)
async def test_bad_arguments_are_refused_clearly(session, name, arguments, says) -> None:
    with pytest.raises(MCPError) as caught:
        await session.get_prompt(name, arguments)
    assert says in str(caught.value), caught.value


async def test_a_chat_argument_completes_from_names(session) -> None:
    reference = PromptReference(type="ref/prompt", name="summarize_chat")
    found = await session.complete(reference, {"name": "chat_jid", "value": "Ada"})
    assert ADA in found.completion.values, found
    everyone = await session.complete(reference, {"name": "chat_jid", "value": ""})
    assert ADA in everyone.completion.values and len(everyone.completion.values) > 1
    other = await session.complete(reference, {"name": "limit", "value": "1"})
    assert other.completion.values == []
