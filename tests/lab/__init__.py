"""Tests of pqlab.lab, one file per module: tests/lab/test_<module>.py."""
