"""Unit tests of gpdl_backend.selection: parameter strings and configuration search."""

from __future__ import annotations

import math

import pytest

from gpdl_backend.errors import UsageError
from gpdl_backend.selection import (
    CompileParams,
    FitParams,
    ModelConfig,
    build_optimizer,
    compile_kwargs,
    fit_kwargs,
    format_compile_params,
    format_fit_params,
    generate_model_configs,
    load_model_selection,
    parse_compile_params,
    parse_fit_params,
)

MADLIB_COMPILE = "loss='categorical_crossentropy', optimizer='Adam(lr=0.001)', metrics=['accuracy']"
CANONICAL_COMPILE = (
    "loss='categorical_crossentropy',optimizer='Adam(learning_rate=0.001)',metrics=['accuracy']"
)
REFERENCE_COMPILE_GRID = {
    "loss": ["categorical_crossentropy"],
    "optimizer_params_list": [{"optimizer": ["Adam", "RMSprop"], "lr": [1e-3, 1e-4]}],
    "metrics": ["accuracy"],
}
REFERENCE_FIT_GRID = {"batch_size": [64, 128], "epochs": [1]}


# ------------------------------------------------------------------ compile params


def test_madlib_compile_string_parses():
    params = parse_compile_params(MADLIB_COMPILE)
    assert params.optimizer == "Adam"
    assert params.optimizer_kwargs == {"learning_rate": 0.001}
    assert params.loss == "categorical_crossentropy"
    assert params.metrics == ("accuracy",)
    assert params.original == MADLIB_COMPILE


def test_keras3_compile_string_equals_madlib_one():
    keras3 = parse_compile_params(
        "optimizer='Adam(learning_rate=1e-3)', loss='categorical_crossentropy', "
        "metrics=['accuracy']"
    )
    assert keras3 == parse_compile_params(MADLIB_COMPILE)
    assert hash(keras3) == hash(parse_compile_params(MADLIB_COMPILE))


@pytest.mark.parametrize(
    ("optimizer", "name", "kwargs"),
    [
        ("'adam'", "Adam", {}),
        ("'Adam()'", "Adam", {}),
        ("'rmsprop(lr=0.01)'", "RMSprop", {"learning_rate": 0.01}),
        (
            "'sgd(lr=0.1, momentum=0.9, nesterov=True)'",
            "SGD",
            {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True},
        ),
        ("SGD(learning_rate=0.1)", "SGD", {"learning_rate": 0.1}),
        ("'Adagrad(learning_rate=1)'", "Adagrad", {"learning_rate": 1}),
    ],
)
def test_optimizer_spellings(optimizer, name, kwargs):
    params = parse_compile_params(f"loss='mse', optimizer={optimizer}")
    assert params.optimizer == name
    assert params.optimizer_kwargs == kwargs
    assert params.metrics == ()


def test_metrics_are_optional_and_a_bare_name_is_accepted():
    params = parse_compile_params("loss='mse', optimizer='adam', metrics='mae'")
    assert params.metrics == ("mae",)


def test_lr_alias_and_learning_rate_together_are_refused():
    with pytest.raises(UsageError, match="learning_rate"):
        parse_compile_params("loss='mse', optimizer='Adam(lr=0.1, learning_rate=0.2)'")


def test_unknown_optimizer_names_the_name_and_lists_valid_ones():
    with pytest.raises(UsageError, match="Adamm") as caught:
        parse_compile_params("loss='mse', optimizer='Adamm(lr=0.1)'")
    assert "Adam" in str(caught.value).split("valid optimizers:")[1]
    assert "RMSprop" in str(caught.value)


def test_unknown_optimizer_argument_is_named():
    with pytest.raises(UsageError, match="betta_1"):
        parse_compile_params("loss='mse', optimizer='Adam(betta_1=0.8)'")


@pytest.mark.parametrize("value", ["0", "-0.1", '"fast"', "True"])
def test_learning_rate_must_be_positive_number(value):
    with pytest.raises(UsageError, match="positive number"):
        parse_compile_params(f"loss='mse', optimizer='Adam(lr={value})'")


def test_unknown_loss_and_metric_are_named():
    with pytest.raises(UsageError, match="categorical_crossentropyy"):
        parse_compile_params("loss='categorical_crossentropyy', optimizer='adam'")
    with pytest.raises(UsageError, match="acuracy") as caught:
        parse_compile_params("loss='mse', optimizer='adam', metrics=['acuracy']")
    assert "accuracy" in str(caught.value)


def test_sparse_labels_follow_the_loss():
    assert not parse_compile_params(MADLIB_COMPILE).sparse_labels
    sparse = parse_compile_params(
        "loss='sparse_categorical_crossentropy', optimizer='adam', "
        "metrics=['sparse_categorical_accuracy']"
    )
    assert sparse.sparse_labels


@pytest.mark.parametrize(
    ("loss", "metric"),
    [
        ("categorical_crossentropy", "sparse_categorical_accuracy"),
        ("categorical_crossentropy", "sparse_top_k_categorical_accuracy"),
        ("sparse_categorical_crossentropy", "categorical_accuracy"),
        ("sparse_categorical_crossentropy", "top_k_categorical_accuracy"),
    ],
)
def test_categorical_metric_must_agree_with_the_loss(loss, metric):
    with pytest.raises(UsageError, match=metric):
        parse_compile_params(f"loss='{loss}', optimizer='adam', metrics=['{metric}']")


def test_several_metrics_keep_their_order_and_a_repeat_is_refused():
    params = parse_compile_params("loss='mse', optimizer='adam', metrics=['mae', 'accuracy']")
    assert params.metrics == ("mae", "accuracy")
    assert parse_compile_params(format_compile_params(params)).metrics == ("mae", "accuracy")
    with pytest.raises(UsageError, match="'mae' is listed twice"):
        parse_compile_params("loss='mse', optimizer='adam', metrics=['mae', 'acc', 'mae']")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "optimizer='adam'",
        "loss='mse'",
        "loss='mse', optimizer='adam', loss_weights=[1.0]",
        "loss='mse', optimizer='adam', loss='mae'",
        "loss='mse' optimizer='adam'",
        "loss='mse', optimizer='Adam(0.01)'",
        "loss='mse', optimizer='Adam(lr=0.1, lr=0.2)'",
    ],
)
def test_malformed_or_incomplete_compile_strings_are_refused(text):
    with pytest.raises(UsageError):
        parse_compile_params(text)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "loss=__import__('os').getcwd(), optimizer='adam'",
        "loss='mse', optimizer='Adam(learning_rate=exec(\"raise SystemExit\"))'",
        "loss='mse', optimizer=exec('raise SystemExit')",
        "loss='mse', optimizer=__import__('os').system('true')",
        "loss='mse', optimizer='adam'), exec('raise SystemExit'",
        "loss='mse', optimizer='adam', **{'metrics': ['accuracy']}",
        "loss='mse', optimizer='keras.optimizers.Adam()'",
        "loss='mse', optimizer='adam', metrics=[m for m in 'ab']",
    ],
)
def test_code_is_never_evaluated(text):
    # SystemExit is not a UsageError: if anything were evaluated, this test would fail.
    with pytest.raises(UsageError):
        parse_compile_params(text)


def test_canonical_compile_format_round_trips():
    params = parse_compile_params(MADLIB_COMPILE)
    assert format_compile_params(params) == CANONICAL_COMPILE
    assert parse_compile_params(CANONICAL_COMPILE) == params
    sgd = parse_compile_params("optimizer='sgd(momentum=0.9, lr=1e-05)', loss='mse'")
    assert format_compile_params(sgd) == (
        "loss='mse',optimizer='SGD(learning_rate=1e-05,momentum=0.9)'"
    )
    assert parse_compile_params(format_compile_params(sgd)) == sgd


def test_compile_params_is_frozen_and_keeps_its_own_kwargs():
    kwargs = {"learning_rate": 0.1}
    params = CompileParams("SGD", kwargs, "mse")
    kwargs["learning_rate"] = 0.5
    assert params.optimizer_kwargs == {"learning_rate": 0.1}
    with pytest.raises(AttributeError):
        params.loss = "mae"  # type: ignore[misc]


def test_build_optimizer_and_compile_kwargs():
    params = parse_compile_params("loss='mse', optimizer='rmsprop(lr=0.01, rho=0.8)'")
    optimizer = build_optimizer(params)
    assert type(optimizer).__name__ == "RMSprop"
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    assert optimizer.get_config()["rho"] == pytest.approx(0.8)
    kwargs = compile_kwargs(params)
    assert kwargs["loss"] == "mse"
    assert kwargs["metrics"] == []
    assert kwargs["optimizer"] is not optimizer


def test_keras2_decay_becomes_inverse_time_decay():
    params = parse_compile_params("loss='mse', optimizer='Adam(lr=0.01, decay=0.5)'")
    assert params.optimizer_kwargs == {"learning_rate": 0.01, "decay": 0.5}
    schedule = build_optimizer(params).get_config()["learning_rate"]
    assert schedule["class_name"] == "InverseTimeDecay"
    assert schedule["config"]["initial_learning_rate"] == pytest.approx(0.01)
    assert schedule["config"]["decay_rate"] == pytest.approx(0.5)
    assert schedule["config"]["decay_steps"] == 1


def test_decay_without_learning_rate_uses_the_optimizer_default():
    params = parse_compile_params("loss='mse', optimizer='SGD(decay=0.1)'")
    schedule = build_optimizer(params).get_config()["learning_rate"]
    assert schedule["config"]["initial_learning_rate"] == pytest.approx(0.01)


# ---------------------------------------------------------------------- fit params


def test_fit_params_defaults():
    assert parse_fit_params("") == FitParams(batch_size=32, epochs=1, shuffle=True)
    assert format_fit_params(parse_fit_params("")) == "batch_size=32,epochs=1"


def test_fit_params_madlib_form():
    params = parse_fit_params("batch_size=64, epochs=10, verbose=1")
    assert (params.batch_size, params.epochs, params.shuffle) == (64, 10, True)
    assert format_fit_params(params) == "batch_size=64,epochs=10"
    assert fit_kwargs(params) == {"batch_size": 64, "epochs": 10, "shuffle": True, "verbose": 0}


def test_fit_params_shuffle_and_class_weight_round_trip():
    params = parse_fit_params("batch_size=8, shuffle=False, class_weight={1: 2.5, 0: 1}")
    assert params.class_weight == {0: 1.0, 1: 2.5}
    text = format_fit_params(params)
    assert text == "batch_size=8,epochs=1,shuffle=False,class_weight={0:1.0,1:2.5}"
    assert parse_fit_params(text) == params
    assert fit_kwargs(params)["class_weight"] == {0: 1.0, 1: 2.5}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("batch_size=0", "batch_size"),
        ("batch_size='64'", "batch_size"),
        ("batch_size=6.4", "batch_size"),
        ("epochs=True", "epochs"),
        ("epochs=-1", "epochs"),
        ("shuffle=1", "shuffle"),
        ("class_weight={'a': 1}", "class_weight"),
        ("validation_freq=2", "accepted: batch_size"),
        ("callbacks=[TensorBoard(log_dir='/tmp')]", "callbacks"),
        ("steps_per_epoch=10", "not supported"),
        ("batch_size=__import__('os')", "literal"),
    ],
)
def test_bad_fit_params_are_refused(text, match):
    with pytest.raises(UsageError, match=match):
        parse_fit_params(text)


# ---------------------------------------------------------- load_model_selection


def test_load_model_selection_is_madlib_cross_product():
    compiles = [
        "loss='categorical_crossentropy',optimizer='Adam(lr=0.1)',metrics=['accuracy']",
        "loss='categorical_crossentropy', optimizer='Adam(lr=0.01)',metrics=['accuracy']",
        "loss='categorical_crossentropy',optimizer='Adam(lr=0.001)',metrics=['accuracy']",
    ]
    fits = ["batch_size=4,epochs=1", "batch_size=8,epochs=1"]
    configs = load_model_selection([2, 1], compiles, fits)
    assert len(configs) == 12
    assert [c.mst_key for c in configs] == list(range(1, 13))
    assert [c.model_id for c in configs] == [1] * 6 + [2] * 6
    assert configs[0] == ModelConfig(
        1,
        1,
        "loss='categorical_crossentropy',optimizer='Adam(learning_rate=0.1)',metrics=['accuracy']",
        "batch_size=4,epochs=1",
    )
    assert configs[3].compile_params.endswith("Adam(learning_rate=0.01)',metrics=['accuracy']")
    assert configs[3].fit_params == "batch_size=8,epochs=1"


def test_load_model_selection_drops_repeated_configurations():
    configs = load_model_selection(
        [1, 1],
        ["loss='mse', optimizer='Adam(lr=0.1)'", "optimizer='adam(learning_rate=0.1)',loss='mse'"],
        ["batch_size=4", "batch_size=4, epochs=1, verbose=0"],
    )
    assert len(configs) == 1


def test_load_model_selection_names_the_bad_string_before_producing_anything():
    compiles = ["loss='mse', optimizer='adam'", "loss='mse', optimizer='Adamm'"]
    with pytest.raises(UsageError, match=r"compile_params_list\[1\].*Adamm"):
        load_model_selection([1], compiles, ["batch_size=4"])
    with pytest.raises(UsageError, match=r"fit_params_list\[0\].*batch_size"):
        load_model_selection([1], compiles[:1], ["batch_size=-4"])


@pytest.mark.parametrize(
    ("ids", "compiles", "fits"),
    [
        ([], ["loss='mse', optimizer='adam'"], ["batch_size=4"]),
        ([1.5], ["loss='mse', optimizer='adam'"], ["batch_size=4"]),
        ([1], [], ["batch_size=4"]),
        ([1], "loss='mse', optimizer='adam'", ["batch_size=4"]),
    ],
)
def test_load_model_selection_refuses_empty_or_wrong_lists(ids, compiles, fits):
    with pytest.raises(UsageError):
        load_model_selection(ids, compiles, fits)


# -------------------------------------------------------------------- grid search


def test_reference_demo_grid_gives_16_configurations():
    configs = generate_model_configs([1, 2], REFERENCE_COMPILE_GRID, REFERENCE_FIT_GRID)
    assert len(configs) == 16
    assert [c.mst_key for c in configs] == list(range(1, 17))
    rows = {(c.model_id, c.compile_params, c.fit_params) for c in configs}
    expected = {
        (
            model_id,
            "loss='categorical_crossentropy',"
            f"optimizer='{optimizer}(learning_rate={lr!r})',metrics=['accuracy']",
            f"batch_size={batch_size},epochs=1",
        )
        for model_id in (1, 2)
        for optimizer in ("Adam", "RMSprop")
        for lr in (1e-3, 1e-4)
        for batch_size in (64, 128)
    }
    assert rows == expected
    assert [c.model_id for c in configs] == [1] * 8 + [2] * 8
    for config in configs:
        parse_compile_params(config.compile_params)
        parse_fit_params(config.fit_params)


def test_grid_order_is_model_then_compile_then_fit():
    configs = generate_model_configs([1], REFERENCE_COMPILE_GRID, REFERENCE_FIT_GRID)
    assert [c.compile_params.split("optimizer=")[1].split(",")[0] for c in configs[::2]] == [
        "'Adam(learning_rate=0.001)'",
        "'Adam(learning_rate=0.0001)'",
        "'RMSprop(learning_rate=0.001)'",
        "'RMSprop(learning_rate=0.0001)'",
    ]
    assert [c.fit_params for c in configs[:2]] == [
        "batch_size=64,epochs=1",
        "batch_size=128,epochs=1",
    ]


def test_grid_with_per_optimizer_parameters_as_in_madlib_docs():
    grid = """
        {'loss': ['categorical_crossentropy'],
         'optimizer_params_list': [
             {'optimizer': ['SGD']},
             {'optimizer': ['SGD'], 'lr': [0.0001, 0.001], 'momentum': [0.95]},
             {'optimizer': ['Adam'], 'lr': [0.01, 0.1], 'decay': [1e-4]}],
         'metrics': ['accuracy']}
    """
    configs = generate_model_configs([1, 2], grid, "{'batch_size': [64, 128], 'epochs': [10]}")
    assert len(configs) == 20
    compiles = {c.compile_params for c in configs}
    assert (
        "loss='categorical_crossentropy',optimizer='Adam(learning_rate=0.1,decay=0.0001)',"
        "metrics=['accuracy']"
    ) in compiles
    assert "loss='categorical_crossentropy',optimizer='SGD()',metrics=['accuracy']" in compiles


def test_grid_with_top_level_optimizer_strings_and_empty_fit_grid():
    configs = generate_model_configs(
        [7], {"loss": ["mse", "mae"], "optimizer": ["Adam(lr=0.1)", "sgd"]}, {}
    )
    assert len(configs) == 4
    assert {c.fit_params for c in configs} == {"batch_size=32,epochs=1"}
    assert configs[0].compile_params == "loss='mse',optimizer='Adam(learning_rate=0.1)'"


def test_grid_drops_values_that_mean_the_same():
    configs = generate_model_configs(
        [1], {"loss": ["mse"], "optimizer": ["adam", "Adam", "Adam()"]}, {"epochs": [1, 1]}
    )
    assert len(configs) == 1


@pytest.mark.parametrize(
    ("compile_grid", "fit_grid", "match"),
    [
        (
            {
                "loss": ["mse"],
                "optimizer_params_list": [{"optimizer": ["SGD"], "lr": [1e-4, 1e-2, "log"]}],
            },
            {},
            "grid search cannot sample",
        ),
        ({"loss": ["mse"], "optimizer": ["adam"]}, {"batch_size": [16, 256, "log"]}, "range"),
        ({"loss": "mse", "optimizer": ["adam"]}, {}, "non-empty list"),
        ({"loss": ["mse"], "optimizer": ["adam"], "lr": [0.1]}, {}, "unknown compile parameter"),
        ({"loss": ["mse"], "optimizer": ["adam"]}, {"callbacks": [[]]}, "callbacks"),
        (
            {
                "loss": ["mse"],
                "lr": [0.1],
                "optimizer_params_list": [{"optimizer": ["SGD"], "lr": [0.1]}],
            },
            {},
            "not both",
        ),
        ({"loss": ["mse"], "optimizer_params_list": [{}]}, {}, "non-empty dicts"),
        ({"loss": ["mse"], "optimizer_params_list": [{"lr": [0.1]}]}, {}, "'optimizer'"),
        ({"loss": ["mse"], "optimizer": ["Adamm"]}, {}, "Adamm"),
        ("{'loss': ['mse'], 'optimizer': [__import__('os')]}", {}, "dict literal"),
    ],
)
def test_bad_grids_are_refused(compile_grid, fit_grid, match):
    with pytest.raises(UsageError, match=match):
        generate_model_configs([1], compile_grid, fit_grid)


def test_grid_refuses_random_search_options():
    with pytest.raises(UsageError, match="random search only"):
        generate_model_configs([1], REFERENCE_COMPILE_GRID, REFERENCE_FIT_GRID, num_configs=3)
    with pytest.raises(UsageError, match="random search only"):
        generate_model_configs([1], REFERENCE_COMPILE_GRID, REFERENCE_FIT_GRID, random_state=3)


@pytest.mark.parametrize(("search_type", "count"), [("g", 8), ("GRID", 8), ("rand", 5), ("r", 5)])
def test_search_type_prefixes(search_type, count):
    num_configs = 5 if search_type.lower().startswith("r") else None
    configs = generate_model_configs(
        [1],
        REFERENCE_COMPILE_GRID,
        REFERENCE_FIT_GRID,
        search_type,
        num_configs,
        0 if num_configs else None,
    )
    assert len(configs) == count


@pytest.mark.parametrize("search_type", ["", "bayes", "gridx"])
def test_unknown_search_type(search_type):
    with pytest.raises(UsageError, match="search_type"):
        generate_model_configs([1], REFERENCE_COMPILE_GRID, REFERENCE_FIT_GRID, search_type)


# ------------------------------------------------------------------ random search

RANDOM_COMPILE_GRID = {
    "loss": ["categorical_crossentropy"],
    "optimizer_params_list": [
        {"optimizer": ["SGD"], "lr": [1e-5, 1e-1, "log"], "momentum": [0.9, 0.999, "log_near_one"]},
        {"optimizer": ["Adam"], "lr": [0.01, 0.1, "linear"]},
    ],
    "metrics": ["accuracy"],
}


def _random(num_configs=200, random_state=7, fit_grid=None):
    return generate_model_configs(
        [1, 2],
        RANDOM_COMPILE_GRID,
        fit_grid or {"batch_size": [64, 128], "epochs": [1]},
        search_type="random",
        num_configs=num_configs,
        random_state=random_state,
    )


def test_random_search_honours_num_configs_and_is_reproducible():
    first = _random(25, random_state=11)
    assert len(first) == 25
    assert [c.mst_key for c in first] == list(range(1, 26))
    assert first == _random(25, random_state=11)
    assert first != _random(25, random_state=12)
    assert len({(c.model_id, c.compile_params, c.fit_params) for c in first}) == 25


def test_random_search_samples_within_ranges_and_spreads_log_ranges_over_decades():
    configs = _random(400)
    sgd_lrs, momenta, adam_lrs = [], [], []
    for config in configs:
        params = parse_compile_params(config.compile_params)
        assert params.loss == "categorical_crossentropy"
        assert params.metrics == ("accuracy",)
        assert config.model_id in (1, 2)
        assert config.fit_params in ("batch_size=64,epochs=1", "batch_size=128,epochs=1")
        if params.optimizer == "SGD":
            sgd_lrs.append(params.optimizer_kwargs["learning_rate"])
            momenta.append(params.optimizer_kwargs["momentum"])
        else:
            assert params.optimizer == "Adam"
            adam_lrs.append(params.optimizer_kwargs["learning_rate"])
    assert len(sgd_lrs) > 100 and len(adam_lrs) > 100
    assert all(1e-5 <= lr <= 1e-1 for lr in sgd_lrs)
    assert all(0.01 <= lr <= 0.1 for lr in adam_lrs)
    assert all(0.9 <= m <= 0.999 for m in momenta)
    # log: each of the four decades gets about a quarter (a linear draw would put
    # about 0.01% of them below 1e-4).
    decades = [math.floor(math.log10(lr)) for lr in sgd_lrs]
    for decade in (-5, -4, -3, -2):
        assert decades.count(decade) > len(sgd_lrs) / 8
    # log_near_one: 1 - momentum is log-uniform over [1e-3, 1e-1].
    near_one = [math.floor(math.log10(1 - m)) for m in momenta]
    for decade in (-3, -2):
        assert near_one.count(decade) > len(momenta) / 4


def test_random_search_rounds_integer_fit_ranges():
    configs = _random(50, fit_grid={"batch_size": [16, 256, "log"], "epochs": [1, 3, "linear"]})
    sizes = [parse_fit_params(c.fit_params).batch_size for c in configs]
    epochs = [parse_fit_params(c.fit_params).epochs for c in configs]
    assert all(16 <= size <= 256 for size in sizes)
    assert all(1 <= count <= 3 for count in epochs)
    assert len(set(sizes)) > 10


def test_random_search_over_a_finite_grid_finds_each_configuration_once():
    configs = generate_model_configs(
        [1, 2], REFERENCE_COMPILE_GRID, REFERENCE_FIT_GRID, "random", 16, random_state=3
    )
    grid = generate_model_configs([1, 2], REFERENCE_COMPILE_GRID, REFERENCE_FIT_GRID)
    as_rows = lambda cs: {(c.model_id, c.compile_params, c.fit_params) for c in cs}  # noqa: E731
    assert as_rows(configs) == as_rows(grid)


def test_random_search_refuses_more_configurations_than_a_finite_grid_holds():
    with pytest.raises(UsageError, match="only 16"):
        generate_model_configs([1, 2], REFERENCE_COMPILE_GRID, REFERENCE_FIT_GRID, "random", 17)


@pytest.mark.parametrize("num_configs", [None, 0, -2, 2.5, True])
def test_random_search_needs_a_positive_num_configs(num_configs):
    with pytest.raises(UsageError, match="num_configs"):
        generate_model_configs([1], RANDOM_COMPILE_GRID, REFERENCE_FIT_GRID, "random", num_configs)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ([1e-4, 1e-2], "range"),
        ([1e-4, 1e-2, "exp"], "distribution"),
        ([1e-2, 1e-4, "log"], "low < high"),
        ([0.0, 1e-2, "log"], "low > 0"),
        ([0.9, 1.0, "log_near_one"], "high < 1"),
        ([1e-4, 1e-3, 1e-2, "log"], "range"),
    ],
)
def test_malformed_ranges_are_refused(values, match):
    grid = {"loss": ["mse"], "optimizer_params_list": [{"optimizer": ["SGD"], "momentum": values}]}
    if values == [1e-4, 1e-2]:
        # Two numbers are two grid points, not a range: valid.
        assert len(generate_model_configs([1], grid, {}, "random", 2, 0)) == 2
        return
    with pytest.raises(UsageError, match=match):
        generate_model_configs([1], grid, {}, "random", 2, 0)
