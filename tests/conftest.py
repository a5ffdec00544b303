"""Shared fixtures: a fresh RabbitMQ vhost and fresh databases (SQLite and PostgreSQL) per test run,
and the clock every test reads (tests/clock.py).

The services are the real ones on this machine (README: "Tests"). Override their addresses with
EARLYHELP_TEST_AMQP (no vhost) and EARLYHELP_TEST_POSTGRES (an admin URL to the `postgres` database).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import time_machine

from tests import clock

AMQP = os.environ.get("EARLYHELP_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
POSTGRES_ADMIN = os.environ.get("EARLYHELP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
RUN_ID = uuid.uuid4().hex[:8]


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True,
                          timeout=120).stdout


def pytest_configure(config):
    config.addinivalue_line("markers", "today: runs at the session's today, its dates relative to it "
                                       "(tests/clock.py), not at the fixed anchor")
    today = os.environ.get(clock.TODAY_VARIABLE)
    if today:  # the whole run, and every child it starts, as if today were this instant
        config._earlyhelp_today = time_machine.travel(today, tick=True)
        config._earlyhelp_today.start()


def pytest_unconfigure(config):
    traveller = getattr(config, "_earlyhelp_today", None)
    if traveller is not None:
        traveller.stop()


@pytest.fixture(autouse=True)
def test_clock(request):
    """Tests that start the engine or the tools run at clock.ANCHOR, unless marked `today`."""
    folder = request.node.path.parent.name
    if folder not in clock.ANCHORED_FOLDERS or request.node.get_closest_marker("today"):
        yield clock.now()
        return
    with time_machine.travel(clock.ANCHOR, tick=True):
        yield clock.ANCHOR


@pytest.fixture(scope="session")
def vhost():
    """A vhost of its own for this test run, deleted afterwards."""
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is not on PATH: the integration tests need the local RabbitMQ")
    name = f"earlyhelp-test-{RUN_ID}"
    rabbitmqctl("await_startup", "--timeout", "120")  # a broker still booting refuses add_vhost
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    rabbitmqctl("delete_vhost", name)


@pytest.fixture(scope="session")
def broker_url(vhost) -> str:
    return f"{AMQP}/{vhost}"


@pytest.fixture(scope="session")
def postgres_url():
    """A database of its own for this test run, migrated once and dropped afterwards."""
    import psycopg

    from earlyhelp.persistence.database import migrate

    name = f"earlyhelp_test_{RUN_ID}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    migrate(url)
    yield url
    from sqlalchemy import create_engine  # noqa: F401 - engines are disposed by the tests

    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')





@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Each integration test runs on both databases: an empty SQLite file, or the run's PostgreSQL emptied."""
    from sqlalchemy import text

    from earlyhelp.persistence.database import make_engine, migrate

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'earlyhelp.sqlite'}"
        migrate(url)
        return url
    url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    with engine.begin() as conn:
        existing = [t for t in all_tables() if conn.dialect.has_table(conn, t)]
        conn.execute(text("TRUNCATE " + ", ".join(existing) + " CASCADE"))
    engine.dispose()
    return url


def all_tables() -> list[str]:
    from earlyhelp.persistence.tables import metadata

    return [t.name for t in reversed(metadata.sorted_tables)]


@pytest.fixture
def clean_broker(broker_url):
    """The contract's topology declared and every engine queue empty."""
    from kombu import Connection

    from earlyhelp.consumers.topology import ALL_QUEUES, declare_topology

    with Connection(broker_url) as conn:
        channel = conn.channel()
        declare_topology(channel)
        for queue in ALL_QUEUES:
            queue(channel).purge()
    return broker_url


@pytest.fixture
def settings(clean_broker, database_url):
    from earlyhelp.config import Settings

    return Settings(broker_url=clean_broker, database_url=database_url, metrics_port=0, sla_scan_interval=1)


class RunningEngine:
    """An engine in a thread of the test process, stopped as `serve` is on SIGTERM."""

    def __init__(self, settings, clock=None):
        from earlyhelp.bootstrap import bootstrap
        from earlyhelp.clock import utc_now

        self.runtime = bootstrap(settings, clock or utc_now)
        self.thread = threading.Thread(target=self.runtime.run, kwargs={"install_signals": False}, daemon=True)

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.runtime.ready()[0]:
            if time.monotonic() > deadline:
                raise AssertionError(f"engine not ready: {self.runtime.ready()[1]}")
            time.sleep(0.02)
        return self

    def stop(self):
        self.runtime.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "engine did not stop within 30 s"


@pytest.fixture
def engine(settings):
    running = RunningEngine(settings).start()
    yield running
    running.stop()


class EventTap:
    """Collects everything published on earlyhelp.events (or given bindings) into a list."""

    def __init__(self, broker_url: str, bindings=("#",), ignore: tuple[str, ...] = ()):
        import pika

        from earlyhelp.producers.upstream_client import _pika_url

        self.connection = pika.BlockingConnection(pika.URLParameters(_pika_url(broker_url)))
        self.channel = self.connection.channel()
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        for binding in bindings:
            self.channel.queue_bind(self.queue, "earlyhelp.events", routing_key=binding)
        self.events: list[tuple[str, dict, object]] = []
        self.ignore = ignore  # routing-key prefixes dropped as they arrive

    def _pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            method, props, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                self.connection.sleep(0.02)
                continue
            if not method.routing_key.startswith(self.ignore):
                self.events.append((method.routing_key, json.loads(body), props))

    def wait_for(self, predicate, timeout: float = 15.0, count: int = 1) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for _, e, _ in self.events if predicate(e)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                types = [k for k, _, _ in self.events]
                raise AssertionError(f"timed out waiting for {count} matching events; saw {types}")
            self._pump(0.1)

    def settle(self, seconds: float = 0.5) -> None:
        """Collect for a while longer, to show that nothing more arrives."""
        self._pump(seconds)

    def of_type(self, event_type: str) -> list[dict]:
        return [e for _, e, _ in self.events if e.get("event_type") == event_type]

    def keys(self) -> list[str]:
        return [k for k, _, _ in self.events]

    def close(self):
        if self.connection.is_open:
            self.connection.close()


# What the `tap` fixture keeps: everything but what the referrer is told (referrer.<source>.<event>,
# docs/contract.md "Referrers told"), which has its own fixture, `referrer_tap`, so a test of a case's own
# events reads them in order without the referrer's copies between them.
@pytest.fixture
def tap(clean_broker):
    t = EventTap(clean_broker, ignore=("referrer.",))
    yield t
    t.close()


@pytest.fixture
def referrer_tap(clean_broker):
    t = EventTap(clean_broker, ("referrer.#",))
    yield t
    t.close()


@pytest.fixture
def upstream(clean_broker):
    from earlyhelp.producers.upstream_client import UpstreamClient

    client = UpstreamClient(clean_broker)
    yield client
    client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DeadLetters:
    """Reads copies from earlyhelp.dead-letter (basic_get, acked so each test sees only its own)."""

    def __init__(self, broker_url: str):
        import pika

        from earlyhelp.producers.upstream_client import _pika_url

        self.connection = pika.BlockingConnection(pika.URLParameters(_pika_url(broker_url)))
        self.channel = self.connection.channel()

    def take(self, count: int = 1, timeout: float = 10.0) -> list[tuple[bytes, object]]:
        found, deadline = [], time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            method, props, body = self.channel.basic_get("earlyhelp.dead-letter", auto_ack=True)
            if method is None:
                self.connection.sleep(0.05)
                continue
            found.append((body, props))
        return found

    def close(self):
        if self.connection.is_open:
            self.connection.close()


@pytest.fixture
def dead_letters(clean_broker):
    d = DeadLetters(clean_broker)
    yield d
    d.close()
