"""SQLite (embedded mode): the threads of a process take turns at the write lock on a
Python lock, given back however the transaction ends (pipeline.store.db)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from pipeline.store.db import _sqlite_turn, make_engine


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/turns.db")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield engine
    engine.dispose()


def _writer_waits_for(engine, end_first) -> list[str]:
    """A first transaction holds the turn; a second thread's waits until `end_first`
    ends the first. The order things happened in."""
    order: list[str] = []
    first = engine.connect()
    first.begin()
    first.execute(text("INSERT INTO t VALUES (1)"))
    assert _sqlite_turn(engine.url.database).locked()  # this process's turn, held

    def second() -> None:
        with engine.begin() as conn:
            order.append("second began")
            conn.execute(text("INSERT INTO t VALUES (2)"))

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.3)
    order.append("first ends")
    end_first(first)
    thread.join(10)
    assert not thread.is_alive()
    return order


@pytest.mark.parametrize("end_first", [
    lambda conn: (conn.commit(), conn.close()),
    lambda conn: (conn.rollback(), conn.close()),
    lambda conn: conn.close(),  # returned to the pool mid-transaction: rolled back
], ids=["commit", "rollback", "close"])
def test_a_second_writer_begins_once_the_first_transaction_ends_however_it_ends(
    engine, end_first,
):
    assert _writer_waits_for(engine, end_first) == ["first ends", "second began"]
    assert not _sqlite_turn(engine.url.database).locked()
    # And the turn is free again for anyone.
    done = threading.Event()

    def third() -> None:
        with engine.begin() as conn:
            conn.execute(text("SELECT 1"))
        done.set()

    threading.Thread(target=third).start()
    assert done.wait(10)


def test_a_failed_statement_gives_the_turn_back(engine):
    with pytest.raises(Exception, match="no such table"), engine.begin() as conn:
        conn.execute(text("INSERT INTO missing VALUES (1)"))
    with engine.begin() as conn:  # would wait 30 s, then fail, if the turn were kept
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0


def test_many_threads_writing_at_once_lose_nothing(engine):
    def write(n: int) -> None:
        for i in range(20):
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n * 100 + i})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(DISTINCT n) FROM t")).scalar_one() == 120
