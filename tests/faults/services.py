"""The local RabbitMQ and PostgreSQL, broken and restored: used by the fault suite and benchmarks/soak.py.

Each fault is a context manager whose exit restores what it changed (read first, never assumed) and
waits until the service answers, so a failing test still leaves the machine as it found it.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from contextlib import contextmanager

PG_CLUSTER = ["pg_ctlcluster", "--skip-systemctl-redirect"]
PG_ADMIN = os.environ.get("EARLYHELP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _run(*command: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=check, capture_output=True, text=True, timeout=timeout)


def rabbitmqctl(*args: str, timeout: float = 120) -> str:
    return _run("rabbitmqctl", "-q", *args, timeout=timeout).stdout.strip()


def _pg_version() -> str:
    return sorted(os.listdir("/etc/postgresql"))[-1]


# -- answering? -------------------------------------------------------------------------------------
def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def postgres_answers() -> bool:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def rabbit_answers() -> bool:
    import pika

    try:
        connection = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", 5672, "/", pika.PlainCredentials("guest", "guest"), socket_timeout=3,
            blocked_connection_timeout=3))
        connection.close()
        return True
    except Exception:  # noqa: BLE001 - pika raises several kinds for "not (yet) there"
        return False


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {timeout} s")
        time.sleep(0.2)


def alarms() -> str:
    """The broker's resource alarms, as rabbitmqctl prints them ('[]' when there are none)."""
    return rabbitmqctl("eval", "rabbit_alarm:get_alarms().")


def ensure_running() -> None:
    """Start whichever service is down (or its app stopped) and wait until both answer."""
    if not postgres_answers():
        _run(*PG_CLUSTER, _pg_version(), "main", "start", check=False)
        wait_for(postgres_answers, 60, "PostgreSQL")
    if not rabbit_answers():
        if _run("rabbitmqctl", "-q", "status", check=False, timeout=60).returncode != 0:
            _run("rabbitmq-server", "-detached", check=False)
            wait_for(lambda: _run("rabbitmqctl", "-q", "await_startup", check=False, timeout=120).returncode == 0,
                     180, "the RabbitMQ node")
        _run("rabbitmqctl", "-q", "start_app", check=False)
        wait_for(rabbit_answers, 120, "RabbitMQ")


# -- PostgreSQL ---------------------------------------------------------------------------------------
def postgres_restart() -> None:
    """An immediate restart: every connection is cut, as in a crash, and the server comes back."""
    _run(*PG_CLUSTER, _pg_version(), "main", "restart", "-m", "immediate")
    wait_for(postgres_answers, 60, "PostgreSQL")


@contextmanager
def postgres_down():
    """PostgreSQL stopped as if it crashed (immediate shutdown) for the body; started again on exit."""
    _run(*PG_CLUSTER, _pg_version(), "main", "stop", "-m", "immediate")
    try:
        yield
    finally:
        _run(*PG_CLUSTER, _pg_version(), "main", "start", check=False)
        wait_for(postgres_answers, 60, "PostgreSQL")


# -- RabbitMQ -----------------------------------------------------------------------------------------
def close_all_connections(vhost: str | None = None) -> None:
    """Close every client connection (of one vhost, when given) as the broker does when an operator asks."""
    scope = ["--vhost", vhost] if vhost else ["--global"]
    rabbitmqctl("close_all_connections", *scope, "earlyhelp fault test")


@contextmanager
def broker_stopped():
    """The RabbitMQ application stopped (the node stays up) for the body; started again on exit."""
    rabbitmqctl("stop_app")
    try:
        yield
    finally:
        rabbitmqctl("start_app")
        wait_for(rabbit_answers, 120, "RabbitMQ")


def memory_watermark() -> list[str]:
    """The current vm_memory_high_watermark as arguments for set_vm_memory_high_watermark."""
    value = rabbitmqctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().")
    absolute = re.fullmatch(r"\{absolute,\s*(\d+)\}", value)
    return ["absolute", absolute.group(1)] if absolute else [value]


def disk_free_limit() -> str:
    return rabbitmqctl("eval", "rabbit_disk_monitor:get_disk_free_limit().")


@contextmanager
def broker_alarm(kind: str):
    """A memory or disk alarm raised for the body (publishers are blocked); the original limit restored on exit."""
    if kind == "memory":
        original = memory_watermark()
        rabbitmqctl("set_vm_memory_high_watermark", "0.0000001")
        restore = ["set_vm_memory_high_watermark", *original]
    elif kind == "disk":
        original_limit = disk_free_limit()
        rabbitmqctl("set_disk_free_limit", "100000GB")
        restore = ["set_disk_free_limit", original_limit]
    else:
        raise ValueError(kind)
    try:
        wait_for(lambda: kind in alarms(), 30, f"the {kind} alarm")
        yield
    finally:
        rabbitmqctl(*restore)
        wait_for(lambda: alarms() == "[]", 60, "the alarms to clear")
