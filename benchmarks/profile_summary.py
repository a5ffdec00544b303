"""Summarises a py-spy raw (collapsed) profile: per thread, the functions by inclusive and self share.

    py-spy record --pid PID --nonblocking --threads --format raw -o prof.txt   (or throughput.py --profile DIR)
    python benchmarks/profile_summary.py prof.txt [--top 30] [--match earlyhelp,sqlalchemy]
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> str:
    """'func (path/to/module.py:123)' -> 'module.py:func' (the line dropped, so a function counts once)."""
    m = FRAME.match(frame)
    if not m:
        return frame
    path = m.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{m.group('func')}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--match", default="", help="comma-separated substrings; list only matching functions")
    args = parser.parse_args()
    matches = [m for m in args.match.split(",") if m]
    threads: dict[str, Counter] = defaultdict(Counter)
    selfs: dict[str, Counter] = defaultdict(Counter)
    totals: Counter = Counter()
    for line in open(args.profile, encoding="utf-8", errors="replace"):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0] if frames[0].startswith(("thread", "process")) else "?"
        body = [short(f) for f in frames[1:] if not f.startswith(("thread", "process"))]
        n = int(count)
        totals[thread] += n
        for name in set(body):
            threads[thread][name] += n
        if body:
            selfs[thread][body[-1]] += n
    grand = sum(totals.values())
    for thread, total in totals.most_common():
        print(f"\n## {thread}: {total} samples, {100 * total / grand:.1f} % of all\n")
        print("| inclusive % | self % | function |\n| --- | --- | --- |")
        shown = 0
        for name, n in threads[thread].most_common():
            if matches and not any(m in name for m in matches):
                continue
            print(f"| {100 * n / total:.1f} | {100 * selfs[thread][name] / total:.1f} | `{name}` |")
            shown += 1
            if shown >= args.top:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
