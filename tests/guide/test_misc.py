"""Guide: "Miscellaneous -- Why use applications?": subclass the App to change how it works;
many applications coexist in one process."""

import asyncio

import detstream as faust

from .helpers import simulate, start_worker


class AuditedApp(faust.App):
    """A subclass that records every send: the App is the place to change behaviour."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.audit = []

    async def send(self, channel, key=None, value=None, **kwargs):
        self.audit.append((getattr(channel, "label", channel), value))
        return await super().send(channel, key=key, value=value, **kwargs)


def test_a_subclass_changes_how_the_app_works():
    app = AuditedApp("audited", broker="sim://")
    other = faust.App("plain", broker="sim://")  # another configuration, same process

    async def main(cluster):
        await start_worker(app, cluster, "w1")
        await start_worker(other, cluster, "w2")
        await asyncio.sleep(1)
        await (await app.send("events", value="x"))
        await (await other.send("events", value="y"))
        await other.stop()
        await app.stop()
        return [r.value for r in cluster.records("events")]

    assert simulate(main) == [b'"x"', b'"y"']
    assert app.audit == [("events", "x")]
    assert not hasattr(other, "audit")
