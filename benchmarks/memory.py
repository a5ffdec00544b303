"""A worker's memory (VmRSS, VmHWM) as the number of stored cases grows to 1,000,000.

One `earlyhelp serve` process runs on a fresh PostgreSQL database from start to end. Stage 0: the
worker handles a stream of M new notifications and then M `triage` commands on the cases they opened;
one of those cases, `checked`, is read back from every table (cases, case_details, case_history,
sla_clocks, processed_messages, outbox) as the template for the bulk load. Then, stage by stage, cases
are bulk-loaded straight into PostgreSQL with COPY (clones of the template under new notification,
case and event ids, outbox rows marked published: not through the broker), up to 250k, 500k and 1M
stored cases; after each load the worker handles M new notifications and M triage commands on
random loaded cases (each once), and its VmRSS and VmHWM are read from /proc/<pid>/status (also
sampled every 0.2 s while it works: the peak is shown).

    python benchmarks/memory.py [--stages 0,250000,500000,1000000] [--stream 5000] [--no-outbox]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

TABLES = ("cases", "case_details", "case_history", "sla_clocks", "processed_messages", "outbox")
KEYS = {"cases": "case_id", "case_details": "case_id", "case_history": "case_id", "sla_clocks": "case_id",
        "processed_messages": "case_id"}


def read_template(dsn: str, case_id: str, notification_id: str) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every row of one case, by table: (columns without the serial id, rows)."""
    import psycopg

    out = {}
    with psycopg.connect(dsn) as conn:
        for table in TABLES:
            if table == "outbox":
                cur = conn.execute("SELECT * FROM outbox WHERE body::text LIKE %s", (f"%{case_id}%",))
            else:
                cur = conn.execute(f"SELECT * FROM {table} WHERE case_id = %s", (case_id,))
            columns = [d.name for d in cur.description]
            keep = [i for i, c in enumerate(columns) if c != "id"]
            rows = [tuple(r[i] for i in keep) for r in cur.fetchall()]
            out[table] = ([columns[i] for i in keep], rows)
    if not out["cases"][1] or out["cases"][1][0][out["cases"][0].index("state")] != "checked":
        raise RuntimeError(f"template case {case_id} is not stored as checked: {out['cases']}")
    return out


def bulk_load(dsn: str, template: dict, prefix: str, start: int, end: int, with_outbox: bool) -> float:
    """COPY clones of the template case for notification ids prefix-start … prefix-(end-1); returns cases/s."""
    import psycopg

    from earlyhelp.consumers.recording import case_id_for

    t_case = template["cases"][1][0][template["cases"][0].index("case_id")]
    t_notification = template["cases"][1][0][template["cases"][0].index("notification_id")]
    t_events = sorted({v for _, rows in template.values() for row in rows for v in row
                       if isinstance(v, str) and len(v) == 36 and v != t_case and _is_uuid(v)})
    now = datetime.now().astimezone()
    tables = [t for t in TABLES if with_outbox or t != "outbox"]
    started = time.perf_counter()
    # One pass per table keeps each COPY streaming; chunks of 50,000 cases are committed one by one and
    # a chunk cut off by a lost connection (a PostgreSQL restart) is copied again once it is back.
    for table in tables:
        for chunk in range(start, end, 50_000):
            for attempt in range(10):
                try:
                    with psycopg.connect(dsn) as conn:
                        _copy_chunk(conn, table, template, prefix, chunk, min(chunk + 50_000, end), t_case,
                                    t_notification, t_events, now, case_id_for)
                    break
                except psycopg.OperationalError as error:
                    if attempt == 9:
                        raise
                    h.log(f"bulk load of {table} interrupted ({str(error)[:80]}); again in 5 s")
                    time.sleep(5)
    return (end - start) / (time.perf_counter() - started)


def _copy_chunk(conn, table, template, prefix, start, end, t_case, t_notification, t_events, now, case_id_for):
    columns, rows = template[table]
    if not rows:
        return
    prepared = [[_as_text(v) for v in row] for row in rows]
    olds = [t_case, t_notification, *t_events]
    # Which (row, column) holds which of the template's ids: only those are rewritten per case.
    plan = [[(c, [k for k, old in enumerate(olds) if old in v]) for c, v in enumerate(row)
             if isinstance(v, str) and any(old in v for old in olds)] for row in prepared]
    published = columns.index("published_at") if table == "outbox" else None
    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for i in range(start, end):
            notification_id = f"{prefix}-{i:07d}"
            case_id = case_id_for("school", notification_id)
            news = [case_id, notification_id,
                    *(str(uuid.uuid5(uuid.NAMESPACE_OID, f"{case_id}/{e}")) for e in t_events)]
            for row, changes in zip(prepared, plan):
                values = list(row)
                for c, ks in changes:
                    v = values[c]
                    for k in ks:
                        v = v.replace(olds[k], news[k])
                    values[c] = v
                if published is not None:
                    values[published] = now
                copy.write_row(values)
    conn.commit()


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


def _as_text(value):
    """JSON columns as their text (COPY's text format takes it as is); bytes as bytes; the rest unchanged."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


class Sampler:
    """Reads the worker's VmRSS every 0.2 s while running; keeps the largest."""

    def __init__(self, worker: h.Worker) -> None:
        self.worker, self.peak, self._stop = worker, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self.worker.memory()["VmRSS"])

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(timeout=5)


def processed(dsn: str) -> int:
    import psycopg

    for attempt in range(30):
        try:
            with psycopg.connect(dsn) as conn:
                return conn.execute("SELECT count(*) FROM processed_messages").fetchone()[0]
        except psycopg.OperationalError:
            time.sleep(2)
    raise RuntimeError("the database stayed away")


def send(env: h.BenchEnv, dsn: str, exchange: str, queue: str, make_messages, expect_processed: int) -> float:
    """Publish, then wait until the database records `expect_processed` handled messages; returns msg/s.

    Progress is read from the database, not from events, so a broker restart (by another session's
    fault tests) costs time, not the run: the worker reconnects, the quorum queues keep what they hold,
    and publishing again after a lost connection only makes repeats, which the engine drops.
    """
    before, started = processed(dsn), time.perf_counter()
    for attempt in range(10):
        try:
            h.preload(env.amqp_url, exchange, make_messages(), queue, 0)
            break
        except Exception as error:  # noqa: BLE001
            h.log(f"publishing interrupted ({type(error).__name__}); again in 5 s")
            time.sleep(5)
    deadline = time.monotonic() + 600
    while (done := processed(dsn)) < expect_processed:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{done} of {expect_processed} messages handled")
        time.sleep(0.1)
    return (done - before) / (time.perf_counter() - started)


def stream(env: h.BenchEnv, dsn: str, prefix: str, count: int, triage_cases: list[str]) -> dict:
    """M new notifications (until all handled), then triage on `triage_cases` (until all handled)."""
    base = processed(dsn)
    intake = send(env, dsn, h.NOTIFICATIONS_EXCHANGE, h.NOTIFICATIONS_QUEUE,
                  lambda: h.notification_messages(prefix, count), base + count)
    commands = send(env, dsn, h.COMMANDS_EXCHANGE, h.COMMANDS_QUEUE,
                    lambda: h.triage_messages(f"{prefix}-triage", triage_cases), base + count + len(triage_cases))
    return {"intake": intake, "commands": commands}


def database_size(dsn: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        cases = conn.execute("SELECT count(*) FROM cases").fetchone()[0]
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return cases, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default="0,250000,500000,1000000")
    parser.add_argument("--stream", type=int, default=5000, help="notifications (and as many commands) per stage")
    parser.add_argument("--no-outbox", action="store_true", help="do not bulk-load published outbox rows")
    parser.add_argument("--max-seconds", type=float, default=2400)
    args = parser.parse_args()
    stages = [int(s) for s in args.stages.split(",")]
    rng = random.Random(5)
    rows = []
    with h.BenchEnv("memory", args.max_seconds) as env:
        h.declare_engine_topology(env.amqp_url)
        url = env.new_postgres("memory")
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        worker = env.start_workers(1, url, "memory")[0]
        time.sleep(1)
        started = worker.memory()
        rows.append(["worker started, idle", 0, "–", "–", "–", f"{started['VmRSS'] / 1024:.1f}", "–",
                     f"{started['VmHWM'] / 1024:.1f}", "–"])
        loaded_prefix = f"mem-{env.run_id}"
        loaded, untriaged, template = 0, [], None
        for n, stage in enumerate(stages):
            if stage > loaded:
                if template is None:
                    raise RuntimeError("the first stage must be 0 (it makes the template case)")
                rate = bulk_load(dsn, template, loaded_prefix, loaded, stage, not args.no_outbox)
                h.log(f"loaded cases {loaded:,}–{stage:,} at {rate:,.0f} cases/s")
                untriaged += h.case_ids_for(loaded_prefix, stage - loaded, loaded)
                loaded = stage
            prefix = f"mem-{env.run_id}-s{n}"
            if template is None:
                # Stage 0: open cases, keep one untouched as the template, triage the others.
                with Sampler(worker) as sampler:
                    new_ids = h.case_ids_for(prefix, args.stream)
                    base = processed(dsn)
                    send(env, dsn, h.NOTIFICATIONS_EXCHANGE, h.NOTIFICATIONS_QUEUE,
                         lambda: h.notification_messages(prefix, args.stream), base + args.stream)
                    template = read_template(dsn, new_ids[0], f"{prefix}-{0:07d}")
                    send(env, dsn, h.COMMANDS_EXCHANGE, h.COMMANDS_QUEUE,
                         lambda: h.triage_messages(f"{prefix}-triage", new_ids[1:]), base + 2 * args.stream - 1)
                    rates = {"intake": float("nan"), "commands": float("nan")}
            else:
                picked = set(rng.sample(range(len(untriaged)), args.stream))
                chosen = [c for i, c in enumerate(untriaged) if i in picked]
                untriaged = [c for i, c in enumerate(untriaged) if i not in picked]
                with Sampler(worker) as sampler:
                    rates = stream(env, dsn, prefix, args.stream, chosen)
            time.sleep(1)
            mem = worker.memory()
            cases, size = database_size(dsn)
            h.log(f"stage {stage:,}: {cases:,} cases, RSS {mem['VmRSS'] / 1024:.1f} MiB, HWM {mem['VmHWM'] / 1024:.1f}")
            rows.append([f"after stage {n}: {stage:,} loaded + streams", f"{cases:,}", f"{size / 2**30:.2f}",
                         f"{rates['intake']:,.0f}", f"{rates['commands']:,.0f}", f"{mem['VmRSS'] / 1024:.1f}",
                         f"{sampler.peak / 1024:.1f}", f"{mem['VmHWM'] / 1024:.1f}", worker.count_handled()])
        worker.stop()
    print()
    print(h.markdown_table(["point", "cases stored", "database GiB", "intake msg/s", "commands msg/s",
                            "VmRSS MiB", "peak RSS while handling MiB", "VmHWM MiB", "outcomes so far"], rows))
    print()
    print(f"One worker process throughout; each stage handles {args.stream:,} new notifications and "
          f"{args.stream:,} triage commands (stage 0: on the cases it opened; later: on random loaded cases).")
    print()
    print(h.machine_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
