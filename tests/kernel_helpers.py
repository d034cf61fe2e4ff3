"""One project kernel shared by a module's notebook executions that stop in validation.

Starting a kernel and running a notebook's import cell costs 3-5 s on this machine;
the checks that a bad parameter stops a notebook in its validation cell need neither
afresh. Each execution still runs the notebook from its first cell with papermill,
into its own output directory: only the kernel process (and the modules it has
imported) is reused. Notebooks that run to the end use a fresh kernel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import papermill

from pqlab.lab import batch
from pqlab.study import config


@dataclass
class SharedKernel:
    name: str
    manager: Any  # jupyter_client.AsyncKernelManager, started

    def execute(self, source: Path, output: Path, parameters: dict) -> Any:
        """papermill.execute_notebook on this kernel (which it leaves running)."""
        return papermill.execute_notebook(str(source), str(output), parameters=parameters,
                                          kernel_name=self.name, km=self.manager,
                                          progress_bar=False, cwd=str(config.NOTEBOOKS_DIR))


@contextlib.contextmanager
def shared_kernel() -> Iterator[SharedKernel]:
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync  # the loop nbclient runs on in this thread

    with batch.project_kernel() as name:
        manager = AsyncKernelManager(kernel_name=name)
        run_sync(manager.start_kernel)(cwd=str(config.NOTEBOOKS_DIR))
        try:
            yield SharedKernel(name, manager)
        finally:
            run_sync(manager.shutdown_kernel)(now=True)
