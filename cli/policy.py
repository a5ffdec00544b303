"""`earlyhelp policy check FILE`: what a new SLA policy would do to every open clock, changing nothing."""
from __future__ import annotations

import json
from pathlib import Path

import click

from earlyhelp.clock import utc_now
from earlyhelp.printing import table


@click.group()
def policy() -> None:
    """Try an SLA policy before it is in force."""


@policy.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def check(settings, file: Path, fmt: str) -> None:
    """Compare FILE with the policy in force over every open clock: open, overdue now, overdue under FILE."""
    from earlyhelp.persistence.database import make_engine
    from earlyhelp.reports.loader import open_clocks
    from earlyhelp.workflows.policy_check import MEASURES, compare
    from earlyhelp.workflows.sla_policy import PolicyError, load_policy

    try:
        current = load_policy(settings.sla_policy)
    except PolicyError as error:
        raise click.ClickException(f"the policy in force: {error}") from error
    if not file.exists():
        raise click.BadParameter(f"{file} does not exist", param_hint="FILE")
    try:
        new = load_policy(file)
    except PolicyError as error:
        raise click.BadParameter(str(error), param_hint="FILE") from error
    engine = make_engine(settings.database_url)
    try:
        result = compare(open_clocks(engine), current, new, utc_now())
    finally:
        engine.dispose()
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{file} beside the policy in force, over every open clock, as of now:")
    header = ["stage", *(m.replace("_", " ") for m in MEASURES)]
    for line in table([header, *([s, *(c[m] for m in MEASURES)] for s, c in result["stages"].items())], rule=True):
        click.echo(line)
    if result["by_district"]:
        click.echo("")
        rows = [["district", *header]]
        rows += [[d, s, *(c[m] for m in MEASURES)] for d, stages in result["by_district"].items()
                 for s, c in stages.items()]
        for line in table(rows, left=2, rule=True):
            click.echo(line)
    click.echo("Nothing was changed.")
