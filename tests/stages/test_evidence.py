"""The evidence bundle for a police referral: complete, digested, verifiable."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from pipeline.app.runtime import build_runtime
from pipeline.core.errors import NotFound
from pipeline.stages.evidence import WITHHELD, build_bundle, export_evidence, verify_folder
from pipeline.store.migrate import upgrade
from pipeline.store.models import Event
from pipeline.store.states import CaseState
from tests.ops_helpers import add_case

CONTACT = "witness.canary@example.org"


def _case(runtime, **kw):
    with runtime.session_factory.begin() as session:
        return add_case(session, at=runtime.clock.now() - timedelta(days=1), contact=CONTACT,
                        until=CaseState.NOTIFIED, **kw)


def _bundle(runtime, ref):
    with runtime.session_factory() as session:
        return build_bundle(session, ref, settings=runtime.settings, now=runtime.clock.now())


def test_the_bundle_holds_timeline_traces_with_raw_answers_assessments_and_notices(runtime):
    case = _case(runtime)
    bundle = _bundle(runtime, case.ref)
    assert {"case.json", "reports.json", "timeline.json", "traces.json", "notices.json",
            "manifest.json", "SHA256SUMS"} <= set(bundle.files)
    content = json.loads(bundle.files["traces.json"])
    traces = content["traces"]
    assert traces[0]["dns_raw"] == {"A": "bad.example. 300 IN A 192.0.2.7"}
    key = traces[0]["rdap_raw"][0]["answer"]
    answers = {a["key"]: a for a in content["trace_answers"]}
    assert answers[key]["body"]["handle"] == "NET-192-0-2"
    timeline = json.loads(bundle.files["timeline.json"])
    actions = [e["action"] for e in timeline["events"] if e["stream"] == f"case:{case.ref}"]
    assert actions[0] == "case_opened" and actions[-1] == "case_notified"
    assert set(timeline["chains"].values()) == {"intact"}
    assert len(timeline["chains"]) == 2  # the case's chain and its report's
    notices = json.loads(bundle.files["notices.json"])
    assert notices[0]["state"] == "sent" and "bad.example/x.html" in notices[0]["body"]
    case_json = json.loads(bundle.files["case.json"])
    assert case_json["case"]["ref"] == case.ref and case_json["case"]["hosting_country"] == "NL"
    if "assessments.json" in bundle.files:
        assert "assessments" in json.loads(bundle.files["assessments.json"])


def test_the_manifest_digests_every_file(runtime):
    bundle = _bundle(runtime, _case(runtime).ref)
    manifest = bundle.manifest
    for name, entry in manifest["files"].items():
        assert hashlib.sha256(bundle.files[name]).hexdigest() == entry["sha256"]
        assert len(bundle.files[name]) == entry["bytes"]
    sums = dict(line.split("  ")[::-1] for line in
                bundle.files["SHA256SUMS"].decode().splitlines())
    assert sums["manifest.json"] == hashlib.sha256(bundle.files["manifest.json"]).hexdigest()
    assert set(sums) == set(bundle.files) - {"SHA256SUMS"}


def test_the_reporter_contact_is_withheld_unless_the_police_are_to_receive_it(runtime):
    case = _case(runtime)
    reports = json.loads(_bundle(runtime, case.ref).files["reports.json"])
    assert reports[0]["reporter_contact"] == WITHHELD
    runtime.settings.routing.police_notices_include_reporter = True
    reports = json.loads(_bundle(runtime, case.ref).files["reports.json"])
    assert reports[0]["reporter_contact"] == CONTACT


def test_a_written_folder_verifies_and_an_altered_file_is_named(sqlite_runtime, tmp_path):
    case = _case(sqlite_runtime)
    folder, _ = export_evidence(sqlite_runtime.session_factory, case.ref, tmp_path,
                                settings=sqlite_runtime.settings,
                                now=sqlite_runtime.clock.now(), actor="user:mira")
    assert verify_folder(folder) == []
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    traces = folder / "traces.json"
    traces.write_text(traces.read_text().replace("NET-192-0-2", "NET-192-0-3"))
    assert verify_folder(folder) == ["traces.json: altered"]


def test_making_a_bundle_is_audited_with_the_manifest_digest(sqlite_runtime, tmp_path):
    case = _case(sqlite_runtime)
    path, bundle = export_evidence(sqlite_runtime.session_factory, case.ref, tmp_path,
                                   settings=sqlite_runtime.settings,
                                   now=sqlite_runtime.clock.now(), actor="user:mira",
                                   as_zip=True)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert f"{case.ref}-evidence/manifest.json" in names
        assert archive.read(f"{case.ref}-evidence/manifest.json") == (
            bundle.files["manifest.json"])
    with sqlite_runtime.session_factory() as session:
        event = session.execute(select(Event).where(Event.action == "evidence_exported")
                                ).scalar_one()
    assert event.actor == "user:mira"
    assert event.data["manifest_sha256"] == hashlib.sha256(
        bundle.files["manifest.json"]).hexdigest()


def test_an_unknown_case_is_named(sqlite_runtime):
    with pytest.raises(NotFound, match="C-NONE"):
        _bundle(sqlite_runtime, "C-NONE")


def test_the_cli_writes_the_bundle(settings_factory, monkeypatch, tmp_path):
    from pipeline.cli import main

    settings = settings_factory()
    upgrade(settings.database.url)
    monkeypatch.setenv("HOTLINE_DATABASE__URL", settings.database.url)
    monkeypatch.setenv("HOTLINE_APP__DATA_DIR", settings.app.data_dir)
    runtime = build_runtime(settings)
    case = _case(runtime)
    result = CliRunner().invoke(main, ["case", "evidence", case.ref, "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert verify_folder(tmp_path / "out" / f"{case.ref}-evidence") == []
    runtime.close()
