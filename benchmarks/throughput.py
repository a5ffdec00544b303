"""Throughput of notification intake and command handling, as a ratio to the bare relay run beside it.

For each configuration (one worker on PostgreSQL, three workers on PostgreSQL, one worker on SQLite),
in one vhost and a fresh database of its own:

1. intake: N complete notifications are preloaded into `earlyhelp.engine.notifications`, then the
   workers (`earlyhelp serve`, EARLYHELP_METRICS_PORT=0) start; timed by the `case.checked` events a
   subscriber receives;
2. commands: the workers stop, N `triage` commands (one per case opened in 1, all `checked`) are
   preloaded into `earlyhelp.engine.commands`, the workers start again; timed by `case.triaged` events;

and right before and after each, the bare relay (bare_relay.py, one process) on the same N messages
in the same vhost (the ratio uses the mean of the two; their range shows the machine's noise). Preloading first means publishing speed does not limit; the rate is taken from the arrival
times of the events (first→last, and the steady 10 %→90 % window that leaves out workers starting).
Over that same 10 %→90 % window, each process group's CPU time from /proc/<pid>/stat gives its share
in % of one core: the workers, RabbitMQ's beam.smp, PostgreSQL's postmaster and backends, and this
process (the subscriber); the same for the bare relay runs.

    python benchmarks/throughput.py [--messages 20000] [--configs pg1,pg3,sqlite1] [--profile DIR]

--profile DIR attaches `py-spy record --nonblocking --threads` to the first worker of each phase
(writes DIR/<config>-<phase>.txt collapsed stacks and .svg flame graphs); the rates of a profiled run
are lower and are marked so.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402
from _harness import TimeLimit  # noqa: E402
import bare_relay  # noqa: E402

CONFIGS = {"pg1": ("postgresql", 1), "pg3": ("postgresql", 3), "sqlite1": ("sqlite", 1)}


def run_phase(env: h.BenchEnv, db_url: str, workers: int, label: str, phase: str, messages: list,
              exchange: str, queue: str, binding: str, expected_outcome: str, profile: Path | None) -> dict:
    h.purge(env.amqp_url, h.NOTIFICATIONS_QUEUE, h.COMMANDS_QUEUE)
    bare = bare_relay.measure(env, messages)
    h.log(f"{label} {phase}: bare relay {bare['steady']:,.0f} msg/s; CPU {h.cpu_text(bare['cpu'], 'relay')}")
    subscriber = h.Subscriber(env.amqp_url, h.EVENTS_EXCHANGE, [binding]).start()
    spies = []
    try:
        h.preload(env.amqp_url, exchange, messages, queue, len(messages))
        started = env.start_workers(workers, db_url, f"{label}-{phase}")
        if profile is not None:
            spies = [start_spy(started[0].pid, profile / f"{label}-{phase}")]
        cpu = h.wait_measuring_cpu(env, subscriber, len(messages), [w.pid for w in started], timeout=600)
        engine = h.rates([t for t, _ in subscriber.received], len(messages))
    finally:
        for spy in spies:
            stop_spy(spy)
        subscriber.stop()
    outcomes: dict[str, int] = {}
    for worker in started:
        worker.stop()
        for k, v in worker.count_handled().items():
            outcomes[k] = outcomes.get(k, 0) + v
    env.workers = [w for w in env.workers if w not in started]
    after = bare_relay.measure(env, messages)  # again after, to show the machine's noise
    h.log(f"{label} {phase}: bare relay after {after['steady']:,.0f} msg/s; CPU {h.cpu_text(after['cpu'], 'relay')}")
    bare = {"steady": (bare["steady"] + after["steady"]) / 2, "rate": (bare["rate"] + after["rate"]) / 2,
            "range": sorted((round(bare["steady"]), round(after["steady"]))),
            "cpu": {g: (bare["cpu"][g] + after["cpu"][g]) / 2 for g in bare["cpu"].keys() & after["cpu"].keys()}}
    if outcomes.get(expected_outcome, 0) != len(messages):
        raise RuntimeError(f"{label} {phase}: expected {len(messages)} '{expected_outcome}', got {outcomes}")
    h.log(f"{label} {phase}: engine {engine['steady']:,.0f} msg/s ({outcomes}); CPU {h.cpu_text(cpu, 'serve')}")
    return {"bare": bare, "engine": engine, "cpu": cpu}


def run_config(env: h.BenchEnv, label: str, database: str, workers: int, n: int, attempt: int,
               profile: Path | None) -> tuple[dict, dict]:
    """Both phases on a fresh database."""
    db_url = env.new_postgres(f"{label}_{attempt}") if database == "postgresql" else env.new_sqlite(f"{label}-{attempt}")
    prefix = f"tp-{label}-{attempt}-{env.run_id}"
    notifications = list(h.notification_messages(prefix, n))
    intake = run_phase(env, db_url, workers, f"{label}-a{attempt}", "intake", notifications, h.NOTIFICATIONS_EXCHANGE,
                       h.NOTIFICATIONS_QUEUE, "case.checked.#", "opened", profile)
    commands = list(h.triage_messages(f"{prefix}-triage", h.case_ids_for(prefix, n)))
    handled = run_phase(env, db_url, workers, f"{label}-a{attempt}", "commands", commands, h.COMMANDS_EXCHANGE,
                        h.COMMANDS_QUEUE, "case.triaged.#", "applied", profile)
    return intake, handled


def start_spy(pid: int, stem: Path) -> subprocess.Popen:
    if shutil.which("py-spy") is None:
        raise RuntimeError("py-spy is not installed: pip install py-spy")
    # SPY_IDLE=1: idle threads too (where a thread waits); SPY_GIL=1: only the thread holding the GIL.
    modes = [flag for flag, env in (("--idle", "SPY_IDLE"), ("--gil", "SPY_GIL")) if os.environ.get(env)]
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--nonblocking", "--threads", "--rate", "250",
                             *modes, "--format", "raw", "-o", f"{stem}.txt"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop_spy(spy: subprocess.Popen) -> None:
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--configs", default="pg1,pg3,sqlite1")
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--max-seconds", type=float, default=1500)
    args = parser.parse_args()
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    n = args.messages
    rows, cpu_rows = [], []
    with h.BenchEnv("throughput", args.max_seconds) as env:
        h.declare_engine_topology(env.amqp_url)
        for label in configs:
            database, workers = CONFIGS[label]
            for attempt in range(1, 4):
                try:
                    intake, handled = run_config(env, label, database, workers, n, attempt, args.profile)
                    break
                except (TimeLimit, KeyboardInterrupt):
                    raise
                except Exception as error:  # noqa: BLE001 - a broker or database restart by someone else
                    if attempt == 3:
                        raise
                    h.log(f"{label} interrupted ({type(error).__name__}: {str(error)[:120]}); again from the start")
                    for worker in env.workers:
                        worker.close()
                    env.workers = []
                    time.sleep(10)
                    h.declare_engine_topology(env.amqp_url)
            for phase, result in (("intake (notification → case.checked)", intake),
                                  ("commands (triage → case.triaged)", handled)):
                b, e = result["bare"], result["engine"]
                rows.append([phase, database, workers, f"{n:,}", f"{e['steady']:,.0f}", f"{e['rate']:,.0f}",
                             f"{b['steady']:,.0f} ({b['range'][0]:,}–{b['range'][1]:,})", f"{e['steady'] / b['steady']:.2f}",
                             f"{e['rate'] / b['rate']:.2f}"])
                print("| " + " | ".join(str(c) for c in rows[-1]) + " |", flush=True)  # kept if a later one fails
                cpu, bare_cpu = result["cpu"], b["cpu"]
                cpu_rows.append([phase, database, workers] + [h.cpu_cell(cpu, g) for g in h.CPU_GROUPS]
                                + [h.cpu_cell(bare_cpu, "workers"), h.cpu_cell(bare_cpu, "beam.smp")])
    print()
    if args.profile:
        print("**Profiled run (py-spy attached to one worker): rates are lower than unprofiled.**\n")
    print(h.markdown_table(["what", "database", "workers", "messages", "engine msg/s (10–90 %)",
                            "engine msg/s (first→last)", "bare relay msg/s (10–90 %, mean of before/after)", "ratio (10–90 %)",
                            "ratio (first→last)"], rows))
    print()
    print("CPU over the same 10–90 % windows, % of one core (the machine has "
          f"{os.cpu_count()} cores, so {100 * (os.cpu_count() or 1)} % is all of it):\n")
    print(h.markdown_table(["what", "database", "workers", "earlyhelp serve (all workers)", "beam.smp",
                            "postgres (postmaster + backends)", "benchmark (subscriber)",
                            "bare relay: relay", "bare relay: beam.smp"], cpu_rows))
    print()
    print(h.machine_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
