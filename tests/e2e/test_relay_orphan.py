"""`serve` on PostgreSQL runs its outbox relay as a child process (producers/relay_process.py). Killed with
SIGKILL, `serve` cannot stop it: the child notices it has been orphaned and exits by itself, leaving what is
pending in the outbox for the next relay, instead of publishing on with nobody supervising it."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            if int(text[text.rindex(")") + 2:].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def command_line(pid: int) -> str:
    return (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")).decode(errors="replace")


def alive(pid: int) -> bool:
    try:
        return "\tZ" not in (Path(f"/proc/{pid}/status").read_text().split("State:")[1][:4])
    except OSError:
        return False


def test_the_relay_process_of_a_killed_serve_ends_by_itself(serve):
    engine = serve()
    engine.wait_for_log('"outbox relay process started"')
    relays = [pid for pid in children_of(engine.proc.pid)
              if "spawn_main" in command_line(pid) and "resource_tracker" not in command_line(pid)]
    assert len(relays) == 1, [command_line(pid) for pid in children_of(engine.proc.pid)]
    engine.kill()
    deadline = time.monotonic() + 10
    while alive(relays[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(relays[0]), "the orphaned relay process is still running"
    assert "the engine's process is gone" in engine.log_path.read_text()
