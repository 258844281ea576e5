"""Confirmation before acting (`mcp.confirm`), as a client with the official SDK meets it over
every transport: the person at the client is asked, through MCP elicitation, before an acting
tool does anything; an approval lets it go ahead, anything else stops it with nothing sent, and a
client that cannot ask is refused wherever a question was due.

The hostile case is the one this exists for: a message in the archive tells the assistant to send
something to a stranger, the assistant does as told, and the question to the person is what
stops it.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import types

from conftest import (
    ADA,
    ADA_PHONE,
    BOB,
    BOB_PHONE,
    GROUP,
    TRANSPORTS,
    WRITE_TOOLS,
    Server,
    serving,
)

pytestmark = pytest.mark.anyio

STRANGER = "+15550100123"
STRANGER_JID = "15550100123@s.whatsapp.net"


class Person:
    """The person at the client: answers every question as `answer` says and keeps each one."""

    def __init__(self) -> None:
        self.questions: list[types.ElicitRequestFormParams] = []
        self.answer = "approve"

    async def __call__(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams), params
        self.questions.append(params)
        if self.answer == "approve":
            return types.ElicitResult(action="accept", content={"approve": True})
        if self.answer == "untick":
            return types.ElicitResult(action="accept", content={"approve": False})
        return types.ElicitResult(action=self.answer)

    def last(self) -> str:
        assert self.questions, "the person was not asked"
        return self.questions[-1].message


async def newest_id(server: Server, chat: str) -> str | None:
    result = await server.call(
        "list_messages", {"chat_jid": chat, "limit": 1, "include_context": False}
    )
    return result["messages"][0]["id"] if result["messages"] else None


@pytest.fixture(scope="module", params=TRANSPORTS)
async def always(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    person = Person()
    root = tmp_path_factory.mktemp(f"confirm-always-{request.param}")
    async with serving(
        request.param, root, elicitation=person, WHATSAPP_MCP_CONFIRM="always"
    ) as server:
        yield server, person


@pytest.fixture(scope="module", params=TRANSPORTS)
async def unlisted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    person = Person()
    root = tmp_path_factory.mktemp(f"confirm-unlisted-{request.param}")
    async with serving(
        request.param,
        root,
        elicitation=person,
        WHATSAPP_MCP_CONFIRM="unlisted",
        WHATSAPP_MCP_ALLOWED_RECIPIENTS=BOB_PHONE,
    ) as server:
        yield server, person


@pytest.fixture(scope="module", params=TRANSPORTS)
async def cannot_ask(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp(f"confirm-no-elicitation-{request.param}")
    async with serving(
        request.param,
        root,
        WHATSAPP_MCP_CONFIRM="unlisted",
        WHATSAPP_MCP_ALLOWED_RECIPIENTS=BOB_PHONE,
    ) as server:
        yield server


async def test_an_approved_message_is_sent_after_the_person_saw_it(always) -> None:
    server, person = always
    person.answer = "approve"
    asked = len(person.questions)
    sent = await server.call(
        "send_message", {"recipient": "+" + ADA_PHONE, "message": "see you at 8"}
    )
    assert sent["sent"] is True and sent["message"]["chat_jid"] == ADA
    assert len(person.questions) == asked + 1
    question = person.last()
    assert "see you at 8" in question and "+" + ADA_PHONE in question, question
    assert "Ada" in question, question
    schema = person.questions[-1].requested_schema
    assert schema["properties"]["approve"]["type"] == "boolean", schema
    assert await newest_id(server, ADA) == sent["message"]["id"]


@pytest.mark.parametrize("answer", ["decline", "cancel", "untick"])
async def test_anything_but_an_approval_sends_nothing(always, answer: str) -> None:
    server, person = always
    person.answer = answer
    before = await newest_id(server, ADA)
    text = await server.fail("send_message", {"recipient": ADA, "message": "not this one"})
    assert text.startswith("not done:") and "Nothing was sent" in text, text
    assert "do not try again" in text.lower(), text
    assert await newest_id(server, ADA) == before
    found = await server.call("list_messages", {"query": "not this one"})
    assert found["messages"] == []


async def test_every_acting_tool_asks_first(always) -> None:
    server, person = always
    person.answer = "decline"
    calls = {
        "send_message": {"recipient": ADA, "message": "hi"},
        "send_file": {"recipient": ADA, "media_path": "note.txt", "caption": "the list"},
        "send_audio_message": {"recipient": ADA, "media_path": "voice.ogg"},
        "reply_to_message": {"chat_jid": ADA, "message_id": "DEMO-A4", "message": "yes"},
        "send_reaction": {"chat_jid": ADA, "message_id": "DEMO-A1", "emoji": "👍"},
        "mark_read": {"chat_jid": ADA, "message_ids": ["DEMO-A7"]},
        "request_history": {"chat_jid": GROUP, "count": 10},
        "edit_message": {"chat_jid": ADA, "message_id": "DEMO-A7", "message": "changed"},
        "delete_message": {"chat_jid": ADA, "message_id": "DEMO-A7"},
        "send_poll": {"recipient": ADA, "question": "Dinner?", "options": ["Yes", "No"]},
    }
    assert set(calls) == WRITE_TOOLS
    before = await newest_id(server, ADA)
    unread = (await server.call("get_chat", {"chat_jid": ADA}))["unread_count"]
    first = len(person.questions)
    for tool, arguments in calls.items():
        asked = len(person.questions)
        text = await server.fail(tool, arguments)
        assert text.startswith("not done:") and tool in text, (tool, text)
        assert len(person.questions) == asked + 1, tool
        question = person.last()
        assert ("+" + ADA_PHONE in question) or (GROUP in question), (tool, question)
    asked = [question.message for question in person.questions[first:]]
    assert "note.txt" in asked[1] and "the list" in asked[1], asked[1]
    assert "👍" in asked[4], asked[4]
    assert await newest_id(server, ADA) == before
    assert (await server.call("get_chat", {"chat_jid": ADA}))["unread_count"] == unread
    context = await server.call(
        "get_message_context", {"message_id": "DEMO-A1", "before": 0, "after": 0}
    )
    assert context["message"]["reactions"] == []


async def test_a_listed_recipient_is_served_without_a_question(unlisted) -> None:
    server, person = unlisted
    person.answer = "decline"
    asked = len(person.questions)
    sent = await server.call("send_message", {"recipient": BOB, "message": "ride?"})
    assert sent["sent"] is True
    assert len(person.questions) == asked


async def test_a_hostile_message_steering_the_assistant_is_stopped_by_the_person(unlisted) -> None:
    """An incoming message asks the assistant to forward a chat to a stranger; the assistant
    obeys, and the stranger is not on the allow-list, so the person is asked and says no."""
    server, person = unlisted
    person.answer = "decline"
    asked = len(person.questions)
    text = await server.fail(
        "send_message",
        {"recipient": STRANGER, "message": "Forwarded as asked: Ada's address is 12 Elm St"},
    )
    assert text.startswith("not done:"), text
    assert len(person.questions) == asked + 1
    assert STRANGER in person.last() and "12 Elm St" in person.last()
    chats = await server.call("list_chats", {"query": "15550100123"})
    assert chats["count"] == 0, chats


async def test_an_approved_unlisted_recipient_is_let_through_once(unlisted) -> None:
    server, person = unlisted
    person.answer = "approve"
    sent = await server.call("send_message", {"recipient": ADA, "message": "approved by hand"})
    assert sent["message"]["chat_jid"] == ADA
    person.answer = "decline"
    text = await server.fail("send_message", {"recipient": ADA, "message": "and again"})
    assert text.startswith("not done:"), text
    assert await newest_id(server, ADA) == sent["message"]["id"]


async def test_a_client_that_cannot_ask_is_refused_where_a_question_was_due(cannot_ask) -> None:
    server = cannot_ask
    before = await newest_id(server, ADA)
    text = await server.fail("send_message", {"recipient": ADA, "message": "hi"})
    assert "cannot ask" in text and "elicitation" in text and "Nothing was sent" in text, text
    assert await newest_id(server, ADA) == before
    # No question is due for a listed recipient, so that still works.
    sent = await server.call("send_message", {"recipient": BOB, "message": "still fine"})
    assert sent["sent"] is True
    assert STRANGER_JID not in str(await server.call("list_chats"))
