"""`hotline url URL...`: how the system reads a URL (canonical form, key, host, kind)."""

from __future__ import annotations

import json
import sys

import click

from pipeline.cli import main, settings_or_exit
from pipeline.core.errors import RejectedURL
from pipeline.domain.urls import canonicaliser_for


@main.command("url")
@click.argument("urls", nargs=-1, required=True)
def url_command(urls: tuple[str, ...]) -> None:
    """Show how each URL is read: one JSON object per URL. Exit status 1 if any URL
    would be rejected (the object then has `input` and `error`)."""
    settings = settings_or_exit()
    canonicalise = canonicaliser_for(settings.urls)
    rejected = False
    for raw in urls:
        try:
            url = canonicalise(raw)
        except RejectedURL as exc:
            rejected = True
            click.echo(json.dumps({"input": raw, "error": str(exc)}, ensure_ascii=False))
            continue
        click.echo(json.dumps({
            "input": raw,
            "canonical": url.canonical,
            "dedup_key": url.dedup_key,
            "host": url.host,
            "host_unicode": url.host_unicode,
            "registered_domain": url.registered_domain,
            "kind": url.kind,
            "port": url.port,
            "userinfo": url.userinfo,
            "confusable": url.confusable,
            "notes": list(url.notes),
        }, ensure_ascii=False))
    if rejected:
        sys.exit(1)
