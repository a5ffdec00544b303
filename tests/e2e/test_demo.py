"""`earlyhelp demo` as a newcomer runs it: on the local RabbitMQ, and with no broker at all."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.clock import child_env
from tests.e2e.conftest import earlyhelp_command

pytestmark = [pytest.mark.integration]


def run_demo(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = child_env({**os.environ, **(env_extra or {})})
    return subprocess.run([*earlyhelp_command(), "demo", "--days", "10", "--per-day", "12", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_the_demo_runs_on_the_local_rabbitmq_and_reports_what_it_saw(broker_url):
    done = run_demo("--broker", broker_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "in-memory" not in done.stdout
    assert "Handled" in done.stdout and "SLA" in done.stdout
    assert "Schools and PRUs" in done.stdout and "report.html" in done.stdout  # the report, both forms


def test_the_demo_says_so_and_runs_in_memory_when_no_rabbitmq_answers():
    done = run_demo(env_extra={"EARLYHELP_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No RabbitMQ answers" in done.stdout and "in-memory transport" in done.stdout
    assert "Handled" in done.stdout


def test_the_same_seed_gives_the_same_figures():
    first = run_demo("--broker", "memory://", "--seed", "7")
    second = run_demo("--broker", "memory://", "--seed", "7")
    figures = [line for line in first.stdout.splitlines() if "Handled" in line or "%" in line]
    assert figures and [line.split(" in ")[0] for line in figures] == [
        line.split(" in ")[0] for line in second.stdout.splitlines() if "Handled" in line or "%" in line]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_demo_will_not_share_a_broker_with_a_running_engine(serve, broker_url):
    serve()
    done = run_demo("--broker", broker_url)
    assert done.returncode == 1
    assert "another engine is consuming" in done.stderr and "--broker memory://" in done.stderr
