"""Unit tests of AutoML search spaces and their seeded Optuna samplers."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from gpdl_backend.automl.space import Sampler, SearchSpace, Trial
from gpdl_backend.errors import UsageError
from gpdl_backend.selection import generate_model_configs, parse_compile_params, parse_fit_params

COMPILE = """{
    'loss': ['categorical_crossentropy'],
    'metrics': [['accuracy'], ['accuracy', 'top_k_categorical_accuracy']],
    'optimizer_params_list': [
        {'optimizer': ['Adam'], 'lr': [0.0001, 0.1, 'log']},
        {'optimizer': ['SGD'], 'lr': [0.01, 0.1], 'momentum': [0.5, 0.999, 'log_near_one']},
    ],
}"""
FIT = "{'batch_size': [16, 256, 'log'], 'epochs': [1, 2]}"
LR_ONLY = ("{'loss': ['mse'],"
           " 'optimizer_params_list': [{'optimizer': ['SGD'], 'lr': [1e-6, 1.0, 'log']}]}")


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.from_grids([2, 1], COMPILE, FIT)


def ask_all(sampler: Sampler, count: int, loss=None) -> list[Trial]:
    trials = []
    for _ in range(count):
        trial = sampler.ask()
        trials.append(trial)
        if loss is not None:
            sampler.tell(trial.number, loss(trial))
    return trials


def learning_rate(trial: Trial) -> float:
    return parse_compile_params(trial.compile_params).optimizer_kwargs["learning_rate"]


def test_trials_are_valid_configurations_within_the_grids(space: SearchSpace) -> None:
    trials = ask_all(Sampler(space, "rand", seed=3), 60)
    assert [t.number for t in trials] == list(range(60))
    entries = set()
    for trial in trials:
        compile_params = parse_compile_params(trial.compile_params)
        fit = parse_fit_params(trial.fit_params)
        assert trial.model_id in (1, 2)
        assert compile_params.loss == "categorical_crossentropy"
        assert 16 <= fit.batch_size <= 256 and fit.epochs in (1, 2)
        kwargs = compile_params.optimizer_kwargs
        entry = trial.params["optimizer_params_list"]
        entries.add(entry)
        if entry == 0:
            assert compile_params.optimizer == "Adam" and 1e-4 <= kwargs["learning_rate"] <= 0.1
            assert set(trial.params) >= {"0.optimizer", "0.lr"}
            assert not any(name.startswith("1.") for name in trial.params)
        else:
            assert compile_params.optimizer == "SGD" and kwargs["learning_rate"] in (0.01, 0.1)
            assert 0.5 <= kwargs["momentum"] <= 0.999
            # log_near_one: the Optuna parameter is 1 - momentum.
            assert trial.params["1.momentum"] == pytest.approx(1 - kwargs["momentum"])
            assert not any(name.startswith("0.") for name in trial.params)
        assert json.loads(json.dumps(trial.params)) == trial.params
    assert entries == {0, 1}
    assert {t.params["metrics"] for t in trials} == {0, 1}  # lists are chosen by index


def test_log_near_one_crowds_values_near_one() -> None:
    grid = ("{'loss': ['mse'], 'optimizer_params_list':"
            " [{'optimizer': ['SGD'], 'momentum': [0.5, 0.999, 'log_near_one']}]}")
    space = SearchSpace.from_grids([1], grid, "")
    momenta = [parse_compile_params(t.compile_params).optimizer_kwargs["momentum"]
               for t in ask_all(Sampler(space, "rand", seed=0), 200)]
    # 1 - momentum is log-uniform on (0.001, 0.5): its median is about sqrt(0.0005) = 0.022.
    assert 0.95 < statistics.median(momenta) < 0.995


def test_integer_ranges_give_integers() -> None:
    space = SearchSpace.from_grids([1], "{'loss': ['mse'], 'optimizer': ['SGD']}",
                                   "{'batch_size': [8, 12, 'linear'], 'epochs': [1, 3, 'linear']}")
    values = {(parse_fit_params(t.fit_params).batch_size, parse_fit_params(t.fit_params).epochs)
              for t in ask_all(Sampler(space, "rand", seed=0), 80)}
    assert {b for b, _ in values} == set(range(8, 13)) and {e for _, e in values} == {1, 2, 3}


@pytest.mark.parametrize("algorithm", ["rand", "tpe"])
def test_the_same_seed_gives_the_same_trials(space: SearchSpace, algorithm: str) -> None:
    def run(seed: int) -> list[tuple]:
        trials = ask_all(Sampler(space, algorithm, seed=seed), 25, loss=lambda t: learning_rate(t))
        return [(t.model_id, t.compile_params, t.fit_params, t.params) for t in trials]

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_tpe_concentrates_where_losses_are_low() -> None:
    """loss = |log10(lr) + 3|: the last trials of TPE sit nearer lr = 1e-3 than random ones."""
    space = SearchSpace.from_grids([1], LR_ONLY, "")

    def distance(trial: Trial) -> float:
        return abs(math.log10(learning_rate(trial)) + 3)

    last: dict[str, list[float]] = {"tpe": [], "rand": []}
    for seed in range(5):
        for algorithm, medians in last.items():
            trials = ask_all(Sampler(space, algorithm, seed=seed), 40, loss=distance)
            medians.append(statistics.median(distance(t) for t in trials[-10:]))
    wins = sum(tpe < rand for tpe, rand in zip(last["tpe"], last["rand"], strict=True))
    assert wins >= 4, last
    assert statistics.mean(last["tpe"]) < 0.8 * statistics.mean(last["rand"]), last


def test_failed_losses_do_not_crash_the_sampler() -> None:
    sampler = Sampler(SearchSpace.from_grids([1], LR_ONLY, ""), "tpe", seed=0)
    for index, trial in enumerate(ask_all(sampler, 14)):
        sampler.tell(trial.number, [math.nan, math.inf, -math.inf, 1.0][index % 4])
    assert sampler.ask().number == 14


def test_telling_a_trial_that_is_not_running_is_refused() -> None:
    sampler = Sampler(SearchSpace.from_grids([1], LR_ONLY, ""), "rand", seed=0)
    trial = sampler.ask()
    sampler.tell(trial.number, 0.5)
    with pytest.raises(ValueError, match="trial 0 is not running"):
        sampler.tell(trial.number, 0.5)
    with pytest.raises(ValueError, match="trial 7 is not running"):
        sampler.tell(7, 0.5)


def test_history_replays_into_a_new_sampler_with_the_same_numbers(space: SearchSpace) -> None:
    first = Sampler(space, "tpe", seed=5)
    trials = ask_all(first, 12)
    losses = {t.number: (learning_rate(t) if t.number < 10 else None) for t in trials}
    losses[3] = math.nan
    for number, loss in losses.items():
        if loss is not None:
            first.tell(number, loss)
    resumed = Sampler(space, "tpe", seed=5)
    numbers = [resumed.add_history(t.params, losses[t.number]) for t in trials]
    assert numbers == [t.number for t in trials]
    resumed.tell(10, 0.1)  # a replayed unfinished trial is told later
    with pytest.raises(ValueError, match="not running"):
        resumed.tell(9, 0.1)
    assert resumed.ask().number == 12


@pytest.mark.parametrize(("change", "message"), [
    ({"batch_size": 1000}, "do not fit this search space"),
    ({"surprise": 1}, "do not fit this search space, which samples"),
    ({"optimizer_params_list": 5}, "name no optimizer entry"),
    ({"optimizer_params_list": 1}, "do not fit this search space, which samples"),
])
def test_history_that_does_not_fit_the_space_is_refused(
    space: SearchSpace, change: dict, message: str
) -> None:
    trials = ask_all(Sampler(space, "rand", seed=0), 20)
    trial = next(t for t in trials if t.params["optimizer_params_list"] == 0)
    with pytest.raises(UsageError, match=message):
        Sampler(space, "rand", seed=0).add_history({**trial.params, **change}, 1.0)


@pytest.mark.parametrize(("compile_grid", "fit_grid"), [
    ("{'loss': ['mse'], 'optimizer': ['SGD']", "{}"),
    ("{'loss': ['mse'], 'optimizer': ['SGD'], 'learning': [1]}", "{}"),
    ("{'loss': ['mse'], 'optimizer': ['SGD']}", "{'batch_size': [1, 8, 'cubic']}"),
    ("{'loss': ['mse'], 'optimizer_params_list': [{'optimizer': ['SGD'], 'lr': [0, 1, 'log']}]}",
     "{}"),
    ("{'loss': ['mse'], 'optimizer_params_list': [{'lr': [0.1]}]}", "{}"),
    ("{'loss': ['mse'], 'optimizer_params_list': {'optimizer': ['SGD']}}", "{}"),
    ("{'loss': ['mse'], 'optimizer': ['SGD']}", "{'callbacks': [[]]}"),
    ("{'loss': ['mse'], 'optimizer': ['SGD']}", "{'epochs': []}"),
    ("{'loss': ['mse'], 'optimizer': ['Adamm']}", "{}"),
    ("{'loss': ['msee'], 'optimizer': ['SGD']}", "{}"),
])
def test_bad_grids_get_the_errors_of_generate_model_configs(
    compile_grid: str, fit_grid: str
) -> None:
    with pytest.raises(UsageError) as expected:
        generate_model_configs([1], compile_grid, fit_grid, search_type="random", num_configs=1,
                               random_state=0)
    with pytest.raises(UsageError) as caught:
        SearchSpace.from_grids([1], compile_grid, fit_grid)
    assert str(caught.value) == str(expected.value)


def test_a_bad_choice_is_refused_before_any_draw() -> None:
    with pytest.raises(UsageError, match="unknown loss 'msee'"):
        SearchSpace.from_grids([1], "{'loss': ['mse', 'msee'], 'optimizer': ['SGD']}", "")
    with pytest.raises(UsageError, match="batch_size must be an integer > 0"):
        SearchSpace.from_grids([1], "{'loss': ['mse'], 'optimizer': ['SGD']}",
                               "{'batch_size': [32, 0]}")


def test_bad_model_ids_and_empty_integer_ranges_are_refused() -> None:
    with pytest.raises(UsageError, match="model_ids must be a non-empty list of integers"):
        SearchSpace.from_grids([], LR_ONLY, "")
    with pytest.raises(UsageError, match=r"'batch_size': range \[1.2, 1.8, 'linear'\] holds no"):
        SearchSpace.from_grids([1], LR_ONLY, "{'batch_size': [1.2, 1.8, 'linear']}")


@pytest.mark.parametrize(("algorithm", "seed", "message"), [
    ("hyperopt", 0, "algorithm must be one of tpe, rand"),
    ("tpe", 1.5, "seed must be an integer"),
    ("rand", True, "seed must be an integer"),
])
def test_bad_sampler_options_are_refused(algorithm: str, seed: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Sampler(SearchSpace.from_grids([1], LR_ONLY, ""), algorithm, seed=seed)  # type: ignore[arg-type]


def test_random_is_rand() -> None:
    assert Sampler(SearchSpace.from_grids([1], LR_ONLY, ""), "random", seed=0).algorithm == "rand"
