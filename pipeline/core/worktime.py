"""Calendar and working-time durations.

Hotlines report notice-and-takedown times both in calendar time and in working time
(the hotline's working week, less its public holidays). A `WorkCalendar` holds the
working hours of each weekday in the hotline's time zone and the holiday list, and
answers two questions:

- `working_seconds(start, end)`: the working time between two instants (exact, DST
  included, since each day's window is converted to UTC through the time zone);
- `hourly_table(start, end)`: the same knowledge as rows a database can join, so the
  statistics export computes working durations in SQL for a million cases. Each row is
  one UTC hour: the working seconds from the table's origin to the start of the hour
  (`cum`) and the part of the hour that is working time (`ws`..`we`, seconds into the
  hour). The working position of an instant t in hour h is
  `cum + clamp(t - h*3600 - ws, 0, we - ws)`; a working duration is the difference of
  two positions. (Exact unless two separate working windows fall inside the same UTC
  hour, which needs a window ending after 23:00 and the next starting before 01:00 with
  a gap between them; then that hour counts its hull.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from pipeline.core.clock import as_utc


class WorktimeSection(Protocol):
    """What a calendar is made from: `worktime` of the configuration."""

    timezone: str
    holidays: list[date]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOUR = 3600


def parse_window(text: str) -> tuple[time, time] | None:
    """'09:00-17:00' -> (09:00, 17:00); '' or 'off' -> None. '24:00' ends a day."""
    text = text.strip().lower()
    if text in ("", "off", "closed", "-"):
        return None
    try:
        start_text, end_text = (part.strip() for part in text.split("-"))
        start = time.fromisoformat(start_text)
        end = time.max if end_text in ("24:00", "24:00:00") else time.fromisoformat(end_text)
    except ValueError:
        raise ValueError(f"{text!r} is not a window like 09:00-17:00") from None
    if end <= start:
        raise ValueError(f"{text!r}: the window must end after it starts")
    return start, end


@dataclass(frozen=True)
class WorkCalendar:
    timezone: ZoneInfo
    week: tuple[tuple[time, time] | None, ...]  # Monday first, seven entries
    holidays: frozenset[date]

    @classmethod
    def from_settings(cls, section: WorktimeSection) -> WorkCalendar:
        week = tuple(parse_window(getattr(section, day)) for day in WEEKDAYS)
        return cls(ZoneInfo(section.timezone), week, frozenset(section.holidays))

    @classmethod
    def standard(cls, timezone: str = "UTC", holidays: frozenset[date] = frozenset()
                 ) -> WorkCalendar:
        """Monday to Friday, 09:00-17:00."""
        window = (time(9), time(17))
        return cls(ZoneInfo(timezone), (window,) * 5 + (None, None), holidays)

    @property
    def working_day_seconds(self) -> float:
        """The length of an average working day: what "one working day" means when a
        removal time is compared with 1, 3 and 7 days of working time."""
        lengths = [_seconds(w) for w in self.week if w is not None]
        return sum(lengths) / len(lengths) if lengths else 0.0

    def window_on(self, day: date) -> tuple[datetime, datetime] | None:
        """The working window of a local date, in UTC (None on days off)."""
        window = self.week[day.weekday()]
        if window is None or day in self.holidays:
            return None
        start = datetime.combine(day, window[0], self.timezone)
        if window[1] == time.max:
            end = datetime.combine(day + timedelta(days=1), time(0), self.timezone)
        else:
            end = datetime.combine(day, window[1], self.timezone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def windows(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working windows (UTC) overlapping [start, end), clipped to it, adjacent ones
        merged."""
        start, end = as_utc(start), as_utc(end)
        day = start.astimezone(self.timezone).date() - timedelta(days=1)
        last = end.astimezone(self.timezone).date() + timedelta(days=1)
        pending: tuple[datetime, datetime] | None = None
        while day <= last:
            window = self.window_on(day)
            day += timedelta(days=1)
            if window is None:
                continue
            lo, hi = max(window[0], start), min(window[1], end)
            if lo >= hi:
                continue
            if pending is not None and pending[1] >= lo:
                pending = (pending[0], max(pending[1], hi))
                continue
            if pending is not None:
                yield pending
            pending = (lo, hi)
        if pending is not None:
            yield pending

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """Working time between two instants, in seconds (0 when end <= start)."""
        if as_utc(end) <= as_utc(start):
            return 0.0
        return sum((hi - lo).total_seconds() for lo, hi in self.windows(start, end))

    def hourly_table(self, start: datetime, end: datetime) -> list[tuple[int, float, int, int]]:
        """Rows (hour, cum, ws, we) for every UTC hour from start's to end's (see the
        module's docstring). `hour` is seconds since the epoch divided by 3600."""
        first = int(as_utc(start).timestamp()) // HOUR
        last = int(as_utc(end).timestamp()) // HOUR
        origin = datetime.fromtimestamp(first * HOUR, UTC)
        stop = datetime.fromtimestamp((last + 1) * HOUR, UTC)
        per_hour: dict[int, list[int]] = {}
        for lo, hi in self.windows(origin, stop):
            a, b = int(lo.timestamp()), int(hi.timestamp())
            hour = a // HOUR
            while hour * HOUR < b:
                ws = max(a - hour * HOUR, 0)
                we = min(b - hour * HOUR, HOUR)
                seen = per_hour.get(hour)
                per_hour[hour] = [min(seen[0], ws), max(seen[1], we)] if seen else [ws, we]
                hour += 1
        rows: list[tuple[int, float, int, int]] = []
        cum = 0.0
        for hour in range(first, last + 1):
            ws, we = per_hour.get(hour, (0, 0))
            rows.append((hour, cum, ws, we))
            cum += we - ws
        return rows


def _seconds(window: tuple[time, time]) -> float:
    def of(t: time) -> float:
        return 86_400.0 if t == time.max else t.hour * 3600 + t.minute * 60 + t.second

    return of(window[1]) - of(window[0])
