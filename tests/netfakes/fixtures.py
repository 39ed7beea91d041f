"""Pytest fixtures starting the loopback servers (import them in a conftest.py:
`from tests.netfakes.fixtures import fake_dns, fake_rdap  # noqa: F401`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.netfakes.dns_server import FakeDNS
from tests.netfakes.rdap_server import FakeRDAP


@pytest.fixture
def fake_dns() -> Iterator[FakeDNS]:
    with FakeDNS() as server:
        yield server


@pytest.fixture
def fake_rdap() -> Iterator[FakeRDAP]:
    with FakeRDAP(timeout_seconds=1.5) as server:
        yield server
