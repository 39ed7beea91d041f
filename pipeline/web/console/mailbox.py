"""The console's mailbox page: messages that made no report, waiting for a person.

A message lands here when the mailbox found no URL in it, could not read it, or it
was too large (`pipeline.stages.mailbox`). Who does what is in
`pipeline.domain.access` (`mailbox.*`):
- an analyst reads the original in the hotline's mailbox, reports by hand what
  needs reporting, and marks it looked at (audited);
- a counsellor turns a message that is a call for help, not a report, into a
  helpline contact (`pipeline.stages.helpline.contact_from_mail`: channel e-mail,
  exactly once, audited), which then waits in the helpline console;
- a supervisor may do both.
The sender is not shown: reporter contacts stay with the roles that may see them
(a sender becomes the helpline contact's encrypted caller contact).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData
from starlette.responses import Response

from pipeline.app.runtime import Runtime
from pipeline.core.errors import NotFound
from pipeline.core.i18n import N_
from pipeline.domain.access import roles_for
from pipeline.stages.helpline import FromMail, contact_from_mail
from pipeline.stages.mailbox import look_at_queue, mark_looked_at
from pipeline.store import audit
from pipeline.web.console.render import render
from pipeline.web.security import Viewer, require, require_form

router = APIRouter(include_in_schema=False)
VIEWERS = roles_for("mailbox.view")
MARKERS = roles_for("mailbox.mark")
COUNSELLORS = roles_for("mailbox.to_helpline")
NOTICES = {
    "done": N_("Marked as looked at."),
    "contact": N_("The message is now helpline contact %(ref)s; it waits in the helpline "
                  "console."),
    "twice": N_("Someone else had already turned the message into helpline contact "
                "%(ref)s."),
}


@router.get("/console/mail")
def mailbox_page(request: Request, viewer: Viewer = Depends(require(*VIEWERS))) -> Response:
    runtime: Runtime = request.app.state.runtime
    with runtime.session_factory() as session:
        waiting = look_at_queue(session, 200)
        rows = [{"id": m.id, "received_at": m.received_at, "via": m.via,
                 "subject": m.subject, "reason": m.reason,
                 "attachments": m.attachments or []} for m in waiting]
    notice = next((NOTICES[k] for k in NOTICES if request.query_params.get(k)), None)
    ref = request.query_params.get("contact") or request.query_params.get("twice") or ""
    return render(request, "mailbox.html", {
        "rows": rows, "mail_notice": notice, "notice_ref": ref[:32],
        "may_mark": viewer.role in MARKERS, "may_turn": viewer.role in COUNSELLORS})


@router.post("/console/mail/{message_id}/done")
async def mailbox_done(request: Request, message_id: int,
                       checked: tuple[Viewer, FormData] = Depends(require_form(*MARKERS))
                       ) -> Response:
    viewer, _ = checked
    runtime: Runtime = request.app.state.runtime

    def mark() -> bool:
        with runtime.session_factory.begin() as session:
            now = runtime.clock.now()
            if not mark_looked_at(session, message_id, by=viewer.actor, clock=runtime.clock):
                return False
            audit.record(session, f"mail:{message_id}", actor=viewer.actor,
                         action="mail_looked_at", at=now)
            return True

    if not await run_in_threadpool(mark):
        raise NotFound(N_("No mail message %(id)s waits for a person."), id=message_id)
    return RedirectResponse("/console/mail?done=1", status_code=303)


@router.post("/console/mail/{message_id}/helpline")
async def mailbox_to_helpline(request: Request, message_id: int,
                              checked: tuple[Viewer, FormData] = Depends(
                                  require_form(*COUNSELLORS))) -> Response:
    """Turn the message into a helpline contact; the second of two clicks is told
    which contact the first one made."""
    viewer, _ = checked
    runtime: Runtime = request.app.state.runtime

    def turn() -> FromMail:
        with runtime.session_factory.begin() as session:
            return contact_from_mail(session, message_id, counsellor=viewer.name,
                                     now=runtime.clock.now(), settings=runtime.settings)

    done = await run_in_threadpool(turn)
    key = "contact" if done.created else "twice"
    return RedirectResponse(f"/console/mail?{key}={done.contact_ref}", status_code=303)
