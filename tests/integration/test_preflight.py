"""Jobs the server's pre-flight check refuses before any table exists; CLI hints as options.

``fit_multiple_model`` asks ``gpdl.check_config`` in the server about every
configuration: optimizer values Keras rejects only once it trains
(``SGD(momentum=5.0)``, ``Adam(beta_1='x')``) and class weights for classes the
data lacks are refused there, and the output tables are never made.
"""

from __future__ import annotations

import time

import pytest

from gpdl_backend.errors import UsageError
from gpdl_backend.mop.job import fit_multiple_model
from gpdl_jupyter.cli import main
from tests.integration import trainer_helpers as h

pytestmark = pytest.mark.db

OUTPUT = "pf_bad"
MST = "pf_bad_mst"


@pytest.fixture(scope="module")
def ids(dsn: str, shared_tmp_factory) -> dict[str, int]:
    h.prepare_data(dsn, shared_tmp_factory("gpdl-preflight-"))
    return h.arch_table(dsn)


@pytest.mark.parametrize(("compile_params", "fit_params", "message"), [
    (h.COMPILE.replace("Adam(learning_rate=0.01)", "SGD(momentum=5.0)"), h.FIT,
     r"mst_key 1 .*momentum. must be a float between \[0, 1\]"),
    (h.COMPILE.replace("Adam(learning_rate=0.01)", 'Adam(beta_1="x")'), h.FIT,
     r"mst_key 1 .*Keras refused the optimizer Adam\(beta_1='x'\)"),
    (h.COMPILE, h.FIT + ", class_weight={0: 1.0, 7: 3.0}",
     r"mst_key 1 .*class_weight names class index 7 but the data has 4 classes"),
], ids=["momentum", "beta_1", "class_weight"])
def test_refused_before_any_table(dsn: str, ids: dict[str, int], compile_params: str,
                                  fit_params: str, message: str) -> None:
    h.mst_table(dsn, MST, [(ids["good"], compile_params, fit_params)])
    h.drop_output(dsn, OUTPUT)
    started = time.monotonic()
    with pytest.raises(UsageError, match=message) as raised:
        fit_multiple_model(dsn, h.TRAIN, OUTPUT, MST, 1)
    assert "\n" not in str(raised.value)
    assert time.monotonic() - started < 60  # refused while planning, not after training
    assert h.output_tables_exist(dsn, OUTPUT) == []


def test_cli_hint_in_option_spelling(dsn: str, ids: dict[str, int], capsys) -> None:
    code = main(["preprocess", "trainer_images", h.TRAIN, "--dsn", dsn])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"gpdl: error: table {h.TRAIN} already exists; pass --if-exists replace")
