"""Fixtures of a running `hotline run` beside loopback DNS and RDAP servers, shared by
the operator tests and the launcher's (import them by name into a test module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.loopback import free_port
from tests.netfakes import records
from tests.netfakes.fixtures import fake_dns, fake_rdap  # noqa: F401
from tests.ops.support import Running, operator_env


@pytest.fixture
def internet(tmp_path: Path, fake_dns, fake_rdap) -> str:  # noqa: F811
    """The hosts h0-h5.example.com, served by loopback DNS and RDAP servers; the
    `trace` section of a configuration that asks them."""
    fake_rdap.add_network("185.50.0.0/16", records.ripe_network(
        "185.50.0.0/16", country="DE", org="Hoster GmbH", abuse_email="abuse@hoster.de"))
    fake_rdap.add_domain("example.com", records.domain("example.com"))
    for i in range(6):
        fake_dns.add_host(f"h{i}.example.com", a=[f"185.50.0.{i + 1}"])
    bootstrap = tmp_path / "bootstrap"
    fake_rdap.write_bootstrap(bootstrap, {"ripe": ["185.0.0.0/8"]}, {"com": "verisign"})
    return (f"trace:\n  resolvers: [\"{fake_dns.address}:{fake_dns.port}\"]\n"
            f"  bootstrap_dir: {bootstrap}\n  asn_dns_zone_v4: ''\n  asn_dns_zone_v6: ''\n")


@pytest.fixture
def system(tmp_path: Path, internet: str) -> Iterator[tuple[dict[str, str], Running]]:
    """A `hotline run` on a loopback port with that configuration: (its environment,
    the running process)."""
    env = operator_env(tmp_path, internet)
    run = Running(env, free_port())
    run.wait_until_serving()
    yield env, run
    run.stop()
