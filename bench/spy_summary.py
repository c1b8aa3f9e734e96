"""Summarise a py-spy ``--format raw`` file (collapsed stacks), as ``bench/throughput.py --py-spy`` writes.

    .venv/bin/python bench/spy_summary.py FILE [--top 30] [--grep detstream/]

Prints the share of samples spent waiting (the event loop's ``select``), then the
functions with the largest share of samples: "self" where the sample's leaf frame is
the function, "incl" where it is anywhere on the stack (counted once per sample).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

#: leaf frames that mean "the loop waits for I/O or a timer".
IDLE = re.compile(r"\b(select|poll|epoll_wait)\b.*\((selectors|select)\.py|\(selectors\.py")
FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>.+?)(?::\d+)?\)$")


def short(frame: str) -> str:
    """``func (path:line)`` -> ``func (last two path parts)``, lines dropped so calls merge."""
    m = FRAME.match(frame)
    if not m:
        return frame
    parts = m.group("file").split("/")
    return f"{m.group('func')} ({'/'.join(parts[-2:])})"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--grep", default="", help="only list functions whose name contains this")
    args = parser.parse_args()

    total, idle = 0, 0
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for line in args.file.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [short(f) for f in stack.split(";")]
        if frames and frames[0].startswith("process ") or frames and frames[0].startswith("thread "):
            frames = frames[1:]
        total += count
        if frames and IDLE.search(stack.split(";")[-1]):
            idle += count
            continue
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
    if not total:
        raise SystemExit("no samples")
    print(f"{total} samples; waiting in select: {idle / total:.1%}; busy: {(total - idle) / total:.1%}")
    print(f"\n{'self':>6} {'incl':>6}  function")
    for name, count in sorted(incl.items(), key=lambda kv: -kv[1]):
        if args.grep and args.grep not in name:
            continue
        print(f"{own[name] / total:6.1%} {count / total:6.1%}  {name}")
        args.top -= 1
        if args.top <= 0:
            break
    print(f"\n{'self':>6}  function (by self)")
    shown = 0
    for name, count in own.most_common():
        if args.grep and args.grep not in name:
            continue
        print(f"{count / total:6.1%}  {name}")
        shown += 1
        if shown >= 25:
            break


if __name__ == "__main__":
    main()
