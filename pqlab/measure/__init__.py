"""Measurement: what a pass recorded (``records``) and everything computed from it:
ordering checks (``verify``), latencies, throughput and memory (``metrics``),
queueing theory (``theory``), timers, the quiet-machine readings (``quiet``) and
the significance tests (``significance``). Knows queues and tasks, not scenarios."""
