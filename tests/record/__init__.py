"""Tests of pqlab.record, one file per module: tests/record/test_<module>.py."""
