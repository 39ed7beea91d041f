"""The console's mailbox page: messages that made no report, waiting for a person.

A message lands here when the mailbox found no URL in it, could not read it, or it
was too large (`pipeline.stages.mailbox`). An analyst reads the original in the
hotline's mailbox, reports by hand what needs reporting, and marks it looked at
(audited). The sender is not shown: reporter contacts stay with the roles that may
see them.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData
from starlette.responses import Response

from pipeline.app.runtime import Runtime
from pipeline.core.errors import NotFound
from pipeline.stages.mailbox import look_at_queue, mark_looked_at
from pipeline.store import audit
from pipeline.web.console.render import ANALYSTS, render
from pipeline.web.security import Viewer, require, require_form

router = APIRouter(include_in_schema=False)


@router.get("/console/mail")
def mailbox_page(request: Request, viewer: Viewer = Depends(require(*ANALYSTS))) -> Response:
    runtime: Runtime = request.app.state.runtime
    with runtime.session_factory() as session:
        waiting = look_at_queue(session, 200)
        rows = [{"id": m.id, "received_at": m.received_at, "via": m.via,
                 "subject": m.subject, "reason": m.reason,
                 "attachments": m.attachments or []} for m in waiting]
    notice = "Marked as looked at." if request.query_params.get("done") else None
    return render(request, "mailbox.html", {"rows": rows, "notice": notice})


@router.post("/console/mail/{message_id}/done")
async def mailbox_done(request: Request, message_id: int,
                       checked: tuple[Viewer, FormData] = Depends(require_form(*ANALYSTS))
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
        raise NotFound(f"no mail message {message_id} waits for a person")
    return RedirectResponse("/console/mail?done=1", status_code=303)
