"""Latency from a notification's publish to its `case.checked` event, under a steady rate.

One worker (`earlyhelp serve`) on a fresh PostgreSQL database. A publisher thread sends complete
notifications at a fixed rate (default 200/s, on an absolute schedule so a slow call does not lower
the rate) for a warm-up (not counted) and then the measured period; each notification's publish time
is taken just before its `basic_publish` (pika flushes the frame in that call). A subscriber in the
same process receives `case.checked.#`; the latency is its receive time minus its notification's
publish time (one clock: `time.perf_counter`). With --bare, the bare relay is measured the same way
beside it, as the floor the broker and Python give.

    python benchmarks/latency.py [--rate 200] [--seconds 30] [--warmup 3] [--no-bare]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402
import bare_relay  # noqa: E402


def publish_steadily(amqp_url: str, exchange: str, messages: list, rate: float, sent_at: dict) -> float:
    """Publish `messages` at `rate` per second; records sent_at[id] = perf_counter; returns the rate achieved."""
    import pika

    connection = h.pika_connection(amqp_url)
    channel = connection.channel()
    properties = pika.BasicProperties(content_type="application/json", delivery_mode=2)
    start = time.perf_counter() + 0.05
    try:
        for i, (routing_key, body, ident) in enumerate(messages):
            due = start + i / rate
            while (wait := due - time.perf_counter()) > 0:
                if wait > 0.002:
                    connection.process_data_events(time_limit=wait - 0.001)
                else:
                    time.sleep(0)
            sent_at[ident] = time.perf_counter()
            channel.basic_publish(exchange, routing_key, body, properties)
        elapsed = time.perf_counter() - start
    finally:
        connection.close()
    return len(messages) / elapsed


def measure(env: h.BenchEnv, kind: str, rate: float, seconds: float, warmup: float, db_url: str | None) -> dict:
    prefix = f"lat-{kind}-{env.run_id}"
    count = int(rate * (warmup + seconds))
    messages = [(k, b, f"{prefix}-{i:07d}") for i, (k, b) in enumerate(h.notification_messages(prefix, count))]
    if kind == "engine":
        exchange, binding, events_exchange = h.NOTIFICATIONS_EXCHANGE, "case.checked.#", h.EVENTS_EXCHANGE
    else:
        bare_relay.declare(env.amqp_url)
        exchange, binding, events_exchange = bare_relay.IN_EXCHANGE, "#", bare_relay.OUT_EXCHANGE
    subscriber = h.Subscriber(env.amqp_url, events_exchange, [binding], parse=True).start()
    proc = None
    try:
        if kind == "engine":
            worker = env.start_workers(1, db_url, "latency")[0]
        else:
            proc = subprocess.Popen([sys.executable, bare_relay.__file__, "relay", env.amqp_url],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        sent_at: dict[str, float] = {}
        achieved = publish_steadily(env.amqp_url, exchange, messages, rate, sent_at)
        subscriber.wait_count(count, timeout=120, stall=30)
    finally:
        subscriber.stop()
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    if kind == "engine":
        worker.stop()
        env.workers.remove(worker)
    key = "notification_id" if kind == "engine" else "id"
    skip = int(rate * warmup)
    counted = {ident for _, _, ident in messages[skip:]}
    timed = sorted((sent_at[e[key]], (t - sent_at[e[key]]) * 1000) for t, e in subscriber.received
                   if e[key] in counted)
    latencies = [ms for _, ms in timed]
    if timed:  # p50/p99 per 5 s window, to tell a steady tail from a start-up or a stall
        t0, windows = timed[0][0], {}
        for at, ms in timed:
            windows.setdefault(int((at - t0) // 5), []).append(ms)
        h.log(f"{kind} by 5 s window (p50/p99 ms): " + ", ".join(
            f"{w * 5}s {h.percentile(v, 50):.0f}/{h.percentile(v, 99):.0f}" for w, v in sorted(windows.items())))
    return {"achieved": achieved, "n": len(latencies), "p50": h.percentile(latencies, 50),
            "p90": h.percentile(latencies, 90), "p99": h.percentile(latencies, 99),
            "p99.9": h.percentile(latencies, 99.9), "max": max(latencies), "mean": h.mean(latencies)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--no-bare", action="store_true")
    args = parser.parse_args()
    rows = []
    with h.BenchEnv("latency", max_seconds=4 * (args.seconds + args.warmup) + 240) as env:
        h.declare_engine_topology(env.amqp_url)
        db_url = env.new_postgres("latency")
        kinds = ["engine"] + ([] if args.no_bare else ["bare"])
        for kind in kinds:
            r = measure(env, kind, args.rate, args.seconds, args.warmup, db_url)
            h.log(f"{kind}: {json.dumps({k: round(v, 2) for k, v in r.items()})}")
            what = ("engine, 1 worker, PostgreSQL: notification → case.checked" if kind == "engine"
                    else "bare relay (baseline): message → relayed message")
            rows.append([what, f"{r['achieved']:.0f}/s × {args.seconds:.0f} s", r["n"]]
                        + [f"{r[k]:.1f}" for k in ("p50", "p90", "p99", "p99.9", "max", "mean")])
    print()
    print(h.markdown_table(["what", "steady rate", "messages counted", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms",
                            "max ms", "mean ms"], rows))
    print()
    print(f"Goal (issue 5): p99 < 50 ms for the engine. Warm-up of {args.warmup:.0f} s not counted.")
    print()
    print(h.machine_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
