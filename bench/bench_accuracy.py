"""Accuracy of a Table-1-shaped grid on Fashion-MNIST, trained by gpdl end to end.

Fashion-MNIST's 60,000 training and 10,000 test images are written as PNG files,
loaded into the database (grayscale), packed (the test split as validation
data), and 16 configurations are trained at once with model hopper
parallelism: 2 CNN architectures x batch size {64, 128} x {Adam, RMSprop} x
learning rate {1e-3, 1e-4}, the grid of the reference demo's Table 1. Prints
each phase's wall time, a table of every configuration's final training and
test accuracy, the best one, and writes a JSON result to ``bench/out/``.

``--calibrate`` trains 4 configurations (both architectures, both batch sizes)
for 2 iterations on a 10,000-image subset, measures the per-segment training
and evaluation rates and the load + pack rate, and extrapolates the full run's
wall time (and the most iterations that fit the budget).

Run::

    .venv/bin/python bench/bench_accuracy.py --calibrate          # ~2 min
    .venv/bin/python bench/bench_accuracy.py --limit 6000 --iterations 2
    .venv/bin/python bench/bench_accuracy.py                      # the full run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from gpdl_backend.mop.job import fit_multiple_model

ARCH_TABLE, MST_TABLE, OUTPUT = "fm_arch", "fm_mst", "fm_models"
TRAIN_IMAGES, TRAIN_PACKED = "fm_train_images", "fm_train_packed"
TEST_IMAGES, TEST_PACKED = "fm_test_images", "fm_test_packed"
FULL_TRAIN, FULL_TEST = 60000, 10000
DEFAULT_ITERATIONS = 8
DEFAULT_FREQUENCY = 4
CALIBRATION_IMAGES = 10000

COMPILE_GRID = {
    "loss": ["categorical_crossentropy"], "metrics": ["accuracy"],
    "optimizer_params_list": [{"optimizer": ["Adam", "RMSprop"], "lr": [1e-3, 1e-4]}],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None,
                        help="training images (stratified subset); test images = limit / 6")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                        help=f"MOP iterations (epochs per configuration). "
                             f"Defaults to {DEFAULT_ITERATIONS}")
    parser.add_argument("--epochs", type=int, default=1,
                        help="passes over a segment's partition per hop. Defaults to 1")
    parser.add_argument("--frequency", type=int, default=DEFAULT_FREQUENCY,
                        help="metrics_compute_frequency (evaluate every this many iterations "
                             f"and after the last). Defaults to {DEFAULT_FREQUENCY}")
    parser.add_argument("--calibrate", action="store_true",
                        help="time both architectures on a 10K subset and extrapolate")
    parser.add_argument("--budget-min", type=float, default=45.0,
                        help="wall-time budget of the full run, for --calibrate")
    parser.add_argument("--segments", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=common.DEFAULT_DATA_DIR)
    parser.add_argument("--keep-server", action="store_true")
    return parser.parse_args(argv)


class Progress:
    """The job's listener: a line per iteration (and every ~30 s), timestamps kept.

    Also samples the segment backends' CPU seconds, to tell what share of the
    cores the job got on a shared machine.
    """

    def __init__(self, dsn: str, output: str) -> None:
        self.started = time.time()
        self.last_print = self.started
        self.last_unit = self.started
        self.iterations: list[dict[str, float]] = []
        self.driver_started: float | None = None
        self.cpu = common.BackendCpu(dsn, output)
        self._dsn, self._output = dsn, output

    def cpu_share(self, segments: int) -> float | None:
        """Backend CPU seconds / (segments x wall seconds) from driver start to last unit."""
        if self.driver_started is None or not self.cpu.seconds:
            return None
        return self.cpu.seconds / (segments * (self.last_unit - self.driver_started))

    def __call__(self, event: Any) -> None:
        now = time.time()
        if event.kind == "unit":
            if self.driver_started is None:
                self.driver_started = common.driver_started(self._dsn, self._output)
            self.cpu.sample()
            self.last_unit = now
            if now - self.last_print > 30:
                self.last_print = now
                common.say(f"  units {event.units_done}/{event.units_total} "
                           f"({now - self.started:.0f} s)")
        elif event.kind == "iteration":
            self.iterations.append({"at": now - self.started,
                                    "after_last_unit_s": now - self.last_unit})
            common.say(f"  {event.detail} done at {now - self.started:.0f} s "
                       f"(evaluation + commit {now - self.last_unit:.1f} s)")
        elif event.kind == "retry":
            common.say(f"  retry: {event.detail}")


def prepare(dsn: str, args: argparse.Namespace, train_limit: int | None,
            watch: common.Stopwatch) -> tuple[int, int]:
    """PNG files (cached), then load and pack both splits; returns image counts."""
    test_limit = None if train_limit is None else max(100, train_limit // 6)
    with watch("write PNGs"):  # once: later runs find them in the cache
        train_dir = common.fashion_mnist_dir(args.data_dir, ("train",), train_limit)
        test_dir = common.fashion_mnist_dir(args.data_dir, ("test",), test_limit)
    train = common.load_and_pack(dsn, train_dir / "train", TRAIN_IMAGES, TRAIN_PACKED,
                                 watch=watch)
    test = common.load_and_pack(dsn, test_dir / "test", TEST_IMAGES, TEST_PACKED,
                                training_table=TRAIN_PACKED, watch=watch)
    return train, test


def make_grid(dsn: str, optimizers: dict[str, Any], epochs: int) -> list[dict]:
    archs = {name: build() for name, build in common.ARCHITECTURES.items()}
    ids = common.load_architectures(dsn, ARCH_TABLE, archs)
    common.generate_grid(dsn, ARCH_TABLE, MST_TABLE, list(ids.values()),
                         {**COMPILE_GRID, "optimizer_params_list": [optimizers]},
                         {"batch_size": [64, 128], "epochs": [epochs]})
    return common.read_configs(dsn, MST_TABLE, ARCH_TABLE)


def results(dsn: str, configs: list[dict]) -> list[dict]:
    """Every configuration's final metrics from ``<out>_info``, best test accuracy first."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL(
            "SELECT mst_key, training_metrics_final, validation_metrics_final, "
            "training_loss_final, validation_loss_final, validation_metrics "
            "FROM {}").format(sql.Identifier(OUTPUT + "_info")))
        info = {row[0]: row[1:] for row in cur.fetchall()}
        cur.execute(sql.SQL("SELECT metrics_iters FROM {}").format(
            sql.Identifier(OUTPUT + "_summary")))
        metrics_iters = cur.fetchone()[0]
    conn.close()
    rows = []
    for config in configs:
        train_acc, test_acc, train_loss, test_loss, curve = info[config["mst_key"]]
        rows.append({"mst_key": config["mst_key"], "arch": config["arch"],
                     **common.describe_config(config), "train_acc": train_acc,
                     "test_acc": test_acc, "train_loss": train_loss, "test_loss": test_loss,
                     "test_acc_curve": dict(zip(metrics_iters, curve or [], strict=False))})
    return sorted(rows, key=lambda r: -(r["test_acc"] or 0.0))


def unit_rates(dsn: str, configs: list[dict], last_iteration_only: bool) -> dict[str, float]:
    """Training images/s of one segment per ``arch/bs``, from ``<out>_progress``."""
    by_key = {c["mst_key"]: f"{c['arch']}/bs{common.describe_config(c)['bs']}"
              for c in configs}
    epochs = {c["mst_key"]: common.describe_config(c)["epochs"] for c in configs}
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT iteration, mst_key, images, seconds FROM {}").format(
            sql.Identifier(OUTPUT + "_progress")))
        rows = cur.fetchall()
    conn.close()
    last = max(r[0] for r in rows)
    sums: dict[str, list[float]] = {}
    for iteration, mst, images, seconds in rows:
        if last_iteration_only and iteration != last:
            continue
        acc = sums.setdefault(by_key[mst], [0.0, 0.0])
        acc[0] += images * epochs[mst]
        acc[1] += seconds
    return {key: images / seconds for key, (images, seconds) in sums.items()}


def calibrate(args: argparse.Namespace) -> dict:
    """Time both architectures on a 10K subset; extrapolate the full run."""
    watch = common.Stopwatch()
    with common.private_server(args.segments, keep=args.keep_server) as dsn:
        train, test = prepare(dsn, args, CALIBRATION_IMAGES, watch)
        configs = make_grid(dsn, {"optimizer": ["Adam"], "lr": [1e-3]}, 1)
        progress = Progress(dsn, OUTPUT)
        with watch("train"):
            fit_multiple_model(dsn, TRAIN_PACKED, OUTPUT, MST_TABLE, 2,
                               validation_table=TEST_PACKED, metrics_compute_frequency=1,
                               seed=args.seed, listener=progress)
        rates = unit_rates(dsn, configs, last_iteration_only=True)
        rows = results(dsn, configs)
    eval_s = progress.iterations[-1]["after_last_unit_s"]  # the first one also traces
    # One evaluation: every configuration over train + test, spread over the segments.
    eval_rate = len(configs) * (train + test) / (eval_s * args.segments)
    load_rate = (train + test) / sum(v for k, v in watch.seconds.items()
                                     if k.startswith(("load", "pack")))
    # Worker seconds leave out per-hop overhead and end-of-iteration idling: + 5%.
    per_iteration = 1.05 * sum(FULL_TRAIN * args.epochs / rates[f"{arch}/bs{bs}"]
                               for arch in common.ARCHITECTURES for bs in (64, 128)
                               for _ in range(4)) / args.segments
    per_evaluation = 16 * (FULL_TRAIN + FULL_TEST) / (eval_rate * args.segments)
    fixed = (FULL_TRAIN + FULL_TEST) / load_rate + 60.0  # + planning, warm-up, traces

    def total(iterations: int, frequency: int) -> float:
        evaluations = len({i for i in range(1, iterations + 1)
                           if i % frequency == 0 or i == iterations})
        return fixed + iterations * per_iteration + evaluations * per_evaluation

    budget = args.budget_min * 60
    fitting = [i for i in range(1, 40) if total(i, args.frequency) * 1.1 <= budget]
    # On a shared machine the backends got only part of the cores; an idle machine
    # would give each segment a whole core: scale by the share they got.
    share = progress.cpu_share(args.segments) or 1.0
    fitting_idle = [i for i in range(1, 40)
                    if total(i, args.frequency) * share * 1.1 <= budget]
    estimate = {
        "cpu_share_during_calibration": share,
        "full_run_s_idle_machine": total(args.iterations, args.frequency) * share,
        "max_iterations_in_budget_idle_machine": max(fitting_idle) if fitting_idle else 0,
        "train_img_per_s_per_segment": rates, "eval_img_per_s_per_segment": eval_rate,
        "load_pack_img_per_s": load_rate, "full_load_pack_s": (FULL_TRAIN + FULL_TEST)
        / load_rate, "full_iteration_s": per_iteration, "full_evaluation_s": per_evaluation,
        "full_run_s": total(args.iterations, args.frequency),
        "max_iterations_in_budget_with_10pct_margin": max(fitting) if fitting else 0,
    }
    print()
    print(f"Calibration on {train} training / {test} test images "
          f"(phases: {format_phases(watch.seconds)})")
    common.print_table(["arch/batch", "train img/s per segment"], list(rates.items()))
    print(f"evaluation: {eval_rate:.0f} img/s per segment; load + pack: {load_rate:.0f} img/s")
    print("calibration accuracies after 2 iterations: "
          + ", ".join(f"{r['arch']}/bs{r['bs']} {r['test_acc']:.3f}" for r in rows))
    print()
    print("Extrapolated full run (60K train, 10K test, 16 configurations, "
          f"{args.segments} segments)")
    common.print_table(["phase", "s (machine as loaded now)", f"s (idle machine, x{share:.2f})"], [
        ["load + pack 70K images", estimate["full_load_pack_s"],
         estimate["full_load_pack_s"] * share],
        ["one iteration (16 configs x 60K images)", per_iteration, per_iteration * share],
        ["one evaluation (16 configs x 70K images)", per_evaluation, per_evaluation * share],
        [f"total: {args.iterations} iterations, evaluate every {args.frequency}",
         estimate["full_run_s"], estimate["full_run_s_idle_machine"]],
    ])
    print(f"the segment backends got {share:.2f} of {args.segments} cores during calibration")
    print(f"full run estimate: {estimate['full_run_s'] / 60:.1f} min as loaded now, "
          f"{estimate['full_run_s_idle_machine'] / 60:.1f} min on an idle machine "
          f"(budget {args.budget_min:.0f} min); most iterations within budget (10% margin): "
          f"{estimate['max_iterations_in_budget_with_10pct_margin']} as loaded now, "
          f"{estimate['max_iterations_in_budget_idle_machine']} idle")
    return {"calibration": {"phases_s": watch.seconds, "results": rows}, "estimate": estimate}


def full_run(args: argparse.Namespace) -> dict:
    watch = common.Stopwatch()
    started = time.perf_counter()
    with common.private_server(args.segments, keep=args.keep_server) as dsn:
        train, test = prepare(dsn, args, args.limit, watch)
        configs = make_grid(dsn, COMPILE_GRID["optimizer_params_list"][0], args.epochs)
        common.say(f"training {len(configs)} configurations for {args.iterations} iterations "
                   f"({args.epochs} epoch(s) per hop), evaluating every {args.frequency}")
        progress = Progress(dsn, OUTPUT)
        with watch("train + evaluate"):
            fit_multiple_model(dsn, TRAIN_PACKED, OUTPUT, MST_TABLE, args.iterations,
                               validation_table=TEST_PACKED,
                               metrics_compute_frequency=args.frequency, seed=args.seed,
                               listener=progress)
        rows = results(dsn, configs)
        rates = unit_rates(dsn, configs, last_iteration_only=False)
    wall = time.perf_counter() - started
    evaluation = sum(i["after_last_unit_s"] for i in progress.iterations)
    share = progress.cpu_share(args.segments)
    print()
    print(f"Fashion-MNIST: {train} training / {test} test images, {len(configs)} "
          f"configurations, {args.iterations} iterations, {args.segments} segments")
    work = sum(v for k, v in watch.seconds.items() if k != "write PNGs")
    print(f"phases: {format_phases(watch.seconds)}; of training, evaluation + commits "
          f"{evaluation:.0f} s")
    print(f"load + pack + train + evaluate: {work:.0f} s = {work / 60:.1f} min; whole run "
          f"(with server start-up and PNG writing) {wall:.0f} s = {wall / 60:.1f} min")
    if share is not None:
        print(f"the segment backends got {share:.2f} of {args.segments} cores while training "
              "(less than 1.0: the machine was shared)")
    common.print_table(
        ["mst", "arch", "bs", "opt", "lr", "train acc", "test acc", "train loss", "test loss"],
        [[r["mst_key"], r["arch"], r["bs"], r["opt"], r["lr"], r["train_acc"], r["test_acc"],
          r["train_loss"], r["test_loss"]] for r in rows])
    best = rows[0]
    curve = ", ".join(f"it {i}: {acc:.4f}" for i, acc in best["test_acc_curve"].items())
    print(f"best: mst {best['mst_key']} ({best['arch']}, bs {best['bs']}, {best['opt']}, "
          f"lr {best['lr']}): test accuracy {best['test_acc']:.4f} (target >= 0.90, "
          f"stretch 0.92); test accuracy by iteration: {curve}")
    print(f"load + pack + train + evaluate {work / 60:.1f} min (target <= 45)")
    return {"images": {"train": train, "test": test}, "phases_s": watch.seconds,
            "evaluation_s": evaluation, "wall_s": wall, "load_pack_train_eval_s": work,
            "results": rows, "best": best,
            "train_img_per_s_per_segment": rates, "iterations": progress.iterations,
            "cpu_share": share}


def format_phases(seconds: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.0f} s" for name, value in seconds.items())


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.limit is not None and args.limit < 600:
        raise SystemExit("--limit must be at least 600")
    common.say(f"bench_accuracy: {'calibration' if args.calibrate else 'run'}, "
               f"limit {args.limit or 'none'}, {args.iterations} iterations, "
               f"frequency {args.frequency}, {args.segments} segments")
    result: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()},
                              "machine": common.machine()}
    result.update(calibrate(args) if args.calibrate else full_run(args))
    path = common.write_result("bench_accuracy-calibration" if args.calibrate
                               else "bench_accuracy", result)
    common.say(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
