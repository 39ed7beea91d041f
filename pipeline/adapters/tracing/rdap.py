"""RDAP: the client (bootstrap, rate limit, errors) and the parsers (with ipwhois).

The client never sleeps for long: HTTP 429, 5xx and timeouts raise
`RetryLater(delay_ms=...)`, so the message is retried later while the worker thread
moves on. A 404 is an answer ("not found"), cached briefly by the caller.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ipwhois.exceptions import InvalidNetworkObject
from ipwhois.rdap import _RDAPContact, _RDAPNetwork

from pipeline.adapters.tracing.bootstrap import Bootstrap, registry_name
from pipeline.adapters.tracing.breaker import Breakers, ServerDown
from pipeline.adapters.tracing.dns import now_iso
from pipeline.adapters.tracing.http import HttpGetter, HttpTimeout, HttpUnreachable, Response
from pipeline.adapters.tracing.ratelimit import RateLimiter
from pipeline.core.counters import RDAP_REQUESTS
from pipeline.core.errors import HotlineError, RetryLater

RDAP_ACCEPT = "application/rdap+json, application/json;q=0.9"


class RdapMalformed(HotlineError):
    """The registry answered 200 with something that is not an RDAP object."""


@dataclass
class RdapAnswer:
    """One RDAP answer as received."""

    url: str
    status: int  # 200 or 404
    at: str
    body: Any  # parsed JSON (None for 404)

    @property
    def key(self) -> str:
        """A content hash naming this answer in the evidence table."""
        blob = json.dumps({"url": self.url, "status": self.status, "at": self.at,
                           "body": self.body}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "status": self.status, "at": self.at, "body": self.body,
                "key": self.key}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RdapAnswer:
        return cls(url=data["url"], status=data["status"], at=data["at"], body=data["body"])


class RdapClient:
    """Finds the registry for a question, respects its rate limit, asks it."""

    def __init__(
        self,
        bootstrap: Bootstrap,
        limiter: RateLimiter,
        *,
        base_url: str | None = None,
        timeout: float = 5.0,
        retry_delay_ms: int = 30_000,
        http: HttpGetter | None = None,
        connections: int = 16,
        breakers: Breakers | None = None,
    ):
        self.bootstrap = bootstrap
        self.breakers = breakers  # one circuit per RDAP server
        self.limiter = limiter
        self.base_url = (base_url.rstrip("/") + "/") if base_url else None
        self.retry_delay_ms = retry_delay_ms
        # `pipeline.adapters.tracing.http` says why not urllib3 (or httpx). Redirects
        # are followed (a redirector such as rdap.org as rdap_base_url); nothing else is
        # retried here: a failure is RetryLater for the message. Up to `connections`
        # kept per server: as many as the tracer's threads, so none is opened and
        # dropped.
        self.http = http or HttpGetter(timeout=timeout, headers={"Accept": RDAP_ACCEPT},
                                       keep=connections)
        self._lock = threading.Lock()
        self.queries = 0  # HTTP requests sent (the benchmark reports it)

    def _service(self, found: str | None) -> tuple[str | None, str | None]:
        """(registry name, base URL to ask) for a bootstrap lookup result."""
        if found is None and self.base_url is None:
            return None, None
        registry = registry_name(found) if found else "rdap_base_url"
        return registry, self.base_url or found

    def ip(self, address: str) -> tuple[str | None, RdapAnswer | None]:
        """(registry, answer) for the network holding `address`; (None, None) when no
        registry is known for it."""
        registry, base = self._service(self.bootstrap.for_ip(address))
        if base is None:
            return None, None
        return registry, self.get(registry or "", f"{base}ip/{address}")

    def domain(self, domain: str) -> tuple[str | None, RdapAnswer | None]:
        registry, base = self._service(self.bootstrap.for_domain(domain))
        if base is None:
            return None, None
        return registry, self.get(registry or "", f"{base}domain/{domain}")

    def autnum(self, asn: int) -> tuple[str | None, RdapAnswer | None]:
        registry, base = self._service(self.bootstrap.for_asn(asn))
        if base is None:
            return None, None
        return registry, self.get(registry or "", f"{base}autnum/{asn}")

    def entity(self, registry: str, base_hint: str, handle: str) -> RdapAnswer:
        """An entity by handle, from the server that named it (or rdap_base_url)."""
        base = self.base_url or base_hint
        return self.get(registry, f"{base}entity/{handle}")

    def base_for(self, answer_url: str) -> str:
        """The service base of an answer URL (everything before /ip/, /domain/...)."""
        for marker in ("/ip/", "/domain/", "/autnum/", "/entity/"):
            if marker in answer_url:
                return answer_url.split(marker, 1)[0] + "/"
        return answer_url

    def get(self, registry: str, url: str) -> RdapAnswer:
        """The answer to `url`. Through the server's breaker when there are breakers:
        `RegistryUnreachable` while its circuit is open."""
        # The rate limit first: its wait is no answer of the server, either way.
        self.limiter.acquire(registry)
        if self.breakers is None:
            return self._get(registry, url)
        parts = urlsplit(url)
        server = f"rdap {parts.scheme}://{parts.netloc}"
        return self.breakers.call(server, self._get, registry, url)

    def _get(self, registry: str, url: str) -> RdapAnswer:
        with self._lock:
            self.queries += 1
        counted = registry or "unknown"
        try:
            response = self.http.get(url)
        except HttpTimeout as exc:
            RDAP_REQUESTS.labels(counted, "timeout").inc()
            raise ServerDown(f"RDAP {registry} timed out for {url}",
                             delay_ms=self.retry_delay_ms) from exc
        except HttpUnreachable as exc:
            RDAP_REQUESTS.labels(counted, "unreachable").inc()
            raise ServerDown(f"RDAP {registry} unreachable for {url}: {exc}",
                             delay_ms=self.retry_delay_ms) from exc
        status = response.status
        RDAP_REQUESTS.labels(counted, _request_outcome(status)).inc()
        at = now_iso()
        if status == 429:
            raise RetryLater(f"RDAP {registry} answered 429 for {url}",
                             delay_ms=_retry_after_ms(response) or self.retry_delay_ms)
        if status == 404:
            return RdapAnswer(url=url, status=404, at=at, body=None)
        if status >= 500:
            raise ServerDown(f"RDAP {registry} answered {status} for {url}",
                             delay_ms=_retry_after_ms(response) or self.retry_delay_ms)
        if status != 200:
            raise RdapMalformed(f"RDAP {registry} answered {status} for {url}")
        try:
            body = json.loads(response.data)
        except ValueError:
            raise RdapMalformed(f"RDAP {registry} answered malformed JSON for {url}") from None
        if not isinstance(body, dict):
            raise RdapMalformed(f"RDAP {registry} answered a non-object for {url}")
        return RdapAnswer(url=url, status=200, at=at, body=body)

    def close(self) -> None:
        self.http.close()


def _request_outcome(status: int) -> str:
    """The `hotline_rdap_requests_total` outcome of an HTTP answer."""
    if status == 200:
        return "ok"
    if status == 404:
        return "not_found"
    if status == 429:
        return "rate_limited"
    return "server_error" if status >= 500 else "error"


def _retry_after_ms(response: Response) -> int | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(100, int(float(value) * 1000))
    except ValueError:
        return None


# ---------------------------------------------------------------------------------
# Parsers


def _contact(entity: dict[str, Any]) -> dict[str, Any]:
    try:
        parser = _RDAPContact(entity["vcardArray"][1])
        parser.parse()
        return dict(parser.vars)
    except (KeyError, IndexError, TypeError, ValueError):
        return {}


def _emails(contact: dict[str, Any]) -> list[str]:
    return [e["value"] for e in contact.get("email") or [] if e.get("value")]


def walk_entities(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every entity of an RDAP object, nested ones included (depth first)."""
    found: list[dict[str, Any]] = []
    stack = list(reversed(obj.get("entities") or []))
    while stack:
        entity = stack.pop()
        if not isinstance(entity, dict):
            continue
        found.append(entity)
        stack.extend(reversed(entity.get("entities") or []))
    return found


def role_contact(obj: dict[str, Any], role: str) -> tuple[dict[str, Any] | None, str | None,
                                                          str | None]:
    """(contact, email, handle) of the first entity with `role`; email None if missing."""
    for entity in walk_entities(obj):
        if role in (entity.get("roles") or []):
            contact = _contact(entity)
            emails = _emails(contact)
            return contact, (emails[0] if emails else None), entity.get("handle")
    return None, None, None


def parse_network(body: dict[str, Any]) -> dict[str, Any]:
    """Network facts from an RDAP /ip answer of any of the five RIRs."""
    parser = _RDAPNetwork(body)
    try:
        parser.parse()
    except InvalidNetworkObject as exc:
        raise RdapMalformed(f"not an RDAP network object: {exc}") from None
    facts = parser.vars
    prefixes = _prefixes(body, facts.get("cidr"))
    if not prefixes:
        raise RdapMalformed("the RDAP network object has no address range")
    abuse_contact, abuse_email, abuse_handle = role_contact(body, "abuse")
    registrant, _, _ = role_contact(body, "registrant")
    org = (registrant or {}).get("name")
    asns = body.get("arin_originas0_originautnums") or []
    return {
        "handle": facts.get("handle"),
        "name": facts.get("name"),
        "country": (facts.get("country") or "").upper() or None,
        "prefixes": prefixes,
        "org": org or facts.get("name"),
        "abuse_email": abuse_email,
        # An abuse entity named without an e-mail: the caller asks for it by handle.
        "abuse_handle": abuse_handle if abuse_contact is not None and not abuse_email
        else None,
        "asn": int(asns[0]) if asns else None,
        "port43": body.get("port43"),
    }


def _prefixes(body: dict[str, Any], cidr: str | None) -> list[str]:
    prefixes: list[str] = []
    for item in body.get("cidr0_cidrs") or []:
        try:
            prefix = item.get("v4prefix") or item.get("v6prefix")
            prefixes.append(str(ipaddress.ip_network(f"{prefix}/{item['length']}",
                                                     strict=False)))
        except (KeyError, ValueError, TypeError, AttributeError):
            continue
    if not prefixes and cidr:
        for part in cidr.split(","):
            try:
                prefixes.append(str(ipaddress.ip_network(part.strip(), strict=False)))
            except ValueError:
                continue
    return prefixes


def parse_entity_email(body: dict[str, Any]) -> str | None:
    emails = _emails(_contact(body))
    return emails[0] if emails else None


def parse_domain(body: dict[str, Any]) -> dict[str, Any]:
    """Registrar and its abuse contact from an RDAP /domain answer."""
    if body.get("objectClassName") not in (None, "domain"):
        raise RdapMalformed("not an RDAP domain object")
    registrar = None
    abuse_email = None
    for entity in walk_entities(body):
        if "registrar" in (entity.get("roles") or []):
            registrar = _contact(entity).get("name") or entity.get("handle")
            _, abuse_email, _ = role_contact(entity, "abuse")
            break
    if abuse_email is None:
        _, abuse_email, _ = role_contact(body, "abuse")
    return {"registrar": registrar, "registrar_abuse_email": abuse_email,
            "nameservers": sorted(ns.get("ldhName", "").lower()
                                  for ns in body.get("nameservers") or []
                                  if isinstance(ns, dict) and ns.get("ldhName"))}
