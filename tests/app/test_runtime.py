"""A process's dependencies (pipeline.app.runtime): the SQLite folder made, a database
that answers, Redis keys in the project's namespace, no Redis client without a URL,
and one Redis client per runtime."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import uuid

from sqlalchemy import text

from pipeline.app.runtime import build_runtime
from pipeline.core.clock import FrozenClock, SystemClock
from pipeline.core.messaging import RecordingEnqueuer


def test_a_sqlite_runtime_makes_its_folder_and_answers(settings_factory, tmp_path):
    url = f"sqlite:///{tmp_path}/not/yet/there/h.db"
    rt = build_runtime(settings_factory(database={"url": url}))
    try:
        assert (tmp_path / "not" / "yet" / "there").is_dir()
        with rt.session_factory() as session:
            assert session.execute(text("SELECT 1")).scalar_one() == 1
        assert isinstance(rt.clock, SystemClock)
        assert isinstance(rt.enqueuer, RecordingEnqueuer)
    finally:
        rt.close()


def test_the_clock_given_is_the_runtimes(settings_factory):
    clock = FrozenClock()
    rt = build_runtime(settings_factory(), clock=clock)
    try:
        assert rt.clock is clock and rt.clock.now() == clock.now()
    finally:
        rt.close()


def test_without_a_redis_url_there_is_no_redis_client(settings_factory):
    rt = build_runtime(settings_factory())
    try:
        assert rt.settings.redis_url is None
        assert rt.redis is None
        assert rt.key("claim", 7) == f"{rt.settings.redis.namespace}:claim:7"
    finally:
        rt.close()


def test_redis_keys_are_namespaced_and_one_client_is_shared(
        settings_factory, redis_url):
    rt = build_runtime(settings_factory(redis={"url": redis_url, "namespace": "hl-test-rt"}))
    try:
        key = rt.key("probe", "a")
        assert key == "hl-test-rt:probe:a"
        rt.redis.set(key, "1", ex=30)
        assert rt.redis.get(key) == b"1"
        rt.redis.delete(key)
        assert rt.redis is rt.redis  # one client for the process
    finally:
        rt.close()


def test_a_runtime_configures_every_mapper_before_the_first_query(tmp_path):
    """SQLAlchemy would configure the mappers at the process's first ORM query (80 ms of
    the web app's first intake request, measured): a fresh interpreter, since this
    one's earlier tests have long configured them."""
    script = f"""
from pipeline.store.db import Base
from pipeline.app.runtime import build_runtime
from pipeline.core.config import Settings
mappers = list(Base.registry.mappers)
before = any(m.configured for m in mappers)
rt = build_runtime(Settings(database={{"url": "sqlite:///{tmp_path}/h.db"}}))
print(before, len(Base.registry.mappers), all(m.configured for m in Base.registry.mappers))
rt.close()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    before, count, after = done.stdout.split()
    assert before == "False" and after == "True"
    assert int(count) >= 20  # every model module's, helpline and mail ones included


def test_connect_ahead_opens_a_pooled_connection_and_loads_the_scripts(
        settings_factory, pg_database_url, redis_url):
    rt = build_runtime(settings_factory(database={"url": pg_database_url},
                                        redis={"url": redis_url}))
    script = f"return '{uuid.uuid4().hex}'"  # no other test loads it
    sha = hashlib.sha1(script.encode()).hexdigest()
    try:
        assert rt.engine.pool.checkedin() == 0
        assert rt.redis.script_exists(sha) == [False]
        rt.connect_ahead([script])
        assert rt.engine.pool.checkedin() == 1  # the first request takes it from here
        assert rt.redis.script_exists(sha) == [True]
        assert rt.redis.register_script(script)() == script.split("'")[1].encode()
    finally:
        rt.close()


def test_connect_ahead_with_nothing_to_reach_says_so_and_goes_on(settings_factory, caplog):
    rt = build_runtime(settings_factory(redis={"url": "redis://127.0.0.1:1/0"}))
    try:
        with caplog.at_level(logging.INFO, logger="pipeline.app.runtime"):
            rt.connect_ahead(["return 1"])  # no exception: the first use reports it
        assert "Could not connect ahead (ConnectionError" in caplog.text
        with rt.session_factory() as session:  # the database was reached before
            assert session.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        rt.close()
