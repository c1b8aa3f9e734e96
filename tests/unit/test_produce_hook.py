"""``app.on_produce_message``: handlers see every record a topic sends and may add headers.

Also Faust's send ``callback=``: called with the send's future once the broker acked it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import detstream
from sim.testing import simulate


def test_a_handler_sees_each_record_sent_and_its_headers_go_out_with_it():
    seen: list[tuple[Any, ...]] = []
    called_back: list[Any] = []

    def tag(sender: Any, *, key: Any, value: Any, partition: Any, timestamp: Any,
            headers: list[tuple[str, bytes]]) -> None:
        seen.append((sender.conf.id, key, value, partition, list(headers)))
        headers.append(("X-Tag", b"tagged"))

    async def main(cluster: Any) -> Any:
        app = detstream.App("hooked", broker="sim://")
        topic = app.topic("out", key_type=str, value_type=str, partitions=1)
        assert not app.on_produce_message.has_receivers()
        app.on_produce_message.connect(tag)
        assert app.on_produce_message.has_receivers()
        await app.start()
        future = await topic.send(key="k", value="v", headers={"X-Own": b"1"},
                                  callback=called_back.append)
        metadata = await future
        await asyncio.sleep(0)  # done callbacks run after the future's waiters
        await app.stop()
        (record,) = cluster.records("out")
        return metadata, record.headers, future

    metadata, headers, future = simulate(main, seed=1)
    assert seen == [("hooked", b"k", b"v", None, [("X-Own", b"1")])]
    assert list(headers) == [("X-Own", b"1"), ("X-Tag", b"tagged")]
    assert called_back == [future] and called_back[0].result() is metadata
