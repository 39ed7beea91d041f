"""`hotline import`: JSON Lines and CSV; a bad line is named and the rest imported."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from pipeline.core.errors import BadInput
from pipeline.core.messaging import NORMALISE
from pipeline.stages.importer import import_file
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


def test_a_large_import_commits_in_batches(settings_factory, tmp_path):
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
    assert [len(batch) for _, batch in runtime.enqueuer.sent] == [100, 100, 50]
    with runtime.session_factory() as session:
        assert session.execute(select(func.count(func.distinct(Report.submission_ref)))
                               ).scalar_one() == 1
    runtime.close()
