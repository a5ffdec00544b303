"""CPU per published event of the outbox relay's publisher, beside pika publishing the same with confirms.

The relay publishes three events per notification, so its publisher is a fixed share of a worker's CPU.
In a vhost of its own, both publish N event-sized messages (a 1 KB body, the properties the relay sets) to
an exchange bound to nothing (the broker confirms and drops them): `ConfirmingPublisher.publish_batch`
(producers/confirming_publisher.py: kombu/py-amqp connection, frames made by producers/publish_frames.py,
confirms awaited once per batch of 500) and the baseline, pika's BlockingChannel in confirm mode
publishing one message at a time (each `basic_publish` waits for its confirm) and, with
--pika-unconfirmed, without confirms. This process's CPU time per event (`time.process_time`), alternating
the two, `--runs` times.

    python benchmarks/publish_cost.py [--events 20000] [--runs 3] [--pika-unconfirmed]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

EXCHANGE = "bench.publish.nowhere"
BATCH = 500  # the relay's batch_size
BODY = b'{"event":"' + b"x" * 1000 + b'"}'


def relay_publisher(amqp_url: str, events: int) -> float:
    from kombu import Connection

    import earlyhelp.consumers.runtime  # noqa: F401 - installs the engine's py-amqp read path, as serve does
    from earlyhelp.producers.confirming_publisher import CONFIRMED, ConfirmingPublisher, Outgoing

    conn = Connection(amqp_url, heartbeat=30)
    try:
        conn.ensure_connection(max_retries=3)
        publisher = ConfirmingPublisher(conn)
        batch = [Outgoing(EXCHANGE, "case.checked.maidstone", BODY, {"message_id": f"ev-{i}", "type": "case.checked"})
                 for i in range(BATCH)]
        publisher.publish_batch(batch)  # warm
        started = time.process_time()
        for _ in range(events // BATCH):
            outcomes = publisher.publish_batch(batch)
            assert all(o == CONFIRMED for o in outcomes), set(outcomes)
        return (time.process_time() - started) / (events // BATCH * BATCH)
    finally:
        conn.release()


def pika_publisher(amqp_url: str, events: int, confirm: bool) -> float:
    import pika

    connection = h.pika_connection(amqp_url)
    try:
        channel = connection.channel()
        if confirm:
            channel.confirm_delivery()
        started = time.process_time()
        for i in range(events):
            channel.basic_publish(EXCHANGE, "case.checked.maidstone", BODY, pika.BasicProperties(
                content_type="application/json", content_encoding="utf-8", delivery_mode=2, message_id=f"ev-{i}",
                type="case.checked", user_id="guest"))
        if not confirm:
            connection.process_data_events(time_limit=0)
        return (time.process_time() - started) / events
    finally:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pika-unconfirmed", action="store_true")
    args = parser.parse_args()
    rows = []
    with h.BenchEnv("publish", max_seconds=600) as env:
        connection = h.pika_connection(env.amqp_url)
        connection.channel().exchange_declare(EXCHANGE, "topic", durable=True)
        connection.close()
        for run in range(1, args.runs + 1):
            relay = relay_publisher(env.amqp_url, args.events)
            confirmed = pika_publisher(env.amqp_url, args.events, confirm=True)
            row = [run, f"{relay * 1e6:.1f}", f"{confirmed * 1e6:.1f}", f"{relay / confirmed:.2f}"]
            if args.pika_unconfirmed:
                row.append(f"{pika_publisher(env.amqp_url, args.events, confirm=False) * 1e6:.1f}")
            h.log(f"run {run}: relay publisher {row[1]} µs/event, pika with confirms {row[2]}")
            rows.append(row)
    print()
    headers = ["run", "relay publisher CPU µs/event", "pika, confirm each, CPU µs/event", "ratio"]
    print(h.markdown_table(headers + (["pika, no confirms, CPU µs/event"] if args.pika_unconfirmed else []), rows))
    print()
    print(h.machine_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
