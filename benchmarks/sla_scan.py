"""What an SLA scan costs with 1,000,000 open clocks: none due, and 1,000 due.

Loads 1,000,000 cases and their open triage clocks into a fresh PostgreSQL database (COPY), then times
`SlaScanner.scan_once()` beside a bare baseline run in the same process on the same connection pool:
one `SELECT 1` round trip, the least any scan can cost. Issue 3's goal: a scan under 20 ms when none
is due. Run: `python benchmarks/sla_scan.py [--clocks 1000000]`; it drops its database afterwards.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from sqlalchemy import text  # noqa: E402

from earlyhelp.timers.sla_scanner import SlaScanner  # noqa: E402
from earlyhelp.logs import configure_logging  # noqa: E402
from earlyhelp.persistence.database import make_engine, migrate  # noqa: E402
from earlyhelp.workflows.sla_tracking import SlaTracker  # noqa: E402

ADMIN = os.environ.get("EARLYHELP_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def load(conn: psycopg.Connection, count: int, now: datetime) -> None:
    """`count` cases, each with a running 14-day triage clock due 4 to 17 days from now (nothing due yet:
    the warning comes 3.5 days before the deadline)."""
    with conn.cursor() as cur:
        with cur.copy("COPY cases (case_id, notification_id, state, version, kind, source, priority, "
                      "share_with_school, received_at, opened_at, updated_at) FROM STDIN") as copy:
            for i in range(count):
                at = now - timedelta(seconds=i % 86400)
                copy.write_row((f"bench-{i:08d}", f"bench-n-{i:08d}", "checked", 2, "request_for_support",
                                "school", False, False, at, at, at))
        with cur.copy("COPY sla_clocks (case_id, stage, priority, allowance_amount, allowance_unit, "
                      "started_at, pauses, due_at, warning_at, next_check_at) FROM STDIN") as copy:
            for i in range(count):
                due = now + timedelta(days=4 + (i % 13), seconds=i % 86400)
                copy.write_row((f"bench-{i:08d}", "triage", False, 14, "calendar_days", due - timedelta(days=14),
                                "[]", due, due - timedelta(days=3.5), due - timedelta(days=3.5)))
    conn.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clocks", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=1_000)
    args = parser.parse_args()
    configure_logging("WARNING")  # one log line per event raised would time the logger, not the scan
    name = f"earlyhelp_bench_scan_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    try:
        migrate(url)
        now = datetime.now(timezone.utc)
        started = time.perf_counter()
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            load(conn, args.clocks, now)
            conn.execute("ANALYZE")
        print(f"loaded {args.clocks:,} cases and open clocks in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
        engine = make_engine(url)
        scanner = SlaScanner(engine, SlaTracker(), clock=lambda: now)

        def bare():
            with engine.connect() as c:
                c.execute(text("SELECT 1"))

        timed(bare, 20), timed(scanner.scan_once, 20)  # warm the pool and the caches
        baseline = statistics.median(timed(bare, 200))
        none_due = timed(scanner.scan_once, 200)
        with engine.begin() as c:  # make `--due` clocks due now
            c.execute(text("UPDATE sla_clocks SET next_check_at = :t, due_at = :t WHERE id IN "
                           "(SELECT id FROM sla_clocks ORDER BY id LIMIT :n)"),
                      {"t": now - timedelta(minutes=1), "n": args.due})
        t = time.perf_counter()
        raised = scanner.scan_once()
        due_ms = (time.perf_counter() - t) * 1000
        engine.dispose()
        print(f"| scan | open clocks | due | time | ratio to a bare `SELECT 1` ({baseline:.3f} ms) |")
        print("| --- | --- | --- | --- | --- |")
        med, p99 = statistics.median(none_due), sorted(none_due)[int(len(none_due) * 0.99) - 1]
        print(f"| none due | {args.clocks:,} | 0 | median {med:.2f} ms, p99 {p99:.2f} ms | {med / baseline:.1f} |")
        print(f"| {raised:,} due | {args.clocks:,} | {args.due:,} | {due_ms:.0f} ms "
              f"({due_ms / max(raised, 1):.2f} ms per event) | {due_ms / baseline:.0f} |")
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
