"""Media the model can see, as a client with the official SDK meets it over every transport:
`download_media` answers with the picture itself (scaled so its longer side is at most
`mcp.image_size`), a link to the file as a resource, and the structured result; the media of a
message is also a resource of its own, `whatsapp://media/{chat_jid}/{message_id}`.

The fake engine's photo is a real 1280×960 JPEG, so the default size (1024) scales it to
1024×768, and the pictures are decoded here with Pillow, as a client would show them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess

import pytest
from mcp import types
from mcp.shared.exceptions import MCPError
from PIL import Image

from conftest import ADA, ADA_LID, BINARY, TRANSPORTS, Sandbox, Server, serving

pytestmark = pytest.mark.anyio

PHOTO = {"message_id": "DEMO-A6", "chat_jid": ADA}
PHOTO_URI = f"whatsapp://media/{ADA}/DEMO-A6"


@pytest.fixture(scope="module", params=TRANSPORTS)
async def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp(f"media-{request.param}")
    async with serving(request.param, root) as server:
        yield server


async def download(server: Server, arguments: dict) -> types.CallToolResult:
    assert server.session is not None
    result = await server.session.call_tool("download_media", arguments)
    assert not result.is_error, result
    return result


def pictures(result: types.CallToolResult) -> list[Image.Image]:
    shown = []
    for block in result.content:
        if isinstance(block, types.ImageContent):
            picture = Image.open(io.BytesIO(base64.b64decode(block.data, validate=True)))
            picture.load()
            assert Image.MIME[picture.format] == block.mime_type
            shown.append(picture)
    return shown


def links(result: types.CallToolResult) -> list[types.ResourceLink]:
    return [block for block in result.content if isinstance(block, types.ResourceLink)]


async def test_the_photo_comes_back_as_a_picture_of_the_default_size(server: Server) -> None:
    result = await download(server, PHOTO)
    [picture] = pictures(result)
    assert picture.size == (1024, 768)
    assert picture.format == "JPEG"
    out = result.structured_content
    assert out is not None
    assert out["picture"] == {"mime_type": "image/jpeg", "width": 1024, "height": 768}
    assert out["picture_note"] is None
    # The file on disk is the original, untouched.
    with Image.open(out["path"]) as original:
        assert original.size == (1280, 960)


async def test_the_answer_links_the_file_as_a_resource_that_reads_back(server: Server) -> None:
    result = await download(server, PHOTO)
    out = result.structured_content
    assert out is not None and out["resource_uri"] == PHOTO_URI
    [link] = links(result)
    assert str(link.uri) == PHOTO_URI
    assert link.mime_type == "image/jpeg" and link.size == out["size_bytes"]
    assert server.session is not None
    read = await server.session.read_resource(PHOTO_URI)
    [contents] = read.contents
    assert isinstance(contents, types.BlobResourceContents)
    assert contents.mime_type == "image/jpeg"
    data = base64.b64decode(contents.blob, validate=True)
    with open(out["path"], "rb") as file:
        assert hashlib.sha256(data).digest() == hashlib.sha256(file.read()).digest()


async def test_the_media_resource_is_found_by_the_contacts_other_address(server: Server) -> None:
    assert server.session is not None
    read = await server.session.read_resource(f"whatsapp://media/{ADA_LID}/DEMO-A6")
    [contents] = read.contents
    assert isinstance(contents, types.BlobResourceContents)
    assert base64.b64decode(contents.blob).startswith(b"\xff\xd8")


async def test_the_media_template_is_listed(server: Server) -> None:
    assert server.session is not None
    listed = await server.session.list_resource_templates()
    templates = {t.uri_template: t for t in listed.resource_templates}
    assert "whatsapp://media/{chat_jid}/{message_id}" in templates


@pytest.mark.parametrize(
    "uri",
    [
        f"whatsapp://media/{ADA}/NO-SUCH-MESSAGE",
        # A message without media.
        f"whatsapp://media/{ADA}/DEMO-A1",
        "whatsapp://media/not-a-jid/DEMO-A6",
        f"whatsapp://media/{ADA}",
    ],
)
async def test_a_media_resource_that_is_not_there_is_a_clear_error(server: Server, uri: str) -> None:
    assert server.session is not None
    with pytest.raises(MCPError) as caught:
        await server.session.read_resource(uri)
    assert caught.value.error.message, uri
    # The session goes on.
    assert (await download(server, PHOTO)).structured_content is not None


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("size", "expected"), [("300", (300, 225)), ("2048", (1280, 960))])
async def test_the_picture_follows_the_configured_size(
    tmp_path, transport: str, size: str, expected: tuple[int, int]
) -> None:
    async with serving(transport, tmp_path, WHATSAPP_MCP_IMAGE_SIZE=size) as server:
        result = await download(server, PHOTO)
        [picture] = pictures(result)
        assert picture.size == expected
        assert result.structured_content is not None
        assert result.structured_content["picture"]["width"] == expected[0]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pictures_turned_off_leave_the_file_and_the_link(tmp_path, transport: str) -> None:
    async with serving(transport, tmp_path, WHATSAPP_MCP_IMAGE_SIZE="0") as server:
        result = await download(server, PHOTO)
        assert pictures(result) == []
        assert len(links(result)) == 1
        out = result.structured_content
        assert out is not None and out["picture"] is None
        assert "turned off" in out["picture_note"]


@pytest.mark.parametrize("size", ["63", "4097", "big", "-1"])
async def test_an_image_size_out_of_range_stops_the_start_with_a_clear_error(
    tmp_path, size: str
) -> None:
    sandbox = Sandbox(tmp_path, WHATSAPP_MCP_IMAGE_SIZE=size)
    done = subprocess.run(
        [str(BINARY), "serve"], env=sandbox.env, capture_output=True, timeout=30, text=True
    )
    assert done.returncode != 0
    assert "WHATSAPP_MCP_IMAGE_SIZE" in done.stderr, done.stderr
