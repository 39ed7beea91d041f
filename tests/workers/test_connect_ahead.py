"""`workers.broker.connect_ahead`: a starting web app or worker opens the Redis
broker's connection and loads dramatiq's scripts there, against a real Redis; with
no Redis to reach it says so and goes on; the in-process broker has nothing to open."""

from __future__ import annotations

import logging

from dramatiq.brokers.stub import StubBroker

from workers import broker as broker_module
from workers.broker import connect_ahead
from workers.wakeup import WakingRedisBroker


def test_the_brokers_connection_is_opened_and_its_scripts_loaded(redis_url, redis_namespace,
                                                                 monkeypatch):
    broker = WakingRedisBroker(url=redis_url, namespace=redis_namespace, middleware=[])
    loaded: list[tuple[object, list[str]]] = []
    real = broker_module.load_scripts
    monkeypatch.setattr(broker_module, "load_scripts",
                        lambda client, scripts: (loaded.append((client, list(scripts))),
                                                 real(client, scripts)))
    try:
        pool = broker.client.connection_pool
        assert len(pool._available_connections) == 0
        connect_ahead(broker)
        assert len(pool._available_connections) == 1  # the first enqueue takes it
        [(client, scripts)] = loaded
        assert client is broker.client
        assert sorted(scripts) == sorted(s.script for s in broker.scripts.values())
        assert broker.client.script_exists(*(s.sha for s in broker.scripts.values())) == [
            True] * len(broker.scripts)
    finally:
        broker.close()


def test_no_redis_to_reach_is_said_and_start_up_goes_on(caplog):
    broker = WakingRedisBroker(url="redis://127.0.0.1:1/0", namespace="nowhere",
                               middleware=[])
    try:
        with caplog.at_level(logging.INFO, logger="workers.broker"):
            connect_ahead(broker)
        assert "Could not reach the broker ahead" in caplog.text
    finally:
        broker.close()


def test_the_in_process_broker_has_nothing_to_open(monkeypatch):
    monkeypatch.setattr(broker_module, "load_scripts",
                        lambda *_: (_ for _ in ()).throw(AssertionError("called")))
    connect_ahead(StubBroker(middleware=[]))
