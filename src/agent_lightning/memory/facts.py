"""Facts about the user in what they say: first-person statements turned into third-person facts, the
subject a fact is about (so a new value updates the old fact instead of piling up), and questions put in
the facts' own person so that recall compares like with like."""

from __future__ import annotations

import re

_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
# A full stop after these does not end a sentence ("Dr. Huber", "e.g. Redis").
_ABBREVIATIONS = {
    "dr",
    "mr",
    "mrs",
    "ms",
    "mx",
    "prof",
    "st",
    "mt",
    "jr",
    "sr",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "approx",
    "dept",
    "inc",
    "ltd",
    "co",
    "fig",
    "no",
}
_FIRST_PERSON = re.compile(r"\b(i|i'm|i am|i've|i'll|i'd|my|mine|we|our|we're|we've|we'll)\b", re.IGNORECASE)
_REQUEST = re.compile(
    r"^(please|can you|could you|would you|tell me|show me|help me|what|how|why|when|where|who|which)\b",
    re.IGNORECASE,
)
_FORGET = re.compile(r"^(please\s+)?(forget|ignore|disregard)\s+(that\s+)?", re.IGNORECASE)
# Openers that carry no fact: "Quick update: we moved…", "Yes, we created…", "Actually we're moving…".
_LABEL = re.compile(r"^[\w' -]{1,30}:\s+")
_OPENER = re.compile(
    r"^(?:(?:yes|yeah|no|okay|ok|so|also|actually|well|now|oh|hey|hi|hello|great|cool|nice|right|"
    r"anyway|btw|by the way|good news|update|unrelated|and|but|finally|honestly)\b[,!.:]?\s+)+",
    re.I,
)
_REWRITES = [
    (re.compile(r"^i am\b", re.I), "The user is"),
    (re.compile(r"^i'm\b", re.I), "The user is"),
    (re.compile(r"^i've\b", re.I), "The user has"),
    (re.compile(r"^i'll\b", re.I), "The user will"),
    (re.compile(r"^i'd\b", re.I), "The user would"),
    (re.compile(r"^i\b", re.I), "The user"),
    (re.compile(r"^my\b", re.I), "The user's"),
    (re.compile(r"^we're\b", re.I), "The user's team is"),
    (re.compile(r"^we've\b", re.I), "The user's team has"),
    (re.compile(r"^we'll\b", re.I), "The user's team will"),
    (re.compile(r"^we\b", re.I), "The user's team"),
    (re.compile(r"^our\b", re.I), "The user's team's"),
]
# First-person words later in a sentence, in the third person.
_INNER = [
    (re.compile(rf"\b{first}\b", flags), third)
    for first, third, flags in (
        ("I'm", "they're", 0),
        ("I've", "they've", 0),
        ("I'll", "they'll", 0),
        ("I'd", "they'd", 0),
        ("I", "they", 0),
        ("my", "their", re.I),
        ("mine", "theirs", re.I),
        ("myself", "themselves", re.I),
        ("me", "them", 0),
        ("we're", "they're", re.I),
        ("we've", "they've", re.I),
        ("we'll", "they'll", re.I),
        ("we", "they", re.I),
        ("our", "their", re.I),
        ("ours", "theirs", re.I),
        ("us", "them", 0),
    )
]
_VERB = re.compile(
    r"\s(is|are|was|were|am|has|have|lives|live|works|work|uses|use|prefers|prefer|likes|like|"
    r"loves|love|hates|hate|owns|own|speaks|speak|studies|study|plays|play|drives|drive)\b",
    re.I,
)

_THIRD = {"have": "has", "do": "does", "go": "goes"}
# Verbs a sentence often starts with after "I": "I run the platform team" → "The user runs the platform team".
_BASE_VERBS = set(
    "live work use prefer like love hate own speak study play drive want need teach run write manage "
    "maintain lead build think know make keep plan try hope practise practice train test deploy store host "
    "sell ship rent forecast analyse analyze organise organize fly get take feel start trust care miss cook "
    "read sing swim visit volunteer support worry handle expect wish enjoy mean believe guess suppose "
    "remember forget struggle spend save pay earn teach code design develop document translate review lead "
    "coach mentor".split()
)


def _third_singular(verb: str) -> str:
    if verb in _THIRD:
        return _THIRD[verb]
    if re.search(r"(s|sh|ch|x|z|o)$", verb):
        return verb + "es"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ies"
    return verb + "s"


def sentences(text: str) -> list[str]:
    """The sentences of a message, not broken after abbreviations such as "Dr." or "e.g."."""
    merged: list[str] = []
    for piece in _BREAK.split(text):
        piece = piece.strip()
        if not piece:
            continue
        last = merged[-1].split()[-1].lower().rstrip(".") if merged and merged[-1].endswith(".") else ""
        if last in _ABBREVIATIONS:
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return merged


def _strip_openers(sentence: str) -> str:
    """'Quick update: we moved…' → 'we moved…' when what follows speaks in the first person."""
    for pattern in (_LABEL, _OPENER):
        rest = pattern.sub("", sentence, count=1)
        if rest != sentence and re.match(r"(i|i'm|i've|i'll|i'd|my|we|we're|we've|we'll|our)\b", rest, re.I):
            sentence = rest
    return sentence


def third_person(sentence: str) -> str:
    """'My dog is Rex' → "The user's dog is Rex"; 'I live in Lyon' → 'The user lives in Lyon'."""
    text = _strip_openers(sentence.strip()).rstrip(".!")
    head = ""
    for pattern, replacement in _REWRITES:
        match = pattern.search(text)
        if match:
            head, text = replacement, text[match.end() :]
            if replacement in ("The user", "The user's team"):
                verb = re.match(r"\s+(\w+)", text)
                if verb and verb.group(1).lower() in _BASE_VERBS:
                    head, text = f"{head} {_third_singular(verb.group(1).lower())}", text[verb.end() :]
            break
    for pattern, replacement in _INNER:
        text = pattern.sub(replacement, text)
    text = head + text
    return text[:1].upper() + text[1:] + "."


def extract(text: str) -> list[tuple[str, bool]]:
    """Candidate facts in a user's message, each with whether the user asked to forget it."""
    found = []
    for sentence in sentences(text):
        words = len(sentence.split())
        if not (3 <= words <= 40) or sentence.endswith("?"):
            continue
        forget = bool(_FORGET.match(sentence))
        body = _FORGET.sub("", sentence) if forget else sentence
        if _REQUEST.match(body) or not _FIRST_PERSON.search(body):
            continue
        found.append((third_person(body), forget))
    return found


_QUESTION = [
    (re.compile(rf"\b{first}\b", 0 if first in ("I", "me", "us") else re.I), third)
    for first, third in (
        ("am I", "is the user"),
        ("I am", "the user is"),
        ("I'm", "the user is"),
        ("do I", "does the user"),
        ("have I", "has the user"),
        ("I have", "the user has"),
        ("I've", "the user has"),
        ("are we", "is the user's team"),
        ("we are", "the user's team is"),
        ("we're", "the user's team is"),
        ("do we", "does the user's team"),
        ("have we", "has the user's team"),
        ("we have", "the user's team has"),
        ("we've", "the user's team has"),
        ("myself", "the user"),
        ("my", "the user's"),
        ("mine", "the user's"),
        ("me", "the user"),
        ("I", "the user"),
        ("our", "the user's team's"),
        ("ours", "the user's team's"),
        ("us", "the user's team"),
        ("we", "the user's team"),
    )
]


def as_facts_speak(query: str) -> str:
    """A question in the person the facts are stored in: 'What am I allergic to?' → 'What is the user
    allergic to?' (a first-person question is far from a third-person fact in embedding space)."""
    for pattern, replacement in _QUESTION:
        query = pattern.sub(replacement, query)
    return query


def subject(fact: str) -> str | None:
    """What the fact is about: the words before its main verb ("the user's favourite colour")."""
    match = _VERB.search(fact)
    if not match or match.start() == 0:
        return None
    head = fact[: match.start()].lower().strip()
    if head not in ("the user", "the user's team"):
        return head
    verb = match.group(1).lower()
    return None if verb in ("is", "are", "was", "were", "am", "has", "have") else f"{head} {verb}"


def normalise(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


# Words that say nothing about which value a fact holds: what is left of "The user's project is written in
# Rust" is "rust", and every memory that mentions it holds the value.
_PLAIN_WORDS = set(
    "a an the of in on at to for from by with about into over under as and or but not no is are was were be "
    "been being am has have had do does did will would can could should may might must shall that this these "
    "those it its they them their theirs he she his her we our us you your user users team teams now still "
    "also just very really currently today anymore new old some any all each every one ones there here than "
    "then so too more most written called named using used uses use based built made located living lives "
    "live working works work told tell said say mentioned mention know knows think thinks like likes prefer "
    "prefers favourite favorite project projects thing things stuff".split()
)


def value_terms(fact: str) -> set[str]:
    """The words that carry a fact's value: the words after its main verb (or, without one, all of them) that
    are not plain words. "The user's team's project is written in Rust." → {"rust"}."""
    match = _VERB.search(fact)
    value = fact[match.end() :] if match and match.end() < len(fact) else fact
    terms = {w for w in re.findall(r"\w+", value.lower()) if w not in _PLAIN_WORDS and len(w) > 1}
    return terms or {w for w in re.findall(r"\w+", fact.lower()) if w not in _PLAIN_WORDS and len(w) > 1}


def mentions(text: str, terms: set[str]) -> bool:
    """Whether `text` holds every one of `terms` as a word (any case)."""
    return bool(terms) and terms <= set(re.findall(r"\w+", text.lower()))


def without_mentions(text: str, terms: set[str]) -> str:
    """`text` without the sentences that mention `terms`."""
    return " ".join(s for s in sentences(text) if not mentions(s, terms))
