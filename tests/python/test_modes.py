"""The server's safety settings as a client sees them, over every transport: read-only mode
leaves the acting tools out of the list, the recipient allow-list refuses everyone else, and a
server without a linked account says how to link one.
"""

from __future__ import annotations

import json

import pytest

from conftest import (
    ADA,
    ADA_LID,
    ADA_PHONE,
    ALL_TOOLS,
    BOB,
    BOB_PHONE,
    GROUP,
    TRANSPORTS,
    WRITE_TOOLS,
    Server,
    serving,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", params=TRANSPORTS)
async def read_only(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp(f"read-only-{request.param}")
    async with serving(request.param, root, WHATSAPP_MCP_READ_ONLY="true") as server:
        yield server


@pytest.fixture(scope="module", params=TRANSPORTS)
async def allow_bob(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp(f"allow-{request.param}")
    async with serving(request.param, root, WHATSAPP_MCP_ALLOWED_RECIPIENTS=BOB_PHONE) as server:
        yield server


@pytest.fixture(scope="module", params=TRANSPORTS)
async def unlinked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp(f"unlinked-{request.param}")
    async with serving(request.param, root, seed=None) as server:
        yield server


async def newest(server: Server, chat: str) -> dict:
    result = await server.call(
        "list_messages", {"chat_jid": chat, "limit": 1, "include_context": False}
    )
    return result["messages"][0]


# --- read-only ------------------------------------------------------------------------------


async def test_read_only_mode_lists_no_acting_tools(read_only: Server) -> None:
    listed = {tool.name for tool in (await read_only.session.list_tools()).tools}
    assert listed == ALL_TOOLS - WRITE_TOOLS
    for tool in sorted(WRITE_TOOLS):
        error = await read_only.rpc_error(tool, {"recipient": ADA, "message": "hi"})
        assert "not found" in error.message.lower(), (tool, error.message)
    status = await read_only.call("get_sync_status")
    assert status["read_only"] is True
    assert (await newest(read_only, ADA))["id"] == "DEMO-A7"


async def test_read_only_mode_still_reads(read_only: Server) -> None:
    chats = await read_only.call("list_chats")
    assert chats["count"] == 3
    found = await read_only.call("list_messages", {"query": "東京"})
    assert [m["id"] for m in found["messages"]] == ["DEMO-A4"]
    report = await read_only.session.read_resource("whatsapp://status")
    assert json.loads(report.contents[0].text)["state"] == "connected"


# --- allow-list -----------------------------------------------------------------------------


async def test_the_allow_list_refuses_everyone_else(allow_bob: Server) -> None:
    server = allow_bob
    before = await newest(server, ADA)
    attempts = [
        ("send_message", {"recipient": "+" + ADA_PHONE, "message": "hi"}),
        ("send_message", {"recipient": ADA_LID, "message": "hi"}),
        ("send_message", {"recipient": GROUP, "message": "hi all"}),
        ("send_file", {"recipient": ADA, "media_path": "note.txt"}),
        ("send_audio_message", {"recipient": ADA, "media_path": "voice.ogg"}),
        ("reply_to_message", {"chat_jid": ADA, "message_id": "DEMO-A4", "message": "hi"}),
        ("send_reaction", {"chat_jid": ADA, "message_id": "DEMO-A1", "emoji": "👍"}),
        ("mark_read", {"chat_jid": ADA, "message_ids": ["DEMO-A7"]}),
        ("request_history", {"chat_jid": ADA, "count": 10}),
        ("edit_message", {"chat_jid": ADA, "message_id": "DEMO-A7", "message": "hi"}),
        ("delete_message", {"chat_jid": ADA, "message_id": "DEMO-A7"}),
        ("send_poll", {"recipient": ADA, "question": "Dinner?", "options": ["Yes", "No"]}),
    ]
    assert {tool for tool, _ in attempts} == WRITE_TOOLS
    for tool, arguments in attempts:
        text = await server.fail(tool, arguments)
        assert "not an allowed recipient" in text and "do not retry" in text, (tool, text)
        assert ADA in text or GROUP in text, text
    after = await newest(server, ADA)
    assert after["id"] == before["id"] == "DEMO-A7"
    context = await server.call(
        "get_message_context", {"message_id": "DEMO-A1", "before": 0, "after": 0}
    )
    assert context["message"]["reactions"] == []
    chat = await server.call("get_chat", {"chat_jid": ADA})
    assert chat["unread_count"] == 2
    assert (await newest(server, GROUP))["id"] == "DEMO-G3"


async def test_the_allow_list_lets_bob_through(allow_bob: Server) -> None:
    server = allow_bob
    sent = await server.call("send_message", {"recipient": "+31 6 2222 2222", "message": "ride?"})
    assert sent["sent"] is True and sent["message"]["chat_jid"] == BOB
    assert (await newest(server, BOB))["id"] == sent["message"]["id"]
    reacted = await server.call(
        "send_reaction", {"chat_jid": BOB, "message_id": "DEMO-B38", "emoji": "🚲"}
    )
    assert reacted["sent"] is True
    filed = await server.call("send_file", {"recipient": BOB, "media_path": "photo.jpg"})
    assert filed["message"]["media"]["media_type"] == "image"


# --- not linked -----------------------------------------------------------------------------


async def test_sending_without_a_linked_account_says_how_to_link(unlinked: Server) -> None:
    text = await unlinked.fail("send_message", {"recipient": "+" + ADA_PHONE, "message": "hi"})
    assert "not linked" in text and "/qr" in text, text
    status = await unlinked.call("get_sync_status")
    assert status["linked"] is False and status["connected"] is False
    assert status["state"] == "not_linked"
    assert "/qr" in status["next_step"]
    assert status["message_count"] == 0
    # The refused message was not archived either.
    assert (await unlinked.call("list_chats"))["count"] == 0
    report = json.loads(
        (await unlinked.session.read_resource("whatsapp://status")).contents[0].text
    )
    assert report["state"] == "not_linked" and report["account"] is None
