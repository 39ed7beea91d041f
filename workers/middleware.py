"""Middleware: dead letters kept in the database for operators."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from pipeline.core import counters as metrics
from pipeline.core.logs import bind, unbind
from pipeline.store.models import DeadLetter
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
        ids = message.args[0] if message.args and isinstance(message.args[0], list) else None
        log.error("Message %s to %s dead-lettered: %s", message.message_id,
                  message.actor_name, last_line, extra={
                      "stage": message.actor_name, "message_id": message.message_id,
                      "ids": ids[:20] if ids else None})


class StageMetrics(Middleware):
    """Per stage: messages processed (ok, failed, skipped), ids carried, duration and
    failures by error type (pipeline.core.counters); and the stage, message and ids bound to
    every log line written while the message runs (pipeline.core.logs)."""

    def __init__(self) -> None:
        self._started: dict[str, tuple[float, Any]] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:


        ids = message.args[0] if message.args and isinstance(message.args[0], list) else None
        token = bind(stage=message.actor_name, message_id=message.message_id,
                     ids=ids[:20] if ids else None)
        self._started[message.message_id] = (time.perf_counter(), token)

    def _finish(self, message: Any, outcome: str, exception: BaseException | None) -> None:


        started = self._started.pop(message.message_id, None)
        stage = message.actor_name
        metrics.STAGE_MESSAGES.labels(stage, outcome).inc()
        if message.args and isinstance(message.args[0], list):
            metrics.STAGE_ITEMS.labels(stage).inc(len(message.args[0]))
        if exception is not None:
            metrics.STAGE_FAILURES.labels(stage, type(exception).__name__).inc()
        if started is not None:
            metrics.STAGE_SECONDS.labels(stage).observe(time.perf_counter() - started[0])
            # Bound in another context (another thread): nothing to undo here.
            with contextlib.suppress(ValueError):
                unbind(started[1])

    def after_process_message(self, broker: dramatiq.Broker, message: Any, *,
                              result: Any = None, exception: BaseException | None = None
                              ) -> None:
        self._finish(message, "failed" if exception is not None else "ok", exception)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._finish(message, "skipped", None)
