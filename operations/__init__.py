"""What operators do that changes the broker: replaying and purging dead letters.

Reading and showing (what `earlyhelp queues` and `dead-letters list/show` print) is earlyhelp.reports;
what writes is here, so that a read-only view can never remove or republish a message.
"""
