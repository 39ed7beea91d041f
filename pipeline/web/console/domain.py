"""What the console pages ask of the domain, in one place.

Each function gathers what one page shows, calling the domain modules that own the
logic (`pipeline.stages.assessment` for the queue, claims, decisions, welfare and the case
view; `pipeline.store.takedown_models` for the stage clock; `pipeline.stages.stats` for the figures;
`pipeline.domain.rules` for rule validation). Nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from pipeline.app import casework
from pipeline.app.auth import require as require_permission
from pipeline.app.casework import in_transaction, own_welfare
from pipeline.app.runtime import Runtime
from pipeline.core.clock import as_utc
from pipeline.core.errors import BadInput, FieldError
from pipeline.core.i18n import N_, _
from pipeline.core.i18n import format_number as format_decimal
from pipeline.domain.problems import Problem, assessment_problems
from pipeline.domain.rules import RulesInvalid, load_ruleset, placeholders
from pipeline.stages import assessment
from pipeline.stages.stats import export_stats
from pipeline.store.assessment_models import CaseLease
from pipeline.store.models import Case, Notice, User
from pipeline.store.states import CaseState
from pipeline.store.takedown_models import STAGES, TakedownCheck, stage_times
from pipeline.store.trace_models import Trace
from pipeline.web.console.charts import columns, horizontal_bars
from pipeline.web.console.labels import label
from pipeline.web.deps import require_roles
from pipeline.web.security import Viewer
from pipeline.web.stats import STATS_ROLES, get_stats, get_url_export
from schemas.assessment import AgeGroup, AssessmentIn, ContentType, Gender, Legality, SiteType
from schemas.intake import Category

# --- the queue and claims --------------------------------------------------------------

T = TypeVar("T")

OPEN_STATES = [s.value for s in CaseState if s not in (CaseState.REMOVED, CaseState.CLOSED)]


def work(runtime: Runtime, viewer: Viewer, fn: Callable[[Session], T]) -> T:
    """Run `fn` in one transaction as the viewer; a denial is audited on its own
    (`pipeline.app.casework.in_transaction`, the same path as the API)."""
    return in_transaction(runtime, viewer.principal, fn)


def queue_page(runtime: Runtime, viewer: Viewer) -> dict[str, Any]:
    """The queue (priority first, then oldest), the counts by state, and the viewer's
    claimed cases and welfare counts."""

    def read(session: Session) -> dict[str, Any]:
        queue = assessment.list_queue(session, viewer.principal, limit=200)
        counts = dict(session.execute(
            select(Case.state, func.count()).where(Case.state.in_(OPEN_STATES))
            .group_by(Case.state)).all())
        mine = [assessment.lease_out(lease, case, viewer.name) for lease, case in
                session.execute(
                    select(CaseLease, Case).join(Case, Case.id == CaseLease.case_id)
                    .where(CaseLease.user_id == viewer.user_id)
                    .order_by(CaseLease.claimed_at)).all()]
        return {"queue": queue, "counts": counts, "mine": mine,
                "welfare": welfare_of(session, runtime, viewer)}

    return work(runtime, viewer, read)


def welfare_of(session: Session, runtime: Runtime, viewer: Viewer) -> Any:
    """The viewer's counts today (analysts and supervisors), for the break prompt."""
    if viewer.role not in ("analyst", "supervisor"):
        return None
    return own_welfare(session, runtime, viewer.principal)


def claim_next(runtime: Runtime, viewer: Viewer, *, kind: str = "first") -> str | None:
    """Claim the next case for the viewer; its reference, or None when none waits."""
    if kind not in ("any", "first", "second"):
        raise FieldError(None, N_("Claim a first or a second assessment, or any case."))
    lease = casework.claim(runtime, viewer.principal, kind=kind)
    return lease.case_ref if lease is not None else None


def release(runtime: Runtime, viewer: Viewer, ref: str) -> None:
    casework.release(runtime, viewer.principal, ref)


def claim_site(runtime: Runtime, viewer: Viewer, *, ref: str | None = None,
               site: str | None = None) -> int:
    """Claim the open cases of a case's site, or of a registered domain: how many."""
    if ref is not None:
        _site, leases, _others = casework.claim_site(runtime, viewer.principal,
                                                     case_key=ref)
    elif site:
        _site, leases, _others = casework.claim_site(runtime, viewer.principal,
                                                     registered_domain=site)
    else:
        raise FieldError(None, N_("Name the site (its registered domain) whose cases you "
                                  "claim."))
    return len(leases)


def renew(runtime: Runtime, viewer: Viewer, ref: str) -> None:
    """Extend the viewer's own lease on a case."""
    casework.renew(runtime, viewer.principal, ref)


def assess(runtime: Runtime, viewer: Viewer, ref: str, values: dict[str, Any],
           also: tuple[str, ...] = ()) -> tuple[str, int | None]:
    """Record the viewer's assessment of case `ref` (committed, then sent on to routing
    by the same path as the API); the outcome in words and the case's id."""
    decision = AssessmentIn.model_validate(values)
    result = casework.decide(runtime, viewer.principal, [ref, *also], decision)
    if not result.decisions:
        return "nothing", None
    return str(result.decisions[0].outcome), result.decisions[0].case_id


def describe_problems(exc: Exception) -> list[Problem]:
    """One sentence (msgid) per problem, naming the field (`pipeline.domain.problems`)."""
    return assessment_problems(exc)


@dataclass(frozen=True)
class Preset:
    key: str
    values: dict[str, str]  # form field -> value, as the form posts them
    words: list[str]  # the values' labels (msgids), in the order of the form


def presets(runtime: Runtime) -> list[Preset]:
    """The configured one-key decisions (`console.presets`), each checked against the
    assessment schema: a preset that could never be saved is a configuration error."""
    out = []
    for preset in runtime.settings.console.presets:
        given = preset.model_dump(exclude={"shortcut"}, exclude_none=True)
        try:
            AssessmentIn.model_validate(given)
        except ValidationError as exc:
            raise BadInput(f"console.presets: key {preset.shortcut}: {exc}") from None
        values = {name: ("yes" if value else "no") if name == "commercial" else str(value)
                  for name, value in given.items()}
        words = [str(value) for name, value in given.items()
                 if name not in ("commercial",) and not (name == "legality" and "category"
                                                          in given)]
        if given.get("commercial") is True:
            words.append("commercial")
        out.append(Preset(preset.shortcut, values, words))
    return out


def assessment_choices() -> dict[str, list[tuple[str, str]]]:
    """The options of each field of the assessment form, from the schema's enums
    (the label is the value's words: `labels.LABELS`)."""

    def options(enum: Any) -> list[tuple[str, str]]:
        return [(member.value, member.value) for member in enum]

    return {"legality": options(Legality), "category": options(Category),
            "age_group": options(AgeGroup), "gender": options(Gender),
            "site_type": options(SiteType), "content_type": options(ContentType)}


# --- the case page ---------------------------------------------------------------------


def case_page(runtime: Runtime, viewer: Viewer, ref: str) -> dict[str, Any]:
    """The case as the viewer may see it (`assessment.case_view` checks that, and
    records who looked at a reporter's contact), with the trace evidence, the notices
    and the takedown timeline."""
    def read(session: Session) -> dict[str, Any]:
        view = assessment.case_view(session, viewer.principal, ref, now=runtime.clock.now(),
                                    settings=runtime.settings.assessment)
        case = session.get(Case, view.id)
        assert case is not None
        return {
            "case": case,
            "view": view,
            "traces": traces_of(session, case),
            "notices": notices_of(session, case),
            "timeline": timeline_of(session, case),
            "checks": checks_of(session, case),
            "routing": case.routing if isinstance(case.routing, dict) else None,
            "holds_lease": view.lease is not None and view.lease.holder == viewer.name,
            "may_decide": case.state == CaseState.AWAITING_SUPERVISOR
            and viewer.role == "supervisor",
            "welfare": welfare_of(session, runtime, viewer),
            **site_cases_of(session, case, viewer),
        }

    return work(runtime, viewer, read)


SITE_OPEN_STATES = (CaseState.AWAITING_ASSESSMENT.value, CaseState.IN_ASSESSMENT.value)


def site_cases_of(session: Session, case: Case, viewer: Viewer) -> dict[str, list[Any]]:
    """The other open cases of the case's site (registered domain, else host): those the
    viewer holds (one decision can cover them) and those still to claim."""
    site = (Case.registered_domain == case.registered_domain if case.registered_domain
            else Case.host == case.host)
    rows = session.execute(
        select(Case, CaseLease.user_id).outerjoin(CaseLease, CaseLease.case_id == Case.id)
        .where(site, Case.id != case.id, Case.state.in_(SITE_OPEN_STATES))
        .order_by(Case.received_at).limit(200)).all()
    held = [c for c, holder in rows if holder is not None and holder == viewer.user_id]
    free = [c for c, holder in rows if holder is None]
    return {"site_cases": held, "open_site_cases": free}


def traces_of(session: Session, case: Case) -> list[Any]:
    """Every trace of the case, newest first (the evidence table)."""
    return list(session.execute(
        select(Trace).where(Trace.case_id == case.id).order_by(Trace.traced_at.desc())
    ).scalars())


def notices_of(session: Session, case: Case) -> list[Notice]:
    return list(session.execute(
        select(Notice).where(Notice.case_id == case.id)
        .order_by(Notice.created_at, Notice.round, Notice.id)
    ).scalars())


@dataclass(frozen=True)
class Stage:
    name: str
    at: datetime | None
    since_received: timedelta | None


def timeline_of(session: Session, case: Case) -> list[Stage]:
    """The INHOPE stage times of the case (pipeline.store.takedown_models's clock)."""

    times = stage_times(session, case)
    start = as_utc(case.received_at)
    return [Stage(name, times.get(name),
                  as_utc(at) - start if (at := times.get(name)) is not None else None)
            for name in STAGES]


def checks_of(session: Session, case: Case) -> list[Any]:

    return list(session.execute(
        select(TakedownCheck).where(TakedownCheck.case_id == case.id)
        .order_by(TakedownCheck.at.desc()).limit(20)
    ).scalars())


def review_page(runtime: Runtime, viewer: Viewer) -> dict[str, Any]:
    """Cases waiting for a second analyst, and the disputed ones (supervisors decide)."""
    def read(session: Session) -> dict[str, Any]:
        second = assessment.list_queue(session, viewer.principal,
                                       state="awaiting_second_assessment", limit=200)
        disputed = assessment.list_queue(session, viewer.principal,
                                         state="awaiting_supervisor", limit=200)
        return {"second": second.items, "disputed": disputed.items,
                "can_decide_disputes": viewer.role == "supervisor"}

    return work(runtime, viewer, read)


# --- the team view -----------------------------------------------------------------------


@dataclass(frozen=True)
class TeamRow:
    name: str
    role: str
    held: int
    welfare: Any


def team_view(runtime: Runtime, viewer: Viewer) -> list[TeamRow]:
    """Per analyst: the cases they hold now and today's welfare counts."""

    def read(session: Session) -> list[TeamRow]:
        require_permission(viewer.principal, "welfare.view_all",
                           what="see other analysts' welfare counts")
        counts = assessment.welfare_all(session, now=runtime.clock.now(),
                                        settings=runtime.settings.assessment)
        held = dict(session.execute(
            select(User.name, func.count(CaseLease.case_id))
            .join(CaseLease, CaseLease.user_id == User.id).group_by(User.name)).all())
        roles = dict(session.execute(select(User.name, User.role)).all())
        return [TeamRow(w.user, roles.get(w.user, ""), int(held.get(w.user, 0)), w)
                for w in counts]

    return work(runtime, viewer, read)


# --- statistics --------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive


def period(runtime: Runtime, start: str | None, end: str | None) -> Period:
    """The period asked for, by default the last 90 days up to today (at most ten
    years, as the statistics API allows)."""
    today = as_utc(runtime.clock.now()).date()
    try:
        last = date.fromisoformat(end) if end else today
        first = date.fromisoformat(start) if start else last - timedelta(days=89)
    except ValueError:
        raise FieldError(None, N_("Write the dates as year-month-day, for example "
                                  "2026-12-31.")) from None
    if first > last:
        raise FieldError(None, N_("Choose a start date on or before the end date."))
    if (last - first).days > 3660:
        raise FieldError(None, N_("Choose a period of at most ten years."))
    return Period(first, last)


def statistics(runtime: Runtime, viewer: Viewer, when: Period) -> Any:
    """The period's figures (`pipeline.stages.stats.export_stats`, the same as the export)."""

    require_roles(runtime, viewer.principal, STATS_ROLES, "read statistics")
    with runtime.session_factory.begin() as session:
        return export_stats(session, when.start, when.end, settings=runtime.settings,
                            now=runtime.clock.now())


def statistics_export(runtime: Runtime, viewer: Viewer, when: Period, fmt: str) -> Any:
    """The export download: the statistics API's own answer, as the viewer."""


    result = get_stats(when.start, when.end, fmt, None, runtime, viewer.principal)  # type: ignore[arg-type]
    if isinstance(result, Response):
        return result
    return Response(result.model_dump_json(indent=2), media_type="application/json",
                    headers={"Content-Disposition": 'attachment; filename='
                             f'"stats-{when.start}-{when.end}.json"'})


def url_export(runtime: Runtime, viewer: Viewer, when: Period) -> Any:
    """The per-URL export (admins only; audited by the statistics API)."""

    response = get_url_export(when.start, when.end, "csv", runtime, viewer.principal)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="urls-{when.start}-{when.end}.csv"')
    return response


@dataclass(frozen=True)
class Charts:
    removal_distribution: Any
    removal_by_country: Any
    illegal_by_country: Any
    stages: Any


def _hours(value: float) -> str:
    if value >= 48:
        return _("%(n)s d") % {"n": format_decimal(round(value / 24, 1))}
    return _("%(n)s h") % {"n": format_decimal(round(value, 1))}


def charts(figures: Any) -> Charts:
    """The statistics page's charts, drawn from the export's figures."""

    overall = figures.removal.overall
    cal = overall.calendar
    distribution: list[tuple[str, float]] = []
    if overall.count and cal.share_within_1_day is not None:
        within = [cal.share_within_1_day or 0, cal.share_within_3_days or 0,
                  cal.share_within_7_days or 0, 1.0]
        labels = [_("within 1 day"), _("1 to 3 days"), _("3 to 7 days"), _("over 7 days")]
        previous = 0.0
        for words, share in zip(labels, within, strict=True):
            distribution.append((words, round((share - previous) * overall.count)))
            previous = share
    by_country = [(t.key, t.calendar.median_hours) for t in figures.removal.by_hosting_country
                  if t.calendar.median_hours is not None]
    illegal = [(c.key, c.count) for c in figures.illegal_by_hosting_country
               if c.count is not None]
    stages = [(label(s.stage), s.timing.calendar.median_hours)
              for s in figures.stages if s.timing.calendar.median_hours is not None]
    return Charts(
        removal_distribution=columns(distribution, title=_(
            "Removal time (received to removed), cases by calendar time")),
        removal_by_country=horizontal_bars(by_country, title=_(
            "Median removal time by hosting country"), fmt=_hours),
        illegal_by_country=horizontal_bars(illegal, title=_("Illegal URLs by hosting country"),
                                           css_class="bar alt"),
        stages=horizontal_bars(stages, title=_("Median duration of each stage"), fmt=_hours),
    )


# --- rules ---------------------------------------------------------------------------


def rules_table(runtime: Runtime) -> tuple[Any, list[str], list[tuple[str, str]]]:
    """The rules to show as a table (None when invalid), what `hotline rules check`
    says, and the destinations (key, name) whose address is still a placeholder."""
    try:
        ruleset = load_ruleset(runtime.settings.routing.rules_dir)
    except RulesInvalid as exc:
        return None, list(exc.problems), []
    except OSError as exc:
        return None, [f"{runtime.settings.routing.rules_dir}: {exc.strerror}"], []
    names = ruleset.directory.destinations
    return ruleset, [], [(key, names[key].name) for key in placeholders(ruleset)]


def rules_problems(runtime: Runtime) -> list[str]:
    """What `hotline rules check` says about the routing rules (empty: all valid), and
    the destinations whose address an operator has yet to fill in."""

    try:
        ruleset = load_ruleset(runtime.settings.routing.rules_dir)
    except RulesInvalid as exc:
        return list(exc.problems)
    except OSError as exc:
        return [f"{runtime.settings.routing.rules_dir}: {exc.strerror}"]
    return [f"destinations.yaml: {key}: the address is a placeholder an operator has to "
            "fill in" for key in placeholders(ruleset)]
