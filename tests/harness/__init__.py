"""Tests of pqlab.harness, one file per module: tests/harness/test_<module>.py."""
