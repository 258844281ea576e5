"""`whatsapp-mcp stdio` on the wire, below the SDK: stdout carries nothing but JSON-RPC, one
message a line, lines that are not JSON-RPC do not stop the server, and the relay says when the
service cannot be reached.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import BINARY, Daemon, Sandbox, free_port

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "wire", "version": "1"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST_GROUPS = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "list_groups", "arguments": {}},
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    daemon = Daemon(Sandbox(tmp_path_factory.mktemp("wire"))).start()
    yield daemon
    daemon.stop()


class Wire:
    """A stdio server process spoken to line by line."""

    def __init__(self, args: list[str], env: dict[str, str], stderr: Path) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("WHATSAPP_")}
        with open(stderr, "wb") as errors:
            self.process = subprocess.Popen(
                [str(BINARY), *args],
                env=base | env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
            )
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, line: str | dict) -> None:
        text = line if isinstance(line, str) else json.dumps(line)
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        self.process.stdin.flush()

    def until(self, wanted_id: int, seen: list[dict]) -> dict:
        """Reads messages (each must be one JSON-RPC message on one line) until the answer
        to `wanted_id`; every message read is appended to `seen`."""
        while True:
            line = self.lines.get(timeout=20)
            assert line is not None, "stdout closed before the answer came"
            message = json.loads(line)
            assert message.get("jsonrpc") == "2.0", line
            seen.append(message)
            if message.get("id") == wanted_id:
                return message

    def close(self) -> tuple[int, list[bytes]]:
        assert self.process.stdin is not None
        self.process.stdin.close()
        code = self.process.wait(timeout=20)
        rest = []
        while (line := self.lines.get(timeout=5)) is not None:
            rest.append(line)
        return code, rest


@pytest.mark.parametrize("mode", ["relay", "standalone"])
def test_only_protocol_on_stdout_and_bad_lines_do_not_stop_it(
    daemon: Daemon, tmp_path: Path, mode: str
) -> None:
    if mode == "relay":
        args, env = ["stdio"], daemon.sandbox.env | {"WHATSAPP_BRIDGE_URL": daemon.bridge_url}
    else:
        sandbox = Sandbox(tmp_path / "own")
        args, env = ["stdio", "--standalone"], sandbox.env
    wire = Wire(args, env | {"WHATSAPP_MCP_LOG": "debug"}, tmp_path / "stderr")
    seen: list[dict] = []
    wire.send(INITIALIZE)
    init = wire.until(1, seen)
    assert init["result"]["serverInfo"]["name"] == "whatsapp-mcp"
    wire.send(INITIALIZED)
    for garbage in ("{not json", "[1, 2]", '{"jsonrpc": "2.0", "id": 9}', "   "):
        wire.send(garbage)
    wire.send(LIST_GROUPS)
    answer = wire.until(2, seen)
    payload = answer["result"]["structuredContent"]
    assert payload["count"] == 1 and payload["chats"][0]["name"] == "Climbing club"
    if mode == "relay":
        # The relay answers a line that is not JSON itself.
        parse_errors = [m for m in seen if m.get("error", {}).get("code") == -32700]
        assert len(parse_errors) == 1 and parse_errors[0]["id"] is None, seen
    code, rest = wire.close()
    assert code == 0
    for line in rest:
        assert json.loads(line)["jsonrpc"] == "2.0", line
    # Debug logging was on, and still none of it reached stdout.
    assert (tmp_path / "stderr").stat().st_size > 0


def test_the_relay_explains_an_unreachable_service(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHATSAPP_")}
    env |= sandbox.env | {"WHATSAPP_BRIDGE_URL": f"http://127.0.0.1:{port}"}
    done = subprocess.run(
        [str(BINARY), "stdio"],
        env=env,
        input=(json.dumps(INITIALIZE) + "\n").encode(),
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 69, done
    assert done.stdout == b""
    message = done.stderr.decode()
    assert f"127.0.0.1:{port}" in message and "--standalone" in message, message
    assert "WHATSAPP_BRIDGE_URL" in message, message
