"""What an uploaded file really is, and its text, read within limits: the check before a file is indexed.

The name of a file says what it claims to be; its bytes say what it is. Text (text, Markdown, HTML) must
decode as UTF-8 with (almost) no control characters; a PDF must start as one; a Word document (.docx) is a
ZIP archive whose `word/document.xml` is inflated with its size and ratio checked while it is read; a PDF's
streams are inflated under pypdf's limits set to the same cap. A file that is not what it claims, or a type
not supported, is refused with 415; one that would inflate past the cap, with 413. Nothing is stored then.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import PurePath
from xml.etree import ElementTree

from agent_lightning.core.errors import Invalid, PayloadTooLarge, UnsupportedMediaType
from agent_lightning.knowledge import ingest

READ_CHUNK = 64 * 1024
RATIO_FREE_BYTES = 1024 * 1024
"""Parts smaller than this once inflated are not held to the ratio (tiny parts compress oddly)."""
MAX_ZIP_MEMBERS = 10_000
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_WORD_NS = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


@dataclass(frozen=True)
class UploadLimits:
    max_inflated_bytes: int = 16 * 1024 * 1024
    max_ratio: int = 100

    @classmethod
    def from_settings(cls, settings) -> UploadLimits:
        return cls(
            max_inflated_bytes=settings.knowledge_upload_max_inflated_bytes,
            max_ratio=settings.knowledge_upload_max_ratio,
        )


@dataclass(frozen=True)
class Upload:
    format: str  # what the file is: text, markdown, html, pdf or docx
    text: str
    chunk_as: str  # the format its text is chunked as: text, markdown or html


def sniff(data: bytes) -> str:
    """What the bytes are: `pdf`, `zip`, `text` (UTF-8 with at most 1 % control characters), else `binary`."""
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    controls = len(_CONTROL.findall(data[:1_000_000]))
    return "text" if b"\x00" not in data and controls <= len(data[:1_000_000]) // 100 else "binary"


def claimed_format(filename: str, declared: str | None) -> str:
    """The format the upload claims: the `format` given, else the file's suffix (.docx included)."""
    if not declared and PurePath(filename).suffix.lower() == ".docx":
        return "docx"
    return ingest.detect_format(filename, declared)


_EXPECTED = {"text": "text", "markdown": "text", "html": "text", "pdf": "pdf", "docx": "zip"}


def read(data: bytes, filename: str, declared: str | None, limits: UploadLimits) -> Upload:
    """The upload's format and text; raises UnsupportedMediaType (415), PayloadTooLarge (413) or Invalid."""
    claimed = claimed_format(filename, declared)
    detected = sniff(data)
    if detected == "binary":
        raise UnsupportedMediaType(
            f"'{filename}' is not UTF-8 text, a PDF or a Word document: binary content is not indexed.",
            code="unsupported_content",
            details={"claimed": claimed, "detected": detected},
        )
    if detected != _EXPECTED[claimed]:
        raise UnsupportedMediaType(
            f"'{filename}' claims to be {claimed} but its content is {_described(detected)}.",
            code="content_type_mismatch",
            details={"claimed": claimed, "detected": detected},
        )
    if claimed == "docx":
        return Upload("docx", _docx_text(data, limits), "markdown")
    if claimed == "pdf":
        return Upload("pdf", _pdf_text(data, limits), "text")
    return Upload(claimed, data.decode("utf-8-sig"), claimed)


def _described(kind: str) -> str:
    return {"zip": "a ZIP archive", "pdf": "a PDF", "text": "text"}.get(kind, kind)


def _too_large(what: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{what}; the limit is {limit:,} bytes (ALP_KNOWLEDGE_UPLOAD_MAX_INFLATED_BYTES).",
        code="decompression_limit",
        details={"limit_bytes": limit},
    )


# -- Word documents ------------------------------------------------------------------------------------------


def _docx_text(data: bytes, limits: UploadLimits) -> str:
    """The paragraphs of `word/document.xml` as Markdown (Heading N styles become headings)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise Invalid(f"Cannot read the Word document: {exc}", code="unreadable_document") from exc
    if len(members) > MAX_ZIP_MEMBERS:
        raise _too_large(f"The archive has {len(members):,} members", limits.max_inflated_bytes)
    try:
        part = archive.getinfo("word/document.xml")
    except KeyError:
        raise UnsupportedMediaType(
            "The ZIP archive is not a Word document (no word/document.xml).",
            code="unsupported_content",
            details={"detected": "zip"},
        ) from None
    xml = _inflate(archive, part, limits)
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:  # a Word document declares none; entities could expand
        raise Invalid("The Word document declares a DTD or entities.", code="unreadable_document")
    try:
        root = ElementTree.fromstring(xml)  # noqa: S314 (a DTD or entities are refused above)
    except ElementTree.ParseError as exc:
        raise Invalid(f"Cannot read the Word document: {exc}", code="unreadable_document") from exc
    lines = []
    for paragraph in root.iter(f"{_WORD_NS}p"):
        text = "".join(t.text or "" for t in paragraph.iter(f"{_WORD_NS}t")).strip()
        if not text:
            continue
        style = paragraph.find(f"{_WORD_NS}pPr/{_WORD_NS}pStyle")
        level = re.fullmatch(
            r"(?i)heading\s*([1-6])", (style.get(f"{_WORD_NS}val") or "") if style is not None else ""
        )
        lines.append(f"{'#' * int(level.group(1))} {text}" if level else text)
    return "\n\n".join(lines)


def _inflate(archive: zipfile.ZipFile, part: zipfile.ZipInfo, limits: UploadLimits) -> bytes:
    """A member's bytes, read in chunks: refused as soon as they pass the cap or the compression ratio (the
    sizes in the archive's headers are the attacker's, so they are checked but not trusted)."""
    cap = limits.max_inflated_bytes
    if part.file_size > cap:
        raise _too_large(f"'{part.filename}' declares {part.file_size:,} bytes once inflated", cap)
    ratio_cap = max(RATIO_FREE_BYTES, limits.max_ratio * max(part.compress_size, 1))
    out = bytearray()
    try:
        with archive.open(part) as stream:
            while chunk := stream.read(READ_CHUNK):
                out += chunk
                if len(out) > cap:
                    raise _too_large(f"'{part.filename}' inflates past {cap:,} bytes", cap)
                if len(out) > ratio_cap:
                    raise _too_large(
                        f"'{part.filename}' inflates more than {limits.max_ratio} times its "
                        "compressed size (ALP_KNOWLEDGE_UPLOAD_MAX_RATIO)",
                        cap,
                    )
    except (zipfile.BadZipFile, EOFError, OSError) as exc:  # zlib errors and CRC mismatches included
        raise Invalid(f"Cannot read the Word document: {exc}", code="unreadable_document") from exc
    return bytes(out)


# -- PDF ----------------------------------------------------------------------------------------------------


def _pdf_text(data: bytes, limits: UploadLimits) -> str:
    """The pages' text, every stream inflated under pypdf's limits set to the cap."""
    from pypdf import apply_configuration
    from pypdf.errors import LimitReachedError

    cap = limits.max_inflated_bytes
    bounds = {
        name: cap
        for name in (
            "maximum_declared_stream_length",
            "array_based_stream_maximum_output_length",
            "jbig2_maximum_output_length",
            "lzw_maximum_output_length",
            "run_length_maximum_output_length",
            "zlib_maximum_output_length",
            "brotli_maximum_output_length",
            "image_maximum_buffer_size",
            "stream_decoding_work_maximum_length",
        )
    }
    try:
        with apply_configuration(**bounds):
            return ingest.decode(data, "pdf")
    except LimitReachedError as exc:
        raise _too_large(f"A stream of the PDF inflates too far ({exc})", cap) from exc
