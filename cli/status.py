"""`earlyhelp status NOTIFICATION_ID --source SOURCE`: what became of one referral (reports/referrer_status.py)."""
from __future__ import annotations

import json
import sys
from typing import get_args

import click

from earlyhelp.printing import escape
from earlyhelp.schemas.notification import Source


@click.command()
@click.argument("notification_id")
@click.option("--source", required=True, type=click.Choice(get_args(Source)),
              help="The referrer's source (ids are unique per source).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@click.pass_obj
def status(settings, notification_id: str, source: str, as_json: bool) -> None:
    """What became of a referral, as its referrer was told (no personal data)."""
    from earlyhelp.persistence.database import make_engine
    from earlyhelp.reports.referrer_status import referrer_story, story_lines

    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            story = referrer_story(conn, source, notification_id)
    finally:
        engine.dispose()
    if story is None:
        click.echo(f"no notification {escape(notification_id)} from {source} is known to the engine (never received, "
                   "or refused: see earlyhelp dead-letters)", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(story, indent=2))
        return
    for line in story_lines(story):
        click.echo(escape(line))
