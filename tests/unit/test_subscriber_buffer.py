"""SubscriberBuffer: a fetched batch goes in whole; back-pressure waits between batches."""

from __future__ import annotations

import asyncio

from detstream.engine.buffer import SubscriberBuffer


def test_a_batch_goes_in_whole_past_the_bound_and_the_next_fetch_waits_for_room():
    async def main():
        buffer: SubscriberBuffer[int] = SubscriberBuffer(3)
        buffer.put_batch(range(5))  # no await: one step, whatever the bound
        room = asyncio.ensure_future(buffer.wait_for_room())
        await asyncio.sleep(0)
        waiting = [not room.done()]
        taken = [buffer.get_nowait(), await buffer.get()]
        await asyncio.sleep(0)
        waiting.append(not room.done())  # 3 left: still at the bound
        taken.append(buffer.get_nowait())
        await asyncio.sleep(0)
        waiting.append(not room.done())
        return buffer.maxsize, buffer.qsize(), taken, waiting

    maxsize, left, taken, waiting = asyncio.run(main())
    assert maxsize == 3 and left == 2 and taken == [0, 1, 2]
    assert waiting == [True, True, False]


def test_single_puts_wait_while_the_buffer_is_at_its_bound():
    async def main():
        buffer: SubscriberBuffer[str] = SubscriberBuffer(1)
        await buffer.put("a")
        second = asyncio.ensure_future(buffer.put("b"))
        await asyncio.sleep(0)
        blocked = not second.done()
        first = await buffer.get()
        await second
        return blocked, first, await buffer.get()

    assert asyncio.run(main()) == (True, "a", "b")


def test_each_item_of_a_batch_wakes_a_waiting_getter():
    """An agent's concurrent actors share one buffer: a batch must wake all of them."""

    async def main():
        buffer: SubscriberBuffer[int] = SubscriberBuffer(10)
        getters = [asyncio.ensure_future(buffer.get()) for _ in range(3)]
        await asyncio.sleep(0)
        buffer.put_batch([7, 8, 9])
        return sorted(await asyncio.gather(*getters))

    assert asyncio.run(main()) == [7, 8, 9]
