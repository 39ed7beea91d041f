"""Middleware: dead letters kept in the database for operators."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from pipeline.models import DeadLetter
from workers import context

log = logging.getLogger(__name__)


class DeadLetters(Middleware):
    """A message rejected after its last retry (or at once, for permanent errors) is
    recorded with its error in `dead_letters`, where `hotline deadletters` shows it
    and can send it again."""

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        rt = context.runtime()
        error = message.options.get("traceback") or ""
        last_line = error.strip().splitlines()[-1] if error.strip() else "failed"
        with rt.session_factory.begin() as session:
            session.add(
                DeadLetter(
                    message_id=message.message_id,
                    actor=message.actor_name,
                    queue=message.queue_name,
                    args=list(message.args),
                    kwargs=dict(message.kwargs),
                    error=last_line[:2000],
                    traceback=error[-20_000:] or None,
                    retries=message.options.get("retries", 0),
                    failed_at=rt.clock.now(),
                )
            )
        log.error("Message %s to %s dead-lettered: %s", message.message_id,
                  message.actor_name, last_line)
