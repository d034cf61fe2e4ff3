"""Tests of pqlab.service, one file per module: tests/service/test_<module>.py."""
