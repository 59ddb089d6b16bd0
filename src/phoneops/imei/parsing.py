"""Device-check result texts parsed into typed columns, and order statuses normalised.

A result text is `Label: value` pairs in whatever layout the provider chose: `<br>` (raw or entity-escaped
`&lt;br&gt;`), newlines, HTML blocks (`<p>`, `<div>`, `<li>`, table rows) or one line with ` - ` (as the
GSM Fusion export writes it) or ` | ` between the pairs. The text is first made plain (one pair per line),
then each `Label: value` is matched to a known column by its label (many spellings per column, see
`COLUMNS`); a label we do not know is kept in `extra`, a second value for a column too. The raw text is
always stored next to the columns (docs/imei.md, "Results as columns"), so a parser change is applied to
stored orders with `phoneops imei reparse`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import date, datetime

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

_BREAK = re.compile(
    r"<\s*br\s*/?\s*>|&lt;\s*br\s*/?\s*&gt;|<\s*/?\s*(?:p|div|li|tr|hr|h\d)\b[^<>]*>|&lt;\s*/?\s*(?:p|div|li|tr|hr)\b.*?&gt;",
    re.IGNORECASE,
)
_CELL = re.compile(r"<\s*/\s*t[dh]\s*>\s*<\s*t[dh]\b[^<>]*>", re.IGNORECASE)  # label cell | value cell
_TAG = re.compile(r"<[^<>]*>")
_ESCAPED_TAG = re.compile(r"&lt;/?[a-zA-Z][^&]*?&gt;")
_BLANK_LINES = re.compile(r"\n{2,}")
_LABEL = r"[A-Za-z][A-Za-z0-9 /&()'._#+-]{0,48}?"
# ` - ` or ` | ` between pairs on one line: split only where a `Label:` follows, so values keep their dashes.
_PAIR_SPLIT = re.compile(rf"\s+[-|\u2013]\s+(?={_LABEL}\s*:(?:\s|$))")  # hyphen, bar or en dash
_PAIR = re.compile(rf"^\W*?({_LABEL})\s*:\s*(.*)$")

# Column → label spellings (compared lower-case with punctuation as spaces). Order matters only for
# `_GUESSES`, the fallback for labels not listed here.
COLUMNS: dict[str, tuple[str, ...]] = {
    "model": ("model", "model name", "model description", "device", "device model", "device name", "product",
              "product name", "product type", "marketing name", "description", "phone model"),
    "brand": ("brand", "manufacturer", "make", "vendor", "brand name"),
    "serial": ("serial", "serial number", "serial no", "serialnumber", "sn", "s n", "serial num"),
    "imei2": ("imei2", "imei 2", "imei2 number", "imei 2 number", "second imei", "secondary imei", "imei number 2"),
    "meid": ("meid", "meid number", "meid dec", "meid hex"),
    "carrier": ("carrier", "network", "operator", "locked carrier", "original carrier", "purchase carrier",
                "initial carrier", "sold by carrier", "carrier name", "sim carrier", "network operator"),
    "simlock": ("simlock", "sim lock", "sim lock status", "simlock status", "sim status", "lock status",
                "network lock", "unlock status", "sim unlock status", "carrier lock", "network lock status"),
    "fmi": ("find my iphone", "fmi", "fmi status", "find my", "find my iphone status", "fmip", "find my device",
            "fmi lock"),
    "icloud": ("icloud", "icloud status", "icloud lock", "activation lock", "icloud lost mode", "lost mode",
               "icloud clean lost", "icloud clean lost status", "icloud lock status"),
    "blacklist": ("blacklist", "blacklist status", "gsma blacklist", "gsma blacklist status", "gsma status",
                  "gsma", "black list", "blacklisted", "blacklist records", "lost stolen", "lost stolen status",
                  "gsma black list"),
    "warranty": ("warranty", "warranty status", "coverage", "coverage status", "repairs and service coverage",
                 "repairs service coverage", "applecare", "apple care", "limited warranty", "warranty type"),
    "purchase_date": ("purchase date", "estimated purchase date", "date of purchase", "purchased", "sold date",
                      "purchase", "est purchase date", "sold on"),
    "activation": ("activation status", "activation", "activated", "activation state", "device activated",
                   "activation date"),
    "country": ("country", "purchase country", "sold to country", "sold in", "sales country", "country sold",
                "region", "sold country", "purchase country name"),
}
COLUMN_LABELS: dict[str, str] = {
    "model": "Model", "brand": "Brand", "serial": "Serial", "imei2": "IMEI 2", "meid": "MEID",
    "carrier": "Carrier", "simlock": "SIM lock", "fmi": "Find My iPhone", "icloud": "iCloud",
    "blacklist": "GSMA blacklist", "warranty": "Warranty / coverage", "purchase_date": "Purchase date",
    "activation": "Activation", "country": "Country",
}
_BY_LABEL = {label: column for column, labels in COLUMNS.items() for label in labels}
# Labels not listed above: the first column whose word(s) appear in the label.
_GUESSES: tuple[tuple[str, str], ...] = (
    ("find my", "fmi"), ("icloud", "icloud"), ("blacklist", "blacklist"), ("black list", "blacklist"),
    ("gsma", "blacklist"), ("imei2", "imei2"), ("imei 2", "imei2"), ("meid", "meid"), ("serial", "serial"),
    ("warranty", "warranty"), ("coverage", "warranty"), ("purchase date", "purchase_date"),
    ("activat", "activation"), ("country", "country"), ("sim lock", "simlock"), ("simlock", "simlock"),
    ("carrier", "carrier"), ("model", "model"), ("manufacturer", "brand"), ("brand", "brand"),
)
COLUMN_SIZES = {"imei2": 32, "meid": 32, "fmi": 64, "serial": 64}  # others 255
_BRANDS = ("Apple", "Samsung", "Google", "Xiaomi", "Huawei", "Motorola", "OnePlus", "LG", "Sony", "Nokia", "Oppo",
           "Vivo", "Realme", "ZTE", "Alcatel", "HTC", "Lenovo", "Asus", "Honor", "TCL")
_APPLE_MODEL = re.compile(r"\b(?:iphone|ipad|ipod|apple watch|macbook)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedResult:
    """The columns found in a result text (absent ones missing from `columns`), unknown pairs in `extra`,
    and the clean multi-line `display` text."""

    columns: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    display: str = ""

    def __getattr__(self, name: str) -> str | None:
        if name in COLUMNS:
            return self.columns.get(name)
        raise AttributeError(name)

    @property
    def fmi_on(self) -> bool | None:
        return fmi_flag(self.columns.get("fmi"))

    @property
    def blacklisted(self) -> bool | None:
        return blacklist_flag(self.columns.get("blacklist"))

    @property
    def sim_locked(self) -> bool | None:
        return simlock_flag(self.columns.get("simlock"))

    @property
    def purchased_on(self) -> date | None:
        return parse_date(self.columns.get("purchase_date"))


def normalize_status(value: str | None) -> str:
    """`Pending`, `In Process`, `Completed` or `Rejected` for known texts and ids; anything else as given."""
    text = (value or "").strip()
    return _STATUS_BY_KEY.get(" ".join(text.lower().split()), text)


def clean_display(code: str | None) -> str:
    """Breaks and blocks (raw or escaped) to newlines, tags stripped, entities unescaped, blank lines collapsed."""
    if not code:
        return ""
    text = _CELL.sub(": ", code)
    text = _BREAK.sub("\n", text)
    text = _TAG.sub("", text)
    text = _ESCAPED_TAG.sub("", text)  # tags that arrived entity-escaped
    text = html.unescape(text).replace("\r", "").replace("\xa0", " ")
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return _BLANK_LINES.sub("\n", "\n".join(lines)).strip()


def _label_key(label: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", label.lower()).split())


def column_for(label: str) -> str | None:
    """The column a result label fills (`Find My iPhone` → `fmi`), None for a label we do not know."""
    key = _label_key(label)
    if key in _BY_LABEL:
        return _BY_LABEL[key]
    if key in ("imei", "imei number", "imei1", "imei 1", "imei no"):
        return None
    for word, column in _GUESSES:
        if word in key:
            return column
    return None


def pairs(display: str) -> list[tuple[str, str]]:
    """`(label, value)` pairs of a clean text, one per `Label: value` (lines split further on ` - `/` | `)."""
    found: list[tuple[str, str]] = []
    for line in display.split("\n"):
        for segment in _PAIR_SPLIT.split(line):
            match = _PAIR.match(segment.strip())
            if match:
                found.append((match.group(1).strip(), match.group(2).strip()))
    return found


def parse_code(code: str | None) -> ParsedResult:
    """Parse a result text into columns (first value per column wins), extra pairs and display text."""
    display = clean_display(code)
    columns: dict[str, str] = {}
    extra: dict[str, str] = {}
    for label, value in pairs(display):
        if not value:
            continue
        column = column_for(label)
        if column is not None and column not in columns:
            columns[column] = value[: COLUMN_SIZES.get(column, 255)]
            continue
        key, n = label[:64], 2
        while key in extra:
            key, n = f"{label[:60]} ({n})", n + 1
        extra[key] = value[:1000]
    if "brand" not in columns and (model := columns.get("model")):
        if _APPLE_MODEL.search(model):
            columns["brand"] = "Apple"
        else:
            first = model.split()[0].casefold() if model.split() else ""
            brand = next((b for b in _BRANDS if b.casefold() == first), None)
            if brand is not None:
                columns["brand"] = brand
    return ParsedResult(columns, extra, display)


# --- typed values for filtering -------------------------------------------------------------------------


def _words(value: str | None) -> list[str]:
    return re.findall(r"[a-z]+", (value or "").lower())


def fmi_flag(value: str | None) -> bool | None:
    """Find My iPhone on (True) / off (False) / unknown (None)."""
    words = _words(value)
    if any(w in ("off", "disabled", "no", "inactive", "clean") for w in words):
        return False
    if any(w in ("on", "enabled", "yes", "active", "locked") for w in words):
        return True
    return None


def blacklist_flag(value: str | None) -> bool | None:
    """GSMA blacklisted (True) / clean (False) / unknown (None)."""
    text = " ".join(_words(value))
    if not text:
        return None
    if re.search(r"\b(not (blacklisted|blocked|reported|lost|stolen)|clean|no records?|none|no|unblocked)\b", text):
        return False
    if re.search(r"\b(blacklisted|blocked|lost|stolen|barred|reported|yes|black)\b", text):
        return True
    return None


def simlock_flag(value: str | None) -> bool | None:
    """SIM locked (True) / unlocked (False) / unknown (None)."""
    words = _words(value)
    if any(w in ("unlocked", "unlock", "open", "factory") for w in words) or "not locked" in " ".join(words):
        return False
    if any(w in ("locked", "lock", "yes") for w in words):
        return True
    return None


_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%B %d, %Y", "%b %d, %Y",
                 "%d %B %Y", "%d %b %Y", "%B %d %Y", "%b %d %Y")
_DATE_TEXT = re.compile(
    r"\d{4}[-/]\d{1,2}[-/]\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{4}"
    r"|[A-Za-z]{3,9}\.? \d{1,2},? \d{4}|\d{1,2} [A-Za-z]{3,9} \d{4}"
)


def parse_date(value: str | None) -> date | None:
    """The first date in a value (`2021-03-04`, `03/04/2021` read as US month/day, `Mar 4, 2021`, ...)."""
    match = _DATE_TEXT.search(value or "")
    if match is None:
        return None
    text = match.group(0).replace(".", "" if match.group(0)[0].isalpha() else ".")
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None
