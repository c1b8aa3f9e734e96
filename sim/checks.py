"""Invariants checked after every simulated run.

Each check returns None when it holds, or a ``Violation`` naming what broke
and the trace lines that show it, so a failing seed explains itself.
"""

from __future__ import annotations

import asyncio
import importlib.util
import operator
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import mode

import detstream
from detstream._types import TP, ConsumerRecord
from detstream.clock import wall_time
from detstream.errors import DecodeError
from detstream.models import Record

from .cluster import ControlMarker, PartitionLog, SimCluster
from .history import Write
from .trace import Trace, TraceEvent


@dataclass
class Violation:
    """A failed check: what broke, and where the run shows it.

    ``evidence`` is text for people (trace lines, or the writes the final
    read found wrong). ``lines`` are the positions in the trace (from 0) of
    the steps the check cites, so that a viewer (the run's HTML page) can
    link to them; ``window`` is the span of virtual time the check judged
    when it cites no step (a stop past its deadline, the consistent cut).
    """

    check: str
    message: str
    evidence: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    window: tuple[float, float] | None = None


def citing(check: str, message: str, trace: Trace, *events: TraceEvent) -> Violation:
    """A violation whose evidence is ``events``: their trace lines as text, and their positions."""
    positions = [trace.index_of(event) for event in events]
    text = trace.lines
    return Violation(check, message, [text[index] for index in positions], positions)


def first_steps(trace: Trace, kind: str, wanted: Iterable[tuple[TP, int]]) -> dict[tuple[TP, int], TraceEvent]:
    """The first ``kind`` step (``produce``, ``deliver``) at each (partition, offset) of ``wanted``.

    What a check cites for a record it names by partition and offset: the
    line where it was written, or first processed. One pass over that kind.
    """
    remaining = set(wanted)
    found: dict[tuple[TP, int], TraceEvent] = {}
    for event in trace.of_kind(kind) if remaining else ():
        key = (event.fields.get("tp"), event.fields.get("offset"))
        if key in remaining:
            remaining.discard(key)
            found[key] = event
            if not remaining:
                break
    return found


_FIELDS = operator.attrgetter("fields")
_TP_AND_OFFSET = operator.itemgetter("tp", "offset")

#: trace kinds of a worker's stream starting a record (the first stream, another stream).
_STARTS = ("deliver", "deliver-shared")


def partition_order(trace: Trace) -> Violation | None:
    """Within one assignment, a worker processes each partition in offset order, once.

    A ``deliver`` line is the first start of a fetched record by any of the
    worker's streams; when several streams read the topic (two agents), the
    others' starts are ``deliver-shared`` lines. Each stream takes records
    in fetch order, so first starts are in offset order too; per stream
    the record would show twice here, which a correct worker does.
    """
    last: dict[tuple[str, TP], int] = {}
    for event in trace.of_kinds("assigned", "deliver"):
        _, actor, kind, fields = event
        if kind == "assigned":
            for key in [k for k in last if k[0] == actor]:
                del last[key]
            continue
        key = (actor, fields["tp"])
        offset = fields["offset"]
        previous = last.get(key)
        if previous is not None and offset <= previous:
            return citing(
                "partition-order", f"{actor} processed {key[1]} offset {offset} after {previous}",
                trace, event,
            )
        last[key] = offset
    return None


def no_delivery_during_recovery(trace: Trace) -> Violation | None:
    """A worker starts no event while it recovers tables of its assignment.

    Recovery of a new assignment is all or nothing: until every table
    partition (and standby promotion) is rebuilt, an agent would read values
    that are not there yet, and an update made then is lost when recovery
    writes the old value over it (issue 9's takeover bug).
    """
    recovering: dict[str, TraceEvent] = {}
    for event in trace.of_kinds(
        "recovery-start", "recovery-done", "assigned", "revoked", "lost", "crash", "stop", "deliver",
        "deliver-shared",
    ):
        kind, actor = event.kind, event.actor
        if kind == "recovery-start":
            recovering[actor] = event
        elif kind in ("recovery-done", "assigned", "revoked", "lost", "crash", "stop"):
            recovering.pop(actor, None)
        elif kind in _STARTS and actor in recovering:
            started = recovering[actor]
            return citing(
                "no-delivery-during-recovery",
                f"{actor} processed {event.fields['tp']} offset {event.fields['offset']} while "
                f"recovering {', '.join(started.fields['tps'])}",
                trace, started, event,
            )
    return None


def opened_after_listener(trace: Trace) -> Violation | None:
    """A worker opens partitions of an assignment only once its rebalance listener finished.

    The listener (``assigned`` ... ``taken``) plans table recovery and standby
    promotion. A partition opened before it finished, or after it failed,
    belongs to a half-assigned worker: its tables may never be recovered
    (issue 9: aiokafka logs and swallows a listener's exception).
    """
    taking: dict[str, TraceEvent] = {}
    for event in trace.of_kinds(
        "assigned", "taken", "revoked", "lost", "crash", "app-crashed", "start", "opened"
    ):
        kind, actor = event.kind, event.actor
        if kind == "assigned":
            taking[actor] = event
        elif kind in ("taken", "revoked", "lost", "crash", "app-crashed", "start"):
            taking.pop(actor, None)
        elif kind == "opened" and actor in taking:
            return citing(
                "opened-after-listener",
                f"{actor} opened {', '.join(event.fields['tps'])} before its rebalance listener "
                "finished taking the assignment (the listener failed or is still running)",
                trace, taking[actor], event,
            )
    return None


def no_lost_input(trace: Trace, cluster: SimCluster, topics: Iterable[str]) -> Violation | None:
    """Every record of every consumed topic was processed (or reported undecodable) at least once."""
    delivered: dict[TP, set[int]] = {}
    for tp, offset in map(_TP_AND_OFFSET, map(_FIELDS, trace.of_kinds("deliver", "decode-error"))):
        offsets = delivered.get(tp)
        if offsets is None:
            offsets = delivered[tp] = set()
        offsets.add(offset)
    for topic in sorted(topics):
        state = cluster.topics.get(topic)
        if state is None:
            continue
        for partition, log in enumerate(state.logs):
            tp = TP(topic, partition)
            missing = _first_unseen(log, delivered.get(tp, set()))
            if missing is not None:
                return _citing_record(
                    "no-lost-input", f"{tp} offset {missing} was never processed", trace, tp, missing,
                )
    return None


def _first_unseen(log: PartitionLog, seen: set[int]) -> int | None:
    """The first offset a read_committed reader of ``log`` gets that is not in ``seen``.

    Set arithmetic over the offsets, then a look only at those not seen
    (transaction markers, aborted records, holes): not a Python step per record.
    """
    end = log.last_stable_offset
    unseen = sorted(set(range(log.start_offset, end)) - seen)
    for offset in unseen:
        entry = log.records[offset]
        if entry is not None and not isinstance(entry, ControlMarker) and offset not in log.aborted:
            return offset
    return None


def _citing_record(check: str, message: str, trace: Trace, tp: TP, offset: int) -> Violation:
    """A violation about the record at ``tp``/``offset``, citing the line that wrote it (if traced)."""
    written = first_steps(trace, "produce", [(tp, offset)]).get((tp, offset))
    return citing(check, message, trace, *([written] if written is not None else []))


def converged(
    cluster: SimCluster, group_id: str, topics: Iterable[str], trace: Trace | None = None
) -> Violation | None:
    """Liveness: the group's committed offsets reached the end of every consumed partition.

    Given the ``trace`` (the final check; settling asks without, many times),
    the violation cites the line that wrote the first record never committed.
    """
    group = cluster.groups.get(group_id)
    committed = group.committed if group else {}
    for topic in sorted(topics):
        state = cluster.topics.get(topic)
        if state is None:
            continue
        for partition, log in enumerate(state.logs):
            tp = TP(topic, partition)
            done = committed.get(tp, 0)
            if done < log.end_offset:
                message = f"consumer lag on {tp}: committed {done}, end {log.end_offset}"
                if trace is None:
                    return Violation("converged", message)
                return _citing_record("converged", message, trace, tp, done)
    return None


def tables_match_changelog(apps: Iterable[Any], cluster: SimCluster) -> Violation | None:
    """Each worker's table partitions equal the fold of their changelog.

    Keys and values are compared through :func:`comparable`: a Record equals
    another of the same namespace and fields, whichever worker incarnation's
    import of its class each one is (in production one process has one class;
    here every worker imports the project afresh, and the changelog decodes
    to the class registered last).

    A key written from several partitions (a table whose source is not
    partitioned by the table key: Faust's ``windowing/tumbling.py`` counts one
    key from every partition) has a value per partition in the changelog,
    and a worker holds one value of it, the last write's, as Faust's memory
    store does; its partitions' fold does not define one value. Such a key
    is checked against the partition the worker holds it in (it must equal
    that partition's latest value of it), and may be missing (it went with
    the revoked partition that wrote it last). See :func:`split_keys`.
    """
    shared_by_topic: dict[str, set[Any]] = {}
    for app in apps:
        active = app.conductor.assignment()
        for table in app.tables.tables.values():
            partitions = {tp.partition for tp in active if tp.topic == table.changelog_name}
            shared = shared_by_topic.get(table.changelog_name)
            if shared is None:
                shared = shared_by_topic[table.changelog_name] = split_keys(table, cluster)
            folded = fold_changelog(table, cluster, partitions)
            expected = {
                comparable(k): (k, comparable(v)) for k, v in folded.items()
                if comparable(k) not in shared
            }
            expired = _expired_partitions(cluster, table.changelog_name, partitions)
            actual = {
                comparable(k): (k, comparable(table.data.get(k)))
                for k in table.data.keys()
                if comparable(k) not in shared and (
                    comparable(k) in expected
                    or (table.data.partition_of(k) not in expired and not _closing_window(table, k))
                )
            }
            if actual != expected:
                missing = sorted((expected[c][0] for c in set(expected) - set(actual)), key=repr)[:5]
                wrong = sorted(
                    (k for c, (k, v) in actual.items() if c in expected and v != expected[c][1]),
                    key=repr,
                )[:5]
                extra = sorted((actual[c][0] for c in set(actual) - set(expected)), key=repr)[:5]
                return Violation(
                    "table-equals-changelog",
                    f"{app.client_name} table {table.name!r}: missing {missing}, "
                    f"wrong {wrong}, extra {extra}",
                )
            split_wrong = _split_keys_differing(table, cluster, shared)
            if split_wrong:
                return Violation(
                    "table-equals-changelog",
                    f"{app.client_name} table {table.name!r}: keys written from several partitions "
                    f"differ from their holding partition's changelog: {split_wrong}",
                )
    return None


def split_keys(table: Any, cluster: SimCluster) -> set[Any]:
    """The keys (as :func:`comparable`) that ``table``'s changelog has in more than one partition.

    Compared by their bytes first, so only these few keys are decoded.
    """
    state = cluster.topics.get(table.changelog_name)
    if state is None:
        return set()
    seen: dict[bytes | None, int] = {}
    several: dict[bytes | None, int] = {}
    for partition, log in enumerate(state.logs):
        for record in log.read(0, log.end_offset, read_committed=True)[0]:
            first = seen.setdefault(record.key, partition)
            if first != partition:
                several[record.key] = partition
    if not several:
        return set()
    schema = table.changelog_topic.schema
    found: set[Any] = set()
    for key in several:
        try:
            found.add(comparable(schema.loads_key(key, default_serializer="json")))
        except DecodeError:
            continue
    return found


def _split_keys_differing(table: Any, cluster: SimCluster, shared: set[Any]) -> list[Any]:
    """Keys of ``shared`` the table holds with a value its holding partition's changelog lacks."""
    if not shared:
        return []
    differing = []
    folds: dict[int | None, dict[Any, Any]] = {}
    for key in table.data.keys():
        if comparable(key) not in shared:
            continue
        holder = table.data.partition_of(key)
        if holder not in folds:
            folds[holder] = {
                comparable(k): comparable(v)
                for k, v in fold_changelog(table, cluster, {holder} if holder is not None else set()).items()
            }
        if folds[holder].get(comparable(key), _ABSENT) != comparable(table.data.get(key)):
            differing.append(key)
    return sorted(differing, key=repr)[:5]


#: no value (a key the fold does not have).
_ABSENT = object()


def _closing_window(table: Any, key: Any) -> bool:
    """Whether ``key`` is a window its owner's next expiry sweep deletes (stale now).

    Only such a key may be in the table and not in the changelog: a zombie
    (at-least-once) that expired it wrote the tombstone after the new owner
    had recovered it, and the owner's sweep, an app task, stops with the
    run's main phase. In production that sweep writes the same tombstone.
    """
    window = getattr(table, "window", None)
    return window is not None and window.stale(key[1][1], wall_time())


def _expired_partitions(cluster: SimCluster, topic: str, partitions: set[int]) -> set[int]:
    """Partitions of ``topic`` whose retention deleted records (the log start moved).

    A changelog with ``cleanup.policy=delete`` forgets a key once every
    record of it is older than ``retention.ms``: the live table keeps the
    key, a recovery would not. Such a key is not a table that drifted from
    its changelog, so the check does not count it as extra (its value is
    still compared whenever the changelog has a record of it).
    """
    state = cluster.topics.get(topic)
    if state is None:
        return set()
    return {p for p in partitions if p < len(state.logs) and state.logs[p].start_offset > 0}


class RecordForm(NamedTuple):
    """A Record as :func:`comparable` sees it: its namespace and its fields' values."""

    namespace: str | None
    values: tuple[Any, ...]


def comparable(obj: Any) -> Any:
    """``obj`` with every Record (nested too) replaced by its :class:`RecordForm`.

    Two Records of the same namespace and fields compare equal this way even
    when they are instances of two imports of the class (one per simulated
    worker incarnation); containers keep their types, so a list is still not
    a tuple.
    """
    if isinstance(obj, Record):
        return RecordForm(obj._options.namespace, tuple(comparable(v) for v in obj._values()))
    if isinstance(obj, list):
        return [comparable(item) for item in obj]
    if type(obj) is tuple:
        return tuple(comparable(item) for item in obj)
    if isinstance(obj, dict):
        return {comparable(k): comparable(v) for k, v in obj.items()}
    if isinstance(obj, (set, frozenset)):
        return type(obj)(comparable(item) for item in obj)
    return obj


def fold_changelog(table: Any, cluster: SimCluster, partitions: set[int] | None = None) -> dict[Any, Any]:
    """The table a changelog describes: latest value per key, tombstones delete.

    A record that does not decode is left out where the app's
    ``table_changelog_decode_errors`` is ``"skip"``, as recovery leaves it out.
    """
    schema = table.changelog_topic.schema
    skip = table.app.conf.table_changelog_decode_errors == "skip"
    result: dict[Any, Any] = {}
    for record in _records_of(cluster, table.changelog_name, partitions):
        where = dict(topic=record.topic, partition=record.partition, offset=record.offset)
        try:
            key = schema.loads_key(record.key, default_serializer="json", **where)
            value = (None if record.value is None
                     else schema.loads_value(record.value, default_serializer="json", **where))
        except DecodeError:
            if skip:
                continue
            raise
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def _records_of(cluster: SimCluster, topic: str, partitions: set[int] | None) -> list[ConsumerRecord]:
    """What ``cluster.records(topic)`` holds of ``partitions`` (all: None), in the same order.

    Read partition by partition, so a worker's check reads its own partitions
    only, not every record of the topic.
    """
    if partitions is None:
        return cluster.records(topic)
    state = cluster.topics.get(topic)
    if state is None:
        return []
    found: list[ConsumerRecord] = []
    for partition in sorted(p for p in partitions if 0 <= p < len(state.logs)):
        log = state.logs[partition]
        found.extend(log.read(0, log.end_offset, read_committed=True)[0])
    return found


def no_fenced_commit_accepted(trace: Trace) -> Violation | None:
    """No offsets were accepted from a member after the coordinator expelled it.

    Acceptance is where fencing happens: a plain commit's offsets are stored
    as they are accepted, a transaction's when it commits, which may be after
    the member expired (Kafka checks ``TxnOffsetCommit`` when it arrives and
    materializes the offsets with the commit marker; the next owner's stable
    offset fetch waits for them).
    """
    fenced: set[str] = set()
    for event in trace.of_kinds("member-expired", "offsets-accepted"):
        if event.kind == "member-expired":
            fenced.add(event.fields["member"])
        elif event.fields.get("member") in fenced:
            return citing(
                "no-fenced-commit",
                f"offsets from expelled member {event.fields['member']} were accepted",
                trace, event,
            )
    return None


def no_stale_generation_commit(trace: Trace) -> Violation | None:
    """Every offset commit a coordinator accepted came from its current generation.

    A member of an older generation may no longer own the partitions it
    commits for: the rebalance may have given them to another member, whose
    progress the stale offsets would overwrite (Kafka: ILLEGAL_GENERATION;
    for transactional offsets, KIP-447).
    """
    generation: dict[str, int] = {}
    for event in trace.of_kinds("rebalance", "offsets-accepted"):
        if event.kind == "rebalance":
            generation[event.actor] = event.fields["generation"]
        elif event.fields["generation"] != generation.get(event.actor, 0):
            return citing(
                "no-stale-generation-commit",
                f"group {event.actor} accepted offsets from {event.fields['member']} of generation "
                f"{event.fields['generation']} while at generation {generation.get(event.actor, 0)}",
                trace, event,
            )
    return None


def no_delivery_after_fenced(trace: Trace) -> Violation | None:
    """A worker told its offsets were refused starts no event until it is assigned again.

    The refusal (trace ``commit-refused``) means the group moved the
    partitions on: this member was expelled, a zombie, or a rebalance
    replaced its generation. What it processed after that, its new owner
    processes too, and a zombie's table writes land in a changelog the
    owner recovered from already: at-least-once cannot keep a zombie from
    writing before it learns, but it must stop once it knows.

    So for a static member told it was fenced (the worker's trace
    ``instance-fenced``: its consumer raised ``FencedInstanceIdError`` to
    the engine): another process has its group instance and partitions.
    """
    refused: dict[str, TraceEvent] = {}
    for event in trace.of_kinds("commit-refused", "instance-fenced", "assigned", "crash", "start",
                                "deliver", "deliver-shared"):
        kind, actor = event.kind, event.actor
        if kind == "commit-refused" or kind == "instance-fenced":
            refused[actor] = event
        elif kind not in _STARTS:
            refused.pop(actor, None)
        elif actor in refused:
            return citing(
                "no-delivery-after-fenced",
                f"{actor} processed {event.fields['tp']} offset {event.fields['offset']} after the "
                "group refused its offsets (its partitions are another member's now)",
                trace, refused[actor], event,
            )
    return None


def no_changelog_write_after_refusal(
    trace: Trace, writes: Iterable[Write], changelogs: set[str]
) -> Violation | None:
    """A worker told its offsets were refused sends no table write to a changelog until it is
    assigned again (at-least-once; a transaction's writes are aborted with it).

    Its partitions' new owner recovers their tables from those changelogs:
    a write the old member sends after it knows (what its cache held since
    its last commit, flushed at the revoke aiokafka calls before rejoining)
    lands after the new owner's and overwrites newer values. ``no-delivery-
    after-fenced`` stops new events; this stops old writes. A write sent
    before the refusal reached the worker may still land after it: only the
    send time counts (``Write.sent_at``). The worker knows from its
    consumer's ``expulsion-learned`` (the sim driver: a heartbeat or commit
    answered with an unknown member or a stale generation) or the engine's
    own ``commit-refused`` and ``expelled``, whichever comes first.
    """
    windows: dict[str, list[tuple[float, float, TraceEvent]]] = {}
    told: dict[str, TraceEvent] = {}
    told_kinds = ("expulsion-learned", "commit-refused", "expelled")
    for event in trace.of_kinds(*told_kinds, "assigned", "crash", "start"):
        if event.kind in told_kinds:
            told.setdefault(event.actor, event)
        elif event.actor in told:
            since = told.pop(event.actor)
            windows.setdefault(event.actor, []).append((since.time, event.time, since))
    for actor, since in told.items():
        windows.setdefault(actor, []).append((since.time, float("inf"), since))
    if not windows:
        return None
    for write in writes:
        if write.transactional or write.tp.topic not in changelogs:
            continue
        for start, end, since in windows.get(write.producer.partition("/")[0], ()):
            if start < write.sent_at < end:
                return citing(
                    "no-changelog-write-after-refusal",
                    f"{write.producer} sent a table write to {write.tp} at "
                    f"t={write.sent_at:.6f}, after the group refused its offsets (its partitions' "
                    "new owner recovered from that changelog)",
                    trace, since,
                )
    return None


#: errors a worker's clients must ride out: a broker that is down while it is still known.
_TRANSIENT_ERRORS = frozenset({"NodeNotReadyError"})


def no_crash_on_a_down_broker(trace: Trace) -> Violation | None:
    """No App crashed (or failed its start) because one known broker was down.

    An admin request goes to a random known broker, and a crashed broker
    stays known until the controller notices: the request fails at once
    (``NodeNotReadyError``) and must be asked again elsewhere
    (``detstream.transport.any_broker``). A worker starting during a broker
    restart used to fail its start (found on the wire: word_count, seed 2).
    """
    for event in trace.of_kinds("app-crashed", "engine-error"):
        if event.fields.get("error") in _TRANSIENT_ERRORS:
            return citing(
                "no-crash-on-a-down-broker",
                f"{event.actor} crashed on {event.fields['error']}: one known broker was down, "
                "and the request was not asked again elsewhere",
                trace, event,
            )
    return None


#: steps after which a worker's table and standby copies read their changelogs anew.
_COPY_RESETS = (
    "assigned", "revoked", "lost", "crash", "stop", "start", "recovery-start", "recovery-reset",
    "standby-promoted", "global-recovery-start",
)


def changelog_applied_in_order(trace: Trace, cluster: SimCluster) -> Violation | None:
    """Recovery, standbys and global tables apply every changelog record, once, in offset order.

    Comparing only the final value per key (``tables-match-changelog``)
    hides a skipped or reordered record whenever a later write to the key
    follows it. Each applied batch (trace ``changelog-applied``) must hold
    exactly the committed records of its offset span, in order, and follow
    the previous batch of the same copy with no committed record between.
    Offsets the cleaner emptied and aborted records may or may not have been
    read, so they count either way.
    """
    previous: dict[tuple[str, str, TP], TraceEvent] = {}
    for event in trace.of_kinds("changelog-applied", *_COPY_RESETS):
        if event.kind != "changelog-applied":
            for key in [k for k in previous if k[0] == event.actor]:
                del previous[key]
            continue
        fields = event.fields
        log = _log_of(cluster, fields["tp"])
        if log is None:
            continue
        first, last, count = fields["first"], fields["last"], fields["n"]
        key = (event.actor, fields["copy"], fields["tp"])
        before = previous.get(key)
        previous[key] = event
        problem = _batch_problem(log, first, last, count)
        if problem is None and before is not None:
            problem = _gap_problem(log, before.fields["last"], first)
        if problem is not None:
            cited = ([before] if before is not None else []) + [event]
            return citing(
                "changelog-applied-in-order",
                f"{event.actor}'s {fields['copy']} copy of {fields['tp']}: {problem}",
                trace, *cited,
            )
    return None


def _batch_problem(log: PartitionLog, first: int, last: int, count: int) -> str | None:
    if first > last:
        return f"applied offset {first} before offset {last} (a batch out of order)"
    committed, maybe = _records_between(log, first, last + 1)
    if count < committed:
        return (f"applied {count} records of offsets {first}..{last}, where the changelog "
                f"holds {committed}: a record was skipped")
    if count > committed + maybe:
        return (f"applied {count} records of offsets {first}..{last}, where the changelog "
                f"holds at most {committed + maybe}: a record was applied twice")
    return None


def _gap_problem(log: PartitionLog, last: int, first: int) -> str | None:
    if first <= last:
        return f"applied offset {first} again after reaching offset {last}"
    committed, _ = _records_between(log, last + 1, first)
    if committed:
        return (f"went on at offset {first} after offset {last}, stepping over {committed} "
                "committed records")
    return None


def _records_between(log: PartitionLog, start: int, end: int) -> tuple[int, int]:
    """(committed data records, offsets that may or may not be read) in [start, end)."""
    committed = maybe = 0
    aborted = log.aborted
    records = log.records
    for offset in range(start, min(end, len(records))):
        entry = records[offset]
        if entry is None or offset in aborted:
            maybe += 1
        elif isinstance(entry, ConsumerRecord):
            committed += 1
    return committed, maybe


def _log_of(cluster: SimCluster, tp: TP) -> PartitionLog | None:
    topic = cluster.topics.get(tp.topic)
    if topic is None or tp.partition >= topic.partitions:
        return None
    return topic.logs[tp.partition]


#: Where the runtime's plumbing lives (asyncio, mode's services): a task's chain of coroutines
#: is judged by its first frame outside them.
_PLUMBING = tuple(os.path.join(Path(str(package.__file__)).parent, "") for package in (asyncio, mode))


def _package_dir(name: str) -> list[str]:
    """Where package ``name`` lives, without importing it (the sim never imports aiokafka)."""
    spec = importlib.util.find_spec(name)
    return [os.path.join(where, "") for where in (spec.submodule_search_locations or [])] if spec else []


#: What a stopped App must stop: detstream's own tasks and its Kafka client's (the aiokafka
#: driver's), as opposed to tasks the program started itself.
_RUNTIME = (os.path.join(Path(str(detstream.__file__)).parent, ""), *_package_dir("aiokafka"))


def started_by_the_runtime(files: Iterable[str]) -> bool:
    """Whether a task whose coroutine chain runs in ``files`` (outermost first) is the runtime's."""
    for filename in files:
        if not filename.startswith(_PLUMBING):
            return filename.startswith(_RUNTIME)
    return False


def stop_left_nothing_running(worker: str, left: list[tuple[str, list[str]]], at: float) -> Violation | None:
    """``stopped-app-idle``: a graceful stop that returned left none of the runtime's tasks running.

    ``left`` holds each task still running when ``worker``'s stop returned:
    its description and the files of its coroutine chain. Why a check:
    ``App.stop`` is where the engine ends its readers, recoveries and
    loops; one still running afterwards works for a worker that let its
    partitions go (a standby reader or a recovery started by an assignment
    the stop let through: the ``assigned-while-stopping-taken`` mutant),
    and in a process that goes on after the stop (tests, an embedding
    program) it keeps reading and writing. Tasks the program started itself
    are its own business (``detstream worker`` exits after the stop either
    way), so they are not judged.
    """
    engine = [description for description, files in left if started_by_the_runtime(files)]
    if not engine:
        return None
    return Violation(
        "stopped-app-idle",
        f"{worker}'s graceful stop returned at t={at:.3f}s with {len(engine)} of the runtime's "
        "tasks still running: a stopped App must end every reader, recovery and loop it started",
        engine[:5],
        window=(at, at),
    )
