"""Broker names, district slugs and event routing keys exactly as the contract gives them."""

from __future__ import annotations

import pytest

from earlyhelp import schemas
from earlyhelp.schemas import DEFAULT_DISTRICTS, EVENT_MODELS, district_slug, event_routing_key


def test_broker_names_and_limits():
    assert schemas.NOTIFICATIONS_EXCHANGE == "earlyhelp.notifications"
    assert schemas.COMMANDS_EXCHANGE == "earlyhelp.commands"
    assert schemas.EVENTS_EXCHANGE == "earlyhelp.events"
    assert schemas.DEAD_LETTER_QUEUE == "earlyhelp.dead-letter"
    assert schemas.MAX_BODY_BYTES == 1024 * 1024


def test_the_default_districts_are_kents_twelve():
    assert len(DEFAULT_DISTRICTS) == 12
    assert "Tonbridge and Malling" in DEFAULT_DISTRICTS and "Folkestone and Hythe" in DEFAULT_DISTRICTS
    assert len({district_slug(d) for d in DEFAULT_DISTRICTS}) == 12


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Tonbridge and Malling", "tonbridge-and-malling"),
        ("Folkestone and Hythe", "folkestone-and-hythe"),
        ("  St. Mary's -- East ", "st-mary-s-east"),
        ("Dover", "dover"),
        (None, "unassigned"),
    ],
)
def test_district_slug(name, slug):
    assert district_slug(name) == slug


@pytest.mark.parametrize(
    ("event_type", "kwargs", "key"),
    [
        ("case.received", {}, "case.received.unassigned"),
        ("case.allocated", {"district": "Tonbridge and Malling"}, "case.allocated.tonbridge-and-malling"),
        ("sla.warning.triage", {"district": None}, "sla.warning.triage.unassigned"),
        ("sla.breached.allocation", {"district": "Dover"}, "sla.breached.allocation.dover"),
        ("school.allocated", {"school_urn": "118923", "district": "Dover"}, "school.118923.allocated"),
        ("school.stepped_down", {"school_urn": "118923"}, "school.118923.stepped_down"),
        ("school.closed", {"school_urn": "118923"}, "school.118923.closed"),
        ("notification.rejected", {"district": "Dover"}, "notification.rejected"),
        ("command.rejected", {}, "command.rejected"),
    ],
)
def test_event_routing_key(event_type, kwargs, key):
    assert event_routing_key(event_type, **kwargs) == key


def test_every_event_type_has_a_routing_key():
    for event_type in EVENT_MODELS:
        assert event_routing_key(event_type, district="Dover", school_urn="118923",
                                 source="school").startswith(event_type.split(".")[0])


def test_referrer_events_are_routed_by_the_referrers_source_so_each_upstream_binds_only_its_own():
    assert event_routing_key("referrer.decided", source="school") == "referrer.school.decided"
    assert event_routing_key("referrer.linked", source="health", district="Dover") == "referrer.health.linked"
    assert event_routing_key("case.notification_linked", district="Dover") == "case.notification_linked.dover"
    with pytest.raises(ValueError):
        event_routing_key("referrer.closed")
    with pytest.raises(ValueError):
        event_routing_key("referrer.stepped_down", source="school")


def test_school_events_need_a_urn_and_unknown_types_are_errors():
    with pytest.raises(ValueError):
        event_routing_key("school.closed")
    with pytest.raises(ValueError):
        event_routing_key("sla.breached.lunch")
    with pytest.raises(ValueError):
        event_routing_key("something.else")
