"""The GSM Fusion result `code` parsed into fields, and order statuses normalised.

`code` is HTML-ish text with `<br>` separators (entity-escaped on the wire, so it may arrive as
`&lt;br&gt;` when a layer did not unescape it). The rules follow the original's working sync
(shared/reference/hammer-original.md, "Result parsing rules").
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

PENDING = "Pending"
IN_PROCESS = "In Process"
COMPLETED = "Completed"
REJECTED = "Rejected"
OPEN_STATUSES = frozenset({PENDING, IN_PROCESS})
FINAL_STATUSES = frozenset({COMPLETED, REJECTED})

# Status ids from the vendor PDF: 1 Pending, 2 Completed, 3 Rejected, 4 In Process.
_STATUS_BY_KEY = {
    "1": PENDING,
    "2": COMPLETED,
    "3": REJECTED,
    "4": IN_PROCESS,
    "pending": PENDING,
    "completed": COMPLETED,
    "rejected": REJECTED,
    "in process": IN_PROCESS,
    "inprocess": IN_PROCESS,
    "in progress": IN_PROCESS,
}

_BREAK = re.compile(r"<\s*br\s*/?\s*>|&lt;\s*br\s*/?\s*&gt;", re.IGNORECASE)
_TAG = re.compile(r"<[^<>]*>")
_ESCAPED_TAG = re.compile(r"&lt;/?[a-zA-Z][^&]*?&gt;")
_BLANK_LINES = re.compile(r"\n{2,}")

_LABELS: dict[str, str] = {
    "carrier": r"carrier",
    "simlock": r"sim[\s-]?lock(?:\s+status)?",
    "model": r"model",
    "fmi": r"find\s+my\s+iphone|fmi",
    "imei2": r"imei\s?2(?:\s+number)?",
}


@dataclass(frozen=True)
class ParsedResult:
    """Fields found in a result `code` (None when absent) and the clean multi-line `display` text."""

    carrier: str | None
    simlock: str | None
    model: str | None
    fmi: str | None
    imei2: str | None
    display: str


def normalize_status(value: str | None) -> str:
    """`Pending`, `In Process`, `Completed` or `Rejected` for known texts and ids; anything else as given."""
    text = (value or "").strip()
    return _STATUS_BY_KEY.get(" ".join(text.lower().split()), text)


def clean_display(code: str | None) -> str:
    """`<br>` (raw or escaped) to newlines, tags stripped, entities unescaped, blank lines collapsed."""
    if not code:
        return ""
    text = _BREAK.sub("\n", code)
    text = _TAG.sub("", text)
    text = _ESCAPED_TAG.sub("", text)  # tags that arrived entity-escaped
    text = html.unescape(text).replace("\r", "")
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return _BLANK_LINES.sub("\n", "\n".join(lines)).strip()


def _field(lines: list[str], pattern: str) -> str | None:
    at_start = re.compile(rf"^\W*(?:{pattern})\s*:\s*(.*)$", re.IGNORECASE)
    anywhere = re.compile(rf"\b(?:{pattern})\s*:\s*(.*)$", re.IGNORECASE)
    for regex in (at_start, anywhere):  # a label opening its line wins over one inside a line
        for line in lines:
            match = regex.search(line)
            if match:
                return match.group(1).strip() or None
    return None


def parse_code(code: str | None) -> ParsedResult:
    """Parse a result `code` into carrier, SIM lock, model, Find My iPhone, IMEI 2 and display text."""
    display = clean_display(code)
    lines = display.split("\n") if display else []
    return ParsedResult(
        carrier=_field(lines, _LABELS["carrier"]),
        simlock=_field(lines, _LABELS["simlock"]),
        model=_field(lines, _LABELS["model"]),
        fmi=_field(lines, _LABELS["fmi"]),
        imei2=_field(lines, _LABELS["imei2"]),
        display=display,
    )
