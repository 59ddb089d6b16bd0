"""Records for the hlrlookup.com simulator: deterministic outcomes and the request / CSV formats.

A number's digits (and a seed) always give the same live status, number type, networks and porting.

Networks are real operator names with their MCC-MNC, per country prefix. Those marked `risky` are on the
original optimizer's `risky_operators.json` once lower-cased with spaces removed (e.g. "Sky UK Limited" ->
"skyuklimited"), so a job's risky-operator filter has something to catch.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LIVE_STATUSES = (
    "LIVE", "DEAD", "ABSENT_SUBSCRIBER", "NO_TELESERVICE_PROVISIONED", "NO_COVERAGE", "INCONCLUSIVE",
    "NOT_AVAILABLE_NETWORK_ONLY", "NOT_APPLICABLE",
)
DEFAULT_STATUS_WEIGHTS = {
    "LIVE": 60.0, "DEAD": 8.0, "ABSENT_SUBSCRIBER": 7.0, "NO_COVERAGE": 4.0, "INCONCLUSIVE": 4.0,
    "NO_TELESERVICE_PROVISIONED": 5.0, "NOT_AVAILABLE_NETWORK_ONLY": 6.0, "NOT_APPLICABLE": 6.0,
}
_NON_DIGITS = re.compile(r"\D+")


@dataclass(frozen=True)
class SimNetwork:
    name: str
    mccmnc: str
    risky: bool = False


@dataclass(frozen=True)
class SimCountry:
    prefix: str
    name: str
    iso3: str
    networks: tuple[SimNetwork, ...]


def _nets(*items: tuple[str, str, bool]) -> tuple[SimNetwork, ...]:
    return tuple(SimNetwork(name, mccmnc, risky) for name, mccmnc, risky in items)


COUNTRIES = (
    SimCountry("44", "United Kingdom", "GBR", _nets(
        ("EE Limited", "23430", False), ("Vodafone Limited", "23415", False), ("Telefonica UK Limited", "23410", False),
        ("Hutchison 3G UK Ltd", "23420", False), ("Sky UK Limited", "23457", True),
        ("Truphone Limited", "23425", True), ("Wireless Logic Limited", "23439", True))),
    SimCountry("49", "Germany", "DEU", _nets(
        ("Telekom Deutschland GmbH", "26201", False), ("Vodafone GmbH", "26202", False),
        ("Telefonica Germany GmbH & Co. oHG", "26203", False), ("Truphone GmbH", "26242", True))),
    SimCountry("33", "France", "FRA", _nets(
        ("Orange France", "20801", False), ("Bouygues Telecom", "20820", False),
        ("Free Mobile S.A.S.", "20815", True), ("Transatel", "20822", True),
        ("Societe Francaise du Radiotelephone - SFR", "20810", True))),
    SimCountry("39", "Italy", "ITA", _nets(
        ("Vodafone Italia S.p.A.", "22210", False), ("Wind Tre S.p.A.", "22288", False),
        ("Iliad Italia S.p.A.", "22250", True), ("TIM Telecom Italia SpA", "22201", True),
        ("Poste Mobile S.p.A.", "22233", True))),
    SimCountry("34", "Spain", "ESP", _nets(
        ("Vodafone Espana S.A.U.", "21401", False), ("Telefonica Moviles (Movistar)", "21407", True),
        ("Xfera Moviles", "21404", True), ("Orange Espagne, S.A.U.", "21403", True))),
    SimCountry("48", "Poland", "POL", _nets(
        ("Orange Polska S.A.", "26003", False), ("P4 Sp. z o.o. (Play)", "26006", True),
        ("T-Mobile Polska S.A.", "26002", True), ("Polkomtel Sp. z o.o. (Plus)", "26001", True))),
    SimCountry("1", "United States", "USA", _nets(
        ("AT&T Mobility", "310410", False), ("T-Mobile USA", "310260", False), ("Verizon Wireless", "311480", False))),
)
FALLBACK_COUNTRY = SimCountry(
    "", "Unknown", "", _nets(("Demo Mobile", "00101", False), ("Other Mobile", "00102", False))
)


def normalized_name(name: str) -> str:
    """The original's matching key: lower-cased, spaces removed."""
    return name.lower().replace(" ", "")


def risky_networks() -> list[SimNetwork]:
    return [n for c in COUNTRIES for n in c.networks if n.risky]


def digits(value: object) -> str:
    return _NON_DIGITS.sub("", str(value))


def _fraction(digest: bytes, slot: int) -> float:
    return int.from_bytes(digest[4 * slot : 4 * slot + 4], "big") / 2**32


def country_of(number: str) -> SimCountry:
    matches = [c for c in COUNTRIES if number.startswith(c.prefix)]
    return max(matches, key=lambda c: len(c.prefix)) if matches else FALLBACK_COUNTRY


def _details(country: SimCountry, network: SimNetwork, *, original: bool) -> dict[str, str]:
    details = {"name": network.name, "mccmnc": network.mccmnc, "country_name": country.name}
    details["country_iso3"] = country.iso3
    if original:
        details["area"] = country.name
    details["country_prefix"] = country.prefix
    return details


def _pick(weights: Mapping[str, float], draw: float) -> str:
    total = sum(max(w, 0.0) for w in weights.values()) or 1.0
    point, acc = draw * total, 0.0
    for status, weight in weights.items():
        acc += max(weight, 0.0)
        if point < acc:
            return status
    return "LIVE"


def _number_type(status: str, h: bytes) -> str:
    if status == "NOT_APPLICABLE":
        return "LANDLINE"
    if status == "NOT_AVAILABLE_NETWORK_ONLY":
        return ("MOBILE_OR_LANDLINE", "VOIP")[h[20] % 2]
    return "MOBILE"


def outcome(
    number: str,
    *,
    seed: int = 0,
    weights: Mapping[str, float] = DEFAULT_STATUS_WEIGHTS,
    risky_ratio: float = 0.15,
    ported_ratio: float = 0.12,
) -> dict[str, Any]:
    """The result fields decided by the number (`error` .. `is_ported`, in wire order) for a digits string.

    Not a phone number (fewer than 7 or more than 15 digits): type UNKNOWN, NOT_APPLICABLE, no network.
    """
    h = hashlib.sha256(f"{seed}:{number}".encode()).digest()
    if 7 <= len(number) <= 15:
        status = _pick(weights, _fraction(h, 0))
        kind = _number_type(status, h)
    else:
        status, kind = "NOT_APPLICABLE", "UNKNOWN"
    country = country_of(number)
    risky = [n for n in country.networks if n.risky]
    plain = [n for n in country.networks if not n.risky] or list(country.networks)
    pool = risky if risky and _fraction(h, 1) < risky_ratio else plain
    current = pool[h[12] % len(pool)]
    others = [n for n in country.networks if n != current]
    ported = bool(others) and _fraction(h, 2) < ported_ratio
    original = others[h[13] % len(others)] if ported else current
    has_original = status != "NOT_APPLICABLE"
    has_current = has_original and status not in ("DEAD", "NOT_AVAILABLE_NETWORK_ONLY")
    return {
        "error": "NONE",
        "detected_telephone_number": number,
        "formatted_telephone_number": "",
        "telephone_number_type": kind,
        "live_status": status,
        "original_network": "AVAILABLE" if has_original else "NOT_AVAILABLE",
        "original_network_details": _details(country, original, original=True) if has_original else {},
        "current_network": "AVAILABLE" if has_current else "NOT_AVAILABLE",
        "current_network_details": _details(country, current, original=False) if has_current else {},
        "is_ported": ("YES" if ported else "NO") if has_current else "UNKNOWN",
    }


def merge(result: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` laid over `result`; nested objects (network details) are merged key by key."""
    merged = dict(result)
    for key, value in override.items():
        old = merged.get(key)
        merged[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, Mapping) else value
    return merged


# --- request entries and the results CSV ------------------------------------------------------------

# The batch results CSV: first column the submitted number (unnamed), then these (docs/providers/hlr_lookup.md).
CSV_COLUMNS = (
    "error", "request_parameters.telephone_number", "request_parameters.cache_days_private",
    "request_parameters.cache_days_global", "request_parameters.save_to_cache", "request_parameters.output_format",
    "credits_spent", "detected_telephone_number", "formatted_telephone_number", "telephone_number_type",
    "live_status", "original_network", "original_network_details.name", "original_network_details.mccmnc",
    "original_network_details.country_name", "original_network_details.country_iso3",
    "original_network_details.area", "original_network_details.country_prefix", "current_network",
    "current_network_details.name", "current_network_details.mccmnc", "current_network_details.country_name",
    "current_network_details.country_iso3", "current_network_details.country_prefix", "is_ported", "timestamp",
)
DEFAULT_OPTIONS: dict[str, Any] = {
    "input_format": "", "output_format": "", "save_to_cache": "YES", "cache_days_global": 0,
    "cache_days_private": 0, "get_ported_date": "NO", "get_landline_status": "NO", "usa_status": "NO",
}
_CHOICES = {
    "output_format": ("", "E164", "PLUS_E164", "NATIONAL", "INTERNATIONAL", "ISO3"),
    "save_to_cache": ("YES", "NO", "PRIVATE"),
    "get_ported_date": ("YES", "NO"), "get_landline_status": ("YES", "NO"), "usa_status": ("YES", "NO"),
}


class BadRequest(Exception):
    """A 400 `BAD_REQUEST` with this message."""


def validate_entry(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or not str(item.get("telephone_number", "")).strip():
        raise BadRequest("Missing parameter: telephone_number")
    unknown = sorted(set(item) - {"telephone_number", *DEFAULT_OPTIONS})
    if unknown:
        raise BadRequest(f"Unknown parameter: {unknown[0]}")
    entry = {"telephone_number": str(item["telephone_number"]), **DEFAULT_OPTIONS, **item}
    for name, allowed in _CHOICES.items():
        if entry[name] not in allowed:
            raise BadRequest(f"Invalid {name} requested")
    for name in ("cache_days_global", "cache_days_private"):
        if isinstance(entry[name], bool) or not isinstance(entry[name], int) or not 0 <= entry[name] <= 30:
            raise BadRequest(f"Invalid {name} requested")
    return entry


def csv_row(submitted: str, result: Mapping[str, Any]) -> list[str]:
    flat: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{sub}": v for sub, v in value.items()})
        else:
            flat[key] = value
    return [submitted, *("" if flat.get(c) is None else str(flat[c]) for c in CSV_COLUMNS)]
