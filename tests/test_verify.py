"""Not tests: ``from test_verify import make_records`` in tests/test_metrics.py keeps working.

The tests of pqlab.measure.verify are in tests/measure/test_verify.py. Delete this file
once tests/test_metrics.py imports ``from measure.test_verify import make_records``.
"""

from measure.test_verify import make_records

__all__ = ["make_records"]
