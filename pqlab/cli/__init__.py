"""The command line: ``python -m pqlab`` (``main``), the POC console report
(``report``, ``loadreport``) and the benchmarks (``bench``, ``redisbench``)."""
