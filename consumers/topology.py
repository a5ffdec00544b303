"""The broker objects of the contract and the engine's own input queues, declared by `earlyhelp serve`.

The engine's input queues (documented in the README with these arguments):
- quorum queues (replicated, durable), one per input, each bound to its contract exchange;
- x-delivery-limit 5: a message that crashed the engine five times is dead-lettered by the broker
  (with its x-death header) instead of crashing it forever;
- dead-lettering to earlyhelp.dead-letter through the default exchange, at-least-once;
- x-max-length with x-overflow reject-publish: a full queue nacks publishers using confirms instead of
  growing without bound (at-least-once dead-lettering requires reject-publish too).
RabbitMQ refuses a redeclaration with other arguments (406): changing these ships with a migration step.
"""
from __future__ import annotations

from kombu import Exchange, Queue

from earlyhelp.schemas import COMMANDS_EXCHANGE, DEAD_LETTER_QUEUE, EVENTS_EXCHANGE, NOTIFICATIONS_EXCHANGE

THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000
INPUT_QUEUE_MAX_LENGTH = 200_000
DELIVERY_LIMIT = 5

notifications_exchange = Exchange(NOTIFICATIONS_EXCHANGE, type="topic", durable=True)
commands_exchange = Exchange(COMMANDS_EXCHANGE, type="topic", durable=True)
events_exchange = Exchange(EVENTS_EXCHANGE, type="topic", durable=True)

DEAD_LETTER_ARGUMENTS = {"x-queue-type": "quorum", "x-message-ttl": THIRTY_DAYS_MS}
INPUT_QUEUE_ARGUMENTS = {
    "x-queue-type": "quorum",
    "x-delivery-limit": DELIVERY_LIMIT,
    "x-dead-letter-exchange": "",
    "x-dead-letter-routing-key": DEAD_LETTER_QUEUE,
    "x-dead-letter-strategy": "at-least-once",
    "x-max-length": INPUT_QUEUE_MAX_LENGTH,
    "x-overflow": "reject-publish",
}

NOTIFICATIONS_QUEUE = "earlyhelp.engine.notifications"
COMMANDS_QUEUE = "earlyhelp.engine.commands"

dead_letter_queue = Queue(DEAD_LETTER_QUEUE, exchange=None, routing_key=DEAD_LETTER_QUEUE, durable=True,
                          queue_arguments=DEAD_LETTER_ARGUMENTS, no_declare=False)
notifications_queue = Queue(NOTIFICATIONS_QUEUE, exchange=notifications_exchange, routing_key="notification.#",
                            durable=True, queue_arguments=INPUT_QUEUE_ARGUMENTS)
commands_queue = Queue(COMMANDS_QUEUE, exchange=commands_exchange, routing_key="case.#", durable=True,
                       queue_arguments=INPUT_QUEUE_ARGUMENTS)

# input name -> the engine's queue for it
INPUT_QUEUES = {"notification": notifications_queue, "command": commands_queue}
ALL_QUEUES = (notifications_queue, commands_queue, dead_letter_queue)


def declare_topology(channel) -> None:
    """Declare every exchange and queue on `channel`; idempotent while the arguments are unchanged."""
    for exchange in (notifications_exchange, commands_exchange, events_exchange):
        exchange(channel).declare()
    dead_letter_queue(channel).declare()
    for queue in (notifications_queue, commands_queue):
        queue(channel).declare()
