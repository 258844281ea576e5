"""OAuth access tokens with the official SDK against the real binary: an authorization server
run by the test on loopback (discovery and JWKS, an ES256 key made here), a token signed with
it, and a session over Streamable HTTP that reads and sends; a token for another audience is
refused with `invalid_token` and the challenge names the resource metadata.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from conftest import ADA, Daemon, Sandbox, connect

pytestmark = pytest.mark.anyio

AUDIENCE = "https://whatsapp-mcp.test/mcp"


class Issuer:
    """Discovery and a JWKS with one ES256 key, on a loopback port."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": "py-1", "use": "sig", "alg": "ES256"})
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                elif self.path == "/jwks":
                    body = {"keys": [jwk]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, **claims: object) -> str:
        now = int(time.time())
        body = {"iss": self.url, "aud": AUDIENCE, "sub": "agent", "iat": now, "exp": now + 600}
        body.update(claims)
        return jwt.encode(body, self.key, algorithm="ES256", headers={"kid": "py-1"})


@pytest.fixture(scope="module")
def oauth(tmp_path_factory: pytest.TempPathFactory):
    issuer = Issuer()
    sandbox = Sandbox(tmp_path_factory.mktemp("oauth"))
    sandbox.config.write_text(f'[oauth]\nissuer = "{issuer.url}"\naudience = "{AUDIENCE}"\n')
    daemon = Daemon(sandbox).start()
    try:
        yield issuer, sandbox, daemon
    finally:
        daemon.stop()
        issuer.server.shutdown()


async def test_an_sdk_client_with_an_access_token_reads_and_sends(oauth) -> None:
    issuer, sandbox, daemon = oauth
    token = issuer.token(scope="whatsapp:read whatsapp:send")
    async with connect("http", sandbox, daemon, headers={"Authorization": f"Bearer {token}"}) as session:
        chats = (await session.call_tool("list_chats", {})).structured_content
        assert chats and chats["chats"], chats
        sent = await session.call_tool("send_message", {"recipient": ADA, "message": "with a JWT"})
        assert not sent.is_error, sent


def test_a_token_for_another_audience_is_refused_and_told_where_to_look(oauth) -> None:
    issuer, _sandbox, daemon = oauth
    wrong = issuer.token(aud="https://elsewhere.example/mcp", scope="whatsapp:read")
    answer = httpx2.post(
        f"{daemon.mcp_base}/mcp",
        headers={
            "Authorization": f"Bearer {wrong}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        },
        content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    )
    assert answer.status_code == 401, answer.text
    challenge = answer.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge, challenge
    assert "resource_metadata=" in challenge, challenge
    metadata_url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
    with urllib.request.urlopen(metadata_url) as response:
        metadata = json.load(response)
    assert metadata["authorization_servers"] == [issuer.url], metadata
    assert metadata["scopes_supported"] == ["whatsapp:read", "whatsapp:send"], metadata
