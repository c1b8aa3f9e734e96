"""processing_guarantee='exactly_once' on a real broker: SIGKILL a worker mid-stream, exact counts.

Two ``detstream worker`` processes run the word count of ``test_worker``
(sentences -> words repartition -> table) with exactly-once; one is killed
with SIGKILL mid-stream. Its open transaction is aborted by the broker
(``producer_transaction_timeout``, short here), the survivor takes its
partitions over and redoes its uncommitted work from the committed offsets.
The changelog read read_committed then holds every count exactly once (the
at-least-once version of this test, in ``test_worker``, double counts).
Every wait polls the broker with a deadline; none sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal

from tests.integration.helpers import PARTITIONS, WorkerProcess, fold_topic, produce
from tests.integration.test_worker import (
    APP_SOURCE,
    SENTENCES,
    committed_vs_end,
    expected_counts,
)

EXACTLY_ONCE = """
app.conf.processing_guarantee = "exactly_once"
app.conf.producer_transaction_timeout = 5.0  # a killed worker's transaction blocks readers this long
"""


def fold_committed(bootstrap: str, topic: str, done, what: str) -> dict[str, int]:
    """Read ``topic`` from the beginning read_committed, folding it, until ``done(table)``
    and every partition is read to its last stable offset."""
    return asyncio.run(fold_topic(bootstrap, topic, done, what, partitions=PARTITIONS,
                                  at_end=True, isolation_level="read_committed"))


def test_sigkill_mid_stream_counts_every_word_once(
    kafka_bootstrap: str, new_topic, tmp_path
) -> None:
    sentences = new_topic(partitions=PARTITIONS)
    (tmp_path / "wc_app.py").write_text(APP_SOURCE.format(partitions=PARTITIONS, extra=EXACTLY_ONCE))
    app_id = f"it-eos-{secrets.token_hex(4)}"
    env = {**os.environ, "DETSTREAM_IT_BROKER": f"kafka://{kafka_bootstrap}", "IT_APP_ID": app_id,
           "IT_SENTENCES": sentences, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONHASHSEED", None)
    args = ["-m", "detstream", "worker", "wc_app.py", "-l", "info", "--without-web"]
    workers = [WorkerProcess(tmp_path, env, args, name) for name in ("survivor", "victim")]
    survivor, victim = workers
    changelog = f"{app_id}-word_counts-changelog"
    try:
        for worker in workers:
            worker.wait_for("ready:")
        assert "exactly_once (transactional id" in survivor.output()

        before, after = SENTENCES[:30], SENTENCES[30:]
        asyncio.run(produce(kafka_bootstrap, sentences, before))
        some = len([w for s in before for w in s.split()]) // 4
        fold_committed(
            kafka_bootstrap, changelog, lambda t: sum(t.values()) >= some, "processing under way"
        )
        victim.signal(signal.SIGKILL)  # mid-stream: no graceful stop, its transaction left open
        assert victim.wait() == -signal.SIGKILL
        asyncio.run(produce(kafka_bootstrap, sentences, after))

        expected = expected_counts(SENTENCES)
        fold_committed(
            kafka_bootstrap, changelog, lambda t: t.keys() == expected.keys()
            and all(t[w] >= n for w, n in expected.items()),
            "the survivor to count every word (session timeout, then transaction timeout)",
        )
        survivor.signal(signal.SIGTERM)
        assert survivor.wait() == 0, survivor.tail()
        table = fold_committed(kafka_bootstrap, changelog, lambda t: True, "final read")
        extra = {w: (table[w], n) for w, n in expected.items() if table.get(w) != n}
        assert not extra, f"(table, input) counts differ after SIGKILL under exactly-once: {extra}"

        committed, end = asyncio.run(committed_vs_end(kafka_bootstrap, app_id))
        behind = {f"{tp.topic}[{tp.partition}]": (committed[tp], end[tp])
                  for tp in committed if committed[tp] != end[tp]}
        assert not behind, f"committed offsets short of the end (markers not passed?): {behind}"
    finally:
        for worker in workers:
            worker.kill()
