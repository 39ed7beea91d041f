"""The LMTP listener the hotline's mail server delivers to (aiosmtpd).

`LmtpListener(deliver, host, port, max_message_bytes)` serves LMTP (RFC 2033) on
`host:port`. Each message's bytes go to `deliver(raw)` (in a thread: it writes to
the database) and the answer follows what happened:
- taken (reports made, or kept for a person, or a duplicate): 250 for every
  recipient, so the mail server drops its copy only once the message is committed;
- a passing fault (`RetryLater`: the database does not answer) or an unexpected
  error: 451 (the mail server keeps the message and retries), with a log line;
- a message over four times `max_message_bytes`: aiosmtpd answers 552 while it
  arrives (it is never held in memory whole). Between the limit and that, the
  message is taken as a header-only entry for a person (see the stage).
LMTP answers DATA once per accepted recipient: one message is taken once, so every
recipient gets the same answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP

from pipeline.core.errors import RetryLater

log = logging.getLogger(__name__)
# aiosmtpd logs every command and the client's address at INFO: the senders are
# reporters, so only its warnings go to the hotline's log.
logging.getLogger("mail.log").setLevel(logging.WARNING)

Deliver = Callable[[bytes], Any]


class MailboxHandler:
    """aiosmtpd handler: every message to `deliver`."""

    def __init__(self, deliver: Deliver):
        self.deliver = deliver

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        recipients = max(1, len(envelope.rcpt_tos or []))
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.deliver, raw)
            status = "250 2.0.0 Message taken by the hotline"
        except RetryLater as exc:
            log.warning("An LMTP delivery was deferred (451), the mail server retries: %s",
                        exc)
            status = "451 4.3.0 Temporary failure, please try again later"
        except Exception:
            log.exception("An LMTP delivery failed unexpectedly; answered 451 so that the "
                          "mail server keeps the message and retries.")
            status = "451 4.3.0 Temporary failure, please try again later"
        return "\r\n".join([status] * recipients)


class LmtpListener(Controller):
    """aiosmtpd's threaded controller serving LMTP instead of SMTP."""

    def __init__(self, deliver: Deliver, *, host: str, port: int, max_message_bytes: int):
        self.max_message_bytes = max_message_bytes
        super().__init__(MailboxHandler(deliver), hostname=host, port=port,
                         ready_timeout=10.0)

    def factory(self) -> LMTP:
        return LMTP(self.handler, data_size_limit=4 * self.max_message_bytes,
                    enable_SMTPUTF8=True, decode_data=False, ident="hotline LMTP")

