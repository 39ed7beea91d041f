"""CDNs and big providers from `rules/providers.yaml`: address ranges or ASNs, abuse
contacts, a country override, notes. Validated at load with errors naming the file,
the provider and the field.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from pipeline.core.config_files import load_yaml
from pipeline.core.errors import ConfigError


class Provider(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(..., description="Short name, e.g. cloudflare.")
    kind: Literal["cdn", "hosting"] = Field(
        ..., description="cdn: the origin is hidden behind it; hosting: the content is "
        "on its servers."
    )
    display_name: str | None = Field(None, description="The name shown to analysts.")
    asns: list[int] = Field(default_factory=list, description="Its autonomous systems.")
    ranges: list[str] = Field(default_factory=list, description="Its address ranges.")
    abuse_email: str | None = Field(None, description="Where notices to it go.")
    abuse_form: str | None = Field(None, description="Its abuse web form, if any.")
    country: str | None = Field(
        None, description="Jurisdiction to use instead of the registry's country."
    )
    notes: str | None = Field(None, description="What an analyst should know.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value or value != value.lower() or " " in value:
            raise ValueError("must be a lowercase key without spaces (routing rules use it)")
        return value

    @field_validator("ranges")
    @classmethod
    def _ranges(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value, strict=False)
        return values

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 2 or not value.isalpha()):
            raise ValueError("must be a two-letter ISO 3166 country code")
        return value.upper() if value else value


class ProvidersFile(BaseModel):
    model_config = {"extra": "forbid"}

    providers: list[Provider] = Field(default_factory=list)


class Providers:
    """Finds the provider of an address (by range, most specific first) or an ASN."""

    def __init__(self, providers: list[Provider]):
        self.providers = providers
        self._ranges = sorted(
            ((ipaddress.ip_network(r, strict=False), p) for p in providers for r in p.ranges),
            key=lambda pair: pair[0].prefixlen, reverse=True,
        )
        self._asns = {asn: p for p in providers for asn in p.asns}
        self._memo: dict[tuple[str, int | None], Provider | None] = {}
        # Per IP version, per prefix length (longest first), network number -> provider:
        # a lookup costs one dict probe per length present, not a scan of every range
        # (profiled: the scan was 4% of a worker's time on the benchmark).
        self._by_length: dict[int, list[tuple[int, dict[int, Provider]]]] = {4: [], 6: []}
        for network, provider in self._ranges:
            bits = network.max_prefixlen
            table = dict(self._by_length[network.version])
            numbers = table.setdefault(network.prefixlen, {})
            numbers.setdefault(int(network.network_address) >> (bits - network.prefixlen),
                               provider)
            self._by_length[network.version] = sorted(table.items(), reverse=True)

    @classmethod
    def load(cls, path: str | Path) -> Providers:
        file = Path(path)
        if not file.is_file():
            return cls([])
        try:
            data = load_yaml(file.read_text(encoding="utf-8")) or {}
            return cls(ProvidersFile.model_validate(data).providers)
        except yaml.YAMLError as exc:
            raise ConfigError([f"{file}: not valid YAML: {exc}".replace("\n", " ")]) from None
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                loc = list(error["loc"])
                where = str(file)
                if len(loc) >= 2 and loc[0] == "providers" and isinstance(loc[1], int):
                    entries = data.get("providers") or []
                    name = entries[loc[1]].get("name") if isinstance(entries[loc[1]], dict) \
                        else None
                    where += f": provider {name or '#' + str(loc[1] + 1)}"
                    loc = loc[2:]
                field = ".".join(str(p) for p in loc) or "(entry)"
                problems.append(f"{where}: {field}: {error['msg']}")
            raise ConfigError(problems) from None

    def match(self, address: str, asn: int | None) -> Provider | None:
        key = (address, asn)
        if key in self._memo:
            return self._memo[key]
        found = self._match(address, asn)
        if len(self._memo) > 100_000:
            self._memo.clear()
        self._memo[key] = found
        return found

    def _match(self, address: str, asn: int | None) -> Provider | None:
        ip = ipaddress.ip_address(address)
        number, bits = int(ip), ip.max_prefixlen
        for length, numbers in self._by_length[ip.version]:
            provider = numbers.get(number >> (bits - length))
            if provider is not None:
                return provider
        if asn is not None:
            return self._asns.get(asn)
        return None
