"""`earlyhelp clocks CASE_ID`: a case's SLA clocks (stage, started, paused, deadline, warning, state)."""
from __future__ import annotations

import json

import click

from earlyhelp.clock import utc_now
from earlyhelp.printing import table, utc_minute


@click.command()
@click.argument("case_id")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def clocks(settings, case_id: str, fmt: str) -> None:
    """A case's SLA clocks: when each stage started, whether it waits, its deadline and warning, its state."""
    from earlyhelp.persistence.database import make_engine
    from earlyhelp.reports.clock_views import KEYS, case_clocks

    engine = make_engine(settings.database_url)
    try:
        found = case_clocks(engine, case_id, utc_now())
    finally:
        engine.dispose()
    if found is None:
        raise click.BadParameter("no such case; check the case id", param_hint="CASE_ID")
    if fmt == "json":
        click.echo(json.dumps([{k: c[k] for k in KEYS} for c in found], indent=2))
        return
    if not found:
        click.echo("no SLA clocks for this case yet")
        return
    rows = [["stage", "started", "paused since", "deadline", "warning", "state"]]
    rows += [[c["stage"], *(utc_minute(c[k]) for k in ("started", "paused", "deadline", "warning")), c["state"]]
             for c in found]
    for line in table(rows, left=6, rule=True):
        click.echo(line)
