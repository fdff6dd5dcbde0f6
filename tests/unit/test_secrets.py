"""Secrets stay secret: file modes, masked DSNs, and secrets kept off the command line."""

from __future__ import annotations

import io
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from gpdl_backend import embedded
from gpdl_backend.embedded import EmbeddedServer, write_secret
from gpdl_jupyter import api, cli
from gpdl_jupyter.connection import mask_password

# --- secret files -------------------------------------------------------------------
_FAKE_INITDB = """\
#!{python}
import os, stat, sys
args = sys.argv[1:]
data = args[args.index("-D") + 1]
pwfile = next(a.split("=", 1)[1] for a in args if a.startswith("--pwfile="))
os.makedirs(data)
open(os.path.join(data, "PG_VERSION"), "w").write("15\\n")
open(os.path.join(data, "postgresql.conf"), "w").write("")
mode = stat.S_IMODE(os.stat(pwfile).st_mode)
open(os.path.join(os.path.dirname(data), "pwfile-mode"), "w").write(oct(mode))
"""


@pytest.fixture
def fake_initdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmbeddedServer:
    """A server whose initdb is a script that records the password file's mode.

    ``chmod`` does nothing here, so only a file created private from its first
    byte passes; the umask is 0, so anything else would be world-readable.
    """
    bindir = tmp_path / "bin"
    bindir.mkdir()
    initdb = bindir / "initdb"
    initdb.write_text(textwrap.dedent(_FAKE_INITDB.format(python=sys.executable)))
    initdb.chmod(0o755)
    monkeypatch.setattr(embedded, "find_bindir", lambda: bindir)
    monkeypatch.setattr(EmbeddedServer, "_run_as_owner", lambda self: False)
    monkeypatch.setattr(os, "chmod", lambda *args, **kwargs: None)
    previous = os.umask(0)
    yield EmbeddedServer(tmp_path / "home", 54399)
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_initdb_writes_the_password_and_dsn_files_private_from_the_start(
        fake_initdb: EmbeddedServer) -> None:
    fake_initdb._initdb(quiet=True)
    assert (fake_initdb.home / "pwfile-mode").read_text() == "0o600"
    assert not (fake_initdb.home / ".pwfile").exists()
    assert _mode(fake_initdb.dsn_file) == 0o600
    assert fake_initdb.dsn().startswith("postgresql://gpdl:")
    assert sorted(p.name for p in fake_initdb.home.iterdir() if "partial" in p.name) == []


def test_write_secret_replaces_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "dsn"
    path.write_text("old")
    path.chmod(0o644)
    previous = os.umask(0)
    try:
        write_secret(path, "postgresql://u:pw@h/d\n")
    finally:
        os.umask(previous)
    assert _mode(path) == 0o600
    assert path.read_text() == "postgresql://u:pw@h/d\n"
    assert [p.name for p in tmp_path.iterdir()] == ["dsn"]


# --- masking ------------------------------------------------------------------------
@pytest.mark.parametrize(("dsn", "masked"), [
    ("postgresql://u:p%40ss@h/d", "postgresql://u:***@h/d"),
    ("postgresql://u:pa?ss#@h:5432/d?sslmode=require",
     "postgresql://u:***@h:5432/d?sslmode=require"),
    ("postgresql://h/d?user=u&password=s3cr3t&sslmode=require",
     "postgresql://h/d?user=u&password=***&sslmode=require"),
    ("postgresql://u@h/d", "postgresql://u@h/d"),
    ("host=h password=xyz user=u", "host=h password=*** user=u"),
    ("password='my secret pw'", "password=***"),
    ("host=h password='my secret pw' dbname=d", "host=h password=*** dbname=d"),
    ("host=h password = 'it\\'s a \\\\ secret' user=u", "host=h password = *** user=u"),
    ("password=a\\ b user=u", "password=*** user=u"),
    ("host=h password='never closed secret", "host=h password=***"),
    ("host=h\tpassword=xyz", "host=h\tpassword=***"),
    ("host=h mypassword=x", "host=h mypassword=x"),
])
def test_mask_password(dsn: str, masked: str) -> None:
    assert mask_password(dsn) == masked


# --- gpdl db / gpdl demo --------------------------------------------------------------
DSN = "postgresql://gpdl:Very-Secret_pw@127.0.0.1:54329/gpdl"


@pytest.fixture
def running(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``gpdl db`` on a server that is up, without starting one."""
    monkeypatch.setattr(EmbeddedServer, "running", lambda self: True)
    monkeypatch.setattr(EmbeddedServer, "start", lambda self, quiet=False: DSN)
    monkeypatch.setattr(EmbeddedServer, "dsn", lambda self: DSN)
    monkeypatch.setattr(EmbeddedServer, "check_readable", lambda self, paths: [])
    monkeypatch.setenv("GPDL_HOME", str(tmp_path))


@pytest.mark.parametrize("action", ["start", "status"])
def test_db_prints_the_dsn_masked(running: None, capsys, action: str) -> None:
    assert cli.main(["db", action, "--no-install"] if action == "start"
                    else ["db", action]) == 0
    out = capsys.readouterr().out
    assert "Very-Secret_pw" not in out
    assert "postgresql://gpdl:***@127.0.0.1:54329/gpdl" in out


def test_db_show_password_prints_it(running: None, capsys) -> None:
    assert cli.main(["db", "start", "--no-install", "--show-password"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == DSN
    assert cli.main(["db", "status", "--show-password"]) == 0
    assert f"running: {DSN}" in capsys.readouterr().out


def test_demo_prints_the_dsn_masked(running: None, capsys, monkeypatch, tmp_path) -> None:
    from gpdl_jupyter import demo

    monkeypatch.setattr(demo, "install_if_needed", lambda *a, **k: type(
        "R", (), {"version": "x", "num_segments": 2, "changed": True})())
    monkeypatch.setattr(demo.datasets, "write_fashion_mnist", lambda *a, **k: {})
    monkeypatch.setattr(demo.api, "load_images", lambda *a, **k: type(
        "L", (), {"images": 1, "errors": 0, "images_per_second": 1.0})())
    packed = type("P", (), {"images": 1, "buffers": 1, "num_segments": 2,
                            "class_values": ("a",)})()
    monkeypatch.setattr(demo.api, "preprocess", lambda *a, **k: packed)
    demo.run_demo(home=tmp_path, data_dir=tmp_path / "data", notebook=None)
    out = capsys.readouterr().out
    assert "ready: postgresql://gpdl:***@127.0.0.1:54329/gpdl" in out
    assert "Very-Secret_pw" not in out
    demo.run_demo(home=tmp_path, data_dir=tmp_path / "data", notebook=None,
                  show_password=True)
    assert f"ready: {DSN}" in capsys.readouterr().out


# --- gpdl servers add: the secret off the command line ---------------------------------
@pytest.fixture
def added(monkeypatch: pytest.MonkeyPatch) -> dict:
    """What ``gpdl servers add`` hands to ``api.add_server`` (nothing is written)."""
    calls: dict = {}

    def add_server(name, **kwargs):
        calls.update(kwargs, name=name)
        return Path("/nowhere") / f"{name}.json"

    monkeypatch.setattr(api, "add_server", add_server)
    return calls


ADD = ["servers", "add", "minio", "--dsn", "postgresql://u@127.0.0.1:9/d", "--key", "K"]


def test_secret_from_stdin(added: dict, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cr3t value\n"))
    assert cli.main([*ADD, "--secret", "-"]) == 0
    assert added["secret"] == "s3cr3t value"
    out, err = capsys.readouterr()
    assert "s3cr3t" not in out + err and err == ""


def test_secret_from_an_environment_variable(added: dict, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MINIO_SECRET", "from-env")
    assert cli.main([*ADD, "--secret-env", "MINIO_SECRET"]) == 0
    assert added["secret"] == "from-env"
    monkeypatch.delenv("MINIO_SECRET")
    assert cli.main([*ADD, "--secret-env", "MINIO_SECRET"]) == 2
    assert "MINIO_SECRET" in capsys.readouterr().err


def test_secret_prompted_for_in_a_terminal(added: dict, monkeypatch) -> None:
    import getpass

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr(getpass, "getpass", lambda prompt: "typed" if "K" in prompt else "")
    assert cli.main(ADD) == 0
    assert added["secret"] == "typed"


def test_key_without_a_secret_and_no_terminal_is_refused(added: dict, monkeypatch,
                                                        capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli.main(ADD) == 2
    assert "--secret -" in capsys.readouterr().err
    assert added == {}
    assert cli.main(ADD[:5]) == 0  # no key: an anonymous config, nothing asked
    assert added["secret"] is None


def test_secret_on_the_command_line_still_works_but_warns(added: dict, capsys) -> None:
    assert cli.main([*ADD, "--secret", "on-the-line"]) == 0
    assert added["secret"] == "on-the-line"
    err = capsys.readouterr().err
    assert "warning" in err and "process list" in err and "on-the-line" not in err
