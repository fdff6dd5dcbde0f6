"""Mistakes refused before any work, in one clear line: values, empty tables, {{var}}, hints.

No database: every refusal here comes before a connection is opened (the DSN
points at a port nothing listens on), and ``check_config`` runs in this process
as it does in the server.
"""

from __future__ import annotations

import argparse
import re

import pytest
from IPython.core.error import UsageError as IPythonUsageError

from gpdl_backend.errors import UsageError
from gpdl_backend.mop.job import fit_multiple_model
from gpdl_backend.preprocess import validation_preprocessor
from gpdl_backend.server.worker import check_config
from gpdl_jupyter import api, cli
from gpdl_jupyter.magics.commands import COMMANDS
from gpdl_jupyter.magics.parsing import substitute_words
from gpdl_jupyter.usage import cli_spelling
from tests.magic_shell import NOWHERE, RaisingShell


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    return code, capsys.readouterr().err


# --- metrics_compute_frequency 0 -------------------------------------------------------
def test_metrics_frequency_zero_is_refused_not_the_default() -> None:
    with pytest.raises(UsageError, match="metrics_compute_frequency must be a positive "
                                         "integer, not 0"):
        fit_multiple_model(NOWHERE, "t", "m", "s", 5, metrics_compute_frequency=0)
    with pytest.raises(UsageError, match="not 0"):
        api.fit("t", "m", "s", num_iterations=5, metrics_compute_frequency=0, dsn=NOWHERE,
                show_sql=True)


def test_cli_metrics_frequency_zero(capsys) -> None:
    code, err = run_cli(capsys, "fit", "t", "m", "s", "--metrics-frequency", "0",
                        "--dsn", NOWHERE)
    assert code == 2
    assert err.strip().splitlines()[-1] == \
        "gpdl: error: --metrics-frequency must be a positive integer, not 0"


def test_magic_metrics_frequency_zero(shell: RaisingShell) -> None:
    with pytest.raises(IPythonUsageError, match="--metrics-frequency must be a positive "
                                                "integer, not 0"):
        shell.gpdl("fit t m s --metrics-frequency 0")


# --- empty table names -------------------------------------------------------------------
def test_api_refuses_an_empty_validation_table() -> None:
    with pytest.raises(UsageError, match="unsafe table name '': it is empty"):
        fit_multiple_model(NOWHERE, "t", "m", "s", 1, validation_table="")
    with pytest.raises(UsageError, match="it is empty"):
        validation_preprocessor(NOWHERE, "images", "packed", "")
    with pytest.raises(UsageError, match="it is empty"):
        api.fit("t", "m", "s", validation_table="", dsn=NOWHERE, show_sql=True)


@pytest.mark.parametrize("argv", [
    ["fit", "t", "m", "s", "--validation", ""],
    ["preprocess", "images", "packed", "--validation-of", ""],
    ["preprocess", "images", ""],
    ["load", "/data", ""],
    ["status", " "],
])
def test_cli_refuses_empty_table_names(capsys, argv: list[str]) -> None:
    code, err = run_cli(capsys, *argv, "--dsn", NOWHERE)
    assert code == 2
    assert "an empty table name: give a table, or leave the option out" in err


@pytest.mark.parametrize("line", [
    "fit t m s --validation ''",
    "preprocess images packed --validation-of ''",
    "predict models --images ''",
    "predict models --table '' --output p",
    "arch arch_table --select ''",
    "select mst --arch ''",
    "status ''",
    "load /data ''",
])
def test_magic_refuses_empty_table_names(shell: RaisingShell, line: str) -> None:
    with pytest.raises(IPythonUsageError, match="an empty table name"):
        shell.gpdl(line)


# --- {{var}} is one argument ------------------------------------------------------------
def test_substitute_words_keeps_a_value_one_word() -> None:
    namespace = {"t": "adv3 --if-exists replace --resize 8 8", "folder": "/my data",
                 "size": 28, "seed": -1}
    assert substitute_words("load {{folder}}/train {{t}}", namespace) == \
        ["load", "/my data/train", "adv3 --if-exists replace --resize 8 8"]
    assert substitute_words("load '{{ folder }}' x --resize {{size}} {{size * 2}} "
                            "--seed {{seed}}", namespace) == \
        ["load", "/my data", "x", "--resize", "28", "56", "--seed", "-1"]
    assert substitute_words("--batch-size 50  # {{not_filled}}\n--if-exists {{ 'replace' }}",
                            {}, comments=True) == \
        ["--batch-size", "50", "--if-exists", "replace"]
    assert substitute_words("stop {{empty}}", {"empty": ""}) == ["stop", ""]


@pytest.mark.parametrize(("line", "message"), [
    ("load d {{opt}}", r"\{\{opt\}\} gave '--if-exists', which reads as an option"),
    ("load {{missing}} t", r"\{\{missing\}\}: no variable 'missing'"),
    ("load {% for x in [1] %}{{x}}{% endfor %} t", r"not \{% \.\.\. %\}"),
    ("load '{{folder}} t", "cannot split"),
])
def test_substitute_words_refusals(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        substitute_words(line, {"opt": "--if-exists", "folder": "/d"})


def test_magic_value_cannot_add_options(shell: RaisingShell, monkeypatch) -> None:
    seen: list[argparse.Namespace] = []
    monkeypatch.setattr(COMMANDS["load"], "run", lambda args, context: seen.append(args))
    shell.user_ns.update(t="adv3 --if-exists replace --resize 8 8", d="/data/my images")
    shell.gpdl("load {{d}} {{t}}")
    assert (seen[0].location, seen[0].table) == ("/data/my images",
                                                 "adv3 --if-exists replace --resize 8 8")
    assert (seen[0].if_exists, seen[0].resize) == ("fail", None)
    shell.user_ns["n"] = 50
    shell.gpdl("load {{d}} x", "--batch-size {{n}}  # rows\n--if-exists {{'replace'}}")
    assert (seen[1].batch_size, seen[1].if_exists) == (50, "replace")


def test_magic_substituted_table_with_options_is_an_unsafe_name(shell: RaisingShell) -> None:
    shell.user_ns["t"] = "adv3 --if-exists replace --resize 8 8"
    with pytest.raises(IPythonUsageError, match="unsafe table name 'adv3 --if-exists"):
        shell.gpdl("load /data {{t}} --show-sql")


def test_content_bodies_are_filled_in_whole(shell: RaisingShell, monkeypatch) -> None:
    bodies: list[str | None] = []
    monkeypatch.setattr(COMMANDS["select"], "run", lambda args, context: bodies.append(
        context.cell))
    shell.user_ns["lr"] = 0.01
    shell.gpdl("select mst --arch a", "compile: {lr: [{{lr}}, {{lr / 10}}]}")
    assert bodies == ["compile: {lr: [0.01, 0.001]}"]


# --- CLI spelling of hints ---------------------------------------------------------------
@pytest.mark.parametrize(("python", "options"), [
    ("table t already exists; pass if_exists='replace'",
     "table t already exists; pass --if-exists replace"),
    ("table t already exists; pass if_exists='replace' or 'append'",
     "table t already exists; pass --if-exists replace or append"),
    ("table m (or its _info/_summary/_progress) already exists; drop it or pass "
     "warm_start=True", "table m (or its _info/_summary/_progress) already exists; drop it "
     "or pass --warm-start"),
    ("use_gpus=True but host h has no GPU visible to TensorFlow; train with use_gpus=False",
     "--use-gpus but host h has no GPU visible to TensorFlow; train without --use-gpus"),
    ("mixed image sizes: a is 8x8 but b is 9x9; pass resize to load them together",
     "mixed image sizes: a is 8x8 but b is 9x9; pass --resize H W to load them together"),
    ("models holds 2 configurations ([1, 2]); pass mst_key",
     "models holds 2 configurations ([1, 2]); pass --mst-key"),
    ("num_iterations must be a positive integer, not 0",
     "--iterations must be a positive integer, not 0"),
    ("warm_start: models holds no weights to start from",
     "--warm-start: models holds no weights to start from"),
    ("resize must be (height, width) of positive integers, not (0, 8)",
     "--resize H W must be positive integers, not (0, 8)"),
    ("batch_size must be a positive integer, not 0",
     "--batch-size must be a positive integer, not 0"),
    ("batch_size must be an integer > 0, got 0", "batch_size must be an integer > 0, got 0"),
    ("configuration mst_key 1 (model_id 1, loss='mse'; batch_size=0): batch_size must be an "
     "integer > 0, got 0", "configuration mst_key 1 (model_id 1, loss='mse'; batch_size=0): "
     "batch_size must be an integer > 0, got 0"),
])
def test_cli_spelling(python: str, options: str) -> None:
    assert cli_spelling(python) == options


def test_cli_error_hints_use_option_spelling(capsys, monkeypatch) -> None:
    def exists(*args, **kwargs):
        raise UsageError("table packed already exists; pass if_exists='replace'")

    monkeypatch.setattr(api, "preprocess", exists)
    code, err = run_cli(capsys, "preprocess", "images", "packed", "--dsn", NOWHERE)
    assert (code, err.strip()) == (
        2, "gpdl: error: table packed already exists; pass --if-exists replace")


def test_magic_error_hints_use_option_spelling(shell: RaisingShell, monkeypatch) -> None:
    def exists(*args, **kwargs):
        raise UsageError("table packed already exists; pass if_exists='replace'")

    monkeypatch.setattr(api, "preprocess", exists)
    with pytest.raises(IPythonUsageError, match=r"pass --if-exists replace$"):
        shell.gpdl("preprocess images packed")


# --- optimizer values and class weights: check_config (as in the server) ---------------
ARCH_SHAPE, CLASSES = [8, 8, 3], 4


@pytest.fixture(scope="module")
def arch() -> str:
    from tests.integration.trainer_helpers import model_json

    return model_json()


def _compile(optimizer: str) -> str:
    return f"loss='categorical_crossentropy', optimizer='{optimizer}', metrics=['accuracy']"


@pytest.mark.parametrize(("optimizer", "fit", "problem"), [
    ("SGD(momentum=5.0)", "batch_size=16", r"momentum. must be a float between \[0, 1\]"),
    ('Adam(beta_1="x")', "batch_size=16",
     r"^Keras refused the optimizer Adam\(beta_1='x'\): Cast string to float"),
    ('Adam(clipnorm="a")', "batch_size=16", r"^Keras refused the optimizer Adam\(clipnorm"),
    ("Adam(learning_rate=0.01)", "batch_size=16, class_weight={0: 1.0, 4: 2.0}",
     r"^class_weight names class index 4 but the data has 4 classes: indexes 0 to 3"),
])
def test_check_config_refuses_what_keras_would_refuse_later(arch: str, optimizer: str,
                                                             fit: str, problem: str) -> None:
    found = check_config(arch, _compile(optimizer), fit, ARCH_SHAPE, CLASSES)
    assert found is not None
    assert "\n" not in found
    assert re.search(problem, found), found


def test_check_config_accepts_good_configurations(arch: str) -> None:
    assert check_config(arch, _compile("SGD(momentum=0.9, learning_rate=0.1)"),
                        "batch_size=16, class_weight={0: 1.0, 3: 2.0}", ARCH_SHAPE,
                        CLASSES) is None
    assert check_config(arch, _compile("Adam(learning_rate=0.01)"), "batch_size=16",
                        ARCH_SHAPE, CLASSES) is None


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """A parser and every subcommand's parser below it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found.extend(_parsers(child))
    return found


def test_cli_help_is_plain_text() -> None:
    """``gpdl --help`` is read in a terminal: no reStructuredText markup from docstrings."""
    markup = re.compile(r"``|:(func|class|mod|meth):`|^\s*\.\. |::$", re.MULTILINE)
    for parser in _parsers(cli.build_parser()):
        text = parser.format_help()
        assert not markup.search(text), f"{parser.prog} --help shows markup:\n{text}"
