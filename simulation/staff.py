"""Simulated staff: what the triage team, the units and the workers do with each case, and when.

Each referral gets a plan of commands at times drawn from the service's real rhythm — most on time,
some late (so the SLA clocks have something to catch), some waiting for information first. The
engine derives a case's id from its notification's id, so the plan can name cases in advance.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from earlyhelp.consumers.recording import case_id_for

from .stream import Referral

SERVICES = ["early_help_unit"] * 6 + ["open_access"] * 2 + ["commissioned", "advice_only"]
EXTENSION_REASONS = ["The family asked to meet after the school holiday.",
                     "The only worker who speaks the family's language returns next week.",
                     "Waiting for the family's agreement to a joint visit with the school."]


@dataclass
class Action:
    at: datetime
    command: str
    case_id: str
    fields: dict
    actor: dict


def plan(rng: random.Random, referral: Referral) -> list[Action]:
    case_id, at = case_id_for(referral.source, referral.notification_id), referral.received_at
    triage_team = {"id": f"triage-{rng.randint(1, 6)}", "role": "triage"}
    actions: list[Action] = []

    def add(delay_days: float, command: str, fields: dict, actor: dict) -> datetime:
        nonlocal at
        at = at + timedelta(days=delay_days)
        actions.append(Action(at, command, case_id, fields, actor))
        return at

    if referral.insufficient:
        add(rng.uniform(0.3, 4.0), "provide_information", {"fields": {"child_voice": "Provided later."}},
            triage_team)
    elif referral.needs_review:
        add(rng.uniform(0.1, 1.0), "check", {"outcome": "sufficient"}, triage_team)
    # Triage: priority within 2 days and others within 14, mostly; about one in ten late.
    late = rng.random() < 0.1
    if referral.priority:
        add(rng.uniform(2.1, 4.0) if late else rng.uniform(0.05, 1.8), "triage", {}, triage_team)
    else:
        add(rng.uniform(14.5, 20.0) if late else rng.uniform(0.5, 12.0), "triage", {}, triage_team)
    service = rng.choice(SERVICES)
    actions[-1].fields = {"service": service, "district": referral.district, "priority": referral.priority}
    if service == "advice_only":
        add(rng.uniform(0.1, 2.0), "close", {"reason": "no_further_action"}, triage_team)
        return actions
    slug = referral.district.lower().replace(' ', '-')
    unit = {"id": f"unit-{slug}", "role": "unit_manager"}
    worker = f"worker-{rng.randint(1, 40):03d}"
    # Allocation within 4 working days, mostly; about one in eight late, and for some of those a manager
    # extends the allocation clock first, with a reason (extend_clock).
    late = rng.random() < 0.125
    if late and rng.random() < 0.15:
        add(rng.uniform(0.5, 2.5), "extend_clock",
            {"stage": "allocation", "extra": {"amount": rng.randint(2, 5), "unit": "working_days"},
             "reason": rng.choice(EXTENSION_REASONS)}, {"id": f"manager-{slug}", "role": "manager"})
    add(rng.uniform(6.5, 10.0) if late else rng.uniform(0.1, 4.0), "allocate",
        {"team": f"{referral.district} Early Help Unit", "worker_id": worker}, unit)
    worker_actor = {"id": worker, "role": "early_help_practitioner"}
    add(rng.uniform(10, 42), "assess", {"outcome": "family_plan_agreed"}, worker_actor)
    add(rng.uniform(20, 60), "step_down", {"to": rng.choice(["open_access", "universal"])}, worker_actor)
    add(rng.uniform(1, 10), "close", {"reason": "needs_met"}, worker_actor)
    return actions
