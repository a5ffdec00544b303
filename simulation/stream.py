"""A synthetic notification stream in the proportions of Kent's 2014 briefing (shared/seeds/000_*.txt).

September–December 2014: 2,918 notifications — social care 679 (311 of them step-downs), schools and
PRUs 1,458, health 531, family self-referral 90, housing/police/voluntary 52, not recorded 108 — and
1,193 missing-children notifications (26.9% placed by other authorities; 16% not open to social
care: 128 closed, 65 never known). Names and contact details are invented and obviously synthetic.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

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
# A second notification for a child notified in the last ten days, from another source (same given and family
# name and date of birth): the engine links it to the child's case while that case is open.
REPEAT_SHARE = 0.03
REPEAT_WITHIN = timedelta(days=10)
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
    # The first notification of the same child, when this one names a child already notified (a repeat).
    repeat_of: str | None = None

    @property
    def notification_id(self) -> str:
        return self.body["notification_id"]

    @property
    def source(self) -> str:
        return self.body["referrer"]["source"]


def generate(rng: random.Random, run: str, start: datetime, days: int, per_day: int) -> list[Referral]:
    """Notifications received over `days` from `start`: fewer at weekends, in office hours mostly."""
    weights = [w for _, _, w in MIX]
    referrals, n, repeated, children = [], 0, set(), set()
    for day in range(days):
        midnight = start + timedelta(days=day)
        weekend = midnight.weekday() >= 5
        for _ in range(max(0, int(rng.gauss(per_day * (0.2 if weekend else 1.2), per_day * 0.1)))):
            source, kind, _ = rng.choices(MIX, weights)[0]
            at = midnight + timedelta(hours=rng.uniform(8, 18))
            n += 1
            referral = _referral(rng, f"demo-{run}-{n:06d}", source, kind, at)
            if rng.random() < REPEAT_SHARE:
                _repeat_a_child(rng, referral, referrals, repeated)
            if referral.repeat_of is None:
                _another_child(referral, children)
            referrals.append(referral)
    return sorted(referrals, key=lambda r: r.received_at)


def _another_child(referral: Referral, children: set) -> None:
    """A child no other notification names (the engine links notifications of the same name and date of birth):
    the date of birth moves a day earlier until the child is new."""
    child = referral.body["child"]
    born = date.fromisoformat(child["date_of_birth"])
    while (child["given_name"], child["family_name"], born) in children:
        born -= timedelta(days=1)
    child["date_of_birth"] = born.isoformat()
    children.add((child["given_name"], child["family_name"], born))


def _repeat_a_child(rng: random.Random, referral: Referral, earlier: list[Referral], repeated: set[str]) -> None:
    """Make `referral` a second notification, from another source, of a child notified in the last ten days
    (each child at most twice, so a repeat always meets the first notification's case)."""
    candidates = [r for r in earlier[-200:] if r.repeat_of is None and r.notification_id not in repeated
                  and r.source != referral.source and referral.received_at - REPEAT_WITHIN <= r.received_at
                  < referral.received_at]
    if not candidates:
        return
    first = rng.choice(candidates)
    repeated.add(first.notification_id)
    for key in ("given_name", "family_name", "date_of_birth"):
        referral.body["child"][key] = first.body["child"][key]
    referral.repeat_of = first.notification_id


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
