"""Stage 1: normalisation. Pure per report; rejected input is kept with its reason.

Steps of `normalise_reports`:
1. lock the given reports that are still `received` (others were done already),
2. compute the canonical URL and derived facts of each (`pipeline.domain.urls`),
3. move each to `normalised`, or to `rejected` with a reason an analyst can read
   (one UPDATE and one INSERT of events for the batch),
4. return the ids to deduplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from pipeline.core.clock import Clock
from pipeline.core.errors import RejectedURL
from pipeline.domain.urls import CanonicalURL, canonicalise
from pipeline.store.audit import insert_events
from pipeline.store.db import lock_rows
from pipeline.store.lifecycle import HEAD_COLUMNS, add_event, advance_step, write_rows
from pipeline.store.models import Report
from pipeline.store.states import ReportState

log = logging.getLogger(__name__)

# What normalisation reads of a report, and what it writes besides its state.
READ = (*HEAD_COLUMNS, "case_id", "url")
FACTS = ("canonical_url", "dedup_key", "host", "host_unicode", "registered_domain",
         "url_kind", "url_userinfo", "host_confusable", "reject_reason")


def normalise_rows(
    rows: Sequence[dict[str, Any]],
    *,
    at: datetime,
    canonicaliser: Callable[[str], CanonicalURL] = canonicalise,
    actor: str = "system",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Steps 2 and 3 on `received` rows (with `HEAD_COLUMNS`, `case_id`, `url`), in
    memory: the rows normalised, and the new events. The caller stores the rows (with
    `FACTS`) and the events. A row `actor` moved already in this transaction (intake
    settling its own reports) has the step added to its event (`advance_step`)."""
    done: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for row in rows:
        try:
            url = canonicaliser(row["url"])
        except RejectedURL as exc:
            row.update(dict.fromkeys(FACTS), host_confusable=False, reject_reason=str(exc))
            add_event(events, advance_step("report", row, ReportState.REJECTED, at=at,
                                           actor=actor, data={"reason": str(exc)}))
            log.info("Report %s rejected: %s", row.get("id") or "(at intake)", exc,
                     extra={"report_id": row.get("id")})
            continue
        row.update(canonical_url=url.canonical, dedup_key=url.dedup_key, host=url.host,
                   host_unicode=url.host_unicode, registered_domain=url.registered_domain,
                   url_kind=url.kind, url_userinfo=url.userinfo,
                   host_confusable=bool(url.confusable), reject_reason=None)
        add_event(events, advance_step("report", row, ReportState.NORMALISED, at=at,
                                       actor=actor))
        done.append(row)
    return done, events


def normalise_reports(
    session: Session,
    report_ids: Sequence[int],
    *,
    clock: Clock,
    canonicaliser: Callable[[str], CanonicalURL] = canonicalise,
) -> list[int]:
    rows = lock_rows(session, Report, report_ids, [ReportState.RECEIVED], READ)
    done, events = normalise_rows(rows, at=clock.now(), canonicaliser=canonicaliser)
    write_rows(session, "report", rows, FACTS)
    insert_events(session, events)
    return [row["id"] for row in done]
