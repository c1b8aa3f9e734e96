"""Windowed tables on the simulator: event-time windows, reads, changelog keys, expiry, errors."""

import asyncio
from datetime import timedelta

import pytest

import detstream
from detstream.clock import wall_time
from detstream.errors import InvalidArgument, TableWriteError
from sim.checks import fold_changelog, tables_match_changelog
from sim.cluster import ClusterConfig
from sim.testing import run_app

FAST = ClusterConfig(initial_rebalance_delay=0.1)
#: a minute boundary (1_700_000_040 = 28_333_334 * 60): window starts are round numbers.
T = 1_700_000_040.0


class View(detstream.Record):
    page: str
    at: float = 0.0


def views_app(name="views", *, store="memory://", datadir=None, partitions=1, **settings):
    settings.setdefault("table_changelog_cache_size", 0)  # the tests read a record per write
    app = detstream.App(
        name, broker="sim://", store=store, datadir=str(datadir or "."),
        topic_partitions=partitions, **settings,
    )
    views = app.topic("views", partitions=partitions, internal=True, value_type=str)
    return app, views


async def send_at(topic, pages_and_times):
    for page, at in pages_and_times:
        await topic.send(key=page.encode(), value=page, timestamp=at)


def test_tumbling_counts_per_window_and_reads_current_now_delta_value():
    app, views = views_app()
    counts = app.Table("counts", default=int).tumbling(60)
    seen = []

    @app.agent(views)
    async def count(stream):
        async for page in stream:
            counts[page] += 1
            ws = counts[page]
            seen.append((page, ws.current(), ws.now(), ws.delta(60), ws.value()))

    async def body(cluster):
        await asyncio.sleep(1)
        await send_at(views, [("a", T), ("a", T + 10), ("b", T + 20), ("a", T + 70)])
        await asyncio.sleep(5)
        return counts.table.as_dict(), cluster.records("views-counts-changelog")

    table, changelog = run_app(app, body, config=FAST)
    first, second = (T, T + 59.9), (T + 60, T + 119.9)
    assert seen == [
        ("a", 1, 1, 0, 1),
        ("a", 2, 2, 0, 2),
        ("b", 1, 1, 0, 1),  # now(): the partition's newest window is still the first one
        ("a", 1, 1, 2, 1),  # delta(60): the previous minute
    ]
    assert table == {("a", first): 2, ("b", first): 1, ("a", second): 1}
    # the changelog key is Faust's: JSON [key, [start, end]]
    assert changelog[0].key == b'["a",[1700000040.0,1700000099.9]]'
    assert changelog[0].value == b"1"


def test_hopping_write_updates_every_window_of_the_timestamp():
    app, views = views_app("hop")
    counts = app.Table("counts", default=int).hopping(10, 5)
    reads = []

    @app.agent(views)
    async def count(stream):
        async for page in stream:
            counts[page] += 1
            reads.append((counts[page].current(), counts[page].now()))

    async def body(cluster):
        await asyncio.sleep(1)
        await send_at(views, [("a", T + 12), ("a", T + 16)])
        await asyncio.sleep(5)
        return counts.table.as_dict(), len(cluster.records("hop-counts-changelog"))

    table, records = run_app(app, body, config=FAST)
    assert table == {
        ("a", (T + 5, T + 14.9)): 1,
        ("a", (T + 10, T + 19.9)): 2,
        ("a", (T + 15, T + 24.9)): 1,
    }
    assert records == 4  # two windows per event
    # current(): the latest window of the timestamp; now(): the oldest window of the newest end
    assert reads == [(1, 1), (1, 1)]


def test_hopping_windows_assigned_one_list_do_not_share_it():
    """Faust's hopping_2 pattern: read the current window's list, append, assign it back.

    The assignment goes to every window of the timestamp; if they shared the
    list, an event read later through the newer window (a late event, here
    T + 7 after T + 11) would append to the older window too, behind its
    changelog's back.
    """
    app, views = views_app("hop-lists")
    events = app.Table("events", default=list).hopping(6, 3)

    @app.agent(views)
    async def collect(stream):
        async for page in stream:
            pages = events["k"].value()
            pages.append(page)
            events["k"] = pages

    async def body(cluster):
        await asyncio.sleep(1)
        await send_at(views, [("a", T + 7), ("b", T + 11), ("c", T + 10), ("d", T + 7)])
        await asyncio.sleep(5)
        return events.table.as_dict(), tables_match_changelog([app], cluster)

    table, violation = run_app(app, body, config=FAST)
    assert violation is None
    assert table == {
        ("k", (T + 3, T + 8.9)): ["b", "c", "d"],
        ("k", (T + 6, T + 11.9)): ["b", "c", "d"],
        ("k", (T + 9, T + 14.9)): ["b", "c"],  # d is not in it: it came at T + 7
    }


def test_relative_to_field_and_fixed_time_pick_the_windows():
    app = detstream.App("field", broker="sim://", topic_partitions=1)
    views = app.topic("views", partitions=1, internal=True, value_type=View)
    table = app.Table("counts", default=int).tumbling(60)
    by_field = table.relative_to_field(View.at)
    fixed = table.relative_to(T + 130)

    @app.agent(views)
    async def count(stream):
        async for view in stream:
            by_field[view.page] += 1
            fixed[view.page] += 10

    async def body(cluster):
        await asyncio.sleep(1)
        await views.send(key=b"a", value=View(page="a", at=T + 61), timestamp=T)
        await asyncio.sleep(5)
        return table.table.as_dict()

    assert run_app(app, body, config=FAST) == {
        ("a", (T + 60, T + 119.9)): 1,
        ("a", (T + 120, T + 179.9)): 10,
    }


def test_relative_to_now_uses_the_virtual_wall_clock():
    app, views = views_app("now")
    counts = app.Table("counts", default=int).tumbling(10).relative_to_now()
    stamps = []

    @app.agent(views)
    async def count(stream):
        async for page in stream:
            stamps.append(wall_time())
            counts[page] += 1

    async def body(cluster):
        await asyncio.sleep(1)
        await send_at(views, [("a", 5.0)])  # an event time far in the past: ignored
        await asyncio.sleep(5)
        return counts.table.as_dict()

    table = run_app(app, body, config=FAST)
    [(key, window)] = table
    assert key == "a" and window[0] <= stamps[0] <= window[1] + 0.1
    assert 1_700_000_000 <= window[0] < 1_700_000_100  # virtual wall time, not the host clock


def test_wrapper_keys_items_values_and_ansitable():
    app, views = views_app("views-api")
    counts = app.Table("counts", default=int).tumbling(60)
    seen = {}

    @app.agent(views)
    async def count(stream):
        async for page in stream:
            counts[page] += 1
            seen["items"] = dict(counts.items())
            seen["values"] = sorted(counts.values())
            seen["delta"] = dict(counts.items().delta(60))
            seen["contains"] = ("b" in counts, "a" in counts)
            seen["ansi"] = counts.as_ansitable()

    async def body(cluster):
        await asyncio.sleep(1)
        await send_at(views, [("a", T), ("b", T + 1), ("a", T + 2), ("b", T + 61)])
        await asyncio.sleep(5)
        return sorted(counts.keys()), len(counts), list(counts)

    keys, length, iterated = run_app(app, body, config=FAST)
    assert keys == ["a", "b"] and length == 2 and sorted(iterated) == keys
    # the last event (b at T+61) picks the second minute: a has no count there yet
    assert seen["items"] == {"a": 0, "b": 1}
    assert seen["values"] == [0, 1]
    assert seen["delta"] == {"a": 2, "b": 1}
    assert seen["contains"] == (True, False)  # a has no window at T+61
    assert "counts" in seen["ansi"] and "'b'" in seen["ansi"]


def test_set_and_delete_through_the_wrapper():
    app, views = views_app("setdel")
    last = app.Table("last", default=str).tumbling(60)

    @app.agent(views)
    async def remember(stream):
        async for page in stream:
            if page.startswith("-"):
                del last["k"]
            else:
                last["k"] = page

    async def body(cluster):
        await asyncio.sleep(1)
        await send_at(views, [("x", T), ("y", T + 1), ("z", T + 61), ("-", T + 62)])
        await asyncio.sleep(5)
        return last.table.as_dict(), fold_changelog(last.table, cluster)

    table, changelog = run_app(app, body, config=FAST)
    assert table == changelog == {("k", (T, T + 59.9)): "y"}


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_expired_windows_are_deleted_with_tombstones_and_closed(tmp_path, store):
    app, views = views_app("expiry", store=store, datadir=tmp_path, table_cleanup_interval=5)
    closed = []

    async def on_close(key, value):
        closed.append((key, value, wall_time()))

    counts = app.Table("counts", default=int, on_window_close=on_close).tumbling(
        10, expires=timedelta(seconds=20)
    )

    @app.agent(views)
    async def count(stream):
        async for page in stream:
            counts[page] += 1

    async def body(cluster):
        await asyncio.sleep(1)
        now = wall_time()
        await send_at(views, [("a", now), ("b", now), ("a", now + 1)])
        await asyncio.sleep(2)
        before = counts.table.as_dict()
        await asyncio.sleep(60)
        changelog = [(r.key, r.value) for r in cluster.records("expiry-counts-changelog")]
        return before, counts.table.as_dict(), changelog, fold_changelog(counts.table, cluster)

    before, after, changelog, fold = run_app(app, body, config=FAST)
    assert sorted(v for v in before.values()) == [1, 2]
    assert after == fold == {}
    tombstones = [key for key, value in changelog if value is None]
    assert len(tombstones) == 2
    assert sorted((key[0], value) for key, value, _ in closed) == [("a", 2), ("b", 1)]
    for key, _value, at in closed:
        assert counts.window.stale(key[1][1], at)  # closed only once stale
        assert at - key[1][1] < 20 + 10 + 5 + 1  # and within a cleanup interval of that


def test_late_event_reopening_a_closed_window_is_not_closed_twice():
    app, views = views_app("late", table_cleanup_interval=5)
    closed = []
    counts = app.Table(
        "counts", default=int, on_window_close=lambda key, value: closed.append(key)
    ).tumbling(10, expires=10)

    @app.agent(views)
    async def count(stream):
        async for page in stream:
            counts[page] += 1

    async def body(cluster):
        await asyncio.sleep(1)
        start = wall_time()
        await send_at(views, [("a", start)])
        await asyncio.sleep(40)
        await send_at(views, [("a", start)])  # late: its window closed already
        await asyncio.sleep(40)
        records = cluster.records("late-counts-changelog")
        return counts.table.as_dict(), [r.value for r in records]

    table, changelog = run_app(app, body, config=FAST)
    assert table == {}
    assert changelog == [b"1", None, b"1", None]  # closed twice (two tombstones) ...
    assert len(closed) == 1  # ... but its callback ran once, as Faust


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_windowed_table_recovers_its_windows_from_the_changelog(tmp_path, store):
    def build(name):
        app, views = views_app("wrec", store=store, datadir=tmp_path, partitions=2)
        app.client_name = name
        counts = app.Table("counts", default=int).hopping(20, 10)

        @app.agent(views)
        async def count(stream):
            async for page in stream:
                counts[page] += 1

        return app, views, counts

    async def main(cluster):
        first, views, counts = build("w1")
        first.trace_hook = cluster.trace.record
        await first.start()
        await asyncio.sleep(1)
        await send_at(views, [(p, T + i * 7) for i, p in enumerate("abcabcaab")])
        await asyncio.sleep(5)
        before = counts.table.as_dict()
        await first.stop()
        second, _, recovered = build("w1b")
        second.trace_hook = cluster.trace.record
        await second.start()
        await asyncio.sleep(5)
        after = recovered.table.as_dict()
        violation = tables_match_changelog([second], cluster)
        keys = list(recovered.table.data.keys())
        await second.stop()
        return before, after, violation, keys

    from sim.testing import simulate

    before, after, violation, keys = simulate(main, seed=7, config=FAST)
    assert violation is None
    assert after == before and len(before) > 9
    assert all(isinstance(k, tuple) and isinstance(k[1], tuple) for k in keys)


def test_windowed_table_write_from_a_concurrent_agent_is_refused():
    app, views = views_app("conc")
    counts = app.Table("counts", default=int).tumbling(60)
    errors = []

    @app.agent(views, concurrency=2, on_error=lambda agent, exc: errors.append(exc))
    async def count(stream):
        async for page in stream:
            counts[page] += 1

    async def body(cluster):
        await asyncio.sleep(1)
        await send_at(views, [("a", T)])
        await asyncio.sleep(3)

    run_app(app, body, config=FAST)
    assert errors and isinstance(errors[0], TableWriteError)
    assert "concurrency=2" in str(errors[0])


def test_reads_outside_stream_iteration_need_a_time():
    app = detstream.App("outside", broker="sim://")
    counts = app.Table("counts", default=int).tumbling(60)
    with pytest.raises(RuntimeError, match="outside of stream iteration"):
        counts["a"].current()
    assert counts.relative_to(T)["a"].value() == 0
    assert counts["a"].now() == 0  # now() outside a stream: the wall clock


def test_bad_windowing_is_refused_clearly():
    app = detstream.App("bad", broker="sim://")
    with pytest.raises(InvalidArgument, match="step must be > 0"):
        app.Table("a").hopping(10, 0)
    with pytest.raises(InvalidArgument, match="step .* must not exceed"):
        app.Table("b").hopping(10, 20)
    table = app.Table("c", default=int)
    table.tumbling(10)
    with pytest.raises(InvalidArgument, match="already windowed"):
        table.tumbling(20)
    assert table.tumbling(10).window == table.window  # the same window again is fine
    with pytest.raises(InvalidArgument, match="needs a table made by app.Table"):
        detstream.WindowWrapper({}, key_index=False)  # type: ignore[arg-type]
    from detstream.tables.windowed import make_windowed

    with pytest.raises(InvalidArgument, match="needs a table made by app.Table"):
        make_windowed({}, detstream.TumblingWindow(10))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="GlobalTable 'g' cannot be windowed"):
        app.GlobalTable("g").tumbling(10)
    with pytest.raises(InvalidArgument, match="SetTable 's' cannot be windowed"):
        app.SetTable("s").tumbling(10)
    with pytest.raises(InvalidArgument, match="relative_to"):
        table.tumbling(10).relative_to(object())


def test_table_window_argument_equals_using_window():
    app = detstream.App("winarg", broker="sim://")
    table = app.Table("t", default=int, window=detstream.SlidingWindow(5, 5, 60))
    assert isinstance(table.window, detstream.SlidingWindow)
    wrapper = table.using_window(detstream.SlidingWindow(5, 5, 60))
    assert isinstance(wrapper, detstream.WindowWrapper)
    assert wrapper.name == "t"


def test_no_window_is_closed_during_a_rebalance():
    """Faust's cleanup waits while ``app.rebalancing``: a partition being taken (its changelog's
    end looked up, its recovery not begun) written past that end was wiped and replayed whole
    (windowed_hopping, chaos seed 134 on the wire)."""
    from detstream.tables.expiry import WindowExpiry

    app, views = views_app("rebalancing", table_cleanup_interval=1000)  # swept here, by hand
    counts = app.Table("counts", default=int).tumbling(10, expires=10)
    expiry = WindowExpiry(counts.table)

    @app.agent(views)
    async def count(stream):
        async for page in stream:
            counts[page] += 1

    async def body(cluster):
        await asyncio.sleep(1)
        await send_at(views, [("a", wall_time())])
        await asyncio.sleep(30)  # stale now
        app.on_rebalance_start()
        during = await expiry.sweep()
        app.on_rebalance_end()
        after = await expiry.sweep()
        return during, after

    assert run_app(app, body, config=FAST) == (0, 1)
