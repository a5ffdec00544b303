"""The tests' clock: every test that reads the time reads one it controls, so it holds on any date.

- Tests under integration/, e2e/ and faults/ run at ANCHOR (a Wednesday, just after the factories'
  default times), ticking at the real rate: their fixed dates (`received_at` 20 November 2026 and so on)
  mean the same thing whenever the suite runs. time-machine moves every clock read in the process,
  the engine's threads included; `time.monotonic` and `perf_counter` are left alone, so timeouts hold.
- A test marked `today` runs at the session's "today" instead, with its dates relative to it (`ago`).
- `EARLYHELP_TEST_TODAY` (an ISO 8601 instant) moves the session's "today": tests/test_any_date.py runs
  the unit tests and the `today` tests under a few chosen dates (a Friday evening, the day before a bank
  holiday, the October clock change, 31 December) to show that none depends on the real date.
- Child processes (`earlyhelp serve`, `demo`, `submit`...) get the test's "now" at the moment they start
  through `child_env`, and tests/timetravel/sitecustomize.py moves them there.

The broker and PostgreSQL keep their own clocks; the engine never asks either for the time.
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

ANCHOR = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
TODAY_VARIABLE = "EARLYHELP_TEST_TODAY"
_TIMETRAVEL = Path(__file__).parent / "timetravel"
# Folders whose tests run at ANCHOR unless marked `today`: they start the engine or the tools.
ANCHORED_FOLDERS = ("integration", "e2e", "faults")


def now() -> datetime:
    return datetime.now(timezone.utc)


def ago(**delta) -> str:
    """An ISO 8601 time `delta` before the test's now."""
    return (now() - timedelta(**delta)).isoformat()


def ahead(**delta) -> str:
    """An ISO 8601 time `delta` after the test's now."""
    return (now() + timedelta(**delta)).isoformat()


def child_env(env: dict) -> dict:
    """`env` for a child process that should see the test's clock from the moment it starts."""
    paths = [str(_TIMETRAVEL), *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "EARLYHELP_TEST_TRAVEL_TO": now().isoformat(), "PYTHONPATH": os.pathsep.join(paths)}
