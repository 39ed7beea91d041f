"""The mailbox wired to a runtime: what `hotline mail serve|poll` and `hotline run` start.

`deliverer(runtime, via)` is the function the LMTP listener and the IMAP poller hand
each message to (`stages.mailbox.take_message` bound to the runtime's database,
clock, settings and enqueuer); `lmtp_listener(runtime)` the listener on
`mail.lmtp_host:mail.lmtp_port`; `AckSender` the thread that sends the due
acknowledgements (started beside the listener and the poller).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pipeline.adapters.channels import Channels
from pipeline.adapters.mail.lmtp import LmtpListener
from pipeline.app.runtime import Runtime
from pipeline.stages.mail_acks import send_acks
from pipeline.stages.mailbox import Taken, take_message

log = logging.getLogger(__name__)


def deliverer(runtime: Runtime, via: str) -> Callable[..., Taken]:
    def deliver(raw: bytes, size: int | None = None) -> Taken:
        return take_message(runtime.session_factory, raw, via=via, clock=runtime.clock,
                            settings=runtime.settings, enqueuer=runtime.enqueuer, size=size)

    return deliver


def lmtp_listener(runtime: Runtime) -> LmtpListener:
    mail = runtime.settings.mail
    return LmtpListener(deliverer(runtime, "lmtp"), host=mail.lmtp_host, port=mail.lmtp_port,
                        max_message_bytes=mail.max_message_bytes)


class AckSender:
    """A thread sending the due acknowledgements every `interval` seconds."""

    def __init__(self, runtime: Runtime, interval: float = 10.0):
        self.runtime = runtime
        self.interval = interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="mail-acks", daemon=True)
        self.channels = Channels(runtime.settings)

    def send_now(self) -> int:
        return send_acks(self.runtime.session_factory, channels=self.channels,
                         settings=self.runtime.settings, clock=self.runtime.clock)

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.send_now()
            except Exception:  # a broken database must not end the thread
                log.exception("Sending mail acknowledgements failed; tried again later.")

    def start(self) -> AckSender:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
