"""What an HLR result means for a number: the outcome mapping, as data, with the original's as default.

| live status                                                          | action    | reason              |
|----------------------------------------------------------------------|-----------|---------------------|
| LIVE on a risky operator (`LIVE_RISKY`)                              | blacklist | HLR_RISKY_NETWORK   |
| DEAD, NOT_AVAILABLE_NETWORK_ONLY, NOT_APPLICABLE, NO_TELESERVICE_... | blacklist | HLR_FAILED          |
| NO_COVERAGE, INCONCLUSIVE, ABSENT_SUBSCRIBER                         | monitor   | HLR_MONITORED       |
| LIVE otherwise                                                       | clean     | (in the clean file) |
| anything else (`OTHER`; the original dropped these silently)         | ignore    |                     |

Admins may override a row (`HlrOutcomeRule`); `reset_rules` returns to the defaults. Status changes go
through the number core as `Authority.hlr` verdicts, applied by its one precedence table (docs/lists.md):
an HLR result may add or tighten a status and lift only what HLR itself set; it never lifts a tracker's
(OS rules) verdict nor a manual decision. A `clean` outcome is sent as a lift for every listed number, so
the history shows that HLR found it reachable even where the status stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import utcnow
from phoneops.core.errors import ValidationFailed
from phoneops.core.security import Principal
from phoneops.hlr.models import HlrLookupItem, HlrOutcomeRule, HlrResult
from phoneops.hlr.risky import RiskyMatcher, load_matcher
from phoneops.numbers.lists import Authority, Verdict
from phoneops.numbers.queries import indexes_with_a_verdict

CLEAN, BLACKLIST, MONITOR, IGNORE = "clean", "blacklist", "monitor", "ignore"
ACTIONS = (CLEAN, BLACKLIST, MONITOR, IGNORE)
LIVE_RISKY = "LIVE_RISKY"
OTHER = "OTHER"
SOURCE = "HLR"
LIFT_REASON = "HLR_LIVE"


@dataclass(frozen=True)
class Rule:
    action: str
    reason: str | None = None

    @property
    def label(self) -> str:
        return f"{self.action} {self.reason}" if self.reason else self.action


DEFAULT_RULES: dict[str, Rule] = {
    "LIVE": Rule(CLEAN),
    LIVE_RISKY: Rule(BLACKLIST, "HLR_RISKY_NETWORK"),
    "DEAD": Rule(BLACKLIST, "HLR_FAILED"),
    "NOT_AVAILABLE_NETWORK_ONLY": Rule(BLACKLIST, "HLR_FAILED"),
    "NOT_APPLICABLE": Rule(BLACKLIST, "HLR_FAILED"),
    "NO_TELESERVICE_PROVISIONED": Rule(BLACKLIST, "HLR_FAILED"),
    "NO_COVERAGE": Rule(MONITOR, "HLR_MONITORED"),
    "INCONCLUSIVE": Rule(MONITOR, "HLR_MONITORED"),
    "ABSENT_SUBSCRIBER": Rule(MONITOR, "HLR_MONITORED"),
    OTHER: Rule(IGNORE),
}
KEYS = tuple(DEFAULT_RULES)


@dataclass(frozen=True)
class Decision:
    key: str  # the rule that applied (a live status, LIVE_RISKY or OTHER)
    rule: Rule
    risky: bool


@dataclass(frozen=True)
class OutcomeMap:
    rules: Mapping[str, Rule]
    risky: RiskyMatcher

    def decide(self, live_status: str, network_name: str, mccmnc: str) -> Decision:
        status = (live_status or "").upper()
        risky = self.risky.match(network_name, mccmnc)
        if status == "LIVE" and risky:
            key = LIVE_RISKY
        elif status in self.rules and status not in (LIVE_RISKY, OTHER):
            key = status
        else:
            key = OTHER
        return Decision(key, self.rules[key], risky and status == "LIVE")


def _validated(key: str, action: str, reason: str | None) -> Rule:
    if key not in DEFAULT_RULES:
        raise ValidationFailed(f"unknown live status {key!r}; one of {', '.join(KEYS)}")
    if action not in ACTIONS:
        raise ValidationFailed(f"action must be one of {', '.join(ACTIONS)}")
    text = (reason or "").strip().upper()[:64] or None
    if action in (BLACKLIST, MONITOR) and not text:
        raise ValidationFailed(f"a {action} outcome needs a reason (e.g. HLR_FAILED)")
    return Rule(action, text if action in (BLACKLIST, MONITOR) else None)


def current_rules(session: Session) -> dict[str, Rule]:
    rules = dict(DEFAULT_RULES)
    for row in session.scalars(select(HlrOutcomeRule)):
        if row.live_status in rules and row.action in ACTIONS:
            rules[row.live_status] = Rule(row.action, row.reason)
    return rules


def load_map(session: Session) -> OutcomeMap:
    return OutcomeMap(current_rules(session), load_matcher(session))


def rules_table(session: Session) -> list[dict[str, Any]]:
    current = current_rules(session)
    return [
        {"live_status": key, "action": current[key].action, "reason": current[key].reason,
         "default_action": DEFAULT_RULES[key].action, "default_reason": DEFAULT_RULES[key].reason,
         "overridden": current[key] != DEFAULT_RULES[key]}
        for key in KEYS
    ]


def set_rules(session: Session, actor: Principal, changes: Mapping[str, Mapping[str, Any]]) -> dict[str, Rule]:
    """Override rows (`{"DEAD": {"action": "monitor", "reason": "HLR_DEAD"}}`); a row equal to its default
    removes the override."""
    validated = {key: _validated(key, str(v.get("action", "")), v.get("reason")) for key, v in changes.items()}
    for key, rule in validated.items():
        row = session.get(HlrOutcomeRule, key)
        if rule == DEFAULT_RULES[key]:
            if row is not None:
                session.delete(row)
            continue
        if row is None:
            session.add(HlrOutcomeRule(live_status=key, action=rule.action, reason=rule.reason,
                                       updated_by=actor.username))
        else:
            row.action, row.reason, row.updated_by, row.updated_at = rule.action, rule.reason, actor.username, utcnow()
    session.flush()
    audit(session, actor, "hlr.outcomes_set", "hlr_outcomes", None,
          {k: {"action": r.action, "reason": r.reason} for k, r in validated.items()})
    return current_rules(session)


def reset_rules(session: Session, actor: Principal) -> dict[str, Rule]:
    session.execute(delete(HlrOutcomeRule))
    audit(session, actor, "hlr.outcomes_reset", "hlr_outcomes", None, {})
    return dict(DEFAULT_RULES)


# --- verdicts ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    """One number's outcome, ready for the number core."""

    e164: str
    blind_index: bytes
    decision: Decision
    evidence: dict[str, Any]


def verdicts(session: Session, decided: Sequence[Decided]) -> list[Verdict]:
    """The number core verdicts for decided numbers (see the module docstring for `clean`)."""
    out: list[Verdict] = []
    clean: dict[bytes, Decided] = {}
    for item in decided:
        rule = item.decision.rule
        if rule.action in (BLACKLIST, MONITOR):
            out.append(Verdict(item.e164, rule.action, Authority.hlr, rule.reason, SOURCE, item.evidence))
        elif rule.action == CLEAN:
            clean[item.blind_index] = item
    for index in sorted(indexes_with_a_verdict(session, list(clean))):
        item = clean[index]
        out.append(Verdict(item.e164, None, Authority.hlr, LIFT_REASON, SOURCE, item.evidence))
    return out


# --- a number's HLR story ------------------------------------------------------------------------------


def results_for_number(session: Session, blind_index: bytes, limit: int = 100) -> list[dict[str, Any]]:
    """Every HLR answer about one number, newest first, with the outcome it had (what the lookup decided, or
    what the rules in force decide for a real-time answer)."""
    outcome_map = load_map(session)
    rows = session.execute(
        select(HlrResult, HlrLookupItem.outcome, HlrLookupItem.reason)
        .outerjoin(HlrLookupItem, HlrLookupItem.result_id == HlrResult.id)
        .where(HlrResult.blind_index == blind_index)
        .order_by(HlrResult.looked_up_at.desc(), HlrResult.id.desc())
        .limit(limit)
    ).all()
    out: list[dict[str, Any]] = []
    for result, outcome, reason in rows:
        if outcome is None:
            rule = outcome_map.decide(result.live_status, result.current_network, result.current_mccmnc).rule
            outcome, reason = rule.action, rule.reason
        out.append({
            "looked_up_at": result.looked_up_at.isoformat(), "live_status": result.live_status,
            "number_type": result.number_type, "original_network": result.original_network,
            "current_network": result.current_network, "current_mccmnc": result.current_mccmnc,
            "country_iso3": result.country_iso3, "ported": result.ported, "lookup_id": result.lookup_id,
            "credits_spent": str(result.credits_spent), "outcome": outcome, "reason": reason,
        })
    return out
