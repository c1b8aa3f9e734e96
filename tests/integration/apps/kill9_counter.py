"""A keyed counter, for ``test_kill9_counts`` (issue 9): exactly-once unless ``IT_GUARANTEE``
says otherwise.

Every input record (key: one of a few dozen key names, value: a unique id) adds 1
to ``counts[key]`` and is forwarded, key and value unchanged, to the output topic.
Broker, app id, topic names, store, processing guarantee and the worker's stable
name come from the environment, so the test can run three of these and restart
each one under the same name after ``kill -9``.
"""

import os

import detstream

PARTITIONS = int(os.environ["IT_PARTITIONS"])

app = detstream.App(
    os.environ["IT_APP_ID"],
    broker=os.environ["DETSTREAM_IT_BROKER"],
    store=os.environ.get("IT_STORE", "rocksdb://"),
    processing_guarantee=os.environ.get("IT_GUARANTEE", "exactly_once"),
    # a killed worker's open transaction blocks read_committed readers at most this long
    producer_transaction_timeout=5.0,
    topic_partitions=PARTITIONS,
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    broker_rebalance_timeout=10.0,
    broker_commit_interval=0.5,
)
# a name that survives restarts: the restarted worker fences and aborts the killed
# one's transaction at once instead of after producer_transaction_timeout
app.client_name = os.environ.get("IT_WORKER_NAME", app.client_name)

events = app.topic(os.environ["IT_INPUT"], key_type=str, value_type=str)
output = app.topic(os.environ["IT_OUTPUT"], key_type=str, value_type=str)
counts = app.Table("counts", default=int, key_type=str, value_type=int, partitions=PARTITIONS)


@app.agent(events)
async def count(stream):
    async for key, value in stream.items():
        counts[key] += 1
        await output.send(key=key, value=value)


if __name__ == "__main__":
    app.main()
