"""Stage 1: normalisation. Pure per report; rejected input is kept with its reason.

Steps of `normalise_reports`:
1. lock the given reports that are still `received` (others were done already),
2. compute the canonical URL and derived facts of each (`pipeline.urls`),
3. move each to `normalised`, or to `rejected` with a reason an analyst can read,
4. return the ids to deduplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session

from pipeline.clock import Clock
from pipeline.db import lock_in_state
from pipeline.errors import RejectedURL
from pipeline.lifecycle import transition
from pipeline.models import Report
from pipeline.states import ReportState
from pipeline.urls import CanonicalURL, canonicalise

log = logging.getLogger(__name__)


def normalise_reports(
    session: Session,
    report_ids: Sequence[int],
    *,
    clock: Clock,
    canonicaliser: Callable[[str], CanonicalURL] = canonicalise,
) -> list[int]:
    now = clock.now()
    done: list[int] = []
    for report in lock_in_state(session, Report, report_ids, ReportState.RECEIVED):
        try:
            url = canonicaliser(report.url)
        except RejectedURL as exc:
            report.reject_reason = str(exc)
            transition(session, report, ReportState.REJECTED, at=now,
                       data={"reason": str(exc)})
            log.info("Report %s rejected: %s", report.id, exc)
            continue
        report.canonical_url = url.canonical
        report.dedup_key = url.dedup_key
        report.host = url.host
        report.host_unicode = url.host_unicode
        report.registered_domain = url.registered_domain
        report.url_kind = url.kind
        report.url_userinfo = url.userinfo
        report.host_confusable = url.confusable
        transition(session, report, ReportState.NORMALISED, at=now)
        done.append(report.id)
    return done
