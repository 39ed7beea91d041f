"""The dependencies a process holds once: settings, database, clock, Redis, enqueuer.

The tracer (DNS and RDAP clients, caches) is made apart, by `pipeline.app.tracers`,
so that a process that only takes reports in does not load it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, configure_mappers, sessionmaker

import pipeline.store.models_all  # noqa: F401 - every mapper, configured below
from pipeline.core.clock import Clock, SystemClock
from pipeline.core.config import Settings
from pipeline.core.crypto import install_keys
from pipeline.core.messaging import Enqueuer, RecordingEnqueuer
from pipeline.core.secrets import register_settings_secrets
from pipeline.store.db import make_engine, make_session_factory
from pipeline.store.listeners import watch_reports, watch_sessions

log = logging.getLogger(__name__)


def load_scripts(client: Any, scripts: Sequence[Any]) -> None:
    """Open `client`'s connection to Redis and load the Lua `scripts` there: a
    redis-py `Script` of the same text then runs at its first EVALSHA."""
    client.ping()
    for script in scripts:
        client.script_load(script)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    clock: Clock = field(default_factory=SystemClock)
    enqueuer: Enqueuer = field(default_factory=RecordingEnqueuer)
    # What `close` also closes: things made for this runtime on first use elsewhere
    # (its tracer, `pipeline.app.tracers`).
    closers: list[Callable[[], None]] = field(default_factory=list)

    @cached_property
    def redis(self) -> Any | None:
        """A Redis client for the project's own keys, or None when there is no Redis."""
        url = self.settings.redis_url
        if not url:
            return None
        return redis.Redis.from_url(url)

    def connect_ahead(self, scripts: Sequence[str] = ()) -> None:
        """Open now what a process's first request or message would open on its way:
        a connection of the database pool and one of Redis, with the Lua `scripts`
        loaded there, so that their first call is not a NOSCRIPT answer and a second
        round trip. Measured (make bench, import path): the first one-report
        transaction of a new web app took 22 ms, the next ones 14; a new connection
        was 12 ms of it under cProfile. What cannot be opened now is left to the
        first use, which says what is wrong."""
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            if self.redis is not None:
                load_scripts(self.redis, scripts)
        except Exception as exc:  # any failure: the first real use reports it
            log.info("Could not connect ahead (%s: %s); the first use will try again.",
                     type(exc).__name__, exc)

    def key(self, *parts: object) -> str:
        """A Redis key in the project's namespace."""
        return ":".join([self.settings.redis.namespace, *map(str, parts)])

    def close(self) -> None:
        while self.closers:
            self.closers.pop()()
        self.engine.dispose()
        if "redis" in self.__dict__ and self.redis is not None:
            self.redis.close()


def build_runtime(settings: Settings, *, clock: Clock | None = None) -> Runtime:
    install_keys(settings)  # reporter contacts are encrypted at rest
    register_settings_secrets(settings)  # passwords in service URLs are never logged
    watch_sessions()  # state changes and takedown times counted for /metrics
    watch_reports()  # reporter contacts and descriptions never reach a log line
    # SQLAlchemy configures the mappers (relationships, attribute instrumentation) at a
    # process's first ORM query: measured 80 ms of the web app's first intake request
    # (make bench, API path: the first report was seen stored 312 ms after it). Done
    # here, as each process starts.
    configure_mappers()
    if settings.database.url.startswith("sqlite:///"):
        path = settings.database.url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(
        settings.database.url, pool_size=settings.database.pool_size, echo=settings.database.echo
    )
    return Runtime(
        settings=settings,
        engine=engine,
        session_factory=make_session_factory(engine),
        clock=clock or SystemClock(),
    )
