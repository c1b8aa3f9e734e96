"""aiokafka's log lines: repeats rate-limited in the loop's time, start-up noise at DEBUG.

The records are logged on aiokafka's own module loggers, as aiokafka logs
them, with the filter the driver and the worker install; the clock is the
simulator's virtual loop, so waiting past the window takes no real time.
"""

import asyncio
import logging

import pytest

from detstream.transport import aiokafka_logs
from detstream.transport.aiokafka_logs import AIOKAFKA_LOGGERS, WINDOW, StartUp
from sim.testing import run_sandboxed

CLUSTER = logging.getLogger("aiokafka.cluster")
COORDINATOR = logging.getLogger("aiokafka.consumer.group_coordinator")
NOT_FOUND = "Topic %s not found in cluster metadata"


class GroupCoordinatorNotAvailableError(Exception):
    """Named as aiokafka's: the filter goes by the error's name (it does not import aiokafka)."""


class UnknownMemberIdError(Exception):
    pass


@pytest.fixture(autouse=True)
def installed():
    return aiokafka_logs.install()


def on_virtual_loop(main):
    return run_sandboxed(main, seed=1)


def shown(caplog, level=logging.INFO):
    return [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= level]


def test_the_filter_is_on_every_aiokafka_module_logger():
    for name in AIOKAFKA_LOGGERS:
        assert aiokafka_logs.AIOKAFKA_LOGS in logging.getLogger(name).filters


def test_a_burst_of_a_thousand_gives_one_line_then_a_summary(caplog):
    caplog.set_level(logging.INFO)

    async def main():
        for _ in range(1000):
            COORDINATOR.error("Heartbeat failed: %r", UnknownMemberIdError("gone"))
        await asyncio.sleep(WINDOW + 1)
        COORDINATOR.error("Heartbeat failed: %r", UnknownMemberIdError("again"))

    on_virtual_loop(main)
    assert shown(caplog) == [
        ("aiokafka.consumer.group_coordinator", "ERROR", "Heartbeat failed: UnknownMemberIdError('gone')"),
        ("detstream.transport.aiokafka_logs", "ERROR",
         "aiokafka: 999 more like 'Heartbeat failed: %r' in the last 31 s"),
        ("aiokafka.consumer.group_coordinator", "ERROR", "Heartbeat failed: UnknownMemberIdError('again')"),
    ]


def test_at_most_one_line_per_window_and_a_summary_when_the_run_ends(caplog):
    caplog.set_level(logging.INFO)

    async def main():
        for _ in range(600):  # a minute of outage, ten lines a second
            COORDINATOR.error("Heartbeat failed: %r", UnknownMemberIdError("gone"))
            CLUSTER.warning("No broker metadata found in MetadataResponse -- ignoring.")
            await asyncio.sleep(0.1)
        aiokafka_logs.AIOKAFKA_LOGS.flush()

    on_virtual_loop(main)
    lines = shown(caplog)
    assert len(lines) <= 12, lines  # per template: 1, then 1 and a summary per 30 s window
    summaries = [m for name, _, m in lines if name == "detstream.transport.aiokafka_logs"]
    counted = sum(int(m.split()[1]) for m in summaries)
    passed = len(lines) - len(summaries)
    assert counted + passed == 1200  # nothing lost: every record is shown or counted


def test_start_up_noise_is_debug_until_the_first_assignment(caplog):
    caplog.set_level(logging.INFO)
    start_up = StartUp()

    async def main():
        aiokafka_logs.starting(start_up)
        CLUSTER.error(NOT_FOUND, "words")
        COORDINATOR.error("Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError())
        COORDINATOR.error("Group Coordinator Request failed: %s", UnknownMemberIdError())
        start_up.end()
        CLUSTER.error(NOT_FOUND, "words")

    on_virtual_loop(main)
    assert shown(caplog) == [
        ("aiokafka.consumer.group_coordinator", "ERROR", "Group Coordinator Request failed: "),
        ("aiokafka.cluster", "ERROR", "Topic words not found in cluster metadata"),
    ]


def test_start_up_noise_shows_at_debug_where_debug_is_on(caplog):
    caplog.set_level(logging.DEBUG)

    async def main():
        aiokafka_logs.starting(StartUp())
        CLUSTER.error(NOT_FOUND, "words")

    on_virtual_loop(main)
    assert ("aiokafka.cluster", "DEBUG", "Topic words not found in cluster metadata") in shown(
        caplog, logging.DEBUG)


def test_a_start_up_without_an_assignment_ends_after_its_grace(caplog):
    caplog.set_level(logging.INFO)

    async def main():
        aiokafka_logs.starting(StartUp())
        await asyncio.sleep(aiokafka_logs.START_UP_GRACE)
        CLUSTER.error(NOT_FOUND, "words")

    on_virtual_loop(main)
    assert shown(caplog) == [("aiokafka.cluster", "ERROR", "Topic words not found in cluster metadata")]


def test_without_a_running_loop_records_pass_unchanged(caplog):
    caplog.set_level(logging.INFO)
    for _ in range(3):
        CLUSTER.error(NOT_FOUND, "words")
    assert len(shown(caplog)) == 3


def test_each_run_counts_afresh_on_its_own_loop(caplog):
    caplog.set_level(logging.INFO)

    async def main():
        CLUSTER.error(NOT_FOUND, "words")
        CLUSTER.error(NOT_FOUND, "words")

    on_virtual_loop(main)
    on_virtual_loop(main)
    assert len(shown(caplog)) == 2  # the first of each run
