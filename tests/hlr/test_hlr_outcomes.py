"""The outcome mapping (the original's defaults, as data) and risky-operator matching, without a database."""

from __future__ import annotations

import pytest

from phoneops.hlr.engine import backoff
from phoneops.hlr.outcomes import DEFAULT_RULES, LIVE_RISKY, OTHER, OutcomeMap, Rule
from phoneops.hlr.risky import SEED_NAMES, RiskyMatcher, normalize_mccmnc, normalize_name
from phoneops.simulators.hlr_outcomes import normalized_name, risky_networks

MAPPING = OutcomeMap(DEFAULT_RULES, RiskyMatcher(frozenset(normalize_name(n) for n in SEED_NAMES),
                                                 frozenset({"23499"})))


@pytest.mark.parametrize(
    ("live_status", "network", "mccmnc", "expected"),
    [
        ("LIVE", "EE Limited", "23430", Rule("clean")),
        ("LIVE", "Sky UK Limited", "23457", Rule("blacklist", "HLR_RISKY_NETWORK")),
        ("LIVE", "Renamed Network", "23499", Rule("blacklist", "HLR_RISKY_NETWORK")),
        ("live", "  Truphone   Limited ", "", Rule("blacklist", "HLR_RISKY_NETWORK")),
        ("DEAD", "Sky UK Limited", "23457", Rule("blacklist", "HLR_FAILED")),
        ("NOT_AVAILABLE_NETWORK_ONLY", "", "", Rule("blacklist", "HLR_FAILED")),
        ("NOT_APPLICABLE", "", "", Rule("blacklist", "HLR_FAILED")),
        ("NO_TELESERVICE_PROVISIONED", "", "", Rule("blacklist", "HLR_FAILED")),
        ("NO_COVERAGE", "", "", Rule("monitor", "HLR_MONITORED")),
        ("INCONCLUSIVE", "", "", Rule("monitor", "HLR_MONITORED")),
        ("ABSENT_SUBSCRIBER", "Sky UK Limited", "", Rule("monitor", "HLR_MONITORED")),
        ("", "", "", Rule("ignore")),
        ("SOMETHING_NEW", "", "", Rule("ignore")),
    ],
)
def test_the_originals_mapping_is_the_default(live_status: str, network: str, mccmnc: str, expected: Rule) -> None:
    decision = MAPPING.decide(live_status, network, mccmnc)
    assert decision.rule == expected
    assert decision.risky == (expected.reason == "HLR_RISKY_NETWORK")


def test_pseudo_statuses_cannot_be_sent_by_the_provider() -> None:
    assert MAPPING.decide(LIVE_RISKY, "EE Limited", "23430").key == OTHER
    assert MAPPING.decide(OTHER, "", "").rule == Rule("ignore")


def test_seed_is_the_originals_269_names_and_covers_the_simulators_risky_networks() -> None:
    assert len(SEED_NAMES) == 269 == len(set(SEED_NAMES))
    assert all(name == normalize_name(name) for name in SEED_NAMES)
    assert {normalized_name(n.name) for n in risky_networks()} <= set(SEED_NAMES)
    assert normalize_name("Sky UK\tLimited") == "skyuklimited"
    assert normalize_mccmnc("234-57") == "23457"


def test_backoff_honours_retry_after_within_bounds() -> None:
    assert backoff(1, None) == 0.25 and backoff(3, None) == 1.0 and backoff(10, None) == 8.0
    assert backoff(1, 2.5) == 2.5 and backoff(1, 0) == 0.05 and backoff(1, 500) == 60.0
