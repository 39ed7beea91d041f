"""The optional country database: read through `maxminddb`, used only when configured.

`maxminddb` is an optional dependency (hotline[geoip]), so these tests stand a small
reader in for it: what is tested is how `GeoIP` reads the records and reports faults.
"""

from __future__ import annotations

import sys
import types

import pytest

from pipeline.adapters.tracing.geoip import GeoIP
from pipeline.core.errors import ConfigError

RECORDS = {
    "192.0.2.1": {"country": {"iso_code": "rs", "names": {"en": "Serbia"}}},
    "192.0.2.2": {"registered_country": {"iso_code": "NL"}},
    "192.0.2.3": {"country": "de"},  # a flat layout
    "192.0.2.4": {"continent": {"code": "EU"}},
    "192.0.2.5": "not a record",
}


class _Reader:
    def __init__(self, path):
        self.path, self.closed = path, False

    def get(self, address):
        if address == "not-an-address":
            raise ValueError("not an IP address")
        return RECORDS.get(address)

    def close(self):
        self.closed = True


@pytest.fixture
def fake_maxminddb(monkeypatch):
    module = types.ModuleType("maxminddb")

    def open_database(path):
        if path.endswith(".missing"):
            raise OSError(2, "No such file or directory")
        return _Reader(path)

    module.open_database = open_database  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "maxminddb", module)
    return module


def test_the_country_comes_from_the_country_or_the_registered_country(fake_maxminddb):
    geoip = GeoIP("/srv/GeoLite2-Country.mmdb")
    assert geoip.country("192.0.2.1") == "RS"
    assert geoip.country("192.0.2.2") == "NL"
    assert geoip.country("192.0.2.3") == "DE"


@pytest.mark.parametrize("address", ["192.0.2.4", "192.0.2.5", "198.51.100.1",
                                     "not-an-address"])
def test_no_country_is_none(fake_maxminddb, address):
    assert GeoIP("/srv/GeoLite2-Country.mmdb").country(address) is None


def test_closing_closes_the_reader(fake_maxminddb):
    geoip = GeoIP("/srv/GeoLite2-Country.mmdb")
    geoip.close()
    assert geoip.reader.closed


def test_an_unreadable_database_is_a_config_error(fake_maxminddb):
    with pytest.raises(ConfigError, match="trace.geoip_database: cannot read /srv/x.missing"):
        GeoIP("/srv/x.missing")


def test_a_database_without_the_package_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "maxminddb", None)  # import fails
    with pytest.raises(ConfigError, match="maxminddb package is not installed"):
        GeoIP("/srv/GeoLite2-Country.mmdb")
