"""@app.crontab: the cron parser, zones, and firing at virtual wall times in the sim."""

import asyncio
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

import detstream
from detstream.clock import wall_time
from detstream.crontab import parse
from detstream.errors import InvalidArgument
from sim import testing as sim_testing
from sim.cluster import ClusterConfig

FAST = ClusterConfig(initial_rebalance_delay=0.1)
UTC = timezone.utc


def at(*args, tz=UTC):
    return datetime(*args, tzinfo=tz)


def test_fields_lists_ranges_steps_names():
    cron = parse("0,30 9-17/2 * jan-mar mon-fri")
    assert cron.minutes == {0, 30}
    assert cron.hours == {9, 11, 13, 15, 17}
    assert cron.months == {1, 2, 3}
    assert cron.weekdays == {1, 2, 3, 4, 5}
    assert parse("*/15 * * * *").minutes == {0, 15, 30, 45}
    assert parse("5/20 * * * 7").minutes == {5, 25, 45}
    assert parse("* * * * 7").weekdays == {0}  # 7 is Sunday too


def test_next_after():
    assert parse("*/5 * * * *").next_after(at(2024, 1, 1, 10, 2, 30)) == at(2024, 1, 1, 10, 5)
    assert parse("*/5 * * * *").next_after(at(2024, 1, 1, 10, 5)) == at(2024, 1, 1, 10, 10)
    assert parse("0 0 1 1 *").next_after(at(2024, 6, 1)) == at(2025, 1, 1)
    assert parse("0 12 * * mon").next_after(at(2024, 1, 3)) == at(2024, 1, 8, 12)  # a Monday
    # day-of-month and day-of-week both restricted: either matches (cron's rule)
    assert parse("0 0 15 * fri").next_after(at(2024, 1, 1)) == at(2024, 1, 5)
    assert parse("0 0 29 2 *").next_after(at(2024, 3, 1)) == at(2028, 2, 29)


def test_timezones_and_dst():
    ny = ZoneInfo("America/New_York")
    nine = parse("0 9 * * *").next_after(datetime(2024, 1, 1, tzinfo=ny))
    assert nine.astimezone(UTC) == at(2024, 1, 1, 14)
    # 02:30 does not exist on 2024-03-10 in New York: the next one is the day after
    spring = parse("30 2 * * *").next_after(datetime(2024, 3, 10, 0, 0, tzinfo=ny))
    assert spring.replace(tzinfo=None) == datetime(2024, 3, 11, 2, 30)
    # 01:30 happens twice on 2024-11-03: fires at the first (EDT, 05:30 UTC)
    fall = parse("30 1 * * *").next_after(datetime(2024, 11, 3, 0, 0, tzinfo=ny))
    assert fall.astimezone(UTC) == at(2024, 11, 3, 5, 30)


@pytest.mark.parametrize("expr, message", [
    ("* * * *", "must have 5 fields"),
    ("60 * * * *", "bad minute field '60': 60 is out of range 0-59"),
    ("* 24 * * *", "bad hour field"),
    ("*/0 * * * *", "step '0' must be a number > 0"),
    ("* * 0 * *", "bad day of month field"),
    ("* * * 13 *", "bad month field"),
    ("* * * * 8", "bad day of week field"),
    ("5-1 * * * *", "runs backwards"),
    ("a * * * *", "'a' is not a number"),
    ("1,,2 * * * *", "empty list item"),
    ("0 0 31 2 *", "never fires"),
])
def test_bad_cron_strings(expr, message):
    with pytest.raises(InvalidArgument, match=message):
        if "never" in message:
            parse(expr).next_after(at(2024, 1, 1))
        else:
            detstream.App("bad", broker="sim://").crontab(expr)(_noop)


async def _noop():
    pass


def test_bad_arguments():
    app = detstream.App("bad", broker="sim://")
    with pytest.raises(InvalidArgument, match="unknown time zone 'Mars/Olympus'"):
        app.crontab("* * * * *", timezone="Mars/Olympus")
    with pytest.raises(InvalidArgument, match="@app.crontab needs an async def"):
        app.crontab("* * * * *")(lambda: None)


def run_app(app, body, *, seed=0):
    return sim_testing.run_app(app, body, seed=seed, config=FAST)


def test_every_five_minutes_fires_at_virtual_wall_times():
    app = detstream.App("cron5", broker="sim://")
    fired = []

    @app.crontab("*/5 * * * *")
    async def every_five():
        fired.append(wall_time())

    async def body(cluster):
        start = wall_time()
        await asyncio.sleep(950)
        return start, wall_time()

    start, end = run_app(app, body)
    expected = [t for t in range(int(start) - int(start) % 300 + 300, int(end) + 1, 300)]
    assert len(expected) == 3
    assert fired == expected  # exactly on the minute, virtual time
    assert [datetime.fromtimestamp(t, UTC).minute % 5 for t in fired] == [0, 0, 0]


def test_default_zone_is_the_timezone_setting():
    app = detstream.App("cronzone", broker="sim://", timezone="Asia/Kolkata")  # UTC+05:30
    local, utc, leader = [], [], []

    @app.crontab("0 * * * *")
    async def on_local_hour():
        local.append(datetime.fromtimestamp(wall_time(), UTC))

    @app.crontab("0 * * * *", timezone="UTC")
    async def on_utc_hour():
        utc.append(datetime.fromtimestamp(wall_time(), UTC))

    @app.crontab("*/30 * * * *", on_leader=True)
    async def lead(app):
        leader.append(app.is_leader())

    async def body(cluster):
        start = datetime.fromtimestamp(wall_time(), UTC)
        await asyncio.sleep(3000)
        return start

    start = run_app(app, body)
    assert start.minute < 30  # the sim's epoch: 22:13 UTC
    assert [(t.hour, t.minute, t.second) for t in local] == [(22, 30, 0)]
    assert [(t.hour, t.minute, t.second) for t in utc] == [(23, 0, 0)]
    assert leader and all(leader)
