"""Clocks: the system clock is aware UTC, the frozen one moves only when told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from pipeline.core.clock import FrozenClock, SystemClock, as_utc


def test_the_system_clock_tells_aware_utc_time():
    before = datetime.now(UTC)
    now = SystemClock().now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert before <= now <= datetime.now(UTC)


def test_a_frozen_clock_stands_still_until_advanced():
    clock = FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    assert clock.now() == clock.now() == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert clock.advance(hours=2, minutes=30) == datetime(2026, 3, 1, 14, 30, tzinfo=UTC)
    assert clock.now() == datetime(2026, 3, 1, 14, 30, tzinfo=UTC)


def test_a_frozen_clock_starts_on_a_fixed_aware_monday_morning():
    now = FrozenClock().now()
    assert now.tzinfo is not None and now.weekday() == 0 and now.hour == 9
    assert FrozenClock().now() == now  # the same for every test


def test_a_naive_time_is_taken_as_utc():
    assert as_utc(datetime(2026, 1, 5, 9, 0)) == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert as_utc(datetime(2026, 1, 5, 9, 0)).tzinfo is UTC


def test_an_aware_time_is_converted_to_utc():
    belgrade = timezone(timedelta(hours=1))
    converted = as_utc(datetime(2026, 1, 5, 10, 0, tzinfo=belgrade))
    assert converted == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert converted.tzinfo is UTC and converted.hour == 9
