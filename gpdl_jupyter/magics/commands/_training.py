"""What ``fit`` and ``resume`` show: the live learning curves, or the job when waiting."""

from __future__ import annotations

from typing import Any

from IPython.display import display

from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.progress import progress_bar
from gpdl_jupyter.results import JobReport

__all__ = ["show_job"]


def _curves(job: Any, context: Context) -> Any:
    from gpdl_jupyter.widgets import LearningCurves

    return LearningCurves(job.dsn, job, live=context.live, refresh=context.refresh,
                          theme=context.theme)


def show_job(job: Any, wait: bool, context: Context) -> Any:
    """The learning-curve widget at once; with ``wait``, the final report after the job ends.

    While waiting, the live widget is displayed above it (it updates from its
    own thread); with ``live`` off, a progress bar of units instead.
    Interrupting the wait leaves the job training in the background.
    """
    if not wait:
        return _curves(job, context)
    name = str(job.output.model)
    try:
        if context.live:
            display(_curves(job, context))
            status = job.wait()
        else:
            status = _wait_with_bar(job, name)
    except KeyboardInterrupt:
        print(f"still training in the background: %gpdl status {name} / %gpdl stop {name}")
        return job
    return JobReport.of(status, name)


def _wait_with_bar(job: Any, name: str) -> Any:
    with progress_bar("unit", f"training {name}", counted="retries") as update:
        while True:
            status = job.wait(timeout=1.0)
            update(status.units_done, status.units_total, status.unit_retries)
            if not job.running():
                return job.wait()
