"""Named tokens with scopes, against the real binary with the official SDK over Streamable HTTP:
a `whatsapp:read` token is shown and served the read tools, and every acting tool is refused with `insufficient_scope`
(nothing is sent); a `whatsapp:send` token sends but cannot read.
"""

from __future__ import annotations

import pytest
from mcp.shared.exceptions import MCPError

from conftest import ADA, ALL_TOOLS, WRITE_TOOLS, Daemon, Sandbox, connect

pytestmark = pytest.mark.anyio

READER = "reader-token-python-0123456789"
SENDER = "sender-token-python-0123456789"

ARGUMENTS = {
    "send_message": {"recipient": ADA, "message": "must not go out"},
    "send_file": {"recipient": ADA, "media_path": "note.txt"},
    "send_audio_message": {"recipient": ADA, "media_path": "voice.ogg"},
    "reply_to_message": {"chat_jid": ADA, "message_id": "DEMO-A7", "message": "no"},
    "send_reaction": {"chat_jid": ADA, "message_id": "DEMO-A7", "emoji": "👍"},
    "mark_read": {"chat_jid": ADA, "message_ids": ["DEMO-A7"]},
    "request_history": {"chat_jid": ADA},
    "edit_message": {"chat_jid": ADA, "message_id": "DEMO-A7", "message": "changed"},
    "delete_message": {"chat_jid": ADA, "message_id": "DEMO-A7"},
    "send_poll": {"recipient": ADA, "question": "Dinner?", "options": ["Yes", "No"]},
}


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory):
    sandbox = Sandbox(tmp_path_factory.mktemp("scopes"))
    sandbox.config.write_text(
        "[auth.tokens.assistant]\n"
        f'token = "{READER}"\n'
        'scopes = ["whatsapp:read"]\n'
        "[auth.tokens.notifier]\n"
        f'token = "{SENDER}"\n'
        'scopes = ["whatsapp:send"]\n'
    )
    daemon = Daemon(sandbox).start()
    try:
        yield sandbox, daemon
    finally:
        daemon.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_read_token_reads_and_every_acting_tool_is_refused(scoped) -> None:
    sandbox, daemon = scoped
    async with connect("http", sandbox, daemon, headers=bearer(READER)) as session:
        # The list shows what the token may call; each call is still checked on its own.
        listed = {tool.name for tool in (await session.list_tools()).tools}
        assert listed == ALL_TOOLS - WRITE_TOOLS, sorted(listed)
        chats = (await session.call_tool("list_chats", {})).structured_content
        assert chats and chats["chats"], chats
        before = (await session.call_tool("list_messages", {"chat_jid": ADA, "limit": 1})).structured_content
        assert set(ARGUMENTS) == WRITE_TOOLS
        for tool, arguments in ARGUMENTS.items():
            with pytest.raises(MCPError) as refused:
                await session.call_tool(tool, arguments)
            assert "insufficient_scope" in str(refused.value), f"{tool}: {refused.value}"
            assert "whatsapp:send" in str(refused.value), f"{tool}: {refused.value}"
        # The session goes on, and nothing went out.
        after = (await session.call_tool("list_messages", {"chat_jid": ADA, "limit": 1})).structured_content
        assert after["messages"][0]["id"] == before["messages"][0]["id"]


async def test_a_send_token_sends_and_cannot_read(scoped) -> None:
    sandbox, daemon = scoped
    async with connect("http", sandbox, daemon, headers=bearer(SENDER)) as session:
        listed = {tool.name for tool in (await session.list_tools()).tools}
        assert listed == WRITE_TOOLS, sorted(listed)
        sent = await session.call_tool("send_message", {"recipient": ADA, "message": "from the notifier"})
        assert not sent.is_error, sent
        with pytest.raises(MCPError) as refused:
            await session.call_tool("list_chats", {})
        assert "insufficient_scope" in str(refused.value) and "whatsapp:read" in str(refused.value)
