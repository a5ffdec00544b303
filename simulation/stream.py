"""A synthetic notification stream in the proportions of Kent's 2014 briefing (shared/seeds/000_*.txt).

September–December 2014: 2,918 notifications — social care 679 (311 of them step-downs), schools and
PRUs 1,458, health 531, family self-referral 90, housing/police/voluntary 52, not recorded 108 — and
1,193 missing-children notifications (26.9% placed by other authorities; 16% not open to social
care: 128 closed, 65 never known). Names and contact details are invented and obviously synthetic.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from earlyhelp.schemas import DEFAULT_DISTRICTS

# (source, kind, weight) from the briefing's counts.
MIX = [
    ("school", "request_for_support", 1458),
    ("health", "request_for_support", 531),
    ("social_care", "step_down", 311),
    ("social_care", "request_for_support", 368),  # duty team referrals and joint work
    ("family", "request_for_support", 90),
    ("housing", "request_for_support", 18),
    ("police", "request_for_support", 17),
    ("voluntary", "request_for_support", 17),
    ("not_recorded", "request_for_support", 108),
    ("police", "missing_child", 1193),
]
PRIORITY_SHARE = 0.15
INSUFFICIENT_SHARE = 0.15   # the child's voice or a contact missing: the engine asks for more
NO_CONSENT_SHARE = 0.05     # consent not recorded: a person decides
SHARE_WITH_SCHOOL = 0.6
GIVEN = ["Alex", "Sam", "Jo", "Riley", "Casey", "Morgan", "Jamie", "Taylor", "Charlie", "Robin"]
FAMILY = ["Example", "Sample", "Testcase", "Demo", "Synthetic", "Placeholder"]


@dataclass
class Referral:
    """One generated notification, with what the simulated staff need to know about it."""

    body: dict
    received_at: datetime
    insufficient: bool
    needs_review: bool
    priority: bool
    district: str

    @property
    def notification_id(self) -> str:
        return self.body["notification_id"]

    @property
    def source(self) -> str:
        return self.body["referrer"]["source"]


def generate(rng: random.Random, run: str, start: datetime, days: int, per_day: int) -> list[Referral]:
    """Notifications received over `days` from `start`: fewer at weekends, in office hours mostly."""
    weights = [w for _, _, w in MIX]
    referrals, n = [], 0
    for day in range(days):
        midnight = start + timedelta(days=day)
        weekend = midnight.weekday() >= 5
        for _ in range(max(0, int(rng.gauss(per_day * (0.2 if weekend else 1.2), per_day * 0.1)))):
            source, kind, _ = rng.choices(MIX, weights)[0]
            at = midnight + timedelta(hours=rng.uniform(8, 18))
            n += 1
            referrals.append(_referral(rng, f"demo-{run}-{n:06d}", source, kind, at))
    return sorted(referrals, key=lambda r: r.received_at)


def _referral(rng: random.Random, notification_id: str, source: str, kind: str, at: datetime) -> Referral:
    age_days = rng.randint(30, 18 * 365)
    urn = f"{rng.randint(100000, 149999)}"
    insufficient = rng.random() < INSUFFICIENT_SHARE
    no_consent = kind == "request_for_support" and rng.random() < NO_CONSENT_SHARE
    priority = rng.random() < PRIORITY_SHARE
    body = {
        "schema_version": 1, "notification_id": notification_id, "kind": kind,
        "received_at": at.isoformat(), "priority": priority,
        "referrer": {"source": source, "organisation": f"Demo {source.replace('_', ' ')} service",
                     "contact_name": "Demo Contact", "contact_email": "contact@demo.example",
                     "contact_phone": "01000 000000"},
        "child": {"given_name": rng.choice(GIVEN), "family_name": rng.choice(FAMILY),
                  "date_of_birth": (at.date() - timedelta(days=age_days)).isoformat(), "school_urn": urn},
        "reason": "Synthetic concern for the demo.", "support_already_offered": "Synthetic support tried.",
        "intended_outcome": "Synthetic outcome hoped for.", "child_voice": "Synthetic wishes and feelings.",
        "consent": {"family_consents": not no_consent, "share_with_school": rng.random() < SHARE_WITH_SCHOOL},
    }
    if source == "school":
        body["referrer"]["school_urn"] = urn
    if kind == "missing_child":
        body["social_care_status"] = rng.choices(["open", "closed", "never_known"], [1000, 128, 65])[0]
        if rng.random() < 0.269:
            body["child"]["placing_authority"] = "Demo Other Council"
    if insufficient:
        del body["child_voice"]
    return Referral(body, at, insufficient, no_consent, priority, rng.choice(DEFAULT_DISTRICTS))
