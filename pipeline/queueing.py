"""Placing traced cases in the analysts' assessment queue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from pipeline.lifecycle import transition
from pipeline.models import Case
from pipeline.states import CaseState


def case_priority(case: Case) -> int:
    """Higher is more urgent. Urgent reports first, then by claimed category."""
    return 100 if case.urgent else 0


def queue_for_assessment(session: Session, cases: Sequence[Case], *, at: datetime) -> None:
    """Move traced cases into the queue with their priority."""
    for case in cases:
        case.priority = case_priority(case)
        transition(session, case, CaseState.AWAITING_ASSESSMENT, at=at,
                   data={"priority": case.priority})
