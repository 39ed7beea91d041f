"""Stage: deliver planned notices, each once, through its channel.

The channels (SMTP with STARTTLS and login, an HTTPS webhook signed with HMAC-SHA256,
a file-drop outbox folder: where every notice goes when `dispatch.deliver` is
`outbox`, the default in embedded mode) are the adapter `pipeline.adapters.channels`;
this stage claims the notices, hands each to its channel and records the outcome.

Notice states (`NoticeState`, with the allowed moves in `NOTICE_TRANSITIONS`, both in
`pipeline.store.states`; every move goes through `pipeline.store.lifecycle.
notice_transition`): planned, held (waits for the police), sending (claimed under a
lease), handing_over (SMTP only: the message data is with the server and only the
final "." and its reply are left), failed (retried at `due_at`), sent, dead
(dead-lettered), unconfirmed (an SMTP hand-over whose outcome nobody saw: an operator
decides), cancelled (the police took over).

Steps of `deliver_notices`:
1. claim: in one short transaction, the given notices that are due (planned, or
   failed and past their retry time, or `sending` under a lease that ran out) become
   `sending` with a lease owned by this call (the owner starts with this process's id,
   `pipeline.core.process`); a sent notice is never claimed again. A claim taken over
   from a lease that ran out is recorded as lost (`crashes`, event
   `notice_claim_lost`), never as an attempt. In the same transaction a notice left
   in `handing_over` past its lease becomes `unconfirmed`, with an audit event: it is
   never sent again by itself,
2. deliver each claimed notice; the notice token is the e-mail's Message-ID and the
   webhook's Idempotency-Key, and names the outbox file,
3. right after each delivery, mark it `sent` (only if this call still owns it) with
   an audit event on its case, in its own transaction (SMTP: as soon as the server
   answered 250 to the final ".", before QUIT and the close),
4. a passing failure (`RetryLater`: timeouts, 4xx SMTP, 5xx/429 HTTP) makes it
   `failed` with the next attempt after an exponential backoff (the reconciler sends
   it again when due); a permanent one, or too many attempts, makes it `dead` with a
   row in `dead_letters` (`hotline deadletters retry` tries it again). `attempts`
   counts these failures only: a worker that died never brings a notice nearer to
   the dead letters.

A worker process that died (its heartbeat stopped) does not hold its notices for the
whole lease: the scheduler's recovery job (`release_dead_holders`) sends its `sending`
ones again and flags its `handing_over` ones `unconfirmed` within
`recovery.dead_after_seconds` (docs/operators/recovery.md).

None is sent twice, per channel (docs/pipeline/routing-and-dispatch.md):
- SMTP: the transaction is driven by hand. After the server's 354 the dot-stuffed
  message goes out, then the notice is committed `handing_over` (the marker), and only
  then the final "<CRLF>.<CRLF>" is sent and its reply read. A worker that dies before
  the marker leaves the notice `sending`: the server never saw the end of the data and
  discarded it, so it is sent again after the lease. A worker that dies after the
  marker leaves it `handing_over`: the server may or may not have it, so it becomes
  `unconfirmed` for an operator (`hotline notices`), never resent by itself. A
  connection lost while waiting for the reply to the final dot makes it `unconfirmed`
  at once.
- Webhook: a POST cannot be split like that; a worker dying between the receiver's
  2xx and the commit of `sent` makes a repeat POST with the same Idempotency-Key
  after the lease. A receiver that honours the key (as the contract asks) records the
  notice once.
- Outbox folder: the file is written under a temporary name and linked to its final
  name (`notice-<id>-<token>.<ext>`) only if no file has that name; a repeat finds
  the file and writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.adapters.channels import Channels, DeliveryUnconfirmed
from pipeline.core.clock import Clock, as_utc
from pipeline.core.config import Settings
from pipeline.core.errors import BadInput, PermanentError, RetryLater
from pipeline.core.process import PROCESS_ID_LENGTH, new_claim_owner
from pipeline.store.db import is_postgresql, lock_one
from pipeline.store.helpline_models import HelplineCase
from pipeline.store.lifecycle import notice_transition
from pipeline.store.models import Case, DeadLetter, Event, Notice
from pipeline.store.states import LEASED_NOTICE_STATES, NoticeState

log = logging.getLogger(__name__)

# Every state a notice can be in, by value (see the module docstring).
NOTICE_STATES = tuple(state.value for state in NoticeState)

UNCONFIRMED_TEXT = ("the SMTP server was given the end of the message, but its answer was "
                    "never recorded: check with the receiver, then `hotline notices resolve`")


class LostLease(Exception):
    """The notice is no longer this worker's (its lease ran out and another worker
    claimed it): stop before handing anything over."""


# ----------------------------------------------------------------------- the stage


@dataclass
class DispatchResult:
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    lost_lease: list[int] = field(default_factory=list)
    unconfirmed: list[int] = field(default_factory=list)  # this call, or found left over


def backoff(settings: Settings, attempts: int, hint_ms: int = 0) -> timedelta:
    cfg = settings.dispatch
    seconds = min(cfg.max_backoff_seconds, cfg.min_backoff_seconds * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=max(seconds, hint_ms / 1000))


def due_condition(now: datetime) -> ColumnElement[bool]:
    """Notices a dispatcher may take now. (`handing_over` is never one of them.)"""
    return or_(
        (Notice.state.in_((NoticeState.PLANNED, NoticeState.FAILED)))
        & (Notice.due_at.is_(None) | (Notice.due_at <= now)),
        (Notice.state == NoticeState.SENDING) & (Notice.lease_until < now),
    )


def claim(session: Session, notice_ids: Sequence[int], *, now: datetime, owner: str,
          lease: timedelta) -> list[Notice]:
    """Step 1: take the due notices among `notice_ids` (and dead ones named explicitly,
    which is how `hotline deadletters retry` revives them)."""
    query = (select(Notice)
             .where(Notice.id.in_(list(notice_ids)),
                    or_(due_condition(now), Notice.state == NoticeState.DEAD))
             .order_by(Notice.id))
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    notices = list(session.execute(query).scalars())
    for notice in notices:
        if notice.state == NoticeState.SENDING:  # its lease ran out: lost, not tried
            record_lost_claim(session, notice, NoticeState.SENDING, at=now,
                              reason="its lease ran out")
        else:
            if notice.state == NoticeState.DEAD:
                notice.attempts = 0
            notice_transition(session, notice, NoticeState.SENDING, at=now)
        notice.lease_owner = owner
        notice.lease_until = now + lease
    return notices


def record_lost_claim(session: Session, notice: Notice, to_state: NoticeState, *,
                      at: datetime, reason: str) -> None:
    """A claim that ended without an outcome (its worker died, or its lease ran out)
    moves the notice to `to_state` (sending again, or planned): counted in `crashes`,
    never in `attempts` (which count deliveries the channel refused), and audited."""
    notice.crashes = (notice.crashes or 0) + 1
    notice_transition(session, notice, to_state, at=at,
                      data={"channel": notice.channel, "reason": reason,
                            "crashes": notice.crashes,
                            "holder": (notice.lease_owner or "")[:PROCESS_ID_LENGTH]})
    log.warning("Notice %s for case %s: its claim was lost (%s); it goes out again.",
                notice.id, notice.case_id, reason,
                extra={"notice_id": notice.id, "case_id": notice.case_id})


def flag_unconfirmed(session: Session, notice_ids: Sequence[int] | None, *, now: datetime,
                     lease: timedelta) -> list[int]:
    """Notices left `handing_over` past their lease (the worker died after committing
    the marker) become `unconfirmed`, with an audit event each. They are never sent
    again by themselves: the receiver may have them. The event says when the hand-over
    began (`handed_over_at`: the marker's lease less `lease`, the length it was set
    with)."""
    query = (select(Notice)
             .where(Notice.state == NoticeState.HANDING_OVER, Notice.lease_until < now)
             .order_by(Notice.id))
    if notice_ids is not None:
        query = query.where(Notice.id.in_(list(notice_ids)))
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    flagged = []
    for notice in session.execute(query).scalars():
        _left_unconfirmed(session, notice, now=now, lease=lease,
                          reason="worker stopped after hand-over")
        flagged.append(notice.id)
    return flagged


def _left_unconfirmed(session: Session, notice: Notice, *, now: datetime, lease: timedelta,
                      reason: str) -> None:
    assert notice.lease_until is not None  # the marker set it
    handed_over = notice.lease_until - lease
    notice_transition(session, notice, NoticeState.UNCONFIRMED, at=now,
                      values={"lease_owner": None, "lease_until": None,
                              "last_error": UNCONFIRMED_TEXT},
                      data={"channel": notice.channel, "reason": reason,
                            "handed_over_at": as_utc(handed_over).isoformat()})
    log.error("Notice %s for case %s is unconfirmed: its worker stopped after handing "
              "it to the SMTP server; an operator must resolve it.", notice.id,
              notice.case_id, extra={"notice_id": notice.id, "case_id": notice.case_id})


def release_dead_holders(session: Session, holders: Sequence[str], *, now: datetime,
                         lease: timedelta) -> tuple[list[int], list[int]]:
    """The notices claimed by the processes `holders` (process ids whose heartbeat
    stopped): `sending` ones go back to `planned` at once (their claim is recorded as
    lost, not as an attempt), `handing_over` ones become `unconfirmed` (never resent
    by themselves). Returns (ids to deliver again, ids flagged unconfirmed)."""
    if not holders:
        return [], []
    query = (select(Notice)
             .where(Notice.state.in_(LEASED_NOTICE_STATES),
                    func.substr(Notice.lease_owner, 1, PROCESS_ID_LENGTH).in_(list(holders)))
             .order_by(Notice.id))
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    again, flagged = [], []
    for notice in session.execute(query).scalars():
        if notice.state == NoticeState.HANDING_OVER:
            _left_unconfirmed(session, notice, now=now, lease=lease,
                              reason="worker died after hand-over")
            flagged.append(notice.id)
            continue
        record_lost_claim(session, notice, NoticeState.PLANNED, at=now,
                          reason="its worker died")
        notice.lease_owner = None
        notice.lease_until = None
        again.append(notice.id)
    return again, flagged


def _mark_handing_over(session: Session, notice: Notice, owner: str, *, now: datetime,
                       until: datetime) -> bool:
    """The marker: this worker is about to end the SMTP DATA of the notice."""
    return notice_transition(session, notice, NoticeState.HANDING_OVER, at=now, owner=owner,
                             lease_until=until)


def _finish(session: Session, notice: Notice, owner: str, to_state: NoticeState, *,
            at: datetime, values: dict[str, object], data: dict[str, object] | None = None
            ) -> bool:
    """End this worker's claim on `notice` with `to_state` (only while it still owns
    it), with the audit event the state table names. False: another worker owns it."""
    return notice_transition(session, notice, to_state, at=at, owner=owner, values=values,
                             data=data)


def deliver_notices(
    session_factory: sessionmaker[Session],
    notice_ids: Sequence[int],
    *,
    clock: Clock,
    settings: Settings,
    channels: Channels | None = None,
) -> DispatchResult:
    channels = channels or Channels(settings)
    owner = new_claim_owner()
    result = DispatchResult()
    lease = timedelta(seconds=settings.dispatch.lease_seconds)
    with session_factory.begin() as session:
        result.unconfirmed += flag_unconfirmed(session, notice_ids, now=clock.now(),
                                               lease=lease)
        claimed = claim(session, notice_ids, now=clock.now(), owner=owner, lease=lease)
        session.flush()
        session.expunge_all()
    for notice in claimed:
        now = clock.now()
        error: Exception | None = None

        def handover(notice: Notice = notice) -> None:
            with session_factory.begin() as session:
                at = clock.now()
                if not _mark_handing_over(session, notice, owner, now=at, until=at + lease):
                    raise LostLease(f"notice {notice.id} is no longer this worker's")

        committed: list[bool] = []

        def accepted(notice: Notice = notice, now: datetime = now,
                     committed: list[bool] = committed) -> None:
            try:
                committed.append(_commit_sent(session_factory, notice, owner, now, result))
            except Exception:  # the database: committed after the channel returns
                log.warning("Notice %s: `sent` could not be committed at once; trying "
                            "again.", notice.id, exc_info=True,
                            extra={"notice_id": notice.id, "case_id": notice.case_id})

        try:
            channels.for_notice(notice).deliver(notice, at=now, handover=handover,
                                                accepted=accepted)
        except LostLease:
            result.lost_lease.append(notice.id)
            log.warning("Notice %s: lease lost before the hand-over; another worker owns it "
                        "now and nothing was handed over.", notice.id,
                        extra={"notice_id": notice.id, "case_id": notice.case_id})
            continue
        except DeliveryUnconfirmed as exc:
            with session_factory.begin() as session:
                if _finish(
                        session, notice, owner, NoticeState.UNCONFIRMED, at=now,
                        values={"last_error": f"{UNCONFIRMED_TEXT} ({exc})"[:2000]},
                        data={"channel": notice.channel, "reason": str(exc)[:200],
                              "handed_over_at": as_utc(now).isoformat()}):
                    result.unconfirmed.append(notice.id)
            log.error("Notice %s for case %s is unconfirmed (%s); an operator must resolve "
                      "it.", notice.id, notice.case_id, exc,
                      extra={"notice_id": notice.id, "case_id": notice.case_id})
            continue
        except (RetryLater, PermanentError, BadInput) as exc:
            error = exc
        except Exception as exc:  # a bug or an unexpected library error: retry, visibly
            log.exception("Notice %s failed unexpectedly.", notice.id,
                          extra={"notice_id": notice.id, "case_id": notice.case_id})
            error = RetryLater(f"{type(exc).__name__}: {exc}")
        if error is None:
            if not committed:
                _commit_sent(session_factory, notice, owner, now, result)
            continue
        with session_factory.begin() as session:
            message = str(error)[:2000]
            permanent = not isinstance(error, RetryLater)
            # An attempt is a delivery the channel refused or failed, counted here only.
            attempts = notice.attempts + 1
            if permanent or attempts >= settings.dispatch.max_attempts:
                if _finish(session, notice, owner, NoticeState.DEAD, at=now,
                           values={"last_error": message, "attempts": attempts},
                           data={"error": message[:200]}):
                    session.add(DeadLetter(
                        message_id=f"notice-{notice.id}-{attempts}", actor="dispatch",
                        queue="dispatch", args=[[notice.id]], kwargs={}, error=message,
                        traceback=None, retries=attempts, failed_at=now))
                    result.dead.append(notice.id)
                    log.error("Notice %s for case %s dead-lettered after %d attempts: %s",
                              notice.id, notice.case_id, attempts, message,
                              extra={"notice_id": notice.id, "case_id": notice.case_id})
            else:
                hint = error.delay_ms if isinstance(error, RetryLater) else 0
                retry_at = now + backoff(settings, attempts, hint)
                if _finish(session, notice, owner, NoticeState.FAILED, at=now,
                           values={"due_at": retry_at, "last_error": message,
                                   "attempts": attempts}):
                    result.retrying.append(notice.id)
                    log.warning("Notice %s for case %s failed (attempt %d), retrying at %s: %s",
                                notice.id, notice.case_id, attempts,
                                retry_at.isoformat(), message,
                                extra={"notice_id": notice.id, "case_id": notice.case_id})
    return result


def _commit_sent(session_factory: sessionmaker[Session], notice: Notice, owner: str,
                 now: datetime, result: DispatchResult) -> bool:
    """Commit `sent` (only if this call still owns the notice), with its audit event.
    True when this was decided (sent, or found to be another worker's)."""
    with session_factory.begin() as session:
        if _finish(session, notice, owner, NoticeState.SENT, at=now,
                   values={"sent_at": now, "last_error": None},
                   data={"channel": notice.channel}):
            result.sent.append(notice.id)
            log.info("Notice %s for case %s sent to %s.", notice.id, notice.case_id,
                     notice.destination,
                     extra={"notice_id": notice.id, "case_id": notice.case_id})
        else:
            result.lost_lease.append(notice.id)
            log.warning("Notice %s was delivered after its lease ran out; another "
                        "worker owns it now.", notice.id,
                        extra={"notice_id": notice.id, "case_id": notice.case_id})
    return True


def due_notice_ids(session: Session, *, now: datetime, stuck_before: datetime,
                   limit: int) -> list[int]:
    """For the reconciler: planned notices nobody delivered by `stuck_before`, failed
    ones whose retry time has come, claims whose lease ran out, and hand-overs whose
    lease ran out (the dispatcher makes those `unconfirmed`, never sends them)."""
    query = (select(Notice.id)
             .where(or_(
                 (Notice.state == NoticeState.PLANNED) & (Notice.due_at < stuck_before),
                 (Notice.state == NoticeState.FAILED) & (Notice.due_at <= now),
                 (Notice.state.in_(LEASED_NOTICE_STATES)) & (Notice.lease_until < now),
             ))
             .order_by(Notice.due_at)
             .limit(limit))
    return list(session.execute(query).scalars())


# ------------------------------------------------------------ operators: unconfirmed


def _handed_over_at(session: Session, notice: Notice) -> datetime | None:
    """When the notice was last handed over, from its latest `notice_unconfirmed`
    event (the hand-over time it records, else the event's own time)."""
    rows = session.execute(
        select(Event.at, Event.data).where(Event.case_id == notice.case_id,
                                           Event.action == "notice_unconfirmed")
        .order_by(Event.id.desc())).all()
    for at, data in rows:
        data = data or {}
        if data.get("notice") == notice.id:
            recorded = data.get("handed_over_at")
            return datetime.fromisoformat(recorded) if recorded else as_utc(at)
    return None


def list_notices(session: Session, states: Sequence[str] = (NoticeState.UNCONFIRMED,), *,
                 limit: int = 1000) -> list[tuple[Notice, str]]:
    """Notices in `states` with their case's reference, oldest first."""
    unknown = sorted(set(states) - set(NOTICE_STATES))
    if unknown:
        raise BadInput(f"unknown notice states {unknown} (known: {', '.join(NOTICE_STATES)})")
    rows = session.execute(
        select(Notice, func.coalesce(Case.ref, HelplineCase.ref))
        .outerjoin(Case, Case.id == Notice.case_id)
        .outerjoin(HelplineCase, HelplineCase.id == Notice.helpline_case_id)
        .where(Notice.state.in_(list(states))).order_by(Notice.id).limit(limit))
    return [(notice, ref) for notice, ref in rows.tuples()]


def resolve_unconfirmed(session: Session, notice_id: int, *,
                        outcome: Literal["sent", "send_again"], by: str, reason: str,
                        now: datetime, sent_at: datetime | None = None) -> Notice:
    """An operator's decision on an `unconfirmed` notice, after checking with the
    receiver: it arrived (`sent`, at `sent_at`, else when it was handed over: the
    takedown clock and the statistics run from the hand-over, not from the decision),
    or it did not (`send_again`: planned again, same token, so the same Message-ID;
    the caller enqueues it)."""
    if not reason.strip():
        raise BadInput("say why (what the receiver said): a reason is required")
    notice = lock_one(session, select(Notice).where(Notice.id == notice_id),
                      f"no notice {notice_id}")
    if notice.state != NoticeState.UNCONFIRMED:
        raise BadInput(f"notice {notice_id} is {notice.state}, not unconfirmed")
    data: dict[str, object] = {"reason": reason[:500], "channel": notice.channel}
    if outcome == "sent":
        data["sent_at_from"] = "operator" if sent_at is not None else "hand-over"
        sent_at = sent_at or _handed_over_at(session, notice) or now
        notice_transition(session, notice, NoticeState.SENT, at=now, actor=by, data=data,
                          values={"sent_at": sent_at, "last_error": None})
    else:
        notice_transition(session, notice, NoticeState.PLANNED, at=now, actor=by, data=data,
                          values={"due_at": now})
    log.warning("Notice %s for case %s resolved by %s: %s.", notice.id, notice.case_id, by,
                outcome, extra={"notice_id": notice.id, "case_id": notice.case_id})
    return notice
