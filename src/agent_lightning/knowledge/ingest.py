"""Turning documents into chunks: parse text, Markdown, HTML and PDF into sections, then cut each section
into overlapping chunks on paragraph and sentence boundaries."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath

from agent_lightning.core.errors import Invalid

FORMATS = ("text", "markdown", "html", "pdf")
_SUFFIXES = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "text",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`\"'(])")
_HEADING_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCK_TAGS = {"p", "li", "pre", "div", "section", "article", "tr", "br", "dt", "dd", "blockquote", "table"}
_SKIP_TAGS = {"script", "style", "nav", "footer", "head", "noscript", "svg"}


@dataclass
class Section:
    """A heading path and the paragraphs under it."""

    heading: str
    paragraphs: list[str]


@dataclass
class Chunk:
    ordinal: int
    heading: str
    text: str


def estimate_tokens(text: str) -> int:
    """A cheap token estimate (about 4 characters per token for English)."""
    return max(1, (len(text) + 3) // 4)


def detect_format(filename: str, declared: str | None = None) -> str:
    """The document format from an explicit value or the file's suffix (text when unknown)."""
    if declared:
        if declared not in FORMATS:
            raise Invalid(f"Unknown format '{declared}'; one of {', '.join(FORMATS)}.", code="unknown_format")
        return declared
    return _SUFFIXES.get(PurePath(filename).suffix.lower(), "text")


def decode(data: bytes, fmt: str) -> str:
    """The text of a document's bytes in the given format (PDF pages are extracted with pypdf)."""
    if fmt == "pdf":
        return _pdf_text(data)
    return data.decode("utf-8", errors="replace")


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise Invalid(f"Cannot read the PDF: {exc}", code="unreadable_document") from exc
    return "\n\n".join(pages)


def sections(text: str, fmt: str) -> list[Section]:
    """The document's sections, following its headings."""
    if fmt == "markdown":
        return _markdown_sections(text)
    if fmt == "html":
        return _html_sections(text)
    return [Section("", _paragraphs(text))]


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _markdown_sections(text: str) -> list[Section]:
    found: list[Section] = []
    path: list[str] = []
    buffer: list[str] = []
    in_code = False

    def flush() -> None:
        body = "\n".join(buffer)
        if body.strip():
            found.append(Section(" > ".join(path), _paragraphs(body)))
        buffer.clear()

    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            flush()
            level = len(match.group(1))
            path[:] = [*path[: level - 1], match.group(2)]
        else:
            buffer.append(line)
    flush()
    return found


class _HtmlSections(HTMLParser):
    """Collects text per heading, skipping scripts, styles and navigation."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[Section] = [Section("", [])]
        self.skipping = 0
        self.in_heading: str | None = None
        self.heading_text: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _SKIP_TAGS:
            self.skipping += 1
        elif tag in _HEADING_TAGS:
            self._end_paragraph()
            self.in_heading, self.heading_text = tag, []
        elif tag in _BLOCK_TAGS:
            self._end_paragraph()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif tag == self.in_heading:
            self.found.append(Section(" ".join("".join(self.heading_text).split()), []))
            self.in_heading = None
        elif tag in _BLOCK_TAGS:
            self._end_paragraph()

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        (self.heading_text if self.in_heading else self.text).append(data)

    def _end_paragraph(self) -> None:
        paragraph = " ".join("".join(self.text).split())
        if paragraph:
            self.found[-1].paragraphs.append(paragraph)
        self.text = []


def _html_sections(text: str) -> list[Section]:
    parser = _HtmlSections()
    parser.feed(text)
    parser.close()
    parser._end_paragraph()
    return [s for s in parser.found if s.paragraphs]


def _pieces(paragraph: str, limit: int) -> list[str]:
    """A paragraph cut into sentences, and over-long sentences into word runs, each within `limit` chars."""
    out: list[str] = []
    for sentence in _SENTENCE.split(paragraph):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            out.append(sentence[:cut])
            sentence = sentence[cut:].lstrip()
        if sentence:
            out.append(sentence)
    return out


def chunk_sections(found: list[Section], *, size: int = 1000, overlap: int = 150) -> list[Chunk]:
    """Chunks of at most about `size` characters that never cross a section, each starting with the
    last `overlap` characters' worth of whole sentences of the previous chunk."""
    chunks: list[Chunk] = []
    for section in found:
        current: list[str] = []
        length = 0
        pieces = [p for paragraph in section.paragraphs for p in _pieces(paragraph, size)]
        for piece in pieces:
            if current and length + len(piece) + 1 > size:
                chunks.append(Chunk(len(chunks), section.heading, " ".join(current)))
                current, length = _tail(current, overlap), 0
                length = sum(len(p) + 1 for p in current)
            current.append(piece)
            length += len(piece) + 1
        if current:
            chunks.append(Chunk(len(chunks), section.heading, " ".join(current)))
    return chunks


def _tail(pieces: list[str], overlap: int) -> list[str]:
    kept: list[str] = []
    total = 0
    for piece in reversed(pieces):
        if total + len(piece) > overlap:
            break
        kept.insert(0, piece)
        total += len(piece) + 1
    return kept


def chunk_document(
    data: bytes | str, filename: str = "", fmt: str | None = None, *, size: int = 1000, overlap: int = 150
) -> tuple[str, list[Chunk]]:
    """Parse and chunk one document; returns its format and chunks."""
    kind = detect_format(filename, fmt)
    text = data if isinstance(data, str) else decode(data, kind)
    if kind == "pdf" and isinstance(data, str):
        kind = "text"
    chunks = chunk_sections(sections(text, kind), size=size, overlap=overlap)
    if not chunks:
        raise Invalid("The document has no text.", code="empty_document")
    return kind, chunks


def document_title(filename: str, chunks: list[Chunk]) -> str:
    """A title: the first heading, else the file name, else the start of the text."""
    for chunk in chunks:
        if chunk.heading:
            return chunk.heading.split(" > ")[0][:200]
    if filename:
        return PurePath(filename).name[:200]
    return chunks[0].text[:80]
