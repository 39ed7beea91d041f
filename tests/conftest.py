"""Shared fixtures: databases (SQLite and PostgreSQL), Redis, runtimes.

Tests that need a server skip on a machine without it, but fail when CI=true.
Each test run gets its own PostgreSQL database and Redis namespace, so several runs
on one machine never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from pipeline.app.runtime import Runtime, build_runtime
from pipeline.core.clock import FrozenClock
from pipeline.core.config import Settings
from pipeline.core.messaging import RecordingEnqueuer
from pipeline.store.migrate import upgrade

CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get(
    "HOTLINE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("HOTLINE_TEST_REDIS", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]

# Never let a developer's environment or config.yaml leak into the tests.
for _key in [k for k in os.environ if k.startswith("HOTLINE_") and not k.startswith(
        "HOTLINE_TEST_")]:
    del os.environ[_key]
os.environ["HOTLINE_CONFIG"] = os.path.join(os.path.dirname(__file__), "empty-config.yaml")
# ...nor the shipped config.yaml the HOTLINE_CONFIG file is laid over.
os.environ["HOTLINE_CONFIG_DEFAULTS"] = ""


@pytest.fixture(autouse=True)
def _close_the_registry_circuits() -> Iterator[None]:
    """The circuit breakers of the process are shared (one per server address): a
    test's open circuit must not refuse a later test's server on the same port."""
    from pipeline.adapters.tracing.breaker import BREAKERS

    yield
    BREAKERS.reset()


def missing_server(what: str) -> None:
    """Skip on a laptop without the server; fail in CI, where it must be there."""
    if CI:
        pytest.fail(f"{what} is required when CI=true but is not reachable")
    pytest.skip(f"{what} not reachable")


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated to head."""
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        missing_server("PostgreSQL at " + PG_ADMIN_URL)
    name = f"hotline_test_{RUN_ID}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception:
        missing_server("Redis at " + REDIS_URL)
    return REDIS_URL


@pytest.fixture
def redis_namespace(redis_url: str) -> Iterator[str]:
    """A namespace of Redis keys for one test, deleted afterwards."""
    import redis

    namespace = f"hotline-test-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    yield namespace
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{namespace}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings_factory(tmp_path: Any) -> Callable[..., Settings]:
    """Settings for a test: SQLite in tmp_path unless told otherwise; no config file."""

    def make(**sections: dict[str, Any]) -> Settings:
        values: dict[str, Any] = {
            "app": {"data_dir": str(tmp_path / "var")},
            "database": {"url": f"sqlite:///{tmp_path}/hotline.db"},
        }
        for name, section in sections.items():
            values[name] = {**values.get(name, {}), **section}
        return Settings(**values)

    return make


def _truncate_all(runtime: Runtime) -> None:
    from sqlalchemy import inspect

    tables = [t for t in inspect(runtime.engine).get_table_names() if t != "alembic_version"]
    names = ", ".join(f'"{t}"' for t in tables)
    with runtime.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def sqlite_runtime(settings_factory: Callable[..., Settings]) -> Iterator[Runtime]:
    settings = settings_factory()
    upgrade(settings.database.url)
    runtime = build_runtime(settings, clock=FrozenClock())
    runtime.enqueuer = RecordingEnqueuer()
    yield runtime
    runtime.close()


@pytest.fixture
def pg_runtime(
    settings_factory: Callable[..., Settings], pg_database_url: str
) -> Iterator[Runtime]:
    import pipeline.store.models_all  # noqa: F401

    settings = settings_factory(database={"url": pg_database_url})
    runtime = build_runtime(settings, clock=FrozenClock())
    runtime.enqueuer = RecordingEnqueuer()
    _truncate_all(runtime)
    yield runtime
    runtime.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def runtime(request: pytest.FixtureRequest) -> Runtime:
    """The same test on both databases."""
    fixture = "sqlite_runtime" if request.param == "sqlite" else "pg_runtime"
    return request.getfixturevalue(fixture)
