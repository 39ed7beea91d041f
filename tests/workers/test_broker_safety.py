"""`hotline worker` refuses a Redis whose eviction policy could drop queued messages.

A private redis-server is started for each policy (the shared Redis's configuration
is never changed by a test)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench import services
from pipeline.cli import main
from pipeline.core.config import Settings
from pipeline.core.errors import ConfigError
from workers.broker import check_broker_safe


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Any]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    started: list[services.RedisServer] = []

    def start(policy: str) -> str:
        import redis

        context = services.redis_server(tmp_path / policy)
        server = context.__enter__()
        started.append(server)
        closers.append(context)
        redis.Redis.from_url(server.url).config_set("maxmemory-policy", policy)
        return server.url

    closers: list[object] = []
    yield start
    for context in closers:
        context.__exit__(None, None, None)  # type: ignore[attr-defined]



def test_a_redis_that_may_evict_keys_is_refused_as_broker(private_redis) -> None:
    url = private_redis("allkeys-lru")
    with pytest.raises(ConfigError) as refused:
        check_broker_safe(Settings(broker={"url": url}))
    assert "noeviction" in str(refused.value) and "allkeys-lru" in str(refused.value)


def test_a_redis_with_noeviction_is_accepted_as_broker(private_redis) -> None:
    check_broker_safe(Settings(broker={"url": private_redis("noeviction")}))


def test_hotline_worker_does_not_start_against_a_redis_that_may_evict(
    private_redis, tmp_path: Path,
) -> None:
    url = private_redis("volatile-lru")
    result = CliRunner().invoke(main, ["worker"], env={
        "HOTLINE_BROKER__URL": url,
        "HOTLINE_DATABASE__URL": f"sqlite:///{tmp_path}/hotline.db",
        "HOTLINE_APP__DATA_DIR": str(tmp_path / "var"),
    })
    assert result.exit_code != 0
    assert "maxmemory-policy is 'volatile-lru'" in result.output
