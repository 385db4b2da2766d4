"""Uploads are read by what their bytes are, with decompression bounded (issue 13).

The attacks: a 194 KB .docx that inflates to 200 MB and 50 KB of random bytes named .md were both indexed.
Now the content type comes from the bytes (UTF-8 text, PDF and ZIP magic), a Word document's XML is inflated
with its size and ratio checked while it is read, a PDF's streams under pypdf's limits, and each refusal is a
4xx with a stable code and nothing stored.
"""

from __future__ import annotations

import io
import random
import zipfile
import zlib

import pytest
from embedded import embedded_app
from test_knowledge_api import search, tiny_pdf

from agent_lightning.core.config import Settings

MB = 1024 * 1024
DOCUMENT = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{}'
    "</w:body></w:document>"
)


def paragraph(text: str, style: str | None = None) -> str:
    props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f"<w:p>{props}<w:r><w:t>{text}</w:t></w:r></w:p>"


def docx(body: str, filler: int = 0) -> bytes:
    """A Word document (the parts a text extractor reads); `filler` bytes of spaces inside a paragraph."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        with archive.open("word/document.xml", "w") as part:
            text = DOCUMENT.format(body + "<w:p><w:r><w:t>{FILL}</w:t></w:r></w:p>")
            head, tail = text.split("{FILL}")
            part.write(head.encode())
            chunk = b" " * MB
            for _ in range(filler // MB):
                part.write(chunk)
            part.write(tail.encode())
    return out.getvalue()


def flate_pdf(inflated: int) -> bytes:
    """A one-page PDF whose content stream is FlateDecode-compressed spaces inflating to `inflated` bytes."""
    squeeze = zlib.compressobj(9)
    stream = b"".join(squeeze.compress(b" " * MB) for _ in range(inflated // MB)) + squeeze.flush()
    pdf = tiny_pdf("x")
    start = pdf.index(b"<< /Length")
    end = pdf.index(b"endstream") + len(b"endstream")
    body = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream"
    return pdf[:start] + body + pdf[end:]  # the xref offsets are off now: pypdf finds the objects again


@pytest.fixture
async def kclient(settings: Settings):
    async with embedded_app(settings) as client:
        yield client


async def items(client) -> int:
    return len((await client.get("/knowledge/items")).json()["items"])


async def refused(client, filename: str, data: bytes, status: int, code: str, **params) -> dict:
    response = await client.post("/knowledge/upload", params={"filename": filename, **params}, content=data)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"], error
    return error


async def test_a_zip_bomb_docx_is_refused_while_it_is_read(kclient):
    bomb = docx(paragraph("Quarterly report"), filler=200 * MB)
    assert len(bomb) < 256 * 1024, "it fits the request body limit, as in the attack"
    error = await refused(kclient, "report.docx", bomb, 413, "decompression_limit")
    assert error["details"]["limit_bytes"] <= 16 * MB
    await refused(kclient, "report.md", bomb, 415, "content_type_mismatch")  # a name does not make it text
    assert await items(kclient) == 0, "nothing was indexed"


async def test_random_bytes_are_not_text_whatever_their_name(kclient):
    noise = random.Random(13).randbytes(50 * 1024)
    for name in ("notes.md", "notes.txt", "page.html", "notes"):
        error = await refused(kclient, name, noise, 415, "unsupported_content")
        assert error["details"]["detected"] == "binary"
    await refused(kclient, "notes.md", noise, 415, "unsupported_content", format="markdown")
    await refused(
        kclient, "manual.md", tiny_pdf("Refunds are paid within 14 days."), 415, "content_type_mismatch"
    )
    await refused(
        kclient, "manual.pdf", b"# Just Markdown\n\nNot a PDF at all.", 415, "content_type_mismatch"
    )
    await refused(kclient, "zeros.txt", b"\x00" * 4096, 415, "unsupported_content")
    assert await items(kclient) == 0


async def test_a_pdf_bomb_is_refused(kclient):
    await refused(kclient, "bomb.pdf", flate_pdf(200 * MB), 413, "decompression_limit")
    assert await items(kclient) == 0


async def test_real_documents_still_index(kclient):
    word = docx(
        paragraph("Refund policy", "Heading1") + paragraph("Refunds are paid within 14 days of the request.")
    )
    stored = await kclient.post("/knowledge/upload", params={"filename": "policy.docx"}, content=word)
    assert stored.status_code == 201, stored.text
    assert stored.json()["format"] == "docx" and stored.json()["item"]["title"] == "Refund policy"
    pdf = await kclient.post(
        "/knowledge/upload", params={"filename": "refunds.pdf"}, content=tiny_pdf("Paid in 14 days.")
    )
    assert pdf.status_code == 201, pdf.text
    text = "# Pools\n\nUse a connection pool — réutiliser les connexions, 接続を再利用する.\n".encode()
    for name, data in (
        ("pools.md", text),
        ("pools-bom.md", b"\xef\xbb\xbf" + text.replace(b"Pools", b"Pool")),
    ):
        assert (
            await kclient.post("/knowledge/upload", params={"filename": name}, content=data)
        ).status_code == 201
    hits = await search(kclient, "how fast are refunds paid")
    assert any("14 days" in hit["text"] and hit["item_id"] == stored.json()["item"]["id"] for hit in hits), (
        hits
    )


async def test_the_limit_is_a_setting(settings):
    small = settings.model_copy(update={"knowledge_upload_max_inflated_bytes": 64 * 1024})
    async with embedded_app(small) as client:
        error = await refused(client, "big.docx", docx(paragraph("x" * 100_000)), 413, "decompression_limit")
        assert error["details"]["limit_bytes"] == 64 * 1024
