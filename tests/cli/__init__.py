"""Tests of pqlab.cli, one file per module: tests/cli/test_<module>.py."""
