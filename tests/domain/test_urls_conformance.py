"""The normaliser reads http and https URLs as browsers do: the WHATWG URL test vectors
(tests/data/whatwg-urltestdata.json, see tests/data/README.md) agree on the host and on
failure for every case whose input is an absolute http: or https: URL."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import ada_url
import pytest

from pipeline.core.errors import RejectedURL
from pipeline.domain.urls import canonicalise

VECTORS = Path(__file__).resolve().parent.parent / "data" / "whatwg-urltestdata.json"

# Absolute: the scheme is followed by two slashes (or backslashes, which special
# schemes read as slashes), so the input parses the same with or without a base.
_ABSOLUTE = re.compile(r"^[\x00-\x20]*https?:[/\\]{2}", re.IGNORECASE)


def absolute_http_cases() -> list[dict[str, Any]]:
    cases = [c for c in json.loads(VECTORS.read_text(encoding="utf-8")) if isinstance(c, dict)]
    return [c for c in cases if _ABSOLUTE.match(re.sub(r"[\t\n\r]", "", c["input"]))]


CASES = absolute_http_cases()


def _stored_host(hostname: str) -> str:
    """The host as the report keeps it: IPv6 without brackets, no trailing dot."""
    host = hostname.strip("[]") if hostname.startswith("[") else hostname
    return host[:-1] if host.endswith(".") and len(host) > 1 else host


def test_the_vectors_hold_enough_http_cases_to_mean_something() -> None:
    failures = [c for c in CASES if c.get("failure")]
    assert len(CASES) >= 300
    assert len(failures) >= 50


@pytest.mark.parametrize("case", CASES, ids=[f"{i}:{c['input']!r}"[:80]
                                              for i, c in enumerate(CASES)])
def test_an_absolute_http_url_is_read_as_a_browser_reads_it(case: dict[str, Any]) -> None:
    if case.get("failure"):
        with pytest.raises(RejectedURL):
            canonicalise(case["input"])
        return
    result = canonicalise(case["input"])
    assert ada_url.URL(result.canonical).hostname == case["hostname"]
    assert result.host == _stored_host(case["hostname"])
    assert result.port == (int(case["port"]) if case["port"] else None)
