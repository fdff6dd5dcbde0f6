"""AutoML vs grid search: Hyperband and ASHA against the 16-configuration grid, one run.

The data and search space are bench_accuracy.py's: Fashion-MNIST (the test
split as validation data) and 2 CNN architectures x batch size {64, 128} x
{Adam, RMSprop} x learning rate {1e-3, 1e-4}. On one server and the same packed
tables, three searches run one after another:

1. grid: ``fit_multiple_model`` trains all 16 configurations for R iterations
   and evaluates them after the last one;
2. Hyperband: ``gpdl.madlib_keras_automl(..., 'hyperband', 'R=.., eta=..')``,
   MADlib's synchronous brackets, sampling the same space (as MADlib's grid text);
3. ASHA: ``gpdl.madlib_keras_automl(..., 'asha', 'R=.., eta=.., min_r=1,
   num_configs=..')``, by default as many configurations as Hyperband samples.

Both searches sample at random (configurations may repeat) and evaluate at the
end of each rung; every job keeps its partitions cached (``use_caching``).

Printed side by side, per method:

- configs, units: configurations made, and units used (rows of ``<out>_progress``:
  one configuration on one segment for one iteration); ``planned``: what
  ``gpdl.automl_plan`` plans (ASHA's is the fewest promotions);
- wall s: the client's, from the call to the job's end. The searches' include
  their driver process's start (``madlib_keras_automl`` spawns one), the grid's
  driver runs in this process; ``to 1st unit s`` (job start in ``<out>_summary``
  to the first unit's start) shows that part;
- s/unit: mean unit seconds (the worker's), which depend on the architectures
  and batch sizes sampled and, on a shared machine, on the CPU the run got;
  ``cpu share``: the segment backends' CPU seconds / (segments x (wall - to 1st
  unit)), 1.0 = a whole core per segment;
- idle s: over the training window (the first unit's start to the last unit's
  end, starts being ``finished_at - seconds``), the sum over segments of the
  window minus that segment's unit seconds: barriers, evaluations between units
  and per-hop overhead; idle % of segments x window;
- the best validation accuracy (each configuration's last evaluation) and its
  configuration;

then the ratios against the grid of the same run (units, wall, best accuracy
difference in points) and ASHA against Hyperband (wall, idle, units). A JSON
result (with every configuration's accuracy) goes to ``bench/out/``. R=9 by
default: with eta=3 Hyperband then samples 17 configurations, about the grid's 16.

Run::

    .venv/bin/python bench/bench_automl.py --quick      # CI size: 1,500/300 images, R=3
    .venv/bin/python bench/bench_automl.py              # 60K/10K images, R=9
    .venv/bin/python bench/bench_automl.py --limit 6000 --iterations 3
    .venv/bin/python bench/bench_automl.py --dsn postgresql://gpadmin@127.0.0.1:7000/gpdl
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
from bench_accuracy import COMPILE_GRID  # the same search space

from gpdl_backend.automl.hyperband import hyperband_schedule
from gpdl_backend.mop.job import fit_multiple_model

PREFIX = "amb_"
ARCH_TABLE, GRID_MST, GRID_OUT = "amb_arch", "amb_grid_mst", "amb_grid"
TRAIN_IMAGES, TRAIN_PACKED = "amb_train_images", "amb_train_packed"
TEST_IMAGES, TEST_PACKED = "amb_test_images", "amb_test_packed"
FIT_GRID = {"batch_size": [64, 128], "epochs": [1]}  # bench_accuracy's, one epoch per hop
QUICK = {"limit": 1500, "test_limit": 300, "iterations": 3}
FULL_ITERATIONS = 9  # with eta = 3: Hyperband samples 17 configurations, the grid has 16
POLL_SECONDS = 0.5
RUNNING_STATES = ("starting", "running")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"CI size: {QUICK['limit']} training / {QUICK['test_limit']} test "
                             f"images, R={QUICK['iterations']}")
    parser.add_argument("--limit", type=int, default=None,
                        help="training images (stratified subset). Defaults to all 60,000")
    parser.add_argument("--test-limit", type=int, default=None,
                        help="test images. Defaults to all, or limit / 6 with --limit")
    parser.add_argument("--iterations", "-R", type=int, default=None,
                        help=f"R: the grid's iterations and the searches' most per "
                             f"configuration. Defaults to {FULL_ITERATIONS}")
    parser.add_argument("--eta", type=int, default=3, help="reduction factor. Defaults to 3")
    parser.add_argument("--asha-configs", type=int, default=None,
                        help="ASHA's num_configs. Defaults to as many as Hyperband samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=common.DEFAULT_DATA_DIR)
    common.add_server_options(parser)
    return sizes(parser.parse_args(argv))


def sizes(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in the sizes left unset (``--quick`` or full)."""
    if args.quick:
        args.limit = args.limit or QUICK["limit"]
        args.test_limit = args.test_limit or QUICK["test_limit"]
        args.iterations = args.iterations or QUICK["iterations"]
    elif args.limit is not None and args.test_limit is None:
        args.test_limit = max(100, args.limit // 6)
    args.iterations = args.iterations or FULL_ITERATIONS
    return args


@dataclass
class Outcome:
    """What one search used and found."""

    method: str
    output: str
    automl_params: str | None
    configs: int
    units: int
    planned_units: int | None
    wall_s: float
    startup_s: float  # job start (its summary) to the first unit's start
    window_s: float  # first unit's start to last unit's end
    busy_s: float  # unit seconds, all segments
    idle_s: float  # segments x window - busy
    cpu_share: float | None  # backends' CPU seconds / (segments x (wall - start-up))
    best: dict[str, Any]
    statuses: dict[str, int]
    results: list[dict[str, Any]]  # every configuration, best validation accuracy first


# --- data and search space ----------------------------------------------------------
def prepare(dsn: str, args: argparse.Namespace, watch: common.Stopwatch) -> dict[str, int]:
    """PNG files (cached), both splits loaded and packed (test as validation data)."""
    with watch("write PNGs"):
        train_dir = common.fashion_mnist_dir(args.data_dir, ("train",), args.limit)
        test_dir = common.fashion_mnist_dir(args.data_dir, ("test",), args.test_limit)
    train = common.load_and_pack(dsn, train_dir / "train", TRAIN_IMAGES, TRAIN_PACKED,
                                 watch=watch)
    test = common.load_and_pack(dsn, test_dir / "test", TEST_IMAGES, TEST_PACKED,
                                training_table=TRAIN_PACKED, watch=watch)
    return {"train": train, "test": test}


def grid_text(grid: dict[str, Any]) -> str:
    """A grid as MADlib's text (a Python literal), what ``madlib_keras_automl`` takes."""
    return repr(grid)


def hyperband_configs(R: int, eta: int) -> int:
    """Configurations Hyperband samples: the ``n_i`` of every bracket's first rung."""
    return sum(rung.n_i for rung in hyperband_schedule(R, eta) if rung.i == 0)


# --- the three searches ---------------------------------------------------------------
def run_grid(dsn: str, args: argparse.Namespace, model_ids: list[int]) -> Outcome:
    """``fit_multiple_model`` on the whole grid for R iterations, evaluated after the last."""
    configs = common.generate_grid(dsn, ARCH_TABLE, GRID_MST, model_ids, COMPILE_GRID,
                                   FIT_GRID)
    common.say(f"grid: {len(configs)} configurations x {args.iterations} iterations")
    listener = UnitTicker(dsn, GRID_OUT)
    started = time.perf_counter()
    fit_multiple_model(dsn, TRAIN_PACKED, GRID_OUT, GRID_MST, args.iterations,
                       validation_table=TEST_PACKED, metrics_compute_frequency=args.iterations,
                       use_caching=True, seed=args.seed, listener=listener)
    wall = time.perf_counter() - started
    listener.cpu.close()
    outcome = measure(dsn, "grid", GRID_OUT, None, wall, listener.cpu, args.iterations)
    outcome.planned_units = len(configs) * args.iterations * common.probe(dsn).num_segments
    return outcome


def run_search(dsn: str, args: argparse.Namespace, model_ids: list[int], method: str,
               automl_params: str) -> Outcome:
    """One ``gpdl.madlib_keras_automl`` search in the background, waited for."""
    output = PREFIX + method
    planned = planned_units(dsn, method, automl_params)
    common.say(f"{method}: madlib_keras_automl '{automl_params}', {planned} units planned")
    started = time.perf_counter()
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT gpdl.madlib_keras_automl(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "validation_table => %s, use_caching => true, background => true)",
            (TRAIN_PACKED, output, ARCH_TABLE, output + "_mst", model_ids,
             grid_text(COMPILE_GRID), grid_text(FIT_GRID), method, automl_params, args.seed,
             TEST_PACKED))
        job = cur.fetchone()[0]
    conn.close()
    cpu = common.BackendCpu(dsn, job)
    state, error = wait_for_job(dsn, job, output, planned, cpu, started)
    wall = time.perf_counter() - started
    cpu.close()
    if state != "finished":
        raise SystemExit(f"{method} search {job} ended {state}: {error}")
    outcome = measure(dsn, method, output, automl_params, wall, cpu, None)
    outcome.planned_units = planned
    return outcome


class UnitTicker:
    """The grid's listener: a progress line every 20 s; samples the backends' CPU."""

    def __init__(self, dsn: str, output: str) -> None:
        self.cpu = common.BackendCpu(dsn, output)
        self.started = self.last_print = time.monotonic()

    def __call__(self, event: Any) -> None:
        if event.kind != "unit":
            return
        self.cpu.sample()
        now = time.monotonic()
        if now - self.last_print > 20:
            self.last_print = now
            common.say(f"  units {event.units_done}/{event.units_total} "
                       f"({now - self.started:.0f} s)")


def wait_for_job(dsn: str, job: str, output: str, planned: int, cpu: common.BackendCpu,
                 started: float) -> tuple[str, str | None]:
    """Poll ``gpdl.jobs`` until the job ends, a progress line every 20 s; (state, error)."""
    progress = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(output + "_progress"))
    last_print = time.perf_counter()
    with psycopg2.connect(dsn) as conn:
        conn.autocommit = True
        while True:
            with conn.cursor() as cur:
                cur.execute("SELECT state, error FROM gpdl.jobs WHERE job = %s", (job,))
                state, error = cur.fetchone()
            if state not in RUNNING_STATES:
                break
            cpu.sample()
            if time.perf_counter() - last_print > 20:
                last_print = time.perf_counter()
                with conn.cursor() as cur:
                    cur.execute(progress)
                    common.say(f"  units {cur.fetchone()[0]}/{planned} "
                               f"({last_print - started:.0f} s)")
            time.sleep(POLL_SECONDS)
    conn.close()
    return state, error


def planned_units(dsn: str, method: str, automl_params: str) -> int:
    """The units ``gpdl.automl_plan`` plans for a search on the training table."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT units FROM gpdl.automl_plan(%s, %s, %s) WHERE i IS NULL",
                    (method, automl_params, TRAIN_PACKED))
        units = cur.fetchone()[0]
    conn.close()
    return units


# --- reading a finished job -----------------------------------------------------------
def measure(dsn: str, method: str, output: str, automl_params: str | None, wall: float,
            cpu: common.BackendCpu, iterations: int | None) -> Outcome:
    """Units, segment idle time and the best configuration from a finished job's tables.

    ``iterations``: every configuration's (the grid); None reads each one's (a search).
    """
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        usage = unit_usage(cur, output)
        results = config_results(cur, output, iterations)
    conn.close()
    segments = usage.pop("segments")
    training = wall - usage["startup_s"]
    statuses: dict[str, int] = {}
    for row in results:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    return Outcome(method=method, output=output, automl_params=automl_params,
                   configs=len(results), planned_units=None, wall_s=wall,
                   cpu_share=cpu.seconds / (segments * training) if cpu.seconds else None,
                   best=results[0], statuses=statuses, results=results, **usage)


def unit_usage(cur: Any, output: str) -> dict[str, Any]:
    """Units, the training window, unit seconds and idle seconds from ``<out>_progress``."""
    cur.execute(sql.SQL(
        "SELECT segment, count(*), sum(seconds), "
        "min(extract(epoch FROM finished_at) - seconds), max(extract(epoch FROM finished_at)) "
        "FROM {} GROUP BY segment").format(sql.Identifier(output + "_progress")))
    rows = cur.fetchall()
    cur.execute(sql.SQL("SELECT extract(epoch FROM start_training_time) FROM {}").format(
        sql.Identifier(output + "_summary")))
    job_start = float(cur.fetchone()[0])
    first = min(float(r[3]) for r in rows)
    window = max(float(r[4]) for r in rows) - first
    busy = sum(float(r[2]) for r in rows)
    return {"segments": len(rows), "units": sum(r[1] for r in rows),
            "startup_s": first - job_start, "window_s": window, "busy_s": busy,
            "idle_s": len(rows) * window - busy}


def config_results(cur: Any, output: str, iterations: int | None) -> list[dict[str, Any]]:
    """Every configuration's last validation accuracy and loss, the best accuracy first."""
    done = sql.Literal(iterations) if iterations is not None else sql.SQL("i.iterations_done")
    cur.execute(sql.SQL(
        "SELECT i.mst_key, a.name, i.compile_params, i.fit_params, {}, i.status, "
        "i.validation_metrics_final, i.validation_loss_final FROM {} i "
        "JOIN {} a USING (model_id) "
        "ORDER BY i.validation_metrics_final DESC NULLS LAST, i.validation_loss_final, mst_key"
    ).format(done, sql.Identifier(output + "_info"), sql.Identifier(ARCH_TABLE)))
    results = []
    for mst, arch, compile_params, fit_params, done_iterations, status, accuracy, loss \
            in cur.fetchall():
        fields = common.describe_config({"compile_params": compile_params,
                                         "fit_params": fit_params})
        results.append({"mst_key": mst, "arch": arch, **fields, "iterations": done_iterations,
                        "status": status, "val_acc": accuracy, "val_loss": loss})
    return results


# --- report ---------------------------------------------------------------------------
def describe_best(best: dict[str, Any]) -> str:
    return (f"mst {best['mst_key']}: {best['arch']} bs{best['bs']} {best['opt']} "
            f"lr={best['lr']}, {best['iterations']} it")


def comparisons(grid: Outcome, hyperband: Outcome, asha: Outcome) -> dict[str, Any]:
    """Ratios against the grid, and ASHA against Hyperband."""
    def against_grid(run: Outcome) -> dict[str, float]:
        return {"units_ratio": run.units / grid.units, "wall_ratio": run.wall_s / grid.wall_s,
                "best_acc_diff_points": 100 * (run.best["val_acc"] - grid.best["val_acc"])}

    return {"hyperband_vs_grid": against_grid(hyperband), "asha_vs_grid": against_grid(asha),
            "asha_vs_hyperband": {"wall_ratio": asha.wall_s / hyperband.wall_s,
                                  "idle_ratio": asha.idle_s / hyperband.idle_s
                                  if hyperband.idle_s > 0 else None,
                                  "units_ratio": asha.units / hyperband.units}}


def report(runs: list[Outcome], ratios: dict[str, Any], header: str) -> None:
    print()
    print(header)
    common.print_table(
        ["method", "configs", "units", "planned", "wall s", "to 1st unit s", "s/unit",
         "idle s", "idle %", "cpu share", "best val acc", "best config"],
        [[r.method, r.configs, r.units, r.planned_units, r.wall_s, r.startup_s,
          r.busy_s / r.units, r.idle_s, 100 * r.idle_s / (r.busy_s + r.idle_s), r.cpu_share,
          r.best["val_acc"], describe_best(r.best)] for r in runs])
    print()
    common.print_table(
        ["vs grid", "units ratio", "wall ratio", "best acc diff (points)"],
        [[name.split("_")[0], value["units_ratio"], value["wall_ratio"],
          value["best_acc_diff_points"]]
         for name, value in ratios.items() if name.endswith("_vs_grid")])
    versus = ratios["asha_vs_hyperband"]
    idle = "n/a" if versus["idle_ratio"] is None else f"{versus['idle_ratio']:.3g}"
    print(f"\nASHA vs Hyperband: wall ratio {versus['wall_ratio']:.3g}, idle ratio {idle}, "
          f"units ratio {versus['units_ratio']:.3g}")
    for run in runs:
        if run.method != "grid":
            print(f"{run.method} statuses: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(run.statuses.items())))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    asha_configs = args.asha_configs or hyperband_configs(args.iterations, args.eta)
    methods = {
        "hyperband": f"R={args.iterations}, eta={args.eta}, skip_last=0",
        "asha": f"R={args.iterations}, eta={args.eta}, min_r=1, num_configs={asha_configs}, "
                "algorithm=rand",
    }
    common.say(f"bench_automl: {args.limit or 'all'} training / {args.test_limit or 'all'} "
               f"test images, R={args.iterations}, eta={args.eta}, Hyperband samples "
               f"{hyperband_configs(args.iterations, args.eta)} configurations, ASHA "
               f"{asha_configs}, on {args.dsn or f'an embedded server, {args.segments} segments'}")
    result: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()},
                              "machine": common.machine()}
    watch = common.Stopwatch()
    started = time.perf_counter()
    with common.database(args.dsn, args.segments, keep=args.keep_server) as dsn:
        if args.dsn:
            common.drop_tables(dsn, PREFIX)  # an earlier run's tables would be refused
        images = prepare(dsn, args, watch)
        archs = {name: build() for name, build in common.ARCHITECTURES.items()}
        model_ids = list(common.load_architectures(dsn, ARCH_TABLE, archs).values())
        with watch("grid"):
            runs = [run_grid(dsn, args, model_ids)]
        for method, automl_params in methods.items():
            with watch(method):
                runs.append(run_search(dsn, args, model_ids, method, automl_params))
        segments = common.probe(dsn).num_segments
        if args.dsn and not args.keep_server:
            common.drop_tables(dsn, PREFIX)
    ratios = comparisons(*runs)
    result.update(images=images, segments=segments, phases_s=watch.seconds,
                  wall_s=time.perf_counter() - started, runs=[asdict(r) for r in runs],
                  ratios=ratios)
    report(runs, ratios, f"Fashion-MNIST {images['train']} training / {images['test']} "
                         f"test images, R={args.iterations}, eta={args.eta}, {segments} "
                         f"segments")
    print(f"\nwhole bench {result['wall_s']:.0f} s; phases: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in watch.seconds.items()))
    path = common.write_result("bench_automl", result)
    common.say(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
