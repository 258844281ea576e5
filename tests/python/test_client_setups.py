"""README's client configurations, run as written: each JSON block marked `<!-- tested: … -->`
is read out of README.md, its placeholders (HOST:3000, TOKEN) replaced by a running service's
address and token, and used the way a client uses it: the HTTP entries' URL and headers with the
official SDK, the `mcp-remote` entry's command, arguments and environment started as a desktop
client starts it and driven over stdio by the SDK.

The service listens on 127.0.0.2, which `mcp-remote` does not count as localhost: that is where
the entry's `--allow-http` matters, and the test checks that without it `mcp-remote` refuses.
Node.js and npm come from the machine (tests/run.sh installs Debian's when missing);
`mcp-remote` itself is installed, at the pinned version, into target/npm-clients.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from mcp.client.stdio import StdioServerParameters, stdio_client

from conftest import ADA, ROOT, Daemon, Sandbox, _session, connect, npm_install

pytestmark = pytest.mark.anyio

TOKEN = "client-setup-token-0123456789abcdef"
MCP_REMOTE = "mcp-remote@0.15.1"


def readme_config(marker: str) -> dict:
    """The `mcpServers` of the JSON block right after `<!-- tested: MARKER -->` in README.md."""
    text = (ROOT / "README.md").read_text()
    found = re.search(
        rf"<!-- tested: {re.escape(marker)} -->\n```json\n(.*?)\n```", text, re.DOTALL
    )
    assert found, f"README.md has no JSON block marked 'tested: {marker}'"
    return json.loads(found.group(1))["mcpServers"]


def filled(value: str, daemon: Daemon) -> str:
    return value.replace("HOST:3000", f"{daemon.host}:{daemon.mcp_port}").replace("TOKEN", TOKEN)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    sandbox = Sandbox(tmp_path_factory.mktemp("clients"), WHATSAPP_MCP_TOKEN=TOKEN)
    daemon = Daemon(sandbox, host="127.0.0.2").start()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def npm_dir() -> Path:
    """target/npm-clients with the pinned mcp-remote in its node_modules."""
    return npm_install(MCP_REMOTE)


def mcp_remote_params(daemon: Daemon, npm_dir: Path, config_dir: Path, drop: str = "") -> StdioServerParameters:
    entry = readme_config("mcp-remote")["whatsapp"]
    args = [filled(arg, daemon) for arg in entry["args"] if arg != drop]
    env = {name: filled(value, daemon) for name, value in entry["env"].items()}
    # Where mcp-remote keeps its OAuth state: the test's own directory, not ~/.mcp-auth.
    env["MCP_REMOTE_CONFIG_DIR"] = str(config_dir)
    env["PATH"] = os.environ["PATH"]
    # npx finds the pinned mcp-remote in the node_modules of its working directory.
    return StdioServerParameters(command=entry["command"], args=args, env=env, cwd=str(npm_dir))


async def test_the_http_entries_work_as_written(daemon: Daemon) -> None:
    servers = readme_config("http clients")
    expected = {"whatsapp-sse": ("sse", "/sse"), "whatsapp-http": ("http", "/mcp")}
    assert set(servers) == set(expected), servers
    for name, (transport, path) in expected.items():
        entry = servers[name]
        assert filled(entry["url"], daemon) == f"{daemon.mcp_base}{path}", entry
        headers = {key: filled(value, daemon) for key, value in entry["headers"].items()}
        async with connect(transport, daemon.sandbox, daemon, headers=headers) as session:
            chats = (await session.call_tool("list_chats", {})).structured_content
            assert chats and chats["chats"], (name, chats)


async def test_mcp_remote_works_as_written(daemon: Daemon, npm_dir: Path, tmp_path: Path) -> None:
    params = mcp_remote_params(daemon, npm_dir, tmp_path / "mcp-auth")
    with open(tmp_path / "mcp-remote.stderr", "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with _session(read, write) as session:
                tools = {tool.name for tool in (await session.list_tools()).tools}
                assert "send_message" in tools and "list_chats" in tools, tools
                chats = (await session.call_tool("list_chats", {})).structured_content
                assert chats and chats["chats"], chats
                sent = await session.call_tool(
                    "send_message", {"recipient": ADA, "message": "through mcp-remote"}
                )
                assert not sent.is_error, sent
    messages = await _messages_to_ada(daemon)
    assert "through mcp-remote" in messages, messages
    log = (tmp_path / "mcp-remote.stderr").read_text()
    assert TOKEN not in log, "mcp-remote printed the token"


def test_mcp_remote_without_allow_http_refuses_the_plain_url(
    daemon: Daemon, npm_dir: Path, tmp_path: Path
) -> None:
    params = mcp_remote_params(daemon, npm_dir, tmp_path / "mcp-auth", drop="--allow-http")
    done = subprocess.run(
        [params.command, *params.args],
        env=params.env,
        cwd=params.cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0, done
    assert "--allow-http" in done.stderr, done.stderr


async def _messages_to_ada(daemon: Daemon) -> str:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with connect("http", daemon.sandbox, daemon, headers=headers) as session:
        found = await session.call_tool("list_messages", {"chat_jid": ADA, "limit": 20})
        return json.dumps(found.structured_content)
