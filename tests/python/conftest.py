"""Shared fixtures: the real `whatsapp-mcp` binary (built with the `fake-engine` feature) in a
throwaway sandbox, and MCP client sessions over every transport, made with the official Python
SDK.

A sandbox is a data directory with an empty config file, an outbox holding small test files,
a file outside the outbox and a symlink in the outbox pointing at it. `Daemon` runs `serve` in
a sandbox on free loopback ports; `connect` opens an initialised `ClientSession` to it over
`stdio` (the relay to the daemon), `stdio --standalone` (its own process on the sandbox), legacy
SSE or Streamable HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("WHATSAPP_MCP_BIN", ROOT / "target" / "debug" / "whatsapp-mcp"))

# The demo archive of the fake engine (src/engine/fake.rs, `seed_demo`).
ADA = "31611111111@s.whatsapp.net"
ADA_PHONE = "31611111111"
ADA_LID = "123456789012345@lid"
BOB = "31622222222@s.whatsapp.net"
BOB_PHONE = "31622222222"
GROUP = "120363000000000001@g.us"
OWN_PHONE = "31600000000"

TRANSPORTS = ["stdio", "stdio-standalone", "sse", "http"]

ALL_TOOLS = {
    "search_contacts",
    "list_messages",
    "list_chats",
    "get_chat",
    "get_direct_chat_by_contact",
    "get_contact_chats",
    "get_last_interaction",
    "get_message_context",
    "send_message",
    "send_file",
    "send_audio_message",
    "download_media",
    "get_sync_status",
    "send_reaction",
    "mark_read",
    "reply_to_message",
    "list_groups",
    "get_group",
    "request_history",
    "edit_message",
    "delete_message",
    "send_poll",
    "get_poll_results",
}
# The tools that act on WhatsApp: read-only mode leaves them out and they need whatsapp:send.
WRITE_TOOLS = {
    "send_message",
    "send_file",
    "send_audio_message",
    "reply_to_message",
    "send_reaction",
    "mark_read",
    "request_history",
    "edit_message",
    "delete_message",
    "send_poll",
}

NOTE_BYTES = b"shopping list: rope, chalk, tape\n"
PHOTO_BYTES = b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9"
VOICE_BYTES = b"OggS\x00\x02 not really opus"
# Where tests/run.sh wants the servers' logs, to scan them for secrets at the end.
LOG_DIR = os.environ.get("WHATSAPP_MCP_TEST_LOG_DIR")
SECRET_BYTES = b"outside the outbox; must never be sent\n"

STARTUP_TIMEOUT = 30.0
CALL_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def _binary_exists() -> None:
    if not BINARY.is_file():
        pytest.exit(
            f"{BINARY} is missing: build it with `cargo build --features fake-engine` first",
            returncode=3,
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


NPM_DIR = ROOT / "target" / "npm-clients"


def npm_install(spec: str) -> Path:
    """target/npm-clients with the npm package `spec` (NAME@VERSION) in its node_modules,
    installed from the registry when it is not there yet at that version."""
    for tool in ("node", "npm", "npx"):
        assert shutil.which(tool), f"{tool} is not installed (tests/run.sh installs Node.js)"
    name, version = spec.rsplit("@", 1)
    installed = NPM_DIR / "node_modules" / name / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != version:
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund", spec],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=600,
        )
    return NPM_DIR


class Sandbox:
    """A data directory, config, outbox and environment for one server."""

    def __init__(self, root: Path, seed: str | None = "demo", **extra_env: str) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.outbox = root / "outbox"
        self.media_dir = self.data_dir / "media"
        self.data_dir.mkdir(parents=True)
        self.outbox.mkdir()
        self.config = root / "config.toml"
        self.config.write_text("# test: defaults only\n")
        (self.outbox / "note.txt").write_bytes(NOTE_BYTES)
        (self.outbox / "photo.jpg").write_bytes(PHOTO_BYTES)
        (self.outbox / "voice.ogg").write_bytes(VOICE_BYTES)
        self.secret = root / "secret.txt"
        self.secret.write_bytes(SECRET_BYTES)
        (self.outbox / "escape.txt").symlink_to(self.secret)
        env = {
            "WHATSAPP_MCP_CONFIG": str(self.config),
            "WHATSAPP_MCP_DATA_DIR": str(self.data_dir),
            "WHATSAPP_MCP_OUTBOX_DIR": str(self.outbox),
            "WHATSAPP_MCP_LOG_TARGET": "stderr",
            # tests/run.sh collects every log at debug level and scans them for secrets.
            "WHATSAPP_MCP_LOG": "debug" if LOG_DIR else "info",
            "WHATSAPP_MCP_ENGINE": "fake",
        }
        if seed is not None:
            env["WHATSAPP_MCP_FAKE_SEED"] = seed
        env.update(extra_env)
        self.env = env

    def stderr_path(self, name: str) -> Path:
        if LOG_DIR:
            Path(LOG_DIR).mkdir(parents=True, exist_ok=True)
            return Path(LOG_DIR) / f"python-{self.root.name}-{name}.stderr"
        return self.root / f"{name}.stderr"


_INBOX_SEQUENCE = iter(range(1, 1 << 62))


def deliver(sandbox: Sandbox, body: dict[str, Any]) -> None:
    """Drops one incoming message (or poll, or vote) into the fake engine's inbox
    (`WHATSAPP_MCP_FAKE_INBOX`), which takes it through the real ingest path. Files are taken
    in name order, so what is delivered first arrives first."""
    inbox = Path(sandbox.env["WHATSAPP_MCP_FAKE_INBOX"])
    name = f"{time.time_ns():020d}-{next(_INBOX_SEQUENCE):06d}"
    partial = inbox / f"{name}.part"
    partial.write_text(json.dumps(body))
    partial.rename(inbox / f"{name}.json")


def _clean_environ() -> dict[str, str]:
    """The test runner's environment without anything that would steer the binary."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WHATSAPP_", "LISTEN_", "NOTIFY_", "JOURNAL_"))
        and k not in {"DATABASE_URL", "PORT", "MCP_PORT", "MCP_TRANSPORT"}
    }


class Daemon:
    """`whatsapp-mcp serve` in a sandbox, bound to free loopback ports (or `host`)."""

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1") -> None:
        self.sandbox = sandbox
        self.host = host
        self.bridge_port = free_port()
        self.mcp_port = free_port()
        self.stderr = sandbox.stderr_path("serve")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def mcp_base(self) -> str:
        return f"http://{self.host}:{self.mcp_port}"

    @property
    def bridge_url(self) -> str:
        return f"http://{self.host}:{self.bridge_port}"

    def start(self) -> "Daemon":
        env = _clean_environ() | self.sandbox.env
        env["WHATSAPP_MCP_BRIDGE_LISTEN"] = f"{self.host}:{self.bridge_port}"
        env["WHATSAPP_MCP_LISTEN"] = f"{self.host}:{self.mcp_port}"
        with open(self.stderr, "wb") as errors:
            self.process = subprocess.Popen(
                [str(BINARY), "serve"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        for url in (f"{self.bridge_url}/health", f"{self.mcp_base}/health"):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"whatsapp-mcp serve exited with {self.process.returncode}:\n{self.log()}"
                    )
                try:
                    with urllib.request.urlopen(url, timeout=1) as response:
                        if response.status == 200:
                            break
                except urllib.error.HTTPError:
                    break  # it answers (401 for a remote peer without the token)
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not answer in time:\n{self.log()}")
                time.sleep(0.05)
        return self

    def log(self) -> str:
        try:
            return self.stderr.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, then checks the service stopped cleanly and printed nothing on stdout."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            stdout, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise AssertionError(f"whatsapp-mcp serve ignored SIGTERM:\n{self.log()}") from None
        assert process.returncode == 0, f"serve exited with {process.returncode}:\n{self.log()}"
        assert stdout == b"", f"serve wrote to stdout: {stdout[:200]!r}"


@asynccontextmanager
async def connect(
    transport: str,
    sandbox: Sandbox,
    daemon: Daemon | None = None,
    headers: dict[str, str] | None = None,
    session_ids: list[str] | None = None,
    stdio_env: dict[str, str | None] | None = None,
    elicitation: Any = None,
    message_handler: Any = None,
) -> AsyncIterator[ClientSession]:
    """An initialised MCP session over `transport` to `daemon` (or, for `stdio-standalone`, to
    a process of its own serving `sandbox`). Over HTTP, `headers` go with every request and
    the session id the server assigns is appended to `session_ids`. `stdio_env` changes the
    environment of a stdio process (`None` removes a variable). `elicitation`, when given, is
    the session's elicitation callback, and the client then declares that it can ask.
    `message_handler` receives the notifications the server sends on its own."""
    ids = session_ids if session_ids is not None else []
    if transport == "http":
        assert daemon is not None

        async def note_session(response: httpx2.Response) -> None:
            session = response.headers.get("mcp-session-id")
            if session and session not in ids:
                ids.append(session)

        async with httpx2.AsyncClient(
            headers=headers or {},
            timeout=httpx2.Timeout(CALL_TIMEOUT),
            event_hooks={"response": [note_session]},
        ) as http:
            async with streamable_http_client(f"{daemon.mcp_base}/mcp", http_client=http) as (
                read,
                write,
            ):
                async with _session(read, write, elicitation, message_handler) as session:
                    yield session
    elif transport == "sse":
        assert daemon is not None
        async with sse_client(
            f"{daemon.mcp_base}/sse",
            headers=headers,
            timeout=CALL_TIMEOUT,
            on_session_created=ids.append,
        ) as (read, write):
            async with _session(read, write, elicitation, message_handler) as session:
                yield session
    elif transport in ("stdio", "stdio-standalone"):
        env = dict(sandbox.env)
        for name, value in (stdio_env or {}).items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        if transport == "stdio":
            assert daemon is not None
            args = ["stdio"]
            env["WHATSAPP_BRIDGE_URL"] = daemon.bridge_url
        else:
            args = ["stdio", "--standalone"]
        params = StdioServerParameters(command=str(BINARY), args=args, env=env)
        with open(sandbox.stderr_path(transport), "a") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with _session(read, write, elicitation, message_handler) as session:
                    yield session
    else:
        raise ValueError(f"unknown transport {transport}")


@asynccontextmanager
async def _session(
    read: Any, write: Any, elicitation: Any = None, message_handler: Any = None
) -> AsyncIterator[ClientSession]:
    async with ClientSession(
        read,
        write,
        read_timeout_seconds=CALL_TIMEOUT,
        elicitation_callback=elicitation,
        message_handler=message_handler,
    ) as session:
        await session.initialize()
        yield session


class Server:
    """One server under test, reachable over one transport, with its session open."""

    def __init__(self, transport: str, sandbox: Sandbox, daemon: Daemon | None) -> None:
        self.transport = transport
        self.sandbox = sandbox
        self.daemon = daemon
        self.session: ClientSession | None = None

    async def call(self, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """Calls a tool that must succeed; returns its structured result."""
        assert self.session is not None
        result = await self.session.call_tool(tool, arguments or {})
        text = " ".join(getattr(block, "text", "") for block in result.content)
        assert not result.is_error, f"{tool}({arguments}) failed: {text}"
        assert isinstance(result.structured_content, dict), f"{tool}: no structured result"
        # The text block carries the same JSON, for clients that ignore structuredContent.
        assert json.loads(text) == result.structured_content
        return result.structured_content

    async def fail(self, tool: str, arguments: dict[str, Any] | None = None) -> str:
        """Calls a tool that must fail with a tool error (`isError`, which the model reads);
        returns the error text."""
        assert self.session is not None
        result = await self.session.call_tool(tool, arguments or {})
        assert result.is_error, f"{tool}({arguments}) was expected to fail: {result}"
        assert result.structured_content is None
        return " ".join(getattr(block, "text", "") for block in result.content)

    async def rpc_error(self, tool: str, arguments: dict[str, Any] | None = None) -> MCPError:
        """Calls a tool that must be refused with a JSON-RPC error; returns it."""
        assert self.session is not None
        with pytest.raises(MCPError) as caught:
            await self.session.call_tool(tool, arguments or {})
        return caught.value


def start_server(transport: str, root: Path, seed: str | None = "demo", **env: str):
    """Sandbox and, for every transport but `stdio-standalone`, a running daemon."""
    sandbox = Sandbox(root, seed=seed, **env)
    daemon = None if transport == "stdio-standalone" else Daemon(sandbox).start()
    return sandbox, daemon


@asynccontextmanager
async def serving(
    transport: str, root: Path, seed: str | None = "demo", elicitation: Any = None, **env: str
):
    """A `Server` with an open session over `transport` (with `elicitation` as the session's
    elicitation callback, when given); stops everything afterwards."""
    sandbox, daemon = start_server(transport, root, seed=seed, **env)
    try:
        server = Server(transport, sandbox, daemon)
        async with connect(transport, sandbox, daemon, elicitation=elicitation) as session:
            server.session = session
            yield server
    finally:
        if daemon is not None:
            daemon.stop()
