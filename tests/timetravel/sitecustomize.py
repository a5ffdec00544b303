"""Moves a child process started by the tests to the test's own clock (tests/clock.py, `child_env`).

Python imports `sitecustomize` at start-up from the path; the tests put this folder on PYTHONPATH only
for the processes they start, with EARLYHELP_TEST_TRAVEL_TO set to the test's "now" at that moment, so an
`earlyhelp serve` or `demo` child sees the same ticking clock as the test that started it. Nothing in
the package reads this variable: it exists only here, for tests.
"""
import os

_instant = os.environ.get("EARLYHELP_TEST_TRAVEL_TO")
if _instant:
    import time_machine

    time_machine.travel(_instant, tick=True).start()
