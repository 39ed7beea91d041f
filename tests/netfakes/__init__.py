"""Loopback servers speaking real protocols, standing in for the internet in tests and
in the benchmark: `FakeDNS` (dnslib) and `FakeRDAP` (http.server), each counting the
questions it answered. Start them with the pytest fixtures in `tests.netfakes.fixtures`
or from plain Python (`with FakeDNS() as dns: ...`)."""

from tests.netfakes.dns_server import FakeDNS
from tests.netfakes.rdap_server import FakeRDAP

__all__ = ["FakeDNS", "FakeRDAP"]
