"""cProfile of the engine's batch path in this process, without the broker: where a message's time goes.

Runs the engine's own BatchProcessor (parse → one transaction → flush) on batches of 100 notifications,
then batches of 100 triage commands on the cases they opened, against a fresh PostgreSQL database (or
SQLite with --sqlite), the same way `earlyhelp serve` calls it, and the outbox relay's publish step
on a fake publisher (no broker: only its database and Python cost). Prints µs per message per phase
(wall, and this process's CPU) and the top functions by cumulative and own time. With --no-profile it
runs without cProfile, whose overhead falls on Python code and not on the database: the figures to compare
two commits with (alternate them; run each a few times).

    python benchmarks/profile_batch.py [--messages 5000] [--sqlite] [--top 25] [--no-profile]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402


def deliveries(messages, exchange):
    from earlyhelp.consumers.delivery import Delivery

    return [Delivery(body=b, exchange=exchange, routing_key=k, properties={"content_type": "application/json"},
                     delivery_tag=i) for i, (k, b) in enumerate(messages)]


class StatementTimer:
    """Wall time of each SQL statement the engine runs, by phase and by what it is ("INSERT cases",
    "UPDATE outbox", "COMMIT"): the time the handling thread waits on the database, statement by statement."""

    def __init__(self, engine) -> None:
        from sqlalchemy import event

        self.phase, self.spent, self.count, self._started = "", {}, {}, []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "commit", self._time_commits)

    @staticmethod
    def kind(statement: str) -> str:
        import re

        words = statement.split()
        verb = words[0].upper() if words else "?"
        if verb == "WITH":  # write_all: named by the first table it writes
            target = re.search(r"\b(INSERT INTO|UPDATE)\s+(\w+)", statement)
            return f"WITH … {target.group(1).split()[0]} {target.group(2)}" if target else "WITH"
        table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", statement)
        return f"{verb} {table.group(1)}" if table else verb

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        self._started.append(time.perf_counter())

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        self._add(self.kind(statement), time.perf_counter() - self._started.pop())

    def _time_commits(self, conn):
        # A commit's own time: the DBAPI connection's commit, wrapped once per connection.
        raw = conn.connection.dbapi_connection
        if getattr(raw, "_timed", False):
            return
        original = raw.commit

        def timed_commit():
            started = time.perf_counter()
            try:
                return original()
            finally:
                self._add("COMMIT", time.perf_counter() - started)
        try:
            raw.commit, raw._timed = timed_commit, True
        except AttributeError:  # a DBAPI connection that takes no attributes: commits go untimed
            pass

    def _add(self, kind: str, seconds: float) -> None:
        key = (self.phase, kind)
        self.spent[key] = self.spent.get(key, 0.0) + seconds
        self.count[key] = self.count.get(key, 0) + 1

    def table(self, messages: dict[str, int]) -> str:
        rows = sorted(self.spent.items(), key=lambda kv: (kv[0][0], -kv[1]))
        return h.markdown_table(
            ["phase", "statement", "times run", "µs per message (wall)"],
            [[phase, kind, self.count[(phase, kind)], f"{1e6 * spent / messages[phase.split(':')[0]]:,.0f}"]
             for (phase, kind), spent in rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true", help="time only: no cProfile overhead, no listings")
    parser.add_argument("--statements", action="store_true",
                        help="also the wall time of each kind of SQL statement, µs per message (who waits on the database)")
    args = parser.parse_args()
    from earlyhelp.consumers.batch import BatchProcessor
    from earlyhelp.persistence.database import make_engine
    from earlyhelp.producers.confirming_publisher import CONFIRMED
    from earlyhelp.producers.outbox_relay import OutboxRelay
    from earlyhelp.schemas import DEFAULT_DISTRICTS

    class FakePublisher:  # confirms everything at once: leaves the relay's database and Python cost
        blocked = False

        def poll(self):
            return False

        def publish_batch(self, messages):
            return [CONFIRMED] * len(messages)

    from earlyhelp.logs import configure_logging

    # The engine logs one JSON line per message, as `serve` configures it: keep that cost, send the lines nowhere.
    sink = open("/dev/null", "w")
    configure_logging(stream=sink)
    results = []
    with h.BenchEnv("profile", max_seconds=600) as env:
        url = env.new_sqlite("profile") if args.sqlite else env.new_postgres("profile")
        engine = make_engine(url)
        statements = StatementTimer(engine) if args.statements else None
        clock = lambda: datetime.now(timezone.utc)  # noqa: E731
        processor = BatchProcessor(engine, clock, DEFAULT_DISTRICTS)
        relay = OutboxRelay(engine, lambda: None, clock)
        relay._ensure_publisher = lambda: FakePublisher()
        prefix = f"prof-{env.run_id}"
        n, size = args.messages, args.batch
        phases = [
            ("intake", deliveries(h.notification_messages(prefix, n), h.NOTIFICATIONS_EXCHANGE)),
            ("triage", deliveries(h.triage_messages(f"{prefix}-t", h.case_ids_for(prefix, n)), h.COMMANDS_EXCHANGE)),
        ]
        for name, items in phases:
            profiler = cProfile.Profile()
            started, cpu = time.perf_counter(), time.process_time()
            if not args.no_profile:
                profiler.enable()
            if statements:
                statements.phase = f"{name}: handling"
            for i in range(0, len(items), size):
                processor.process(items[i:i + size])
            profiler.disable()
            handled, handled_cpu = time.perf_counter() - started, time.process_time() - cpu
            relay_profiler = cProfile.Profile()
            started, cpu = time.perf_counter(), time.process_time()
            if not args.no_profile:
                relay_profiler.enable()
            if statements:
                statements.phase = f"{name}: relay"
            while relay.publish_pending():
                pass
            relay_profiler.disable()
            relayed, relayed_cpu = time.perf_counter() - started, time.process_time() - cpu
            results.append((name, (handled, handled_cpu, relayed, relayed_cpu), profiler, relay_profiler, len(items)))
        engine.dispose()
    profiled = "" if args.no_profile else ", profiled"
    print(h.markdown_table(
        ["phase", "messages", "batch", f"handling µs/msg (wall{profiled})", f"handling CPU µs/msg{profiled}",
         f"outbox relay µs/msg (wall{profiled})", f"outbox relay CPU µs/msg{profiled}"],
        [[name, n_items, size, *(f"{1e6 * t / n_items:,.0f}" for t in times)]
         for name, times, _, _, n_items in results]))
    for name, _, profiler, relay_profiler, _ in ([] if args.no_profile else results):
        for what, prof in ((f"{name}: BatchProcessor.process", profiler), (f"{name}: OutboxRelay.publish_pending",
                                                                               relay_profiler)):
            for key in ("cumulative", "tottime"):
                out = io.StringIO()
                pstats.Stats(prof, stream=out).sort_stats(key).print_stats(args.top)
                print(f"\n### {what}, by {key}\n```")
                print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))
                print("```")
    if statements:
        print()
        print(statements.table({name: n_items for name, _, _, _, n_items in results}))
    print()
    print(h.machine_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
