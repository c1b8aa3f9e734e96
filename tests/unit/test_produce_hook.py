"""``app.on_produce_message``: handlers see every record the app sends and may add headers.

Topic sends, table changelogs, agent replies and ``detstream send``, as Faust's
producer sends the signal for every record; without a handler a changelog
flush checks once and calls nothing per record.

Also Faust's send ``callback=``: called with the send's future once the broker acked it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import detstream
from detstream.cli.send import plan_send, send_records
from sim.cluster import ClusterConfig
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
    # the encoded record: a str value is JSON text under the app's default value_serializer
    assert seen == [("hooked", b"k", b'"v"', None, [("X-Own", b"1")])]
    assert list(headers) == [("X-Own", b"1"), ("X-Tag", b"tagged")]
    assert called_back == [future] and called_back[0].result() is metadata


# -- every record the producer sends, as Faust's producer sends the signal from ``send`` ------
FAST = ClusterConfig(initial_rebalance_delay=0.1)


class Seen:
    """An ``on_produce_message`` handler noting what it saw and tagging each record."""

    def __init__(self) -> None:
        self.records: list[tuple[Any, ...]] = []

    def __call__(self, sender: Any, *, key: Any, value: Any, partition: Any, timestamp: Any,
                 headers: list[tuple[str, bytes]]) -> None:
        self.records.append((key, value, partition, list(headers)))
        headers.append(("X-Seen", b"1"))


class CountingSignal:
    """Wraps an app's ``on_produce_message``, counting the checks and sends the senders make."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.checks = 0
        self.sends = 0

    def has_receivers(self) -> bool:
        self.checks += 1
        return bool(self.inner.has_receivers())

    def send(self, **kwargs: Any) -> None:
        self.sends += 1
        self.inner.send(**kwargs)

    def connect(self, fun: Any) -> Any:
        return self.inner.connect(fun)


def counting(app: detstream.App) -> CountingSignal:
    signal = CountingSignal(app.on_produce_message)
    app.__dict__["on_produce_message"] = signal  # the bound signal the descriptor keeps there
    return signal


def table_app(name: str) -> tuple[detstream.App, Any, Any]:
    app = detstream.App(name, broker="sim://", topic_partitions=1)
    words = app.topic("words", key_type=str, value_type=str, partitions=1, internal=True)
    counts = app.Table("counts", default=int)
    every = app.GlobalTable("every", default=int, use_partitioner=True)

    @app.agent(words)
    async def count(stream: Any) -> None:
        async for word in stream:
            for i in range(50):  # one event, many keys: one changelog flush
                counts[f"{word}-{i}"] += 1
            every[word] += 1

    return app, words, counts


def run_table_app(name: str, *, hooked: bool) -> tuple[Seen, CountingSignal, Any, Any]:
    seen = Seen()

    async def main(cluster: Any) -> Any:
        app, words, _ = table_app(name)
        signal = counting(app)
        if hooked:
            app.on_produce_message.connect(seen)
        await app.start()
        await asyncio.sleep(2)
        checks_before = signal.checks
        await words.send(key="w", value="fox")
        await asyncio.sleep(10)  # processed, committed: the changelog is flushed
        signal.checks -= checks_before
        await app.stop()
        changelog = cluster.records(f"{name}-counts-changelog")
        global_changelog = cluster.records(f"{name}-every-changelog")
        return signal, changelog, global_changelog

    signal, changelog, global_changelog = simulate(main, seed=1, config=FAST)
    return seen, signal, changelog, global_changelog


def test_table_changelog_records_go_through_the_hook_and_carry_its_headers():
    seen, signal, changelog, global_changelog = run_table_app("hooked-tables", hooked=True)
    assert len(changelog) == 50 and len(global_changelog) == 1
    assert all(list(record.headers) == [("X-Seen", b"1")] for record in changelog)
    assert list(global_changelog[0].headers) == [("X-Seen", b"1")]
    changelog_seen = {(key, value, partition) for key, value, partition, _ in seen.records}
    assert (b'"fox-0"', b"1", 0) in changelog_seen  # the changelog's bytes and partition
    assert {(r.key, r.value, r.partition) for r in changelog} <= changelog_seen
    # the topic send, 50 changelog records, the GlobalTable's one
    assert len(seen.records) == 1 + 50 + 1 == signal.sends


def test_without_a_handler_a_changelog_flush_checks_once_and_calls_nothing_per_record():
    _, signal, changelog, _ = run_table_app("bare-tables", hooked=False)
    assert len(changelog) == 50 and all(not record.headers for record in changelog)
    assert signal.sends == 0
    # the topic send, the GlobalTable write, the flush of 50 records: one check each
    assert signal.checks == 3


def test_agent_replies_go_through_the_hook():
    seen = Seen()

    async def main(cluster: Any) -> Any:
        app = detstream.App("hooked-rpc", broker="sim://", topic_partitions=1)

        @app.agent()
        async def double(stream: Any) -> Any:
            async for value in stream:
                yield value * 2

        app.on_produce_message.connect(seen)
        await app.start()
        try:
            answer = await double.ask(21, timeout=30)
        finally:
            await app.stop()
        return answer, cluster.records(app.conf.reply_to)

    answer, replies = simulate(main, seed=1, config=FAST)
    assert answer == 42
    (reply,) = replies
    assert dict(reply.headers)["X-Seen"] == b"1"
    reply_seen = [r for r in seen.records if r[1] == reply.value]
    assert len(reply_seen) == 1
    assert [name for name, _ in reply_seen[0][3]] == ["Faust-Ag-CorrelationId"]
    assert len(seen.records) == 2  # the request (a topic send) and the reply


def test_detstream_send_goes_through_the_hook():
    seen = Seen()

    async def main(cluster: Any) -> Any:
        worker = detstream.App("hooked-send", broker="sim://", topic_partitions=1)
        worker.topic("greetings", value_type=str, internal=True)
        await worker.start()
        client = detstream.App("hooked-send", broker="sim://", topic_partitions=1)
        client.topic("greetings", value_type=str, internal=True)
        client.on_produce_message.connect(seen)
        try:
            await send_records(client, plan_send(client, "greetings", "hello", key="k"))
        finally:
            await client.stop()
            await worker.stop()
        return cluster.records("greetings")

    (record,) = simulate(main, seed=1, config=FAST)
    assert seen.records == [(b"k", b'"hello"', None, [])]  # encoded as the str topic encodes
    assert list(record.headers) == [("X-Seen", b"1")]
