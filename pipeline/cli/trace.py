"""`hotline trace URL`: trace one URL now and print the result as JSON."""

from __future__ import annotations

import json
from typing import Any

import click

from pipeline.cli import main, settings_or_exit
from pipeline.core.errors import ConfigError, RejectedURL


@main.command("trace")
@click.argument("url")
@click.option("--raw", is_flag=True, help="Include the DNS and RDAP answers as received.")
def trace_command(url: str, raw: bool) -> None:
    """Trace where URL is hosted (DNS, RDAP, CDN, jurisdiction); print it as JSON."""
    from pipeline.adapters.tracing.tracer import Tracer, TraceTarget
    from pipeline.domain.urls import canonicaliser_for

    settings = settings_or_exit()
    try:
        canonical = canonicaliser_for(settings.urls)(url)
    except RejectedURL as exc:
        raise click.ClickException(f"not a URL that can be traced: {exc}") from None
    redis = None
    if settings.redis_url:
        import redis as redis_lib

        redis = redis_lib.Redis.from_url(settings.redis_url)
    try:
        tracer = Tracer(settings.trace, redis=redis, namespace=settings.redis.namespace)
    except ConfigError as exc:
        raise click.ClickException("; ".join(exc.problems)) from None
    try:
        target = TraceTarget(canonical.host, canonical.kind, canonical.registered_domain)
        result = tracer.trace([target])[target]
    finally:
        tracer.close()
    click.echo(json.dumps(describe(canonical.canonical, result, raw=raw), indent=2))


def describe(url: str, result: Any, *, raw: bool = False) -> dict[str, Any]:
    """The printed form of a trace (stable keys: scripts read it)."""
    data: dict[str, Any] = {
        "url": url,
        "host": result.host,
        "url_kind": result.url_kind,
        "outcome": result.outcome,
        "origin_unknown": result.origin_unknown,
        "reason": result.reason,
        "resolver": result.resolver,
        "cname_chain": result.cname_chain,
        "nameservers": result.nameservers,
        "addresses": [{k: a.get(k) for k in ("ip", "asn", "prefix", "rir", "country",
                                             "abuse_email", "org", "network_name",
                                             "provider", "note") if k in a}
                      for a in result.addresses],
        "registrar": result.registrar,
        "registrar_abuse_email": result.registrar_abuse_email,
        "cdn": result.cdn_name,
        "behind_cdn": result.behind_cdn,
        "hosting_country": result.hosting_country,
        "country_source": result.country_source,
        "hosting_asn": result.hosting_asn,
        "hosting_org": result.hosting_org,
        "hosting_abuse_email": result.hosting_abuse_email,
        "traced_at": result.started_at.isoformat(),
    }
    if result.transient:
        data["retry_later"] = {"reason": result.transient, "delay_ms": result.retry_delay_ms}
    if raw:
        data["dns_raw"] = result.dns_raw
        data["rdap_raw"] = result.rdap_answers
    return data
