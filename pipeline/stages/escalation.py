"""Reminders and the escalation ladder, as rules data (rules/escalation.yaml).

Steps of `run_escalation` (one scheduler run):
1. find the cases still waiting for removal (`notified`, `monitoring`) with a notice
   sent to a provider-like destination,
2. per case, work out what is due: reminder k of each such notice once
   `first_after_hours + (k-1) * repeat_every_hours` have passed since it was sent, and
   each ladder step once its `after_hours` have passed since the first such notice;
   nothing while a removal claim waits for its verifying check,
3. write each as a notice row (kind `reminder` or `escalation`) with insert-or-ignore
   on the notices' unique key (case, destination, kind, round), so a repeated run
   never makes a second copy, and record it on the case's audit stream,
4. after commit, ask the dispatcher to deliver the new notices.

Reminder k of a notice has round k + 1 (the notice itself is round 1); ladder step n
has round n.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.core import i18n
from pipeline.core.config_files import load_yaml
from pipeline.core.errors import ConfigError
from pipeline.core.i18n import N_
from pipeline.core.messaging import DISPATCH, Enqueuer
from pipeline.core.worktime import WorkCalendar
from pipeline.domain.notices import render_notice
from pipeline.domain.rules import load_directory
from pipeline.stages.monitoring import PRESENT
from pipeline.store.audit import build_event
from pipeline.store.db import insert_ignoring_conflicts
from pipeline.store.lifecycle import check_notice_moves
from pipeline.store.models import Case, Notice
from pipeline.store.states import CaseState, NoticeState
from pipeline.store.takedown_models import TakedownWatch

log = logging.getLogger(__name__)

WAITING_STATES = (CaseState.NOTIFIED, CaseState.MONITORING)
HOME_POLICE = "@police"
SELECTORS = (HOME_POLICE, "@registrar", "@upstream")


class ReminderRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kinds: list[str] = Field(["provider", "cdn"], min_length=1,
                             description="Destination kinds whose notices are repeated.")
    first_after_hours: float = Field(24, gt=0, description="First reminder after this.")
    repeat_every_hours: float = Field(24, gt=0, description="Then again every this.")
    max_reminders: int = Field(2, ge=0, le=20, description="Most reminders per notice.")


class LadderStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: str = Field(..., min_length=1, description="Short name of the step.")
    description: str = Field("", description="Why the step exists.")
    after_hours: float = Field(..., gt=0, description="Threshold since the first notice.")
    notify: str = Field(..., min_length=1,
                        description="Destination key in destinations.yaml, or a selector: "
                        "@police, @registrar, @upstream.")


class EscalationRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    working_time: bool = Field(False, description="Count hours in working time.")
    reminder: ReminderRule = Field(default_factory=ReminderRule)
    ladder: list[LadderStep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> EscalationRules:
        names = [s.step for s in self.ladder]
        if len(set(names)) != len(names):
            raise ValueError("ladder: step names must be unique")
        hours = [s.after_hours for s in self.ladder]
        if hours != sorted(hours):
            raise ValueError("ladder: steps must be in increasing order of after_hours")
        return self


def load_rules(path: str | Path, *, directory: Any | None = None) -> EscalationRules:
    """Read and validate the rules file; `ConfigError` names file, step and field.
    With a destinations directory, every `notify` must name one of its entries."""
    path = Path(path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}".replace("\n", " ")]) from None
    try:
        rules = EscalationRules.model_validate(raw or {})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = list(error["loc"])
            if loc[:1] == ["ladder"] and len(loc) >= 2 and isinstance(loc[1], int):
                steps = (raw or {}).get("ladder") or []
                name = steps[loc[1]].get("step") if isinstance(steps[loc[1]], dict) else None
                where = f"ladder step {loc[1] + 1}" + (f" ({name})" if name else "")
                loc = [where, *loc[2:]]
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{path}: {'.'.join(map(str, loc)) or '(top level)'}: {message}")
        raise ConfigError(problems) from None
    if directory is not None:
        problems = [
            f"{path}: ladder step {i} ({s.step}).notify: no destination '{s.notify}' "
            "in the directory"
            for i, s in enumerate(rules.ladder, 1)
            if s.notify not in SELECTORS and directory.get(s.notify) is None
        ]
        if problems:
            raise ConfigError(problems)
    return rules


@dataclass
class Due:
    case_id: int
    kind: str  # reminder, escalation
    round: int
    destination: str
    what: str  # "reminder 2 of notice 17", "step registrar"
    source_notice_id: int | None = None


@dataclass
class _Sent:
    id: int
    case_id: int
    destination: str
    sent_at: datetime


def elapsed_hours(start: datetime, now: datetime, rules: EscalationRules,
                  calendar: WorkCalendar | None) -> float:
    if rules.working_time and calendar is not None:
        return calendar.working_seconds(start, now) / 3600
    return (now - start).total_seconds() / 3600


def due_items(
    notices: Iterable[_Sent], rules: EscalationRules, *, now: datetime,
    calendar: WorkCalendar | None = None,
) -> list[Due]:
    """Everything due for one case's sent provider-like notices (a pure function)."""
    notices = sorted(notices, key=lambda n: (n.sent_at, n.id))
    if not notices:
        return []
    due: list[Due] = []
    reminder = rules.reminder
    for notice in notices:
        hours = elapsed_hours(notice.sent_at, now, rules, calendar)
        if hours < reminder.first_after_hours:
            continue
        count = 1 + int((hours - reminder.first_after_hours) // reminder.repeat_every_hours)
        for k in range(1, min(count, reminder.max_reminders) + 1):
            due.append(Due(notice.case_id, "reminder", k + 1, notice.destination,
                           f"reminder {k}", notice.id))
    hours = elapsed_hours(notices[0].sent_at, now, rules, calendar)
    for n, step in enumerate(rules.ladder, 1):
        if hours >= step.after_hours:
            due.append(Due(notices[0].case_id, "escalation", n, step.notify,
                           f"step {step.step}"))
    return due


def _claim_pending(watch: TakedownWatch | None) -> bool:
    """A removal claim waits for its check: no reminder meanwhile. A check after the
    claim that still saw the content lifts it."""
    if watch is None or watch.claimed_at is None:
        return False
    return not (watch.last_checked_at is not None and watch.last_checked_at > watch.claimed_at
                and watch.last_outcome == PRESENT)


def run_escalation(
    session_factory: Any, enqueuer: Enqueuer, settings: Any, *, clock: Any,
    rules: EscalationRules | None = None, directory: Any | None = None,
    limit: int = 5_000,
) -> dict[str, int]:
    """One scheduled run (see the module's docstring). Returns counts."""
    if directory is None:
        directory = load_directory_for(settings)
    if rules is None:
        rules = load_rules(settings.escalation.rules_file, directory=directory)
    calendar = WorkCalendar.from_settings(settings.worktime) if rules.working_time else None
    counts = {"reminders": 0, "escalations": 0, "unresolved": 0}
    new_ids: list[int] = []
    with session_factory.begin() as session:
        now = clock.now()
        first_after = min([rules.reminder.first_after_hours]
                          + [s.after_hours for s in rules.ladder])
        # Working hours are never more than calendar hours: a calendar-time cut-off
        # never leaves out a case that is due in working time.
        cutoff = now - timedelta(hours=first_after)
        rows = session.execute(
            select(Notice.id, Notice.case_id, Notice.destination, Notice.sent_at)
            .join(Case, Case.id == Notice.case_id)
            .where(Case.state.in_([s.value for s in WAITING_STATES]),
                   Notice.kind == "notice",
                   Notice.destination_kind.in_(rules.reminder.kinds),
                   Notice.sent_at.is_not(None), Notice.sent_at <= cutoff)
            .order_by(Notice.case_id, Notice.sent_at)
            .limit(limit)
        ).all()
        by_case: dict[int, list[_Sent]] = {}
        for notice_id, case_id, destination, sent_at in rows:
            by_case.setdefault(case_id, []).append(_Sent(notice_id, case_id, destination,
                                                         sent_at))
        for case_id, sent in by_case.items():
            watch = session.get(TakedownWatch, case_id)
            if _claim_pending(watch):
                continue
            items = due_items(sent, rules, now=now, calendar=calendar)
            if not items:
                continue
            case = session.get(Case, case_id)
            assert case is not None
            for item in items:
                if item.kind == "escalation":
                    item.destination = _resolve_key(item.destination, directory, case)
            made = {(d, k, r): at for d, k, r, at in session.execute(
                select(Notice.destination, Notice.kind, Notice.round, Notice.created_at)
                .where(Notice.case_id == case_id, Notice.kind.in_(["reminder", "escalation"]))
            ).all()}
            items = _next_only(items, made, now, rules)
            for item in items:
                notice_id = _write(session, case, item, directory, settings, now)
                if notice_id is None:
                    continue
                state = session.get(Notice, notice_id)
                assert state is not None
                if state.state == NoticeState.PLANNED:
                    new_ids.append(notice_id)
                    counts["reminders" if item.kind == "reminder" else "escalations"] += 1
                else:
                    counts["unresolved"] += 1
    enqueuer.send(DISPATCH, new_ids)
    return counts


def _next_only(items: list[Due], made: dict[tuple[str, str, int], datetime], now: datetime,
               rules: EscalationRules) -> list[Due]:
    """Drop what exists; of the reminders, keep per notice only the next one, and only
    once the one before it is `repeat_every_hours` old (a late run never sends two
    reminders at once)."""
    kept: list[Due] = []
    seen: set[str] = set()
    repeat = timedelta(hours=rules.reminder.repeat_every_hours)
    for item in items:
        if (item.destination, item.kind, item.round) in made:
            continue
        if item.kind == "reminder":
            if item.destination in seen:
                continue
            seen.add(item.destination)
            previous = made.get((item.destination, "reminder", item.round - 1))
            if item.round > 2 and (previous is None or previous + repeat > now):
                continue
        kept.append(item)
    return kept


def load_directory_for(settings: Any) -> Any | None:
    problems: list[str] = []
    directory = load_directory(Path(settings.routing.rules_dir) / "destinations.yaml",
                               problems)
    if problems:
        raise ConfigError(problems)
    return directory


def _resolve_key(key: str, directory: Any | None, case: Case) -> str:
    """A ladder target as a destination key: @police is the home police unit,
    @registrar the directory's registrar entry (address from tracing), @upstream the
    entry `upstream-as<ASN>` of the case's hosting network."""
    if key == HOME_POLICE and directory is not None:
        return str(directory.home_police)
    if key == "@registrar" and directory is not None:
        dest = directory.by_address_from("registrar")
        return str(dest.key) if dest is not None else "registrar"
    if key == "@upstream":
        return f"upstream-as{case.hosting_asn}" if case.hosting_asn else "upstream-unknown"
    return key


def _write(session: Session, case: Case, item: Due, directory: Any | None, settings: Any,
           now: datetime) -> int | None:
    """Insert one reminder or escalation notice (or nothing, if it exists already) and
    record it on the case. Returns the new notice's id."""
    token = secrets.token_urlsafe(24)
    row: dict[str, Any] = {
        "case_id": case.id, "kind": item.kind, "round": item.round, "token": token,
        "created_at": now, "due_at": now, "attempts": 0, "payload": {},
    }
    problem = None
    if item.kind == "reminder":
        source = session.get(Notice, item.source_notice_id)
        assert source is not None
        row.update(destination=source.destination, destination_kind=source.destination_kind,
                   channel=source.channel, address=source.address, language=source.language,
                   subject=f"Reminder {item.round - 1}: {source.subject or ''}".strip(),
                   body=_reminder_text(item.round - 1, source),
                   payload={**(source.payload or {}), "reminder_of": source.token,
                            "reminder": item.round - 1},
                   state=check_notice_moves([None], NoticeState.PLANNED))
    else:
        key = item.destination
        dest = directory.get(key) if directory is not None else None
        row.update(destination=key, destination_kind=getattr(dest, "kind", "unknown"),
                   channel=getattr(dest, "channel", "file"),
                   language=getattr(dest, "language", "en") or "en")
        address = None
        if dest is None:
            problem = f"no destination '{key}' in the directory"
        else:
            address = dest.address or (getattr(case, dest.address_from) if dest.address_from
                                       else None)
            if address is None and dest.channel != "file":
                problem = (f"the case has no {dest.address_from}" if dest.address_from
                           else f"destination '{key}' has no address yet")
        row["address"] = address
        if problem is None:
            row.update(_render(case, dest, token, settings, now, item),
                       state=check_notice_moves([None], NoticeState.PLANNED))
        else:
            row.update(state=check_notice_moves([None], NoticeState.DEAD),
                       last_error=f"escalation not possible: {problem}")
    inserted = insert_ignoring_conflicts(
        session, Notice.__table__, [row],
        conflict_columns=["case_id", "destination", "kind", "round"], returning=[Notice.id],
    )
    if not inserted:
        return None
    notice_id = int(inserted[0][0])
    action = "case_reminded" if item.kind == "reminder" else (
        "case_escalated" if problem is None else "case_escalation_unresolved")
    data: dict[str, Any] = {"notice_id": notice_id, "destination": row["destination"],
                            "kind": item.kind, "round": item.round, "what": item.what}
    if problem:
        data["problem"] = problem
    session.add(build_event(case, actor="system", action=action, at=now, data=data,
                            case_id=case.id))
    log.info("Case %s: %s to %s planned as notice %s.", case.id, item.what,
             row["destination"], notice_id, extra={"case_id": case.id, "notice_id": notice_id})
    if problem:
        log.warning("Case %s: escalation %s could not be made: %s.", case.id, item.what,
                    problem, extra={"case_id": case.id, "notice_id": notice_id})
    return notice_id


def _reminder_text(k: int, source: Notice) -> str:
    sent = source.sent_at.strftime("%Y-%m-%d %H:%M UTC") if source.sent_at else "earlier"
    return (f"REMINDER {k}: the content we notified you of on {sent} is still "
            "online.\n\n" + (source.body or ""))


def _render(case: Case, dest: Any, token: str, settings: Any, now: datetime, item: Due
            ) -> dict[str, Any]:
    """Subject, body and payload through the notice templates."""

    rendered = render_notice(case, dest, token=token, settings=settings, at=now)
    lang = rendered.language
    title = _REMINDER if item.kind == "reminder" else _ESCALATION
    return {"subject": i18n.gettext(lang, title) % {"subject": rendered.subject},
            "body": i18n.gettext(lang, _STILL_ONLINE) + "\n\n" + rendered.body,
            "payload": {**rendered.payload, "escalation": item.what},
            "language": lang}


# The words a reminder or an escalation adds to the notice (in its language).
_REMINDER = N_("Reminder: %(subject)s")
_ESCALATION = N_("Escalation: %(subject)s")
_STILL_ONLINE = N_("The content below is still online after our notice to the hosting "
                   "provider.")
