"""No test depends on the date it runs: the date-sensitive tests, run again as if today were a hard day.

The rest of the suite runs at a fixed anchor (tests/clock.py). What reads "today" is the unit tests (pure:
they must not read the clock at all) and the tests marked `today` (their times are relative to it, such
as "received three days ago"). Each chosen instant below is one where date arithmetic goes wrong if it
is going to: a Friday evening (working days resume on Monday), the day before a bank holiday, the October
clock change (the run crosses 01:00 UTC, when British Summer Time ends), 31 December (the run crosses
into a new year) and the first days after Christmas's bank holidays. The runs go side by side: they spend their time waiting on
the broker, and each has its own vhost and database.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clock import TODAY_VARIABLE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
CHOSEN_TODAYS = {
    "a Friday evening": "2026-12-04T18:30:00+00:00",
    "the day before Good Friday": "2027-03-25T16:00:00+00:00",
    "the October clock change": "2026-10-25T00:59:00+00:00",
    "31 December, into the new year": "2026-12-31T23:59:00+00:00",
    "2 January, after the Christmas bank holidays": "2027-01-02T10:00:00+00:00",
}
# The unit tests (no marker) and the tests whose times are relative to today; the others read the anchor.
SELECTION = ["tests/unit", "tests/integration", "tests/e2e", "-m", "today or not integration"]


def _run_as_if_today(instant: str) -> subprocess.Popen:
    env = {**os.environ, TODAY_VARIABLE: instant}
    env.pop("PYTEST_ADDOPTS", None)
    # --show-capture=no: a failure's own lines, not the logs captured around it, fill the tail kept below.
    return subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--show-capture=no",
                             "--tb=short", *SELECTION],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_the_date_sensitive_tests_pass_whatever_today_is():
    runs = {name: _run_as_if_today(instant) for name, instant in CHOSEN_TODAYS.items()}
    failed = {}
    for name, run in runs.items():
        output, _ = run.communicate(timeout=900)
        summary = output.strip().splitlines()[-1] if output.strip() else "(no output)"
        print(f"as if today were {name} ({CHOSEN_TODAYS[name]}): {summary}")
        if run.returncode != 0:
            failed[name] = output[-6000:]
    assert not failed, "\n\n".join(f"--- as if today were {name}:\n{out}" for name, out in failed.items())
