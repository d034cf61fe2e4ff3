"""Tests of pqlab.study, one file per module: tests/study/test_<module>.py."""
