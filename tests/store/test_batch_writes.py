"""The stages' batch path: rows moved with `advance`, stored with `write_rows`, events and
reports inserted with `insert_rows` (COPY on PostgreSQL). It must store exactly what the
ORM path would: encrypted contacts, defaults, times kept, the audit chain intact."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from pipeline.core import crypto
from pipeline.core.errors import IllegalTransition
from pipeline.stages.intake import store_reports
from pipeline.store.audit import insert_events, verify
from pipeline.store.db import lock_rows
from pipeline.store.lifecycle import HEAD_COLUMNS, advance, write_rows
from pipeline.store.models import Case, Event, Report
from pipeline.store.states import CaseState, ReportState
from schemas.intake import ReportIn
from tests.factories import make_case

CONTACT = "milica.canary@example.org"


def test_intake_stores_the_contact_encrypted_and_the_models_defaults(runtime):
    item = ReportIn(url="http://example.com/a", channel="web", reporter_contact=CONTACT,
                    description="seen on a forum")
    with runtime.session_factory.begin() as session:
        [accepted] = store_reports(session, [item], clock=runtime.clock,
                                   limits=runtime.settings.intake)
    with runtime.engine.connect() as conn:
        raw, confusable = conn.execute(
            text("SELECT reporter_contact, host_confusable FROM reports WHERE id = :id"),
            {"id": accepted.id}).one()
    assert CONTACT not in raw and raw.startswith(crypto.PREFIX)
    assert confusable in (False, 0)  # the model's default, which COPY does not know
    with runtime.session_factory() as session:
        report = session.get(Report, accepted.id)
        assert report.reporter_contact == CONTACT
        assert report.state == ReportState.RECEIVED
        assert report.received_at == runtime.clock.now()
        [event] = session.execute(select(Event).where(Event.report_id == report.id)).scalars()
        assert event.data == {"channel": "web"} and event.seq == 1
        assert verify(session) == []


def test_write_rows_keeps_a_stamped_time_and_closes_the_open_key(runtime):
    with runtime.session_factory.begin() as session:
        case = make_case(session, at=runtime.clock.now(), state=CaseState.ASSESSED,
                         closed_at=None)
        case_id = case.id
    first = runtime.clock.now()
    runtime.clock.advance(minutes=5)
    with runtime.session_factory.begin() as session:
        [row] = lock_rows(session, Case, [case_id], [CaseState.ASSESSED], HEAD_COLUMNS)
        events = [advance("case", row, CaseState.CLOSED, at=first)]
        write_rows(session, "case", [row])
        insert_events(session, events)
    runtime.clock.advance(minutes=5)
    with runtime.session_factory.begin() as session:
        case = session.get(Case, case_id)
        assert case.state == CaseState.CLOSED and case.closed_at == first
        assert case.open_key is None  # the URL may open a new case now
        assert case.audit_seq == 1
        assert verify(session) == []


def test_advance_refuses_a_move_the_table_does_not_allow_naming_the_row():
    row = {"id": 7, "ref": "C-TEST", "state": CaseState.NORMALISED.value, "audit_seq": 0,
           "audit_hash": None}
    with pytest.raises(IllegalTransition, match="C-TEST"):
        advance("case", row, CaseState.CLOSED, at=None)  # type: ignore[arg-type]
    assert row["state"] == CaseState.NORMALISED.value and row["audit_seq"] == 0


def test_a_stage_holding_a_case_does_not_stop_reports_from_naming_it(pg_runtime):
    """The stages lock their rows FOR NO KEY UPDATE: a report joining a case that the
    trace stage holds takes its foreign-key lock at once (with FOR UPDATE it waited
    for the stage, and the two deadlocked when the stage waited for it in turn)."""
    runtime = pg_runtime
    with runtime.session_factory.begin() as session:
        case_id = make_case(session, at=runtime.clock.now(), state=CaseState.NORMALISED).id
        [accepted] = store_reports(session, [ReportIn(url="http://example.com/b",
                                                      channel="web")],
                                   clock=runtime.clock, limits=runtime.settings.intake)
    with runtime.session_factory.begin() as stage:
        held = lock_rows(stage, Case, [case_id], [CaseState.NORMALISED], HEAD_COLUMNS)
        assert [row["id"] for row in held] == [case_id]
        with runtime.session_factory.begin() as other:
            other.execute(text("SET LOCAL lock_timeout = '2s'"))
            other.execute(text("UPDATE reports SET case_id = :case WHERE id = :id"),
                          {"case": case_id, "id": accepted.id})
        # The stage still holds the row against other stages.
        with runtime.session_factory.begin() as rival:
            assert lock_rows(rival, Case, [case_id], [CaseState.NORMALISED],
                             HEAD_COLUMNS) == []


def test_a_deadlock_becomes_a_retry_and_other_errors_pass():
    from pipeline.core.errors import RetryLater
    from pipeline.store.db import deadlock_retried

    class Deadlock(Exception):
        sqlstate = "40P01"

    class Wrapped(Exception):
        orig = Deadlock()

    for raised in (Deadlock(), Wrapped()):
        with pytest.raises(RetryLater, match="tracing met a deadlock"), \
                deadlock_retried("tracing"):
            raise raised
    with pytest.raises(ValueError), deadlock_retried("tracing"):
        raise ValueError("not a deadlock")


def test_numbered_rows_get_their_own_ids_in_order_between_other_writers(runtime):
    """`insert_rows_numbered`: SQLite's ids come from `last_insert_rowid()`, checked
    against the rows' references; other rows written before and between are no
    matter."""
    from pipeline.stages.intake import new_reference
    from pipeline.store.db import insert_rows_numbered

    table = Report.__table__
    now = runtime.clock.now()

    def rows(n):
        return [dict(ref=new_reference("R"), submission_ref="S-1", url=f"http://e.com/{i}",
                     channel="web", received_at=now, state="received", audit_seq=0,
                     state_changed_at=now)
                for i in range(n)]

    made = []
    for n in (3, 1, 250):
        batch = rows(n)
        with runtime.session_factory.begin() as session:
            store_reports(session, [ReportIn(url="http://between.example/")],
                          clock=runtime.clock, limits=runtime.settings.intake)
            ids = insert_rows_numbered(session, table, batch, unique="ref")
        assert [row["id"] for row in batch] == ids and len(set(ids)) == n
        made += batch
    with runtime.session_factory() as session:
        stored = dict(session.execute(select(Report.ref, Report.id)).all())
    assert all(stored[row["ref"]] == row["id"] for row in made)
    assert len(stored) == len(made) + 3


def test_counting_joined_reports_locks_the_cases_in_id_order_whatever_the_pages(pg_runtime):
    """Deduplication adds joining reports to their cases' counts, locking the case
    rows in id order first. One UPDATE over several cases locks them in the order
    its plan visits them (by page and slot), not by id: skipped for a single count,
    it deadlocked with another batch's ordered lock (make bench's PostgreSQL log)."""
    import threading

    from pipeline.stages.dedupe import _count_joined, _Placed
    from tests.pg_support import wait_for_a_lock_wait

    runtime = pg_runtime
    with runtime.session_factory.begin() as session:
        first = make_case(session, at=runtime.clock.now(), state=CaseState.NORMALISED).id
        second = make_case(session, at=runtime.clock.now(), url="http://example.com/b",
                           state=CaseState.NORMALISED).id
    with runtime.session_factory.begin() as session:  # an indexed column: a new version
        session.execute(text("UPDATE cases SET host = 'moved.example' WHERE id = :id"),
                        {"id": first})
    with runtime.session_factory() as session:
        ctids = dict(session.execute(text(
            "SELECT id, (ctid::text::point)[0] * 1e6 + (ctid::text::point)[1] "
            "FROM cases WHERE id IN (:a, :b)"), {"a": first, "b": second}).all())
    assert ctids[first] > ctids[second], "the premise: the first case now lies after"
    placements = [(_Placed(case_id=case_id, case_ref=str(case_id)), [{}])
                  for case_id in (first, second)]  # one report each: one count
    errors: list[BaseException] = []

    def count() -> None:
        try:
            with runtime.session_factory.begin() as session:
                _count_joined(session, placements)
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    with runtime.session_factory.begin() as holder:
        holder.execute(select(Case.id).where(Case.id == first).with_for_update(
            key_share=True))
        counter = threading.Thread(target=count)
        counter.start()
        wait_for_a_lock_wait(runtime, "the count")
        # The count waits for the first case; it must not hold the second meanwhile.
        with runtime.session_factory.begin() as other:
            other.execute(text("SET LOCAL lock_timeout = '1s'"))
            other.execute(select(Case.id).where(Case.id == second).with_for_update(
                key_share=True))
    counter.join(30)
    assert errors == []
    with runtime.session_factory() as session:
        assert session.execute(select(Case.report_count).where(
            Case.id.in_([first, second]))).scalars().all() == [2, 2]


def test_a_batch_keeps_each_rows_time_whether_shared_aware_or_naive(runtime):
    # SQLite: each distinct time of a batch is converted once (`db._remembered`);
    # every row must still keep its own instant.
    from datetime import UTC, datetime, timedelta, timezone

    from pipeline.store.db import insert_rows
    from pipeline.store.ops_models import Heartbeat

    base = datetime(2026, 12, 7, 20, 0, 0, 123000, tzinfo=UTC)
    times = [base, base, base + timedelta(microseconds=1),
             base.astimezone(timezone(timedelta(hours=2))),  # the same instant as base
             base.replace(tzinfo=None) + timedelta(hours=1),  # naive: taken as UTC
             base, base + timedelta(days=1)]
    rows = [{"name": f"t{i}", "beat_at": at, "host": "h", "pid": i}
            for i, at in enumerate(times)]
    with runtime.session_factory.begin() as session:
        insert_rows(session, Heartbeat.__table__, rows)
    with runtime.session_factory() as session:
        kept = {h.name: h.beat_at for h in session.scalars(select(Heartbeat))}
    expected = [at if at.tzinfo else at.replace(tzinfo=UTC) for at in times]
    assert [kept[f"t{i}"] for i in range(len(times))] == expected


def test_copy_writes_each_columns_values_as_given_text_json_times_and_nulls(runtime):
    """`insert_rows` (PostgreSQL: COPY in the binary format) keeps every value as it was
    given: text with quotes, backslashes, tabs, new lines and non-Latin letters, JSON
    of any depth, aware times to the microsecond, integers past 32 bits, NULLs."""
    from datetime import UTC, datetime

    from pipeline.store.db import insert_rows

    awkward = 'a "quoted" \\ back\tslash\nand Ћирилица, 中文, emoji 🙂'
    at = datetime(2026, 12, 8, 0, 1, 2, 345678, tzinfo=UTC)
    rows = [{"stream": f"test:{awkward}"[:80], "seq": seq, "at": at, "actor": awkward[:120],
             "action": "act", "from_state": None if seq % 2 else "received",
             "to_state": "normalised", "data": data, "case_id": case_id,
             "report_id": None, "prev_hash": "0" * 64, "hash": f"{seq:064d}"}
            for seq, data, case_id in [
                (1, {}, None), (2, {"text": awkward, "n": [1, 2.5, None, True]}, 2**40),
                (3, {"deep": {"er": {"still": ["é", {"x": "\\\"\n"}]}}}, 7)]]
    with runtime.session_factory.begin() as session:
        insert_rows(session, Event.__table__, rows)
    with runtime.session_factory() as session:
        kept = session.execute(select(Event).where(Event.stream == rows[0]["stream"])
                               .order_by(Event.seq)).scalars().all()
        got = [{key: getattr(event, key) for key in rows[0]} for event in kept]
    assert got == rows


def test_every_table_written_by_copy_goes_in_the_binary_format():
    """The tables the stages write with COPY have only column types that have a binary
    form (`db._binary_type`); a type without one leaves the COPY in the text format."""
    from sqlalchemy import Column, Integer, LargeBinary, MetaData, Numeric, Table

    from pipeline.stages.trace import _TRACES
    from pipeline.store.db import _binary_type

    for table in (Report.__table__, Event.__table__, _TRACES):
        assert {c.key: _binary_type(c.type) for c in table.columns if
                _binary_type(c.type) is None} == {}, table.name
    other = Table("other", MetaData(), Column("id", Integer), Column("n", Numeric),
                  Column("b", LargeBinary))
    assert [_binary_type(c.type) for c in other.columns] == ["int4", None, None]


def test_a_table_with_a_type_without_a_binary_form_is_copied_as_text(pg_runtime):
    from decimal import Decimal

    from sqlalchemy import Column, Integer, MetaData, Numeric, Table

    from pipeline.store.db import insert_rows

    table = Table("copy_as_text", MetaData(), Column("id", Integer), Column("n", Numeric))
    with pg_runtime.session_factory.begin() as session:
        session.execute(text("CREATE TEMP TABLE copy_as_text (id int, n numeric) "
                             "ON COMMIT DROP"))
        insert_rows(session, table, [{"id": 1, "n": Decimal("1.25")}, {"id": 2, "n": None}])
        assert session.execute(text("SELECT id, n FROM copy_as_text ORDER BY id")).all() == [
            (1, Decimal("1.25")), (2, None)]
