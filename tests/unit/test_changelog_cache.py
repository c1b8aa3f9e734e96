"""ChangelogCache: one record per dirty key per flush, sent under the event that wrote it last."""

from __future__ import annotations

import asyncio

import pytest

from detstream._types import RecordMetadata
from detstream.events import Event, Message, current_event, set_current_event
from detstream.tables.changelog_cache import ChangelogCache


class Sent:
    """Records the sends a flush makes, with the event each was made under; acks on demand."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None, int, int | None]] = []
        self.futures: list[asyncio.Future[RecordMetadata]] = []

    def send(self, key, value, partition):
        event = current_event()
        self.records.append((key, value, partition, event.message.offset if event else None))
        future = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    def ack_all(self) -> None:
        for offset, future in enumerate(self.futures):
            future.set_result(RecordMetadata("changelog", 0, offset, 0.0))


def processing(offset: int) -> None:
    message = Message("words", 0, offset, 0.0, b"k", b"v")
    set_current_event(Event(None, b"k", b"v", {}, message))


def cache_and_sends(limit: int = 100) -> tuple[ChangelogCache, Sent]:
    sent = Sent()
    return ChangelogCache(lambda: sent.send, lambda future: future, limit=limit), sent


def test_many_writes_of_a_key_make_one_record_with_the_last_value_and_writer():
    async def body():
        cache, sent = cache_and_sends()
        futures = []
        for offset, value in enumerate([b"1", b"2", b"3"]):
            processing(offset)
            futures.append(cache.write(0, b"fox", value))
        processing(7)
        cache.write(1, b"dog", None)  # a delete: a tombstone
        set_current_event(None)
        assert len(cache) == 2 and sent.records == []  # nothing sent before the flush
        assert cache.flush() == 2 and len(cache) == 0
        sent.ack_all()
        await asyncio.sleep(0)
        return sent.records, futures

    records, futures = asyncio.run(body())
    assert records == [(b"fox", b"3", 0, 2), (b"dog", None, 1, 7)]
    assert all(f is futures[0] for f in futures)  # the writes share the record's future
    assert futures[0].result().offset == 0


def test_dropped_partitions_fail_their_writes_futures_and_keep_the_others():
    async def body():
        cache, sent = cache_and_sends()
        lost = cache.write(0, b"a", b"1")
        kept = cache.write(1, b"b", b"1")
        cache.drop({0}, RuntimeError("given up"))
        cache.flush()
        return lost, kept, sent.records

    lost, kept, records = asyncio.run(body())
    with pytest.raises(RuntimeError, match="given up"):
        lost.result()
    assert not kept.done() and records == [(b"b", b"1", 1, None)]


def test_past_the_limit_the_dirty_keys_go_out_without_waiting_for_a_commit():
    async def body():
        cache, sent = cache_and_sends(limit=3)
        for key in (b"a", b"b"):
            cache.write(0, key, b"1")
        before = len(sent.records)
        cache.write(0, b"c", b"1")
        return before, [r[0] for r in sent.records], len(cache)

    assert asyncio.run(body()) == (0, [b"a", b"b", b"c"], 0)


def test_while_held_the_cache_grows_past_its_limit_and_the_next_write_after_sends_all():
    """Held (the worker's membership is in doubt): a zombie's early flush would land in
    changelogs its partitions' new owner writes too, so nothing goes out until it is not."""
    async def body():
        held = [True]
        sent = Sent()
        cache = ChangelogCache(lambda: sent.send, lambda future: future, limit=2,
                               held=lambda: held[0])
        for key in (b"a", b"b", b"c"):
            cache.write(0, key, b"1")
        while_held = (len(sent.records), len(cache))
        held[0] = False
        cache.write(0, b"d", b"1")
        return while_held, [r[0] for r in sent.records], len(cache)

    assert asyncio.run(body()) == ((0, 3), [b"a", b"b", b"c", b"d"], 0)


def test_a_failed_or_dropped_write_is_never_reported_as_an_unretrieved_error():
    """Nobody may look at a write's future (a memory store, a dropped partition): its error is
    the failed commit's, so the future itself never logs "exception was never retrieved"."""
    reported: list[dict] = []

    async def body():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
        cache, sent = cache_and_sends()
        failed = cache.write(0, b"fox", b"1")
        dropped = cache.write(1, b"dog", b"2")
        cache.drop([1], RuntimeError("partition given up"))
        cache.flush()
        sent.futures[0].set_exception(RuntimeError("refused"))
        await asyncio.sleep(0)
        assert isinstance(failed.exception(), RuntimeError) and isinstance(dropped.exception(), RuntimeError)

    async def unwatched():  # the same, with futures nobody ever looks at
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
        cache, sent = cache_and_sends()
        cache.write(0, b"fox", b"1")
        cache.write(1, b"dog", b"2")
        cache.drop([1], RuntimeError("partition given up"))
        cache.flush()
        sent.futures[0].set_exception(RuntimeError("refused"))
        sent.futures[0].exception()
        await asyncio.sleep(0)
        del cache, sent
        import gc

        gc.collect()

    asyncio.run(body())
    asyncio.run(unwatched())
    assert reported == []


def test_a_write_by_an_event_is_sent_under_it_and_a_zero_limit_flushes_every_write():
    async def body():
        cache, sent = cache_and_sends(limit=100)
        processing(3)
        writer = current_event()
        set_current_event(None)
        cache.write_by(0, b"fox", b"1", writer, None)  # (a table passes the event it read)
        before = len(sent.records)
        cache.limit = 0  # a limit set later counts too
        cache.write(1, b"dog", b"2")
        return before, sent.records, len(cache)

    assert asyncio.run(body()) == (0, [(b"fox", b"1", 0, 3), (b"dog", b"2", 1, None)], 0)
