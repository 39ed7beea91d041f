"""The mailbox wired to a runtime: what `hotline mail serve|poll` and `hotline run` start.

`deliverer(runtime, via)` is the function the LMTP listener and the IMAP poller hand
each message to (`stages.mailbox.take_message` bound to the runtime's database,
clock, settings and enqueuer); `lmtp_listener(runtime)` the listener on
`mail.lmtp_host:mail.lmtp_port`.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.adapters.mail.lmtp import LmtpListener
from pipeline.runtime import Runtime
from pipeline.stages.mailbox import Taken, take_message


def deliverer(runtime: Runtime, via: str) -> Callable[..., Taken]:
    def deliver(raw: bytes, size: int | None = None) -> Taken:
        return take_message(runtime.session_factory, raw, via=via, clock=runtime.clock,
                            settings=runtime.settings, enqueuer=runtime.enqueuer, size=size)

    return deliver


def lmtp_listener(runtime: Runtime) -> LmtpListener:
    mail = runtime.settings.mail
    return LmtpListener(deliverer(runtime, "lmtp"), host=mail.lmtp_host, port=mail.lmtp_port,
                        max_message_bytes=mail.max_message_bytes)
