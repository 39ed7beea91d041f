"""The counsellors' console pages: the call form (keyboard first: one
screen, sensible defaults, Enter records), the helpline case page, and the referral.

Text comes from the gettext catalogs (`pipeline.core.i18n`): Serbian (Latin) unless
the browser asks for English. The work is `pipeline.stages.helpline`'s, through the
same functions as the API (`pipeline.web.helpline`); this module reads forms and
renders. Bad input is shown beside the form with a 422, never a 5xx.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import Response

from pipeline.app.runtime import Runtime
from pipeline.core import i18n
from pipeline.core.errors import BadInput, NotFound
from pipeline.core.i18n import N_
from pipeline.domain.problems import Problem, form_problems
from pipeline.stages import helpline
from pipeline.web import helpline as api
from pipeline.web.console.render import render
from pipeline.web.security import Viewer, require, require_form
from schemas.helpline import (
    AgeGroup,
    CallerType,
    CaseType,
    ContactChannel,
    ContactIn,
    Relation,
    ReplyIn,
    TakeUpIn,
    TaskIn,
    Topic,
)

router = APIRouter(include_in_schema=False)
COUNSELLORS = ("counsellor", "supervisor")

# Labels of the choices, marked for the catalogs and translated when rendered.
LABELS: dict[str, str] = {
    "phone": N_("Phone"), "email": N_("E-mail"), "contact_form": N_("Contact form"),
    "chat": N_("Chat"), "social_media": N_("Social media"), "in_person": N_("In person"),
    "child": N_("Child"), "parent": N_("Parent"), "teacher": N_("Teacher"),
    "other": N_("Other"), "sextortion": N_("Sextortion"), "grooming": N_("Grooming"),
    "cyberbullying": N_("Cyberbullying"), "hate_speech": N_("Hate speech"),
    "csam": N_("Child sexual abuse material"), "self_harm": N_("Self-harm"),
    "online_safety": N_("Online safety advice"), "privacy": N_("Privacy"),
    "information": N_("Information"), "under_10": N_("Under 10"), "10_13": N_("10 to 13"),
    "14_15": N_("14 or 15"), "16_17": N_("16 or 17"), "adult": N_("Adult"),
    "unknown": N_("Not known"), "self": N_("The child themself"), "sibling": N_("Sibling"),
    "friend": N_("Friend"), "stranger": N_("Stranger"), "open": N_("Open"),
    "advisory": N_("Advisory (closed)"), "referred": N_("Referred"),
    "answered": N_("Answered"), "closed": N_("Closed"),
    "from_mailbox": N_("from the mailbox"),
    "from_form": N_("from the public form"),
}
DONE = {
    "recorded": N_("The contact was recorded."),
    "referred": N_("The case was referred. The institution gets it once, with the case "
                   "file."),
    "advisory": N_("The case was closed as advisory."),
    "reply": N_("The institution's reply was recorded."),
    "task": N_("The task was added."),
    "urls": N_("The URLs were reported into the URL pipeline."),
    "closed": N_("The case was closed."),
}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _language(request: Request) -> str:
    wanted = request.query_params.get("lang")
    if wanted and i18n.canonical(wanted) in i18n.DEFAULT_LANGUAGES:
        return i18n.canonical(wanted) or i18n.SERBIAN_LATIN
    return i18n.negotiate(request.headers.get("accept-language"))


def _page(request: Request, name: str, context: dict[str, Any], status_code: int = 200
          ) -> Response:
    lang = _language(request)
    with i18n.set_language(lang):
        label = {key: i18n.gettext(lang, value) for key, value in LABELS.items()}
        done = request.query_params.get("done")
        notice = {"notice": i18n.gettext(lang, DONE[done])} if done in DONE else {}
        return render(request, name, {"label": label, "lang": lang, **notice, **context},
                      status_code=status_code)


def _form_context(runtime: Runtime, viewer: Viewer) -> dict[str, Any]:
    with runtime.session_factory() as session:
        contacts = helpline.list_contacts(session, limit=20)
        waiting = helpline.waiting_contacts(session, limit=50)
        open_cases = helpline.list_cases(session, states=["open", "referred", "answered"],
                                         limit=50)
        welfare = helpline.counsellor_welfare(session, now=runtime.clock.now(),
                                              settings=runtime.settings,
                                              counsellors=[viewer.name])[0]
    return {"contacts": contacts, "waiting": waiting, "open_cases": open_cases,
            "welfare": welfare,
            "channels": list(ContactChannel), "callers": list(CallerType),
            "topics": list(Topic), "case_types": list(CaseType), "ages": list(AgeGroup),
            "relations": list(Relation)}


@router.get("/console/helpline")
def call_form(request: Request, viewer: Viewer = Depends(require(*COUNSELLORS))) -> Response:
    return _page(request, "helpline/contacts.html", {**_form_context(_runtime(request), viewer),
                                                     "form": {}})


def _text(form: FormData, name: str) -> str | None:
    value = str(form.get(name) or "").strip()
    return value or None


def _case_fields(form: FormData) -> dict[str, Any] | None:
    """The new case's fields, when a case type is chosen."""
    if not _text(form, "case_type"):
        return None
    urls = [u.strip() for u in str(form.get("urls") or "").splitlines() if u.strip()]
    return {"case_type": _text(form, "case_type"), "urgent": form.get("urgent") == "on",
            "child_age_group": _text(form, "child_age_group"),
            "relation": _text(form, "relation"), "accounts": _text(form, "accounts"),
            "notes": _text(form, "notes"), "urls": urls}


# The id of each field's element where it differs from the field's name (the error
# summary links to it and marks it invalid).
CONTACT_IDS = {"duration_minutes": "minutes"}
CASE_IDS = {"destination": "reply-destination", "text": "reply-text", "urls": "more-urls",
            "destinations": "refer"}


def _problems(exc: Exception, ids: dict[str, str]) -> list[Problem]:
    """Why the form was refused, one sentence per field in the page's language."""
    return [replace(p, field=ids.get(p.field, p.field)) if p.field else p
            for p in form_problems(exc)]


def _contact_in(form: FormData) -> ContactIn:
    case = _case_fields(form)
    contact = _text(form, "caller_contact")
    return ContactIn.model_validate({
        "channel": _text(form, "channel") or "phone", "caller_type": _text(form, "caller_type"),
        "topic": _text(form, "topic"), "duration_minutes": _text(form, "minutes"),
        "language": _text(form, "language") or "sr", "anonymous": contact is None,
        "caller_contact": contact, "summary": _text(form, "summary"), "case": case,
        "join_case": _text(form, "join_case"), "received_at": _text(form, "received_at")})


@router.post("/console/helpline/contacts")
def post_contact(request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*COUNSELLORS))) -> Response:
    viewer, form = posted
    runtime = _runtime(request)
    try:
        item = _contact_in(form)
        if item.received_at is not None and item.received_at.tzinfo is None:
            # The browser's datetime-local: the centre's time.
            item.received_at = item.received_at.replace(
                tzinfo=ZoneInfo(runtime.settings.worktime.timezone))
        recorded = api.record_contact(runtime, viewer.principal, item)
    except (ValidationError, BadInput, NotFound) as exc:
        problems = _problems(exc, CONTACT_IDS)
    else:
        if recorded.case:
            return RedirectResponse(f"/console/helpline/cases/{recorded.case}?done=recorded",
                                    status_code=303)
        return RedirectResponse("/console/helpline?done=recorded", status_code=303)
    return _page(request, "helpline/contacts.html", {
        **_form_context(runtime, viewer), "form": dict(form), "problems": problems},
        status_code=422)


def _contact_page(request: Request, runtime: Runtime, viewer: Viewer, ref: str,
                  form: dict[str, Any] | None = None, problems: list[Problem] | None = None
                  ) -> Response:
    contact = api.contact_view(runtime, viewer.principal, ref)
    with runtime.session_factory() as session:
        open_cases = helpline.list_cases(session, states=["open", "referred", "answered"],
                                         limit=50)
    return _page(request, "helpline/contact.html", {
        "contact": contact, "form": form or {}, "problems": problems or [],
        "urls": "\n".join(helpline.urls_in(contact.summary)), "open_cases": open_cases,
        "callers": list(CallerType), "topics": list(Topic), "case_types": list(CaseType),
        "ages": list(AgeGroup), "relations": list(Relation)},
        status_code=422 if problems else 200)


@router.get("/console/helpline/contacts/{ref}")
def contact_page(ref: str, request: Request,
                 viewer: Viewer = Depends(require(*COUNSELLORS))) -> Response:
    """One contact: what came in (the form's or mailbox's text), and taking it up."""
    return _contact_page(request, _runtime(request), viewer, ref)


@router.post("/console/helpline/contacts/{ref}/take-up")
def post_take_up(ref: str, request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*COUNSELLORS))) -> Response:
    viewer, form = posted
    runtime = _runtime(request)
    try:
        item = TakeUpIn.model_validate({
            "caller_type": _text(form, "caller_type"), "topic": _text(form, "topic"),
            "case": _case_fields(form), "join_case": _text(form, "join_case")})
        done = api.take_up(runtime, viewer.principal, ref, item)
    except (ValidationError, BadInput, NotFound) as exc:
        problems = _problems(exc, {})
    else:
        if done.case:
            return RedirectResponse(f"/console/helpline/cases/{done.case}?done=recorded",
                                    status_code=303)
        return RedirectResponse("/console/helpline?done=recorded", status_code=303)
    return _contact_page(request, runtime, viewer, ref, dict(form), problems)


@router.get("/console/helpline/cases/{ref}")
def case_page(ref: str, request: Request,
              viewer: Viewer = Depends(require(*COUNSELLORS))) -> Response:
    runtime = _runtime(request)
    return _case(request, runtime, viewer, ref)


def _case(request: Request, runtime: Runtime, viewer: Viewer, ref: str,
          problems: list[Problem] | None = None) -> Response:
    case = api.case_view(runtime, viewer.principal, ref)
    return _page(request, "helpline/case.html", {
        "case": case, "institutions": api.institutions(runtime),
        "referred": {r.destination for r in case.referrals}, "problems": problems or []},
        status_code=422 if problems else 200)


def _act(request: Request, viewer: Viewer, ref: str, done: str, work: Any) -> Response:
    runtime = _runtime(request)
    try:
        work(runtime)
    except (ValidationError, BadInput) as exc:
        return _case(request, runtime, viewer, ref, _problems(exc, CASE_IDS))
    return RedirectResponse(f"/console/helpline/cases/{ref}?done={done}", status_code=303)


@router.post("/console/helpline/cases/{ref}/refer")
def post_refer(ref: str, request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*COUNSELLORS))) -> Response:
    viewer, form = posted
    keys = [str(k) for k in form.getlist("destination")]
    return _act(request, viewer, ref, "referred",
                lambda rt: api.refer(rt, viewer.principal, ref, keys))


@router.post("/console/helpline/cases/{ref}/advisory")
def post_advisory(ref: str, request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*COUNSELLORS))) -> Response:
    viewer, _ = posted
    return _act(request, viewer, ref, "advisory", lambda rt: api.allowed_work(
        rt, viewer.principal, "helpline.refer", "close helpline cases",
        lambda s: helpline.close_advisory(s, ref, actor=viewer.actor, now=rt.clock.now())))


@router.post("/console/helpline/cases/{ref}/reply")
def post_reply(ref: str, request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*COUNSELLORS))) -> Response:
    viewer, form = posted

    def work(rt: Runtime) -> None:
        item = ReplyIn(destination=str(form.get("destination") or ""),
                       reference=_text(form, "reference"), text=_text(form, "text"))
        api.allowed_work(rt, viewer.principal, "helpline.refer", "record replies",
                  lambda s: helpline.record_reply(s, ref, item, actor=viewer.actor,
                                                  now=rt.clock.now(), settings=rt.settings))

    return _act(request, viewer, ref, "reply", work)


@router.post("/console/helpline/cases/{ref}/task")
def post_task(ref: str, request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*COUNSELLORS))) -> Response:
    viewer, form = posted

    def work(rt: Runtime) -> None:
        item = TaskIn.model_validate({"title": _text(form, "title"),
                                      "due_at": _text(form, "due_at")})
        if item.due_at.tzinfo is None:  # the browser's datetime-local: the centre's time
            item.due_at = item.due_at.replace(tzinfo=ZoneInfo(rt.settings.worktime.timezone))
        api.allowed_work(rt, viewer.principal, "helpline.record", "add tasks",
                  lambda s: helpline.add_task(s, ref, item, actor=viewer.actor,
                                              now=rt.clock.now()))

    return _act(request, viewer, ref, "task", work)


@router.post("/console/helpline/cases/{ref}/urls")
def post_urls(ref: str, request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*COUNSELLORS))) -> Response:
    viewer, form = posted
    urls = [u.strip() for u in str(form.get("urls") or "").splitlines() if u.strip()]
    return _act(request, viewer, ref, "urls",
                lambda rt: api.add_urls(rt, viewer.principal, ref, urls))


@router.post("/console/helpline/cases/{ref}/close")
def post_close(ref: str, request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*COUNSELLORS))) -> Response:
    viewer, form = posted
    reason = str(form.get("reason") or "")
    return _act(request, viewer, ref, "closed", lambda rt: api.allowed_work(
        rt, viewer.principal, "helpline.refer", "close helpline cases",
        lambda s: helpline.close_case(s, ref, actor=viewer.actor, now=rt.clock.now(),
                                      reason=reason)))
