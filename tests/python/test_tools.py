"""Every tool over every transport, with the official MCP client, against the fake engine's
demo archive: the handshake, the tool list and its schemas, and each tool's structured result.

Each transport gets a server of its own for the whole module, so the sending tools of one
transport never change what another one reads. Within a module, tests that send only write to
Ada's chat; the facts checked about Bob's chat and the group hold however many tests ran before.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from conftest import (
    ADA,
    ADA_LID,
    ADA_PHONE,
    ALL_TOOLS,
    BOB,
    BOB_PHONE,
    GROUP,
    NOTE_BYTES,
    OWN_PHONE,
    PHOTO_BYTES,
    TRANSPORTS,
    VOICE_BYTES,
    WRITE_TOOLS,
    Server,
    serving,
)

pytestmark = pytest.mark.anyio

# What each tool's arguments are, as JSON Schema types; `!` marks a required argument.
OPT_STR = ["string", "null"]
INPUTS: dict[str, dict[str, object]] = {
    "search_contacts": {"query!": "string", "limit": "integer", "page": "integer"},
    "list_messages": {
        "after": OPT_STR,
        "before": OPT_STR,
        "sender_phone_number": OPT_STR,
        "chat_jid": OPT_STR,
        "query": OPT_STR,
        "limit": "integer",
        "page": "integer",
        "include_context": "boolean",
        "context_before": "integer",
        "context_after": "integer",
    },
    "list_chats": {
        "query": OPT_STR,
        "limit": "integer",
        "page": "integer",
        "include_last_message": "boolean",
        "sort_by": "enum:last_active,name",
    },
    "get_chat": {"chat_jid!": "string", "include_last_message": "boolean"},
    "get_direct_chat_by_contact": {"sender_phone_number!": "string"},
    "get_contact_chats": {"jid!": "string", "limit": "integer", "page": "integer"},
    "get_last_interaction": {"jid!": "string"},
    "get_message_context": {
        "message_id!": "string",
        "chat_jid": OPT_STR,
        "before": "integer",
        "after": "integer",
    },
    "send_message": {"recipient!": "string", "message!": "string", "mentions": "array:string"},
    "send_file": {"recipient!": "string", "media_path!": "string", "caption": OPT_STR},
    "send_audio_message": {"recipient!": "string", "media_path!": "string"},
    "download_media": {"message_id!": "string", "chat_jid!": "string"},
    "get_sync_status": {},
    "send_reaction": {"chat_jid!": "string", "message_id!": "string", "emoji!": "string"},
    "mark_read": {"chat_jid!": "string", "message_ids!": "array:string"},
    "reply_to_message": {
        "chat_jid!": "string",
        "message_id!": "string",
        "message!": "string",
        "mentions": "array:string",
    },
    "list_groups": {"query": OPT_STR, "limit": "integer", "page": "integer"},
    "get_group": {"group_jid!": "string"},
    "request_history": {"chat_jid!": "string", "count": "integer"},
    "edit_message": {"chat_jid!": "string", "message_id!": "string", "message!": "string"},
    "delete_message": {"chat_jid!": "string", "message_id!": "string"},
    "send_poll": {
        "recipient!": "string",
        "question!": "string",
        "options!": "array:string",
        "multiple_answers": "boolean",
    },
    "get_poll_results": {"chat_jid!": "string", "message_id!": "string"},
}


@pytest.fixture(scope="module", params=TRANSPORTS)
async def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp(f"tools-{request.param}")
    async with serving(request.param, root) as server:
        yield server


def ids(messages: list[dict]) -> list[str]:
    return [m["id"] for m in messages]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def resolve(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    if ref is None:
        return node
    assert ref.startswith("#/$defs/"), ref
    return schema["$defs"][ref.removeprefix("#/$defs/")]


# --- handshake and listings -----------------------------------------------------------------


async def test_initialize_names_the_server_and_its_capabilities(server: Server) -> None:
    session = server.session
    info = session.server_info
    assert info is not None and info.name == "whatsapp-mcp"
    capabilities = session.server_capabilities
    assert capabilities is not None
    assert capabilities.tools is not None and capabilities.resources is not None
    assert "search_contacts" in (session.instructions or "")
    assert session.protocol_version


async def test_every_tool_is_listed_with_a_described_typed_schema(server: Server) -> None:
    listed = (await server.session.list_tools()).tools
    assert {tool.name for tool in listed} == ALL_TOOLS
    assert len(listed) == len(ALL_TOOLS), "a tool is listed twice"
    for tool in listed:
        name = tool.name
        assert tool.description and len(tool.description) > 20, name
        schema = tool.input_schema
        assert schema["type"] == "object", name
        properties = schema.get("properties", {})
        expected = INPUTS[name]
        assert set(properties) == {key.rstrip("!") for key in expected}, name
        assert set(schema.get("required", [])) == {
            key.rstrip("!") for key in expected if key.endswith("!")
        }, name
        if properties:
            assert schema.get("additionalProperties") is False, f"{name} accepts unknown fields"
        for key, want in expected.items():
            prop_name = key.rstrip("!")
            prop = properties[prop_name]
            where = f"{name}.{prop_name}"
            assert isinstance(prop.get("description"), str) and prop["description"].strip(), (
                f"{where} has no description"
            )
            if isinstance(want, str) and want.startswith("enum:"):
                target = resolve(schema, prop)
                choices = {choice.get("const") for choice in target.get("oneOf", [])} or set(
                    target.get("enum", [])
                )
                assert choices == set(want.removeprefix("enum:").split(",")), where
            elif isinstance(want, str) and want.startswith("array:"):
                assert prop["type"] == "array", where
                assert prop["items"]["type"] == want.removeprefix("array:"), where
            else:
                assert prop["type"] == want, where
            if prop.get("type") == "integer":
                assert prop.get("minimum", 0) >= 0, f"{where} admits negative numbers"
        # Structured results are declared, and annotations tell a client what a tool does.
        assert tool.output_schema and tool.output_schema.get("type") == "object", name
        annotations = tool.annotations
        assert annotations is not None and annotations.title, name
        if name in WRITE_TOOLS:
            assert annotations.read_only_hint is False, name
            assert annotations.open_world_hint is True, name
        elif name != "download_media":
            assert annotations.read_only_hint is True, name
            assert annotations.open_world_hint is False, name
    # Destructive: what cannot be taken back once others have seen it.
    sends = {t.name for t in listed if t.annotations and t.annotations.destructive_hint}
    assert sends == {
        "send_message",
        "send_file",
        "send_audio_message",
        "reply_to_message",
        "send_poll",
        "edit_message",
        "delete_message",
    }


async def test_the_status_resource_is_listed_and_readable(server: Server) -> None:
    resources = (await server.session.list_resources()).resources
    # The status, the list of chats, then each chat (tests/python/test_push.py reads those).
    assert [str(r.uri) for r in resources[:2]] == ["whatsapp://status", "whatsapp://chats"]
    assert {str(r.uri) for r in resources[2:]} == {
        f"whatsapp://chat/{jid}" for jid in (ADA, BOB, GROUP)
    }
    assert all(r.mime_type == "application/json" for r in resources)
    read = await server.session.read_resource("whatsapp://status")
    assert len(read.contents) == 1
    content = read.contents[0]
    assert content.mime_type == "application/json"
    report = json.loads(content.text)
    assert report["state"] == "connected"
    assert report["account"]["phone"] == OWN_PHONE
    assert report["sync_status"]["connected"] is True
    status = await server.call("get_sync_status")
    assert report["statistics"]["chat_count"] == status["chat_count"] == 3
    assert report["statistics"]["message_count"] == status["message_count"]


# --- reading --------------------------------------------------------------------------------


async def test_list_chats_returns_the_three_chats_with_names(server: Server) -> None:
    result = await server.call("list_chats")
    assert result["count"] == 3 and result["page"] == 0 and result["limit"] == 20
    chats = {chat["jid"]: chat for chat in result["chats"]}
    assert set(chats) == {ADA, BOB, GROUP}
    assert chats[GROUP]["name"] == "Climbing club" and chats[GROUP]["kind"] == "group"
    assert chats[GROUP]["phone"] is None
    assert chats[ADA]["name"] == "Ada Lovelace" and chats[ADA]["phone"] == ADA_PHONE
    assert chats[BOB]["name"] == "Bob's Bikes" and chats[BOB]["phone"] == BOB_PHONE
    assert chats[ADA]["kind"] == chats[BOB]["kind"] == "direct"
    # Latest activity first, each chat with its latest message.
    times = [parse_time(chat["last_message_at"]) for chat in result["chats"]]
    assert times == sorted(times, reverse=True)
    for chat in result["chats"]:
        assert chat["last_message"]["chat_jid"] == chat["jid"]
        assert chat["last_message"]["timestamp"] == chat["last_message_at"]
    assert chats[GROUP]["last_message"]["id"] == "DEMO-G3"

    by_name = await server.call("list_chats", {"sort_by": "name", "include_last_message": False})
    assert [c["name"] for c in by_name["chats"]] == ["Ada Lovelace", "Bob's Bikes", "Climbing club"]
    assert all(c["last_message"] is None for c in by_name["chats"])

    found = await server.call("list_chats", {"query": "climb"})
    assert [c["jid"] for c in found["chats"]] == [GROUP]
    second_page = await server.call("list_chats", {"limit": 2, "page": 1})
    assert second_page["count"] == 1 and second_page["page"] == 1


async def test_get_chat_by_jid_phone_number_and_lid(server: Server) -> None:
    group = await server.call("get_chat", {"chat_jid": GROUP})
    assert group["name"] == "Climbing club" and group["last_message"]["id"] == "DEMO-G3"
    for address in ("+31 6 1111 1111", ADA, ADA_LID):
        chat = await server.call("get_chat", {"chat_jid": address, "include_last_message": False})
        assert chat["jid"] == ADA, address
        assert chat["name"] == "Ada Lovelace" and chat["last_message"] is None


async def test_search_contacts_finds_ada_with_phone_jid_and_lid(server: Server) -> None:
    result = await server.call("search_contacts", {"query": "ada"})
    assert result["count"] == 1
    (ada,) = result["contacts"]
    assert ada["jid"] == ADA and ada["phone"] == ADA_PHONE and ada["lid"] == ADA_LID
    assert ada["name"] == "Ada Lovelace" and ada["push_name"] == "Ada"
    by_number = await server.call("search_contacts", {"query": "3162222"})
    assert [c["jid"] for c in by_number["contacts"]] == [BOB]
    assert by_number["contacts"][0]["business_name"] == "Bob's Bikes"
    assert (await server.call("search_contacts", {"query": "zebra"}))["count"] == 0


async def test_list_messages_full_text_in_japanese_and_german(server: Server) -> None:
    result = await server.call("list_messages", {"query": "東京"})
    assert ids(result["messages"]) == ["DEMO-A4"]
    (hit,) = result["messages"]
    assert hit["text"] == "明日は東京タワーに行きます"
    assert hit["chat_jid"] == ADA and hit["chat_name"] == "Ada Lovelace"
    assert hit["sender_jid"] == ADA and hit["sender_phone"] == ADA_PHONE
    assert hit["sender_name"] == "Ada Lovelace" and hit["from_me"] is False
    assert hit["timestamp"] == "2026-01-01T00:04:00Z"
    # Context is on by default: one message either side.
    assert ids(hit["context_before"]) == ["DEMO-A3"]
    assert ids(hit["context_after"]) == ["DEMO-A5"]

    # Case and accents are ignored.
    for query in ("MULLER koln", "müller"):
        found = await server.call("list_messages", {"query": query, "include_context": False})
        assert ids(found["messages"]) == ["DEMO-A3"], query
        assert "context_before" not in found["messages"][0]


async def test_our_messages_say_how_far_they_got(server: Server) -> None:
    listed = await server.call(
        "list_messages", {"chat_jid": ADA, "limit": 50, "include_context": False}
    )
    delivery = {m["id"]: m["delivery"] for m in listed["messages"]}
    assert delivery["DEMO-A2"] == "read"
    assert delivery["DEMO-A7"] == "delivered"
    # Ada's own messages carry no delivery status of ours.
    assert delivery["DEMO-A4"] is None


async def test_list_messages_filters_by_chat_sender_time_and_pages(server: Server) -> None:
    in_group = await server.call(
        "list_messages",
        {"chat_jid": GROUP, "sender_phone_number": "+" + BOB_PHONE, "include_context": False},
    )
    assert ids(in_group["messages"]) == ["DEMO-G2"]
    assert in_group["messages"][0]["sender_name"] == "Bob's Bikes"

    window = await server.call(
        "list_messages",
        {
            "chat_jid": ADA,
            "after": "2026-01-01T00:03:30Z",
            "before": "2026-01-01T01:05:30+01:00",
            "include_context": False,
        },
    )
    assert ids(window["messages"]) == ["DEMO-A5", "DEMO-A4"]

    page = await server.call(
        "list_messages", {"chat_jid": BOB, "limit": 5, "page": 1, "include_context": False}
    )
    assert page["count"] == 5 and page["page"] == 1 and page["limit"] == 5
    assert ids(page["messages"]) == [f"DEMO-B{i:02}" for i in range(34, 29, -1)]

    oldest = await server.call(
        "list_messages",
        {"chat_jid": BOB, "before": "2026-01-01T00:11:30Z", "include_context": False},
    )
    by_id = {m["id"]: m for m in oldest["messages"]}
    assert set(by_id) == {"DEMO-B00", "DEMO-B01"}
    assert by_id["DEMO-B00"]["text"].endswith("(edited)") and by_id["DEMO-B00"]["edited_at"]
    assert by_id["DEMO-B01"]["deleted"] is True and by_id["DEMO-B01"]["text"] is None


async def test_get_message_context_in_chat_order(server: Server) -> None:
    context = await server.call(
        "get_message_context", {"message_id": "DEMO-A4", "before": 2, "after": 2}
    )
    assert context["message"]["id"] == "DEMO-A4"
    assert ids(context["before"]) == ["DEMO-A2", "DEMO-A3"]
    assert ids(context["after"]) == ["DEMO-A5", "DEMO-A6"]
    everything = context["before"] + [context["message"]] + context["after"]
    times = [parse_time(m["timestamp"]) for m in everything]
    assert times == sorted(times)
    # The image carries its media description and the reaction to it.
    photo = context["after"][1]
    assert photo["media"]["media_type"] == "image" and photo["media"]["mime_type"] == "image/jpeg"
    assert photo["caption"] == "the view from the tower"
    assert {(r["emoji"], r["sender_phone"]) for r in photo["reactions"]} >= {("😍", OWN_PHONE)}

    first = await server.call(
        "get_message_context", {"message_id": "DEMO-G1", "chat_jid": GROUP, "before": 5, "after": 1}
    )
    assert first["before"] == [] and ids(first["after"]) == ["DEMO-G2"]
    # Ada wrote in the group under her LID before it was linked to her number.
    assert first["message"]["sender_jid"] == ADA
    assert first["message"]["sender_name"] == "Ada Lovelace"


async def test_get_contact_chats_by_phone_and_lid(server: Server) -> None:
    for address in (ADA, ADA_LID, "+" + ADA_PHONE):
        result = await server.call("get_contact_chats", {"jid": address})
        assert {c["jid"] for c in result["chats"]} == {ADA, GROUP}, address
    bob = await server.call("get_contact_chats", {"jid": BOB})
    assert [c["jid"] for c in bob["chats"]] == [GROUP, BOB]


async def test_get_last_interaction_with_bob(server: Server) -> None:
    result = await server.call("get_last_interaction", {"jid": BOB_PHONE})
    assert result["contact"]["jid"] == BOB and result["contact"]["name"] == "Bob's Bikes"
    message = result["message"]
    assert message["id"] == "DEMO-G2" and message["chat_jid"] == GROUP
    assert message["text"] == "Count me in" and message["sender_phone"] == BOB_PHONE
    nobody = await server.call("get_last_interaction", {"jid": "+31699999999"})
    assert nobody == {"contact": None, "message": None}


async def test_get_direct_chat_by_contact(server: Server) -> None:
    chat = await server.call("get_direct_chat_by_contact", {"sender_phone_number": "+31622222222"})
    assert chat["jid"] == BOB and chat["name"] == "Bob's Bikes" and chat["kind"] == "direct"
    assert chat["last_message"]["chat_jid"] == BOB


async def test_list_groups_and_get_group_with_participant_names(server: Server) -> None:
    groups = await server.call("list_groups")
    assert [(g["jid"], g["name"]) for g in groups["chats"]] == [(GROUP, "Climbing club")]
    assert (await server.call("list_groups", {"query": "chess"}))["count"] == 0
    group = await server.call("get_group", {"group_jid": GROUP})
    assert group["group"]["jid"] == GROUP and group["group"]["name"] == "Climbing club"
    assert group["participant_count"] == 3
    members = {p["jid"]: p for p in group["participants"]}
    assert set(members) == {ADA, BOB, f"{OWN_PHONE}@s.whatsapp.net"}
    assert (members[ADA]["name"], members[ADA]["role"], members[ADA]["phone"]) == (
        "Ada Lovelace",
        "superadmin",
        ADA_PHONE,
    )
    assert (members[BOB]["name"], members[BOB]["role"]) == ("Bob's Bikes", "member")
    assert members[f"{OWN_PHONE}@s.whatsapp.net"]["role"] == "admin"


async def test_get_sync_status_reports_a_connected_account(server: Server) -> None:
    status = await server.call("get_sync_status")
    assert status["state"] == "connected"
    assert status["linked"] is True and status["connected"] is True
    assert status["account_phone"] == OWN_PHONE
    assert status["account_jid"].startswith(OWN_PHONE)
    assert status["chat_count"] == 3 and status["contact_count"] == 2
    assert status["message_count"] >= 50
    assert status["history_messages_received"] == 50
    assert status["backend"] == "sqlite" and status["read_only"] is False
    assert status["next_step"] is None and status["error"] is None


async def test_download_media_writes_under_the_media_dir_and_reuses_it(server: Server) -> None:
    first = await server.call("download_media", {"message_id": "DEMO-A6", "chat_jid": ADA})
    path = Path(first["path"])
    assert path.is_absolute()
    assert path.resolve().parent == server.sandbox.media_dir.resolve()
    data = path.read_bytes()
    assert data.startswith(b"\xff\xd8") and len(data) == first["size_bytes"]
    assert first["mime_type"] == "image/jpeg" and first["reused"] is False
    assert (first["chat_jid"], first["message_id"]) == (ADA, "DEMO-A6")
    again = await server.call("download_media", {"message_id": "DEMO-A6", "chat_jid": ADA_LID})
    assert again["reused"] is True and again["path"] == first["path"]
    assert path.read_bytes() == data


# --- acting ---------------------------------------------------------------------------------


async def newest_in(server: Server, chat: str) -> dict:
    result = await server.call(
        "list_messages", {"chat_jid": chat, "limit": 1, "include_context": False}
    )
    return result["messages"][0]


async def test_send_message_is_archived_as_our_own(server: Server) -> None:
    text = f"see you at the wall {uuid.uuid4().hex[:8]}"
    sent = await server.call("send_message", {"recipient": "+31 6 1111 1111", "message": text})
    assert sent["sent"] is True
    message = sent["message"]
    assert message["chat_jid"] == ADA and message["from_me"] is True and message["text"] == text
    assert message["chat_name"] == "Ada Lovelace"
    # The stand-in recipient's phone confirms delivery at once.
    assert message["delivery"] == "delivered"
    assert (await newest_in(server, ADA))["id"] == message["id"]
    found = await server.call(
        "list_messages", {"query": text.split()[-1], "include_context": False}
    )
    assert ids(found["messages"]) == [message["id"]]
    assert found["messages"][0]["from_me"] is True
    chats = await server.call("list_chats")
    assert chats["chats"][0]["jid"] == ADA and chats["count"] == 3


async def test_a_group_message_mentions_people_written_in_its_text(server: Server) -> None:
    text = f"@{BOB_PHONE} and @{ADA_PHONE}, dinner at eight?"
    sent = await server.call(
        "send_message", {"recipient": GROUP, "message": text, "mentions": [BOB, f"+{ADA_PHONE}"]}
    )
    assert sent["message"]["chat_jid"] == GROUP and sent["message"]["text"] == text
    refused = await server.fail(
        "send_message", {"recipient": GROUP, "message": "dinner?", "mentions": [BOB]}
    )
    assert f"write @{BOB_PHONE} where the mention should appear" in refused, refused


async def test_send_message_to_a_lid_goes_to_the_phone_number(server: Server) -> None:
    sent = await server.call("send_message", {"recipient": ADA_LID, "message": "by lid"})
    assert sent["message"]["chat_jid"] == ADA


async def test_send_file_from_the_outbox(server: Server) -> None:
    note = await server.call(
        "send_file", {"recipient": ADA, "media_path": "note.txt", "caption": "the list"}
    )
    media = note["message"]["media"]
    assert media["media_type"] == "document" and media["file_name"] == "note.txt"
    assert media["mime_type"] == "text/plain" and media["size_bytes"] == len(NOTE_BYTES)
    assert note["message"]["caption"] == "the list" and note["message"]["from_me"] is True

    absolute = str(server.sandbox.outbox / "photo.jpg")
    photo = await server.call("send_file", {"recipient": ADA_PHONE, "media_path": absolute})
    assert photo["message"]["media"]["media_type"] == "image"
    assert photo["message"]["media"]["size_bytes"] == len(PHOTO_BYTES)
    assert (await newest_in(server, ADA))["id"] == photo["message"]["id"]


async def test_send_audio_message_sends_a_voice_note(server: Server) -> None:
    sent = await server.call("send_audio_message", {"recipient": ADA, "media_path": "voice.ogg"})
    media = sent["message"]["media"]
    assert media["media_type"] == "voice" and media["size_bytes"] == len(VOICE_BYTES)
    refused = await server.fail("send_audio_message", {"recipient": ADA, "media_path": "note.txt"})
    assert "not an audio file" in refused and "send_file" in refused


async def test_reply_to_message_quotes_it(server: Server) -> None:
    sent = await server.call(
        "reply_to_message", {"chat_jid": ADA, "message_id": "DEMO-A4", "message": "have fun!"}
    )
    message = sent["message"]
    assert message["quoted_id"] == "DEMO-A4" and message["from_me"] is True
    assert message["chat_jid"] == ADA and message["text"] == "have fun!"
    context = await server.call(
        "get_message_context", {"message_id": message["id"], "before": 1, "after": 0}
    )
    assert context["message"]["quoted_id"] == "DEMO-A4"


async def test_send_reaction_shows_on_the_message(server: Server) -> None:
    sent = await server.call(
        "send_reaction", {"chat_jid": ADA, "message_id": "DEMO-A1", "emoji": "👍"}
    )
    assert sent == {"sent": True, "chat_jid": ADA, "message_id": "DEMO-A1", "emoji": "👍"}
    context = await server.call(
        "get_message_context", {"message_id": "DEMO-A1", "before": 0, "after": 0}
    )
    reactions = context["message"]["reactions"]
    assert [(r["emoji"], r["sender_phone"]) for r in reactions] == [("👍", OWN_PHONE)]


async def test_mark_read_clears_the_unread_count(server: Server) -> None:
    before = await server.call("get_chat", {"chat_jid": ADA, "include_last_message": False})
    assert before["unread_count"] == 2, "the demo archive has two unread messages from Ada"
    result = await server.call(
        "mark_read", {"chat_jid": ADA, "message_ids": ["DEMO-A6", "DEMO-A7"]}
    )
    assert result == {"chat_jid": ADA, "message_ids": ["DEMO-A6", "DEMO-A7"]}
    chat = await server.call("get_chat", {"chat_jid": ADA})
    assert chat["unread_count"] == 0


async def test_request_history_is_accepted_and_clamped(server: Server) -> None:
    result = await server.call("request_history", {"chat_jid": GROUP, "count": 5000})
    assert result["requested"] is True and result["chat_jid"] == GROUP
    assert result["count"] == 500
    assert "list_messages" in result["note"]
    default = await server.call("request_history", {"chat_jid": BOB_PHONE})
    assert default["count"] == 50 and default["chat_jid"] == BOB


async def test_own_messages_are_edited_and_deleted_for_everyone(server: Server) -> None:
    sent = await server.call("send_message", {"recipient": ADA, "message": "draft of a note"})
    message_id = sent["message"]["id"]
    edited = await server.call(
        "edit_message", {"chat_jid": ADA, "message_id": message_id, "message": "final note"}
    )
    assert edited["message"]["text"] == "final note"
    assert edited["message"]["edited_at"]
    deleted = await server.call("delete_message", {"chat_jid": ADA, "message_id": message_id})
    assert deleted == {"deleted": True, "chat_jid": ADA, "message_id": message_id}
    newest = await server.call("list_messages", {"chat_jid": ADA, "limit": 1, "include_context": False})
    assert newest["messages"][0]["id"] == message_id and newest["messages"][0]["deleted"] is True
    again = await server.fail("edit_message", {"chat_jid": ADA, "message_id": message_id, "message": "x"})
    assert "already deleted" in again
    # Somebody else's message stays theirs.
    listed = await server.call("list_messages", {"chat_jid": ADA, "limit": 20, "include_context": False})
    theirs = next(m["id"] for m in listed["messages"] if not m["from_me"])
    refused = await server.fail("delete_message", {"chat_jid": ADA, "message_id": theirs})
    assert "someone else" in refused
