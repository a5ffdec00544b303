"""Runs the demo: the real engine, in-process, on a simulated clock that walks weeks in about a minute.

Each step moves the clock two simulated hours, sends what the stream and the staff plan say happened
by then (with their own `received_at` / `issued_at`), waits until the engine has handled all of it,
and runs an SLA scan at the new time. Everything else — validation, the state machine, the clocks,
the outbox — is the engine's own code, unchanged.
"""
from __future__ import annotations

import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from earlyhelp.config import Settings
from earlyhelp.schemas import COMMANDS_EXCHANGE, NOTIFICATIONS_EXCHANGE

from .staff import Action, plan
from .stream import generate

STEP = timedelta(hours=2)


class SimulatedClock:
    """The engine's clock during the demo: set by the runner, read by the engine's threads."""

    def __init__(self, now: datetime) -> None:
        self._now, self._lock = now, threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, now: datetime) -> None:
        with self._lock:
            self._now = now


@dataclass
class DemoResult:
    started: datetime
    ended: datetime
    notifications: int = 0
    commands: int = 0
    sla_events: int = 0
    seconds: float = 0.0
    skipped_after_end: int = field(default=0)
    repeats: int = 0      # notifications of a child already notified, from another source
    extensions: int = 0   # extend_clock commands sent by managers


class Sender:
    """Publishes as an upstream system would: pika with confirms on RabbitMQ, kombu on memory://."""

    def __init__(self, broker_url: str) -> None:
        self.memory = broker_url.startswith("memory://")
        if self.memory:
            from kombu import Connection, Producer

            self._conn = Connection(broker_url)
            self._producer = Producer(self._conn.channel())
        else:
            from earlyhelp.producers.upstream_client import UpstreamClient

            self._client = UpstreamClient(broker_url)

    def send(self, exchange: str, key: str, body: dict, message_id: str) -> None:
        raw = json.dumps(body).encode()
        if self.memory:
            self._producer.publish(raw, exchange=exchange, routing_key=key, content_type="application/json",
                                   content_encoding="utf-8", message_id=message_id, delivery_mode=2)
            return
        sent = self._client.publish(exchange, key, raw, message_id=message_id)
        if not sent.ok:
            raise RuntimeError(f"the broker did not take a demo message: {sent.explanation}")

    def close(self) -> None:
        if self.memory:
            self._conn.release()
        else:
            self._client.close()


def run_demo(settings: Settings, seed: int, days: int, per_day: int,
             progress: Callable[[str], None] = print) -> DemoResult:
    from earlyhelp.bootstrap import bootstrap

    rng = random.Random(seed)
    # The span ends at today's midnight (UTC): every simulated time is in the past, and the same seed
    # gives the same weekdays, so the same figures, all day.
    end = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    referrals = generate(rng, uuid.uuid4().hex[:6], start, days, per_day)
    timeline: list[tuple[datetime, int, object]] = []
    closes: dict[str, datetime | None] = {}  # when each case's plan closes it
    for r in referrals:
        timeline.append((r.received_at, 0, r))
        actions = plan(rng, r)
        closes[r.notification_id] = next((a.at for a in actions if a.command == "close"), None)
        first_closes = closes.get(r.repeat_of) if r.repeat_of else None
        if r.repeat_of and (first_closes is None or first_closes > r.received_at):
            continue  # the engine links it to the child's open case: staff act on that case, not a new one
        timeline += [(a.at, 1, a) for a in actions]
    timeline.sort(key=lambda item: (item[0], item[1]))
    result = DemoResult(start, end, skipped_after_end=sum(1 for at, _, _ in timeline if at > end),
                        repeats=sum(1 for r in referrals if r.repeat_of and r.received_at <= end),
                        extensions=sum(1 for at, _, a in timeline if isinstance(a, Action) and at <= end
                                       and a.command == "extend_clock"))
    timeline = [item for item in timeline if item[0] <= end]

    clock = SimulatedClock(start)
    runtime = bootstrap(settings, clock)
    engine_thread = threading.Thread(target=runtime.run, kwargs={"install_signals": False}, daemon=True)
    engine_thread.start()
    _wait(lambda: runtime.ready()[0], 30, "the engine did not become ready")
    sender = Sender(settings.broker_url)
    began, sent, i, now, day_reported = time.monotonic(), 0, 0, start, -1
    try:
        while now < end:
            now = min(now + STEP, end)
            clock.set(now)
            while i < len(timeline) and timeline[i][0] <= now:
                _, _, item = timeline[i]
                i += 1
                sent += 1
                if isinstance(item, Action):
                    result.commands += 1
                    sender.send(COMMANDS_EXCHANGE, f"case.{item.command}", _command_body(item),
                                f"demo-cmd-{sent}")
                else:
                    result.notifications += 1
                    sender.send(NOTIFICATIONS_EXCHANGE, f"notification.{item.source}", item.body,
                                item.notification_id)
            _wait(lambda: runtime.handled_total >= sent, 120, "the engine fell behind")
            result.sla_events += runtime.scanner.scan_once()
            day = (now - start).days
            if (day != day_reported and day % 7 == 0) or now >= end:
                day_reported = day
                progress(f"  day {day:>3}/{days}  {now:%a %d %b}  notifications {result.notifications:>6}  "
                         f"commands {result.commands:>6}  SLA warnings+breaches {result.sla_events:>5}")
        _wait(lambda: runtime.relay.backlog() == 0, 60, "the outbox did not drain")
    finally:
        sender.close()
        runtime.stop()
        engine_thread.join(timeout=30)
    result.seconds = time.monotonic() - began
    return result


def _command_body(action: Action) -> dict:
    return {"schema_version": 1, "command_id": f"demo-{uuid.uuid4().hex}", "case_id": action.case_id,
            "actor": action.actor, "issued_at": action.at.isoformat(), **action.fields}


def _wait(condition: Callable[[], bool], seconds: float, failure: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(failure)
        time.sleep(0.002)
