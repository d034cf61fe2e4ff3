"""Tests of pqlab.scenarios, one file per module: tests/scenarios/test_<module>.py."""
