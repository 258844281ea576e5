"""Push, with the official Python SDK over every transport: the chat resources
(`whatsapp://chats`, `whatsapp://chat/{jid}`) read back, `resources/subscribe` answered by
`notifications/resources/updated` when a message arrives in a watched chat, `list_changed` when
a new chat appears, unsubscribe heard, bad URIs refused, and the stdio relay still delivering
after the service restarted under it.

Messages "arrive" through the fake engine's inbox (`WHATSAPP_MCP_FAKE_INBOX`): a JSON file
dropped there goes through the same ingest path as a message the real client decrypted.
The delays are printed; a test fails only when an update takes longer than `PUSH_LIMIT`.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated

from conftest import ADA, BOB, BOB_PHONE, TRANSPORTS, Daemon, Sandbox, connect, deliver

pytestmark = [
    pytest.mark.anyio,
    # `resources/subscribe` is what clients of the handshake-era protocols use; the SDK marks it
    # deprecated in favour of `subscriptions/listen`, tested here as well.
    pytest.mark.filterwarnings("ignore:resources/subscribe is removed"),
    pytest.mark.filterwarnings("ignore:resources/unsubscribe is removed"),
]

ADA_URI = f"whatsapp://chat/{ADA}"
BOB_URI = f"whatsapp://chat/+{BOB_PHONE}"
CHATS_URI = "whatsapp://chats"
NEW_CONTACT = "31633333333@s.whatsapp.net"
# Generous: an update normally follows the message within a poll of the inbox (50 ms).
PUSH_LIMIT = 10.0


class Heard:
    """The notifications a session received, in order, with a way to wait for one."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str | None]] = []
        self._changed = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, Exception):
            return
        notification = getattr(message, "root", message)
        method = getattr(notification, "method", None)
        if method not in (
            "notifications/resources/updated",
            "notifications/resources/list_changed",
        ):
            return
        params = getattr(notification, "params", None)
        self.events.append((method, getattr(params, "uri", None)))
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, method: str, uri: str | None = None, since: int = 0) -> float:
        """Waits for `method` (about `uri`) after the first `since` events; returns the delay."""
        started = time.monotonic()
        with anyio.fail_after(PUSH_LIMIT):
            while True:
                if any(
                    m == method and (uri is None or u == uri) for m, u in self.events[since:]
                ):
                    return time.monotonic() - started
                await self._changed.wait()


def arrive(sandbox: Sandbox, chat: str, text: str) -> str:
    """A message from the contact `chat`; returns its id."""
    message_id = f"PUSH-{uuid.uuid4().hex[:12].upper()}"
    deliver(sandbox, {"chat": chat, "text": text, "id": message_id})
    return message_id


def sandbox_with_inbox(root: Path) -> Sandbox:
    inbox = root / "inbox"
    inbox.mkdir(parents=True)
    return Sandbox(root, seed="demo", WHATSAPP_MCP_FAKE_INBOX=str(inbox))


def resource_json(read: Any) -> Any:
    [contents] = read.contents
    assert contents.mime_type == "application/json"
    return json.loads(contents.text)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_subscribed_chat_is_pushed_when_a_message_arrives(
    transport: str, tmp_path: Path
) -> None:
    sandbox = sandbox_with_inbox(tmp_path)
    daemon = None if transport == "stdio-standalone" else Daemon(sandbox).start()
    heard = Heard()
    try:
        async with connect(transport, sandbox, daemon, message_handler=heard) as session:
            init_caps = session.server_capabilities
            assert init_caps is not None and init_caps.resources is not None
            assert init_caps.resources.subscribe and init_caps.resources.list_changed

            listed = await session.list_resources()
            uris = {str(resource.uri) for resource in listed.resources}
            assert {CHATS_URI, ADA_URI, f"whatsapp://chat/{BOB}"} <= uris, uris
            templates = await session.list_resource_templates()
            assert "whatsapp://chat/{chat_jid}" in {
                t.uri_template for t in templates.resource_templates
            }

            chats = resource_json(await session.read_resource(CHATS_URI))
            assert ADA in {chat["jid"] for chat in chats["chats"]}
            ada = resource_json(await session.read_resource(ADA_URI))
            assert ada["chat"]["jid"] == ADA
            assert "DEMO-A7" in {message["id"] for message in ada["messages"]}

            await session.subscribe_resource(ADA_URI)
            text = f"are you there? {transport}"
            message_id = arrive(sandbox, ADA, text)
            delay = await heard.wait_for("notifications/resources/updated", ADA_URI)
            print(f"{transport}: resources/updated {delay * 1000:.0f} ms after the message")
            ada = resource_json(await session.read_resource(ADA_URI))
            assert ada["messages"][0]["id"] == message_id
            assert ada["messages"][0]["text"] == text

            # A chat nobody watches says nothing: Bob's message comes first, then Ada's, and
            # only Ada's chat is told of.
            since = len(heard.events)
            arrive(sandbox, BOB, "the bikes are ready")
            arrive(sandbox, ADA, "see you at eight")
            await heard.wait_for("notifications/resources/updated", ADA_URI, since)
            assert set(_uris(heard, since)) == {ADA_URI}

            # A new chat: the session that listed the resources hears that the list changed.
            since = len(heard.events)
            arrive(sandbox, NEW_CONTACT, "hello, new here")
            delay = await heard.wait_for("notifications/resources/list_changed", since=since)
            print(f"{transport}: resources/list_changed {delay * 1000:.0f} ms after a new chat")
            listed = await session.list_resources()
            assert f"whatsapp://chat/{NEW_CONTACT}" in {str(r.uri) for r in listed.resources}

            # Unsubscribed from Ada, subscribed to Bob by phone number: Ada's next message is
            # not told of, Bob's is, under the URI the client used.
            await session.unsubscribe_resource(ADA_URI)
            await session.subscribe_resource(BOB_URI)
            since = len(heard.events)
            arrive(sandbox, ADA, "still there?")
            arrive(sandbox, BOB, "ride at nine")
            await heard.wait_for("notifications/resources/updated", BOB_URI, since)
            assert set(_uris(heard, since)) == {BOB_URI}

            # The list of chats is a resource to watch as well.
            await session.subscribe_resource(CHATS_URI)
            since = len(heard.events)
            arrive(sandbox, ADA, "one more")
            await heard.wait_for("notifications/resources/updated", CHATS_URI, since)
    finally:
        if daemon is not None:
            daemon.stop()


def _uris(heard: Heard, since: int) -> list[str]:
    return [uri for method, uri in heard.events[since:] if method.endswith("updated") and uri]


@pytest.mark.parametrize(
    "uri", ["whatsapp://chat/not-a-number", "whatsapp://chat/", "whatsapp://nothing-here"]
)
@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_a_bad_uri_is_refused_clearly(transport: str, uri: str, tmp_path: Path) -> None:
    sandbox = sandbox_with_inbox(tmp_path)
    daemon = Daemon(sandbox).start()
    try:
        async with connect(transport, sandbox, daemon) as session:
            with pytest.raises(MCPError) as caught:
                await session.subscribe_resource(uri)
            assert uri in str(caught.value), caught.value
            with pytest.raises(MCPError) as caught:
                await session.read_resource(uri)
            assert uri in str(caught.value), caught.value
            # The session is still good.
            await session.subscribe_resource(ADA_URI)
    finally:
        daemon.stop()


async def test_a_chat_not_archived_yet_can_be_watched(tmp_path: Path) -> None:
    sandbox = sandbox_with_inbox(tmp_path)
    daemon = Daemon(sandbox).start()
    heard = Heard()
    uri = f"whatsapp://chat/{NEW_CONTACT}"
    try:
        async with connect("http", sandbox, daemon, message_handler=heard) as session:
            with pytest.raises(MCPError) as caught:
                await session.read_resource(uri)
            assert NEW_CONTACT in str(caught.value), caught.value
            await session.subscribe_resource(uri)
            arrive(sandbox, NEW_CONTACT, "first message")
            await heard.wait_for("notifications/resources/updated", uri)
            chat = resource_json(await session.read_resource(uri))
            assert [m["text"] for m in chat["messages"]] == ["first message"]
    finally:
        daemon.stop()


async def test_the_relay_keeps_its_subscriptions_across_a_service_restart(
    tmp_path: Path,
) -> None:
    sandbox = sandbox_with_inbox(tmp_path)
    daemon = Daemon(sandbox).start()
    heard = Heard()
    try:
        async with connect("stdio", sandbox, daemon, message_handler=heard) as session:
            await session.subscribe_resource(ADA_URI)
            arrive(sandbox, ADA, "before the restart")
            await heard.wait_for("notifications/resources/updated", ADA_URI)

            daemon.stop()
            restarted = time.monotonic()
            daemon.start()
            # The relay notices the new service on its own (its GET stream broke); until it
            # has subscribed again in a new session, a message may go untold, so messages keep
            # arriving until one is heard.
            since = len(heard.events)
            with anyio.fail_after(PUSH_LIMIT * 2):
                while not _uris(heard, since):
                    arrive(sandbox, ADA, "after the restart")
                    with anyio.move_on_after(1.0):
                        await heard.wait_for("notifications/resources/updated", ADA_URI, since)
            print(f"relay: told again {time.monotonic() - restarted:.2f} s after the restart")
            assert set(_uris(heard, since)) == {ADA_URI}
            # And the client's own calls go on in the renewed session.
            ada = resource_json(await session.read_resource(ADA_URI))
            assert ada["messages"][0]["text"] == "after the restart"
    finally:
        daemon.stop()


async def test_a_modern_client_listens_for_its_chats(tmp_path: Path) -> None:
    """Protocol 2026-07-28: no subscribe, one `subscriptions/listen` stream with its filter."""
    sandbox = sandbox_with_inbox(tmp_path)
    daemon = Daemon(sandbox).start()
    try:
        async with Client(f"{daemon.mcp_base}/mcp", read_timeout_seconds=30) as client:
            assert client.session.protocol_version >= "2026-07-28", client.session.protocol_version
            async with client.listen(
                resources_list_changed=True,
                resource_subscriptions=[ADA_URI, "whatsapp://not-ours"],
            ) as subscription:
                # What it cannot watch is left out of what the server honours.
                assert list(subscription.honored.resource_subscriptions or []) == [ADA_URI]
                started = time.monotonic()
                arrive(sandbox, BOB, "not watched")
                arrive(sandbox, ADA, "watched")
                events = []
                with anyio.fail_after(PUSH_LIMIT):
                    async for event in subscription:
                        events.append(event)
                        if isinstance(event, ResourceUpdated):
                            break
                print(f"listen: resources/updated {(time.monotonic() - started) * 1000:.0f} ms")
                assert events == [ResourceUpdated(uri=ADA_URI)]
                arrive(sandbox, NEW_CONTACT, "a new chat")
                with anyio.fail_after(PUSH_LIMIT):
                    event = await subscription.__anext__()
                assert isinstance(event, ResourcesListChanged), event
    finally:
        daemon.stop()
