"""What only HTTP clients can get wrong: bodies that are not JSON-RPC, bodies over the limit,
foreign origins and host names, unknown SSE sessions, and the bearer token for other machines.
Raw requests go out with the SDK's HTTP client (httpx2); an MCP session opened with the SDK
beforehand must keep working after each of them.
"""

from __future__ import annotations

import json
import socket

import anyio
import httpx2
import pytest

from mcp.shared.exceptions import MCPError

from conftest import Daemon, Sandbox, Server, connect

pytestmark = pytest.mark.anyio

LIMIT = 1024 * 1024
TOKEN = "python-test-token-0123456789"
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
).encode()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    daemon = Daemon(Sandbox(tmp_path_factory.mktemp("http"))).start()
    yield daemon
    daemon.stop()


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def rpc_error(self) -> dict:
        """The JSON-RPC error object of the body, which must be a JSON-RPC error response."""
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        payload = json.loads(self.body)
        assert payload["jsonrpc"] == "2.0" and payload["id"] is None, payload
        assert isinstance(payload["error"]["code"], int), payload
        assert payload["error"]["message"], payload
        return payload["error"]

    def __repr__(self) -> str:
        return f"HTTP {self.status} {self.body[:300]!r}"


async def raw(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Answer:
    """One request with the SDK's own HTTP client; an event stream is read only as far as its
    first chunk."""
    merged = JSON_HEADERS | (headers or {}) if method == "POST" else headers or {}
    async with httpx2.AsyncClient(timeout=15) as client:
        async with client.stream(method, url, content=body, headers=merged) as response:
            if "event-stream" in response.headers.get("content-type", ""):
                data = b""
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if b"\n\n" in data:
                        break
            else:
                data = await response.aread()
            return Answer(response.status_code, dict(response.headers), data)


async def working(server: Server) -> None:
    assert (await server.call("list_groups"))["count"] == 1


# --- Streamable HTTP -----------------------------------------------------------------------


async def test_streamable_http_refuses_bodies_that_are_not_json_rpc(daemon: Daemon) -> None:
    ids: list[str] = []
    async with connect("http", daemon.sandbox, daemon, session_ids=ids) as session:
        server = Server("http", daemon.sandbox, daemon)
        server.session = session
        await working(server)
        assert len(ids) == 1
        live = {"Mcp-Session-Id": ids[0], "MCP-Protocol-Version": session.protocol_version}
        for headers in ({}, live):
            for body in (b'{"jsonrpc": "2.0", "id": 7,', b"\xff\xfe not utf-8", b"plain words"):
                answer = await raw("POST", f"{daemon.mcp_base}/mcp", body, headers)
                assert answer.status == 400, answer
                error = answer.rpc_error()
                assert error["code"] == -32700 and "parse error" in error["message"], error
            for body in (b'{"hello": "world"}', b"[1, 2, 3]", b'"tools/list"', b"{}"):
                answer = await raw("POST", f"{daemon.mcp_base}/mcp", body, headers)
                assert answer.status == 400, answer
                assert "JSON-RPC" in answer.rpc_error()["message"], answer
            await working(server)
        # A real request without a session id is told what is missing.
        answer = await raw(
            "POST", f"{daemon.mcp_base}/mcp", b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
        )
        assert answer.status == 400 and b"Session" in answer.body, answer
        stale = {"Mcp-Session-Id": "no-such-session"}
        answer = await raw(
            "POST", f"{daemon.mcp_base}/mcp", b'{"jsonrpc":"2.0","id":3,"method":"ping"}', stale
        )
        assert answer.status == 404, answer
        await working(server)


async def test_oversized_bodies_are_refused_on_both_http_transports(daemon: Daemon) -> None:
    http_ids: list[str] = []
    sse_ids: list[str] = []
    async with (
        connect("http", daemon.sandbox, daemon, session_ids=http_ids) as http_session,
        connect("sse", daemon.sandbox, daemon, session_ids=sse_ids) as sse_session,
    ):
        big_call = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 9,
                "method": "tools/call",
                "params": {
                    "name": "send_message",
                    "arguments": {"recipient": "31611111111", "message": "x" * LIMIT},
                },
            }
        ).encode()
        targets = [
            (f"{daemon.mcp_base}/mcp", {"Mcp-Session-Id": http_ids[0]}),
            (f"{daemon.mcp_base}/messages?sessionId={sse_ids[0]}", {}),
        ]
        for url, headers in targets:
            for body in (big_call, b" " * (LIMIT + 1)):
                answer = await raw("POST", url, body, headers)
                assert answer.status == 413, answer
                assert "too large" in answer.rpc_error()["message"]
        for transport, session in (("http", http_session), ("sse", sse_session)):
            server = Server(transport, daemon.sandbox, daemon)
            server.session = session
            await working(server)
            newest = await server.call(
                "list_messages", {"chat_jid": "31611111111", "limit": 1, "include_context": False}
            )
            assert newest["messages"][0]["text"] != "x" * LIMIT
        # Just under the limit is still accepted.
        padded = INITIALIZE[:-1] + b" " * (LIMIT - len(INITIALIZE)) + b"}"
        assert len(padded) == LIMIT
        answer = await raw("POST", f"{daemon.mcp_base}/mcp", padded)
        assert answer.status == 200, answer


# --- legacy SSE ----------------------------------------------------------------------------


async def test_sse_messages_with_bad_bodies_or_sessions_are_refused(daemon: Daemon) -> None:
    ids: list[str] = []
    async with connect("sse", daemon.sandbox, daemon, session_ids=ids) as session:
        server = Server("sse", daemon.sandbox, daemon)
        server.session = session
        await working(server)
        assert len(ids) == 1
        url = f"{daemon.mcp_base}/messages?sessionId={ids[0]}"
        for body in (b"{not json", b'{"hello": "world"}', b"[]"):
            answer = await raw("POST", url, body)
            assert answer.status == 400, answer
            error = answer.rpc_error()
            assert error["code"] == -32700 and "JSON-RPC" in error["message"], error
        await working(server)
        answer = await raw("POST", f"{daemon.mcp_base}/messages", INITIALIZE)
        assert answer.status == 400 and "sessionId" in answer.rpc_error()["message"], answer
        answer = await raw("POST", f"{daemon.mcp_base}/messages?sessionId=feedface", INITIALIZE)
        assert answer.status == 404 and "GET /sse" in answer.rpc_error()["message"], answer
        await working(server)


async def test_sse_sessions_end_when_the_client_goes_away(daemon: Daemon) -> None:
    ids: list[str] = []
    async with connect("sse", daemon.sandbox, daemon, session_ids=ids) as session:
        await session.send_ping()
    url = f"{daemon.mcp_base}/messages?sessionId={ids[0]}"
    ping = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
    with anyio.fail_after(10):
        while (answer := await raw("POST", url, ping)).status == 202:
            await anyio.sleep(0.05)
    assert answer.status == 404, answer


# --- DNS rebinding --------------------------------------------------------------------------


async def test_foreign_origins_and_hosts_are_refused(daemon: Daemon) -> None:
    ids: list[str] = []
    async with connect("sse", daemon.sandbox, daemon, session_ids=ids) as session:
        server = Server("sse", daemon.sandbox, daemon)
        server.session = session
        foreign = {"Origin": "https://evil.example"}
        for method, path, body in (
            ("POST", "/mcp", INITIALIZE),
            ("GET", "/sse", None),
            ("POST", f"/messages?sessionId={ids[0]}", b'{"jsonrpc":"2.0","id":1,"method":"ping"}'),
        ):
            answer = await raw(method, daemon.mcp_base + path, body, foreign)
            assert answer.status == 403, (path, answer)
            message = answer.rpc_error()["message"]
            assert "evil.example" in message and "allowed_origins" in message, message
            rebound = await raw(method, daemon.mcp_base + path, body, {"Host": "evil.example:80"})
            assert rebound.status == 403, (path, rebound)
            assert "localhost" in rebound.rpc_error()["message"]
        await working(server)
    # The server's own origin is fine.
    answer = await raw("POST", f"{daemon.mcp_base}/mcp", INITIALIZE, {"Origin": daemon.mcp_base})
    assert answer.status == 200, answer


# --- the token ------------------------------------------------------------------------------


def routable_address() -> str | None:
    """An IPv4 address of this machine other than loopback, if it has one."""
    for probe in ("192.0.2.254", "10.255.255.254", "172.31.255.254", "192.168.255.254"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect((probe, 9))
            except OSError:
                continue
            address = sock.getsockname()[0]
        if not address.startswith("127.") and address != "0.0.0.0":
            return address
    return None


@pytest.fixture(scope="module")
def remote_daemon(tmp_path_factory: pytest.TempPathFactory):
    address = routable_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to test remote peers with")
    sandbox = Sandbox(tmp_path_factory.mktemp("remote"), WHATSAPP_MCP_TOKEN=TOKEN)
    daemon = Daemon(sandbox, host=address).start()
    yield daemon
    daemon.stop()


async def test_remote_peers_need_the_token(remote_daemon: Daemon) -> None:
    daemon = remote_daemon
    for headers in ({}, {"Authorization": "Bearer not-the-token-at-all"}, {"Authorization": TOKEN}):
        for method, path, body in (("POST", "/mcp", INITIALIZE), ("GET", "/sse", None)):
            answer = await raw(method, daemon.mcp_base + path, body, headers)
            assert answer.status == 401, (headers, path, answer)
            assert answer.headers.get("www-authenticate", "").startswith("Bearer")
            assert b"Authorization: Bearer" in answer.body
            assert TOKEN.encode() not in answer.body
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for transport in ("http", "sse", "stdio"):
        # The stdio relay takes the token from the environment (WHATSAPP_MCP_TOKEN).
        headers = None if transport == "stdio" else bearer
        async with connect(transport, daemon.sandbox, daemon, headers=headers) as session:
            server = Server(transport, daemon.sandbox, daemon)
            server.session = session
            await working(server)


@pytest.mark.parametrize("token", [None, "not-the-token-at-all-0123"])
async def test_the_relay_without_the_right_token_says_so(
    remote_daemon: Daemon, token: str | None
) -> None:
    daemon = remote_daemon
    log = daemon.sandbox.stderr_path("stdio")
    log.unlink(missing_ok=True)
    with pytest.RaisesGroup(
        pytest.RaisesExc(MCPError, match="Connection closed"), flatten_subgroups=True
    ):
        with anyio.fail_after(20):
            async with connect(
                "stdio", daemon.sandbox, daemon, stdio_env={"WHATSAPP_MCP_TOKEN": token}
            ):
                pass
    text = log.read_text()
    assert "refused this client" in text and "401" in text, text
    assert ("wrong" if token else "no token") in text, text
    assert "WHATSAPP_MCP_TOKEN" in text and "Is it running?" not in text, text
    if token:
        assert token not in text


# Beyond four times the limit the server stops reading and hangs up; the relay must still
# say what is wrong.
@pytest.mark.parametrize(
    ("transport", "size"), [("http", LIMIT + 1), ("stdio", LIMIT + 1), ("stdio", 6 * LIMIT)]
)
async def test_oversized_tool_calls_get_the_limit_in_the_answer(
    daemon: Daemon, transport: str, size: int
) -> None:
    message = "x" * size
    async with connect(transport, daemon.sandbox, daemon) as session:
        server = Server(transport, daemon.sandbox, daemon)
        server.session = session
        # Repeated: a body the server does not read can reset the connection before the
        # answer arrives, which a client could only report as a broken connection.
        for _ in range(3):
            error = await server.rpc_error(
                "send_message", {"recipient": "31611111111", "message": message}
            )
            assert "too large" in error.message and str(LIMIT) in error.message, error.message
        await working(server)


async def test_many_sessions_at_once(daemon: Daemon) -> None:
    finished: list[str] = []

    async def client(transport: str) -> None:
        async with connect(transport, daemon.sandbox, daemon) as session:
            server = Server(transport, daemon.sandbox, daemon)
            server.session = session
            for query, jid in (("ada", "31611111111@s.whatsapp.net"), ("bob", None)):
                found = await server.call("search_contacts", {"query": query})
                assert found["count"] == 1
                if jid:
                    assert found["contacts"][0]["jid"] == jid
            await working(server)
        finished.append(transport)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(client, "sse")
                group.start_soon(client, "http")
    assert sorted(finished) == ["http"] * 10 + ["sse"] * 10


async def test_a_closed_streamable_http_session_is_gone(daemon: Daemon) -> None:
    ids: list[str] = []
    async with connect("http", daemon.sandbox, daemon, session_ids=ids) as session:
        await session.send_ping()
    ping = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
    answer = await raw("POST", f"{daemon.mcp_base}/mcp", ping, {"Mcp-Session-Id": ids[0]})
    assert answer.status == 404, answer
