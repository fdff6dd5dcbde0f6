"""The %gpdl magics against the real server, in a re-raising IPython shell.

One module-scoped pipeline runs the demo's steps through the magics on tiny
synthetic data (8×8 images, 4 classes, 2 configurations, 2 iterations); the
tests then check each step's result and the commands that read or steer it.
Widgets are built with ``GpdlMagic.live = False`` (no background threads).
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from IPython.core.error import UsageError as IPythonUsageError

from gpdl_backend.errors import UsageError
from gpdl_backend.images.loader import LoadResult
from gpdl_backend.mop.job import TrainingJob
from gpdl_backend.predict import PredictResult
from gpdl_backend.preprocess import PackResult
from gpdl_jupyter import connection
from gpdl_jupyter.connection import ConnectionInfo
from gpdl_jupyter.results import JobReport, Table
from tests.integration.trainer_helpers import model_json
from tests.magic_shell import RaisingShell

pytestmark = pytest.mark.db

SELECTION = """\
# two configurations: one architecture, two learning rates
model_ids: [{{model_id}}]
compile:
  loss: [categorical_crossentropy]
  optimizer_params_list:
    - optimizer: [Adam]
      lr: [1e-2, 1e-3]
  metrics: [accuracy]
fit:
  batch_size: [16]
  epochs: [1]
"""


@pytest.fixture(scope="module")
def names() -> dict[str, str]:
    """Table names of this run (the database may be shared)."""
    run = f"magic_{secrets.token_hex(3)}"
    return {key: f"{run}_{key}" for key in
            ("images", "valid_images", "packed", "valid_packed", "arch", "mst", "models",
             "second", "predictions", "search", "search_mst")}


def new_shell() -> RaisingShell:
    ip = RaisingShell.new()
    ip.run_cell("%load_ext gpdl_jupyter")
    ip.run_cell("%config GpdlMagic.live = False")
    return ip


@pytest.fixture(scope="module")
def shell(dsn: str) -> Iterator[RaisingShell]:
    connection.CURRENT.reset()
    ip = new_shell()
    yield ip
    connection.CURRENT.reset()


@pytest.fixture(scope="module")
def pipeline(shell: RaisingShell, dsn: str, names: dict[str, str],
             shared_tmp_factory) -> dict[str, Any]:
    """Connect, load, preprocess, add a model, select, train with --wait: each step's value."""
    from gpdl_backend.datasets import write_synthetic_images

    folder = shared_tmp_factory("gpdl-magics-")
    for split, count, seed in (("train", 160, 1), ("valid", 40, 2)):
        write_synthetic_images(folder / split, count, size=(8, 8), num_classes=4, seed=seed,
                               processes=1)
    shell.user_ns.update(folder=str(folder), model_json=model_json(), **names)
    steps: dict[str, Any] = {"folder": folder}
    steps["connect"] = shell.run_cell(f"%gpdl connect {dsn}").result
    steps["load"] = shell.run_cell(
        "%%gpdl load {{folder}}/train {{images}}\n--batch-size 50   # rows of 50\n"
        "--if-exists replace\n").result
    shell.gpdl("load {{folder}}/valid {{valid_images}} --if-exists replace")
    steps["preprocess"] = shell.gpdl(
        "preprocess {{images}} {{packed}} --buffer-size 40 --if-exists replace")
    steps["validation"] = shell.gpdl(
        "preprocess {{valid_images}} {{valid_packed}} --validation-of {{packed}} "
        "--buffer-size 40")
    steps["model_id"] = shell.run_cell(
        "%%gpdl arch {{arch}} --name tiny\n{{model_json}}").result
    shell.user_ns["model_id"] = steps["model_id"]
    steps["select"] = shell.gpdl("select {{mst}} --arch {{arch}} --if-exists replace",
                                 SELECTION)
    steps["fit"] = shell.gpdl("fit {{packed}} {{models}} {{mst}} --iterations 2 "
                              "--validation {{valid_packed}} --wait")
    return steps


def test_connect_describes_the_server(pipeline: dict[str, Any], dsn: str) -> None:
    info = pipeline["connect"]
    assert isinstance(info, ConnectionInfo)
    assert info.dsn == dsn and info.gpdl_version
    assert info.num_segments >= 1
    password = urllib.parse.urlsplit(dsn).password
    if password:  # the embedded server's DSN has one; a trusted cluster's may not
        assert password not in repr(info) and ":***@" in repr(info)
    else:
        assert info.dsn in repr(info)
    assert connection.CURRENT.dsn == dsn


def test_load_and_preprocess(pipeline: dict[str, Any]) -> None:
    load = pipeline["load"]
    assert isinstance(load, LoadResult)
    assert (load.images, load.rows >= 4, load.errors) == (160, True, 0)
    pack = pipeline["preprocess"]
    assert isinstance(pack, PackResult)
    assert (pack.images, pack.image_shape, len(pack.class_values)) == (160, (8, 8, 3), 4)
    assert pipeline["validation"].class_values == pack.class_values


def test_select_writes_two_configurations(pipeline: dict[str, Any]) -> None:
    assert isinstance(pipeline["model_id"], int)
    configs = pipeline["select"]
    assert isinstance(configs, Table) and len(configs) == 2
    assert {c.model_id for c in configs} == {pipeline["model_id"]}
    assert "learning_rate=0.01" in configs[0].compile_params


def test_fit_wait_trains_to_the_end(pipeline: dict[str, Any]) -> None:
    report = pipeline["fit"]
    assert isinstance(report, JobReport)
    assert (report.status, report.iterations_done, len(report.configs)) == ("finished", 2, 2)
    assert all(c["validation_loss"] is not None for c in report.configs)


def test_status_reads_the_tables(pipeline: dict[str, Any], shell: RaisingShell) -> None:
    report = shell.gpdl("status {{models}}")
    assert isinstance(report, JobReport)
    assert report.status == "finished" and report.units_done == report.units_total
    assert "finished, iteration 2/2" in repr(report)
    assert "<table>" in report._repr_html_()


def test_fit_returns_the_curves_at_once_then_stop_and_resume(
        pipeline: dict[str, Any], shell: RaisingShell) -> None:
    from gpdl_jupyter.widgets import LearningCurves

    curves = shell.gpdl("fit {{packed}} {{second}} {{mst}} --iterations 4")
    assert isinstance(curves, LearningCurves)
    job = curves.job
    assert isinstance(job, TrainingJob)
    assert shell.gpdl("stop {{second}}") is None
    stopped = job.wait(timeout=300)
    assert stopped.status == "stopped"
    assert stopped.iterations_done < 4
    shell.gpdl("stop {{second}} --mst-key 2")  # one configuration: the other resumes alone
    again = shell.gpdl("resume {{second}} --wait")
    assert isinstance(again, JobReport)
    assert again.status == "finished"
    statuses = {c["mst_key"]: c["status"] for c in again.configs}
    assert statuses[2] == "stopped" and statuses[1] != "stopped"


def test_predict_image_table_and_widget(pipeline: dict[str, Any], shell: RaisingShell) -> None:
    from gpdl_jupyter.widgets import TopK

    image = next(Path(pipeline["folder"], "valid").rglob("*.png"))
    shell.user_ns["image"] = str(image)
    top = shell.gpdl("predict {{models}} --mst-key 1 --image {{image}} -k 2")
    assert isinstance(top, Table) and [row["rank"] for row in top] == [1, 2]
    result = shell.gpdl("predict {{models}} --mst-key 1 --table {{valid_images}} "
                        "--output {{predictions}} --pred-type 2")
    assert isinstance(result, PredictResult)
    assert (result.images, result.rows) == (40, 80)
    widget = shell.gpdl("predict {{models}} --images {{valid_images}}")
    assert isinstance(widget, TopK)


def test_gpu_and_arch_widgets(pipeline: dict[str, Any], shell: RaisingShell) -> None:
    from gpdl_jupyter.widgets import ArchitectureEditor, GpuMonitor

    usage = shell.gpdl("gpu --once")
    assert isinstance(usage, Table) and usage
    assert isinstance(shell.gpdl("gpu"), GpuMonitor)
    editor = shell.gpdl("arch {{arch}} --model-id {{model_id}} --select {{mst}}")
    assert isinstance(editor, ArchitectureEditor)


SEARCH = """\
method: asha
params: {R: 2, eta: 2, num_configs: 3}
seed: 7
model_ids: [{{model_id}}]
compile:
  loss: [categorical_crossentropy]
  optimizer_params_list:
    - optimizer: [Adam]
      lr: [1e-3, 1e-1, log]
  metrics: [accuracy]
fit:
  batch_size: [16, 32]
  epochs: [1]
"""


def test_automl_plans_then_searches(pipeline: dict[str, Any], shell: RaisingShell,
                                    dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    from gpdl_jupyter.cli import main

    search = "automl {{packed}} {{search}} {{search_mst}} --arch {{arch}} " \
             "--validation {{valid_packed}}"
    plan = shell.gpdl(search + " --plan", SEARCH)
    assert isinstance(plan, Table)
    rungs = [(row["s"], row["i"], row["n_i"], row["r_i"]) for row in plan][:-1]
    total = plan[-1]
    assert rungs == [(None, 0, 3, 1), (None, 1, 1, 2)]  # ASHA: rung 0 of 3, rung 1 of 1
    segments = pipeline["connect"].num_segments
    assert total["units"] == (3 * 1 + 1 * 1) * segments
    assert total["seconds"] > 0  # measured from the fit jobs on the same table
    assert not _table_exists(dsn, shell.user_ns["search"])
    report = shell.gpdl(search + " --wait", SEARCH)
    assert isinstance(report, JobReport) and report.status == "finished"
    statuses = [c["status"] for c in report.configs]
    assert set(statuses) <= {"early_stopped", "finished"}, statuses
    promoted = statuses.count("finished")  # the plan's 1, or 2 if a later loss beat it
    assert promoted in (1, 2) and report.units_done == (3 + promoted) * segments
    # The CLI prints the same plan, and refuses a finished search's names.
    space = Path(pipeline["folder"], "space.yaml")
    space.write_text(SEARCH.replace("{{model_id}}", str(pipeline["model_id"])))
    names = [shell.user_ns[key] for key in ("packed", "search", "search_mst", "arch")]
    assert main(["automl", *names[:3], "--arch", names[3], "--space", str(space), "--plan",
                 "--dsn", dsn]) == 0
    assert "units" in capsys.readouterr().out
    with pytest.raises(IPythonUsageError, match="already exists"):
        shell.gpdl(search, SEARCH)


def _table_exists(dsn: str, name: str) -> bool:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
        return bool(cur.fetchone()[0])


@pytest.mark.parametrize(("line", "message"), [
    ("status no-such-job", "unsafe table name 'no-such-job'"),
    ("status no_such_job_here", "no training job no_such_job_here"),
    ("preprocess no_such_images x_packed", "source table no_such_images does not exist"),
    ("fit {{packed}} {{models}} {{mst}}", "already exists"),
])
def test_mistakes_are_one_line_usage_errors(pipeline: dict[str, Any], shell: RaisingShell,
                                            line: str, message: str) -> None:
    with pytest.raises(IPythonUsageError, match=message) as raised:
        shell.run_cell(f"%gpdl {line}")
    assert "\n" not in str(raised.value)
    assert isinstance(raised.value.__cause__, UsageError)


def test_show_sql_runs_nothing(pipeline: dict[str, Any], shell: RaisingShell,
                               dsn: str) -> None:
    shown = shell.gpdl("load {{folder}}/train show_sql_only --show-sql")
    assert shown.startswith("SELECT gpdl.load_images(") and shown.count("SELECT") == 1
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('show_sql_only') IS NULL")
        assert cur.fetchone()[0]


def test_jupysql_connection_is_used(pipeline: dict[str, Any], dsn: str, names: dict[str, str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With no explicit URL, %gpdl uses jupysql's active connection (ConnectionManager.current)."""
    from sql.connection import ConnectionManager

    monkeypatch.delenv("DATABASE_URL", raising=False)
    connection.CURRENT.reset()
    ip = new_shell()
    ip.run_cell("%load_ext sql")
    alchemy = dsn.replace("postgresql://", "postgresql+psycopg2://", 1)
    ip.run_cell(f"%sql {alchemy} --alias gpdl_test")
    try:
        assert connection.jupysql_dsn() == dsn
        info = ip.gpdl("status")
        assert isinstance(info, ConnectionInfo) and info.dsn == dsn
        ip.user_ns["models"] = names["models"]
        assert ip.gpdl("status {{models}}").status == "finished"
        assert ip.gpdl("connect gpdl_test").dsn == dsn  # a jupysql alias
    finally:
        ConnectionManager.close_all()
        connection.CURRENT.reset()
