"""The baseline: a bare pika relay, the least any consumer of these messages can do per message.

Consume from a quorum queue (prefetch as the engine's, 200), json-parse the body, publish one small
persistent message to an exchange (no confirms), ack that one delivery; one message at a time. No
database, no validation, no batching. The throughput scripts run it in the same vhost and run as the
engine, on the same messages, and report the engine's rate as a ratio to this one.

    python benchmarks/bare_relay.py relay AMQP_URL        # the relay process (the scripts start it)
    python benchmarks/bare_relay.py bench [--messages N] [--relays K]   # measure it on its own
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

IN_EXCHANGE = "bench.bare.in"
IN_QUEUE = "bench.bare.in"
OUT_EXCHANGE = "bench.bare.out"
PREFETCH = 200  # EARLYHELP_PREFETCH's default


def relay(amqp_url: str, prefetch: int = PREFETCH) -> None:
    """Run until SIGTERM: consume, parse, publish one message, ack; one at a time."""
    import signal

    import pika

    connection = h.pika_connection(amqp_url)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    properties = pika.BasicProperties(content_type="application/json", delivery_mode=2)

    def on_message(ch, method, _props, body):
        document = json.loads(body)
        event = {"event_type": "relay.done", "id": document.get("notification_id") or document.get("command_id")}
        ch.basic_publish(OUT_EXCHANGE, "relay.done", json.dumps(event).encode(), properties)
        ch.basic_ack(method.delivery_tag)

    signal.signal(signal.SIGTERM, lambda *_: channel.stop_consuming())
    channel.basic_consume(IN_QUEUE, on_message)
    print("relay started", flush=True)
    channel.start_consuming()
    connection.close()


def declare(amqp_url: str) -> None:
    """The relay's input exchange and quorum queue (like the engine's input queues) and output exchange."""
    connection = h.pika_connection(amqp_url)
    try:
        channel = connection.channel()
        channel.exchange_declare(IN_EXCHANGE, "topic", durable=True)
        channel.exchange_declare(OUT_EXCHANGE, "topic", durable=True)
        channel.queue_declare(IN_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(IN_QUEUE, IN_EXCHANGE, routing_key="#")
    finally:
        connection.close()


def measure(bench: "h.BenchEnv", messages: list[tuple[str, bytes]], relays: int = 1, timeout: float = 300) -> dict:
    """Preload `messages`, start `relays` relay processes, time the outputs; returns rates (msg/s) and,
    under "cpu", each process group's % of one core over the steady window (h.cpu_shares)."""
    declare(bench.amqp_url)
    h.purge(bench.amqp_url, IN_QUEUE)
    subscriber = h.Subscriber(bench.amqp_url, OUT_EXCHANGE, ["#"]).start()
    procs = []
    try:
        h.preload(bench.amqp_url, IN_EXCHANGE, messages, IN_QUEUE, len(messages))
        log_path = bench.tmp / "bare-relay.log"
        with open(log_path, "ab") as out:
            procs = [subprocess.Popen([sys.executable, __file__, "relay", bench.amqp_url], stdout=out,
                                      stderr=subprocess.STDOUT) for _ in range(relays)]
        cpu = h.wait_measuring_cpu(bench, subscriber, len(messages), [p.pid for p in procs], timeout)
        return {**h.rates([t for t, _ in subscriber.received], len(messages)), "cpu": cpu}
    finally:
        subscriber.stop()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("relay")
    run.add_argument("amqp_url")
    run.add_argument("--prefetch", type=int, default=PREFETCH)
    bench = sub.add_parser("bench")
    bench.add_argument("--messages", type=int, default=20000)
    bench.add_argument("--relays", type=int, default=1)
    bench.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.mode == "relay":
        relay(args.amqp_url, args.prefetch)
        return 0
    rows = []
    with h.BenchEnv("bare", max_seconds=540) as env:
        messages = list(h.notification_messages("bare", args.messages))
        for i in range(args.repeat):
            r = measure(env, messages, args.relays)
            rows.append([i + 1, args.relays, args.messages, f"{r['rate']:,.0f}", f"{r['steady']:,.0f}"]
                        + [h.cpu_cell(r["cpu"], g) for g in h.CPU_GROUPS])
            h.log(f"bare relay run {i + 1}: {r['rate']:,.0f} msg/s; CPU {h.cpu_text(r['cpu'], 'relay')}")
            time.sleep(1)
    print(h.markdown_table(["run", "relays", "messages", "msg/s (first→last)", "msg/s (10–90 %)",
                            "CPU % of one core, 10–90 %: relay", "beam.smp", "postgres", "benchmark"], rows))
    print()
    print(h.machine_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
