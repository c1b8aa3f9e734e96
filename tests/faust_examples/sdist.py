"""Faust's own examples, fetched from PyPI at test time and cached outside the repository.

The examples of faust-streaming's source distribution are a compatibility
corpus: they run unmodified on detstream with the Faust alias. Faust's files
are never committed here; ``faust_examples()`` downloads the sdist with pip
(the ordinary client, which checks the index's hash), keeps only its
``examples/`` directory under ``~/.cache/detstream/`` (``DETSTREAM_CACHE``
moves it), and returns it. Without a package index the tests that need it
are skipped, saying so loudly.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path

import pytest

#: the faust-streaming release whose examples the tests run.
FAUST_VERSION = "0.15.3"

#: the examples and what feeds them under `detstream sim`: None when the example produces its
#: own input (a timer, a task), else a scenario file of tests/faust_examples/scenarios
#: replacing the CLI command Faust's example takes its input from.
EXAMPLES: dict[str, str | None] = {
    "hello_world": None,
    "withdrawals": "withdrawals.py",
    "windowing/tumbling": None,
    "windowing/hopping": None,
    "windowing/hopping_2": None,
    "windowed_aggregation": None,
    "tableofset": "tableofset.py",
    "leader": None,
    "concurrency": None,  # its producer is a __main__ script, and it would call google.com
    "advanced/service": None,
    "advanced/rpc": None,
    "advanced/isolated_partitions_crashing": "isolated_partitions_crashing.py",
    "crontab/tz_unaware": None,
    "word_count": None,
    "tabletest": "tabletest.py",
    "bound_agent": None,
    "task_queue": None,
    "kubernetes/consumer/consumer": "kubernetes_consumer.py",  # its producer is plain aiokafka
    "fastapi_example": None,  # the Faust app of a FastAPI project (its timer produces)
    "fastapi_project:my_faust.app": None,  # the same as a package, found by autodiscovery
    # a Faust app in a Django project, run as its `proj-faust worker` runs it: the Django
    # fixup sets Django up and autodiscovery finds accounts/agents.py. Idle: no producer,
    # and its agents' synchronous ORM calls would be refused in async code (in Faust too).
    "django:faustapp.app": None,
    # its input is an HTTP request to its view, and its agents and views name `test_order`,
    # which the example never defines (its case is `Test_order`): any order raises NameError,
    # in Faust too. Run as its worker runs it: the app, with its LiveCheck app attached.
    "livecheck": None,
}

#: what an example imports beyond detstream (all in the `dev` extra): without it, the
#: example's test is skipped, saying so loudly.
NEEDS: dict[str, str] = {
    "fastapi_example": "fastapi",
    "fastapi_project:my_faust.app": "fastapi",
    "django:faustapp.app": "django",
}

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def cache_dir() -> Path:
    return Path(os.environ.get("DETSTREAM_CACHE") or Path.home() / ".cache" / "detstream")


def faust_examples() -> Path:
    """The ``examples`` directory of faust-streaming's sdist (its parent is the working dir)."""
    root = cache_dir() / f"faust-streaming-{FAUST_VERSION}"
    done = root / ".complete"
    if done.is_file():
        return root / "examples"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".faust-streaming-{FAUST_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one download for parallel sessions
        if not done.is_file():
            _fetch(root)
            done.write_text(f"faust-streaming {FAUST_VERSION} examples\n")
    return root / "examples"


def _fetch(root: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="faust-sdist-") as tmp:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", f"faust-streaming=={FAUST_VERSION}",
             "--no-deps", "--no-binary", ":all:", "--quiet", "-d", tmp],
            capture_output=True, text=True, timeout=600,
        )
        archives = list(Path(tmp).glob("faust_streaming-*.tar.gz"))
        if result.returncode != 0 or not archives:
            reason = (f"SKIPPED LOUDLY: could not download the faust-streaming {FAUST_VERSION} "
                      f"sdist from the package index: {result.stderr.strip()[-300:]}")
            warnings.warn(reason, stacklevel=3)
            pytest.skip(reason)
        shutil.rmtree(root, ignore_errors=True)
        with tarfile.open(archives[0]) as archive:
            prefix = f"faust_streaming-{FAUST_VERSION}/examples/"
            members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
            for member in members:
                member.name = member.name.removeprefix(f"faust_streaming-{FAUST_VERSION}/")
            archive.extractall(root, members=members, filter="data")
