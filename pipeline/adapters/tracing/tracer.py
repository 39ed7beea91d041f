"""The tracer: from host names to hosting facts, for a whole batch at once.

Steps of `Tracer.trace`:
1. take the distinct hosts of the batch (a batch traces each host once),
2. resolve the host names not in the DNS cache (A, AAAA, CNAME chain, NS), in parallel;
   onion and IP-literal URLs skip DNS,
3. find the network of every address: cached per prefix; the unknown ones are asked
   for one address per /24 (IPv4) or /48 (IPv6) at a time, so addresses sharing a
   network cost one RDAP question; the origin ASN comes from a Team Cymru style zone
   (cached per BGP prefix) or from the RDAP answer,
4. ask for the registrar of each registered domain not in the cache,
5. apply the providers file (CDNs, big hosts) and the jurisdiction rules,
6. return one `HostTrace` per target; passing failures (429, timeouts, rate limit)
   are reported on it as `transient` for the caller to retry later.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import dns.exception

from pipeline.adapters.tracing import dns as tdns
from pipeline.adapters.tracing.bootstrap import Bootstrap
from pipeline.adapters.tracing.breaker import (
    BREAKERS,
    Breakers,
    RegistryUnreachable,
    UnreachableReason,
    reason_of,
)
from pipeline.adapters.tracing.cache import Cache, MemoryCache, PrefixCache
from pipeline.adapters.tracing.geoip import GeoIP
from pipeline.adapters.tracing.providers import Providers
from pipeline.adapters.tracing.ratelimit import RateLimiter
from pipeline.adapters.tracing.rdap import (
    RdapAnswer,
    RdapClient,
    RdapMalformed,
    parse_domain,
    parse_entity_email,
    parse_network,
)
from pipeline.core.config import TraceSection
from pipeline.core.errors import RetryLater

log = logging.getLogger(__name__)

# Trace outcomes besides the DNS ones in pipeline.adapters.tracing.dns.
TRACED = "traced"
BEHIND_CDN = "behind_cdn"
ONION = "onion_service"
NO_HOST = "no_host"
NOT_PUBLIC = "not_public_address"
NETWORK_UNKNOWN = "network_unknown"
RDAP_MALFORMED = "rdap_malformed"
RDAP_UNAVAILABLE = "rdap_unavailable"
# The DNS resolvers or RDAP servers needed do not answer (their circuits are open):
# the case goes on to the analysts and is traced again once they answer.
REGISTRIES_UNREACHABLE = tdns.UNREACHABLE


@dataclass(frozen=True)
class TraceTarget:
    host: str | None
    url_kind: str | None = "domain"  # domain, ip, onion, redirector
    registered_domain: str | None = None


@dataclass
class HostTrace:
    """The hosting facts of one host, with the answers they came from."""

    host: str | None
    url_kind: str | None
    started_at: datetime
    outcome: str = TRACED
    origin_unknown: bool = False
    reason: str | None = None
    resolver: str | None = None
    addresses: list[dict[str, Any]] = field(default_factory=list)
    cname_chain: list[str] = field(default_factory=list)
    nameservers: list[str] = field(default_factory=list)
    registrar: str | None = None
    registrar_abuse_email: str | None = None
    behind_cdn: bool = False
    cdn_name: str | None = None
    hosting_country: str | None = None
    country_source: str | None = None
    hosting_asn: int | None = None
    hosting_org: str | None = None
    hosting_abuse_email: str | None = None
    dns_raw: dict[str, Any] = field(default_factory=dict)
    rdap_answers: list[dict[str, Any]] = field(default_factory=list)  # RdapAnswer dicts
    transient: str | None = None  # a passing failure: retry later
    retry_delay_ms: int = 0
    # Every passing failure was a registry whose circuit is open: do not wait for it.
    unreachable: bool = False

    def unknown(self, outcome: str, reason: str) -> None:
        self.outcome, self.origin_unknown, self.reason = outcome, True, reason

    def to_json(self) -> dict[str, Any]:
        """The summary `hotline trace` prints (answers left out; see --raw)."""
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["cdn"] = self.cdn_name
        data.pop("rdap_answers")
        data.pop("dns_raw")
        return data


# The recent traces a worker keeps (see Tracer.__init__).
RECENT_MAX = 2_048


T = TypeVar("T")

# Addresses asked about together are grouped ever finer, round by round: one question
# per /16 first (most registry networks are that large or larger and then cover the
# whole group), then per /24 for what is left, then per address.
_GROUP_LENGTHS = {4: (16, 24, 32), 6: (32, 48, 128)}


@functools.lru_cache(maxsize=65_536)
def _group(address: str, level: int = 1) -> str:
    ip = ipaddress.ip_address(address)
    lengths = _GROUP_LENGTHS[ip.version]
    return str(ipaddress.ip_network(f"{ip}/{lengths[min(level, len(lengths) - 1)]}",
                                    strict=False))


@functools.lru_cache(maxsize=65_536)
def _is_public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


# What the cache-only path (`Tracer.trace_known`) never records: a network the
# registry did not answer for is decided by the trace stage, which asks (or, within
# the negative cache's time, finds the registry's own "no such network").
_DECIDED_BY_THE_STAGE = frozenset({NETWORK_UNKNOWN, RDAP_MALFORMED, RDAP_UNAVAILABLE})


def _held_in_full(network: dict[str, Any] | None) -> bool:
    """A cached network answer the cache-only path may use: present and positive."""
    return network is not None and bool(network) and not network.get("negative")


@dataclass
class _Lookup:
    """Values per address from a prefix-cached source, and why some are missing."""

    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    transient: dict[str, tuple[str, int]] = field(default_factory=dict)


class Tracer:
    """Holds the clients and caches of one process; safe to share between threads."""

    def __init__(
        self,
        config: TraceSection,
        *,
        redis: Any | None = None,
        namespace: str = "hotline",
        http: Any | None = None,
        providers: Providers | None = None,
        breakers: Breakers | None = None,
    ):
        self.config = config
        # One circuit breaker per DNS resolver and RDAP server, shared by the process
        # (trace.breaker_failures 0: none).
        if breakers is None and config.breaker_failures:
            breakers = BREAKERS
            breakers.configure(failures=config.breaker_failures,
                               reset_seconds=config.breaker_reset_seconds,
                               retry_ms=config.breaker_retry_ms)
        self.breakers = breakers
        self.dns = tdns.DnsClient(
            [(r.address, r.port) for r in config.resolvers],
            timeout=config.dns_timeout_seconds,
            lifetime=config.dns_lifetime_seconds,
            max_chain=config.max_cname_chain,
            breakers=breakers,
        )
        self.bootstrap = Bootstrap(config.bootstrap_dir)
        self.limiter = RateLimiter(
            config.rdap_rate_per_second, config.rdap_burst,
            max_wait_ms=config.rate_limit_wait_ms, redis=redis,
            key_prefix=f"{namespace}:trace:rate",
        )
        self.rdap = RdapClient(
            self.bootstrap, self.limiter, base_url=config.rdap_base_url,
            timeout=config.rdap_timeout_seconds, retry_delay_ms=config.retry_delay_ms,
            http=http, connections=config.concurrency, breakers=breakers,
        )
        self.cache = Cache(redis, namespace=namespace)
        self.networks = PrefixCache(self.cache, "net")
        self.origins = PrefixCache(self.cache, "origin")
        self.providers = providers if providers is not None else Providers.load(
            config.providers_file)
        self.geoip = GeoIP(config.geoip_database) if config.geoip_database else None
        self.pool = ThreadPoolExecutor(config.concurrency, thread_name_prefix="trace")
        # Finished traces of recent hosts, so that a host reported again within seconds
        # costs no cache lookups at all (passing failures are never kept). Bounded by
        # count, least recently used out first: each trace carries its registry answers
        # (several KB as Python objects); see LOCAL_ITEMS_IN_FRONT_OF_REDIS for what
        # 30 s of them cost unbounded. The popular hosts stay.
        self._recent = MemoryCache(RECENT_MAX)
        self.recent_seconds = 30.0
        # `trace_ahead`: one trace at a time, on a thread of its own (`pool` serves the
        # questions of every trace, so a trace cannot wait on it from inside it).
        self._ahead_pool = ThreadPoolExecutor(1, thread_name_prefix="trace-ahead")
        self._ahead: Future[Any] | None = None
        self._ahead_lock = threading.Lock()

    def close(self) -> None:
        self._ahead_pool.shutdown(wait=False, cancel_futures=True)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.rdap.close()
        if self.geoip is not None:
            self.geoip.close()

    # -- the batch -----------------------------------------------------------------

    def trace(self, targets: Sequence[TraceTarget], *,
              refresh: Collection[str] = ()) -> dict[TraceTarget, HostTrace]:
        """Trace `targets`; hosts in `refresh` are resolved again, not taken from the
        caches (a case traced again because its content moved)."""
        known = self._remembered(targets, refresh)
        fresh = self._trace([t for t in dict.fromkeys(targets) if t not in known],
                            set(refresh))
        keep: dict[TraceTarget, tuple[HostTrace, float]] = {}
        for t, result in fresh.items():
            seconds = self.recent_seconds
            if result.origin_unknown and not result.behind_cdn:  # a failure
                seconds = min(seconds, self.config.negative_cache_seconds)
            if result.transient is None and result.outcome != REGISTRIES_UNREACHABLE:
                keep[t] = (copy.copy(result), seconds)
        self._recent.set_many(keep)
        return {**known, **fresh}

    def trace_ahead(self, targets: Sequence[TraceTarget], *,
                    then: Callable[[dict[TraceTarget, HostTrace]], None] | None = None,
                    ) -> Future[Any] | None:
        """Start tracing `targets` in the background and return at once: the answers
        go into the caches, where the TRACE stage finds them when it traces the same
        hosts (in this process or another sharing the Redis caches), and to `then`.
        For a caller that has work to do before that stage can run, such as intake
        writing the rest of a large submission (`pipeline.stages.trace.trace_ahead`).
        One trace at a time: while one runs, no other is started (None), and the
        stage asks for those itself. A failure leaves the caches as they were."""
        wanted = list(dict.fromkeys(targets))
        if not wanted:
            return None
        with self._ahead_lock:
            if self._ahead is not None and not self._ahead.done():
                return None
            try:
                self._ahead = self._ahead_pool.submit(self._trace_quietly, wanted, then)
            except RuntimeError:  # closed
                return None
            return self._ahead

    def _trace_quietly(self, targets: list[TraceTarget],
                       then: Callable[[dict[TraceTarget, HostTrace]], None] | None) -> None:
        try:
            results = self.trace(targets)
            if then is not None:
                then(results)
        except Exception as exc:  # the stage asks again
            log.info("Tracing ahead of %d host(s) failed (%s: %s); the trace stage will "
                     "ask.", len(targets), type(exc).__name__, exc)

    def _remembered(self, targets: Sequence[TraceTarget],
                    refresh: Collection[str]) -> dict[TraceTarget, HostTrace]:
        """This process's recent traces of `targets` (copies), but those in `refresh`."""
        wanted = [t for t in dict.fromkeys(targets) if t.host not in refresh]
        return {t: copy.copy(held) for t, held in zip(wanted, self._recent.get_many(wanted),
                                                      strict=True) if held is not None}

    def trace_known(self, targets: Sequence[TraceTarget]) -> dict[TraceTarget, HostTrace]:
        """The traces of `targets` that need no question over the network: every
        answer is in the caches (this process's recent traces, then the shared
        caches). The others are left out, for `trace` (the TRACE stage) to ask."""
        known = {t: r for t, r in self._remembered(targets, ()).items()
                 if r.outcome not in _DECIDED_BY_THE_STAGE}
        found = self._trace([t for t in dict.fromkeys(targets) if t not in known], set(),
                            offline=True)
        return {**known, **{t: r for t, r in found.items()
                            if r.transient is None and r.outcome not in _DECIDED_BY_THE_STAGE}}

    def _trace(self, distinct: list[TraceTarget], refresh: set[str], *,
               offline: bool = False) -> dict[TraceTarget, HostTrace]:
        """Trace `distinct`. `offline`: from the caches only, leaving out the targets
        that would need a question."""
        if not distinct:
            return {}
        started = datetime.now(UTC)
        dns_hosts = [t for t in distinct
                     if t.host and t.url_kind not in ("onion", "ip")]
        dns_set = set(dns_hosts)
        dns_results = self._resolve([t.host for t in dns_hosts if t.host], refresh,
                                    offline=offline)
        nameservers = self._nameservers([t.registered_domain for t in dns_hosts
                                         if t.registered_domain], offline=offline)
        if offline:  # a host not resolved yet: its addresses are unknown
            distinct = [t for t in distinct if t not in dns_set or (
                t.host in dns_results and (not t.registered_domain
                                           or t.registered_domain in nameservers))]
            kept = set(distinct)
            dns_hosts = [t for t in dns_hosts if t in kept]
        addresses: dict[TraceTarget, list[str]] = {}
        for t in distinct:
            if t.url_kind == "ip" and t.host:
                addresses[t] = [t.host.strip("[]")]
            elif t in dns_set and t.host:
                addresses[t] = dns_results[t.host].addresses
            else:
                addresses[t] = []
        public = list(dict.fromkeys(a for addrs in addresses.values() for a in addrs
                                    if _is_public(a)))
        origins = self._prefix_lookup(self.origins, public, self._fetch_origin,
                                      offline=offline)
        networks = self._prefix_lookup(self.networks, public, self._fetch_network,
                                       offline=offline)
        if offline:  # an address of unknown network or origin: left for the stage
            distinct = [t for t in distinct if all(
                a in origins.values and _held_in_full(networks.values.get(a))
                for a in addresses[t] if _is_public(a))]
            # ... and not asked about below (the registrar's question would assemble
            # it again: a host whose network another worker is still asking the
            # registry about came out `network_unknown`).
            kept = set(distinct)
            dns_hosts = [t for t in dns_hosts if t in kept]

        def assemble(t: TraceTarget, domains: dict[str, dict[str, Any]]) -> HostTrace:
            return self._assemble(t, started, dns_results.get(t.host or ""), addresses[t],
                                  origins, networks, domains,
                                  nameservers.get(t.registered_domain or ""))

        mode = self.config.registrar_lookup
        if mode == "never":
            return {t: assemble(t, {}) for t in distinct}
        asking = [t for t in dns_hosts if t.registered_domain]
        out: dict[TraceTarget, HostTrace] = {}
        if mode == "fallback":  # only where the hosting provider cannot be told
            out = {t: assemble(t, {}) for t in distinct}
            asking = [t for t in asking if out[t].origin_unknown or out[t].behind_cdn
                      or not out[t].hosting_abuse_email]
        domains = self._domains([t.registered_domain for t in asking
                                 if t.registered_domain], offline=offline)
        if offline:
            unasked = {t for t in asking if t.registered_domain not in domains}
            distinct = [t for t in distinct if t not in unasked]
            asking = [t for t in asking if t not in unasked]
            out = {t: r for t, r in out.items() if t not in unasked}
        out.update({t: assemble(t, domains) for t in asking})
        for t in distinct:
            if t not in out:
                out[t] = assemble(t, domains)
        return out

    # -- DNS -----------------------------------------------------------------------

    def _resolve(self, hosts: list[str], refresh: set[str], *,
                 offline: bool = False) -> dict[str, tdns.DnsResult]:
        names = list(dict.fromkeys(hosts))
        cached = self.cache.get_many([f"dns:{h}" for h in names])
        results = {h: tdns.DnsResult.from_dict(v) for h, v in zip(names, cached, strict=True)
                   if v is not None and h not in refresh}
        missing = [] if offline else [h for h in names if h not in results]
        fresh = self._ask_dns(self.dns.resolve_hosts, self.dns.resolve_host, missing)
        to_cache: dict[str, tuple[Any, float]] = {}
        for result in fresh:
            results[result.host] = result
            if result.outcome == tdns.UNREACHABLE:  # says nothing about the host
                continue
            ttl = (min(result.ttl, self.config.dns_cache_max_seconds)
                   if result.outcome == tdns.OK else self.config.negative_cache_seconds)
            to_cache[f"dns:{result.host}"] = (result.to_dict(), ttl)
        self.cache.set_many(to_cache)
        return results

    def _nameservers(self, domains: list[str], *,
                     offline: bool = False) -> dict[str, dict[str, Any]]:
        names = list(dict.fromkeys(domains))
        cached = self.cache.get_many([f"ns:{d}" for d in names])
        out = {d: v for d, v in zip(names, cached, strict=True) if v is not None}
        missing = [] if offline else [d for d in names if d not in out]
        to_cache: dict[str, tuple[Any, float]] = {}
        answers = self._ask_dns(self.dns.nameservers_many, self.dns.nameservers, missing)
        for name, (servers, raw, ttl) in zip(missing, answers, strict=True):
            out[name] = {"nameservers": servers, "raw": raw}
            if raw.get("error") == RegistryUnreachable.__name__:
                continue  # not cached: says nothing about the domain
            to_cache[f"ns:{name}"] = (out[name], min(ttl, self.config.dns_cache_max_seconds)
                                      if servers else self.config.negative_cache_seconds)
        self.cache.set_many(to_cache)
        return out

    def _ask_dns(self, many: Callable[..., list[T]], one: Callable[[str], T],
                 names: list[str]) -> list[T]:
        """`many(names)`, the questions side by side from this thread, with the
        breakers (`DnsClient.ask_many`); without them `one` per name on the pool."""
        if self.dns.breakers is not None:
            return many(names, window=self.config.concurrency)
        return list(self.pool.map(one, names))

    # -- networks, per prefix --------------------------------------------------------

    def _prefix_lookup(
        self,
        cache: PrefixCache,
        addresses: list[str],
        fetch: Callable[[str], tuple[list[str], dict[str, Any], float]],
        *,
        offline: bool = False,
    ) -> _Lookup:
        """Values for `addresses` from `cache`, asking `fetch` for one address per group
        (see `_GROUP_LENGTHS`) at a time until every address is known or failed
        (`offline`: only what the cache holds)."""
        out = _Lookup()
        pending = list(addresses)
        level = -1
        while pending:
            level += 1
            for address, value in cache.lookup_many(pending,
                                                    count_misses=not offline).items():
                if value is not None:
                    out.values[address] = value
            pending = [a for a in pending if a not in out.values]
            if not pending or offline:
                break
            representatives = list({_group(a, level): a for a in reversed(pending)}.values())
            fetched = list(self.pool.map(
                lambda a, lv=level: self._fetch_once(cache, a, lv, fetch), representatives))
            for address, (result, error, found) in zip(representatives, fetched, strict=True):
                if found is not None:  # another worker asked meanwhile: its answer
                    out.values[address] = found
                    continue
                if error is not None:  # a passing failure: the whole group waits
                    for other in pending:
                        if _group(other, level) == _group(address, level):
                            out.transient[other] = error
                    continue
                assert result is not None
                out.values[address] = result[1]  # stored in the cache by _fetch_once
            pending = [a for a in pending if a not in out.values and a not in out.transient]
        return out

    def _fetch_once(self, cache: PrefixCache, address: str, level: int,
                    fetch: Callable[[str], Any]) -> tuple[Any, tuple[str, int] | None, Any]:
        """`fetch` for the group of `address`, unless another worker is asking the
        registry for that group right now: then wait for its answer in the cache (up
        to the registry timeout) rather than ask the same question twice (measured:
        two workers meeting new networks at once asked for 221 networks where 150
        existed). Returns (result, passing failure, value found in the cache)."""
        key = f"inflight:{cache.kind}:{_group(address, level)}"
        wait = self.config.rdap_timeout_seconds + 1.0
        # Only registry (RDAP) questions are worth waiting for; origin ASNs are DNS.
        claimed = self.cache.claim(key, wait) if cache.kind == "net" else False
        waited = not claimed and cache.kind == "net"
        deadline = time.monotonic() + wait
        while waited and not claimed and time.monotonic() < deadline:
            time.sleep(0.05)
            found = cache.lookup_many([address], fresh=True)[address]
            if found is not None:
                return None, None, found
            # The other worker is done and its answer does not cover this address
            # (another network of the same group): ask now, not at the deadline.
            claimed = self.cache.claim(key, wait)
        if cache.kind == "net":
            # Another worker's answer may have come between the look before the
            # claim (which reads prefix lengths cached for a second) and the claim.
            found = cache.lookup_many([address], fresh=True)[address]
            if found is not None:
                if claimed:
                    self.cache.release(key)
                return None, None, found
        try:
            result, error = self._guarded(fetch, address)
            if result is not None:  # stored before the claim is let go
                prefixes, value, ttl = result
                holds = [p for p in prefixes
                         if ipaddress.ip_address(address) in ipaddress.ip_network(p)]
                if not holds:  # the answer does not cover the address asked about
                    prefixes = [*prefixes, address]
                cache.store(prefixes, value, ttl)
            return result, error, None
        finally:
            if claimed:
                self.cache.release(key)

    @staticmethod
    def _guarded(fetch: Callable[[str], Any], address: str) -> tuple[Any, tuple[str, int] | None]:
        try:
            return fetch(address), None
        except RetryLater as exc:
            return None, (reason_of(exc), exc.delay_ms)

    def _negative(self, address: str, reason: str, answers: list[dict[str, Any]],
                  outcome: str = NETWORK_UNKNOWN) -> tuple[list[str], dict[str, Any], float]:
        return ([address], {"negative": True, "outcome": outcome, "reason": reason,
                            "answers": answers}, self.config.negative_cache_seconds)

    def _fetch_origin(self, address: str) -> tuple[list[str], dict[str, Any], float]:
        try:
            found = self.dns.origin_asn(address, self.config.asn_dns_zone_v4,
                                        self.config.asn_dns_zone_v6)
        except dns.exception.DNSException as exc:
            # The origin zone is a helper, not a registry: its failure never holds a
            # case back (RDAP still gives the network; ARIN's answer even the ASN).
            return self._negative(address, f"origin ASN lookup failed: {exc}", [])
        except RegistryUnreachable as exc:  # the same, but not remembered
            prefixes, value, _ = self._negative(address, f"origin ASN lookup: {exc}", [])
            return prefixes, value, 0
        if not found:
            return self._negative(address, "no origin ASN announced", [])
        return [found["prefix"]], found, self.config.network_cache_seconds

    def _fetch_network(self, address: str) -> tuple[list[str], dict[str, Any], float]:
        try:
            registry, answer = self.rdap.ip(address)
        except RdapMalformed as exc:
            return self._negative(address, str(exc), [], RDAP_MALFORMED)
        if answer is None:
            return self._negative(address, "no RDAP service is known for this address", [])
        if answer.status == 404:
            return self._negative(address, f"RDAP {registry}: no network for {address} "
                                  "(404)", [answer.to_dict()])
        try:
            facts = parse_network(answer.body)
        except RdapMalformed as exc:
            return self._negative(address, f"RDAP {registry}: {exc}", [answer.to_dict()],
                                  RDAP_MALFORMED)
        answers = [answer.to_dict()]
        if facts["abuse_handle"]:
            email, entity_answer = self._entity_email(registry or "", answer,
                                                      facts["abuse_handle"])
            facts["abuse_email"] = email
            if entity_answer is not None:
                answers.append(entity_answer.to_dict())
        facts.update(rir=registry, answers=answers)
        return facts["prefixes"], facts, self.config.network_cache_seconds

    def _entity_email(self, registry: str, answer: RdapAnswer,
                      handle: str) -> tuple[str | None, RdapAnswer | None]:
        key = f"entity:{registry}:{handle}"
        cached = self.cache.get_many([key])[0]
        if cached is not None:
            return cached.get("email"), RdapAnswer.from_dict(cached["answer"])
        try:
            entity = self.rdap.entity(registry, self.rdap.base_for(answer.url), handle)
        except RdapMalformed:
            return None, None
        email = None
        if entity.status == 200:
            email = parse_entity_email(entity.body)
        ttl = (self.config.network_cache_seconds if entity.status == 200
               else self.config.negative_cache_seconds)
        self.cache.set_many({key: ({"email": email, "answer": entity.to_dict()}, ttl)})
        return email, entity

    # -- domains -------------------------------------------------------------------

    def _domains(self, names: list[str], *,
                 offline: bool = False) -> dict[str, dict[str, Any]]:
        names = list(dict.fromkeys(names))
        cached = self.cache.get_many([f"domain:{n}" for n in names])
        out = {n: v for n, v in zip(names, cached, strict=True) if v is not None}
        missing = [] if offline else [n for n in names if n not in out]
        fetched = list(self.pool.map(self._fetch_domain, missing))
        to_cache: dict[str, tuple[Any, float]] = {}
        for name, (value, ttl) in zip(missing, fetched, strict=True):
            out[name] = value
            to_cache[f"domain:{name}"] = (value, ttl)
        self.cache.set_many(to_cache)
        return out

    def _fetch_domain(self, name: str) -> tuple[dict[str, Any], float]:
        negative = self.config.negative_cache_seconds
        try:
            registry, answer = self.rdap.domain(name)
        except RetryLater as exc:
            return {"transient": (reason_of(exc), exc.delay_ms)}, 0
        except RdapMalformed as exc:
            return {"reason": str(exc)}, negative
        if answer is None:
            return {"reason": "no RDAP service is known for this top-level domain"}, negative
        if answer.status == 404:
            return {"reason": f"RDAP {registry}: domain not found (404)",
                    "answers": [answer.to_dict()]}, negative
        try:
            facts = parse_domain(answer.body)
        except RdapMalformed as exc:
            return {"reason": f"RDAP {registry}: {exc}", "answers": [answer.to_dict()]}, negative
        facts["answers"] = [answer.to_dict()]
        return facts, self.config.domain_cache_seconds

    # -- one target ------------------------------------------------------------------

    def _assemble(
        self,
        target: TraceTarget,
        started: datetime,
        dns_result: tdns.DnsResult | None,
        addresses: list[str],
        origins: _Lookup,
        networks: _Lookup,
        domains: dict[str, dict[str, Any]],
        nameservers: dict[str, Any] | None,
    ) -> HostTrace:
        trace = HostTrace(host=target.host, url_kind=target.url_kind, started_at=started)
        transient: list[tuple[str, int]] = []
        if not target.host:
            trace.unknown(NO_HOST, "the URL has no host to trace")
            return trace
        if target.url_kind == "onion":
            trace.unknown(ONION, "an onion service does not reveal where it is hosted")
            return trace
        if dns_result is not None:
            trace.resolver = dns_result.resolver
            trace.cname_chain = list(dns_result.cname_chain)
            trace.dns_raw = dict(dns_result.raw)
        if nameservers is not None:
            trace.nameservers = list(nameservers["nameservers"])
            trace.dns_raw["NS"] = nameservers["raw"]
        domain = domains.get(target.registered_domain or "") if dns_result else None
        if domain is not None:
            if "transient" in domain:
                transient.append(tuple(domain["transient"]))  # type: ignore[arg-type]
            trace.registrar = domain.get("registrar")
            trace.registrar_abuse_email = domain.get("registrar_abuse_email")
            trace.rdap_answers.extend(domain.get("answers") or [])
        if dns_result is not None and dns_result.outcome != tdns.OK:
            trace.unknown(dns_result.outcome, tdns.REASONS[dns_result.outcome])
            return self._finish(trace, transient)

        for address in addresses:
            origin = origins.values.get(address) or {}
            network = networks.values.get(address) or {}
            if address in networks.transient:
                transient.append(networks.transient[address])
            if address in origins.transient:
                transient.append(origins.transient[address])
            origin = {} if origin.get("negative") else origin
            entry: dict[str, Any] = {
                "ip": address,
                "asn": origin.get("asn") or network.get("asn"),
                "prefix": (network.get("prefixes") or [origin.get("prefix")])[0],
                "rir": network.get("rir") or origin.get("rir"),
                "country": network.get("country") or origin.get("country"),
                "network_name": network.get("name"),
                "network_handle": network.get("handle"),
                "org": network.get("org"),
                "abuse_email": network.get("abuse_email"),
                "bgp_prefix": origin.get("prefix"),
            }
            if not _is_public(address):
                entry["note"] = "not a public address"
            elif network.get("negative"):
                entry["note"] = network.get("reason")
            trace.rdap_answers.extend(network.get("answers") or [])
            provider = self.providers.match(address, entry["asn"])
            entry["provider"] = provider.name if provider else None
            trace.addresses.append(entry)

        if not trace.addresses:
            trace.unknown(NO_HOST, "no address to trace")
            return self._finish(trace, transient)
        public = [a for a in trace.addresses if _is_public(a["ip"])]
        if not public:
            trace.unknown(NOT_PUBLIC, "the host resolves to private or reserved addresses only")
            return self._finish(trace, transient)
        primary = next((a for a in public if a["abuse_email"] or a["org"]), public[0])
        trace.hosting_asn = primary["asn"]
        trace.hosting_org = primary["org"]
        trace.hosting_abuse_email = primary["abuse_email"]
        if primary["country"]:
            trace.hosting_country = primary["country"]
            trace.country_source = "rdap" if networks.values.get(primary["ip"], {}).get(
                "country") else "asn"
        elif self.geoip is not None:
            trace.hosting_country = self.geoip.country(primary["ip"])
            trace.country_source = "geoip" if trace.hosting_country else None

        provider = self.providers.match(primary["ip"], primary["asn"])
        if provider is not None:
            if provider.country:
                trace.hosting_country, trace.country_source = provider.country, "provider"
            if provider.abuse_email:
                trace.hosting_abuse_email = provider.abuse_email
            if provider.kind == "cdn":
                trace.behind_cdn = True
                trace.cdn_name = provider.name  # the key routing rules name (cdn_names)
                trace.hosting_org = provider.display_name or provider.name
                trace.unknown(BEHIND_CDN, f"behind the CDN {trace.hosting_org}: the origin "
                              "server is hidden; the CDN is the contact")
                return self._finish(trace, transient)
            trace.hosting_org = provider.display_name or trace.hosting_org
        if not networks.values.get(primary["ip"]) or networks.values[primary["ip"]].get(
                "negative"):
            network = networks.values.get(primary["ip"]) or {}
            trace.unknown(network.get("outcome", NETWORK_UNKNOWN),
                          network.get("reason") or "the network of the address is unknown")
        elif not trace.hosting_abuse_email:
            trace.reason = "the registry names no abuse contact for the network"
        return self._finish(trace, transient)

    def _finish(self, trace: HostTrace, transient: list[tuple[str, int]]) -> HostTrace:
        if transient:
            trace.transient = "; ".join(dict.fromkeys(msg for msg, _ in transient))
            trace.retry_delay_ms = max(delay for _, delay in transient)
            trace.unreachable = all(isinstance(msg, UnreachableReason) for msg, _ in transient)
        return trace


def tracer_from_settings(config: TraceSection, *, redis: Any | None = None,
                         namespace: str = "hotline") -> Tracer:
    return Tracer(config, redis=redis, namespace=namespace)


__all__ = ["HostTrace", "TraceTarget", "Tracer", "Bootstrap"]
