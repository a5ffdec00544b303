"""The `earlyhelp` command line: one group, its commands kept in small modules beside this one."""
from __future__ import annotations

import sys

import click

from earlyhelp.config import load_settings
from earlyhelp.logs import configure_logging
from earlyhelp.secrets import mask_secrets


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR (default INFO; WARNING for demo).")
@click.pass_context
def cli(ctx: click.Context, log_level: str | None) -> None:
    """earlyhelp: the Early Help case-flow engine on RabbitMQ."""
    quiet = ctx.invoked_subcommand == "demo"  # one JSON line per message would bury the demo's progress
    configure_logging((log_level or ("WARNING" if quiet else "INFO")).upper())
    try:
        ctx.obj = load_settings()
    except Exception as error:  # pydantic-settings names the bad variable
        # Settings hide their input in errors; masking again covers what a parser might still quote.
        raise click.ClickException(f"configuration error: {mask_secrets(error)}") from None


@cli.command()
@click.pass_obj
def serve(settings) -> None:
    """Run the engine: declare the topology, apply migrations, consume, publish events."""
    from earlyhelp.bootstrap import bootstrap
    from earlyhelp.status_server import PortTaken, start_status_server

    from earlyhelp.workflows.senders import SendersError
    from earlyhelp.workflows.sla_policy import PolicyError
    from earlyhelp.records.pseudonyms import KeyProblem, announce_key_source

    try:
        announce_key_source(settings.database_url)  # where the pseudonym key is, said once on stderr
        runtime = bootstrap(settings, case_gauges=True)  # with /metrics' case gauges, refreshed every 15 s
    except (PolicyError, SendersError, KeyProblem) as error:
        raise click.ClickException(str(error)) from error
    server = None
    if settings.metrics_port:
        try:
            server = start_status_server(settings.metrics_port, runtime.ready)
        except PortTaken as error:
            raise click.ClickException(str(error)) from error
    try:
        code = runtime.run()
    finally:
        if server is not None:
            server.shutdown()
    sys.exit(code)


@cli.command()
@click.option("--revision", default="head", show_default=True)
@click.pass_obj
def migrate(settings, revision: str) -> None:
    """Apply the database migrations (serve also does this when it starts)."""
    from earlyhelp.persistence.database import current_revision, migrate as run_migrations

    run_migrations(settings.database_url, revision)
    click.echo(f"database at revision {current_revision(settings.database_url)}")


@cli.command()
@click.option("--check", is_flag=True, help="Exit 1 if the committed files differ from the code.")
def schemas(check: bool) -> None:
    """Write the JSON Schemas, the AsyncAPI document and docs/contract.md's tables from the message models."""
    from earlyhelp.schemas import contract_doc, generate

    # docs/ is beside the source in a checkout, not in an installed wheel: the page is a developer's job.
    page = contract_doc.CONTRACT_PAGE if contract_doc.CONTRACT_PAGE.exists() else None
    if check:
        drifted = generate.drifted() + (["docs/contract.md"] if page and contract_doc.drifted(page) else [])
        if drifted:
            raise click.ClickException("generated files differ from the code: " + ", ".join(drifted))
        click.echo("schema files match the code")
        return
    for path in [*generate.write_all(), *([contract_doc.write(page)] if page else [])]:
        click.echo(str(path))


@cli.command()
def diagram() -> None:
    """Print the case workflow as a Mermaid diagram, drawn from the state machine itself."""
    from earlyhelp.workflows.case_machine import CaseMachine

    click.echo(CaseMachine.mermaid())


def _register_client_commands() -> None:
    from . import clients, operators, records
    from .clocks import clocks
    from .policy import policy
    from .demo import demo
    from .queue_limits import queue_limits
    from .status import status

    for command in clients.COMMANDS + operators.COMMANDS + records.COMMANDS:
        cli.add_command(command)
    cli.add_command(demo)
    cli.add_command(queue_limits)
    cli.add_command(clocks)
    cli.add_command(policy)
    cli.add_command(status)


_register_client_commands()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
