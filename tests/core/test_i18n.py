"""Translations: the Serbian catalog covers every message the code and templates use,
languages are negotiated from Accept-Language, templates speak the request's language."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import jinja2
import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg

from pipeline.core import i18n

ROOT = Path(__file__).resolve().parents[2]
_PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]|\{\w*\}")


def used_messages() -> dict[str, str]:
    """Every msgid the code and templates use (babel.cfg, default keywords), with where."""
    with (ROOT / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=DEFAULT_KEYWORDS):
        msgid = message if isinstance(message, str) else message[0]
        found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def test_the_serbian_catalog_translates_every_message_in_use():
    used = used_messages()
    assert "Language" in used  # the extraction itself works (base template)
    catalog = i18n.read_catalog("sr_Latn")
    problems = []
    for msgid, where in sorted(used.items()):
        message = catalog.get(msgid)
        if message is None:
            problems.append(f"{where}: {msgid!r} is missing from the Serbian catalog")
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings) or message.fuzzy:
            problems.append(f"{where}: {msgid!r} has no (or only a fuzzy) Serbian translation")
            continue
        for string in strings:
            if sorted(_PLACEHOLDER.findall(string)) != sorted(_PLACEHOLDER.findall(msgid)):
                problems.append(f"{where}: {msgid!r}: the translation's placeholders differ")
    assert problems == [], "run `make i18n` and translate:\n" + "\n".join(problems)


def test_the_english_catalog_holds_every_message_in_use():
    catalog = i18n.read_catalog("en")
    missing = [m for m in used_messages() if catalog.get(m) is None]
    assert missing == [], f"run `make i18n`: {missing}"


@pytest.mark.parametrize(("header", "expected"), [
    ("sr-RS,sr;q=0.9,en;q=0.8", "sr-Latn"),
    ("sr-Latn", "sr-Latn"),
    ("en-GB,en;q=0.9,sr;q=0.5", "en"),
    ("en-US", "en"),
    ("de-DE,de;q=0.9,en;q=0.5", "en"),
    ("hr-HR,hr;q=0.9", "sr-Latn"),
    ("bs", "sr-Latn"),
    ("fr", "sr-Latn"),  # nothing suitable: the first supported language
    ("en;q=0,sr;q=0.1", "sr-Latn"),
    ("", "sr-Latn"),
    (None, "sr-Latn"),
    ("*", "sr-Latn"),
    ("en;q=abc, 💥, sr-Latn;q=0.3", "en"),
])
def test_the_language_follows_accept_language(header, expected):
    assert i18n.negotiate(header, ["sr-Latn", "en"]) == expected


def test_serbian_cyrillic_is_chosen_only_where_a_deployment_offers_it():
    assert i18n.negotiate("sr-Cyrl", ["sr-Latn", "en"]) == "sr-Latn"
    assert i18n.negotiate("sr-Cyrl-RS", ["sr-Latn", "en", "sr-Cyrl"]) == "sr-Cyrl"
    assert i18n.negotiate("sr", ["en", "sr-Cyrl"]) == "sr-Cyrl"
    assert i18n.negotiate("en", ["en", "sr-Latn"]) == "en"
    assert i18n.negotiate("de", ["en", "sr-Latn"]) == "en"


def test_messages_translate_and_cyrillic_is_transliterated_from_latin():
    assert i18n.gettext("sr-Latn", "Language") == "Jezik"
    assert i18n.gettext("en", "Language") == "Language"
    assert i18n.gettext("sr-Cyrl", "Language") == "Језик"
    assert i18n.gettext("sr-Latn", "a message nobody translated") == (
        "a message nobody translated")
    assert i18n.to_cyrillic("Njegova džungla, LJUBAV i %(ref)s na https://x.example/a") == (
        "Његова џунгла, ЉУБАВ и %(ref)s на https://x.example/a")


def test_templates_speak_the_language_set_for_the_request():
    env = i18n.install(jinja2.Environment(autoescape=True))
    template = env.from_string(
        "{{ _('Language') }}|{% trans %}Language{% endtrans %}|{{ day|date }}|{{ n|number }}")
    values = {"day": date(2026, 3, 9), "n": 12345.5}
    with i18n.set_language("sr-Latn"):
        assert template.render(values) == "Jezik|Jezik|09.03.2026.|12.345,5"
        with i18n.set_language("en"):
            assert template.render(values) == "Language|Language|Mar 9, 2026|12,345.5"
        assert i18n.current_language() == "sr-Latn"
    with i18n.set_language("sr-Cyrl"):
        assert template.render(values).startswith("Језик|Језик|09.03.2026.")


def test_times_are_written_in_the_local_zone_of_the_reader():
    moment = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)
    assert i18n.format_datetime(moment, "sr-Latn", "Europe/Belgrade") == "08.12.2026. 00:30"
    assert i18n.format_datetime(moment, "en") == "Dec 7, 2026, 11:30\u202fPM"
    assert i18n.format_date(moment, "sr-Latn", tz="Europe/Belgrade") == "08.12.2026."
