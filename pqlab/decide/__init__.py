"""From a stored study to a decision: per-cell statistics (``analysis``), the
decision rule (``decision``), figures (``plots``, ``style``) and the ADR (``adr``)."""
