"""Soak under faults: three `earlyhelp serve` workers, a steady stream, a seeded random schedule of faults.

    python benchmarks/soak.py --notifications 3000 --faults 20 --seed 7

A fresh PostgreSQL database and a fresh RabbitMQ vhost; notifications, then a `triage` and an
`allocate` for every case made, sent with confirms by a sender that retries what was not confirmed
(as a good upstream does). Meanwhile faults, chosen and spaced by the seed: a worker killed with
SIGKILL and restarted, every connection of the vhost closed, PostgreSQL restarted (-m immediate),
the broker application stopped and started. Then a drain, and a Jepsen-style count: sent,
confirmed, cases, transitions, lost, duplicated, transitions published under two event ids.
The vhost and database are removed at the end and both services are left running.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the fault suite's helpers: services, ledger, sender

from tests.e2e.conftest import ServeProcess  # noqa: E402
from tests.factories import command_body, encode, notification_body  # noqa: E402
from tests.faults import services  # noqa: E402
from tests.faults.ledger import Collector, tally  # noqa: E402
from tests.faults.stream import Sender  # noqa: E402

AMQP = os.environ.get("EARLYHELP_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
FAULTS = ("kill -9 a worker, restart it", "close all connections", "restart PostgreSQL (immediate)",
          "stop and start the broker")


class Soak:
    def __init__(self, args):
        self.args, self.rng = args, random.Random(args.seed)
        run = uuid.uuid4().hex[:8]
        self.vhost, self.database = f"earlyhelp-soak-{run}", f"earlyhelp_soak_{run}"
        self.broker_url = f"{AMQP}/{self.vhost}"
        self.database_url = (services.PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
                             + f"/{self.database}")
        self.logs = Path(tempfile.mkdtemp(prefix="earlyhelp-soak-"))
        self.workers: list[ServeProcess] = []
        self.faults_done: Counter = Counter()
        self.phase = "setup"
        self.sending_done = threading.Event()

    # -- set-up and clean-up -----------------------------------------------------------------------
    def setup(self) -> None:
        import psycopg

        from earlyhelp.persistence.database import migrate

        services.ensure_running()
        services.rabbitmqctl("add_vhost", self.vhost)
        services.rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        with psycopg.connect(services.PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        migrate(self.database_url)
        for index in range(self.args.workers):
            self.workers.append(self._worker(index).start())
        self.collector = Collector(self.broker_url, "soak.collector")

    def _worker(self, index: int) -> ServeProcess:
        env = {**os.environ, "EARLYHELP_BROKER_URL": self.broker_url, "EARLYHELP_DATABASE_URL": self.database_url,
               "EARLYHELP_METRICS_PORT": "0"}
        return ServeProcess(env, self.logs / f"worker-{index}.log")

    def cleanup(self) -> None:
        import psycopg

        services.ensure_running()
        for worker in self.workers:
            if worker.proc.poll() is None:
                try:
                    worker.terminate(timeout=60)
                except Exception:  # noqa: BLE001
                    pass
            worker.close()
        try:
            services.rabbitmqctl("delete_vhost", self.vhost)
        except Exception as error:  # noqa: BLE001
            print(f"could not delete vhost {self.vhost}: {error}", file=sys.stderr)
        with psycopg.connect(services.PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    # -- the load ----------------------------------------------------------------------------------
    def send(self, messages, pause_s: float) -> Sender:
        return Sender(self.broker_url, messages, pause_s=pause_s).start().join(timeout=3600)

    def wait_events(self, event_type: str, wanted: set[str], key: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not wanted <= {e[key] for e in self.collector.of_type(event_type)}:
            if time.monotonic() > deadline:
                return  # the count at the end says what is missing
            if not self.collector.pump():
                time.sleep(0.2)

    def load(self) -> dict:
        from earlyhelp.consumers.recording import case_id_for

        n = self.args.notifications
        ids = [f"soak-{self.args.seed}-{i:05d}" for i in range(n)]
        self.phase = "notifications"
        notifications = self.send([("earlyhelp.notifications", "notification.school",
                                    encode(notification_body(notification_id=i)), i) for i in ids], self.args.pause)
        self.wait_events("case.checked", set(notifications.confirmed), "notification_id", 600)
        cases = [case_id_for("school", i) for i in notifications.confirmed]
        commands = {"notification": notifications}
        for name, fields, after in (("triage", {"district": "Maidstone"}, "case.triaged"),
                                    ("allocate", {}, "case.allocated")):
            self.phase = name
            bodies = [command_body(name, c, command_id=f"soak-{name}-{c}", **fields) for c in cases]
            commands[name] = self.send([("earlyhelp.commands", f"case.{name}", encode(b), b["command_id"])
                                        for b in bodies], self.args.pause / 2)
            self.wait_events(after, set(cases), "case_id", 600)
        self.phase = "drain"
        self.sending_done.set()
        return commands

    # -- the faults --------------------------------------------------------------------------------
    def inject_faults(self, stop: threading.Event) -> None:
        while sum(self.faults_done.values()) < self.args.faults and not stop.is_set():
            if stop.wait(self.rng.uniform(*self.args.gap)):
                return
            fault = self.rng.choice(FAULTS)
            started = time.monotonic()
            if fault == FAULTS[0]:
                index = self.rng.randrange(len(self.workers))
                self.workers[index].kill()
                time.sleep(self.rng.uniform(0.2, 2.0))
                self.workers[index] = self._worker(index).start(wait_ready=False)
            elif fault == FAULTS[1]:
                services.close_all_connections(self.vhost)
            elif fault == FAULTS[2]:
                services.postgres_restart()
            else:
                with services.broker_stopped():
                    time.sleep(self.rng.uniform(1.0, 4.0))
            self.faults_done[fault] += 1
            print(f"  [{time.strftime('%H:%M:%S')}] fault {sum(self.faults_done.values()):2d} during "
                  f"{self.phase}: {fault} ({time.monotonic() - started:.1f} s)", flush=True)

    def drain(self, timeout: float = 300) -> None:
        from tests.faults.helpers import outbox_pending

        deadline = time.monotonic() + timeout
        while outbox_pending(self.database_url) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        while self.collector.pump():
            pass

    def run(self) -> int:
        started = time.monotonic()
        self.setup()
        try:
            stop = threading.Event()
            faults = threading.Thread(target=self.inject_faults, args=(stop,), daemon=True)
            faults.start()
            sent = self.load()
            faults.join(timeout=max(0.0, self.args.max_seconds - (time.monotonic() - started)))
            stop.set()
            faults.join()
            services.ensure_running()
            self.drain()
            notifications = sent["notification"]
            command_ids = sent["triage"].confirmed + sent["allocate"].confirmed
            result = tally(self.database_url, notifications.confirmed,
                           sum(len(s.messages) for s in sent.values()), [e for _, e in self.collector.events],
                           command_ids)
            attempts = sum(s.attempts for s in sent.values())
            print()
            print(f"soak: {self.args.workers} workers, seed {self.args.seed}, "
                  f"{time.monotonic() - started:.0f} s, {sum(self.faults_done.values())} faults")
            for fault in FAULTS:
                print(f"  {self.faults_done[fault]:3d} x {fault}")
            print(f"publish attempts (with retries)       {attempts}")
            for line in result.lines():
                print(line)
            print(f"expected transitions                 {4 * len(notifications.confirmed)}"
                  "  (received, checked, triaged, allocated)")
            print("RESULT:", "OK" if result.ok and result.transitions == 4 * len(notifications.confirmed)
                  else "FAILED")
            if result.lost or result.duplicated:
                print("lost:", result.lost[:10], "duplicated:", result.duplicated[:10])
            return 0 if result.ok else 1
        finally:
            try:
                self.collector.delete()
            except Exception:  # noqa: BLE001
                pass
            self.cleanup()
            print(f"worker logs in {self.logs}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notifications", type=int, default=3000)
    parser.add_argument("--faults", type=int, default=20)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pause", type=float, default=0.01, help="seconds between notifications sent")
    parser.add_argument("--gap", type=float, nargs=2, default=(2.0, 6.0), help="seconds between faults (range)")
    parser.add_argument("--max-seconds", type=float, default=900, help="bound on the whole run")
    return Soak(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
