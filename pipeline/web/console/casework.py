"""The analysts' work: the queue, claiming, the case page, assessing, four eyes.

The decisions themselves are `pipeline.stages.assessment`'s (through `domain`): this module
reads the forms, calls it, and renders what came back.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import Response

from pipeline.app.runtime import Runtime
from pipeline.core.errors import BadInput
from pipeline.web.console import domain
from pipeline.web.console.render import ANALYSTS, render
from pipeline.web.security import Viewer, require, require_form

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

# Messages for `?done=` after a redirect: fixed texts, never echoed input.
DONE = {
    "claimed": "The case is yours until the lease runs out.",
    "released": "The case went back to the queue.",
    "renewed": "You hold the case for longer now.",
    "assessed": "Assessment saved.",
    "password": "Your password was changed.",
    "empty": "The queue is empty: nothing to claim.",
}

# Keyboard shortcuts for the common classifications: key -> (label, field values).
SHORTCUTS: list[tuple[str, str, dict[str, str]]] = [
    ("1", "CSAM (international baseline)",
     {"legality": "illegal_international", "category": "csam"}),
    ("2", "Self-generated CSAM",
     {"legality": "illegal_international", "category": "self_generated_csam"}),
    ("3", "Hate speech (national law)",
     {"legality": "illegal_national", "category": "hate_speech"}),
    ("4", "Not illegal", {"legality": "not_illegal", "category": ""}),
    ("5", "Content not available", {"legality": "content_not_available", "category": ""}),
    ("6", "Out of remit", {"legality": "out_of_remit", "category": ""}),
]
ASSESSMENT_FIELDS = ("legality", "category", "age_group", "gender", "site_type",
                     "content_type", "commercial", "notes")


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _notice(request: Request) -> dict[str, Any]:
    done = request.query_params.get("done")
    return {"notice": DONE[done]} if done in DONE else {}


@router.get("/console/")
def queue(request: Request, viewer: Viewer = Depends(require(*ANALYSTS))) -> Response:
    data = domain.queue_page(_runtime(request), viewer)
    return render(request, "queue.html", {**data, **_notice(request)})


@router.post("/console/claim")
def claim(request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*ANALYSTS))) -> Response:
    viewer, form = posted
    kind = str(form.get("kind") or "first")
    ref = domain.claim_next(_runtime(request), viewer, kind=kind)
    if ref is None:
        return RedirectResponse("/console/?done=empty", status_code=303)
    return RedirectResponse(f"/console/cases/{ref}?done=claimed", status_code=303)


@router.get("/console/cases/{ref}")
def case_page(ref: str, request: Request, viewer: Viewer = Depends(
        require("analyst", "supervisor", "admin", "auditor"))) -> Response:
    data = domain.case_page(_runtime(request), viewer, ref)
    return render(request, "case.html", {**data, **_notice(request), **_form_context()})


def _form_context() -> dict[str, Any]:
    return {"shortcuts": SHORTCUTS, "choices": domain.assessment_choices()}


def _assessment_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in ASSESSMENT_FIELDS:
        raw = form.get(name)
        if not isinstance(raw, str) or raw.strip() == "":
            continue
        if name == "commercial":
            values[name] = raw == "yes"
        else:
            values[name] = raw.strip()
    return values


@router.post("/console/cases/{ref}/assessment")
def assess(ref: str, request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*ANALYSTS))) -> Response:
    viewer, form = posted
    runtime = _runtime(request)
    values = _assessment_values(form)
    try:
        outcome, case_id = domain.assess(runtime, viewer, ref, values)
    except (BadInput, ValidationError) as exc:
        problems = domain.describe_problems(exc)
        data = domain.case_page(runtime, viewer, ref)
        return render(request, "case.html", {
            **data, **_form_context(), "problems": problems, "entered": values,
            "notice": "The assessment was not saved.", "notice_kind": "error"},
            status_code=422)
    log.info("User %s assessed case %s in the console: %s.", viewer.name, ref, outcome,
             extra={"case_id": case_id})
    return RedirectResponse(f"/console/cases/{ref}?done=assessed", status_code=303)


@router.post("/console/cases/{ref}/release")
def release(ref: str, request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*ANALYSTS))) -> Response:
    viewer, _ = posted
    domain.release(_runtime(request), viewer, ref)
    return RedirectResponse("/console/?done=released", status_code=303)


@router.post("/console/cases/{ref}/renew")
def renew(ref: str, request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*ANALYSTS))) -> Response:
    viewer, _ = posted
    domain.renew(_runtime(request), viewer, ref)
    return RedirectResponse(f"/console/cases/{ref}?done=renewed", status_code=303)


@router.get("/console/review")
def review(request: Request, viewer: Viewer = Depends(require(*ANALYSTS))) -> Response:
    data = domain.review_page(_runtime(request), viewer)
    return render(request, "review.html", {**data, **_notice(request)})
