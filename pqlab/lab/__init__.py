"""``pqlab.lab``: what the notebooks call (``notebook``) and the batch that runs them (``batch``).

Notebooks ``from pqlab import lab`` and call the names below; each study's own
sweep, tables and typed parameters are in its module, ``pqlab.studies.<name>``.
"""

from pqlab.lab.notebook import (
    decide,
    decision_figures,
    headline,
    open_run,
    print_versions,
    produced,
    quiet_check,
    read_run,
    store_features,
    versions,
    write_adr,
)

__all__ = [
    "decide",
    "decision_figures",
    "headline",
    "open_run",
    "print_versions",
    "produced",
    "quiet_check",
    "read_run",
    "store_features",
    "versions",
    "write_adr",
]
