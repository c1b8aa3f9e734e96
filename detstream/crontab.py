"""A small cron parser for ``@app.crontab`` (no croniter dependency).

Five fields: minute hour day-of-month month day-of-week, each ``*``, a
number, a range ``a-b``, a list ``a,b,c`` and steps ``*/n`` / ``a-b/n`` /
``a/n``. Day of week is 0-7 (0 and 7 are Sunday) and month/weekday names
(``jan``, ``mon``) are accepted. As in cron, when both day-of-month and
day-of-week are restricted a day matching either fires.

Times are wall-clock times in a zone (``zoneinfo``); the next fire time is
computed from :func:`detstream.clock.wall_time`, which is virtual under the
simulator, so a crontab fires at exact virtual instants in ``detstream sim``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import InvalidArgument

_MONTHS = {m: i for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}

#: (name, lowest, highest, names)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression; ``next_after(dt)`` is the first match strictly after ``dt``."""

    expr: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    def _day_matches(self, d: datetime) -> bool:
        weekday = (d.weekday() + 1) % 7  # Python: Monday=0 -> cron: Sunday=0
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return weekday in self.weekdays
        if self.any_weekday:
            return d.day in self.days
        return d.day in self.days or weekday in self.weekdays

    def next_after(self, after: datetime) -> datetime:
        """The first matching minute strictly after ``after`` (an aware datetime).

        Matching is done on the zone's wall clock; a wall time skipped by a
        DST change does not fire, a repeated one fires at its first instance.
        """
        if after.tzinfo is None:
            raise InvalidArgument("Cron.next_after() needs an aware datetime")
        zone = after.tzinfo
        # walk the wall clock; compare instants so DST folds are handled
        local = after.replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
        limit = local + timedelta(days=366 * 5)
        while local < limit:
            if local.month not in self.months:
                local = _first_of_next_month(local)
                continue
            if not self._day_matches(local):
                local = (local + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if local.hour not in self.hours:
                local = (local + timedelta(hours=1)).replace(minute=0)
                continue
            if local.minute not in self.minutes:
                local += timedelta(minutes=1)
                continue
            candidate = local.replace(tzinfo=zone, fold=0)
            if _exists(candidate) and candidate > after:
                return candidate
            local += timedelta(minutes=1)
        raise InvalidArgument(f"cron expression {self.expr!r} never fires")

    def seconds_until_next(self, now: float, tz: tzinfo) -> float:
        """Seconds from the epoch time ``now`` to the next fire time in zone ``tz``."""
        current = datetime.fromtimestamp(now, tz)
        return max(0.0, self.next_after(current).timestamp() - now)


def _first_of_next_month(d: datetime) -> datetime:
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return d.replace(year=year, month=month, day=1, hour=0, minute=0)


def _exists(d: datetime) -> bool:
    """False for a wall time in a DST gap (it does not round-trip through UTC)."""
    back = d.astimezone(timezone.utc).astimezone(d.tzinfo)
    return back.replace(tzinfo=None) == d.replace(tzinfo=None)


def parse(expr: str) -> Cron:
    """Parse a 5-field cron expression; InvalidArgument names the bad field."""
    if not isinstance(expr, str):
        raise InvalidArgument(f"cron expression must be a str, got {expr!r}")
    parts = expr.split()
    if len(parts) != 5:
        raise InvalidArgument(
            f"cron expression {expr!r} must have 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    minutes, hours, days, months, weekdays = (
        frozenset(_parse_field(expr, part, name, lo, hi, names))
        for part, (name, lo, hi, names) in zip(parts, _FIELDS, strict=True)
    )
    return Cron(expr, minutes, hours, days, months, frozenset(d % 7 for d in weekdays),
                any_day=parts[2] == "*", any_weekday=parts[4] == "*")


def _parse_field(expr: str, text: str, name: str, lo: int, hi: int,
                 names: dict[str, int]) -> set[int]:
    def fail(why: str) -> InvalidArgument:
        return InvalidArgument(f"cron expression {expr!r}: bad {name} field {text!r}: {why}")

    def number(token: str) -> int:
        low = token.lower()
        if low in names:
            return names[low]
        if not token.isdigit():
            raise fail(f"{token!r} is not a number")
        value = int(token)
        if not lo <= value <= hi:
            raise fail(f"{value} is out of range {lo}-{hi}")
        return value

    out: set[int] = set()
    for item in text.split(","):
        if not item:
            raise fail("empty list item")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise fail(f"step {step_text!r} must be a number > 0")
            step = int(step_text)
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = number(a), number(b)
            if start > end:
                raise fail(f"range {base!r} runs backwards")
        else:
            start = number(base)
            end = hi if slash else start
        out.update(range(start, end + 1, step))
    return out


def zone(tz: Any) -> tzinfo:
    """A tzinfo from a zone name (``'Europe/Oslo'``) or a tzinfo."""
    if isinstance(tz, tzinfo):
        return tz
    if isinstance(tz, str):
        if tz.upper() == "UTC":
            return timezone.utc
        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidArgument(f"unknown time zone {tz!r}") from exc
    raise InvalidArgument(f"timezone must be a zone name or tzinfo, got {tz!r}")


async def run(app: Any, cron: Cron, tz: tzinfo | None, fun: Any, on_leader: bool,
              label: str) -> None:
    """The loop of one ``@app.crontab``: sleep to the next fire time, call, repeat.

    Missed fire times (a call that ran past the next one) are skipped, not
    made up; ``on_leader`` is checked at each fire time.
    """
    import asyncio

    from .app_tasks import _call_with_app
    from .clock import wall_time

    tz = tz or zone(app.conf.timezone)
    due = cron.next_after(datetime.fromtimestamp(wall_time(), tz)).timestamp()
    while True:
        await asyncio.sleep(max(0.0, due - wall_time()))
        if wall_time() < due:  # woke early (clock granularity): sleep the rest
            continue
        fired_at = due
        due = cron.next_after(datetime.fromtimestamp(max(wall_time(), fired_at), tz)).timestamp()
        if on_leader and not app.is_leader():
            continue
        app.tracer.record("crontab", name=label)
        try:
            await _call_with_app(fun, app)
        except Exception as exc:
            app.tracer.record("crontab-error", name=label, error=type(exc).__name__)
            app.log.exception("crontab %s raised %r", label, exc)
        due = max(due, cron.next_after(datetime.fromtimestamp(wall_time(), tz)).timestamp())
