"""The pieces of the SQL-first client without a database: calls, notices, local DSNs, liveness."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from psycopg2.extensions import parse_dsn

from gpdl_backend.client import table_name
from gpdl_backend.errors import UsageError
from gpdl_backend.local import ROLE_OPTION, without_role
from gpdl_backend.mop import registry
from gpdl_backend.notices import Progress, parse_progress, progress_line
from gpdl_jupyter.sqltext import function_call


# --- the statement the client sends ---------------------------------------------------
def test_function_call_is_literals_and_named_defaults() -> None:
    call = function_call("madlib_keras_fit_multiple_model", "train", "o'clock", "mst", 3,
                         False, None, seed=7, background=True, name=None)
    assert call.text == ("SELECT gpdl.madlib_keras_fit_multiple_model('train', 'o''clock', "
                         "'mst', 3, false, NULL, seed => 7, background => true)")
    assert call.params == ()
    assert call.shown() == call.text + ";"


def test_function_call_sends_bytes_as_parameters_and_escapes_percent() -> None:
    call = function_call("predict_image", "models_%", 2, b"\x89PNG", 3, rows=True)
    assert call.text == "SELECT * FROM gpdl.predict_image('models_%%', 2, %s, 3)"
    assert call.params == (b"\x89PNG",)
    assert call.shown().endswith("\n-- parameter 1: 4 bytes")


def test_arrays_and_floats() -> None:
    call = function_call("load_model_selection_table", "a", "m", [1, 2], ["x=1"], ["y=0.5"])
    assert call.text.endswith("ARRAY[1,2], ARRAY['x=1'], ARRAY['y=0.5'])")
    assert function_call("f", 1e-4).text == "SELECT gpdl.f(0.0001)"


# --- progress NOTICEs ----------------------------------------------------------------
def test_progress_lines_round_trip() -> None:
    line = progress_line("training public.models", 16, 80, "units, iteration 1 of 5")
    assert line == "gpdl training public.models: 16/80 units, iteration 1 of 5"
    assert parse_progress("  " + line + "\n") == Progress(
        "training public.models", 16, 80, "units, iteration 1 of 5")
    assert parse_progress("gpdl iteration 1: mst_key 2 training loss 0.5") is None
    assert parse_progress(progress_line("load t", 0, 0)) == Progress("load t", 0, 0, "")


# --- local DSNs ---------------------------------------------------------------------
def test_without_role_only_strips_a_local_dsns_role() -> None:
    local = (f"host=/tmp port=5432 dbname=gpdl user=postgres "
             f"options='{ROLE_OPTION}ann\\ lee -c search_path=ann'")
    assert parse_dsn(without_role(local)) == dict(host="/tmp", port="5432", dbname="gpdl",
                                                  user="postgres")
    other = "host=db port=5432 dbname=gpdl user=ann options='-c work_mem=64MB'"
    assert without_role(other) == other
    url = "postgresql://ann:pw@127.0.0.1:5432/gpdl"
    assert without_role(url) == url


# --- is a job's driver alive? -------------------------------------------------------
def test_driver_alive_needs_the_runner_and_the_job_on_this_host() -> None:
    job = "public.alive_check"
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                                registry.RUNNER_MODULE, job])
    try:
        deadline = time.monotonic() + 10
        while not registry.driver_alive(socket.gethostname(), process.pid, job):
            assert time.monotonic() < deadline, "the process never looked alive"
            time.sleep(0.05)
        assert registry.driver_alive(socket.gethostname(), process.pid, "public.other") is False
        assert registry.driver_alive("another-host", process.pid, job) is None
    finally:
        process.kill()
        process.wait()
    assert registry.driver_alive(socket.gethostname(), process.pid, job) is False
    assert registry.driver_alive(socket.gethostname(), os.getpid(), job) is False
    assert registry.driver_alive(None, None, job) is None  # not launched yet: cannot tell



# --- user tables never go into schema gpdl ------------------------------------------
def test_tables_never_go_into_gpdls_schema() -> None:
    with pytest.raises(UsageError, match="schema gpdl holds gpdl's own objects"):
        table_name("gpdl.config")
    assert str(table_name("public.config")) == "public.config"
    assert table_name("GPDL.models").schema == "GPDL"  # quoted: another schema
