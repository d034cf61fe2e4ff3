"""Tests of pqlab.core, one file per module: tests/core/test_<module>.py."""
