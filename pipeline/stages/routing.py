"""Stage: route assessed cases by the rules and plan their notices.

Steps of `route_cases`:
1. lock the given cases still `assessed` (others were routed already: no-op),
2. derive the facts the rules look at (`case_facts`) and walk the rules,
3. resolve each `notify` to a destination and an address (selectors such as
   `@hosting_provider` use what tracing found; `fallback` when that fails),
4. record the rules that hit and missed, and the decision, on the case,
5. write one outbox row per (case, destination, kind, round) in this same
   transaction, rendered from its template; notices to be sent after a police hold
   are written `held`, the others `planned`,
6. move the case: `assessed -> closed` when a rule closes it without notices, else
   `assessed -> routed -> police_hold` (with a deadline) or `-> notified`,
7. return the ids of the planned notices, for the dispatch stage.

Each case is routed inside a savepoint: a case whose notice cannot be built (bad
input such as a header-breaking host name) stays `assessed` with an error logged,
and the other cases of the batch go on.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.core.clock import Clock
from pipeline.core.config import Settings
from pipeline.core.errors import BadInput
from pipeline.domain.notices import render_notice
from pipeline.domain.rules import (
    Close,
    Decision,
    Destination,
    HoldForPolice,
    Notify,
    RuleSet,
    cached_ruleset,
    evaluate,
)
from pipeline.store.db import insert_ignoring_conflicts, lock_in_state
from pipeline.store.lifecycle import check_notice_moves, transition
from pipeline.store.models import Case, Notice, Report
from pipeline.store.states import CaseState, NoticeState

log = logging.getLogger(__name__)


def case_facts(case: Case, *, home_country: str, ruleset: RuleSet) -> dict[str, Any]:
    """What the rules may look at, derived from the case (see `pipeline.domain.rules.FACTS`)."""
    country = (case.hosting_country or "").upper() or None
    return {
        "legality": case.legality,
        "category": case.category,
        "claimed_category": case.claimed_category,
        "hosting_country": country,
        "hosting_known": country is not None,
        "domestic": country is not None and country == home_country.upper(),
        "member_hotline": ruleset.directory.hotline_for(country, home_country) is not None,
        "behind_cdn": bool(case.behind_cdn),
        "cdn_name": (case.cdn_name or "").lower() or None,
        "url_kind": case.url_kind,
        "source_channel": case.source_channel,
        "urgent": bool(case.urgent),
        "has_provider_contact": bool(case.hosting_abuse_email),
        "origin_unknown": bool(case.origin_unknown),
    }


@dataclass(frozen=True)
class Target:
    destination: Destination
    address: str | None


def resolve(target: str, case: Case, ruleset: RuleSet, home_country: str
            ) -> tuple[Target | None, str]:
    """The destination a key or selector names for this case, or None and why not."""
    directory = ruleset.directory
    dest: Destination | None
    if target == "@police":
        dest = directory.get(directory.home_police)
    elif target == "@hosting_provider":
        dest = directory.by_address_from("provider")
    elif target == "@registrar":
        dest = directory.by_address_from("registrar")
    elif target == "@cdn":
        dest = directory.cdn(case.cdn_name)
        if dest is None:
            return None, f"no CDN destination for {case.cdn_name or 'an unnamed CDN'}"
    elif target == "@hotline_of_hosting_country":
        dest = directory.hotline_for(case.hosting_country, home_country)
        if dest is None:
            return None, f"no member hotline for {case.hosting_country or 'an unknown country'}"
    else:
        dest = directory.get(target)
    if dest is None:
        return None, f"no destination {target}"
    if dest.address_from:
        address = getattr(case, dest.address_from)
        if not address:
            return None, f"tracing found no {dest.address_from}"
        return Target(dest, address), "resolved"
    return Target(dest, dest.address), "resolved" if dest.address else "placeholder address"


@dataclass
class Plan:
    notices: list[tuple[Target, bool, str]]  # (target, after police hold, rule)
    unresolved: list[dict[str, str]]
    hold: bool
    close_reason: str | None


def plan(decision: Decision, case: Case, ruleset: RuleSet, home_country: str) -> Plan:
    """Turn the rules' actions into destinations, in order, each destination once."""
    result = Plan(notices=[], unresolved=[], hold=False, close_reason=None)
    seen: set[str] = set()
    for rule, action in decision.actions:
        if isinstance(action, Close):
            result.close_reason = action.close
        elif isinstance(action, HoldForPolice):
            result.hold = True
        elif isinstance(action, Notify):
            target, why = resolve(action.notify, case, ruleset, home_country)
            if target is None and action.fallback:
                result.unresolved.append({"rule": rule, "target": action.notify, "why": why,
                                          "fallback": action.fallback})
                target, why = resolve(action.fallback, case, ruleset, home_country)
            if target is None:
                result.unresolved.append({"rule": rule, "target": action.fallback or
                                          action.notify, "why": why})
                continue
            if target.destination.key in seen:
                continue
            seen.add(target.destination.key)
            result.notices.append((target, action.after_police_hold, rule))
    if not any(after for _, after, _ in result.notices):
        result.hold = False  # nothing waits for the police: no reason to hold
    if not result.notices and result.close_reason is None:
        # Every destination failed to resolve: the home police are the safety net,
        # so that no illegal content is left without a notice.
        target, _ = resolve("@police", case, ruleset, home_country)
        if target is not None:
            result.notices.append((target, False, "(safety net)"))
    return result


def _reporter_contacts(session: Session, case: Case) -> list[str]:
    rows = session.execute(
        select(Report.reporter_contact).where(Report.case_id == case.id,
                                              Report.reporter_contact.is_not(None))
        .order_by(Report.id)
    ).scalars()
    return [r for r in rows if r]


def route_cases(
    session: Session,
    case_ids: Sequence[int],
    *,
    clock: Clock,
    settings: Settings,
    ruleset: RuleSet | None = None,
) -> list[int]:
    ruleset = ruleset or cached_ruleset(settings.routing.rules_dir)
    now = clock.now()
    planned: list[int] = []
    for case in lock_in_state(session, Case, case_ids, CaseState.ASSESSED):
        try:
            # A savepoint per case: one case that cannot be routed (a notice that cannot
            # be rendered) stays `assessed`, visibly, without holding up the others.
            with session.begin_nested():
                planned.extend(_route_one(session, case, ruleset=ruleset,
                                          settings=settings, now=now))
        except BadInput as exc:
            log.error("Case %s could not be routed and stays assessed: %s", case.id, exc,
                      extra={"case_id": case.id})
    return planned


def _route_one(session: Session, case: Case, *, ruleset: RuleSet, settings: Settings,
               now: datetime) -> list[int]:
    home = settings.app.country
    facts = case_facts(case, home_country=home, ruleset=ruleset)
    decision = evaluate(ruleset.rules, facts)
    result = plan(decision, case, ruleset, home)
    previous_round = int((case.routing or {}).get("round", 0))
    round_ = previous_round + 1
    hold_until = (now + timedelta(hours=settings.routing.police_hold_hours)
                  if result.hold else None)
    case.routing = {
        "at": now.isoformat(),
        "rules": ruleset.digest,
        "round": round_,
        "facts": {k: v for k, v in facts.items()},
        "steps": [s.as_dict() for s in decision.steps],
        "hits": decision.hits,
        "misses": decision.misses,
        "notices": [{"destination": t.destination.key, "kind": t.destination.kind,
                     "after_police_hold": after, "rule": rule}
                    for t, after, rule in result.notices],
        "unresolved": result.unresolved,
        "hold_until": hold_until.isoformat() if hold_until else None,
        "closed": result.close_reason,
    }
    audit = {"rules": decision.hits, "rules_version": ruleset.digest}
    if result.close_reason is not None and not result.notices:
        transition(session, case, CaseState.CLOSED, at=now, actor="routing",
                   data={**audit, "reason": result.close_reason})
        log.info("Case %s closed by rule %s: %s.", case.id, decision.hits[-1:],
                 result.close_reason, extra={"case_id": case.id})
        return []
    transition(session, case, CaseState.ROUTED, at=now, actor="routing",
               data={**audit, "destinations": [t.destination.key
                                               for t, _, _ in result.notices]})
    planned = _write_notices(session, case, result, settings=settings, now=now,
                             round_=round_, hold_until=hold_until)
    if hold_until is not None:
        case.police_hold_until = hold_until
        transition(session, case, CaseState.POLICE_HOLD, at=now, actor="routing",
                   data={"until": hold_until.isoformat()})
        log.info("Case %s routed and held for the police until %s.", case.id,
                 hold_until.isoformat(), extra={"case_id": case.id})
    else:
        transition(session, case, CaseState.NOTIFIED, at=now, actor="routing",
                   data={"notices": len(result.notices)})
        log.info("Case %s routed to %s.", case.id,
                 ", ".join(t.destination.key for t, _, _ in result.notices),
                 extra={"case_id": case.id})
    return planned


def _write_notices(session: Session, case: Case, result: Plan, *, settings: Settings,
                   now: datetime, round_: int, hold_until: datetime | None) -> list[int]:
    contacts: list[str] | None = None
    rows: list[dict[str, Any]] = []
    # Notices are written planned, or held for the police (see NOTICE_TRANSITIONS).
    planned = check_notice_moves([None], NoticeState.PLANNED)
    held_state = check_notice_moves([None], NoticeState.HELD)
    for target, after_hold, _rule in result.notices:
        dest = target.destination
        if dest.kind == "police" and dest.receives_reporter_identity and (
                settings.routing.police_notices_include_reporter):
            contacts = _reporter_contacts(session, case) if contacts is None else contacts
        token = secrets.token_urlsafe(32)
        held = after_hold and hold_until is not None
        rendered = render_notice(
            case, dest, token=token, settings=settings, at=now,
            reporter_contacts=contacts if dest.kind == "police" else None,
            hold_until=hold_until if dest.kind == "police" else None,
        )
        rows.append({
            "case_id": case.id, "destination": dest.key, "destination_kind": dest.kind,
            "kind": "notice", "round": round_, "channel": dest.channel,
            "address": target.address, "language": rendered.language,
            "state": held_state if held else planned, "token": token,
            "subject": rendered.subject, "body": rendered.body, "payload": rendered.payload,
            "attempts": 0, "created_at": now, "due_at": hold_until if held else now,
        })
    inserted = insert_ignoring_conflicts(
        session, Notice.__table__, rows,
        conflict_columns=["case_id", "destination", "kind", "round"],
        returning=[Notice.__table__.c.id, Notice.__table__.c.state],
    )
    return [row.id for row in inserted if row.state == planned]
