"""What the progress bars say after the count: a load's skipped files, a job's retried units."""

from __future__ import annotations

import pytest

from gpdl_backend.mop.driver import Event
from gpdl_backend.mop.job import JobStatus
from gpdl_jupyter.progress import tqdm_bar, training_listener
from gpdl_jupyter.results import JobReport


def _last_line(text: str) -> str:
    return text.replace("\r", "\n").strip().splitlines()[-1]


def test_a_training_bar_counts_retried_units(capsys: pytest.CaptureFixture[str]) -> None:
    bar, update = tqdm_bar("unit", "training models", notebook=False, counted="retries")
    update(5, 12, 2)
    bar.close()
    line = _last_line(capsys.readouterr().err)
    assert "5/12" in line and "retries=2" in line and "errors" not in line, line


def test_a_load_bar_counts_skipped_files(capsys: pytest.CaptureFixture[str]) -> None:
    bar, update = tqdm_bar("file", "loading images", notebook=False)
    update(3, 4, 1)  # as the loader calls it: progress(files_done, files_total, errors)
    bar.close()
    assert "errors=1" in _last_line(capsys.readouterr().err)


def test_the_listener_bar_keeps_the_retries_of_the_driver_events(
        capsys: pytest.CaptureFixture[str]) -> None:
    with training_listener("training models") as listener:
        listener(Event("unit", 1, 8, 0))
        listener(Event("retry", 1, 0, 0, "mst 1 on segment 0: connection lost", 1))
        listener(Event("unit", 2, 8, 0))
    assert "retries=1" in _last_line(capsys.readouterr().err)


def test_the_status_headline_says_how_many_units_ran_again() -> None:
    status = JobStatus("finished", 3, 3, 12, 12, None, [], unit_retries=1)
    assert JobReport.of(status, "models").headline() == \
        "models: finished, iteration 3/3, 12/12 units, 1 retried"
