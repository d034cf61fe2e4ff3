"""Tests of pqlab.queues, one file per module: tests/queues/test_<module>.py."""
