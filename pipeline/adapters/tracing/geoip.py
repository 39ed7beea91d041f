"""An optional MaxMind-format (.mmdb) country database (`trace.geoip_database`).

Used only when the registry gives no country. The `maxminddb` package reads the file;
it is needed only when a database is configured.
"""

from __future__ import annotations

from typing import Any

from pipeline.core.errors import ConfigError


class GeoIP:
    def __init__(self, path: str):
        try:
            import maxminddb  # noqa: PLC0415  (an optional dependency: hotline[geoip])
        except ImportError:
            raise ConfigError(["trace.geoip_database: set, but the maxminddb package is "
                               "not installed (pip install maxminddb)"]) from None
        try:
            self.reader: Any = maxminddb.open_database(path)
        except (OSError, ValueError) as exc:
            raise ConfigError([f"trace.geoip_database: cannot read {path}: {exc}"]) from None

    def country(self, address: str) -> str | None:
        """ISO country code of `address` (GeoLite2/GeoIP2 Country or City layout)."""
        try:
            record = self.reader.get(address)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        for key in ("country", "registered_country"):
            value = record.get(key)
            if isinstance(value, dict) and value.get("iso_code"):
                return str(value["iso_code"]).upper()
            if isinstance(value, str) and len(value) == 2:
                return value.upper()
        return None

    def close(self) -> None:
        self.reader.close()
