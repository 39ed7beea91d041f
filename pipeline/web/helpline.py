"""Helpline API for counsellors and supervisors: contacts, helpline cases,
tasks, URLs, advisory close, referrals to institutions, replies, welfare, legal holds.

Every route authenticates the caller, checks the role (`helpline.*` permissions:
counsellors and supervisors; analysts never see helpline data) and audits denials.
Writes commit before anything is enqueued (`helpline.commit_then_enqueue`). Bad input
answers 422 naming the field; an unknown case 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Body, Depends, FastAPI, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from pipeline.app.auth import Principal, audit_denials, current_principal, require
from pipeline.app.runtime import Runtime
from pipeline.stages import helpline
from pipeline.web.deps import runtime_of
from schemas.helpline import (
    ContactIn,
    ContactOut,
    CounsellorWelfare,
    HelplineCaseOut,
    RecordedOut,
    ReferIn,
    ReplyIn,
    TakeUpIn,
    TaskIn,
    TaskOut,
    UrlsIn,
)

router = APIRouter(prefix="/api/v1/helpline", tags=["helpline"])
T = TypeVar("T")


class CaseSummary(BaseModel):
    ref: str = Field(..., description="The helpline case's reference.")
    case_type: str = Field(..., description="What it is about.")
    urgent: bool = Field(..., description="A child in danger now.")
    state: str = Field(..., description="open, advisory, referred, answered, closed.")
    outcome: str | None = Field(..., description="advisory or referred.")
    counsellor: str = Field(..., description="Who formed it.")


class ReasonIn(BaseModel):
    reason: str = Field(..., min_length=1, max_length=500, description="Why.")


class HoldIn(BaseModel):
    requested_by: str = Field(..., min_length=1, max_length=200,
                              description="Who asked (police unit and its reference).")
    reason: str = Field(..., min_length=1, max_length=500, description="Why.")


class Institution(BaseModel):
    key: str = Field(..., description="Key in rules/destinations.yaml.")
    name: str = Field(..., description="Its name.")
    kind: str = Field(..., description="police or institution.")
    receives_personal_data: bool = Field(..., description="A referral to it carries the "
                                         "caller's and child's data.")
    placeholder: bool = Field(..., description="Its address is not filled in yet.")


def allowed_work(runtime: Runtime, principal: Principal, action: str, what: str,
          work: Callable[[Session], T]) -> T:
    with audit_denials(runtime.session_factory, principal, runtime.clock):
        require(principal, action, what=what)
        with runtime.session_factory.begin() as session:
            return work(session)


def _enqueued(runtime: Runtime, principal: Principal, action: str, what: str,
              work: Callable[[Session], helpline.Outcome]) -> helpline.Outcome:
    with audit_denials(runtime.session_factory, principal, runtime.clock):
        require(principal, action, what=what)
        return helpline.commit_then_enqueue(runtime.session_factory, runtime.enqueuer, work)


def record_contact(runtime: Runtime, principal: Principal, item: ContactIn,
                   source: str = "console") -> RecordedOut:
    """Shared by the API and the console: record, commit, enqueue."""
    outcome = _enqueued(runtime, principal, "helpline.record", "record helpline contacts",
                        lambda s: helpline.record_contact(
                            s, item, counsellor=principal.name, now=runtime.clock.now(),
                            settings=runtime.settings, source=source))
    assert outcome.contact is not None
    return RecordedOut(contact=outcome.contact.ref,
                       case=outcome.case.ref if outcome.case else None,
                       paged=outcome.paged, reports=outcome.report_refs)


@router.post("/contacts", response_model=RecordedOut, status_code=201,
             summary="Record a contact (and form or join a case)")
def post_contact(item: ContactIn, principal: Principal = Depends(current_principal),
                 runtime: Runtime = Depends(runtime_of)) -> RecordedOut:
    return record_contact(runtime, principal, item, source="api" if principal.via == "token"
                          else "console")


@router.get("/contacts", response_model=list[ContactOut], summary="The latest contacts")
def get_contacts(limit: int = Query(100, ge=1, le=1000, description="How many."),
                 principal: Principal = Depends(current_principal),
                 runtime: Runtime = Depends(runtime_of)) -> list[ContactOut]:
    return allowed_work(runtime, principal, "helpline.view", "see helpline contacts", lambda s: [
        helpline.contact_out(c, ref) for c, ref in helpline.list_contacts(s, limit=limit)])


def contact_view(runtime: Runtime, principal: Principal, ref: str) -> ContactOut:
    return allowed_work(runtime, principal, "helpline.view", "see helpline contacts",
                        lambda s: helpline.contact_out(*helpline.find_contact(s, ref)))


@router.get("/contacts/{ref}", response_model=ContactOut, summary="One contact")
def get_contact(ref: str, principal: Principal = Depends(current_principal),
                runtime: Runtime = Depends(runtime_of)) -> ContactOut:
    return contact_view(runtime, principal, ref)


def take_up(runtime: Runtime, principal: Principal, ref: str, item: TakeUpIn) -> RecordedOut:
    """Shared by the API and the console: take up, commit, enqueue."""
    outcome = _enqueued(runtime, principal, "helpline.record", "take up helpline contacts",
                        lambda s: helpline.take_up(
                            s, ref, caller_type=item.caller_type.value,
                            topic=item.topic.value, case=item.case, join=item.join_case,
                            counsellor=principal.name, now=runtime.clock.now(),
                            settings=runtime.settings))
    assert outcome.contact is not None
    return RecordedOut(contact=outcome.contact.ref,
                       case=outcome.case.ref if outcome.case else None,
                       paged=outcome.paged, reports=outcome.report_refs)


@router.post("/contacts/{ref}/take-up", response_model=RecordedOut,
             summary="Take up a contact from the form or the mailbox (form or join a case)")
def post_take_up(ref: str, item: TakeUpIn, principal: Principal = Depends(current_principal),
                 runtime: Runtime = Depends(runtime_of)) -> RecordedOut:
    return take_up(runtime, principal, ref, item)


@router.get("/cases", response_model=list[CaseSummary], summary="Helpline cases")
def get_cases(state: list[str] | None = Query(None, description="Only these states."),
              limit: int = Query(100, ge=1, le=1000, description="How many."),
              principal: Principal = Depends(current_principal),
              runtime: Runtime = Depends(runtime_of)) -> list[CaseSummary]:
    return allowed_work(runtime, principal, "helpline.view", "see helpline cases", lambda s: [
        CaseSummary(ref=c.ref, case_type=c.case_type, urgent=c.urgent, state=c.state,
                    outcome=c.outcome, counsellor=c.counsellor)
        for c in helpline.list_cases(s, states=state, limit=limit)])


def case_view(runtime: Runtime, principal: Principal, ref: str) -> HelplineCaseOut:
    return allowed_work(runtime, principal, "helpline.view", "see helpline cases",
                 lambda s: helpline.case_view(s, ref, now=runtime.clock.now(),
                                              settings=runtime.settings))


@router.get("/cases/{ref}", response_model=HelplineCaseOut, summary="One helpline case")
def get_case(ref: str, principal: Principal = Depends(current_principal),
             runtime: Runtime = Depends(runtime_of)) -> HelplineCaseOut:
    return case_view(runtime, principal, ref)


@router.post("/cases/{ref}/tasks", response_model=TaskOut, status_code=201,
             summary="Add a task with a due date")
def post_task(ref: str, item: TaskIn, principal: Principal = Depends(current_principal),
              runtime: Runtime = Depends(runtime_of)) -> TaskOut:
    def work(session: Session) -> TaskOut:
        task = helpline.add_task(session, ref, item, actor=principal.actor,
                                 now=runtime.clock.now())
        return TaskOut(id=task.id, title=task.title, due_at=task.due_at, done_at=None,
                       overdue=False)

    return allowed_work(runtime, principal, "helpline.record", "add helpline tasks", work)


@router.post("/cases/{ref}/tasks/{task_id}/done", response_model=dict[str, Any],
             summary="Mark a task done")
def post_task_done(ref: str, task_id: int, principal: Principal = Depends(current_principal),
                   runtime: Runtime = Depends(runtime_of)) -> dict[str, Any]:
    return allowed_work(runtime, principal, "helpline.record", "complete helpline tasks",
                 lambda s: {"task": helpline.complete_task(
                     s, ref, task_id, actor=principal.actor, now=runtime.clock.now()).id})


def add_urls(runtime: Runtime, principal: Principal, ref: str, urls: list[str]
             ) -> dict[str, list[str]]:
    outcome = _enqueued(runtime, principal, "helpline.record", "add URLs to helpline cases",
                        lambda s: helpline.add_urls(s, ref, urls, actor=principal.actor,
                                                    now=runtime.clock.now(),
                                                    settings=runtime.settings))
    return {"reports": outcome.report_refs}


@router.post("/cases/{ref}/urls", response_model=dict[str, list[str]], status_code=201,
             summary="Report URLs of the case into the URL pipeline")
def post_urls(ref: str, item: UrlsIn, principal: Principal = Depends(current_principal),
              runtime: Runtime = Depends(runtime_of)) -> dict[str, list[str]]:
    return add_urls(runtime, principal, ref, item.urls)


@router.post("/cases/{ref}/advisory", response_model=dict[str, str],
             summary="Close the case as advisory (advice given)")
def post_advisory(ref: str, principal: Principal = Depends(current_principal),
                  runtime: Runtime = Depends(runtime_of)) -> dict[str, str]:
    def work(session: Session) -> dict[str, str]:
        case = helpline.close_advisory(session, ref, actor=principal.actor,
                                       now=runtime.clock.now())
        return {"case": case.ref, "state": case.state}

    return allowed_work(runtime, principal, "helpline.refer", "close helpline cases", work)


def refer(runtime: Runtime, principal: Principal, ref: str, destinations: list[str]
          ) -> dict[str, Any]:
    outcome = _enqueued(runtime, principal, "helpline.refer", "refer helpline cases",
                        lambda s: helpline.refer(s, ref, destinations, actor=principal.actor,
                                                 now=runtime.clock.now(),
                                                 settings=runtime.settings))
    return {"case": ref, "notices": outcome.notice_ids}


@router.post("/cases/{ref}/referrals", response_model=dict[str, Any], status_code=201,
             summary="Refer the case to institutions (each once)")
def post_referrals(ref: str, item: ReferIn, principal: Principal = Depends(current_principal),
                   runtime: Runtime = Depends(runtime_of)) -> dict[str, Any]:
    return refer(runtime, principal, ref, item.destinations)


@router.post("/cases/{ref}/replies", response_model=dict[str, str],
             summary="Record an institution's reply or reference")
def post_reply(ref: str, item: ReplyIn, principal: Principal = Depends(current_principal),
               runtime: Runtime = Depends(runtime_of)) -> dict[str, str]:
    def work(session: Session) -> dict[str, str]:
        referral = helpline.record_reply(session, ref, item, actor=principal.actor,
                                         now=runtime.clock.now(), settings=runtime.settings)
        return {"case": ref, "destination": referral.destination}

    return allowed_work(runtime, principal, "helpline.refer", "record institutions' replies", work)


@router.post("/cases/{ref}/close", response_model=dict[str, str],
             summary="Close a referred case")
def post_close(ref: str, item: ReasonIn, principal: Principal = Depends(current_principal),
               runtime: Runtime = Depends(runtime_of)) -> dict[str, str]:
    def work(session: Session) -> dict[str, str]:
        case = helpline.close_case(session, ref, actor=principal.actor,
                                   now=runtime.clock.now(), reason=item.reason)
        return {"case": case.ref, "state": case.state}

    return allowed_work(runtime, principal, "helpline.refer", "close helpline cases", work)


@router.post("/cases/{ref}/hold", response_model=dict[str, str], status_code=201,
             summary="Set a legal hold (supervisors)")
def post_hold(ref: str, item: HoldIn, principal: Principal = Depends(current_principal),
              runtime: Runtime = Depends(runtime_of)) -> dict[str, str]:
    def work(session: Session) -> dict[str, str]:
        helpline.set_legal_hold(session, ref, by=principal.name,
                                requested_by=item.requested_by, reason=item.reason,
                                now=runtime.clock.now())
        return {"case": ref}

    return allowed_work(runtime, principal, "helpline.legal_hold", "set legal holds", work)


@router.delete("/cases/{ref}/hold", response_model=dict[str, int],
               summary="Lift the legal holds (supervisors)")
def delete_hold(ref: str, item: ReasonIn = Body(...),
                principal: Principal = Depends(current_principal),
                runtime: Runtime = Depends(runtime_of)) -> dict[str, int]:
    return allowed_work(runtime, principal, "helpline.legal_hold", "lift legal holds",
                 lambda s: {"lifted": helpline.lift_legal_hold(
                     s, ref, by=principal.name, reason=item.reason, now=runtime.clock.now())})


def institutions(runtime: Runtime) -> list[Institution]:
    return [Institution(key=d.key, name=d.name, kind=d.kind,
                        receives_personal_data=d.receives_personal_data,
                        placeholder=d.is_placeholder)
            for d in helpline.referral_directory(helpline.directory_of(runtime.settings))]


@router.get("/institutions", response_model=list[Institution],
            summary="The institutions cases are referred to")
def get_institutions(principal: Principal = Depends(current_principal),
                     runtime: Runtime = Depends(runtime_of)) -> list[Institution]:
    return allowed_work(runtime, principal, "helpline.view", "see the referral directory",
                 lambda _s: institutions(runtime))


@router.get("/welfare", response_model=CounsellorWelfare, summary="The caller's counts today")
def get_welfare(principal: Principal = Depends(current_principal),
                runtime: Runtime = Depends(runtime_of)) -> CounsellorWelfare:
    return allowed_work(runtime, principal, "helpline.record", "have helpline welfare counts",
                 lambda s: helpline.counsellor_welfare(
                     s, now=runtime.clock.now(), settings=runtime.settings,
                     counsellors=[principal.name])[0])


@router.get("/welfare/counsellors", response_model=list[CounsellorWelfare],
            summary="Every counsellor's counts today (supervisors)")
def get_all_welfare(principal: Principal = Depends(current_principal),
                    runtime: Runtime = Depends(runtime_of)) -> list[CounsellorWelfare]:
    return allowed_work(runtime, principal, "helpline.welfare_all", "see counsellors' welfare",
                 lambda s: helpline.counsellor_welfare(s, now=runtime.clock.now(),
                                                       settings=runtime.settings))


def install(app: FastAPI) -> None:
    app.include_router(router)
