"""The console speaks Serbian (Latin) and English: no text outside the catalogs,
words for every internal value, the viewer's choice remembered, dates as each
language writes them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from jinja2 import Environment

from pipeline.core import i18n
from pipeline.store.states import CaseState, ReportState
from pipeline.store.takedown_models import STAGES
from pipeline.web.app import create_app
from pipeline.web.console.labels import LABELS
from pipeline.web.console.render import TEMPLATES
from schemas.assessment import AgeGroup, ContentType, Gender, Legality, SiteType
from schemas.intake import Category
from tests.web.console.conftest import PASSWORD, add_person, queued_case

_ATTRIBUTES = re.compile(
    r'\b(aria-label|title|placeholder|alt|data-confirm|data-copied)="([^"]*)"')


def text_outside_the_catalogs(source: str) -> list[str]:
    """Letters a template shows that do not come from `_()`/`{% trans %}`: text nodes
    between tags, and the attributes people read, outside `{{ }}`."""
    env = Environment(extensions=["jinja2.ext.i18n"])
    found: list[str] = []
    in_tag, quote, in_trans = False, None, False
    for _lineno, kind, value in env.lex(source):
        if kind == "name" and value in ("trans", "pluralize"):
            in_trans = True
        if kind == "name" and value == "endtrans":
            in_trans = False
        if kind != "data" or in_trans:
            continue
        text: list[str] = []
        for char in value:
            if in_tag:
                if quote:
                    quote = None if char == quote else quote
                elif char in "\"'":
                    quote = char
                elif char == ">":
                    in_tag = False
            elif char == "<":
                if "".join(text).strip():
                    found.append("".join(text).strip())
                text, in_tag = [], True
            else:
                text.append(char)
        if re.search(r"[A-Za-z]", "".join(text)):
            found.append("".join(text).strip())
    found = [t for t in found if re.search(r"[A-Za-z]", t)]
    for name, value in _ATTRIBUTES.findall(source):
        if re.search(r"[A-Za-z]", re.sub(r"\{\{.*?\}\}", "", value)):
            found.append(f'{name}="{value}"')
    return found


CONSOLE_TEMPLATES = sorted(TEMPLATES.glob("*.html"))


def test_the_check_finds_text_outside_the_catalogs():
    assert text_outside_the_catalogs("<p>Hello {{ name }}</p>") == ["Hello"]
    assert text_outside_the_catalogs('<b title="Not translated">{{ _("x") }}</b>') == [
        'title="Not translated"']
    assert text_outside_the_catalogs('<a href="/x" class="y">{{ _("Fine") }}</a>') == []
    assert text_outside_the_catalogs("{% trans %}Fine{% endtrans %}") == []


@pytest.mark.parametrize("path", CONSOLE_TEMPLATES, ids=lambda p: p.name)
def test_every_console_template_shows_only_text_from_the_catalogs(path: Path):
    assert text_outside_the_catalogs(path.read_text(encoding="utf-8")) == []


def test_every_internal_value_has_words_and_a_serbian_translation():
    values = [m.value for enum in (Legality, Category, AgeGroup, Gender, SiteType,
                                   ContentType, CaseState, ReportState) for m in enum]
    values += list(STAGES)
    missing = [v for v in values if v not in LABELS]
    assert missing == []
    catalog = i18n.read_catalog("sr_Latn")
    untranslated = [w for w in LABELS.values() if not (catalog.get(w) and catalog.get(w).string)]
    assert untranslated == []
    assert LABELS["self_generated_csam"] == "self-generated"
    assert all("_" not in words for words in LABELS.values())


def _client(runtime, **headers):
    return TestClient(create_app(runtime), follow_redirects=False, headers=headers)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _log_in(client, name):
    form = client.get("/console/login")
    response = client.post("/console/login", data={"name": name, "password": PASSWORD,
                                                   "csrf": _csrf(form.text)})
    assert response.status_code == 303, response.text


def test_the_language_follows_the_browser_until_the_viewer_chooses(sqlite_runtime):
    with _client(sqlite_runtime, **{"Accept-Language": "sr-RS,sr;q=0.9"}) as client:
        page = client.get("/console/login")
        assert '<html lang="sr-Latn">' in page.text
        assert "<h1>Prijava</h1>" in page.text and "Korisničko ime" in page.text
        assert page.headers["content-language"] == "sr-Latn"
        switched = client.get("/console/language/en?next=/console/login")
        assert switched.status_code == 303
        assert switched.headers["location"] == "/console/login"
        assert "hotline_lang=en" in switched.headers["set-cookie"]
        page = client.get("/console/login")
        assert '<html lang="en">' in page.text and "<h1>Log in</h1>" in page.text
    with _client(sqlite_runtime, **{"Accept-Language": "en-GB"}) as client:
        assert '<html lang="en">' in client.get("/console/login").text
        # Never an open redirect, never an unknown language.
        away = client.get("/console/language/sr-Latn?next=//evil.example/")
        assert away.headers["location"] == "/console/"
        assert client.get("/console/language/xx").status_code == 404


def test_a_serbian_case_page_shows_words_dates_and_numbers_the_serbian_way(sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "ana", "analyst")
    ref = queued_case(runtime, "http://pics.example.rs/a.html", claimed="self_generated_csam")
    with _client(runtime, **{"Accept-Language": "sr"}) as client:
        _log_in(client, "ana")
        page = client.get(f"/console/cases/{ref}").text
    day = runtime.clock.now().strftime("%d.%m.%Y.")
    assert day in page
    assert "samostalno napravljen" in page  # "self-generated", as people say it
    assert "Šta je prijavilac rekao" in page
    visible = re.sub(r"<[^>]+>", " ", page)
    for internal in ("self_generated_csam", "awaiting_assessment", "self generated"):
        assert internal not in visible


def test_serbian_cyrillic_is_offered_where_configured(sqlite_runtime):
    with _client(sqlite_runtime, **{"Accept-Language": "sr-Cyrl"}) as client:
        assert '<html lang="sr-Latn">' in client.get("/console/login").text
    sqlite_runtime.settings.console.languages = ["sr-Latn", "en", "sr-Cyrl"]
    with _client(sqlite_runtime, **{"Accept-Language": "sr-Cyrl"}) as client:
        page = client.get("/console/login").text
    assert '<html lang="sr-Cyrl">' in page and "<h1>Пријава</h1>" in page
    assert 'hreflang="sr-Cyrl"' in page  # the switch offers it


def test_a_wrong_role_is_told_so_in_the_page_language(sqlite_runtime):
    add_person(sqlite_runtime, "ana", "analyst")
    with _client(sqlite_runtime, **{"Accept-Language": "sr"}) as client:
        _log_in(client, "ana")
        page = client.get("/console/admin")
    assert page.status_code == 403
    assert "prijavljeni ste kao analitičar" in page.text
