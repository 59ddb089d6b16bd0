"""OS classification rules as data: the newest rule set in the database, else the original's table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.errors import ValidationFailed
from phoneops.core.security import Principal
from phoneops.numbers.models import OsRuleSet
from phoneops.numbers.osrules import DEFAULT_RULES, OsRule, classify, classify_user_agent, rule_from_dict, rule_to_dict

MAX_RULES = 200


def current_rules(session: Session) -> list[OsRule]:
    latest = session.scalar(select(OsRuleSet).order_by(OsRuleSet.id.desc()).limit(1))
    if latest is None:
        return list(DEFAULT_RULES)
    return [rule_from_dict(item) for item in latest.rules]


def rules_as_dicts(session: Session) -> list[dict[str, Any]]:
    return [rule_to_dict(rule) for rule in current_rules(session)]


def replace_rules(
    session: Session, actor: Principal, rules: list[dict[str, Any]], note: str | None = None
) -> list[OsRule]:
    """Replace the rule set (admins); validated as a whole, audited, the old set kept as history."""
    if not rules:
        raise ValidationFailed("a rule set needs at least one rule")
    if len(rules) > MAX_RULES:
        raise ValidationFailed(f"at most {MAX_RULES} rules")
    parsed = [rule_from_dict(item) for item in rules]
    before = rules_as_dicts(session)
    session.add(OsRuleSet(rules=[rule_to_dict(r) for r in parsed], created_by=actor.username, note=note))
    session.flush()
    audit(
        session,
        actor,
        "numbers.rules.replace",
        "os_rules",
        None,
        {"before": len(before), "after": len(parsed), "note": note},
    )
    return parsed


def reset_rules(session: Session, actor: Principal) -> list[OsRule]:
    return replace_rules(session, actor, [rule_to_dict(r) for r in DEFAULT_RULES], note="reset to defaults")


def classify_text(session: Session, os_text: str | None = None, user_agent: str | None = None) -> dict[str, Any]:
    """Classify an OS string (as trackers send it) or a raw user agent with the rules in force."""
    rules = current_rules(session)
    verdict = classify_user_agent(user_agent, rules) if user_agent else classify(os_text or "", rules)
    return {
        "status": verdict.status.value if verdict.status else None,
        "os": verdict.family,
        "version": verdict.version,
        "rule": rule_to_dict(verdict.rule) if verdict.rule else None,
    }
