"""Canonical form of a reported URL (placeholder until the WHATWG normaliser lands)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from pipeline.errors import RejectedURL

MAX_URL_BYTES = 8 * 1024


@dataclass(frozen=True)
class CanonicalURL:
    canonical: str
    dedup_key: str
    host: str
    host_unicode: str
    registered_domain: str | None
    kind: str
    userinfo: str | None
    confusable: bool


def canonicalise(raw: str) -> CanonicalURL:
    text = raw.strip()
    if len(text.encode()) > MAX_URL_BYTES:
        raise RejectedURL(f"longer than {MAX_URL_BYTES} bytes")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        raise RejectedURL("not an http or https URL")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise RejectedURL("the URL has no host")
    canonical = urlunsplit((parts.scheme.lower(), host, parts.path or "/", parts.query, ""))
    key = hashlib.sha256(canonical.encode()).hexdigest()
    return CanonicalURL(canonical, key, host, host, None, "domain", None, False)
