"""Working time: the working week, holidays, time zones, and the SQL table."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.config import WorktimeSection
from pipeline.core.worktime import WorkCalendar, parse_window

UTC_WEEK = WorkCalendar.standard("UTC")


def at(day: int, hour: int, minute: int = 0, month: int = 1) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def test_a_span_inside_one_working_day_counts_in_full() -> None:
    assert UTC_WEEK.working_seconds(at(5, 10), at(5, 12, 30)) == 2.5 * 3600


def test_time_outside_working_hours_does_not_count() -> None:
    # Monday 5 January 2026, 07:00 to 19:00: only 09:00-17:00 counts.
    assert UTC_WEEK.working_seconds(at(5, 7), at(5, 19)) == 8 * 3600


def test_a_weekend_does_not_count() -> None:
    # Friday 9 January 16:00 to Monday 12 January 10:00: one hour each side.
    assert UTC_WEEK.working_seconds(at(9, 16), at(12, 10)) == 2 * 3600


def test_a_holiday_does_not_count() -> None:
    calendar = WorkCalendar.standard("UTC", holidays=frozenset({date(2026, 1, 7)}))
    # Tuesday 6 January 09:00 to Thursday 8 January 17:00: two days, not three.
    assert calendar.working_seconds(at(6, 9), at(8, 17)) == 16 * 3600


def test_working_hours_follow_the_time_zone_across_daylight_saving_time() -> None:
    belgrade = WorkCalendar.standard("Europe/Belgrade")
    # Friday 27 March 2026 09:00 CET is 08:00 UTC; on Monday 30 March (summer time)
    # 09:00-17:00 is 07:00-15:00 UTC.
    friday = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
    monday_end = datetime(2026, 3, 30, 15, 0, tzinfo=UTC)
    assert belgrade.working_seconds(friday, monday_end) == 16 * 3600
    assert belgrade.working_seconds(monday_end, monday_end + timedelta(hours=2)) == 0


def test_an_end_before_the_start_is_no_time() -> None:
    assert UTC_WEEK.working_seconds(at(6, 12), at(5, 12)) == 0


def test_the_working_week_comes_from_configuration() -> None:
    section = WorktimeSection(timezone="UTC", sat="10:00-14:00", fri="off", mon="00:00-24:00")
    calendar = WorkCalendar.from_settings(section)
    # Friday 9 to Monday 12 January 2026, midnight to midnight: Saturday 4h + Monday 24h.
    assert calendar.working_seconds(at(9, 0), at(13, 0)) == 28 * 3600
    assert calendar.working_day_seconds == (3 * 8 + 4 + 24) * 3600 / 5


@pytest.mark.parametrize("text", ["9-17", "17:00-09:00", "09:00", "nine-five"])
def test_a_bad_window_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_window(text)


def test_a_bad_configuration_names_the_key() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        WorktimeSection(tue="18:00-08:00")
    assert "tue" in str(info.value)
    with pytest.raises(ValidationError):
        WorktimeSection(timezone="Mars/Olympus")
    assert parse_window("off") is None
    assert parse_window("08:30-24:00") == (time(8, 30), time.max)


def position(table: list[tuple[int, float, int, int]], t: datetime) -> float:
    """The working position of t from the hourly table, as the SQL computes it."""
    epoch = t.timestamp()
    hour = int(epoch // 3600)
    row = next(r for r in table if r[0] == hour)
    return row[1] + min(max(epoch - hour * 3600 - row[2], 0), row[3] - row[2])


instants = st.datetimes(min_value=datetime(2026, 3, 20), max_value=datetime(2026, 4, 10),
                        timezones=st.just(UTC))


@settings(max_examples=200, deadline=None)
@given(instants, instants, st.sampled_from(["UTC", "Europe/Belgrade", "Asia/Kolkata",
                                            "America/St_Johns"]))
def test_the_hourly_table_gives_the_same_durations_as_the_calendar(
    a: datetime, b: datetime, zone: str,
) -> None:
    start, end = min(a, b), max(a, b)
    calendar = WorkCalendar.standard(zone, holidays=frozenset({date(2026, 4, 3)}))
    table = calendar.hourly_table(datetime(2026, 3, 19, tzinfo=UTC),
                                  datetime(2026, 4, 11, tzinfo=UTC))
    expected = calendar.working_seconds(start, end)
    assert position(table, end) - position(table, start) == pytest.approx(expected, abs=1e-6)
