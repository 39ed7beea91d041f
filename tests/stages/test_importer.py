"""`hotline import`: JSON Lines and CSV; a bad line is named and the rest imported."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from sqlalchemy import func, select

from pipeline.core.errors import BadInput
from pipeline.core.messaging import NORMALISE
from pipeline.stages.importer import import_file, import_stream
from pipeline.store.models import Report


def _import(runtime, path, **kwargs):
    return import_file(path, runtime.session_factory, clock=runtime.clock,
                       limits=runtime.settings.intake, enqueuer=runtime.enqueuer, **kwargs)


def _stored(runtime):
    with runtime.session_factory() as session:
        return session.execute(select(Report.url, Report.channel).order_by(Report.id)).all()


def test_a_json_lines_file_imports_every_good_line_and_names_the_bad_ones(runtime, tmp_path):
    path = tmp_path / "reports.jsonl"
    path.write_text("\n".join([
        json.dumps({"url": "http://a.example/1", "claimed_category": "csam"}),
        "{broken",
        json.dumps({"url": "http://b.example/", "channel": "email"}),
        "",
        json.dumps({"channel": "web"}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"url": "http://c.example/", "received_at": "2026-01-02T03:04:05+01:00"}),
    ]) + "\n")
    result = _import(runtime, path, source="partner-cz")
    assert result.imported == 3
    assert [line for line, _ in result.errors] == [2, 5, 6]
    assert "not valid JSON" in result.errors[0][1]
    assert "url" in result.errors[1][1]
    assert _stored(runtime) == [("http://a.example/1", "import"), ("http://b.example/", "email"),
                                ("http://c.example/", "import")]
    assert len(runtime.enqueuer.ids(NORMALISE)) == 3


def test_a_csv_file_imports_with_line_numbers_for_bad_rows(runtime, tmp_path):
    path = tmp_path / "reports.csv"
    path.write_text("url,claimed_category,urgent\n"
                    "http://a.example/,csam,yes\n"
                    "http://b.example/,not-a-category,\n"
                    ",,\n"
                    "http://c.example/,,no\n")
    result = _import(runtime, path)
    assert result.imported == 2
    assert [line for line, _ in result.errors] == [3, 4]
    assert "claimed_category" in result.errors[0][1]
    with runtime.session_factory() as session:
        assert session.execute(select(Report.urgent).order_by(Report.id)).scalars().all() == [
            True, False]


def test_a_csv_with_an_unknown_column_is_refused_whole(runtime, tmp_path):
    path = tmp_path / "reports.csv"
    path.write_text("url,favourite_colour\nhttp://a.example/,red\n")
    with pytest.raises(BadInput, match="favourite_colour"):
        _import(runtime, path)
    assert _stored(runtime) == []


def test_a_large_import_commits_in_batches_growing_from_one_line(settings_factory, tmp_path):
    from pipeline.app.runtime import build_runtime
    from pipeline.core.clock import FrozenClock
    from pipeline.core.messaging import RecordingEnqueuer
    from pipeline.store.migrate import upgrade

    settings = settings_factory(intake={"import_commit_every": 100})
    upgrade(settings.database.url)
    runtime = build_runtime(settings, clock=FrozenClock())
    runtime.enqueuer = RecordingEnqueuer()
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"url": f"http://x.example/{n}"}) + "\n"
                            for n in range(250)))
    result = _import(runtime, path)
    assert result.imported == 250
    # The first line on its own (the pipeline starts at once), then twice as many each
    # time up to import_commit_every.
    assert [len(batch) for _, batch in runtime.enqueuer.sent] == [1, 2, 4, 8, 16, 32, 64,
                                                                   100, 23]
    with runtime.session_factory() as session:
        assert session.execute(select(func.count(func.distinct(Report.submission_ref)))
                               ).scalar_one() == 1
    runtime.close()


class _CommittedFirst:
    """An enqueuer that checks, when asked to send, that every id is already committed
    (read from a session of its own) and sent no more than once."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.sent: list[int] = []
        self.problems: list[str] = []

    def send(self, stage, ids):
        with self.runtime.session_factory() as session:
            stored = set(session.execute(select(Report.id).where(Report.id.in_(ids))).scalars())
        if stored != set(ids):
            self.problems.append(f"enqueued before commit: {sorted(set(ids) - stored)}")
        if set(ids) & set(self.sent):
            self.problems.append(f"enqueued twice: {sorted(set(ids) & set(self.sent))}")
        self.sent.extend(ids)


def test_the_first_lines_are_committed_and_enqueued_before_the_file_is_read_to_its_end(
    runtime,
):
    """A file that stops after three lines (a pipe whose writer waits): those lines are
    in the database and queued while the import still waits for the rest; then the
    rest comes, and every line is stored and queued exactly once."""
    read_end, write_end = os.pipe()
    writer = os.fdopen(write_end, "wb")
    writer.write(b"url,claimed_category\n"
                 + b"".join(b"http://first.example/%d,csam\n" % n for n in range(3)))
    writer.flush()
    enqueuer = _CommittedFirst(runtime)
    outcome = {}

    def run_import():
        with os.fdopen(read_end, "rb") as stream:
            outcome["result"] = import_stream(
                stream, runtime.session_factory, name="pipe.csv", is_csv=True,
                clock=runtime.clock, limits=runtime.settings.intake, enqueuer=enqueuer)

    importing = threading.Thread(target=run_import, daemon=True)
    importing.start()
    try:
        deadline = time.monotonic() + 30
        while len(enqueuer.sent) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(enqueuer.sent) == 3, enqueuer.sent  # 1, then 2: before the file ended
        assert importing.is_alive()  # still waiting for the rest of the file
        assert [url for url, _ in _stored(runtime)] == [
            f"http://first.example/{n}" for n in range(3)]
        writer.write(b"".join(b"http://rest.example/%d,\n" % n for n in range(200)))
    finally:
        writer.close()
    importing.join(30)
    assert not importing.is_alive()
    assert outcome["result"].imported == 203 and outcome["result"].errors == []
    assert enqueuer.problems == []
    with runtime.session_factory() as session:
        stored = session.execute(select(Report.id)).scalars().all()
    assert sorted(enqueuer.sent) == sorted(stored) and len(stored) == 203


def test_a_csv_record_that_is_not_utf8_is_refused_by_its_line_and_the_rest_imported(
    runtime, tmp_path,
):
    path = tmp_path / "reports.csv"
    path.write_bytes(b"\xef\xbb\xbfurl,description\n"
                     b"http://a.example/,fine\n"
                     b'http://b.example/,"two\nlines \xff"\n'
                     b"http://c.example/,\n")
    result = _import(runtime, path)
    assert result.imported == 2
    assert result.errors == [(4, "not valid UTF-8")]
    assert [url for url, _ in _stored(runtime)] == ["http://a.example/", "http://c.example/"]


def test_a_csv_field_too_long_to_read_is_a_refused_line_not_a_crash(runtime, tmp_path):
    path = tmp_path / "reports.csv"
    path.write_text("url,description\nhttp://a.example/,\n"
                    f"http://b.example/,{'x' * 140_000}\nhttp://c.example/,\n")
    result = import_file(path, runtime.session_factory, clock=runtime.clock,
                         limits=runtime.settings.intake, enqueuer=runtime.enqueuer)
    assert result.imported == 2
    assert result.errors == [(3, "the record cannot be read as CSV (field larger than "
                                 "field limit (131072))")]


def test_an_import_into_postgresql_analyses_the_tables_each_time_it_doubles_them(
        pg_runtime, tmp_path, monkeypatch):
    """Plans made while the tables were nearly empty must not outlive a bulk import:
    PostgreSQL replans prepared statements when a table is analysed
    (`importer._Analyser`)."""
    from sqlalchemy import text

    from pipeline.stages import importer

    monkeypatch.setattr(importer, "ANALYSE_FROM", 20)
    rt = pg_runtime
    statements: list[str] = []
    original = importer._Analyser.after

    def counting(self, imported):
        before = self.next_at
        original(self, imported)
        if before is not None and self.next_at != before:
            statements.append(f"ANALYZE at {imported}")

    monkeypatch.setattr(importer._Analyser, "after", counting)

    def reltuples():
        with rt.session_factory() as session:
            return session.execute(text(
                "SELECT reltuples FROM pg_class WHERE relname = 'reports'")).scalar_one()

    with rt.session_factory.begin() as session:  # only this import analyses them
        session.execute(text("ALTER TABLE reports SET (autovacuum_enabled = false)"))
    try:
        assert reltuples() <= 0  # never analysed since emptied
        path = tmp_path / "reports.csv"
        path.write_text("url\n" + "".join(f"http://h{i}.example/{i}\n" for i in range(300)))
        result = _import(rt, path)
        assert result.imported == 300
        # Doubled from nothing at 40, then at 80, 160 and 320 reports (not reached):
        # each commit that crossed a mark analysed the tables.
        assert len(statements) == 3, statements
        assert 160 <= reltuples() <= 300
    finally:
        with rt.session_factory.begin() as session:
            session.execute(text("ALTER TABLE reports RESET (autovacuum_enabled)"))


def test_an_import_into_sqlite_analyses_nothing(tmp_path, settings_factory):
    from pipeline.app.runtime import build_runtime
    from pipeline.stages import importer

    rt = build_runtime(settings_factory())
    try:
        analyser = importer._Analyser(rt.session_factory)
        analyser.after(10**9)
        assert analyser.next_at == float("inf")
    finally:
        rt.close()


def test_an_analyse_that_fails_leaves_the_import_going(pg_runtime, tmp_path, monkeypatch,
                                                       caplog):
    from pipeline.stages import importer

    monkeypatch.setattr(importer, "ANALYSE_FROM", 10)
    monkeypatch.setattr(importer._Analyser, "TABLES", "no_such_table")
    path = tmp_path / "reports.csv"
    path.write_text("url\n" + "".join(f"http://h{i}.example/{i}\n" for i in range(60)))
    result = _import(pg_runtime, path)
    assert result.imported == 60 and result.errors == []
    assert "ANALYZE during the import failed" in caplog.text
    with pg_runtime.session_factory() as session:
        assert session.execute(select(func.count()).select_from(Report)).scalar_one() == 60


class _Batches:
    """Wraps `take_in` as the importer calls it: counts the batches in their
    transactions at once; `hold` (batch number -> event) keeps a batch from returning
    until the event is set or a few seconds pass; `fail` names a batch that raises."""

    def __init__(self, monkeypatch, *, hold=None, fail=None):
        from pipeline.stages import importer

        self.real = importer.take_in
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.started: list[int] = []
        self.beside: list[int] = []
        self.returned: list[list[int]] = []  # the ids of each batch that committed
        self.hold = hold or {}
        self.fail = fail
        self.second_started = threading.Event()
        self.first_alone = False  # nothing else started while the first batch ran
        monkeypatch.setattr(importer, "take_in", self)

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.started.append(len(args[1]))
            self.beside.append(self.running - 1)  # batches running as this one started
            number = len(self.started)
            if self.running > 1:
                self.second_started.set()
        try:
            if number == self.fail:
                raise RuntimeError(f"batch {number} failed")
            stored = self.real(*args, **kwargs)
            if number in self.hold:
                self.hold[number].wait(5)
            with self.lock:
                if number == 1:
                    self.first_alone = self.most == 1
                self.returned.append([a.id for a in stored.accepted])
            return stored
        finally:
            with self.lock:
                self.running -= 1


def _settling(rt, redis_client, redis_namespace):
    from pipeline.stages.dedupe import IntakeSettler, dedupe_options

    rt.settings.redis.namespace = redis_namespace
    return IntakeSettler(up_to=100, options=dedupe_options(rt.settings, redis_client))


def test_on_postgresql_two_batches_settle_at_once_and_every_line_lands_once(
        pg_runtime, tmp_path, monkeypatch, redis_client, redis_namespace):
    """Batches of 8 lines over 12 URLs written many ways: consecutive batches share
    most URLs, so each batch's cases meet the one before it still in its transaction.
    Two are in flight once batches are full; every line is stored once, one
    case per URL, counts add up, each new case queued for tracing once, the audit
    verifies."""
    from pipeline.core.messaging import NORMALISE, TRACE
    from pipeline.domain.urls import canonicalise
    from pipeline.stages.dedupe import normalise_and_dedupe
    from pipeline.store.audit import verify
    from pipeline.store.models import Case

    rt = pg_runtime
    rt.settings.intake.import_commit_every = 8
    spellings = ["http://site{n}.example/p", "HTTP://SITE{n}.EXAMPLE/p",
                 "http://site{n}.example:80/p", "http://site{n}.example/p#top"]
    urls = [spellings[i % 4].format(n=i % 12) for i in range(240)]
    path = tmp_path / "reports.csv"
    path.write_text("url\n" + "".join(u + "\n" for u in urls))
    batches = _Batches(monkeypatch)
    result = _import(rt, path, settle=_settling(rt, redis_client, redis_namespace))

    assert result.imported == 240 and result.errors == []
    assert batches.most == 2 and batches.first_alone
    # Until the batches are full (1, 2, 4 lines) one at a time: the first two start
    # alone (the third may see the fourth, full, start first: threads race).
    assert sorted(batches.started[:4]) == [1, 2, 4, 8] and batches.beside[:2] == [0, 0]
    assert batches.started[:2] == [1, 2]
    # A batch whose settling lost to the other too often is stored for the workers.
    with rt.session_factory.begin() as session:
        normalise_and_dedupe(session, rt.enqueuer.ids(NORMALISE), clock=rt.clock)
    with rt.session_factory() as session:
        assert session.execute(select(func.count()).select_from(Report)).scalar_one() == 240
        found = session.execute(select(Case.id, Case.dedup_key, Case.report_count)).all()
        states = dict(session.execute(select(Report.state, func.count())
                                      .group_by(Report.state)).all())
        assert verify(session) == []
    assert sorted(k for _, k, _ in found) == sorted({canonicalise(u).dedup_key for u in urls})
    assert sum(n for _, _, n in found) == 240
    assert states == {"new_case": 12, "duplicate": 228}
    to_trace = rt.enqueuer.ids(TRACE)  # new cases opened at intake, each queued once
    assert len(to_trace) == len(set(to_trace))
    assert set(to_trace) <= {case_id for case_id, _, _ in found}


def test_the_first_line_goes_alone_then_two_batches_overlap_on_postgresql(
        pg_runtime, tmp_path, monkeypatch):
    """The second batch is held in its transaction's end until a third one has started:
    only an importer with two batches in flight gets past it without waiting."""
    rt = pg_runtime
    rt.settings.intake.import_commit_every = 4  # batches of 1, 2, then 4 lines
    path = tmp_path / "reports.csv"
    path.write_text("url\n" + "".join(f"http://h{i}.example/x\n" for i in range(30)))
    release = threading.Event()
    batches = _Batches(monkeypatch, hold={2: release})
    batches.second_started = release  # set when two run at once
    result = _import(rt, path)
    assert result.imported == 30
    assert batches.most == 2 and release.is_set() and batches.first_alone
    assert sorted(batches.started[:3]) == [1, 2, 4]


def test_sqlite_takes_one_batch_at_a_time(sqlite_runtime, tmp_path, monkeypatch):
    path = tmp_path / "reports.csv"
    path.write_text("url\n" + "".join(f"http://h{i}.example/x\n" for i in range(30)))
    batches = _Batches(monkeypatch)
    assert _import(sqlite_runtime, path).imported == 30
    assert batches.most == 1 and batches.started == [1, 2, 4, 8, 15]


def test_a_batch_that_fails_fails_the_import_once_the_other_batch_is_done(
        pg_runtime, tmp_path, monkeypatch):
    """The third batch fails while the fourth may be in its transaction: the import
    raises only when nothing runs any more, and every batch that committed was
    queued (what was stored is never left unqueued)."""
    rt = pg_runtime
    rt.settings.intake.import_commit_every = 4  # batches of 1, 2, then 4 lines
    path = tmp_path / "reports.csv"
    path.write_text("url\n" + "".join(f"http://h{i}.example/x\n" for i in range(60)))
    batches = _Batches(monkeypatch, fail=3)
    enqueuer = _CommittedFirst(rt)
    with pytest.raises(RuntimeError, match="batch 3 failed"):
        import_file(path, rt.session_factory, clock=rt.clock, limits=rt.settings.intake,
                    enqueuer=enqueuer)
    assert batches.running == 0
    committed = sorted(i for ids in batches.returned for i in ids)
    with rt.session_factory() as session:
        stored = sorted(session.execute(select(Report.id)).scalars())
    assert stored == committed == sorted(enqueuer.sent) and enqueuer.problems == []
    assert len(stored) in (1 + 2, 1 + 2 + 4)  # the fourth batch ran beside the third, or not
