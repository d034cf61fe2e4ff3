"""Tests of pqlab.studies, one file per module: tests/studies/test_<module>.py."""
