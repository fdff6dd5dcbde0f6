"""The doctor's lines for one server process's Python, without a database."""

from __future__ import annotations

from pathlib import Path

import gpdl_backend
from gpdl_backend.doctor import _closed_dirs, _python_failure, _python_lines

INFO = {"python": "3.11.2", "host": "sdw1", "cpu_count": 4, "gpus": [],
        "gpdl_backend": gpdl_backend.__version__, "tensorflow": "2.21.0", "keras": "3.15.1",
        "numpy": "2.4.6", "pillow": "13.0.0"}


def test_a_segment_must_import_what_the_coordinator_imports() -> None:
    segment = {**INFO, "numpy": "1.26.4", "keras": None}
    checks = {c.name: c for c in _python_lines("segment 3", segment, INFO)}
    assert checks["python (segment 3)"].ok
    assert checks["tensorflow (segment 3)"].ok
    numpy = checks["numpy (segment 3)"]
    assert not numpy.ok and numpy.detail == "1.26.4"
    assert "imports numpy 1.26.4, not 2.4.6" in numpy.fix and "every host" in numpy.fix
    keras = checks["keras (segment 3)"]
    assert not keras.ok and keras.detail == "missing" and "pip install keras" in keras.fix


def test_the_server_must_import_this_gpdl_backend() -> None:
    checks = {c.name: c for c in _python_lines("coordinator", {**INFO, "gpdl_backend": "0.0.1"},
                                               {})}
    assert not checks["gpdl_backend (coordinator)"].ok
    assert checks["numpy (coordinator)"].ok  # nothing to compare with


def test_an_unreadable_venv_names_the_directories_to_open(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    site = closed / "venv" / "site-packages"
    site.mkdir(parents=True)
    closed.chmod(0o700)
    assert str(closed) in _closed_dirs([str(site)])
    check = _python_failure("segments", RuntimeError(
        "ModuleNotFoundError: No module named 'gpdl_backend'  (seg1 slice1 vm:7003 pid=9)"),
        {"site_paths": str(site), "server_user": "gpadmin"})
    assert not check.ok and check.name == "python (segments)"
    assert check.fix.startswith(f"the segments cannot read the venv as gpadmin: chmod -R o+rX "
                                f"{site}; chmod o+x on each parent dir (")
    assert str(closed) in check.fix
