"""Caches of DNS and RDAP answers: in Redis (shared by every worker) with a small
in-process layer in front, or in-process only when there is no Redis.

`PrefixCache` keeps a value per network prefix, so an address inside a prefix already
known costs no question: a lookup asks, in one round trip, for every prefix length the
cache has seen.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from pipeline.core.counters import RDAP_CACHE

# How many entries the in-process layer keeps in front of Redis, the most recently
# used. Registry answers are several KB each as Python objects: kept for their 30 s
# alone, they and the tracer's recent traces took a worker from 145 to 250 MB over
# 100,000 reports (measured); bounded, it stays under 200 MB. The hosts and networks
# reported often stay; the rest is one round trip away in Redis. Without Redis the
# layer is the whole cache and keeps up to `MemoryCache`'s default.
LOCAL_ITEMS_IN_FRONT_OF_REDIS = 4_096


class MemoryCache:
    """A thread-safe LRU dictionary whose entries expire (keys: strings in the trace
    caches, `Target`s in the tracer's recent traces)."""

    # How often expired entries are swept out (they would otherwise stay until the
    # dictionary is full: measured, a worker grew past 250 MB over 100,000 reports).
    SWEEP_SECONDS = 5.0

    def __init__(self, max_items: int = 200_000):
        self.max_items = max_items
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[Hashable]:
        """The keys, least recently used first (a copy: safe while others write)."""
        with self._lock:
            return iter(list(self._data))

    def _sweep(self, now: float) -> None:
        if now - self._swept < self.SWEEP_SECONDS:
            return
        self._swept = now
        for key in [k for k, (until, _) in self._data.items() if until <= now]:
            del self._data[key]

    def get_many(self, keys: Sequence[Hashable]) -> list[Any | None]:
        now = time.monotonic()
        out: list[Any | None] = []
        with self._lock:
            for key in keys:
                item = self._data.get(key)
                if item is None or item[0] <= now:
                    out.append(None)
                else:
                    out.append(item[1])
                    self._data.move_to_end(key)
        return out

    def set_many(self, items: Mapping[Any, tuple[Any, float]]) -> None:
        now = time.monotonic()
        with self._lock:
            for key, (value, ttl) in items.items():
                if ttl <= 0:
                    continue
                self._data[key] = (now + ttl, value)
                self._data.move_to_end(key)
            self._sweep(now)
            while len(self._data) > self.max_items:
                self._data.popitem(last=False)

    def add_to_set(self, key: str, members: Iterable[str]) -> None:
        with self._lock:
            current = self._data.get(key)
            values = set(current[1]) if current else set()
            values.update(members)
            self._data[key] = (float("inf"), values)

    def members(self, key: str) -> set[str]:
        with self._lock:
            current = self._data.get(key)
            return set(current[1]) if current else set()


def _dumps(value: Any) -> bytes:
    """A value as JSON for Redis: orjson (profiled: the stdlib's encoder and decoder of
    the registry answers were about 2% of a worker), the stdlib for what orjson
    refuses (keys that are not strings, integers wider than 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()


def _loads(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except ValueError:
        return json.loads(raw)


class Cache:
    """JSON values by key: Redis when given (shared), always a local layer in front."""

    def __init__(self, redis: Any | None = None, *, namespace: str = "hotline",
                 local_seconds: float = 30.0):
        self.redis = redis
        self.namespace = namespace
        self.local = (MemoryCache(LOCAL_ITEMS_IN_FRONT_OF_REDIS) if redis is not None
                      else MemoryCache())
        self.local_seconds = local_seconds
        self._sets: dict[str, tuple[float, set[str]]] = {}
        self._claims: dict[str, float] = {}
        self._claims_lock = threading.Lock()

    def claim(self, key: str, seconds: float) -> bool:
        """Take `key` for `seconds` unless someone holds it (every worker through Redis,
        else this process's threads): who asks a registry for a network while the
        others wait for the answer in the cache."""
        if self.redis is not None:
            return bool(self.redis.set(self._key(key), "1", nx=True,
                                       px=max(1, int(seconds * 1000))))
        now = time.monotonic()
        with self._claims_lock:
            if self._claims.get(key, 0.0) > now:
                return False
            self._claims[key] = now + seconds
            return True

    def release(self, key: str) -> None:
        if self.redis is not None:
            self.redis.delete(self._key(key))
        else:
            with self._claims_lock:
                self._claims.pop(key, None)

    def _key(self, key: str) -> str:
        return f"{self.namespace}:trace:{key}"

    def get_many(self, keys: list[str]) -> list[Any | None]:
        if not keys:
            return []
        values = self.local.get_many(keys)
        if self.redis is None:
            return values
        missing = [i for i, v in enumerate(values) if v is None]
        if missing:
            found = self.redis.mget([self._key(keys[i]) for i in missing])
            refill: dict[str, tuple[Any, float]] = {}
            for i, raw in zip(missing, found, strict=True):
                if raw is not None:
                    values[i] = _loads(raw)
                    refill[keys[i]] = (values[i], self.local_seconds)
            self.local.set_many(refill)
        return values

    def set_many(self, items: dict[str, tuple[Any, float]]) -> None:
        items = {k: v for k, v in items.items() if v[1] > 0}
        if not items:
            return
        self.local.set_many({k: (v, min(ttl, self.local_seconds) if self.redis else ttl)
                             for k, (v, ttl) in items.items()})
        if self.redis is not None:
            pipe = self.redis.pipeline(transaction=False)
            for key, (value, ttl) in items.items():
                pipe.set(self._key(key), _dumps(value), ex=max(1, int(ttl)))
            pipe.execute()

    def add_to_set(self, key: str, members: Iterable[str]) -> None:
        members = list(members)
        self.local.add_to_set(key, members)
        if self.redis is not None and members:
            self.redis.sadd(self._key(key), *members)
            self._sets.pop(key, None)

    def members(self, key: str, *, fresh_for: float = 1.0) -> set[str]:
        if self.redis is None:
            return self.local.members(key)
        cached = self._sets.get(key)
        now = time.monotonic()
        if fresh_for > 0 and cached and cached[0] > now:  # fresh_for=0: read it now
            return cached[1]
        values = {m.decode() if isinstance(m, bytes) else m
                  for m in self.redis.smembers(self._key(key))}
        values |= self.local.members(key)
        self._sets[key] = (now + fresh_for, values)
        return values


@functools.lru_cache(maxsize=262_144)
def _parsed(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return ip.version, int(ip)


def network_of(address: str, length: int) -> str:
    """'185.1.2.3', 16 -> '185.1.0.0/16' (fast: the lookups of every batch use it)."""
    version, value = _parsed(address)
    bits = 32 if version == 4 else 128
    masked = value & (((1 << bits) - 1) ^ ((1 << (bits - length)) - 1))
    base = ipaddress.IPv4Address(masked) if version == 4 else ipaddress.IPv6Address(masked)
    return f"{base}/{length}"


class PrefixCache:
    """A value per network prefix (`kind` names the family: rdap networks, origins)."""

    def __init__(self, cache: Cache, kind: str):
        self.cache = cache
        self.kind = kind

    def _lengths_key(self, version: int) -> str:
        return f"{self.kind}:lengths:v{version}"

    def _key(self, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
        return f"{self.kind}:{network}"

    def lookup_many(self, addresses: Iterable[str], *, fresh: bool = False,
                    count_misses: bool = True) -> dict[str, Any | None]:
        """The value of the longest known prefix holding each address (None: unknown).
        `fresh`: read the known prefix lengths now, not as cached for a second (a
        worker waiting for another's answer, which may be of a new length).
        `count_misses=False`: a look that asks nobody on a miss (the miss is counted
        where the question is asked)."""
        addresses = list(dict.fromkeys(addresses))
        fresh_for = 0.0 if fresh else 1.0
        lengths = {v: sorted((int(x) for x in self.cache.members(self._lengths_key(v),
                                                                 fresh_for=fresh_for)),
                             reverse=True) for v in (4, 6)}
        plan: list[tuple[str, list[str]]] = []
        keys: list[str] = []
        for address in addresses:
            version = _parsed(address)[0]
            candidates = [f"{self.kind}:{network_of(address, n)}" for n in lengths[version]]
            plan.append((address, candidates))
            keys.extend(candidates)
        values = dict(zip(keys, self.cache.get_many(keys), strict=True)) if keys else {}
        out: dict[str, Any | None] = {}
        for address, candidates in plan:
            out[address] = next((values[k] for k in candidates if values.get(k) is not None),
                                None)
        if self.kind == "net":  # the RDAP network cache
            hits = sum(1 for v in out.values() if v is not None)
            RDAP_CACHE.labels("hit").inc(hits)
            if count_misses:
                RDAP_CACHE.labels("miss").inc(len(out) - hits)
        return out

    def store(self, prefixes: Iterable[str], value: Any, ttl: float) -> None:
        networks = [ipaddress.ip_network(p, strict=False) for p in prefixes]
        if not networks or ttl <= 0:
            return
        for version in (4, 6):
            lengths = {str(n.prefixlen) for n in networks if n.version == version}
            if lengths:
                self.cache.add_to_set(self._lengths_key(version), lengths)
        self.cache.set_many({self._key(n): (value, ttl) for n in networks})
