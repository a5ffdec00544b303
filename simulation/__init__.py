"""The demo's simulation: a synthetic notification stream, simulated staff, and a clock that runs weeks in a minute."""
