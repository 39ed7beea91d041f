"""The console's rendering helpers: the defanged URL, times, durations, labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.core import i18n
from pipeline.web.console.render import defang, fmt_duration, fmt_time, humanise


@pytest.mark.parametrize(("url", "shown"), [
    ("http://example.com/a.b", "hxxp[://]example[.]com/a.b"),
    ("https://user@sub.example.rs:8443/x?y=1", "hxxps[://]user[@]sub[.]example[.]rs:8443/x?y=1"),
    ("http://10.0.0.1/", "hxxp[://]10[.]0[.]0[.]1/"),
    ("ftp://files.example.org/x", "fxp[://]files[.]example[.]org/x"),
    ("example.com/no-scheme", "example[.]com/no-scheme"),
    (None, ""),
    ("", ""),
])
def test_a_url_is_shown_defanged(url, shown):
    assert defang(url) == shown


def test_a_defanged_url_is_no_longer_a_link():
    shown = defang("https://evil.example.com/path.html")
    assert "://" not in shown.replace("[://]", "")
    assert not shown.startswith("http")


@pytest.mark.parametrize(("value", "shown"), [
    (timedelta(days=3, hours=4, minutes=7), "3 d 4 h"),
    (timedelta(hours=5, minutes=12), "5 h 12 min"),
    (42 * 60 + 30, "42 min"),
    (None, "—"),
])
def test_durations_are_shown_in_days_hours_and_minutes(value, shown):
    with i18n.set_language("en"):
        assert fmt_duration(value) == shown


def test_times_are_shown_in_utc_and_empty_when_missing():
    with i18n.set_language("en"):
        shown = fmt_time(datetime(2026, 12, 7, 14, 5, tzinfo=UTC))
    assert shown.endswith(" UTC") and "2026" in shown
    assert fmt_time(None) == ""


def test_internal_names_are_humanised_in_the_pages_language():
    assert humanise(None) == ""
    with i18n.set_language("en"):
        english = humanise("awaiting_assessment")
    assert "_" not in english and english.lower().startswith("awaiting")
