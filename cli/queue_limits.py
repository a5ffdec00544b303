"""`earlyhelp queue-limits [--apply]`: length and byte limits on the engine's queues, as RabbitMQ policies.

The contract fixes earlyhelp.dead-letter's arguments (quorum, 30-day TTL, nothing else), and RabbitMQ
refuses a redeclaration with other arguments, so limits are never added by redeclaring: a policy applies
them to the queues as they are, and can be changed later without touching a queue.

RabbitMQ applies one policy to a queue (the matching one with the highest priority; policies do not
merge). These match only the engine's own queues, by exact name, at priority 10, so a broad policy an
operator keeps for other queues (usually priority 0) is not replaced elsewhere; one that must also cover
these queues should have its keys added to these definitions. Quorum queues take max-length,
max-length-bytes and overflow (reject-publish or drop-head) from a policy.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass

import click

from earlyhelp.consumers.topology import INPUT_QUEUE_MAX_LENGTH
from earlyhelp.schemas import DEAD_LETTER_QUEUE

MiB = 1024 * 1024
PRIORITY = 10


@dataclass(frozen=True)
class Policy:
    name: str
    pattern: str
    definition: dict
    why: str


POLICIES = (
    # Inputs: the count is also a queue argument (the lower of the two applies); the bytes bound what a
    # flood of large messages can make the broker hold. reject-publish nacks a publisher using confirms,
    # and is what at-least-once dead-lettering from these queues needs.
    Policy("earlyhelp-input-limits", r"^earlyhelp\.engine\.(notifications|commands)$",
           {"max-length": INPUT_QUEUE_MAX_LENGTH, "max-length-bytes": 512 * MiB, "overflow": "reject-publish"},
           "input queues: a full queue refuses publishers (confirms nack), nothing already queued is lost"),
    # Dead letters: drop-head, so a flood of refusals cannot fill the queue and leave the engine's own
    # copies unconfirmed in the outbox, holding up the events behind them; the oldest copies go first.
    Policy("earlyhelp-dead-letter-limits", "^" + DEAD_LETTER_QUEUE.replace(".", r"\.") + "$",
           {"max-length": 100_000, "max-length-bytes": 1024 * MiB, "overflow": "drop-head"},
           "dead-letter queue: when full the oldest copies are dropped; alert on its length before then"),
)


def rabbitmqctl_args(policy: Policy, vhost: str) -> list[str]:
    return ["rabbitmqctl", "set_policy", "-p", vhost, "--priority", str(PRIORITY), "--apply-to", "queues",
            policy.name, policy.pattern, json.dumps(policy.definition, separators=(",", ":"))]


def apply_with_rabbitmqctl(policy: Policy, vhost: str) -> None:
    result = subprocess.run(rabbitmqctl_args(policy, vhost), capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise click.ClickException(f"rabbitmqctl set_policy {policy.name} failed: "
                                   f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}")


def apply_with_management_api(policy: Policy, vhost: str, management_url: str) -> None:
    parts = urllib.parse.urlsplit(management_url)
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    url = f"{base}/api/policies/{urllib.parse.quote(vhost, safe='')}/{urllib.parse.quote(policy.name, safe='')}"
    body = {"pattern": policy.pattern, "definition": policy.definition, "priority": PRIORITY, "apply-to": "queues"}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT",
                                     headers={"Content-Type": "application/json"})
    if parts.username:
        token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(token.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except Exception as error:  # noqa: BLE001 - one line, and never the URL's password
        raise click.ClickException(f"the management API at {netloc} refused policy {policy.name} "
                                   f"({type(error).__name__}: {getattr(error, 'code', '')})") from None


@click.command("queue-limits")
@click.option("--apply", "apply_", is_flag=True, help="Set the policies (rabbitmqctl here, or the management API).")
@click.option("--vhost", default=None, help="Default: the vhost in EARLYHELP_BROKER_URL.")
@click.option("--management-url", envvar="EARLYHELP_MANAGEMENT_URL", default=None,
              help="The RabbitMQ management API (http://user:pass@host:15672); used for --apply when set.")
@click.pass_obj
def queue_limits(settings, apply_: bool, vhost: str | None, management_url: str | None) -> None:
    """Print (or, with --apply, set) the RabbitMQ policies that limit the engine's queues by length and bytes."""
    from earlyhelp.reports.broker_status import vhost_of

    vhost = vhost or vhost_of(settings.broker_url)
    for policy in POLICIES:
        click.echo(f"# {policy.why}")
        click.echo(" ".join(arg if arg.replace("-", "").replace("_", "").isalnum() else f"'{arg}'"
                            for arg in rabbitmqctl_args(policy, vhost)))
    if not apply_:
        return
    for policy in POLICIES:
        if management_url:
            apply_with_management_api(policy, vhost, management_url)
        elif shutil.which("rabbitmqctl"):
            apply_with_rabbitmqctl(policy, vhost)
        else:
            raise click.ClickException("neither rabbitmqctl nor EARLYHELP_MANAGEMENT_URL is available: "
                                       "run the lines above on a broker node")
        click.echo(f"set {policy.name} on vhost {vhost}")
