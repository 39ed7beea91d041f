"""The loopback DNS and RDAP servers of tests/netfakes, run for the benchmark.

They run in a child process of their own (`python -m bench.netfakes SPEC`), so their
work neither competes for the harness's GIL nor hides in the workers' CPU figures. The
child prints one JSON line with the addresses, then answers `counts` on stdin with one
JSON line of queries served so far, and stops on `stop` or end of input.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.workload import Workload


def available() -> bool:
    try:
        import tests.netfakes  # noqa: F401
    except ImportError:
        return False
    return True


class LoopbackNet:
    """Handle on the child process serving DNS and RDAP on 127.0.0.1."""

    def __init__(self, process: subprocess.Popen[str], info: dict[str, Any]):
        self.process = process
        self.info = info

    def counts(self) -> dict[str, int]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write("counts\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def trace_settings(self) -> dict[str, Any]:
        """The `trace` configuration section pointing every lookup at loopback."""
        return dict(self.info["trace"])

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.write("stop\n")
                self.process.stdin.flush()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@contextlib.contextmanager
def loopback_net(workload: Workload, tmp: Path) -> Iterator[LoopbackNet | None]:
    """Serve the workload's hosts and networks; None when tests/netfakes is missing."""
    if not available():
        yield None
        return
    spec = tmp / "netfakes.json"
    spec.write_text(json.dumps({
        "hosts": workload.hosts,
        "networks": [asdict(n) for n in workload.networks],
    }))
    process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "bench.netfakes", str(spec)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert process.stdout
    line = process.stdout.readline()
    if not line:
        process.wait()
        raise RuntimeError("the loopback DNS/RDAP servers did not start")
    net = LoopbackNet(process, json.loads(line))
    try:
        yield net
    finally:
        net.stop()


def _registered_domain(host: str) -> str:
    """The registrable part of the workload's names (they are all `[sub.]name.tld`)."""
    return ".".join(host.split(".")[-2:])


def serve(spec_path: str) -> None:  # pragma: no cover - runs in the child process
    """Start the servers from tests/netfakes for the spec, then follow stdin commands."""
    from tests.netfakes import FakeDNS, FakeRDAP, records
    from tests.netfakes.workload import trace_config

    spec = json.loads(Path(spec_path).read_text())
    with FakeDNS() as dns, FakeRDAP() as rdap:
        for net in spec["networks"]:
            rdap.add_network(net["prefix"], records.ripe_network(
                net["prefix"], name=f"NET-AS{net['asn']}", country=net["country"],
                org=net["org"], abuse_email=net["abuse_email"]))
            dns.add_origin(net["prefix"], asn=net["asn"], country=net["country"])
        for host, addresses in spec["hosts"].items():
            dns.add_host(host, a=addresses)
            domain = _registered_domain(host)
            if domain not in rdap.domains:
                rdap.add_domain(domain, records.domain(domain))
        info = {"dns": dns.resolver, "rdap": rdap.url,
                "trace": trace_config(
                    dns, rdap, rdap_rate_per_second=1_000, rdap_burst=200,
                    # Loopback never loses packets: a slow answer here means starved
                    # CPU, not a broken resolver, so wait rather than retry later.
                    dns_timeout_seconds=5.0, dns_lifetime_seconds=10.0,
                    rdap_timeout_seconds=5.0, retry_delay_ms=1_000)}
        print(json.dumps(info), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "counts":
                stats = rdap.stats()
                counts = {"dns": dns.queries, "rdap": stats["queries"]}
                counts.update({f"dns_{k}": v for k, v in dns.by_type.items()})
                counts.update({f"rdap_{k}": v for k, v in stats["by_kind"].items()})
                print(json.dumps(counts), flush=True)
            elif command == "stop":
                break


if __name__ == "__main__":  # pragma: no cover
    serve(sys.argv[1])
