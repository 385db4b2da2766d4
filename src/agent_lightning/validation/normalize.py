"""What a text says once its disguises are taken off: the views the injection rules read.

An instruction can hide from a phrase rule in many ways: Unicode tag characters (invisible, but models read
them), zero-width characters inside words, lookalike letters from other scripts, fullwidth forms, letters
spaced apart, digits for letters, or an encoding (base64, hex, rot13, URL or HTML-entity encoding, reversal).
`views(text)` returns the text as written, then each distinct reading: the text normalised (NFKC, invisible
and format characters removed, tag characters revealed, lookalikes and leetspeak mapped to Latin letters,
spaced letters joined) and every encoded run that decodes to text, itself normalised. Each view says how it
was obtained and which span of the original it covers.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass

MIN_ENCODED = 16
"""Shorter runs are not decoded (words, ids and short hashes are not messages)."""
MAX_VIEWS = 12
_PROMPT_WORDS = re.compile(
    r"ignor|disregard|forget|instruc|prompt|system|restri|guideline|polic|override|bypass|jailbr|mode\b|"
    r"\bdan\b|anything now|reveal|above|everything|output|password|secret|conversation|history|image|"
    r"<\||\[/?inst|</|!\[|"
    r"regla|règle|regel|regol|anweisung|istruzion|instruç|sistema|système|einschränk|"
    r"инструкц|указани|правил|системн|ограничен|指令|指示|系统|提示|限制|ルール|無視|システム|制限|指示",
    re.IGNORECASE,
)
"""Words an injection can hardly do without: a rot13 or reversed reading is only scanned when it has one."""


@dataclass(frozen=True)
class View:
    text: str
    how: str  # "as written", "normalised", "decoded from base64", ...
    start: int  # the span of the original text the view reads
    end: int


# -- normalising ---------------------------------------------------------------------------------------------

TAG_BLOCK = (0xE0000, 0xE007F)
_LOOKALIKES = str.maketrans(
    {
        # Cyrillic
        "а": "a",
        "е": "e",
        "о": "o",
        "р": "p",
        "с": "c",
        "х": "x",
        "у": "y",
        "і": "i",
        "ј": "j",
        "ѕ": "s",
        "һ": "h",
        "ԁ": "d",
        "ԛ": "q",
        "ԝ": "w",
        "А": "A",
        "В": "B",
        "Е": "E",
        "К": "K",
        "М": "M",
        "Н": "H",
        "О": "O",
        "Р": "P",
        "С": "C",
        "Т": "T",
        "Х": "X",
        "І": "I",
        "Ј": "J",
        "Ѕ": "S",
        # Greek
        "α": "a",
        "ο": "o",
        "ρ": "p",
        "ν": "v",
        "ι": "i",
        "κ": "k",
        "τ": "t",
        "Α": "A",
        "Β": "B",
        "Ε": "E",
        "Η": "H",
        "Ι": "I",
        "Κ": "K",
        "Μ": "M",
        "Ν": "N",
        "Ο": "O",
        "Ρ": "P",
        "Τ": "T",
        "Χ": "X",
        "Υ": "Y",
        "Ζ": "Z",
    }
)
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
)
_LATIN = re.compile(r"[A-Za-z]")
_ASCII_LETTER = _LATIN
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[@$!0-9]+", re.UNICODE)
_LEET_WORD = re.compile(r"(?<![\w@$!])[\w@$!]*[^\W\d_][\w@$!]*(?![\w@$!])")
_LEET_DIGITS = re.compile(r"(?<![\w@$!])[013457]{1,3}(?![\w@$!])")
_DOTTED = re.compile(r"(?<!\S)(?:[^\W_][.\-_*]){2,}[^\W_](?!\S)")
_SPACED = re.compile(r"(?<!\S)(?:\S ){1,}\S(?!\S)")


_TAGS = re.compile("[\U000e0020-\U000e007e]")
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001-\U000e007f]"
)
"""Control and format characters (Unicode categories Cc and Cf) but newline, tab and carriage return."""


def reveal_tags(text: str) -> str:
    """The text with the ASCII spelled in Unicode tag characters (U+E0020–U+E007E mirror ASCII) written out
    where it stands; '' when there is none."""
    if not _TAGS.search(text):
        return ""
    return _TAGS.sub(lambda m: chr(ord(m.group()) - 0xE0000), text)


def clean(text: str) -> str:
    """NFKC, without invisible and format characters (what decoding starts from)."""
    return _INVISIBLE.sub("", text if text.isascii() else unicodedata.normalize("NFKC", text))


def normalise(text: str) -> str:
    """`clean`, with lookalike letters and leetspeak in Latin words mapped to Latin letters, and letters
    spaced apart joined."""
    text = _WORD.sub(_unmask_word, clean(text))
    unleeted = _LEET_WORD.sub(_unleet, text)
    if (
        sum(a != b for a, b in zip(unleeted.split(), text.split(), strict=False)) >= 3
    ):  # leetspeak: lone digits are letters too
        unleeted = _LEET_DIGITS.sub(lambda m: m.group().translate(_LEET), unleeted)
    text = _DOTTED.sub(lambda m: re.sub(r"[.\-_*]", "", m.group()), unleeted)
    text = _SPACED.sub(lambda m: m.group().replace(" ", ""), text)
    return re.sub(r"[ \t]{2,}", " ", text)


def _unmask_word(match: re.Match) -> str:
    word = match.group()
    mapped = word.translate(_LOOKALIKES)
    return mapped if mapped != word and _LATIN.search(mapped) and not _foreign_word(mapped) else word


def _foreign_word(word: str) -> bool:
    """Still letters of another script after mapping: a real Cyrillic or Greek word, not a disguised one."""
    return any(ord(c) > 0x24F and unicodedata.category(c).startswith("L") for c in word)


def _unleet(match: re.Match) -> str:
    word = match.group()
    if not re.search(r"[0-9@$!]", word) or re.fullmatch(r"[0-9]+", word):
        return word
    return word.translate(_LEET) if len(word) >= 2 else word


# -- decoding ----------------------------------------------------------------------------------------------

_BASE64 = re.compile(rf"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{{{MIN_ENCODED},}}={{0,2}}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(
    rf"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{{2}}){{{MIN_ENCODED // 2},}}(?![0-9A-Fa-f])"
    r"|(?:\\x[0-9A-Fa-f]{2}){8,}"
)
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_ENTITY = re.compile(r"&#(?:x[0-9A-Fa-f]+|[0-9]+);|&[a-z]+;")


def _as_text(data: bytes) -> str | None:
    """Decoded bytes when they are readable text (UTF-8, almost all printable, some letters)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(c.isprintable() or c in "\n\t" for c in text)
    letters = sum(c.isalpha() for c in text)
    return (
        text
        if text and printable >= 0.95 * len(text) and letters >= 0.5 * len(text.replace(" ", ""))
        else None
    )


def _decode_base64(run: str) -> str | None:
    padded = run + "=" * (-len(run) % 4)
    try:
        data = base64.b64decode(padded, altchars=b"-_" if ("-" in run or "_" in run) else None, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _as_text(data)


def _decode_hex(run: str) -> str | None:
    return _as_text(bytes.fromhex(run.replace("\\x", "")))


def _encoded(text: str) -> list[View]:
    found: list[View] = []
    for pattern, decode, how in ((_BASE64, _decode_base64, "base64"), (_HEX, _decode_hex, "hex")):
        for m in pattern.finditer(text):
            decoded = decode(m.group())
            if decoded:
                found.append(View(decoded, f"decoded from {how}", m.start(), m.end()))
    if len(_PERCENT.findall(text)) >= 3:
        found.append(View(urllib.parse.unquote(text), "URL-decoded", 0, len(text)))
    if _ENTITY.search(text):
        found.append(View(html.unescape(text), "HTML entities decoded", 0, len(text)))
    return found


def views(text: str) -> list[View]:
    """The text as written, then each distinct other reading of it (at most MAX_VIEWS in all)."""
    out = [View(text, "as written", 0, len(text))]
    seen = {text}

    def add(view: View) -> None:
        if view.text and view.text not in seen and len(out) < MAX_VIEWS:
            seen.add(view.text)
            out.append(view)

    hidden = reveal_tags(text)
    if hidden:
        add(View(normalise(hidden), "hidden in Unicode tag characters", 0, len(text)))
    add(View(normalise(text), "normalised", 0, len(text)))
    cleaned = clean(text)
    for decoded in _encoded(cleaned):
        same = cleaned == text  # the decoded run's span is the original's only when cleaning changed nothing
        add(
            View(
                normalise(decoded.text),
                decoded.how,
                decoded.start if same else 0,
                decoded.end if same else len(text),
            )
        )
    if len(_ASCII_LETTER.findall(cleaned)) >= MIN_ENCODED:
        for how, read in (("rot13-decoded", codecs.decode(cleaned, "rot13")), ("reversed", cleaned[::-1])):
            if _PROMPT_WORDS.search(read):  # almost every text is neither: one cheap search spares the rules
                add(View(normalise(read), how, 0, len(text)))
    return out
