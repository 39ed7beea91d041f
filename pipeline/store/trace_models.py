"""The Trace: an immutable evidence snapshot of where a case's URL was hosted.

A case may be traced several times (the content moves); every trace is kept, and the
latest is copied onto the case's summary columns for routing and statistics.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.core.errors import HotlineError
from pipeline.store.db import Base, BigId


class Trace(Base):
    """One tracing of one case's host: DNS and RDAP answers as received, with times."""

    __tablename__ = "traces"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"))
    host: Mapped[str | None] = mapped_column(String(255))
    url_kind: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime]  # when the DNS and RDAP questions were asked
    traced_at: Mapped[datetime]  # when this trace was recorded
    outcome: Mapped[str] = mapped_column(String(40))  # see pipeline.adapters.tracing.outcomes
    origin_unknown: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str | None] = mapped_column(Text)  # why the origin is unknown
    resolver: Mapped[str | None] = mapped_column(String(80))  # "address:port" that answered
    addresses: Mapped[list[Any]] = mapped_column(default=list)  # per IP: network facts
    cname_chain: Mapped[list[Any]] = mapped_column(default=list)
    nameservers: Mapped[list[Any]] = mapped_column(default=list)
    registrar: Mapped[str | None] = mapped_column(String(255))
    registrar_abuse_email: Mapped[str | None] = mapped_column(String(320))
    behind_cdn: Mapped[bool] = mapped_column(default=False)
    cdn_name: Mapped[str | None] = mapped_column(String(120))
    hosting_country: Mapped[str | None] = mapped_column(String(2))
    country_source: Mapped[str | None] = mapped_column(String(20))  # rdap, provider, geoip
    hosting_asn: Mapped[int | None]
    hosting_org: Mapped[str | None] = mapped_column(String(255))
    hosting_abuse_email: Mapped[str | None] = mapped_column(String(320))
    # The answers as received: DNS in presentation format with the resolver and time of
    # each question; RDAP as a list of {url, status, at, answer}, where `answer` names
    # the row of `trace_answers` holding the JSON (one row per answer received, shared
    # by every trace that used it).
    dns_raw: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rdap_raw: Mapped[list[Any]] = mapped_column(default=list)

    __table_args__ = (Index("ix_traces_case", "case_id", "traced_at"),)


class TraceAnswer(Base):
    """One RDAP answer as received (JSON and time), named by its content hash."""

    __tablename__ = "trace_answers"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[int]
    received_at: Mapped[datetime]
    body: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ImmutableEvidence(HotlineError):
    """A trace was changed after it was written (retention may still delete it)."""


@event.listens_for(Trace, "before_update")
@event.listens_for(TraceAnswer, "before_update")
def _refuse_update(_mapper: Any, _connection: Any, target: Any) -> None:
    raise ImmutableEvidence(f"{type(target).__name__} {target!r} is evidence and cannot be "
                            "changed")
