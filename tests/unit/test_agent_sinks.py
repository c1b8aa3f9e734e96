"""An agent's sinks get each yielded value in sink order, whether a topic takes it at once
(no coroutine: ``Topic.forward_or_wait`` returns None) or the producer makes it wait."""

import asyncio

import detstream


class RecordingTopic(detstream.Topic):
    """A topic that records what is forwarded to it; ``waits`` makes its forward wait."""

    def __init__(self, app, name, log, waits=False):
        super().__init__(app, name)
        self.log, self.waits = log, waits

    def forward_or_wait(self, *, key=None, value=None, timestamp=None, headers=None):
        if not self.waits:
            self.log.append((self.get_topic_name(), value))
            return None

        async def later():
            await asyncio.sleep(0)  # room in the outbox, after a while
            self.log.append((self.get_topic_name(), value))

        return later()


def agent_with(sinks):
    app = detstream.App("sinks", broker="sim://")

    @app.agent(sink=sinks)
    async def double(stream):
        async for value in stream:
            yield value * 2

    return app, double


def test_values_reach_every_sink_in_order_without_waiting():
    log = []
    app, agent = agent_with([])
    agent.sinks = [RecordingTopic(app, "a", log), RecordingTopic(app, "b", log), log.append]

    async def main():
        waiting = agent._forward_or_wait(1)
        to_await = waiting is not None  # a plain callable sink: the rest is awaited
        await waiting
        return to_await

    assert asyncio.run(main())
    assert log == [("a", 1), ("b", 1), 1]

    log.clear()
    agent.sinks = agent.sinks[:2]
    assert agent._forward_or_wait(2) is None  # topics only, both took it: nothing to await
    assert log == [("a", 2), ("b", 2)]


def test_a_topic_that_waits_holds_the_sinks_after_it_back():
    log = []
    app, agent = agent_with([])
    agent.sinks = [RecordingTopic(app, "a", log, waits=True), RecordingTopic(app, "b", log),
                   log.append]

    async def main():
        waiting = agent._forward_or_wait(3)
        before = list(log)
        await waiting
        return before

    before = asyncio.run(main())
    assert before == []  # "b" and the callable wait for "a"
    assert log == [("a", 3), ("b", 3), 3]
