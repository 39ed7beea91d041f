"""Tracing tests run against loopback DNS and RDAP servers (tests.netfakes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.adapters.tracing.providers import Providers
from pipeline.adapters.tracing.tracer import Tracer
from pipeline.core.config import TraceSection
from tests.netfakes import FakeDNS, FakeRDAP
from tests.netfakes.fixtures import fake_dns, fake_rdap  # noqa: F401

# Address space of each registry in the tests' bootstrap files.
REGISTRIES = {
    "ripe": ["185.0.0.0/8", "2a00::/12"],
    "arin": ["23.0.0.0/8", "2600::/12"],
    "apnic": ["203.0.0.0/8"],
    "lacnic": ["200.0.0.0/8"],
    "afrinic": ["41.0.0.0/8"],
}
TLDS = {"com": "verisign", "net": "verisign"}

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def bootstrap_dir(tmp_path: Path, fake_rdap: FakeRDAP) -> Path:  # noqa: F811
    folder = tmp_path / "bootstrap"
    fake_rdap.write_bootstrap(folder, REGISTRIES, TLDS)
    return folder


@pytest.fixture
def trace_config(fake_dns: FakeDNS,  # noqa: F811
                 bootstrap_dir: Path) -> Callable[..., TraceSection]:
    def make(**overrides: Any) -> TraceSection:
        values: dict[str, Any] = {
            "resolvers": [fake_dns.resolver],
            "bootstrap_dir": str(bootstrap_dir),
            "dns_timeout_seconds": 0.5, "dns_lifetime_seconds": 1.0,
            "rdap_timeout_seconds": 1.0, "rdap_rate_per_second": 1_000, "rdap_burst": 1_000,
            "retry_delay_ms": 7_000,
            "providers_file": str(ROOT / "rules" / "providers.yaml"),
        }
        values.update(overrides)
        return TraceSection(**values)

    return make


@pytest.fixture
def make_tracer(trace_config: Callable[..., TraceSection]) -> Iterator[Callable[..., Tracer]]:
    made: list[Tracer] = []

    def make(*, redis: Any = None, namespace: str = "hotline-test",
             providers: Providers | None = None, **overrides: Any) -> Tracer:
        tracer = Tracer(trace_config(**overrides), redis=redis, namespace=namespace,
                        providers=providers)
        made.append(tracer)
        return tracer

    yield make
    for tracer in made:
        tracer.close()
