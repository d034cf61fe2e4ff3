"""The decision record, rendered from a stored run alone (``adr``), and finding and comparing
stored runs (``runs``). Nothing here measures or draws: the batch probed the queues'
features and drew the figures into the run."""
