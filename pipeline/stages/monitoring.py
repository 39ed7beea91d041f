"""Monitoring after notice: is the reported content still there?

Steps of `run_monitoring` (one scheduler run):
1. start watching every case that was notified (state `notified` -> `monitoring`),
2. record removal claims: a provider's confirmation through its notice link
   (`notices.confirmed_at`) or a partner hotline's status; a claim brings the next
   check forward but is never believed on its own,
3. check the URL of every case whose check is due (outside any transaction): DNS
   (does the name still exist?) and one HTTP(S) request of which only the status line
   and headers are read, never the body,
4. record each check; after `misses_to_remove` consecutive misses spaced
   `miss_spacing_minutes` apart the case is removed (at the first miss of the streak),
   unless the content was unreachable before the first notice (the trace found no
   reachable host and no check ever saw it): then it is closed as "gone before
   notice", its own outcome, never counted as a removal after notice; a host that
   answers with non-global addresses only is "inconclusive", never a miss, and after
   `inconclusive_to_analyst` such checks in a row the case goes to an analyst;
   content still there at another hosting (a partner said "moved", or the host's
   addresses changed completely) is traced and routed again.

Safety of the check: the name is resolved first, every address is checked, and the
connection goes to a checked address (no second resolution, so no DNS rebinding).
Only global addresses are contacted: loopback, private, link-local, CGNAT, multicast,
reserved, IPv4-mapped IPv6, NAT64 and 6to4 forms of those are refused, on the first
request and on every redirect. `monitoring.allow_loopback` lets tests use loopback.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import dns.exception
import dns.resolver
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pipeline.core.config import MonitoringSection
from pipeline.core.logs import log_context
from pipeline.core.messaging import TRACE, Enqueuer
from pipeline.store.audit import build_event
from pipeline.store.db import insert_ignoring_conflicts, is_postgresql
from pipeline.store.lifecycle import transition
from pipeline.store.models import Case, Notice
from pipeline.store.states import CaseState
from pipeline.store.takedown_models import TakedownCheck, TakedownWatch

log = logging.getLogger(__name__)

PRESENT, MISS, UNKNOWN = "present", "miss", "unknown"
# The host answers the hotline's resolver with non-global addresses only: the content
# may be served to everyone else (a provider can answer one resolver differently), so
# this is never a miss; after `inconclusive_to_analyst` in a row an analyst looks.
INCONCLUSIVE = "inconclusive"
# Trace outcomes saying the content was unreachable when the case was traced, before
# any notice: the host name did not exist, had no address, or only non-global ones.
UNREACHABLE_AT_TRACE = frozenset({"nxdomain", "no_answer", "not_public_address"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PARTNER_STATUSES = frozenset({"removed", "unavailable", "moved"})

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- addresses -----------------------------------------------------------------------


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ip.sixtofour
    return None


def address_allowed(address: str, *, allow_loopback: bool = False) -> bool:
    """May a check connect to this address? Only global unicast ones (and loopback when
    a test configuration says so), judged on the IPv4 address inside IPv6 forms too."""
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    inner = embedded_ipv4(ip)
    if inner is not None:
        assert isinstance(ip, ipaddress.IPv6Address)
        if ip.ipv4_mapped is None:
            # NAT64 and 6to4 reach the IPv4 address through a gateway: never loopback.
            return _is_global(inner)
        ip = inner
    if allow_loopback and ip.is_loopback:
        return True
    return _is_global(ip)


def _is_global(ip: IPAddress) -> bool:
    return ip.is_global and not ip.is_multicast and not ip.is_reserved and not (
        ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_private
    )


# --- DNS -----------------------------------------------------------------------------


@dataclass
class Resolution:
    addresses: list[str]
    outcome: str = "ok"  # ok, nxdomain, no_address, error


def make_resolver(settings: MonitoringSection) -> Callable[[str], Resolution]:
    """A resolver of A and AAAA answers through dnspython (the configured server, or
    the system's)."""

    resolver = dns.resolver.Resolver(configure=settings.resolver is None)
    if settings.resolver is not None:
        host, _, port = settings.resolver.rpartition(":")
        resolver.nameservers = [host.strip("[]")]
        resolver.port = int(port)
    resolver.lifetime = settings.timeout_seconds
    resolver.timeout = settings.timeout_seconds

    def resolve(name: str) -> Resolution:
        addresses: list[str] = []
        nxdomain = 0
        errors = 0
        for rdtype in ("A", "AAAA"):
            try:
                answer = resolver.resolve(name, rdtype, search=False)
                addresses.extend(r.to_text() for r in answer)
            except dns.resolver.NXDOMAIN:
                nxdomain += 1
            except dns.resolver.NoAnswer:
                pass
            except (dns.exception.DNSException, OSError):
                errors += 1
        if addresses:
            return Resolution(addresses)
        if nxdomain:
            return Resolution([], "nxdomain")
        if errors:
            return Resolution([], "error")
        return Resolution([], "no_address")

    return resolve


# --- the check -----------------------------------------------------------------------


@dataclass
class CheckResult:
    outcome: str  # present, miss, unknown
    reason: str
    http_status: int | None = None
    address: str | None = None  # the server address asked last
    redirects: int = 0
    addresses: list[str] = field(default_factory=list)  # global addresses of the host
    bytes_read: int = 0  # bytes read from servers: status lines and headers only
    detail: str | None = None


class _Refused(Exception):
    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(detail)


def check_url(
    url: str,
    settings: MonitoringSection,
    *,
    resolve: Callable[[str], Resolution] | None = None,
) -> CheckResult:
    """Check once whether `url` still serves content. Never raises for network trouble:
    the result says `unknown` with a reason."""
    resolve = resolve or make_resolver(settings)
    redirects = 0
    total_read = 0
    first_addresses: list[str] | None = None
    current = url
    while True:
        parts = urlsplit(current)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            return CheckResult(UNKNOWN, "unsupported_url", redirects=redirects,
                               bytes_read=total_read)
        literal = _literal(host)
        resolution = Resolution([literal]) if literal is not None else resolve(
            host.rstrip("."))
        if not resolution.addresses:
            if redirects:
                return CheckResult(UNKNOWN, f"redirect_{resolution.outcome}",
                                   redirects=redirects, bytes_read=total_read)
            outcome = UNKNOWN if resolution.outcome == "error" else MISS
            return CheckResult(outcome, f"dns_{resolution.outcome}", bytes_read=total_read)
        allowed = [a for a in resolution.addresses
                   if address_allowed(a, allow_loopback=settings.allow_loopback)]
        if first_addresses is None:
            first_addresses = allowed
        if not allowed:
            if redirects:
                log.warning("A takedown check refused a redirect to a non-global address.")
                return CheckResult(UNKNOWN, "redirect_refused", redirects=redirects,
                                   bytes_read=total_read, addresses=first_addresses,
                                   detail="redirect to a non-global address")
            # Not reachable from here, but maybe from everywhere else: no verdict.
            return CheckResult(INCONCLUSIVE, "no_global_address", redirects=redirects,
                               bytes_read=total_read,
                               detail=f"{len(resolution.addresses)} non-global addresses")
        try:
            status, location, address, read = _ask(parts, allowed, settings)
        except _Refused as exc:
            outcome = MISS if exc.reason == "connection_refused" and not redirects else UNKNOWN
            return CheckResult(outcome, exc.reason, redirects=redirects, bytes_read=total_read,
                               addresses=first_addresses, detail=exc.detail)
        total_read += read
        if status in REDIRECT_STATUSES and location:
            if redirects >= settings.max_redirects:
                return CheckResult(UNKNOWN, "too_many_redirects", status, address, redirects,
                                   first_addresses, total_read)
            redirects += 1
            current = urljoin(current, location)
            continue
        if 200 <= status < 300:
            outcome = PRESENT
        elif status in settings.miss_statuses:
            outcome = MISS
        else:
            outcome = UNKNOWN
        return CheckResult(outcome, f"http_{status}", status, address, redirects,
                           first_addresses, total_read)


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _target(parts: Any) -> str:
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return path + ("?" + query if query else "")


def _ask(parts: Any, addresses: Sequence[str], settings: MonitoringSection
         ) -> tuple[int, str | None, str, int]:
    """One request to the first checked address that answers: (status, Location,
    address, bytes read). Reads the status line and headers only."""
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    host = parts.hostname
    last: _Refused = _Refused("connection_failed", "no address answered")
    refused = 0
    for address in addresses:
        try:
            sock = socket.create_connection((address, port), timeout=settings.timeout_seconds)
        except ConnectionRefusedError:
            refused += 1
            last = _Refused("connection_refused", f"{address} refused the connection")
            continue
        except TimeoutError:
            last = _Refused("timeout", f"{address} did not answer in time")
            continue
        except OSError as exc:
            last = _Refused("connection_failed", f"{address}: {exc.strerror or exc}")
            continue
        try:
            if tls:
                # Only the status of the URL is wanted, nothing is sent but the request
                # line: a certificate that does not verify still serves the content.
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                sock = context.wrap_socket(sock, server_hostname=host)
            host_header = host if parts.port is None else f"{host}:{parts.port}"
            if ":" in (host or "") and not host_header.startswith("["):
                host_header = f"[{host}]" if parts.port is None else f"[{host}]:{parts.port}"
            request = (
                f"GET {_target(parts)} HTTP/1.1\r\nHost: {host_header}\r\n"
                f"User-Agent: {settings.user_agent}\r\nAccept: */*\r\n"
                "Connection: close\r\n\r\n"
            )
            sock.sendall(request.encode("ascii", "replace"))
            head = read_head(sock, settings.max_header_bytes)
            status, location = parse_head(head)
            return status, location, address, len(head)
        except TimeoutError:
            last = _Refused("timeout", f"{address} did not answer in time")
        except ssl.SSLError as exc:
            last = _Refused("tls_error", f"{address}: {exc.reason or exc}")
        except ValueError as exc:
            last = _Refused("bad_response", f"{address}: {exc}")
        except OSError as exc:
            last = _Refused("connection_failed", f"{address}: {exc.strerror or exc}")
        finally:
            sock.close()
    if refused == len(addresses):
        return_reason = _Refused("connection_refused", last.detail)
        raise return_reason
    raise last


def read_head(sock: socket.socket, limit: int) -> bytes:
    """Read the status line and headers, never a byte more: look at the waiting bytes
    without taking them, then take exactly up to the blank line."""
    head = b""
    while True:
        if isinstance(sock, ssl.SSLSocket):
            # TLS records cannot be peeked; read one byte at a time (headers are small).
            chunk = sock.recv(1)
            if not chunk:
                raise ValueError("the server closed the connection before the headers ended")
            head += chunk
            if head.endswith(b"\r\n\r\n") or head.endswith(b"\n\n"):
                return head
        else:
            peeked = sock.recv(4096, socket.MSG_PEEK)
            if not peeked:
                raise ValueError("the server closed the connection before the headers ended")
            window = head[-3:] + peeked
            end = _end_of_head(window)
            take = len(peeked) if end is None else end - len(head[-3:])
            head += _recv_exactly(sock, take)
            if end is not None:
                return head
        if len(head) > limit:
            raise ValueError(f"headers longer than {limit} bytes")


def _end_of_head(data: bytes) -> int | None:
    ends = [i + 4 for i in [data.find(b"\r\n\r\n")] if i >= 0]
    ends += [i + 2 for i in [data.find(b"\n\n")] if i >= 0]
    return min(ends) if ends else None


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ValueError("the connection closed while reading headers")
        data += chunk
    return data


def parse_head(head: bytes) -> tuple[int, str | None]:
    lines = head.decode("latin-1").splitlines()
    if not lines:
        raise ValueError("empty response")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError("not an HTTP status line")
    location = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "location":
            location = value.strip()
    return int(parts[1]), location


# --- the schedule ---------------------------------------------------------------------


def start_watching(session: Session, *, now: datetime, limit: int = 10_000) -> list[int]:
    """Move notified cases into monitoring, with their first check due now."""
    query = select(Case).where(Case.state == CaseState.NOTIFIED).order_by(Case.id).limit(limit)
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    cases = list(session.execute(query).scalars())
    if not cases:
        return []
    insert_ignoring_conflicts(
        session, TakedownWatch.__table__,
        [{"case_id": c.id, "started_at": now, "next_check_at": now, "checks": 0,
          "misses": 0, "baseline_addresses": []} for c in cases],
        conflict_columns=["case_id"], returning=[TakedownWatch.case_id],
    )
    for case in cases:
        transition(session, case, CaseState.MONITORING, at=now)
        log.info("Case %s is monitored until its content is gone.", case.id,
                 extra={"case_id": case.id})
    return [c.id for c in cases]


def record_claim(session: Session, case: Case, *, status: str, by: str, at: datetime
                 ) -> bool:
    """Record that someone says the content is gone (or moved); the next check is
    brought forward to verify it. Returns False when there is nothing to record."""
    if status not in PARTNER_STATUSES:
        raise ValueError(f"status must be one of {sorted(PARTNER_STATUSES)}")
    watch = session.get(TakedownWatch, case.id)
    if watch is None or case.state != CaseState.MONITORING:
        return False
    if watch.claimed_at is not None and watch.claim_status == status:
        return False
    watch.claimed_at, watch.claimed_by, watch.claim_status = at, by, status
    watch.next_check_at = min(watch.next_check_at, at)
    session.add(build_event(case, actor=by, action="removal_claimed", at=at,
                            data={"status": status}, case_id=case.id))
    log.info("Case %s: %s says the content is %s; a check will verify it.", case.id, by,
             status, extra={"case_id": case.id})
    return True


def record_partner_status(session: Session, case_id: int, status: str, *, hotline: str,
                          at: datetime) -> bool:
    """A partner hotline's status of the content (removed, unavailable, moved)."""
    case = session.get(Case, case_id)
    if case is None:
        return False
    return record_claim(session, case, status=status, by=f"hotline:{hotline}", at=at)


def record_confirmations(session: Session, *, now: datetime) -> int:
    """Claims from providers that confirmed removal through their notice link."""
    rows = session.execute(
        select(Case, Notice.destination, Notice.confirmed_at)
        .join(TakedownWatch, TakedownWatch.case_id == Case.id)
        .join(Notice, Notice.case_id == Case.id)
        .where(Case.state == CaseState.MONITORING, TakedownWatch.claimed_at.is_(None),
               Notice.confirmed_at.is_not(None), Notice.destination_kind != "police")
        .order_by(Case.id, Notice.confirmed_at)
    ).all()
    done: set[int] = set()
    for case, destination, confirmed_at in rows:
        if case.id in done:
            continue
        done.add(case.id)
        record_claim(session, case, status="removed", by=f"notice:{destination}",
                     at=confirmed_at or now)
    return len(done)


def due_checks(session: Session, *, now: datetime, limit: int) -> list[tuple[int, str]]:
    return [
        (case_id, url) for case_id, url in session.execute(
            select(Case.id, Case.canonical_url)
            .join(TakedownWatch, TakedownWatch.case_id == Case.id)
            .where(Case.state == CaseState.MONITORING, TakedownWatch.next_check_at <= now)
            .order_by(TakedownWatch.next_check_at)
            .limit(limit)
        ).all()
    ]


def apply_check(
    session: Session, case: Case, watch: TakedownWatch, result: CheckResult, *,
    now: datetime, settings: MonitoringSection,
) -> str | None:
    """Record one check and its consequence. Returns "removed", "gone_before_notice",
    "inconclusive" (to an analyst), "moved" or None."""
    watch.checks += 1
    watch.last_checked_at, watch.last_outcome = now, result.outcome
    watch.inconclusive = (watch.inconclusive or 0) + 1 if result.outcome == INCONCLUSIVE else 0
    consequence = None
    if result.outcome == MISS:
        if watch.misses == 0:
            watch.first_miss_at = now
        watch.misses += 1
        watch.next_check_at = now + timedelta(minutes=settings.miss_spacing_minutes)
    elif result.outcome == PRESENT:
        watch.misses, watch.first_miss_at = 0, None
        watch.next_check_at = now + timedelta(minutes=settings.recheck_minutes)
        baseline = set(watch.baseline_addresses or [])
        seen = set(result.addresses)
        changed = bool(baseline and seen and not baseline & seen and not case.behind_cdn)
        if watch.claim_status == "moved" or changed:
            consequence = "moved"
        else:
            watch.baseline_addresses = sorted(baseline | seen)
    else:
        # Neither a miss nor a sighting: it does not break a streak of misses.
        spacing = settings.miss_spacing_minutes if watch.misses else settings.recheck_minutes
        watch.next_check_at = now + timedelta(minutes=spacing)
    session.add(TakedownCheck(
        case_id=case.id, at=now, outcome=result.outcome, reason=result.reason,
        http_status=result.http_status, address=result.address, redirects=result.redirects,
        misses=watch.misses, detail=result.detail,
    ))
    if watch.misses >= settings.misses_to_remove and _gone_before_notice(case, watch):
        gone_at = watch.first_miss_at or now
        case.gone_before_notice_at = gone_at
        transition(session, case, CaseState.CLOSED, at=now, data={
            "outcome": "gone_before_notice", "trace_outcome": case.trace_outcome,
            "checks": watch.checks, "misses": watch.misses, "reason": result.reason,
            "first_miss_at": gone_at.isoformat()})
        log.info("Case %s: the content was unreachable before the first notice (trace: "
                 "%s); closed as gone before notice, not removed.", case.id,
                 case.trace_outcome, extra={"case_id": case.id})
        consequence = "gone_before_notice"
    elif watch.inconclusive >= settings.inconclusive_to_analyst:
        transition(session, case, CaseState.AWAITING_ASSESSMENT, at=now, data={
            "reason": "takedown_inconclusive", "checks": watch.checks,
            "inconclusive": watch.inconclusive, "detail": result.detail})
        session.execute(delete(TakedownWatch).where(TakedownWatch.case_id == case.id))
        log.warning("Case %s: %d checks in a row could not tell whether the content is "
                    "there (non-global addresses only); it goes to an analyst.", case.id,
                    watch.inconclusive, extra={"case_id": case.id})
        consequence = "inconclusive"
    elif watch.misses >= settings.misses_to_remove:
        removed_at = watch.first_miss_at or now
        transition(session, case, CaseState.REMOVED, at=removed_at, data={
            "checks": watch.checks, "misses": watch.misses, "reason": result.reason,
            "confirmed_at": now.isoformat(), "claimed_by": watch.claimed_by,
        })
        log.info("Case %s: content removed (%d consecutive misses, last %s).", case.id,
                 watch.misses, result.reason, extra={"case_id": case.id})
        consequence = "removed"
    elif consequence == "moved":
        transition(session, case, CaseState.TRACED, at=now, data={
            "reason": "partner_said_moved" if watch.claim_status == "moved"
            else "addresses_changed"})
        session.execute(delete(TakedownWatch).where(TakedownWatch.case_id == case.id))
        log.info("Case %s: content moved; it is traced and routed again.", case.id,
                 extra={"case_id": case.id})
    return consequence


def _gone_before_notice(case: Case, watch: TakedownWatch) -> bool:
    """The content was unreachable before the first notice: the trace found no
    reachable host, and no check since has seen the content (no baseline)."""
    return case.trace_outcome in UNREACHABLE_AT_TRACE and not watch.baseline_addresses


def run_monitoring(
    session_factory: Any,
    enqueuer: Enqueuer,
    settings: MonitoringSection,
    *,
    clock: Any,
    resolve: Callable[[str], Resolution] | None = None,
) -> dict[str, int]:
    """One scheduled run (see the module's docstring for the steps)."""
    counts = {"started": 0, "claims": 0, "checked": 0, "removed": 0, "moved": 0,
              "gone_before_notice": 0, "inconclusive": 0}
    with session_factory.begin() as session:
        now = clock.now()
        counts["started"] = len(start_watching(session, now=now))
        counts["claims"] = record_confirmations(session, now=now)
    with session_factory() as session:
        due = due_checks(session, now=clock.now(), limit=settings.batch_size)
    if not due:
        return counts
    resolve = resolve or make_resolver(settings)
    def check(item: tuple[int, str]) -> CheckResult:
        with log_context(case_id=item[0]):  # a check's own lines name its case
            return check_url(item[1], settings, resolve=resolve)

    with ThreadPoolExecutor(max_workers=min(8, len(due))) as pool:
        results = list(pool.map(check, due))
    moved: list[int] = []
    for (case_id, _), result in zip(due, results, strict=True):
        with session_factory.begin() as session:
            query = select(Case).where(Case.id == case_id, Case.state == CaseState.MONITORING)
            if is_postgresql(session):
                query = query.with_for_update()
            case = session.execute(query).scalar_one_or_none()
            watch = session.get(TakedownWatch, case_id) if case is not None else None
            if case is None or watch is None:
                continue
            consequence = apply_check(session, case, watch, result, now=clock.now(),
                                      settings=settings)
        counts["checked"] += 1
        if consequence in ("removed", "gone_before_notice", "inconclusive"):
            counts[consequence] += 1
        elif consequence == "moved":
            moved.append(case_id)
    counts["moved"] = len(moved)
    # Interface assumed of the tracing stage: a case put back in `traced` and sent to
    # TRACE is traced again; an assessed case then goes on to routing.
    enqueuer.send(TRACE, moved)
    return counts
