"""Facts about the user in what they say: first-person statements turned into third-person facts, and
the subject a fact is about (so a new value updates the old fact instead of piling up)."""

from __future__ import annotations

import re

_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_FIRST_PERSON = re.compile(r"\b(i|i'm|i am|i've|my|mine|we|our|we're)\b", re.IGNORECASE)
_REQUEST = re.compile(r"^(please|can you|could you|would you|tell me|show me|help me|what|how|why|when|where|who|which)\b",
                      re.IGNORECASE)
_FORGET = re.compile(r"^(please\s+)?(forget|ignore|disregard)\s+(that\s+)?", re.IGNORECASE)
_REWRITES = [
    (re.compile(r"^i am\b", re.I), "The user is"),
    (re.compile(r"^i'm\b", re.I), "The user is"),
    (re.compile(r"^i've\b", re.I), "The user has"),
    (re.compile(r"^i\b", re.I), "The user"),
    (re.compile(r"^my\b", re.I), "The user's"),
    (re.compile(r"^we're\b", re.I), "The user's team is"),
    (re.compile(r"^we\b", re.I), "The user's team"),
    (re.compile(r"^our\b", re.I), "The user's team's"),
]
_VERB = re.compile(r"\s(is|are|was|were|am|has|have|lives|live|works|work|uses|use|prefers|prefer|likes|like|"
                   r"loves|love|hates|hate|owns|own|speaks|speak|studies|study|plays|play|drives|drive)\b", re.I)


_THIRD = {"have": "has", "do": "does", "go": "goes", "study": "studies", "live": "lives", "work": "works",
          "use": "uses", "prefer": "prefers", "like": "likes", "love": "loves", "hate": "hates", "own": "owns",
          "speak": "speaks", "play": "plays", "drive": "drives", "want": "wants", "need": "needs", "teach": "teaches"}


def third_person(sentence: str) -> str:
    """'My dog is Rex' → "The user's dog is Rex"; 'I live in Lyon' → 'The user lives in Lyon'."""
    text = sentence.strip().rstrip(".!")
    for pattern, replacement in _REWRITES:
        if pattern.search(text):
            text = pattern.sub(replacement, text, count=1)
            if replacement == "The user":
                text = re.sub(r"^The user (\w+)", lambda m: f"The user {_THIRD.get(m.group(1).lower(), m.group(1))}", text)
            break
    text = re.sub(r"\bmy\b", "their", text, flags=re.I)
    text = re.sub(r"\bI\b", "they", text)
    return text[:1].upper() + text[1:] + "."


def extract(text: str) -> list[tuple[str, bool]]:
    """Candidate facts in a user's message, each with whether the user asked to forget it."""
    found = []
    for sentence in _SENTENCES.split(text):
        sentence = sentence.strip()
        words = len(sentence.split())
        if not (3 <= words <= 40) or sentence.endswith("?"):
            continue
        forget = bool(_FORGET.match(sentence))
        body = _FORGET.sub("", sentence) if forget else sentence
        if _REQUEST.match(body) or not _FIRST_PERSON.search(body):
            continue
        found.append((third_person(body), forget))
    return found


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
