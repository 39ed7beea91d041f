"""`hotline url` (pipeline.cli.urls): how each URL is read, one JSON line each, and the
exit status."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pipeline.domain.urls import canonicalise


def test_hotline_url_prints_how_each_url_is_read_and_fails_on_rejected_input():
    from pipeline.cli import main

    result = CliRunner().invoke(main, [
        "url", "HTTPS://User@Bücher.DE:443/a/../b?utm_source=x#f", "javascript:alert(1)"])
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert lines[0]["canonical"] == "https://xn--bcher-kva.de/b"
    assert lines[0]["host"] == "xn--bcher-kva.de"
    assert lines[0]["host_unicode"] == "bücher.de"
    assert lines[0]["registered_domain"] == "xn--bcher-kva.de"
    assert lines[0]["kind"] == "domain"
    assert lines[0]["dedup_key"] == canonicalise("https://bücher.de/b").dedup_key
    assert lines[0]["input"].startswith("HTTPS://User@")
    assert lines[1] == {"input": "javascript:alert(1)",
                        "error": "javascript: URLs are scripts, not addresses of content"}


def test_hotline_url_exits_zero_when_every_url_is_read():
    from pipeline.cli import main

    result = CliRunner().invoke(main, ["url", "example.com", "http://192.0.2.7/"])
    assert result.exit_code == 0, result.output
    kinds = [json.loads(line)["kind"] for line in result.output.splitlines()]
    assert kinds == ["domain", "ip"]
