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
from pipeline.core.i18n import N_
from pipeline.web.console import domain
from pipeline.web.console.render import ANALYSTS, render
from pipeline.web.security import Viewer, require, require_form

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

# Messages for `?done=` after a redirect: fixed texts, never echoed input.
DONE = {
    "claimed": N_("The case is yours until the lease runs out."),
    "released": N_("The case went back to the queue."),
    "renewed": N_("You hold the case for longer now."),
    "assessed": N_("Assessment saved."),
    "password": N_("Your password was changed."),
    "empty": N_("The queue is empty: nothing to claim."),
    "site-claimed": N_("The open cases of the site are yours now."),
    "assessed-next": N_("Assessment saved. This is the next case, held for you."),
    "assessed-empty": N_("Assessment saved. The queue is empty: nothing more to claim."),
}

# Keys that move to each field of the assessment form (no modifier, outside a field).
FIELD_KEYS = {"legality": "l", "category": "c", "age_group": "a", "gender": "g",
              "site_type": "s", "content_type": "t", "commercial": "m", "notes": "n"}
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
    runtime = _runtime(request)
    data = domain.case_page(runtime, viewer, ref)
    return render(request, "case.html", {**data, **_notice(request),
                                         **_form_context(runtime)})


def _form_context(runtime: Runtime) -> dict[str, Any]:
    return {"presets": domain.presets(runtime), "field_keys": FIELD_KEYS,
            "choices": domain.assessment_choices()}


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
    also = tuple(str(v) for v in form.getlist("also") if str(v) and str(v) != ref)
    try:
        outcome, case_id = domain.assess(runtime, viewer, ref, values, also)
    except (BadInput, ValidationError) as exc:
        problems = domain.describe_problems(exc)
        data = domain.case_page(runtime, viewer, ref)
        return render(request, "case.html", {
            **data, **_form_context(runtime), "problems": problems, "entered": values,
            "notice": N_("The assessment was not saved."), "notice_kind": "error"},
            status_code=422)
    log.info("User %s assessed case %s in the console: %s.", viewer.name, ref, outcome,
             extra={"case_id": case_id})
    if form.get("then") == "next":  # "save and next": claim the next case at once
        following = domain.claim_next(runtime, viewer, kind="any")
        if following is None:
            return RedirectResponse("/console/?done=assessed-empty", status_code=303)
        return RedirectResponse(f"/console/cases/{following}?done=assessed-next",
                                status_code=303)
    return RedirectResponse(f"/console/cases/{ref}?done=assessed", status_code=303)


@router.post("/console/cases/{ref}/release")
def release(ref: str, request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*ANALYSTS))) -> Response:
    viewer, _ = posted
    domain.release(_runtime(request), viewer, ref)
    return RedirectResponse("/console/?done=released", status_code=303)


@router.post("/console/cases/{ref}/claim-site")
def claim_site_of_case(ref: str, request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*ANALYSTS))) -> Response:
    """Same-site work: take the open cases of this case's site too."""
    viewer, _ = posted
    domain.claim_site(_runtime(request), viewer, ref=ref)
    return RedirectResponse(f"/console/cases/{ref}?done=site-claimed", status_code=303)


@router.post("/console/claim-site")
def claim_site(request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*ANALYSTS))) -> Response:
    """Bulk claim on the queue: every open case of one registered domain."""
    viewer, form = posted
    taken = domain.claim_site(_runtime(request), viewer, site=str(form.get("site") or ""))
    return RedirectResponse("/console/?done=" + ("site-claimed" if taken else "empty"),
                            status_code=303)


@router.post("/console/release")
def release_many(request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*ANALYSTS))) -> Response:
    """Bulk release on the queue: the chosen cases of the viewer's go back."""
    viewer, form = posted
    refs = [str(v) for v in form.getlist("ref") if str(v)]
    if not refs:
        raise BadInput(N_("Choose at least one case to put back."))
    for ref in refs:
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
