"""Canonical form of a reported URL: the host a browser would contact, and one key per
piece of content.

`canonicalise(raw)` is a pure function. Its steps:
1. strip surrounding white space; refuse empty, over-long or non-text input,
2. parse with the WHATWG URL Standard (the `ada-url` parser, as browsers do): the
   scheme and host are lower-cased, IPv4 in decimal, octal and hex forms becomes
   dotted decimal, IPv6 is compressed, international names become A-labels (UTS 46),
   percent-encoded hosts are decoded, default ports dropped, dot segments resolved,
3. refuse schemes that are not configured (javascript:, data:, file:, mailto: ...)
   and A-labels that are not valid Punycode of a valid label (as the Standard does),
4. drop the fragment and the user info (the user info is returned as evidence),
5. normalise percent-encoding in path and query (unreserved characters decoded, hex
   digits upper-case, characters that must be escaped escaped) and drop configured
   tracking parameters (utm_*, fbclid, ...) and an empty query,
6. derive the facts kept on the report and case: host (A-label, no trailing dot) and
   its Unicode form, registered domain (public suffix list with private suffixes, so
   evil.blogspot.com is its own site), kind (domain, ip, onion, redirector) and a
   flag for mixed-script or confusable hosts,
7. compute the dedup key: SHA-256 of the canonical URL with a trailing dot on the
   host ignored (and, if configured, the scheme and a leading www.).

Anything that cannot be a URL we process raises `RejectedURL` with a reason an
analyst can read; nothing else escapes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import ada_url
import tldextract
from confusable_homoglyphs import categories

from pipeline.core.config import UrlsSection
from pipeline.core.errors import RejectedURL

if TYPE_CHECKING:
    from pipeline.core.config import UrlsSection

MAX_URL_BYTES = 8 * 1024

KIND_DOMAIN, KIND_IP, KIND_ONION, KIND_REDIRECTOR = "domain", "ip", "onion", "redirector"


@dataclass(frozen=True)
class CanonicalURL:
    canonical: str  # the URL without fragment, user info, tracking parameters
    dedup_key: str  # SHA-256 hex of the form two reports of one content share
    host: str  # A-label (or IP address, IPv6 without brackets), no trailing dot
    host_unicode: str  # for display
    registered_domain: str | None  # None for IP addresses and bare public suffixes
    kind: str  # domain, ip, onion, redirector
    userinfo: str | None  # "user:password" as given: evidence, never in the key
    confusable: bool  # mixed scripts in a label, or a label that looks Latin but is not
    port: int | None = None  # a port other than the scheme's default
    notes: tuple[str, ...] = field(default=())  # what normalisation changed, for people


@dataclass(frozen=True)
class UrlRules:
    """The configurable part of canonicalisation (from the `urls` config section)."""

    max_url_bytes: int = MAX_URL_BYTES
    schemes: frozenset[str] = frozenset({"http", "https"})
    assume_http: bool = True
    strip_params: tuple[str, ...] = ()
    redirector_hosts: frozenset[str] = frozenset()
    dedup_ignore_scheme: bool = False
    dedup_ignore_www: bool = False

    @classmethod
    def from_settings(cls, section: UrlsSection) -> UrlRules:
        return cls(
            max_url_bytes=section.max_url_bytes,
            schemes=frozenset(section.schemes),
            assume_http=section.assume_http,
            strip_params=tuple(p.lower() for p in section.strip_params),
            redirector_hosts=frozenset(section.redirector_hosts),
            dedup_ignore_scheme=section.dedup_ignore_scheme,
            dedup_ignore_www=section.dedup_ignore_www,
        )

    @property
    def strip_pattern(self) -> re.Pattern[str] | None:
        return _param_pattern(self.strip_params)


@lru_cache(maxsize=32)
def _param_pattern(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


@lru_cache(maxsize=1)
def default_rules() -> UrlRules:

    return UrlRules.from_settings(UrlsSection())


_configured: UrlRules | None = None


def configure(section: UrlsSection) -> None:
    """Make `section` the rules `canonicalise` uses when given none (the normalise
    actor calls this with its process's settings)."""
    global _configured
    if _configured is None or _configured != UrlRules.from_settings(section):
        _configured = UrlRules.from_settings(section)


def canonicaliser_for(section: UrlsSection) -> _Canonicaliser:
    """`canonicalise` bound to configured rules (for the normalise stage and the CLI)."""
    return _Canonicaliser(UrlRules.from_settings(section))


@dataclass(frozen=True)
class _Canonicaliser:
    rules: UrlRules

    def __call__(self, raw: str) -> CanonicalURL:
        return canonicalise(raw, self.rules)


# The suffix list bundled with tldextract, private suffixes included; never fetched.
_EXTRACT = tldextract.TLDExtract(
    suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True
)



def warm_up() -> None:
    """Build the suffix list's lookup tree now (a worker does at start), not inside
    the first batch of reports (measured: most of a second)."""
    _EXTRACT.extract_str("example.com")


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_HOST_AND_PORT = re.compile(r"^[^/?#]*\.[^/?#:]*:\d*(?:[/?#]|$)")
_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
# White space and C0 controls around the URL (the URL Standard strips the latter too).
_SURROUNDING_SPACE = re.compile(r"^[\x00-\x20\s]+|[\x00-\x20\s]+$")
_HOSTLIKE_START = re.compile(r"^(?://)?[\w\[]", re.UNICODE)

_SCHEME_REASONS = {
    "javascript": "javascript: URLs are scripts, not addresses of content",
    "data": "data: URLs carry their content inline; there is no host to trace",
    "file": "file: URLs name a file on the reporter's own computer",
    "blob": "blob: URLs exist only inside one browser tab",
    "about": "about: URLs are pages of the browser itself",
    "mailto": "mailto: URLs are e-mail addresses, not addresses of content",
}

# Percent-encoding: unreserved characters (RFC 3986) are decoded, reserved ones are
# left as they are (servers may tell "/" from "%2F"), everything else is escaped.
_NOT_PLAIN = re.compile(r"%[0-9A-Fa-f]{2}|[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

# Script combinations a single label may legitimately mix (UTS 39, highly restrictive).
_ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
_NEUTRAL_SCRIPTS = frozenset({"COMMON", "INHERITED"})
# Letters of other scripts that look like Latin letters: for Cyrillic the set
# Chromium's IDN spoof checker uses; for Greek the lower-case letters shaped like
# Latin ones. A label written only in these is a whole-script look-alike.
_LATIN_LOOK_ALIKES = {
    "CYRILLIC": frozenset("асԁеһіјӏорԗԛѕԝхуъЬҽпгѵѡ"),
    "GREEK": frozenset("αικνορτυχ"),
}


def _escape(match: re.Match[str]) -> str:
    text = match.group(0)
    if len(text) == 3:  # %XX
        char = chr(int(text[1:], 16))
        return char if char in _UNRESERVED else text.upper()
    return "".join(f"%{b:02X}" for b in text.encode("utf-8"))


def normalise_encoding(text: str) -> str:
    """Percent-encoding in one canonical form, so equal URLs compare equal."""
    return _NOT_PLAIN.sub(_escape, text)


@lru_cache(maxsize=16_384)
def _valid_a_label(label: str) -> bool:
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except (UnicodeError, ValueError, IndexError):
        return False
    if not decoded or decoded.isascii():
        return False
    again = ada_url.idna_to_ascii(decoded)
    return (again.decode() if isinstance(again, bytes) else again) == label


def _check_a_labels(hostname: str) -> None:
    """Refuse A-labels that are not Punycode of a valid label (UTS 46 ToUnicode, which
    the URL Standard applies and the parser does not)."""
    if "xn--" not in hostname:
        return
    for label in hostname.split("."):
        if label.startswith("xn--") and not _valid_a_label(label):
            raise RejectedURL(
                f"the host {hostname} has a label {label} that is not a valid "
                "international (IDNA) name; a browser refuses it"
            )


def _diagnose(text: str) -> str:
    """A readable reason why the WHATWG parser refused `text` (a URL with a scheme)."""
    rest = text.split(":", 1)[1].lstrip("/\\")
    authority = re.split(r"[/\\?#]", rest, maxsplit=1)[0]
    hostport = authority.rsplit("@", 1)[-1]
    if not hostport:
        return "not a valid URL: it has no host"
    if hostport.startswith("["):
        return f"not a valid URL: {hostport.split(']')[0]}] is not a valid IPv6 address"
    host, _, port = hostport.partition(":")
    if port and (not port.isdigit() or int(port) > 65535):
        return f"not a valid URL: the port {port} is not a number from 0 to 65535"
    if not host:
        return "not a valid URL: it has no host"
    if re.search(r"[\x00-\x20#%/<>?@\[\\\]^|\x7f]", host):
        return f"not a valid URL: the host {host!r} contains characters a host name cannot have"
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if last.isdigit() or last.lower().startswith("0x"):
        return f"not a valid URL: the host {host} looks like an IPv4 address but is not one"
    return f"not a valid URL: the host {host} is not a valid (international) domain name"


# The parts of a parsed URL this module reads (fetched at once: faster than attributes).
_PARTS = ("protocol", "username", "password", "hostname", "host_type", "port", "pathname",
          "search", "hash")
Parts = dict[str, Any]


def _whatwg(text: str) -> Parts:
    """Parse with the WHATWG URL Standard; ValueError when a browser would refuse it."""
    return ada_url.parse_url(text, attributes=_PARTS)  # type: ignore[return-value]


def _parse(text: str, rules: UrlRules, notes: list[str]) -> Parts:
    cleaned = _TAB_OR_NEWLINE.sub("", text)
    scheme_match = _SCHEME.match(cleaned)
    if scheme_match and "." in scheme_match.group(1) and _HOST_AND_PORT.match(cleaned):
        scheme_match = None  # "example.com:8080/a" is a host and a port, not a scheme
    if scheme_match is None:
        if not rules.assume_http:
            raise RejectedURL("not a URL: it has no scheme (such as https://)")
        if not _HOSTLIKE_START.match(cleaned):
            raise RejectedURL("not a URL: it has no scheme and does not start with a host name")
        try:
            url = _whatwg("http://" + cleaned.removeprefix("//"))
        except ValueError:
            raise RejectedURL(
                "not a URL: it has no scheme and is not a host name followed by a path"
            ) from None
        if url["host_type"] == ada_url.HostType.DEFAULT and "." not in url["hostname"].strip("."):
            raise RejectedURL(
                f"not a URL: it has no scheme, and {url['hostname']} is not a host name with a dot"
            )
        notes.append("no scheme given: read as http://")
        return url
    scheme = scheme_match.group(1).lower()
    if scheme not in rules.schemes:
        reason = _SCHEME_REASONS.get(scheme)
        accepted = ", ".join(sorted(rules.schemes))
        raise RejectedURL(reason or f"the scheme {scheme}: is not accepted (accepted: {accepted})")
    try:
        return _whatwg(text)
    except ValueError:
        raise RejectedURL(_diagnose(cleaned)) from None


def _strip_query(search: str, rules: UrlRules, notes: list[str]) -> str:
    """The query with tracking parameters and empty pairs removed, encoding normalised."""
    if not search or search == "?":
        return ""
    pattern = rules.strip_pattern
    kept: list[str] = []
    removed: list[str] = []
    for pair in search[1:].split("&"):
        if not pair:
            continue
        name = unquote_plus(pair.split("=", 1)[0]).lower()
        if pattern is not None and pattern.fullmatch(name):
            removed.append(name)
            continue
        kept.append(normalise_encoding(pair))
    if removed:
        notes.append("tracking parameters removed: " + ", ".join(sorted(set(removed))))
    return "?" + "&".join(kept) if kept else ""


def _label_confusable(label: str, *, whole_script: bool) -> bool:
    if label.isascii():
        return False
    scripts = categories.unique_aliases(label) - _NEUTRAL_SCRIPTS
    if len(scripts) > 1:
        return not any(scripts <= allowed for allowed in _ALLOWED_MIXES)
    if whole_script and len(scripts) == 1:
        # A whole label in another script whose every letter looks Latin (аррӏе).
        look_alikes = _LATIN_LOOK_ALIKES.get(next(iter(scripts)))
        letters = {c for c in label if categories.alias(c) not in _NEUTRAL_SCRIPTS}
        return look_alikes is not None and bool(letters) and letters <= look_alikes
    return False


@lru_cache(maxsize=65_536)
def is_confusable_host(host_unicode: str) -> bool:
    """True when a label of the host mixes scripts a name does not normally mix, or is
    written wholly in look-alikes of Latin letters under a Latin top-level domain (as
    browsers judge it: аррӏе.com is suspect, аррӏе.рф is not)."""
    labels = host_unicode.split(".")
    whole_script = labels[-1].isascii()
    return any(_label_confusable(label, whole_script=whole_script) for label in labels)


def _kind(host: str, is_ip: bool, rules: UrlRules) -> str:
    if is_ip:
        return KIND_IP
    if host == "onion" or host.endswith(".onion"):
        return KIND_ONION
    labels = host.split(".")
    for i in range(len(labels)):
        if ".".join(labels[i:]) in rules.redirector_hosts:
            return KIND_REDIRECTOR
    return KIND_DOMAIN


@lru_cache(maxsize=65_536)
def registered_domain(host: str, host_unicode: str | None = None) -> str | None:
    """The site a host belongs to under the public suffix list (private suffixes too),
    as A-labels. Given the Unicode form as well, the list is matched on it directly
    (the list is kept in Unicode; decoding A-labels again is the slow part)."""
    result = _EXTRACT.extract_str(host_unicode or host)
    found = result.top_domain_under_public_suffix
    if not found:
        return None
    return ".".join(host.split(".")[-(found.count(".") + 1):])


def canonicalise(raw: str, rules: UrlRules | None = None) -> CanonicalURL:
    """The canonical form and derived facts of a reported URL, or `RejectedURL`."""
    rules = rules or _configured or default_rules()
    text = _SURROUNDING_SPACE.sub("", raw)
    if not text:
        raise RejectedURL("the URL is empty")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise RejectedURL("the URL contains characters that are not valid text") from None
    if size > rules.max_url_bytes:
        raise RejectedURL(f"the URL is {size:,} bytes long; the limit is "
                          f"{rules.max_url_bytes:,} bytes")
    notes: list[str] = []
    url = _parse(text, rules, notes)
    scheme = url["protocol"][:-1]
    if scheme not in rules.schemes:  # e.g. tabs inside the scheme, removed by the parser
        raise RejectedURL(_SCHEME_REASONS.get(scheme)
                          or f"the scheme {scheme}: is not accepted")
    hostname = url["hostname"]
    host_type = url["host_type"]
    if not hostname:
        raise RejectedURL("the URL has no host")
    _check_a_labels(hostname)
    is_ip = host_type != ada_url.HostType.DEFAULT
    host = hostname.strip("[]") if host_type == ada_url.HostType.IPV6 else hostname
    if host.endswith(".") and len(host) > 1:
        host = host[:-1]
    userinfo = url["username"] + (":" + url["password"] if url["password"] else "")
    if userinfo:
        notes.append("user info removed (kept as evidence)")
    if url["hash"]:
        notes.append("fragment removed")
    port = url["port"]
    authority = hostname + (":" + port if port else "")
    path = normalise_encoding(url["pathname"])
    query = _strip_query(url["search"], rules, notes)
    canonical = f"{scheme}://{authority}{path}{query}"

    host_unicode = host if is_ip else _to_unicode(host)
    kind = _kind(host, is_ip, rules)

    key_host = host if host_type != ada_url.HostType.IPV6 else hostname
    if rules.dedup_ignore_www and not is_ip and key_host.startswith("www."):
        key_host = key_host[4:]
    key_scheme = "http" if rules.dedup_ignore_scheme and scheme == "https" else scheme
    key_text = f"{key_scheme}://{key_host}{':' + port if port else ''}{path}{query}"
    return CanonicalURL(
        canonical=canonical,
        dedup_key=hashlib.sha256(key_text.encode("utf-8")).hexdigest(),
        host=host,
        host_unicode=host_unicode,
        registered_domain=None if is_ip else registered_domain(host, host_unicode),
        kind=kind,
        userinfo=userinfo or None,
        confusable=False if is_ip else is_confusable_host(host_unicode),
        port=int(port) if port else None,
        notes=tuple(notes),
    )


def _to_unicode(host: str) -> str:
    if "xn--" not in host:
        return host
    value = ada_url.idna_to_unicode(host)
    return value.decode("utf-8") if isinstance(value, bytes) else value
