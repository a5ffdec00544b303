"""The report as JSON: exactly the data build_report returns, for other tools and for tests."""
from __future__ import annotations

import json


def render(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"
