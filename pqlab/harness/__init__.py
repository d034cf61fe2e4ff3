"""Harness: one measured run (``runner.run``), the per-repetition worker process
(``worker``), the feature probes (``features``) and the idle-burn measurement
(``idleburn``). Built on scenarios and measurement."""
