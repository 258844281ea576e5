"""The official TypeScript MCP SDK (from npm, at a pinned version) against the real binary:
tests/node/sdk_client.mjs connects over Streamable HTTP, legacy SSE and the stdio relay, lists
and calls tools (one message sent, then found in the archive), gets a prompt and completes a chat
argument, hears of a message arriving in the chat it subscribed to, and sends a poll whose
vote it reads back; this test checks what it printed. Against a server that confirms every acting call, the
same client answers the question (elicitation) with an approval or a refusal.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conftest import ADA, BINARY, ROOT, Daemon, Sandbox, connect, npm_install, _clean_environ

pytestmark = pytest.mark.anyio

SDK = "@modelcontextprotocol/sdk@1.32.2"
TOKEN = "typescript-sdk-token-0123456789abcdef"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("typescript")
    (root / "inbox").mkdir()
    sandbox = Sandbox(
        root, WHATSAPP_MCP_TOKEN=TOKEN, WHATSAPP_MCP_FAKE_INBOX=str(root / "inbox")
    )
    daemon = Daemon(sandbox).start()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def confirming(tmp_path_factory: pytest.TempPathFactory):
    sandbox = Sandbox(
        tmp_path_factory.mktemp("typescript-confirm"),
        WHATSAPP_MCP_TOKEN=TOKEN,
        WHATSAPP_MCP_CONFIRM="always",
    )
    daemon = Daemon(sandbox).start()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def script() -> str:
    directory = npm_install(SDK)
    # Node looks for packages beside the script, so it runs from there.
    target = directory / "sdk_client.mjs"
    shutil.copyfile(ROOT / "tests" / "node" / "sdk_client.mjs", target)
    return str(target)


def run_client(daemon: Daemon, script: str, transport: str, **extra: str) -> dict:
    """Runs sdk_client.mjs over `transport` against `daemon`; returns what it printed."""
    env = _clean_environ() | {"SEND_TO": ADA, "COMPLETE": "Ada"} | extra
    if transport == "http":
        args = [f"{daemon.mcp_base}/mcp", TOKEN]
    elif transport == "sse":
        args = [f"{daemon.mcp_base}/sse", TOKEN]
    else:
        args = [str(BINARY)]
        env |= daemon.sandbox.env | {
            "WHATSAPP_BRIDGE_URL": daemon.bridge_url,
            "WHATSAPP_MCP_TOKEN": TOKEN,
        }
    with open(daemon.sandbox.stderr_path(f"node-{transport}"), "w") as errors:
        done = subprocess.run(
            ["node", script, transport, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            timeout=120,
        )
    log = daemon.sandbox.stderr_path(f"node-{transport}").read_text()
    assert done.returncode == 0, log[-3000:]
    return json.loads(done.stdout)


async def sent_texts(daemon: Daemon) -> list[str]:
    """The texts of the archive's messages to Ada that mention TypeScript."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with connect("http", daemon.sandbox, daemon, headers=headers) as session:
        found = await session.call_tool("list_messages", {"chat_jid": ADA, "query": "TypeScript"})
        return [m["text"] for m in found.structured_content["messages"]]


@pytest.mark.parametrize("transport", ["http", "sse", "stdio"])
async def test_the_typescript_sdk_uses_tools_prompts_and_completion(
    daemon: Daemon, script: str, transport: str
) -> None:
    seen = run_client(daemon, script, transport, INBOX=daemon.sandbox.env["WHATSAPP_MCP_FAKE_INBOX"])
    assert seen["server"] == "whatsapp-mcp", seen
    # Told of the message that arrived in the chat it watches (within the script's 10 s).
    assert seen["push"]["uri"] == f"whatsapp://chat/{ADA}", seen["push"]
    print(f"typescript over {transport}: resources/updated {seen['push']['ms']:.0f} ms after")
    # Its poll, with the contact's vote tallied.
    assert seen["poll"] == [["Python", 0], ["TypeScript", 1]], seen["poll"]
    assert "send_message" in seen["tools"] and len(seen["tools"]) == 23, seen["tools"]
    assert ADA in seen["chats"], seen
    assert seen["sent"] is True, seen
    assert seen["prompts"] == ["catch_up", "daily_digest", "summarize_chat"], seen
    assert seen["prompt"]["count"] == 5, seen["prompt"]
    assert {m["chat_jid"] for m in seen["prompt"]["messages"]} == {ADA}
    assert ADA in seen["completion"], seen
    assert seen["questions"] == [], seen
    # The message it sent is in the archive, once.
    texts = await sent_texts(daemon)
    assert texts.count(f"from the TypeScript SDK over {transport}") == 1, texts


@pytest.mark.parametrize("transport", ["http", "sse", "stdio"])
@pytest.mark.parametrize("answer", ["approve", "decline"])
async def test_the_typescript_sdk_answers_the_confirmation(
    confirming: Daemon, script: str, transport: str, answer: str
) -> None:
    text = f"from the TypeScript SDK over {transport}"
    before = (await sent_texts(confirming)).count(text)
    seen = run_client(confirming, script, transport, ANSWER=answer)
    assert len(seen["questions"]) == 1, seen
    question = seen["questions"][0]
    assert text in question["message"] and "Ada Lovelace" in question["message"], question
    assert question["schema"]["properties"]["approve"]["type"] == "boolean", question
    after = (await sent_texts(confirming)).count(text)
    if answer == "approve":
        assert seen["sent"] is True, seen
        assert after == before + 1
    else:
        assert seen["sent"] is False and seen["sentText"].startswith("not done:"), seen
        assert after == before
