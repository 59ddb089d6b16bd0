"""OS rules: the original table as default, robust parsing, rules as validated data."""

from __future__ import annotations

from typing import Any

import pytest

from phoneops.core.errors import ValidationFailed
from phoneops.numbers.osrules import (
    DEFAULT_RULES,
    UNKNOWN,
    ListStatus,
    OsInfo,
    OsRule,
    classify,
    classify_os,
    classify_user_agent,
    parse_os,
    rule_from_dict,
    rule_to_dict,
    rules_from_dicts,
    rules_to_dicts,
    strongest,
)

B, M, W = "blacklist", "monitor", "whitelist"

TABLE = [
    # blacklist: iOS <= 10, Android <= 7, Windows 7 / XP, Ubuntu
    ("IOS 10.3", "ios", 10, B),
    ("IOS 1", "ios", 1, B),
    ("Android 7.1.2", "android", 7, B),
    ("Android 4.4", "android", 4, B),
    ("Windows 7", "windows", 7, B),
    ("Windows XP", "windows", 5, B),
    ("Windows NT 6.1", "windows", 7, B),
    ("Ubuntu", "ubuntu", None, B),
    ("Ubuntu 22.04", "ubuntu", 22, B),
    # monitor: Android 8-9, Android without version, Android >= 17, Windows 10 / 11, Linux
    ("Android 8.0", "android", 8, M),
    ("Android 9", "android", 9, M),
    ("Android", "android", None, M),
    ("Android 17", "android", 17, M),
    ("Android 2025", "android", 2025, M),
    ("Windows 10", "windows", 10, M),
    ("Windows 11", "windows", 11, M),
    ("Linux", "linux", None, M),
    # whitelist: iOS >= 11, macOS, Android 10-16
    ("IOS 18.6", "ios", 18, W),
    ("iOS 17", "ios", 17, W),
    ("IOS 11", "ios", 11, W),
    ("iPadOS 17.1", "ios", 17, W),
    ("Mac OS X 10.15", "macos", 10, W),
    ("MacOS 10.15", "macos", 10, W),
    ("macOS", "macos", None, W),
    ("Android 15.0", "android", 15, W),
    ("Android 10", "android", 10, W),
    ("Android 16", "android", 16, W),
    ("IOS", "ios", None, W),  # versionless iOS: an explicit rule (the original whitelisted it), never dropped
    ("iOS beta", "ios", None, W),
    # unknown
    ("Windows 8", "windows", 8, UNKNOWN),
    ("Windows Vista", "windows", 6, UNKNOWN),
    ("Chrome OS", "chromeos", None, UNKNOWN),
    ("KaiOS 2.5", "kaios", 2, UNKNOWN),
    ("Tizen", "tizen", None, UNKNOWN),
]


@pytest.mark.parametrize(("text", "family", "version", "category"), TABLE)
def test_default_table(text: str, family: str, version: int | None, category: str) -> None:
    verdict = classify(text)
    assert (verdict.family, verdict.version, verdict.category) == (family, version, category)
    assert (verdict.rule is None) == (category == UNKNOWN)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  ios   18.6 ", OsInfo("ios", 18)),
        ("IOS 18.6", OsInfo("ios", 18)),
        ("ANDROID 15.0", OsInfo("android", 15)),
        ("iPhone OS 17_2", OsInfo("ios", 17)),
        ("Mac OS X 10_15_7", OsInfo("macos", 10)),
        ("Windows 10 Pro", OsInfo("windows", 10)),
        ("Windows 8.1", OsInfo("windows", 8)),
        ("Windows NT 10.0", OsInfo("windows", 10)),
        ("Chrome OS 14541.0.0", OsInfo("chromeos", 14541)),
        ("Linux x86_64", OsInfo("linux", None)),
        ("", OsInfo(None, None)),
        ("   ", OsInfo(None, None)),
        (None, OsInfo(None, None)),
    ],
)
def test_parse_os(text: str | None, expected: OsInfo) -> None:
    assert parse_os(text) == expected


@pytest.mark.parametrize(
    ("user_agent", "category", "family"),
    [
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15", W, "ios"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 9_3 like Mac OS X) AppleWebKit/601.1.46", B, "ios"),
        ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36", W, "android"),
        ("Mozilla/5.0 (Linux; U; Android 4.0.3; ko-kr; LG-L160L Build/IML74K)", B, "android"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36", M, "windows"),
        ("Mozilla/5.0 (Windows NT 5.1; rv:52.0) Gecko/20100101 Firefox/52.0", B, "windows"),
        ("Mozilla/5.0 (Windows NT 6.1; WOW64)", B, "windows"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15", W, "macos"),
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0", B, "ubuntu"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36", M, "linux"),
        ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36", UNKNOWN, "chromeos"),
        ("curl/8.4.0", UNKNOWN, None),
        ("", UNKNOWN, None),
        (None, UNKNOWN, None),
    ],
)
def test_user_agents(user_agent: str | None, category: str, family: str | None) -> None:
    verdict = classify_user_agent(user_agent)
    assert (verdict.category, verdict.family) == (category, family)


def test_rule_order_does_not_matter() -> None:
    backwards = tuple(reversed(DEFAULT_RULES))
    for text, *_ in TABLE:
        assert classify(text, backwards).status == classify(text).status


def test_strongest_status_wins() -> None:
    rules = (OsRule("android", None, None, ListStatus.WHITELIST), OsRule("android", 5, 6, ListStatus.BLACKLIST))
    assert classify_os("android", 5, rules).status is ListStatus.BLACKLIST
    assert classify_os("android", 12, rules).status is ListStatus.WHITELIST
    assert strongest(ListStatus.WHITELIST, None, ListStatus.MONITOR) is ListStatus.MONITOR
    assert strongest(ListStatus.BLACKLIST, ListStatus.MONITOR) is ListStatus.BLACKLIST
    assert strongest() is None
    assert ListStatus.BLACKLIST.rank > ListStatus.MONITOR.rank > ListStatus.WHITELIST.rank


def test_rules_round_trip_through_dicts() -> None:
    dicts = rules_to_dicts(DEFAULT_RULES)
    assert rules_from_dicts(dicts) == DEFAULT_RULES
    assert rule_to_dict(DEFAULT_RULES[0]) == {
        "os": "ios", "min_version": None, "max_version": 10, "missing_version": False, "status": "blacklist",
        "note": "iOS 10 and older",
    }


def test_an_admin_rule_changes_the_verdict() -> None:
    rules = (*DEFAULT_RULES, rule_from_dict({"os": "Chrome OS", "status": "Monitor"}))
    assert classify("Chrome OS", rules).status is ListStatus.MONITOR
    assert rules[-1] == OsRule("chromeos", None, None, ListStatus.MONITOR)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"status": "blacklist"}, "os"),
        ({"os": "", "status": "blacklist"}, "os"),
        ({"os": "iOS 17", "status": "blacklist"}, "os"),
        ({"os": "ios"}, "status"),
        ({"os": "ios", "status": "greylist"}, "status"),
        ({"os": "ios", "status": "blacklist", "min_version": 12, "max_version": 3}, "max_version"),
        ({"os": "ios", "status": "blacklist", "min_version": "12"}, "min_version"),
        ({"os": "ios", "status": "blacklist", "min_version": True}, "min_version"),
        ({"os": "ios", "status": "blacklist", "max_version": -1}, "max_version"),
        ({"os": "ios", "status": "blacklist", "missing_version": "yes"}, "missing_version"),
        ({"os": "ios", "status": "blacklist", "missing_version": True, "min_version": 1}, "missing_version"),
        ({"os": "ios", "status": "blacklist", "note": "x" * 500}, "note"),
        ({"os": "ios", "status": "blacklist", "colour": "red"}, "colour"),
    ],
)
def test_invalid_rules_are_refused(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        rule_from_dict(data)
    assert field in caught.value.details
    assert caught.value.status_code == 422


def test_rule_sets_name_bad_rules_by_position() -> None:
    with pytest.raises(ValidationFailed) as caught:
        rules_from_dicts([{"os": "ios", "status": "whitelist"}, "nope", {"os": "android"}])  # type: ignore[list-item]
    assert set(caught.value.details) == {"1", "2"}
