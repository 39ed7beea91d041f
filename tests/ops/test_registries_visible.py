"""Registries that do not answer show in /metrics and on the console's start page
; `hotline status` is tested beside a running system (test_beside_run)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from pipeline.adapters.tracing.breaker import BREAKERS, RegistryUnreachable, ServerDown
from pipeline.web.app import create_app
from tests.factories import make_case
from tests.web.console.conftest import PASSWORD, add_person


def _open_circuit(server: str) -> None:
    def down():
        raise ServerDown("no answer")

    for _ in range(BREAKERS.failures):
        with pytest.raises((ServerDown, RegistryUnreachable)):
            BREAKERS.call(server, down)


@pytest.fixture
def offline(sqlite_runtime):
    rt = sqlite_runtime
    with rt.session_factory.begin() as session:
        make_case(session, at=rt.clock.now(), url="http://example.com/u",
                  state="awaiting_assessment", trace_outcome="registries_unreachable",
                  origin_unknown=True)
    _open_circuit("rdap https://rdap.example")
    return rt


def test_metrics_count_the_cases_and_the_open_circuits(offline):
    with TestClient(create_app(offline)) as client:
        text = client.get("/metrics").text
    assert "hotline_cases_registries_unreachable 1.0" in text
    assert 'hotline_registry_circuit_open{server="rdap https://rdap.example"} 1.0' in text
    assert 'hotline_stage_backlog{stage="trace"} 0.0' in text


def test_the_console_start_page_says_registries_are_unreachable(offline):
    add_person(offline, "ana", "analyst")
    with TestClient(create_app(offline), follow_redirects=False,
                    headers={"Accept-Language": "en"}) as client:
        form = client.get("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        client.post("/console/login", data={"name": "ana", "password": PASSWORD,
                                             "csrf": csrf})
        page = client.get("/console/")
        assert page.status_code == 200
        banner = re.search(r'id="registries-unreachable">(.*?)</p>', page.text, re.S)
        assert banner, page.text[:2000]
        assert "rdap https://rdap.example" in banner.group(1)
        assert "1 cases in the queue" in banner.group(1)
        BREAKERS.reset()
        assert "rdap https://rdap.example" not in client.get("/console/").text
