"""What the engine does because time passed, not because a message came: the SLA scanner.

A second entry beside consumers/, with the same tail: due clocks become SLA events in the outbox
(consumers/recording.py makes the events), in the transaction that marks each clock. The runtime
runs the scanner in a thread of its own.
"""
