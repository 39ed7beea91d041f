"""The console's case search: what happened to a report, a URL, a site.

One text box takes a case reference, a report reference, a URL in any spelling
(matched through its canonical form's dedup key, `pipeline.domain.urls`), a host or a
registered domain; filters narrow by state, category, hosting country, destination
and the date range of the first report. Results are cases, newest first by default,
a page at a time; every filter has its index (migration 0018). The rows carry no
reporter data, so what an analyst sees here is what any role may see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from pipeline.core.errors import FieldError
from pipeline.core.i18n import N_
from pipeline.domain.urls import RejectedURL, canonicalise
from pipeline.store.models import Case, Notice, Report

PAGE_SIZE = 50
SORTS = {
    "newest": (Case.received_at.desc(), Case.id.desc()),
    "oldest": (Case.received_at.asc(), Case.id.asc()),
    "priority": (Case.priority.desc(), Case.received_at.desc(), Case.id.desc()),
    "state": (Case.state.asc(), Case.received_at.desc(), Case.id.desc()),
}
_REF = re.compile(r"^[A-Za-z]{1,4}-[A-Za-z0-9-]{3,28}$")
_HOST = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+\.?$", re.I)


@dataclass(frozen=True)
class Query:
    text: str = ""
    state: str = ""
    category: str = ""
    country: str = ""
    destination: str = ""
    start: date | None = None
    end: date | None = None
    sort: str = "newest"
    page: int = 1

    def params(self, **change: Any) -> dict[str, str]:
        """The query string of this search (for paging and sorting links)."""
        values = {"q": self.text, "state": self.state, "category": self.category,
                  "country": self.country, "destination": self.destination,
                  "start": self.start.isoformat() if self.start else "",
                  "end": self.end.isoformat() if self.end else "", "sort": self.sort,
                  "page": str(self.page)}
        values.update({k: str(v) for k, v in change.items()})
        return {k: v for k, v in values.items() if v and not (k == "page" and v == "1")}


@dataclass
class Result:
    query: Query
    rows: list[Any] = field(default_factory=list)
    has_more: bool = False
    matched_by: str = ""  # case reference, report reference, URL, host, site, or ""


def _date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise FieldError(name, N_("Write the date as year-month-day, for example "
                         "2026-12-31 (the date picker does it for you).")) from None


def parse(params: dict[str, str]) -> Query:
    """A search from the page's query string; a bad value is a 422 naming the field."""
    sort = params.get("sort") or "newest"
    if sort not in SORTS:
        raise FieldError("sort", N_("Choose an order from the list."))
    try:
        page = int(params.get("page") or 1)
    except ValueError:
        raise FieldError(None, N_("Pages are numbered from 1 to 10,000.")) from None
    if not 1 <= page <= 10_000:
        raise FieldError(None, N_("Pages are numbered from 1 to 10,000."))
    start, end = _date(params.get("start"), "start"), _date(params.get("end"), "end")
    if start and end and start > end:
        raise FieldError("start", N_("Choose a start date on or before the end date."))
    country = (params.get("country") or "").strip().upper()
    if country and not re.fullmatch(r"[A-Z]{2}", country):
        raise FieldError("country", N_("Write the hosting country as its two-letter code, "
                                      "for example RS."))
    return Query(text=(params.get("q") or "").strip()[:2048],
                 state=(params.get("state") or "").strip()[:32],
                 category=(params.get("category") or "").strip()[:40], country=country,
                 destination=(params.get("destination") or "").strip()[:120],
                 start=start, end=end, sort=sort, page=page)


def _text_filter(session: Session, text: str) -> tuple[Any, str]:
    """The condition the search box asks for, and what it matched as."""
    if _REF.match(text):
        upper = text.upper()
        case_id = session.execute(select(Case.id).where(Case.ref == upper)).scalar()
        if case_id is not None:
            return Case.id == case_id, "case"
        case_id = session.execute(select(Report.case_id).where(Report.ref == upper)).scalar()
        if case_id is not None:
            return Case.id == case_id, "report"
    if "/" in text or ":" in text:
        try:
            key = canonicalise(text).dedup_key
        except RejectedURL:
            raise FieldError("q", N_("This is not a URL that can be searched: check how "
                                        "it is written.")) from None
        return or_(Case.open_key == key, and_(Case.open_key.is_(None),
                                               Case.dedup_key == key)), "url"
    if _HOST.match(text):
        host = text.lower().rstrip(".")
        if session.execute(select(Case.id).where(Case.host == host).limit(1)).first():
            return Case.host == host, "host"
        return Case.registered_domain == host, "site"
    if _REF.match(text):
        return Case.ref == text.upper(), "case"
    raise FieldError("q", N_("Search for a case or report reference, a URL, a host or a "
                            "site."))


def statement(session: Session, query: Query) -> tuple[Select[Any], str]:
    columns: list[Any] = [Case.id, Case.ref, Case.canonical_url, Case.host,
                          Case.registered_domain, Case.state, Case.legality, Case.category,
                          Case.hosting_country, Case.received_at, Case.report_count,
                          Case.priority, Case.urgent]
    stmt: Select[Any] = select(*columns)
    matched = ""
    if query.text:
        condition, matched = _text_filter(session, query.text)
        stmt = stmt.where(condition)
    if query.state:
        stmt = stmt.where(Case.state == query.state)
    if query.category:
        stmt = stmt.where(Case.category == query.category)
    if query.country:
        stmt = stmt.where(Case.hosting_country == query.country)
    if query.destination:
        stmt = stmt.where(Case.id.in_(select(Notice.case_id).where(
            Notice.destination == query.destination)))
    if query.start:
        stmt = stmt.where(Case.received_at >= datetime.combine(query.start, time(), UTC))
    if query.end:
        stmt = stmt.where(Case.received_at < datetime.combine(
            query.end + timedelta(days=1), time(), UTC))
    return stmt.order_by(*SORTS[query.sort]), matched


def search(session: Session, query: Query, *, page_size: int = PAGE_SIZE) -> Result:
    """One page of the cases the query finds (one more read to know if more follow)."""
    stmt, matched = statement(session, query)
    rows = list(session.execute(
        stmt.offset((query.page - 1) * page_size).limit(page_size + 1)).all())
    return Result(query, rows[:page_size], len(rows) > page_size, matched)


def destinations(session: Session) -> list[str]:
    """The destinations notices went to, for the filter's choices."""
    return [d for (d,) in session.execute(
        select(Notice.destination).group_by(Notice.destination)
        .order_by(func.min(Notice.destination)).limit(500))]
