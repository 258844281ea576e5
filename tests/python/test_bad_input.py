"""Bad input over every transport: each mistake gets an error that says what is wrong (and,
where it helps, what to call instead), nothing is sent, and the same session keeps serving.
"""

from __future__ import annotations

import pytest

from conftest import ADA, ADA_PHONE, BOB, GROUP, SECRET_BYTES, TRANSPORTS, Server, serving

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", params=TRANSPORTS)
async def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp(f"bad-{request.param}")
    async with serving(request.param, root) as server:
        yield server


async def still_serving(server: Server) -> None:
    """A good call on the same session after the bad ones."""
    result = await server.call("list_chats", {"include_last_message": False})
    assert result["count"] == 3


async def newest_ada_message(server: Server) -> str:
    result = await server.call(
        "list_messages", {"chat_jid": ADA, "limit": 1, "include_context": False}
    )
    return result["messages"][0]["id"]


async def test_unknown_tool_is_a_protocol_error(server: Server) -> None:
    error = await server.rpc_error("delete_all_chats", {})
    assert error.code in (-32601, -32602), error.code
    assert "not found" in error.message.lower()
    await still_serving(server)


async def test_unknown_resource_names_the_one_there_is(server: Server) -> None:
    from mcp.shared.exceptions import MCPError

    with pytest.raises(MCPError) as caught:
        await server.session.read_resource("whatsapp://secrets")
    assert "whatsapp://status" in caught.value.message
    await still_serving(server)


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("list_chats", {"limit": "ten"}, ["invalid type", "u32"]),
        ("list_chats", {"sort_by": "loudest"}, ["loudest"]),
        ("list_messages", {"include_context": "yes"}, ["invalid type", "bool"]),
        ("mark_read", {"chat_jid": ADA, "message_ids": "DEMO-A1"}, ["invalid type", "sequence"]),
        ("get_chat", {"chat_jid": 31611111111}, ["invalid type", "string"]),
        ("get_chat", {}, ["missing field", "chat_jid"]),
        ("search_contacts", {"query": "ada", "limt": 3}, ["unknown field", "limt"]),
        ("send_message", {"recipient": ADA}, ["missing field", "message"]),
    ],
)
async def test_wrong_arguments_are_tool_errors(
    server: Server, tool: str, arguments: dict, expected: list[str]
) -> None:
    newest = await newest_ada_message(server)
    text = await server.fail(tool, arguments)
    for fragment in expected:
        assert fragment in text, f"{tool}: {text!r} lacks {fragment!r}"
    assert await newest_ada_message(server) == newest
    await still_serving(server)


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("get_chat", {"chat_jid": "+31 6 9999 9999"}),
        ("list_messages", {"chat_jid": "31699999999@s.whatsapp.net"}),
        ("request_history", {"chat_jid": "120363999999999999@g.us"}),
        ("send_reaction", {"chat_jid": "31699999999", "message_id": "X", "emoji": "👍"}),
        ("mark_read", {"chat_jid": "31699999999", "message_ids": ["X"]}),
    ],
)
async def test_unknown_chats_point_to_list_chats(
    server: Server, tool: str, arguments: dict
) -> None:
    text = await server.fail(tool, arguments)
    assert "unknown chat" in text and "list_chats" in text, text
    await still_serving(server)


@pytest.mark.parametrize(
    ("tool", "arguments", "field"),
    [
        ("get_chat", {"chat_jid": "not a jid!"}, "chat_jid"),
        ("list_messages", {"chat_jid": "@@@"}, "chat_jid"),
        ("list_messages", {"sender_phone_number": "call me maybe"}, "sender_phone_number"),
        ("get_contact_chats", {"jid": "ada@example.com"}, "jid"),
        ("send_message", {"recipient": "hello", "message": "hi"}, "recipient"),
        ("send_file", {"recipient": "12", "media_path": "note.txt"}, "recipient"),
        ("download_media", {"chat_jid": "x@y@z", "message_id": "DEMO-A6"}, "chat_jid"),
    ],
)
async def test_invalid_jids_name_the_argument(
    server: Server, tool: str, arguments: dict, field: str
) -> None:
    newest = await newest_ada_message(server)
    text = await server.fail(tool, arguments)
    assert text.startswith(f"{field}:"), text
    assert "list_chats" in text or "search_contacts" in text, text
    assert await newest_ada_message(server) == newest
    await still_serving(server)


async def test_wrong_kinds_of_address(server: Server) -> None:
    text = await server.fail("get_group", {"group_jid": ADA})
    assert "not a group" in text and "list_groups" in text
    text = await server.fail("get_direct_chat_by_contact", {"sender_phone_number": GROUP})
    assert "not a person" in text
    await still_serving(server)


@pytest.mark.parametrize("tool", ["send_file", "send_audio_message"])
async def test_files_outside_the_outbox_are_refused(server: Server, tool: str) -> None:
    newest = await newest_ada_message(server)
    escapes = ["/etc/passwd", "../secret.txt", str(server.sandbox.secret), "escape.txt"]
    for path in escapes:
        text = await server.fail(tool, {"recipient": ADA, "media_path": path})
        assert "outside the outbox" in text, f"{path}: {text}"
        assert str(server.sandbox.outbox.resolve()) in text, text
        assert SECRET_BYTES.decode().strip() not in text
    missing = await server.fail(tool, {"recipient": ADA, "media_path": "holiday.jpg"})
    assert "no such file" in missing and "outbox" in missing
    directory = await server.fail(tool, {"recipient": ADA, "media_path": "."})
    assert "not a regular file" in directory
    assert await newest_ada_message(server) == newest, "something was sent"
    await still_serving(server)


async def test_other_mistakes_say_what_to_do(server: Server) -> None:
    newest = await newest_ada_message(server)
    cases = [
        ("list_messages", {"after": "last tuesday"}, ["after:", "ISO-8601"]),
        ("send_message", {"recipient": ADA_PHONE, "message": "   "}, ["message is empty"]),
        ("mark_read", {"chat_jid": ADA, "message_ids": []}, ["message_ids is empty"]),
        ("search_contacts", {"query": ""}, ["query is empty"]),
        ("get_message_context", {"message_id": "NOPE"}, ["no message", "list_messages"]),
        (
            "reply_to_message",
            {"chat_jid": ADA, "message_id": "NOPE", "message": "hi"},
            ["no message", "list_messages"],
        ),
        ("download_media", {"chat_jid": ADA, "message_id": "DEMO-A1"}, ["has no media"]),
        ("download_media", {"chat_jid": BOB, "message_id": "NOPE"}, ["no message"]),
        (
            "send_reaction",
            {"chat_jid": ADA, "message_id": "DEMO-A1", "emoji": "👍" * 20},
            ["single emoji"],
        ),
    ]
    for tool, arguments, expected in cases:
        text = await server.fail(tool, arguments)
        for fragment in expected:
            assert fragment in text, f"{tool}({arguments}): {text!r} lacks {fragment!r}"
    assert await newest_ada_message(server) == newest
    await still_serving(server)
