"""IANA's RDAP bootstrap data: which server answers for an address, an ASN, a domain."""

from __future__ import annotations

import json

import pytest

from pipeline.adapters.tracing.bootstrap import Bootstrap, registry_name
from pipeline.core.errors import ConfigError


def test_the_shipped_bootstrap_names_the_registries_of_real_address_space():
    bootstrap = Bootstrap()
    assert bootstrap.for_ip("193.0.6.139") == "https://rdap.db.ripe.net/"
    assert bootstrap.for_ip("8.8.8.8") == "https://rdap.arin.net/registry/"
    assert bootstrap.for_ip("2001:200::1") == "https://rdap.apnic.net/"
    assert bootstrap.for_ip("200.160.2.3") == "https://rdap.lacnic.net/rdap/"
    assert bootstrap.for_ip("41.1.1.1") == "https://rdap.afrinic.net/rdap/"
    assert bootstrap.for_asn(3333) == "https://rdap.db.ripe.net/"
    assert bootstrap.for_asn(15169) == "https://rdap.arin.net/registry/"
    assert bootstrap.for_domain("www.example.com") == "https://rdap.verisign.com/com/v1/"
    assert bootstrap.for_domain("example.rs") is None


def _write(folder, ipv4=(), ipv6=(), asn=(), dns=()):
    folder.mkdir(exist_ok=True)
    for name, services in (("ipv4", ipv4), ("ipv6", ipv6), ("asn", asn), ("dns", dns)):
        (folder / f"{name}.json").write_text(json.dumps(
            {"version": "1.0", "services": [list(s) for s in services]}))
    return folder


def test_the_longest_prefix_wins_and_https_is_preferred(tmp_path):
    folder = _write(tmp_path / "b",
                    ipv4=[(["10.0.0.0/8"], ["http://wide.example/rdap"]),
                          (["10.1.0.0/16"], ["http://narrow.example/x",
                                             "https://narrow.example/x"])],
                    ipv6=[(["2001:db8::/32"], ["https://six.example/"])],
                    asn=[(["64496-64511"], ["https://asn.example/"]),
                         (["65000"], ["https://one.example/"])],
                    dns=[(["uk"], ["https://uk.example/"]),
                         (["co.uk."], ["https://co.example/"])])
    bootstrap = Bootstrap(folder)
    assert bootstrap.for_ip("10.1.2.3") == "https://narrow.example/x/"
    assert bootstrap.for_ip("10.2.0.1") == "http://wide.example/rdap/"
    assert bootstrap.for_ip("2001:db8::1") == "https://six.example/"
    assert bootstrap.for_ip("192.0.2.1") is None
    assert bootstrap.for_asn(64500) == bootstrap.for_asn(64511) == "https://asn.example/"
    assert bootstrap.for_asn(65000) == "https://one.example/"
    assert bootstrap.for_asn(64495) is None and bootstrap.for_asn(64999) is None
    assert bootstrap.for_domain("WWW.Example.CO.UK.") == "https://co.example/"
    assert bootstrap.for_domain("example.uk") == "https://uk.example/"
    assert bootstrap.for_domain("example.org") is None


def test_a_missing_or_broken_bootstrap_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="ipv4.json: not an RDAP bootstrap file"):
        Bootstrap(tmp_path / "empty")
    folder = _write(tmp_path / "b")
    (folder / "asn.json").write_text('{"services": "nonsense"}')
    with pytest.raises(ConfigError, match="asn.json"):
        Bootstrap(folder)


@pytest.mark.parametrize(("url", "name"), [
    ("https://rdap.db.ripe.net/", "ripencc"),
    ("https://rdap.arin.net/registry/", "arin"),
    ("http://127.0.0.1:8080/lacnic/", "lacnic"),
    ("http://127.0.0.1:8080/RIPE/rdap/", "ripencc"),
    ("https://rdap.verisign.com/com/v1/", "rdap.verisign.com"),
])
def test_a_registry_is_named_by_its_rir_or_its_host(url, name):
    assert registry_name(url) == name
