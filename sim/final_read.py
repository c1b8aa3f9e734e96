"""The Jepsen-style final read: every topic written in the run, read in full, against the history.

After the liveness phase (faults over, the run converged, workers stopped)
every topic any producer wrote (the input topics the clients fed, output and
repartition topics, table changelogs) is read from the beginning with
``read_committed`` and compared with the history of writes
(``sim.history``):

- **lost write**: an acknowledged write the read does not show (or an
  offset that holds something else), though nothing was allowed to remove
  it. Allowed to be missing: a write whose transaction aborted or is still
  open, a record retention deleted (before the log start), and in a
  compacted topic a record a later record of its key supersedes (or a
  tombstone).
- **duplicate write**: one send visible at two offsets, which a retry after
  a lost response produces. An idempotent or transactional producer must
  never do that; a plain one may (at-least-once), and is only counted.
- **duplicate result** (exactly-once apps): the output of one input event
  committed by two attempts (deliveries) of it. Exactly-once means an
  event's committed output is the output of one attempt; at-least-once apps
  may repeat it, and it is only counted.
- **refused output**: a send made while processing an input event was
  refused for good (record too large, fenced, delivery timeout), never
  appended, and no attempt of that event ever wrote to the topic. If the
  input's offset was committed, the engine lost the output (it must not
  commit past an event whose output failed, and must redo it):
  ``final-read-refused-committed``. If not, the program sends something the
  producer refuses every time (a poison output that holds its partition
  back): ``final-read-refused``, which names the record and the error.
- **unsent output**: a send made while processing an input event never
  reached the broker and was never refused (its process died with it in the
  producer's buffer), and no attempt of that event wrote to the topic. If
  the input's offset was committed, the output is lost: the engine
  committed before the output was acknowledged (``final-read-unsent-committed``).

Records nobody's send explains (appended without a history entry) are not
judged: the check is about what producers were told.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from detstream._types import TP, ConsumerRecord

from .checks import Violation, first_steps
from .cleaner import cleanup_policies
from .cluster import ControlMarker, PartitionLog, SimCluster
from .history import Origin, Write, WriteHistory

#: examples listed in a violation's evidence.
EXAMPLES = 5


@dataclass
class FinalRead:
    """The outcome: violations, and counts of tolerated anomalies for the coverage report."""

    violations: list[Violation] = field(default_factory=list)
    #: sends of plain (non-idempotent) producers visible more than once.
    duplicate_writes: int = 0
    #: input events whose output more than one attempt committed.
    duplicate_results: int = 0
    #: records read, over every topic.
    records: int = 0


def final_read(cluster: SimCluster, *, exactly_once: bool) -> FinalRead:
    """Read every written topic in full (read_committed) and compare it with the write history."""
    history = cluster.history
    outcome = FinalRead()
    visible = _read_everything(cluster, history, outcome)
    shown = _visible_offsets_of(history, visible)
    lost = _lost_writes(cluster, history, visible, shown)
    if lost:
        outcome.violations.append(_about_writes(
            "final-read-lost",
            f"{len(lost)} acknowledged write(s) missing from the final read",
            cluster, lost[:EXAMPLES],
        ))
    fenced, tolerated = _duplicate_writes(history, shown)
    outcome.duplicate_writes = len(tolerated)
    if fenced:
        outcome.violations.append(_about_writes(
            "final-read-duplicate",
            f"{len(fenced)} send(s) of an idempotent producer appear more than once",
            cluster, [(write, f"at offsets {_visible_offsets(write, visible)}") for write in fenced[:EXAMPLES]],
        ))
    dropped, poison, unsent = _failed_outputs(cluster, history)
    if unsent:
        outcome.violations.append(_about_writes(
            "final-read-unsent-committed",
            f"the output of {len(unsent)} event(s) never reached the broker (lost with its "
            "process), yet their offsets were committed and the events never redone: the "
            "output is lost",
            cluster, [(write, "never sent") for write in unsent[:EXAMPLES]],
        ))
    if dropped:
        outcome.violations.append(_about_writes(
            "final-read-refused-committed",
            f"the output of {len(dropped)} event(s) was refused by the producer, yet their "
            "offsets were committed and the events never redone: the output is lost",
            cluster, [(write, f"refused ({write.refused})") for write in dropped[:EXAMPLES]],
        ))
    if poison:
        outcome.violations.append(_about_writes(
            "final-read-refused",
            f"the output of {len(poison)} event(s) was refused by the producer in every attempt "
            "(a bug in the program: e.g. a record larger than producer_max_request_size); "
            "each holds its input partition back",
            cluster, [(write, f"refused ({write.refused})") for write in poison[:EXAMPLES]],
        ))
    repeated = _duplicate_results(history, shown)
    outcome.duplicate_results = len(repeated)
    if exactly_once and repeated:
        examples = repeated[:EXAMPLES]
        inputs = first_steps(cluster.trace, "deliver", [(tp, offset) for (tp, offset, _), _ in examples])
        outcome.violations.append(Violation(
            "final-read-duplicate",
            f"exactly-once: the output of {len(repeated)} input event(s) was committed by "
            "more than one attempt",
            [
                f"{tp} offset {offset} agent {agent}: attempts {sorted(attempts)}"
                for (tp, offset, agent), attempts in examples
            ],
            list(dict.fromkeys(cluster.trace.index_of(event) for event in inputs.values())),
        ))
    return outcome


class Visible:
    """What a read_committed reader of every written topic gets, looked up in the logs in place.

    ``get(tp, offset)`` is the record such a reader gets at ``offset`` (None:
    none there). The same as reading each topic in full into a map by
    (partition, offset), without building one entry per record.
    """

    def __init__(self, cluster: SimCluster) -> None:
        self._cluster = cluster
        #: partition -> (its log, log start offset, read_committed limit); () for no such
        #: partition. Filled by ``bounds_of``.
        self.bounds: dict[TP, tuple[PartitionLog, int, int] | tuple[()]] = {}

    def bounds_of(self, tp: TP) -> tuple[PartitionLog, int, int] | tuple[()]:
        """(log, start offset, read_committed limit) of ``tp``; () if there is no such partition."""
        bounds = self.bounds.get(tp)
        if bounds is None:
            found = _log(self._cluster, tp)
            bounds = self.bounds[tp] = (
                () if found is None else (found, found.start_offset, found.last_stable_offset)
            )
        return bounds

    def get(self, tp: TP, offset: int) -> ConsumerRecord | None:
        bounds = self.bounds_of(tp)
        if not bounds:
            return None
        log, start, limit = bounds
        if not start <= offset < limit:
            return None
        record = log.records[offset]
        if record is None or isinstance(record, ControlMarker) or offset in log.aborted:
            return None
        return record



def _read_everything(cluster: SimCluster, history: WriteHistory, outcome: FinalRead) -> Visible:
    """Every record a read_committed reader of the written topics gets (counted in ``outcome``)."""
    outcome.records = sum(
        cluster.record_count(topic, read_committed=True)
        for topic in sorted({write.tp.topic for write in history.writes})
    )
    return Visible(cluster)


def _shows(record: ConsumerRecord | None, write: Write) -> bool:
    return record is not None and record.key == write.key and record.value == write.value


def _visible_offsets_of(history: WriteHistory, visible: Visible) -> list[tuple[int, ...]]:
    """Each write's offsets at which the final read shows it (by index in ``history.writes``).

    Computed once for every check: almost every write has one offset, read as it was sent.
    """
    shown: list[tuple[int, ...]] = []
    show = shown.append
    empty: tuple[int, ...] = ()
    known = visible.bounds
    for write in history.writes:
        offsets = write.offsets
        if len(offsets) == 1:  # ``_shows(visible.get(...), write)``, inline: once per write
            bounds, offset = known.get(write.tp) or visible.bounds_of(write.tp), offsets[0]
            if bounds and bounds[1] <= offset < bounds[2]:
                log = bounds[0]
                record = log.records[offset]
                seen = (record is not None and not isinstance(record, ControlMarker)
                        and record.value == write.value and record.key == write.key
                        and offset not in log.aborted)
            else:
                seen = False
            show(offsets if seen else empty)
        elif not offsets:
            show(empty)
        else:
            show(tuple(_visible_offsets(write, visible)))
    return shown


def _lost_writes(
    cluster: SimCluster, history: WriteHistory,
    visible: Visible,
    shown: list[tuple[int, ...]],
) -> list[tuple[Write, str]]:
    latest: dict[tuple[TP, bytes | None], int] | None = None
    lost: list[tuple[Write, str]] = []
    for write, at in zip(history.writes, shown, strict=True):
        if not write.acked or at:  # readable at one of its offsets
            continue
        if not write.offsets:
            lost.append((write, "acknowledged, but never appended"))
            continue
        if latest is None:
            latest = _latest_offset_of_keys(history)
        reasons = [_why_missing(cluster, write, offset, visible, latest) for offset in write.offsets]
        if any(reason == "" for reason in reasons):  # readable at one of its offsets
            continue
        missing = [reason for reason in reasons if reason is not None]
        if missing:
            lost.append((write, missing[0]))
    return lost


def _why_missing(
    cluster: SimCluster, write: Write, offset: int,
    visible: Visible,
    latest: dict[tuple[TP, bytes | None], int],
) -> str | None:
    """"" if the write is readable at ``offset``; None if it may be missing; else why it is lost."""
    seen = visible.get(write.tp, offset)
    if seen is not None:
        if _shows(seen, write):
            return ""
        return f"offset {offset} holds another record"
    log = _log(cluster, write.tp)
    if log is None:
        return f"topic {write.tp.topic!r} is gone"
    if offset >= log.end_offset:
        return f"offset {offset} is past the log end {log.end_offset} (truncated)"
    if offset < log.start_offset or offset in log.aborted or offset >= log.last_stable_offset:
        return None  # deleted by retention; its transaction aborted, or is still open
    if log.records[offset] is None and _compacted(cluster, write.tp.topic):
        if write.value is None or latest.get((write.tp, write.key), -1) > offset:
            return None  # compaction keeps only the latest record of a key
    return f"offset {offset} was removed"


def _failed_outputs(
    cluster: SimCluster, history: WriteHistory,
) -> tuple[list[Write], list[Write], list[Write]]:
    """Never appended writes of events no attempt wrote that topic for.

    Refused ones split into those whose input offset was committed past (the
    output is lost) and those whose input was not (the event fails every
    time); unsent ones (neither acknowledged nor refused: lost with their
    process) count only where the input was committed past.
    """
    committed: dict[TP, int] = {}
    for group in cluster.groups.values():
        for tp, offset in group.committed.items():
            committed[tp] = max(committed.get(tp, 0), offset)
    for write in history.writes:  # (a loop, not ``any`` of a generator: a step per write)
        if not write.acked and not write.offsets and write.origin is not None:
            break
    else:
        return [], [], []
    written: set[tuple[TP, int, str, str]] = set()  # (input tp, offset, agent, topic) of acked writes
    for write in history.writes:
        if write.acked and write.origin is not None:
            written.add((write.origin.tp, write.origin.offset, write.origin.agent, write.tp.topic))
    delivered = _last_deliveries(cluster)
    superseded = _superseded_in_compacted(cluster, history)
    dropped: list[Write] = []
    poison: list[Write] = []
    unsent: list[Write] = []
    for index, write in enumerate(history.writes):
        origin = write.origin
        if write.acked or write.offsets or origin is None or index in superseded:
            continue
        event = (origin.tp, origin.offset, origin.agent, write.tp.topic)
        if event in written:
            continue  # an attempt of the event wrote there (it was redone), or it is listed already
        if delivered.get((origin.tp, origin.offset), -1.0) > write.sent_at:
            continue  # the event was delivered again since: redone (its output is that attempt's)
        passed = committed.get(origin.tp, 0) > origin.offset
        if write.refused is not None:
            written.add(event)
            (dropped if passed else poison).append(write)
        elif passed:
            written.add(event)
            unsent.append(write)
    return dropped, poison, unsent


def _last_deliveries(cluster: SimCluster) -> dict[tuple[TP, int], float]:
    """When each input event (partition, offset) was last delivered to an agent.

    A later delivery than a failed write's send is a redo of its event, even
    where the redo's output is attributed to another event: a ``take()``
    batch's sends are made under its last event, and a redo may cut the
    batches elsewhere.
    """
    last: dict[tuple[TP, int], float] = {}
    for event in cluster.trace.of_kind("deliver"):
        last[(event.fields["tp"], event.fields["offset"])] = event.time
    return last


def _superseded_in_compacted(cluster: SimCluster, history: WriteHistory) -> set[int]:
    """Indexes of writes to a compacted topic that a later acked write of their key replaced.

    A compacted topic keeps the latest record per key; a table flushes one
    changelog record per dirty key at each commit, carrying the latest value
    (``changelog_cache``), made under the event that wrote the key last. So
    when a flush is refused or lost with its process and the events are
    redone, the key's next record may come from another event than the one
    the flush was made under: the record was replaced, not lost.
    """
    last_acked: dict[tuple[TP, bytes | None], int] = {}
    for index, write in enumerate(history.writes):
        if write.acked and write.tp.topic in cluster.topics and _compacted(cluster, write.tp.topic):
            last_acked[(write.tp, write.key)] = index
    return {
        index for index, write in enumerate(history.writes)
        if not write.acked and not write.offsets and last_acked.get((write.tp, write.key), -1) > index
    }


def _duplicate_writes(
    history: WriteHistory, shown: list[tuple[int, ...]]
) -> tuple[list[Write], list[Write]]:
    """Sends visible more than once: (of idempotent producers: violations, of plain ones)."""
    fenced: list[Write] = []
    tolerated: list[Write] = []
    for write, at in zip(history.writes, shown, strict=True):
        if len(at) > 1:
            (fenced if write.idempotent else tolerated).append(write)
    return fenced, tolerated


def _duplicate_results(
    history: WriteHistory, shown: list[tuple[int, ...]]
) -> list[tuple[tuple[TP, int, str], set[int]]]:
    """Input events (partition, offset, agent) whose visible output comes from several attempts."""
    first: dict[tuple[TP, int, str], int] = {}  # the attempt of an event's first visible write
    attempts: dict[tuple[TP, int, str], set[int]] = defaultdict(set)  # events of several attempts
    last: Origin | None = None
    for write, at in zip(history.writes, shown, strict=True):
        origin = write.origin
        if origin is not None and at and origin is not last:  # (one event's writes share theirs)
            last = origin
            event = (origin.tp, origin.offset, origin.agent)
            attempt = first.setdefault(event, origin.attempt)
            if attempt != origin.attempt:
                attempts[event].update((attempt, origin.attempt))
    return sorted(
        ((event, seen) for event, seen in attempts.items() if len(seen) > 1),
        key=lambda item: (str(item[0][0]), item[0][1], item[0][2]),
    )


def _visible_offsets(write: Write, visible: Visible) -> list[int]:
    return [o for o in write.offsets if _shows(visible.get(write.tp, o), write)]


def _latest_offset_of_keys(history: WriteHistory) -> dict[tuple[TP, bytes | None], int]:
    """The highest offset any write of each (partition, key) was appended at."""
    latest: dict[tuple[TP, bytes | None], int] = {}
    for write in history.writes:
        if write.offsets:
            where = (write.tp, write.key)
            latest[where] = max(latest.get(where, -1), *write.offsets)
    return latest


def _log(cluster: SimCluster, tp: TP) -> PartitionLog | None:
    topic = cluster.topics.get(tp.topic)
    if topic is None or tp.partition >= topic.partitions:
        return None
    return topic.logs[tp.partition]


def _compacted(cluster: SimCluster, topic: str) -> bool:
    return "compact" in cleanup_policies(cluster.topics[topic].config)


def _about_writes(check: str, message: str, cluster: SimCluster,
                  examples: list[tuple[Write, str]]) -> Violation:
    """A violation naming ``examples`` (writes, and what is wrong with each), citing their trace lines.

    A write is cited by the line where it landed (its ``produce``), or, if
    it never did, by the first delivery of the input event it was output of.
    """
    trace = cluster.trace
    writes = [write for write, _ in examples]
    landed = first_steps(trace, "produce", [(w.tp, w.offsets[0]) for w in writes if w.offsets])
    inputs = first_steps(trace, "deliver", [(w.origin.tp, w.origin.offset) for w in writes
                                            if not w.offsets and w.origin is not None])
    cited = []
    for write in writes:
        if write.offsets:
            cited.append(landed.get((write.tp, write.offsets[0])))
        elif write.origin is not None:
            cited.append(inputs.get((write.origin.tp, write.origin.offset)))
    lines = list(dict.fromkeys(trace.index_of(event) for event in cited if event is not None))
    return Violation(check, message, [_describe(write, why) for write, why in examples], lines)


def _describe(write: Write, why: str) -> str:
    origin = ""
    if write.origin is not None:
        origin = f" (output of {write.origin.tp} offset {write.origin.offset})"
    return f"{write.producer} -> {write.tp} key={write.key!r}{origin}: {why}"
