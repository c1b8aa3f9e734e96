"""examples/word_count.py under `detstream sim`: correct, checked, deterministic."""

from collections import Counter

import pytest

from sim.runner import SimOptions, run

TARGET = "examples/word_count.py"


@pytest.fixture(scope="module")
def report():
    return run(TARGET, SimOptions(seed=42))


def test_run_passes_every_check(report):
    assert report.ok, report.violations
    assert any("produced 120 records" in line for line in report.summary)


def test_table_equals_fold_of_input(report):
    """The last value written per word (the changelog's fold) is its count in the input."""
    from examples.word_count import SENTENCES

    sentences = [e for e in report.trace.of_kind("produce") if e.fields["tp"].topic == "sentences"]
    assert len(sentences) == len(SENTENCES)
    final = {}
    for event in report.trace.of_kind("table-write"):
        final[event.fields["key"]] = event.fields["value"]
    assert final == dict(Counter(w for s in SENTENCES for w in s.lower().split()))


def test_every_worker_did_work(report):
    for worker in ("w1", "w2", "w3"):
        assert any(e.actor == worker and e.kind == "deliver" for e in report.trace.events)


def test_same_seed_same_trace(report):
    again = run(TARGET, SimOptions(seed=42))
    assert again.trace.lines == report.trace.lines
    assert again.sha256 == report.sha256


def test_different_seeds_differ_and_all_pass():
    hashes = set()
    for seed in range(20):
        result = run(TARGET, SimOptions(seed=seed, duration=15.0))
        assert result.ok, (seed, result.violations)
        hashes.add(result.sha256)
    assert len(hashes) == 20


def test_planted_bug_is_caught(tmp_path):
    """A check that cannot fail proves nothing: an app that double counts must fail."""
    source = open(TARGET).read().replace("word_counts[word.text] += 1", "word_counts[word.text] += 2")
    buggy = tmp_path / "buggy_count.py"
    buggy.write_text(source)
    result = run(str(buggy), SimOptions(seed=1, duration=15.0))
    assert not result.ok
    assert result.violations[0].check == "counts_equal_input"
