"""A received message read into what the hotline needs: who, what, which URLs.

`read_message(raw, max_bytes=...)` never raises on bad mail: what it cannot read it
names in `problems`. It parses with the standard library's `email` (policy default):
text and HTML parts in any charset (an unknown or lying charset is decoded with
replacement characters), quoted-printable and base64, forwarded messages
(`message/rfc822`) read inside, `format=flowed` text unfolded. URLs come from the
text (`urls.find_urls`: defanged and wrapped forms) and from HTML links' `href`.
Attachments are never kept: only their names, types, sizes and SHA-256.
A message larger than `max_bytes` is not parsed: its headers only are read.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from email.utils import getaddresses, parseaddr
from typing import Any

from pipeline.adapters.mail.html import read_html
from pipeline.adapters.mail.urls import find_urls

MAX_PARTS = 500
MAX_DEPTH = 10
MAX_TEXT_KEPT = 20_000  # characters of body text kept for the report's description
_SERBIAN = re.compile(r"[čćšžđČĆŠŽĐ]|[\u0400-\u04ff]|\b(?:poštovani|pozdrav|prijav\w*|"
                      r"sajt\w*|dete|deca|hvala|molim)\b", re.I)
_LINK_SCHEMES = ("http://", "https://", "ftp://", "ftps://")


@dataclass
class Attachment:
    name: str | None
    content_type: str
    size: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.content_type, "size": self.size,
                "sha256": self.sha256}


@dataclass
class ParsedMail:
    message_id: str | None = None
    sender: str | None = None  # the address only
    subject: str | None = None
    language: str = "en"
    urls: list[str] = field(default_factory=list)
    text: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # RFC 3834 and friends: never answer these.
    automatic: str | None = None  # why this message must not be answered
    parsed: bool = True  # False: too large or unreadable, headers only
    quotes_own_links: bool = False  # it holds links to the hotline's own pages
    size: int = 0

    @property
    def key(self) -> str:
        """What makes a message the same message delivered again."""
        if self.message_id:
            return hashlib.sha256(b"mid:" + self.message_id.encode("utf-8", "replace")
                                  ).hexdigest()
        return ""


def message_key(parsed: ParsedMail, raw: bytes) -> str:
    return parsed.key or hashlib.sha256(b"raw:" + raw).hexdigest()


def _header(message: Message, name: str) -> str | None:
    """A header as text, or None; a malformed header never raises."""
    try:
        value = message.get(name)
    except Exception:  # noqa: BLE001 - the email package raises many kinds on bad headers
        try:
            raw = message.get_all(name) if hasattr(message, "get_all") else None
        except Exception:  # noqa: BLE001
            return None
        value = raw[0] if raw else None
    if value is None:
        return None
    return " ".join(str(value).split())[:2000]


def _raw(message: Message, name: str) -> str | None:
    """A header's raw text (not decoded: cheap), or None. For the checks that look
    at plain tokens (Auto-Submitted, List-Id, addresses, Message-ID): the policy's
    full header parsing costs about a millisecond per header."""
    wanted = name.lower()
    try:
        for key, value in message.raw_items():  # type: ignore[attr-defined]
            if key.lower() == wanted:
                return " ".join(str(value).split())[:2000]
    except Exception:  # noqa: BLE001
        return _header(message, name)
    return None


def _normalise_message_id(value: str | None) -> str | None:
    if not value:
        return None
    match = re.search(r"<([^<>\s]{1,900})>", value)
    found = match.group(1) if match else value.strip()
    return found[:900] or None


def automatic_reason(message: Message) -> str | None:
    """Why a message must not get an automatic answer (RFC 3834, bounces, lists)."""
    auto = (_raw(message, "Auto-Submitted") or "no").lower()
    if not auto.startswith("no"):
        return f"Auto-Submitted: {auto[:40]}"
    if _raw(message, "List-Id") or _raw(message, "List-Unsubscribe") or \
            _raw(message, "List-Post"):
        return "a mailing list message"
    precedence = (_raw(message, "Precedence") or "").lower()
    if precedence in ("bulk", "list", "junk", "auto_reply"):
        return f"Precedence: {precedence}"
    if _raw(message, "X-Autoreply") or _raw(message, "X-Autorespond") or \
            (_raw(message, "X-Auto-Response-Suppress") or "").lower() in ("all", "oof"):
        return "an automatic reply"
    content_type = (_raw(message, "Content-Type") or "").lower()
    if "multipart/report" in content_type or "delivery-status" in content_type:
        return "a delivery report (bounce)"
    return_path = _raw(message, "Return-Path")
    if return_path is not None and return_path.strip() in ("<>", ""):
        return "a bounce (empty return path)"
    sender = (parseaddr(_raw(message, "From") or "")[1] or "").lower()
    local = sender.split("@")[0]
    if local in ("mailer-daemon", "postmaster", "noreply", "no-reply", "do-not-reply",
                 "donotreply") or local.startswith(("owner-", "bounce")):
        return f"an automatic sender ({local})"
    return None


def _decode_text(part: Message, problems: list[str]) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content
    except Exception as exc:  # noqa: BLE001 - unknown charsets, broken encodings
        problems.append(f"a text part could not be decoded cleanly ({type(exc).__name__})")
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        problems.append(f"unknown charset {charset[:40]!r}: read as UTF-8")
        return payload.decode("utf-8", errors="replace")


def _unflow(text: str, delsp: bool) -> str:
    """RFC 3676 format=flowed: a line ending in a space continues on the next."""
    out: list[str] = []
    current = ""
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if line.startswith(" "):
            line = line[1:]  # space-stuffing
        if line.endswith(" ") and line != "-- ":
            current += line[:-1] if delsp else line
        else:
            out.append(current + line)
            current = ""
    if current:
        out.append(current)
    return "\n".join(out)


def _walk(message: Message, depth: int = 0) -> list[Message]:
    """Every leaf part, forwarded messages opened; bounded in count and depth."""
    parts: list[Message] = []
    stack: list[tuple[Message, int]] = [(message, depth)]
    while stack and len(parts) < MAX_PARTS:
        part, level = stack.pop()
        if level > MAX_DEPTH:
            continue
        if part.is_multipart():
            payload = part.get_payload()
            children = payload if isinstance(payload, list) else []
            stack.extend((child, level + 1) for child in reversed(children)
                         if isinstance(child, Message))
        else:
            parts.append(part)
    return parts


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001
        return "(unreadable name)"
    return " ".join(name.split())[:255] if name else None


def read_message(raw: bytes, *, max_bytes: int = 26_214_400, url_limit: int = 1000,
                 ignore_prefixes: tuple[str, ...] = (), size: int | None = None) -> ParsedMail:
    """Read a message; never raises (see the module's docstring). `size`: the
    message's real size when `raw` holds only its headers (IMAP, a huge message)."""
    result = ParsedMail(size=max(size or 0, len(raw)))
    if result.size > max_bytes:
        head = BytesHeaderParser(policy=policy.default).parsebytes(raw[:65_536])
        _headers_into(result, head)
        result.parsed = False
        result.problems.append(f"the message is larger than {max_bytes} bytes: not read")
        return result
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # noqa: BLE001 - the parser is lenient; guard anyway
        result.parsed = False
        result.problems.append(f"the message could not be parsed ({type(exc).__name__})")
        return result
    _headers_into(result, message)
    defects = [type(d).__name__ for d in getattr(message, "defects", [])][:5]
    if defects:
        result.problems.append("MIME defects: " + ", ".join(defects))
    texts: list[str] = []
    links: list[str] = []
    for part in _walk(message):
        try:
            content_type = part.get_content_type()
            disposition = (part.get_content_disposition() or "").lower()
        except Exception:  # noqa: BLE001
            result.problems.append("a part with unreadable headers was skipped")
            continue
        name = _filename(part)
        if content_type in ("text/plain", "text/html") and disposition != "attachment":
            text = _decode_text(part, result.problems)
            if content_type == "text/html":
                html = read_html(text)
                if html.truncated:
                    result.problems.append("an HTML part was too large or broken: read in "
                                           "part")
                links.extend(html.links)
                texts.append(html.text)
            else:
                params = {k.lower(): v.lower() for k, v in part.get_params() or []}
                if params.get("format") == "flowed":
                    text = _unflow(text, params.get("delsp") == "yes")
                texts.append(text)
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        result.attachments.append(Attachment(
            name=name, content_type=content_type[:100], size=len(data),
            sha256=hashlib.sha256(data).hexdigest()))
    text = "\n\n".join(texts)
    urls: dict[str, None] = {}
    for href in links:
        if href.lower().startswith(_LINK_SCHEMES):
            urls.setdefault(" ".join(href.split()), None)
    for url in find_urls(text, limit=url_limit * 2):
        urls.setdefault(url, None)
    own = [u for u in urls if ignore_prefixes and u.lower().startswith(ignore_prefixes)]
    result.quotes_own_links = bool(own)
    result.urls = [u for u in urls if u not in own][:url_limit]
    result.text = text.strip()[:MAX_TEXT_KEPT]
    if _SERBIAN.search((result.subject or "") + " " + text[:20_000]):
        result.language = "sr-Latn"
    return result


def _headers_into(result: ParsedMail, message: Message | EmailMessage) -> None:
    result.message_id = _normalise_message_id(_raw(message, "Message-ID"))
    sender = _raw(message, "From")
    try:
        addresses = [a for _, a in getaddresses([sender or ""]) if "@" in a]
    except Exception:  # noqa: BLE001
        addresses = []
    result.sender = addresses[0][:320] if addresses else None
    result.subject = (_header(message, "Subject") or "")[:500] or None
    result.automatic = automatic_reason(message)
    language = (_raw(message, "Content-Language") or "").lower()
    if language.startswith(("sr", "hr", "bs")):
        result.language = "sr-Latn"
