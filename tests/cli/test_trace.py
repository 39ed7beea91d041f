"""`hotline trace URL` (pipeline.cli.trace): input that is no URL is refused before any
lookup, and the printed form of a trace has stable keys (scripts read it). A whole
trace against the loopback DNS and RDAP servers is in tests/stages/test_trace.py."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from click.testing import CliRunner

from pipeline.cli import main
from pipeline.cli.trace import describe

STARTED = datetime(2026, 12, 7, 4, 30, tzinfo=UTC)


def a_trace(**changes):
    fields = dict(
        host="www.example.com", url_kind="domain", outcome="traced", origin_unknown=False,
        reason=None, resolver="127.0.0.1", cname_chain=[], nameservers=["ns1.example.com"],
        addresses=[{"ip": "192.0.2.7", "asn": 64500, "country": "DE", "raw": "not shown",
                    "abuse_email": "abuse@hoster.example"}],
        registrar="Example Registrar", registrar_abuse_email="abuse@registrar.example",
        cdn_name=None, behind_cdn=False, hosting_country="DE", country_source="rdap",
        hosting_asn=64500, hosting_org="Hoster", hosting_abuse_email="abuse@hoster.example",
        started_at=STARTED, transient=None, retry_delay_ms=None,
        dns_raw={"A": ["192.0.2.7"]}, rdap_answers=[{"url": "http://rdap.example/ip/x"}])
    fields.update(changes)
    return SimpleNamespace(**fields)


def test_input_that_is_no_url_is_refused_naming_why(settings_factory, monkeypatch):
    settings = settings_factory()
    monkeypatch.setenv("HOTLINE_DATABASE__URL", settings.database.url)
    monkeypatch.setenv("HOTLINE_APP__DATA_DIR", settings.app.data_dir)
    result = CliRunner().invoke(main, ["trace", "javascript:alert(1)"])
    assert result.exit_code == 1
    assert "not a URL that can be traced" in result.output
    assert "javascript: URLs are scripts" in result.output


def test_the_printed_trace_keeps_only_the_known_fields_of_each_address():
    data = describe("http://www.example.com/", a_trace())
    assert data["url"] == "http://www.example.com/" and data["host"] == "www.example.com"
    assert data["addresses"] == [{"ip": "192.0.2.7", "asn": 64500, "country": "DE",
                                  "abuse_email": "abuse@hoster.example"}]
    assert data["cdn"] is None and data["hosting_country"] == "DE"
    assert data["traced_at"] == STARTED.isoformat()
    assert "retry_later" not in data and "dns_raw" not in data and "rdap_raw" not in data


def test_a_transient_failure_says_when_to_retry_and_raw_adds_the_answers():
    data = describe("http://www.example.com/",
                    a_trace(transient="dns_timeout", retry_delay_ms=30000), raw=True)
    assert data["retry_later"] == {"reason": "dns_timeout", "delay_ms": 30000}
    assert data["dns_raw"] == {"A": ["192.0.2.7"]}
    assert data["rdap_raw"] == [{"url": "http://rdap.example/ip/x"}]
