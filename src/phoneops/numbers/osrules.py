"""OS rules: which list a device's operating system puts a number on. Rules are data, not code.

A rule names an OS family and a version condition:

- ``missing_version=True``: only when the version is unknown ("Android" with no version);
- no bounds: any version, known or not ("Ubuntu", "macOS");
- ``min_version`` and/or ``max_version``: a known major version in that inclusive range.

Every matching rule counts and the strongest status wins (blacklist > monitor > whitelist), so the order of
rules does not matter and admins can add one without reordering the rest. No match means "unknown".

Families are normalised (ios, android, windows, macos, linux, ubuntu, chromeos; anything else its name
lower-cased without spaces) and versions are major integers. Windows versions are names: XP is 5, Vista 6,
8.1 is 8, and "Windows NT x.y" maps to its marketing version (NT 6.1 is 7).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final, NamedTuple

import ua_parser

from phoneops.core.errors import ValidationFailed

__all__ = [
    "DEFAULT_RULES",
    "UNKNOWN",
    "ListStatus",
    "OsInfo",
    "OsRule",
    "Verdict",
    "classify",
    "classify_click",
    "classify_os",
    "classify_user_agent",
    "parse_os",
    "rule_from_dict",
    "rule_to_dict",
    "rules_from_dicts",
    "rules_to_dicts",
    "strongest",
]

UNKNOWN: Final = "unknown"  # the verdict when no rule matches (not a list status)


class ListStatus(StrEnum):
    BLACKLIST = "blacklist"
    MONITOR = "monitor"
    WHITELIST = "whitelist"

    @property
    def rank(self) -> int:
        """Precedence: blacklist 3 > monitor 2 > whitelist 1."""
        return _RANK[self]


_RANK = {ListStatus.BLACKLIST: 3, ListStatus.MONITOR: 2, ListStatus.WHITELIST: 1}


def strongest(*statuses: ListStatus | None) -> ListStatus | None:
    """The status that wins by precedence; None when none is given."""
    present = [s for s in statuses if s is not None]
    return max(present, key=lambda s: s.rank) if present else None


class OsInfo(NamedTuple):
    family: str | None
    version: int | None


@dataclass(frozen=True, slots=True)
class OsRule:
    os: str
    min_version: int | None
    max_version: int | None
    status: ListStatus
    note: str = ""
    missing_version: bool = False

    def matches(self, family: str | None, version: int | None) -> bool:
        if family != self.os:
            return False
        if self.missing_version:
            return version is None
        if self.min_version is None and self.max_version is None:
            return True
        if version is None:
            return False
        return (self.min_version is None or version >= self.min_version) and (
            self.max_version is None or version <= self.max_version
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    status: ListStatus | None  # None: no rule matched ("unknown")
    family: str | None
    version: int | None
    rule: OsRule | None

    @property
    def category(self) -> str:
        return self.status.value if self.status is not None else UNKNOWN


_B, _M, _W = ListStatus.BLACKLIST, ListStatus.MONITOR, ListStatus.WHITELIST

# The original optimizer's default OS table, kept as it was (how the statuses it gives combine: docs/lists.md).
DEFAULT_RULES: tuple[OsRule, ...] = (
    OsRule("ios", None, 10, _B, "iOS 10 and older"),
    OsRule("android", None, 7, _B, "Android 7 and older"),
    OsRule("windows", 7, 7, _B, "Windows 7"),
    OsRule("windows", 5, 5, _B, "Windows XP"),
    OsRule("ubuntu", None, None, _B, "Ubuntu, any version"),
    OsRule("android", 8, 9, _M, "Android 8-9"),
    OsRule("android", None, None, _M, "Android without a version", missing_version=True),
    OsRule("android", 17, None, _M, "Android 17 and newer (trackers also send years such as 2025)"),
    OsRule("windows", 10, 11, _M, "Windows 10 / 11"),
    OsRule("linux", None, None, _M, "Linux, any version"),
    OsRule("ios", 11, None, _W, "iOS 11 and newer"),
    OsRule("ios", None, None, _W, "iOS without a version (the original whitelisted it)", missing_version=True),
    OsRule("macos", None, None, _W, "macOS / Mac OS X, any version"),
    OsRule("android", 10, 16, _W, "Android 10-16"),
)

_FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (family, re.compile(pattern))
    for family, pattern in (
        ("ios", r"\b(?:ios|iphone\s?os|ipad\s?os|iphone|ipad)\b"),
        ("chromeos", r"\b(?:chrome\s?os|cros)\b"),
        ("macos", r"\b(?:mac\s?os(?:\s?x)?|os\s?x|macintosh|mac)\b"),
        ("android", r"\bandroid\b"),
        ("windows", r"\b(?:windows|win)\b"),
        ("ubuntu", r"\bubuntu\b"),
        ("linux", r"\blinux\b"),
    )
)
_VERSION = re.compile(r"(?:^|\s)v?(\d{1,9})(?:[._](\d+))*(?=\s|$)")
_WINDOWS_NAMES = {"xp": 5, "vista": 6}
_WINDOWS_NT = {(5, 1): 5, (5, 2): 5, (6, 0): 6, (6, 1): 7, (6, 2): 8, (6, 3): 8, (10, 0): 10}
_NT_VERSION = re.compile(r"\bnt\s+(\d+)[._](\d+)")


def parse_os(text: str | None) -> OsInfo:
    """(family, major version) from what trackers send: ``IOS 18.6``, ``Android 15.0``, ``Mac OS X 10.15``,
    ``Windows XP``, ``Chrome OS``... Case and spacing do not matter; None or blank gives (None, None)."""
    if not text or not text.strip():
        return OsInfo(None, None)
    s = " ".join(text.lower().split())
    family = next((name for name, pattern in _FAMILIES if pattern.search(s)), None)
    if family is None:
        family = re.sub(r"[^a-z0-9]+", "", _VERSION.sub(" ", s)) or None
    if family == "windows":
        nt = _NT_VERSION.search(s)
        if nt:
            return OsInfo(family, _WINDOWS_NT.get((int(nt.group(1)), int(nt.group(2)))))
        named = next((v for word, v in _WINDOWS_NAMES.items() if re.search(rf"\b{word}\b", s)), None)
        if named is not None:
            return OsInfo(family, named)
    match = _VERSION.search(s)
    return OsInfo(family, int(match.group(1)) if match else None)


def classify_os(family: str | None, version: int | None, rules: Sequence[OsRule] = DEFAULT_RULES) -> Verdict:
    """The strongest status among matching rules (ties: the first such rule)."""
    best: OsRule | None = None
    for rule in rules:
        if rule.matches(family, version) and (best is None or rule.status.rank > best.status.rank):
            best = rule
    return Verdict(best.status if best else None, family, version, best)


def classify(os_text: str | None, rules: Sequence[OsRule] = DEFAULT_RULES) -> Verdict:
    """Classify a tracker's OS string (e.g. Voluum's ``os-version``)."""
    return classify_os(*parse_os(os_text), rules)


@lru_cache(maxsize=8192)
def _ua_os(user_agent: str) -> OsInfo:
    found = ua_parser.parse_os(user_agent)
    if found is None or not found.family or found.family == "Other":
        return OsInfo(None, None)
    version = ".".join(part for part in (found.major, found.minor) if part)
    return parse_os(f"{found.family} {version}".strip())


def classify_user_agent(user_agent: str | None, rules: Sequence[OsRule] = DEFAULT_RULES) -> Verdict:
    """Classify a raw User-Agent header through ua-parser's OS detection."""
    return classify_os(*(_ua_os(user_agent) if user_agent else OsInfo(None, None)), rules)


def classify_click(os_text: str | None, user_agent: str | None, rules: Sequence[OsRule] = DEFAULT_RULES) -> Verdict:
    """What the syncs use: the tracker's OS field, and the raw User-Agent when that field names no OS."""
    verdict = classify(os_text, rules)
    if verdict.family is None and user_agent and user_agent.strip():
        return classify_user_agent(user_agent, rules)
    return verdict


# --- rules as plain dicts (API, database) ---------------------------------------------------------------

_FIELDS = {"os", "min_version", "max_version", "status", "note", "missing_version"}
_MAX_VERSION = 100_000
_MAX_NOTE = 200


def rule_to_dict(rule: OsRule) -> dict[str, Any]:
    return {
        "os": rule.os,
        "min_version": rule.min_version,
        "max_version": rule.max_version,
        "missing_version": rule.missing_version,
        "status": rule.status.value,
        "note": rule.note,
    }


def _version(data: Mapping[str, Any], field: str, errors: dict[str, str]) -> int | None:
    value = data.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_VERSION:
        errors[field] = f"must be a whole number from 0 to {_MAX_VERSION}, or null"
        return None
    return value


def _rule_errors(data: object) -> tuple[OsRule | None, dict[str, str]]:
    if not isinstance(data, Mapping):
        return None, {"rule": "must be an object"}
    errors = {key: "unknown field" for key in data if key not in _FIELDS}
    os_text = data.get("os")
    family: str | None = None
    if not isinstance(os_text, str) or not os_text.strip():
        errors["os"] = "required: an OS family such as ios, android, windows, macos, linux"
    else:
        family, version = parse_os(os_text)
        if version is not None:
            errors["os"] = "name the family only; put versions in min_version / max_version"
    low, high = _version(data, "min_version", errors), _version(data, "max_version", errors)
    if low is not None and high is not None and low > high:
        errors["max_version"] = "must not be below min_version"
    missing = data.get("missing_version", False)
    if not isinstance(missing, bool):
        errors["missing_version"] = "must be true or false"
    elif missing and (low is not None or high is not None):
        errors["missing_version"] = "a rule for a missing version cannot have version bounds"
    status = data.get("status")
    if not isinstance(status, str) or status.strip().lower() not in {s.value for s in ListStatus}:
        errors["status"] = "must be one of blacklist, monitor, whitelist"
    note = data.get("note", "")
    if not isinstance(note, str) or len(note) > _MAX_NOTE:
        errors["note"] = f"must be text of at most {_MAX_NOTE} characters"
    if errors or family is None or not isinstance(status, str):
        return None, errors
    rule = OsRule(family, low, high, ListStatus(status.strip().lower()), str(note), bool(missing))
    return rule, {}


def rule_from_dict(data: Mapping[str, Any]) -> OsRule:
    """A rule from its dict form, validated; ValidationFailed lists every bad field."""
    rule, errors = _rule_errors(data)
    if rule is None:
        raise ValidationFailed("invalid OS rule", details=errors)
    return rule


def rules_from_dicts(items: Iterable[Mapping[str, Any]]) -> tuple[OsRule, ...]:
    """A whole rule set; ValidationFailed names each bad rule by position."""
    rules, problems = [], {}
    for position, item in enumerate(items):
        rule, errors = _rule_errors(item)
        if rule is None:
            problems[str(position)] = errors
        else:
            rules.append(rule)
    if problems:
        raise ValidationFailed("invalid OS rules", details=problems)
    return tuple(rules)


def rules_to_dicts(rules: Iterable[OsRule]) -> list[dict[str, Any]]:
    return [rule_to_dict(rule) for rule in rules]
