"""End-to-end fixtures: the `earlyhelp` command run as a user runs it, in a process of its own."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.clock import child_env


def earlyhelp_command() -> list[str]:
    script = Path(sys.executable).parent / "earlyhelp"
    if script.exists():
        return [str(script)]
    found = shutil.which("earlyhelp")
    return [found] if found else [sys.executable, "-m", "earlyhelp.cli.main"]


class ServeProcess:
    """`earlyhelp serve` as a child process; its JSON log lines go to a file the test can read."""

    def __init__(self, env: dict, log_path: Path):
        self.env, self.log_path, self.proc = env, log_path, None

    def start(self, wait_ready: bool = True) -> "ServeProcess":
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*earlyhelp_command(), "serve"], env=child_env(self.env), stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if wait_ready:
            self.wait_for_log('"engine started"')
        return self

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_path.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"serve never logged {text!r}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def serve_env(settings):
    env = dict(os.environ)
    env.update(EARLYHELP_BROKER_URL=settings.broker_url, EARLYHELP_DATABASE_URL=settings.database_url,
               EARLYHELP_METRICS_PORT="0", EARLYHELP_SLA_SCAN_INTERVAL="1")
    return env


@pytest.fixture
def serve(serve_env, tmp_path):
    processes = []

    def start(wait_ready: bool = True, env_extra: dict | None = None) -> ServeProcess:
        env = {**serve_env, **(env_extra or {})}
        process = ServeProcess(env, tmp_path / f"serve-{len(processes)}.log").start(wait_ready)
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.close()
