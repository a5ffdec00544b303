"""The public message contract as pydantic models: strict decoding of inbound messages, events, routing keys."""

from .base import content_hash
from .commands import (
    CLOSE_REASONS,
    COMMAND_MODELS,
    SERVICES,
    Actor,
    AllocateCommand,
    AssessCommand,
    CheckCommand,
    CloseCommand,
    Command,
    RecordConsentCommand,
    ProvideInformationCommand,
    RequestInformationCommand,
    StepDownCommand,
    TriageCommand,
    parse_command,
)
from .decoding import KNOWN_SCHEMA_VERSIONS, MAX_BODY_BYTES, MAX_DEPTH
from .errors import InvalidEvent, MessageRefused
from .events import CASE_STATES, EVENT_MODELS, SLA_STAGES, serialize_event
from .fields import KNOWN_FIELD_PATHS, apply_provided_fields
from .notification import KINDS, SOCIAL_CARE_STATUSES, SOURCES, Child, Consent, Notification, Referrer, parse_notification
from .routing import (
    COMMANDS_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DEFAULT_DISTRICTS,
    EVENTS_EXCHANGE,
    NOTIFICATIONS_EXCHANGE,
    district_slug,
    event_routing_key,
)

__all__ = [
    "MessageRefused", "InvalidEvent", "parse_notification", "parse_command", "content_hash", "serialize_event",
    "Notification", "Referrer", "Child", "Consent", "COMMAND_MODELS", "EVENT_MODELS", "KNOWN_FIELD_PATHS",
    "apply_provided_fields", "NOTIFICATIONS_EXCHANGE", "COMMANDS_EXCHANGE", "EVENTS_EXCHANGE",
    "DEAD_LETTER_QUEUE", "DEFAULT_DISTRICTS", "district_slug", "event_routing_key", "MAX_BODY_BYTES",
    "MAX_DEPTH", "KNOWN_SCHEMA_VERSIONS", "KINDS", "SOURCES", "SOCIAL_CARE_STATUSES", "SERVICES",
    "CLOSE_REASONS", "CASE_STATES", "SLA_STAGES", "Command", "Actor", "CheckCommand",
    "RequestInformationCommand", "ProvideInformationCommand", "TriageCommand", "AllocateCommand",
    "AssessCommand", "StepDownCommand", "CloseCommand", "RecordConsentCommand",
]
