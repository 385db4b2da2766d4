"""Personal data in free text: find it and mask it.

Kinds: e-mail addresses, phone numbers (Google's libphonenumber through `phonenumbers`), IP addresses
(loopback and unspecified addresses are not personal and stay), payment-card numbers (a card network's prefix
and length, and the Luhn check), IBANs (checksum and country length through `schwifty`) and names, but only
where the text marks them as names ("Name: Ada Lovelace", "my name is Ada Lovelace", `full_name="…"` in a log
event): guessing names from capitalised words masks half of every technical sentence.

Used by the structlog processor (logs never carry these, ``ALP_PII_MASK_LOGS``), by the model gateway on
prompts sent to external providers (``ALP_PII_MASK_PROVIDERS``) and by the validation service's checks.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import phonenumbers

KINDS = ("email", "phone", "ip", "card", "iban", "name")
PLACEHOLDERS = {kind: f"[{kind.upper()}]" for kind in KINDS}

DEFAULT_PHONE_REGION = "US"
"""Region for numbers written without a country code; numbers with +CC are found whatever it is."""

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}(?![\w-])"
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_NAME_WORD = r"[A-Z][a-zà-öø-ÿ'’-]+"
_PERSON = rf"{_NAME_WORD}(?:[ ]+(?:[A-Z]\.[ ]+)?{_NAME_WORD}){{0,3}}"
_MARKED_NAME = re.compile(
    r"(?:\b(?i:full[ _-]?name|first[ _-]?name|last[ _-]?name|given[ _-]?name|family[ _-]?name|surname|"
    r"customer[ _-]?name|patient[ _-]?name|contact[ _-]?name|name)[ \t]*[:=][ \t]*[\"']?"
    r"|\b(?i:my name is|my name's|i am called|i'm called)[ \t]+)"
    rf"(?P<name>{_PERSON})"
)
_DIGIT = re.compile(r"\d")
_NAME_HINT = re.compile(r"name|called", re.IGNORECASE)
_PHONE_HINT = re.compile(r"\d(?:[\s().+-]*\d){6,}")

NAME_KEYS = frozenset(
    {
        "full_name",
        "first_name",
        "last_name",
        "surname",
        "given_name",
        "family_name",
        "customer_name",
        "patient_name",
        "contact_name",
        "person_name",
        "display_name",
    }
)
"""Log-event keys whose string value is a person's name, masked whole."""
SKIP_KEYS = frozenset({"timestamp", "level", "logger", "correlation_id"})


@dataclass(frozen=True)
class PiiMatch:
    """One piece of personal data: its kind and where it sits in the text."""

    kind: str
    start: int
    end: int


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_CARD_BRANDS = (  # issuer prefixes and lengths of the major networks
    (re.compile(r"4"), (13, 16, 19)),  # Visa
    (re.compile(r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)"), (16,)),  # Mastercard
    (re.compile(r"3[47]"), (15,)),  # American Express
    (re.compile(r"3(?:0[0-5]|[68])"), (14, 16, 19)),  # Diners Club
    (re.compile(r"35(?:2[89]|[3-8]\d)"), (16, 17, 18, 19)),  # JCB
    (re.compile(r"6(?:011|5|4[4-9]|2)"), (16, 17, 18, 19)),  # Discover, UnionPay
)


def _card(digits: str) -> bool:
    """A payment-card number: a known network's prefix and length, and the Luhn check."""
    return any(p.match(digits) and len(digits) in lengths for p, lengths in _CARD_BRANDS) and _luhn(digits)


def _valid_iban(candidate: str) -> bool:
    from schwifty import IBAN  # imported on the first IBAN-shaped text (it loads its registry)
    from schwifty.exceptions import SchwiftyException

    try:
        IBAN(candidate)
    except (SchwiftyException, ValueError):
        return False
    return True


def _personal_ip(candidate: str) -> bool:
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)


def find_pii(
    text: str, kinds: Iterable[str] = KINDS, *, phone_region: str = DEFAULT_PHONE_REGION
) -> list[PiiMatch]:
    """Every piece of personal data of `kinds` in `text`, in order, without overlaps (earlier kinds in
    KINDS win: an e-mail's digits are not also a phone number)."""
    if len(text) < 6:  # shorter than the shortest address: most log fields
        return []
    wanted = set(kinds)
    found: list[PiiMatch] = []
    digits = _DIGIT.search(text) is not None  # cards, IBANs, IPv4 and phone numbers all need one

    def add(kind: str, start: int, end: int) -> None:
        if all(end <= m.start or start >= m.end for m in found):
            found.append(PiiMatch(kind, start, end))

    if "email" in wanted and "@" in text:
        for m in _EMAIL.finditer(text):
            add("email", m.start(), m.end())
    if "iban" in wanted and digits:
        for m in _IBAN.finditer(text):
            if _valid_iban(m.group()):
                add("iban", m.start(), m.end())
    if "card" in wanted and digits:
        for m in _CARD.finditer(text):
            number = re.sub(r"[ -]", "", m.group())
            if _card(number) and len(set(number)) > 1:
                add("card", m.start(), m.end())
    if "ip" in wanted:
        if digits and "." in text:
            for m in _IPV4.finditer(text):
                if _personal_ip(m.group()):
                    add("ip", m.start(), m.end())
        if "::" in text or text.count(":") >= 5:
            for m in _IPV6.finditer(text):
                if m.group().count(":") >= 2 and _personal_ip(m.group()):
                    add("ip", m.start(), m.end())
    if "phone" in wanted and digits and _PHONE_HINT.search(text):
        matcher = phonenumbers.PhoneNumberMatcher(text, phone_region, leniency=phonenumbers.Leniency.VALID)
        for phone in matcher:
            add("phone", phone.start, phone.end)
    if "name" in wanted and _NAME_HINT.search(text):
        for m in _MARKED_NAME.finditer(text):
            add("name", m.start("name"), m.end("name"))
    found.sort(key=lambda m: m.start)
    return found


def mask_pii(text: str, kinds: Iterable[str] = KINDS, *, phone_region: str = DEFAULT_PHONE_REGION) -> str:
    """`text` with each piece of personal data replaced by a placeholder such as ``[EMAIL]``."""
    matches = find_pii(text, kinds, phone_region=phone_region)
    if not matches:
        return text
    parts, last = [], 0
    for m in matches:
        parts.append(text[last : m.start])
        parts.append(PLACEHOLDERS[m.kind])
        last = m.end
    parts.append(text[last:])
    return "".join(parts)


def mask_value(value: Any, key: str | None = None) -> Any:
    """Mask strings inside a value (dicts, lists, tuples, sets and strings; anything else is kept as is)."""
    if isinstance(value, str):
        if key is not None and key.lower() in NAME_KEYS and value.strip():
            return PLACEHOLDERS["name"]
        return mask_pii(value)
    if isinstance(value, Mapping):
        return {k: mask_value(v, k if isinstance(k, str) else None) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(mask_value(v) for v in value)
    return value


def mask_log_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: personal data in any field of the event is masked before it is rendered."""
    for key, value in event_dict.items():
        if key not in SKIP_KEYS:
            event_dict[key] = mask_value(value, key)
    return event_dict


_plain_record_factory = logging.getLogRecordFactory()


def _masking_record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _plain_record_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: let the handler report it as usual
        return record
    record.msg, record.args = mask_pii(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = mask_pii(logging.Formatter().formatException(record.exc_info))
    return record


def mask_stdlib_logs(enabled: bool) -> None:
    """Mask the messages and tracebacks of standard-library log records (uvicorn, SQLAlchemy, taskiq …) as
    they are created, whatever handlers print them; `enabled=False` restores the plain records."""
    logging.setLogRecordFactory(_masking_record_factory if enabled else _plain_record_factory)
