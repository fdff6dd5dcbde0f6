"""The %gpdl magic without a database: parsing, substitution, bodies, options, show-sql.

``--show-sql`` runs against a DSN nothing listens on: the text is then built for
PostgreSQL with ``GpdlMagic.num_segments`` virtual segments, and nothing runs.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import pytest
from IPython.core.error import UsageError as IPythonUsageError
from traitlets.config import Config

from gpdl_backend.errors import UsageError
from gpdl_jupyter import connection
from gpdl_jupyter.magics import GpdlMagic
from gpdl_jupyter.magics.commands import COMMANDS, Context, parse
from gpdl_jupyter.magics.commands.select import settings
from gpdl_jupyter.magics.parsing import body_words, parse_body, split_words, substitute
from gpdl_jupyter.results import Table
from gpdl_jupyter.sqltext import ShownSql
from tests.magic_shell import NOWHERE, RaisingShell


def magic(ip: RaisingShell) -> GpdlMagic:
    return next(c for c in ip.configurables if isinstance(c, GpdlMagic))


# --- argument parsing --------------------------------------------------------------------
def test_load_arguments_take_defaults_from_the_context() -> None:
    args = parse("load", ["/data/train", "train_images", "--resize", "32", "32"],
                 Context(batch_size=250, num_segments=3, dsn="postgresql://x/y"))
    assert (args.location, args.table, args.resize) == ("/data/train", "train_images", [32, 32])
    assert (args.batch_size, args.segments, args.dsn, args.show_sql) == (
        250, 3, "postgresql://x/y", False)


def test_show_sql_option_or_context() -> None:
    assert parse("stop", ["models", "--show-sql"], Context()).show_sql
    assert parse("stop", ["models"], Context(show_sql=True)).show_sql
    assert parse("stop", ["models", "--mst-key", "3"], Context()).mst_key == 3


def test_every_command_has_dsn_and_show_sql() -> None:
    for name, module in COMMANDS.items():
        assert module.BODY in ("none", "options", "content"), name
        assert module.HELP and len(module.HELP) < 90, name
    args = parse("gpu", ["--dsn", "x=1", "--show-sql"], Context())
    assert (args.dsn, args.show_sql) == ("x=1", True)


@pytest.mark.parametrize(("words", "message"), [
    (["load", "only_location"], "%gpdl load: the following arguments are required: table"),
    (["fit", "a", "b", "c", "--iterations", "many"], "invalid int value: 'many'"),
    (["load", "a", "b", "--colour", "L"], "unrecognized arguments: --colour L"),
    (["load", "a", "b", "--if-exists", "merge"], "invalid choice: 'merge'"),
])
def test_argument_mistakes_are_one_line_usage_errors(words: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")) as raised:
        parse(words[0], words[1:], Context())
    assert "\n" not in str(raised.value)


# --- substitution and splitting ----------------------------------------------------------
def test_substitute_fills_names_and_expressions() -> None:
    namespace = {"folder": "/data/my images", "size": 28}
    assert substitute("load '{{folder}}' t --resize {{size}} {{size * 2}}", namespace) == \
        "load '/data/my images' t --resize 28 56"
    assert substitute("no braces {here}", {}) == "no braces {here}"


def test_substitute_refuses_undefined_names() -> None:
    with pytest.raises(UsageError, match=r"\{\{missing\}\}: no variable 'missing'"):
        substitute("load {{missing}} t", {})


def test_split_and_body_words() -> None:
    assert split_words("load '/my data' t") == ["load", "/my data", "t"]
    assert body_words("--resize 8 8  # small\n\n# a comment\n--if-exists replace\n") == \
        ["--resize", "8", "8", "--if-exists", "replace"]
    with pytest.raises(UsageError, match="cannot split"):
        split_words("load 'unclosed")


def test_magic_substitutes_from_the_user_namespace(shell: RaisingShell) -> None:
    shell.user_ns["job"] = "models_7"
    shown = shell.run_cell("%gpdl stop {{job}} --show-sql").result
    assert shown == "SELECT gpdl.stop_job('models_7');"


# --- cell bodies ---------------------------------------------------------------------------
def test_yaml_body_reads_exponents_as_numbers() -> None:
    body = parse_body("compile:\n  optimizer_params_list:\n    - optimizer: [Adam]\n"
                      "      lr: [1e-3, 1.0E-4, 2]\nfit: {batch_size: [8, 16]}\n")
    assert body["compile"]["optimizer_params_list"][0]["lr"] == [0.001, 0.0001, 2]
    assert body["fit"] == {"batch_size": [8, 16]}


def test_python_dict_body() -> None:
    body = parse_body("{'compile': {'loss': ['mse'], 'metrics': None}, 'fit': {'shuffle': [True]}}")
    assert body == {"compile": {"loss": ["mse"], "metrics": None}, "fit": {"shuffle": [True]}}
    assert parse_body('{"json": [1, 2]}') == {"json": [1, 2]}
    assert parse_body("  \n") == {}


@pytest.mark.parametrize(("body", "message"), [
    ("- a list\n- not a mapping", "must be a mapping"),
    ("compile: [unclosed", "neither YAML nor a Python dict"),
])
def test_bad_bodies(body: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_body(body)


def _select_options(**given) -> argparse.Namespace:
    names = ("model_arch_table", "model_ids", "search_type", "num_configs", "random_state",
             "if_exists")
    return argparse.Namespace(**{name: given.get(name) for name in names})


def test_select_settings_merge_body_and_options() -> None:
    body = "model_ids: 1\ncompile: {loss: [mse], optimizer: [adam]}\nfit: {batch_size: [8]}\n" \
           "search: random\nnum_configs: 1\nseed: 7"
    values = settings(_select_options(model_arch_table="arch"), body)
    assert values == {"model_arch_table": "arch", "model_ids": [1],
                      "compile_params": {"loss": ["mse"], "optimizer": ["adam"]},
                      "fit_params": {"batch_size": [8]}, "search_type": "random",
                      "num_configs": 1, "random_state": 7}


def test_select_settings_mistakes() -> None:
    body = "compile: {loss: [mse]}\nfit: {batch_size: [8]}"
    with pytest.raises(UsageError, match="select needs --arch TABLE, --model-ids"):
        settings(_select_options(), body)
    with pytest.raises(UsageError, match="unknown key 'grid'"):
        settings(_select_options(), "grid: {}")
    with pytest.raises(UsageError, match="given both as an option"):
        settings(_select_options(model_arch_table="a", model_ids=[2]), body + "\nmodel_ids: [1]")
    with pytest.raises(UsageError, match="given twice"):
        settings(_select_options(), "fit: {}\nfit_params_grid: {}")


# --- the magic: errors, help, bodies -------------------------------------------------------
def test_usage_errors_are_one_line_and_chained(shell: RaisingShell) -> None:
    with pytest.raises(IPythonUsageError) as raised:
        shell.run_cell("%gpdl load /data bad-name --show-sql")
    assert str(raised.value).startswith("unsafe table name 'bad-name'")
    assert "\n" not in str(raised.value)
    assert isinstance(raised.value.__cause__, UsageError)


def test_unknown_command_suggests(shell: RaisingShell) -> None:
    with pytest.raises(IPythonUsageError, match=r"no command 'lod'; did you mean load\?"):
        shell.gpdl("lod a b")


def test_help_prints_and_returns_nothing(shell: RaisingShell, capsys) -> None:
    assert shell.gpdl("") is None
    assert "select" in capsys.readouterr().out
    assert shell.gpdl("fit --help") is None
    assert "--iterations" in capsys.readouterr().out


def test_cell_body_adds_options(shell: RaisingShell) -> None:
    shown = shell.gpdl("load /data imgs", "--resize 8 8   # small\n--batch-size 7\n--show-sql")
    assert shown.startswith("SELECT gpdl.load_images('/data', 'imgs', 7, NULL, ARRAY[8,8], ")


def test_commands_without_body_refuse_one(shell: RaisingShell) -> None:
    with pytest.raises(IPythonUsageError, match="takes no cell body"):
        shell.gpdl("status models", "something")
    assert shell.gpdl("stop models --show-sql", "# only a comment\n")


# --- show-sql ------------------------------------------------------------------------------
def test_load_show_sql_is_the_one_call(shell: RaisingShell) -> None:
    shown = shell.gpdl("load s3://bucket/train train_images --server minio --show-sql")
    assert isinstance(shown, ShownSql)
    assert shown == ("SELECT gpdl.load_images('s3://bucket/train', 'train_images', 500, "
                     "'minio', NULL, 'RGB', false, 'fail', 8, num_segments => 2);")
    assert "<pre><code" in shown._repr_html_()


def test_show_sql_from_the_option_runs_nothing(shell: RaisingShell) -> None:
    shell.run_cell("%config GpdlMagic.show_sql = True")
    shown = shell.gpdl("preprocess imgs packed --validation-of train_packed")
    assert shown == ("SELECT gpdl.validation_preprocessor_dl('imgs', 'packed', 'y', 'x', "
                     "'train_packed', NULL, seed => 0, if_exists => 'fail', "
                     "num_segments => 2);")


def test_fit_and_stop_show_sql(shell: RaisingShell) -> None:
    fit = shell.gpdl("fit packed models mst --iterations 3 --validation valid --show-sql")
    assert fit == ("SELECT gpdl.madlib_keras_fit_multiple_model('packed', 'models', 'mst', 3, "
                   "false, 'valid', NULL, false, NULL, NULL, true, 0, true);")
    stop = shell.gpdl("stop models --mst-key 2 --show-sql")
    assert stop == "SELECT gpdl.stop_job('models', mst_key => 2);"
    resume = shell.gpdl("resume models --show-sql")
    assert resume == "SELECT gpdl.resume_job('models', background => true);"


def test_select_show_sql_is_generate_model_configs(shell: RaisingShell) -> None:
    body = ("compile:\n  loss: [categorical_crossentropy]\n  optimizer_params_list:\n"
            "    - optimizer: [Adam]\n      lr: [1e-3, 1e-2]\n  metrics: [accuracy]\n"
            "fit:\n  batch_size: [8, 16]\n  epochs: [1]\n")
    shown = shell.gpdl("select mst --arch arch --model-ids 1 --show-sql", body)
    assert shown.startswith("SELECT gpdl.generate_model_configs('arch', 'mst', ARRAY[1], ")
    assert "''optimizer_params_list'': [{''optimizer'': [''Adam''], ''lr'': [0.001, 0.01]}]" \
        in shown
    assert shown.endswith(", 'grid', NULL, NULL, if_exists => 'append');")


def test_arch_predict_gpu_connect_show_sql(shell: RaisingShell) -> None:
    shell.user_ns["model"] = {"class_name": "Sequential", "config": {"layers": []}}
    arch = shell.gpdl("arch arch --from model --name tiny --show-sql")
    assert arch.startswith("SELECT gpdl.load_keras_model('arch', '{\"class_name\": ")
    assert arch.endswith(", NULL, 'tiny', NULL, NULL);")
    predict = shell.gpdl("predict models --table test_images --output preds --pred-type 3 "
                         "--show-sql")
    assert predict == ("SELECT gpdl.madlib_keras_predict('models', 'test_images', "
                       "'fullpaths', 'x', 'preds', '3', false, NULL, 'fail');")
    image = shell.gpdl("predict models --mst-key 2 --show-sql")
    assert image == ("SELECT * FROM gpdl.predict_image('models', 2, %s, 3);\n"
                     "-- parameter 1: 0 bytes")
    assert shell.gpdl("gpu --show-sql") == "SELECT * FROM gpdl.gpu_status();"
    assert "SELECT version();" in shell.gpdl(f"connect {NOWHERE} --show-sql")


# --- configuration: traitlets and pyproject.toml -------------------------------------------
def test_defaults_and_config(shell: RaisingShell) -> None:
    options = magic(shell)
    assert (options.batch_size, options.live, options.theme, options.refresh) == (
        500, True, "notebook", 2.0)
    shell.run_cell("%config GpdlMagic.theme = 'presentation'")
    assert options.theme == "presentation"
    assert "Images per row when loading" in options.class_config_section()


def test_pyproject_sets_defaults(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n\n[tool.gpdl]\nbatch_size = 64\ntheme = "presentation"\n'
        'live = false\nbatchsize = 3\nrefresh = -1\n\n[tool.gpdl.other]\nx = 1\n')
    (tmp_path / "notebooks").mkdir()
    config = Config()
    config.GpdlMagic.live = True  # the IPython configuration wins over pyproject.toml
    ip = RaisingShell.new(config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        options = GpdlMagic(shell=ip)
        options.load_pyproject(tmp_path / "notebooks")
    assert options.pyproject == tmp_path / "pyproject.toml"
    assert (options.batch_size, options.theme, options.live, options.refresh) == (
        64, "presentation", True, 2.0)
    messages = " | ".join(str(w.message) for w in caught)
    assert "unknown option 'batchsize' (did you mean batch_size?)" in messages
    assert "refresh" in messages


def test_no_tool_gpdl_keeps_defaults(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    options = GpdlMagic(shell=RaisingShell.new())
    assert options.pyproject == tmp_path / "pyproject.toml"
    assert options.batch_size == 500


def test_bad_option_values_are_refused(shell: RaisingShell) -> None:
    options = magic(shell)
    for name, value in (("batch_size", 0), ("refresh", 0.1), ("num_segments", 0)):
        with pytest.raises(Exception, match=name):
            setattr(options, name, value)


def test_unload_extension(shell: RaisingShell) -> None:
    shell.run_cell("%unload_ext gpdl_jupyter")
    assert not any(isinstance(c, GpdlMagic) for c in shell.configurables)
    with pytest.raises(IPythonUsageError, match="not found"):
        shell.run_line_magic("gpdl", "status")
    shell.run_cell("%load_ext gpdl_jupyter")
    assert shell.gpdl("stop models --show-sql --dsn x=1")


# --- connection resolution -----------------------------------------------------------------
def test_resolve_dsn_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert connection.resolve_dsn("postgresql+psycopg2://u@h:1/d") == "postgresql://u@h:1/d"
    assert connection.resolve_dsn("host=h dbname=d") == "host=h dbname=d"
    monkeypatch.setenv("DATABASE_URL", "postgresql://env/db")
    assert connection.resolve_dsn(None, use_jupysql=False) == "postgresql://env/db"
    connection.CURRENT.set("postgresql://chosen/db")
    assert connection.resolve_dsn(None) == "postgresql://chosen/db"
    assert connection.resolve_dsn("postgresql://given/db") == "postgresql://given/db"


def test_unknown_alias_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="neither a database URL nor the alias"):
        connection.resolve_dsn("no_such_alias")


def test_mask_password() -> None:
    assert connection.mask_password("postgresql://u:p%40ss@h/d") == "postgresql://u:***@h/d"
    assert connection.mask_password("host=h password=xyz user=u") == \
        "host=h password=*** user=u"


def test_jupysql_non_postgres_connection_is_ignored() -> None:
    sql = pytest.importorskip("sql.connection")
    ip = RaisingShell.new()
    ip.run_cell("%load_ext sql")
    ip.run_cell("%sql sqlite:// --alias lite")
    try:
        assert sql.ConnectionManager.current is not None
        assert connection.jupysql_dsn() is None
        assert connection.jupysql_dsn("lite") is None
    finally:
        sql.ConnectionManager.close_all()


def test_table_shows_rows() -> None:
    table = Table([{"mst_key": 1, "loss": 0.123456}, {"mst_key": 2, "loss": None}])
    assert repr(table).splitlines() == ["mst_key  loss", "1        0.1235", "2        -"]
    assert "<td>0.1235</td>" in table._repr_html_()
    assert table[0]["mst_key"] == 1


def test_automl_plan_sends_the_whole_space_or_none(shell: RaisingShell) -> None:
    """With ``--arch`` the plan can probe the unit time; without, the space stays out."""
    body = ("model_ids: [3]\ncompile: {loss: [mse], optimizer: [SGD]}\n"
            "fit: {batch_size: [16]}\nmethod: asha\n")
    shown = shell.run_cell("%%gpdl automl t_packed out out_mst --arch arch --plan --show-sql\n"
                           + body).result
    assert shown.startswith("SELECT * FROM gpdl.automl_plan('asha', NULL, 't_packed', NULL, "
                            "'arch', ARRAY[3], "), shown
    assert "''loss'': [''mse'']" in shown and "''batch_size'': [16]" in shown
    shown = shell.run_cell("%%gpdl automl t_packed out out_mst --plan --show-sql\n"
                           + body).result
    assert shown == ("SELECT * FROM gpdl.automl_plan('asha', NULL, 't_packed', NULL, NULL, "
                     "NULL, NULL, NULL);"), shown
