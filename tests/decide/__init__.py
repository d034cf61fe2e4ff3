"""Tests of pqlab.decide, one file per module: tests/decide/test_<module>.py."""
