"""Logs: sentences with ids, JSON for production, never personal data or secrets."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from pipeline.core.config import LoggingSection
from pipeline.core.logs import REDACTED, configure, log_context, register_personal
from pipeline.store.models import Case, Report
from tests.ops_helpers import add_case

CONTACT = "canary-contact-7Q2@example.org"
DESCRIPTION = "Canary description: a very specific sentence nobody else writes 8XK."
REPO = Path(__file__).resolve().parents[2]


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_carries_the_case_and_report_it_concerns(json_log):
    log = logging.getLogger("pipeline.test")
    with log_context(case_id=12):
        log.info("Case %s traced to AS%s in %s.", "C-1", 64500, "NL")
        log.info("Report joined.", extra={"report_id": 34})
    log.info("Outside any case.")
    first, second, third = _lines(json_log)
    assert first["message"] == "Case C-1 traced to AS64500 in NL." and first["case_id"] == 12
    assert second["case_id"] == 12 and second["report_id"] == 34
    assert "case_id" not in third


def test_a_text_line_shows_the_ids():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        configure(LoggingSection(level="INFO", format="text"), stream=stream)
        with log_context(case_id=7, report_id=8):
            logging.getLogger("pipeline.test").info("Case %s closed.", "C-7")
    finally:
        root.handlers[:] = saved
    assert "[case_id=7 report_id=8]: Case C-7 closed." in stream.getvalue()


def test_a_reporter_contact_and_description_never_reach_a_log_line(runtime, json_log):
    with runtime.session_factory.begin() as session:
        add_case(session, at=runtime.clock.now(), contact=CONTACT, description=DESCRIPTION)
    log = logging.getLogger("pipeline.careless")
    with runtime.session_factory() as session:
        report = session.execute(select(Report)).scalar_one()
        log.info("Report %s from %s: %s", report.ref, report.reporter_contact,
                 report.description)
        log.warning("Shortened: %s...", report.description[:40])
        try:
            raise ValueError(f"bad contact {report.reporter_contact}")
        except ValueError:
            log.exception("Failed for %s.", report.ref)
    output = json_log.getvalue()
    assert CONTACT not in output and DESCRIPTION not in output
    assert DESCRIPTION[:40] not in output
    lines = _lines(json_log)
    assert lines[0]["message"].count(REDACTED) == 2
    assert "ValueError: bad contact [redacted]" in lines[-1]["exception"]


def test_a_contact_given_at_intake_is_redacted_in_this_process(json_log):
    report = Report(reporter_contact="+381 64 555 0101", description="short")
    logging.getLogger("pipeline.careless").info("Contact %s", report.reporter_contact)
    assert "+381 64 555 0101" not in json_log.getvalue()


def test_short_values_are_not_registered_so_ordinary_words_survive(json_log):
    register_personal("no")
    logging.getLogger("pipeline.test").info("Case has no trace.")
    assert _lines(json_log)[0]["message"] == "Case has no trace."


SECRET_WORDS = ("password", "passphrase", "secret", "token", "credential")


def _names_a_secret(key: str) -> bool:
    key = key.lower()
    if key.endswith(("_file", "_env")):
        return False  # where a secret lives (a file outside the repository, a variable)
    return any(word in key for word in SECRET_WORDS) or key == "key" or key.endswith("_key")


def _secret_keys(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if _names_a_secret(str(key)) and value not in (None, "", [], {}):
                yield here
            yield from _secret_keys(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _secret_keys(value, f"{path}[{i}]")


def test_the_shipped_config_yaml_holds_no_secret():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert list(_secret_keys(config)) == []
    text = (REPO / "config.yaml").read_text()
    assert "-----BEGIN" not in text  # no private key pasted in


def test_the_secret_scanner_finds_a_secret_value():
    assert list(_secret_keys({"dispatch": {"smtp_password": "x", "smtp_password_file": "/r"}})
                ) == ["dispatch.smtp_password"]


def test_secrets_given_in_the_environment_never_reach_a_log_line(monkeypatch):
    monkeypatch.setenv("HOTLINE_SMTP_PASSWORD", "smtp-env-Pa55-QQ")
    monkeypatch.setenv("NL_HOTLINE_WEBHOOK_KEY", "webhook-hmac-key-ZZ")
    monkeypatch.setenv("HOTLINE_WEB__PORT", "8080")
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        configure(LoggingSection(level="INFO", format="text"), stream=stream)
        logging.getLogger("pipeline.stages.dispatch").warning(
            "SMTP login smtp-env-Pa55-QQ failed; signing with webhook-hmac-key-ZZ on 8080.")
    finally:
        root.handlers[:] = saved
    assert "smtp-env-Pa55-QQ" not in stream.getvalue()
    assert "webhook-hmac-key-ZZ" not in stream.getvalue()
    assert "on 8080." in stream.getvalue()  # ordinary settings stay readable


def test_a_password_in_a_service_url_never_reaches_a_log_line(settings_factory, json_log):
    from pipeline.app.runtime import build_runtime

    settings = settings_factory(redis={"url": "redis://:r3dis-Pa55-77@127.0.0.1:6379/0"})
    build_runtime(settings).close()
    logging.getLogger("pipeline.test").warning(
        "Could not reach redis://:r3dis-Pa55-77@127.0.0.1:6379/0.")
    assert "r3dis-Pa55-77" not in json_log.getvalue()


# --- ids as fields on real paths ---------------------------------------------------------


def test_a_legal_hold_line_carries_the_case_id(sqlite_runtime, json_log):
    from pipeline.app.auth import Principal
    from pipeline.stages.retention import set_legal_hold

    runtime = sqlite_runtime
    with runtime.session_factory.begin() as session:
        case = add_case(session, at=runtime.clock.now())
    with runtime.session_factory.begin() as session:
        set_legal_hold(session, case.ref, principal=Principal("mira", "supervisor", user_id=1),
                       requested_by="Police", reason="Investigation", at=runtime.clock.now())
    [line] = [x for x in _lines(json_log) if "legal hold" in x["message"]]
    assert line["case_id"] == case.id and case.ref in line["message"]


def test_monitoring_lines_carry_the_case_id(sqlite_runtime, json_log):
    from pipeline.stages.monitoring import record_claim, start_watching
    from pipeline.store.states import CaseState

    runtime = sqlite_runtime
    with runtime.session_factory.begin() as session:
        first = add_case(session, at=runtime.clock.now(), until=CaseState.NOTIFIED)
        second = add_case(session, at=runtime.clock.now(), url="http://bad.example/y.html",
                          until=CaseState.NOTIFIED)
    with runtime.session_factory.begin() as session:
        start_watching(session, now=runtime.clock.now())
        record_claim(session, session.get(Case, second.id), status="removed",
                     by="provider:host", at=runtime.clock.now())
    lines = _lines(json_log)
    watched = [x["case_id"] for x in lines if "is monitored" in x["message"]]
    claimed = [x["case_id"] for x in lines if "says the content is" in x["message"]]
    assert watched == [first.id, second.id] and claimed == [second.id]


def test_a_denial_carries_the_case_it_concerns_and_no_empty_field(sqlite_runtime, json_log):
    from pipeline.app.auth import Principal, record_denial

    runtime = sqlite_runtime
    ana = Principal("ana", "analyst", user_id=2)
    with runtime.session_factory.begin() as session:
        record_denial(session, ana, at=runtime.clock.now(), reason="not hers", case_id=41)
        record_denial(session, ana, at=runtime.clock.now(), reason="not a page for her")
    about_case, about_nothing = _lines(json_log)
    assert about_case["case_id"] == 41
    assert "case_id" not in about_nothing  # an unknown id is left out, not written as null


def test_an_id_given_as_none_leaves_the_bound_one_in_place(json_log):
    with log_context(case_id=5):
        logging.getLogger("pipeline.test").info("Case %s.", "C-5", extra={"case_id": None})
    assert _lines(json_log)[0]["case_id"] == 5


# --- redaction by shape, for values this process never loaded -----------------------------


@pytest.mark.parametrize("personal", [
    "jelena.petrovic@mail.rs", "Ivana+hotline@Example.co.uk", "ж.петровић@пошта.срб",
    "+381 64 123 4567", "+381641234567", "00381 64 123-4567", "064/123-4567", "(011) 123-456",
    "+1 (555) 123-4567",
])
def test_an_email_address_or_phone_number_never_reaches_a_log_line(json_log, personal):
    log = logging.getLogger("pipeline.careless")
    log.info("Reporter %s wrote again.", personal)
    try:
        raise ValueError(f"cannot send to {personal}")
    except ValueError:
        log.exception("Failed.")
    output = json_log.getvalue()
    assert personal not in output
    first, second = _lines(json_log)
    assert first["message"] == f"Reporter {REDACTED} wrote again."
    assert f"ValueError: cannot send to {REDACTED}" in second["exception"]


@pytest.mark.parametrize("ordinary", [
    "Notice 7 sent to abuse@host.example at 2026-05-01T12:00:00+00:00.",
    "Case C-7KQ2-MX9D-4TPA-WZ3B traced to AS64500 at 185.10.0.7 (2a00:1::7) in NL.",
    "Message 0a1b2c3d-0123-4567-89ab-0123456789ab to trace took 12345678 ms.",
    "Retention purged 0 of 10000000 reports at 2026-05-01 12:00:00,123.",
    "Checked http://bad.example/0123456789/x.html on port 8080.",
])
def test_ids_times_addresses_and_abuse_desks_stay_readable(json_log, ordinary):
    logging.getLogger("pipeline.test").info(ordinary)
    assert _lines(json_log)[0]["message"] == ordinary
