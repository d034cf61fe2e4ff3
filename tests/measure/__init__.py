"""Tests of pqlab.measure, one file per module: tests/measure/test_<module>.py."""
