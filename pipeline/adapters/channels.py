"""Adapter: the channels a notice is delivered through.

SMTP (STARTTLS and login, the transaction driven step by step), an HTTPS webhook
(JSON signed with HMAC-SHA256, with an idempotency key), and a file-drop outbox
folder, which is where every notice goes when `dispatch.deliver` is `outbox` (the
default in embedded mode, so that a test installation never sends anything by
accident). `Channels` picks one per notice.

A channel only delivers and says how it went: it raises `RetryLater` (a passing
failure), `PermanentError` or `BadInput` (retrying cannot help) or
`DeliveryUnconfirmed` (the outcome cannot be known). It never touches a notice's
state: the dispatch stage (`pipeline.stages.dispatch`) does, through the two calls
a channel makes at the right moments (`handover`, `accepted`). Why no notice is sent
twice, per channel: docs/pipeline/routing-and-dispatch.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import os
import re
import smtplib
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.policy import default as default_policy
from pathlib import Path
from typing import Protocol

import httpx

from pipeline.core.config import Settings
from pipeline.core.errors import PermanentError, RetryLater
from pipeline.domain.notices import build_email, safe_header, webhook_body
from pipeline.domain.rules import cached_ruleset
from pipeline.store.models import Notice

log = logging.getLogger(__name__)

SMTP_PASSWORD_ENV = "HOTLINE_SMTP_PASSWORD"  # noqa: S105 - a variable name, not a secret
SIGNATURE_HEADER = "X-Hotline-Signature"
TIMESTAMP_HEADER = "X-Hotline-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class DeliveryUnconfirmed(Exception):
    """The final "." of an SMTP transaction went out and no reply was read: the
    receiver may or may not have the message. Never retried by itself."""


# Called by a channel right before the one step that cannot be taken back; it commits
# the `handing_over` marker or raises (and then the channel must not take that step).
Handover = Callable[[], None]
# Called by a channel as soon as the receiver has accepted the notice, before anything
# else (SMTP: after the 250 to the final ".", before QUIT): it commits `sent`. A
# channel that never calls it has the notice committed `sent` after it returns.
Accepted = Callable[[], None]


def _no_handover() -> None:
    return None


class Channel(Protocol):
    def deliver(self, notice: Notice, *, at: datetime, handover: Handover = _no_handover,
                accepted: Accepted = _no_handover) -> None:
        """Deliver or raise `RetryLater` / `PermanentError` / `BadInput` /
        `DeliveryUnconfirmed`, or let what `handover` raises pass."""



class OutboxChannel:
    """Writes each notice as a file: `notice-<id>-<token>.eml` (e-mail), `.json`
    (webhook) or `.txt` (a placeholder destination). Written to a temporary name,
    flushed to disk, and linked to the final name only if no file has it yet, so a
    reader never sees half a file and a repeat writes nothing."""

    def __init__(self, folder: Path, settings: Settings):
        self.folder = folder
        self.settings = settings

    def target(self, notice: Notice) -> Path:
        if notice.channel == "webhook":
            suffix = ".json"
        elif notice.address:
            suffix = ".eml"
        else:
            suffix = ".txt"
        return self.folder / f"notice-{notice.id}-{notice.token}{suffix}"

    def deliver(self, notice: Notice, *, at: datetime, handover: Handover = _no_handover,
                accepted: Accepted = _no_handover) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.target(notice)
        if target.exists():
            log.info("Notice %s is in the outbox already (%s); not written again.",
                     notice.id, target.name,
                     extra={"notice_id": notice.id, "case_id": notice.case_id})
            return
        if notice.channel == "webhook":
            data = json.dumps(webhook_body(notice, self.settings), indent=2,
                              ensure_ascii=False).encode()
        elif notice.address:
            data = build_email(notice, self.settings, at=at).as_bytes()
        else:  # a placeholder destination: keep what would be sent, without headers
            data = ((notice.subject or "") + "\n\n" + (notice.body or "")).encode()
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, target)  # atomic, and never replaces an existing file
            except FileExistsError:
                log.info("Notice %s appeared in the outbox meanwhile; not written again.",
                         notice.id, extra={"notice_id": notice.id, "case_id": notice.case_id})
            except OSError:  # a file system without hard links: rename (may replace)
                if not target.exists():
                    os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        _fsync_folder(self.folder)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_LINE_END = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def smtp_data(message: EmailMessage) -> tuple[bytes, bool]:
    """The DATA section of `message` (CRLF line ends, dot-stuffed, ending in CRLF,
    without the terminating "."), and whether it needs SMTPUTF8."""
    international = not all(
        (value or "").isascii() for value in (message["From"], message["To"]))
    base = message.policy if isinstance(message.policy, EmailPolicy) else default_policy
    policy = base.clone(linesep="\r\n", utf8=international)
    buffer = io.BytesIO()
    BytesGenerator(buffer, policy=policy).flatten(message, linesep="\r\n")
    data = _LINE_END.sub(b"\r\n", buffer.getvalue())
    data = _LEADING_DOT.sub(b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data, international


class SmtpChannel:
    """SMTP with STARTTLS and login, the transaction driven step by step so that the
    only moment whose outcome can be unknown is the final "." and its reply, and a
    durable marker (`handover`) is committed right before it."""

    def __init__(self, settings: Settings, password: str | None = None):
        self.settings = settings
        self.password = password

    def _open(self, smtp: smtplib.SMTP) -> None:
        cfg = self.settings.dispatch
        smtp.ehlo()
        if cfg.smtp_starttls:
            context = ssl.create_default_context(cafile=cfg.smtp_ca_file)
            smtp.starttls(context=context)
            smtp.ehlo()
        if cfg.smtp_user:
            password = self.password or os.environ.get(SMTP_PASSWORD_ENV)
            if not password:
                raise PermanentError(f"dispatch.smtp_user is set but {SMTP_PASSWORD_ENV}"
                                     " is not in the environment")
            mechanisms = smtp.esmtp_features.get("auth", "").upper().split()
            if "PLAIN" in mechanisms:
                # One mechanism, so a refusal is one clear 535 (smtplib's login()
                # would go on trying the others).
                smtp.user, smtp.password = cfg.smtp_user, password
                smtp.auth("PLAIN", smtp.auth_plain)
            else:
                smtp.login(cfg.smtp_user, password)

    def _up_to_the_dot(self, smtp: smtplib.SMTP, sender: str, recipient: str,
                       data: bytes, international: bool) -> None:
        """MAIL, RCPT, DATA and the message, all but the terminating "."."""
        options: list[str] = []
        if international:
            if not smtp.has_extn("smtputf8"):
                raise PermanentError("the address needs SMTPUTF8, which the server lacks")
            options.append("SMTPUTF8")
        if smtp.has_extn("8bitmime") and not data.isascii():
            options.append("BODY=8BITMIME")
        code, reply = smtp.mail(sender, options)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        smtp.putcmd("data")
        code, reply = smtp.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        smtp.send(data)

    def deliver(self, notice: Notice, *, at: datetime, handover: Handover = _no_handover,
                accepted: Accepted = _no_handover) -> None:
        cfg = self.settings.dispatch
        message = build_email(notice, self.settings, at=at)
        data, international = smtp_data(message)
        try:
            smtp = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port,
                                timeout=cfg.smtp_timeout_seconds)
        except (smtplib.SMTPException, OSError) as exc:
            raise RetryLater(f"SMTP: {type(exc).__name__}: {exc}") from None
        try:
            try:
                self._open(smtp)
                self._up_to_the_dot(smtp, cfg.sender_address, notice.address or "", data,
                                    international)
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _ in exc.recipients.values()]
                if all(code >= 500 for code in codes):
                    raise PermanentError(f"recipient refused: {codes}") from None
                raise RetryLater(f"recipient deferred: {codes}") from None
            except smtplib.SMTPResponseException as exc:
                text = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
                if exc.smtp_code >= 500:
                    raise PermanentError(text) from None
                raise RetryLater(text) from None
            except (smtplib.SMTPException, OSError) as exc:  # disconnects, timeouts, TLS
                raise RetryLater(f"SMTP: {type(exc).__name__}: {exc}") from None
            # The marker. If it cannot be committed, the connection is closed without
            # the final ".", and the server discards what it has.
            handover()
            try:
                smtp.send(b".\r\n")
                code, reply = smtp.getreply()
            except Exception as exc:
                raise DeliveryUnconfirmed(
                    f"no reply to the end of data: {type(exc).__name__}: {exc}") from None
            if 200 <= code < 300:
                # The server has the message: `sent` is committed now, and only then
                # QUIT and the close (a death during those leaves the notice sent).
                accepted()
                with contextlib.suppress(Exception):
                    smtp.quit()
                return
            text = f"SMTP {code} after the end of data: {reply!r}"
            if code >= 500:
                raise PermanentError(text)
            raise RetryLater(text)
        finally:
            smtp.close()


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value: HMAC-SHA256 over "<timestamp>.<body>"."""
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(key: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """For receivers (and tests): constant-time check of `sign`."""
    return hmac.compare_digest(sign(key, timestamp, body), signature)


class WebhookChannel:
    """POSTs the notice as JSON; headers Idempotency-Key (the notice token),
    X-Hotline-Timestamp and X-Hotline-Signature (sha256=HMAC of "timestamp.body").
    2xx (and 409, "already have it") count as delivered; 408, 425, 429 and 5xx are
    retried; other answers are permanent failures."""

    def __init__(self, settings: Settings, secrets: Mapping[str, str] | None = None):
        self.settings = settings
        self.secrets = secrets  # destination key -> HMAC key; default: from the environment

    def _key(self, notice: Notice) -> bytes:
        if self.secrets is not None and notice.destination in self.secrets:
            return self.secrets[notice.destination].encode()

        dest = cached_ruleset(self.settings.routing.rules_dir).directory.get(notice.destination)
        env = dest.secret_env if dest else None
        value = os.environ.get(env) if env else None
        if not value:
            raise PermanentError(f"no HMAC key for webhook destination {notice.destination} "
                                 f"(environment variable {env or '(secret_env not set)'})")
        return value.encode()

    def deliver(self, notice: Notice, *, at: datetime, handover: Handover = _no_handover,
                accepted: Accepted = _no_handover) -> None:
        # No marker: a POST cannot be split. A repeat after a crash carries the same
        # Idempotency-Key, which the receiver honours.
        cfg = self.settings.dispatch
        url = notice.address or ""
        if not url.startswith("https://") and not (cfg.webhook_allow_http and
                                                   url.startswith("http://")):
            raise PermanentError(f"webhook address of notice {notice.id} is not https")
        body = json.dumps(webhook_body(notice, self.settings), separators=(",", ":"),
                          ensure_ascii=False).encode()
        timestamp = str(int(at.timestamp()))
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: safe_header(IDEMPOTENCY_HEADER, notice.token),
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._key(notice), timestamp, body),
            "User-Agent": "hotline/0.1",
        }
        try:
            response = httpx.post(url, content=body, headers=headers,
                                  timeout=cfg.webhook_timeout_seconds, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise RetryLater(f"webhook: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if 200 <= status < 300 or status == 409:
            return
        if status in (408, 425, 429) or status >= 500:
            delay = response.headers.get("Retry-After", "")
            raise RetryLater(f"webhook answered {status}",
                             delay_ms=int(delay) * 1000 if delay.isdigit() else 5_000)
        raise PermanentError(f"webhook answered {status}")


@dataclass
class Channels:
    """The channels this process delivers through (tests pass their own)."""

    settings: Settings
    smtp: Channel | None = None
    webhook: Channel | None = None
    outbox: Channel | None = None

    def __post_init__(self) -> None:
        self.smtp = self.smtp or SmtpChannel(self.settings)
        self.webhook = self.webhook or WebhookChannel(self.settings)
        self.outbox = self.outbox or OutboxChannel(outbox_folder(self.settings), self.settings)

    def for_notice(self, notice: Notice) -> Channel:
        assert self.smtp and self.webhook and self.outbox
        if delivers_to_outbox(self.settings) or notice.channel == "file":
            return self.outbox
        if not notice.address:
            raise PermanentError(f"destination {notice.destination} has no address yet "
                                 "(a placeholder in destinations.yaml)")
        return self.webhook if notice.channel == "webhook" else self.smtp


def outbox_folder(settings: Settings) -> Path:
    return Path(settings.dispatch.outbox_dir or settings.data_path / "outbox")


def delivers_to_outbox(settings: Settings) -> bool:
    mode = settings.dispatch.deliver
    return mode == "outbox" or (mode == "auto" and settings.app.mode == "embedded")
