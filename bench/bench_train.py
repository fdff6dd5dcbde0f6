"""Training throughput: gpdl's model hopper parallelism vs plain Keras after an export.

The same configurations on the same packed Fashion-MNIST data are trained

(a) by ``fit_multiple_model`` on the embedded server's segments, or with
    ``--dsn`` on that server's (a Greenplum cluster's primary segments): each
    segment backend trains on the rows it holds, one TensorFlow thread per segment;
(b) by plain Keras in this one process on numpy arrays exported from the packed
    table with psycopg2 (normalized, one-hot), one configuration after another,
    the same epochs and batch sizes, TensorFlow's default threads;

and (c) MADlib's fixed rotation with synchronous rounds is compared with gpdl's
asynchronous scheduler by replaying the unit times *measured* in (a) through
``scheduler.simulate`` for subsets of the configurations whose count is not a
multiple of the segment count.

Throughput counts training images only: evaluation is excluded on both sides
(gpdl evaluates only after the last iteration here; that phase is timed apart).
gpdl's training phase runs from the driver's start (its control session's
``backend_start``) to the last unit, so it *includes* each segment backend's
start-up (TensorFlow import, the partition's first transfer and decode) and
every per-hop cost; the baseline's fit time excludes the TensorFlow import and
the export, which are reported beside it. End to end, what a user waits for is
compared too: gpdl from the fit call to its last metric (planning and the final
evaluation included) against export + TensorFlow import + fit + evaluate.

Per-hop overhead: a unit's driver-side time is rebuilt from the listener's
timestamps (a unit starts when both its segment and its configuration became
free, or its iteration began), and the overhead is that time minus the seconds
the worker measured around build + set weights + fit + get weights.

Run::

    .venv/bin/python bench/bench_train.py            # default: 20K images, 4 configs
    .venv/bin/python bench/bench_train.py --quick    # CI smoke size (< 2 min)
    .venv/bin/python bench/bench_train.py --dsn postgresql://gpadmin@127.0.0.1:7000/gpdl
"""

from __future__ import annotations

import argparse
import itertools
import re
import resource
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
from psycopg2 import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from gpdl_backend import keras_model, selection
from gpdl_backend.mop.job import fit_multiple_model
from gpdl_backend.mop.scheduler import FixedRotationScheduler, MopScheduler, Unit, simulate

ARCH_TABLE, MST_TABLE, OUTPUT = "bench_arch", "bench_mst", "bench_out"
TRAIN_IMAGES, TRAIN_PACKED = "bench_train_images", "bench_train_packed"
TABLES = (ARCH_TABLE, MST_TABLE, OUTPUT, TRAIN_IMAGES, TRAIN_PACKED)  # prefixes, for --dsn


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_job_options(parser)
    common.add_server_options(parser)
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the segment backends during (a); needs py-spy")
    return job_sizes(parser.parse_args(argv))


def add_job_options(parser: argparse.ArgumentParser) -> None:
    """The training job's options (shared with bench_segments.py)."""
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke size: 2,000 images, 1 iteration")
    parser.add_argument("--images", type=int, default=None,
                        help="Fashion-MNIST training images (default 20000; quick 2000)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="MOP iterations = epochs of the baseline (default 2; quick 1)")
    parser.add_argument("--archs", default="cnn,vgg3",
                        help=f"architectures, from {sorted(common.ARCHITECTURES)}")
    parser.add_argument("--batch-sizes", default="64,128")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=common.DEFAULT_DATA_DIR,
                        help=f"cache of written image files (default {common.DEFAULT_DATA_DIR})")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds of the measurements, for a noisy machine. Defaults to 1")


def job_sizes(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in the sizes left unset (``--quick`` or full)."""
    args.images = args.images or (2000 if args.quick else 20000)
    args.iterations = args.iterations or (1 if args.quick else 2)
    return args


# --- (b) plain Keras ----------------------------------------------------------------
def import_tensorflow() -> float:
    """Import Keras and TensorFlow in this process; the seconds it took (a user pays it)."""
    started = time.perf_counter()
    keras_model.import_keras()
    import tensorflow  # noqa: F401

    return time.perf_counter() - started


def keras_baseline(dsn: str, configs: list[dict], iterations: int, seed: int,
                   import_s: float) -> dict:
    """Export the packed table, then fit each configuration in this process."""
    keras = keras_model.import_keras()
    watch = common.Stopwatch()
    with watch("export"):
        pixels, labels, summary = common.export_packed(dsn, TRAIN_PACKED)
        x = pixels.astype(np.float32) / np.float32(summary["normalizing_const"])
        one_hot = np.eye(summary["num_classes"], dtype=np.float32)[labels]
    per_config = []
    for config in configs:
        params = selection.parse_compile_params(config["compile_params"])
        fit = selection.parse_fit_params(config["fit_params"])
        targets = labels if params.sparse_labels else one_hot
        keras.utils.set_random_seed(seed)
        cpu_started = _cpu_seconds()
        started = time.perf_counter()
        model = keras_model.build_model(config["model_arch"])
        model.compile(**selection.compile_kwargs(params))
        model.fit(x, targets, **{**selection.fit_kwargs(fit),
                                 "epochs": fit.epochs * iterations})
        trained = time.perf_counter()
        cpu = _cpu_seconds() - cpu_started
        result = model.evaluate(x, targets, batch_size=1024, verbose=0, return_dict=True)
        evaluated = time.perf_counter()
        images = len(x) * fit.epochs * iterations
        per_config.append({"mst_key": config["mst_key"], "images": images,
                           "train_s": trained - started, "eval_s": evaluated - trained,
                           "train_cpu_s": cpu, "loss": result["loss"]})
        common.say(f"  (b) mst {config['mst_key']}: {images} images in "
                   f"{trained - started:.1f} s = {images / (trained - started):.0f} img/s")
    return {"import_s": import_s, "export_s": watch.seconds["export"],
            "configs": per_config, "images": sum(c["images"] for c in per_config),
            "train_s": sum(c["train_s"] for c in per_config),
            "eval_s": sum(c["eval_s"] for c in per_config),
            "train_cpu_s": sum(c["train_cpu_s"] for c in per_config)}


def _cpu_seconds() -> float:
    """CPU seconds of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- (a) gpdl MOP ---------------------------------------------------------------------
@dataclass
class _UnitDone:
    at: float
    iteration: int
    config: int
    segment: int


class JobClock:
    """A listener that timestamps the driver's events, and finds when the driver began."""

    _UNIT = re.compile(r"mst (\d+) on segment (\d+)")

    def __init__(self, dsn: str, output: str, total_units: int = 0) -> None:
        self.total_units = total_units
        self.units: list[_UnitDone] = []
        self.iterations: list[float] = []
        self.finished_at: float | None = None
        self.driver_started: float | None = None
        self._dsn, self._output = dsn, output
        self.cpu = common.BackendCpu(dsn, output)

    def __call__(self, event: Any) -> None:
        now = time.time()
        if event.kind == "unit":
            if self.driver_started is None:
                self.driver_started = common.driver_started(self._dsn, self._output)
            config, segment = map(int, self._UNIT.search(event.detail).groups())
            self.units.append(_UnitDone(now, event.iteration, config, segment))
            self.cpu.sample()
            common.say(f"  (a) unit {len(self.units)}/{self.total_units or '?'}: iteration "
                       f"{event.iteration + 1}, mst {config} on segment {segment}")
        elif event.kind == "iteration":
            self.iterations.append(now)
        elif event.kind == "finished":
            self.finished_at = now
        elif event.kind == "retry":
            common.say(f"  (a) retry: {event.detail}")


def unit_durations(clock: JobClock, started: float) -> dict[tuple[int, int, int], dict]:
    """Each unit's driver-side start and end, rebuilt from completion times.

    The driver assigns a unit as soon as its segment and its configuration are
    both free (the scheduler is work-conserving and the main loop reacts to each
    result at once), so a unit started at the latest of: the previous unit's end
    on its segment, its configuration's previous end, its iteration's start.
    """
    iteration_start = [started, *clock.iterations]
    segment_free: dict[int, float] = {}
    config_free: dict[int, float] = {}
    out = {}
    for unit in sorted(clock.units, key=lambda u: u.at):
        begin = max(segment_free.get(unit.segment, started),
                    config_free.get(unit.config, started),
                    iteration_start[min(unit.iteration, len(iteration_start) - 1)])
        first = unit.segment not in segment_free
        out[(unit.iteration, unit.config, unit.segment)] = {
            "start": begin, "end": unit.at, "seconds": unit.at - begin, "first": first}
        segment_free[unit.segment] = config_free[unit.config] = unit.at
    return out


def mop_run(dsn: str, output: str, configs: list[dict], iterations: int, seed: int,
            profile: bool) -> dict:
    """``fit_multiple_model`` with an instrumented listener; timings from it and the tables."""
    segments = common.probe(dsn).num_segments
    clock = JobClock(dsn, output, len(configs) * segments * iterations)
    profiler = _Profiler(dsn, output) if profile else None
    if profiler:
        profiler.start()
    called = time.time()
    fit_multiple_model(dsn, TRAIN_PACKED, output, MST_TABLE, iterations,
                       metrics_compute_frequency=iterations, seed=seed, listener=clock)
    returned = time.time()
    clock.cpu.close()
    if profiler:
        profiler.stop()
    started = clock.driver_started or called
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT iteration, mst_key, segment, images, seconds FROM {} "
                            "ORDER BY finished_at").format(sql.Identifier(output + "_progress")))
        progress = cur.fetchall()
    conn.close()
    epochs = {c["mst_key"]: selection.parse_fit_params(c["fit_params"]).epochs for c in configs}
    units = unit_durations(clock, started)
    for iteration, mst, segment, images, seconds in progress:
        unit = units[(iteration, mst, segment)]
        unit.update(images=images * epochs[mst], worker_s=seconds,
                    overhead_s=unit["seconds"] - seconds)
    last_unit = max(u.at for u in clock.units)
    # Between an iteration's last unit and its "iteration" event: evaluation + commit.
    gaps = []
    for index, ended in enumerate(clock.iterations):
        in_iteration = [u.at for u in clock.units if u.iteration == index]
        if in_iteration:
            gaps.append(ended - max(in_iteration))
    train_s = last_unit - started - sum(gaps[:-1])
    steady = [u for u in units.values() if not u["first"]]
    first = [u for u in units.values() if u["first"]]
    busy = sum(u["seconds"] for u in units.values())
    result = {
        "planning_s": started - called, "train_s": train_s,
        "eval_s": gaps[-1] if gaps else 0.0, "total_s": returned - called,
        "images": sum(u["images"] for u in units.values()),
        "segment_utilization": busy / (train_s * len({k[2] for k in units})),
        "train_cpu_s": clock.cpu.seconds,
        "first_unit_overhead_s": [u["overhead_s"] for u in first],
        "steady_overhead_s": [u["overhead_s"] for u in steady],
        "steady_overhead_pct": 100 * sum(u["overhead_s"] for u in steady)
        / max(1e-9, sum(u["seconds"] for u in steady)),
        "units": {f"{k[0]}/{k[1]}/{k[2]}": v for k, v in units.items()},
    }
    # Warm-up: what a segment's first unit cost beyond a later unit's overhead.
    typical = statistics.median(result["steady_overhead_s"]) if steady else 0.0
    result["warmup_s"] = statistics.mean(u["overhead_s"] - typical for u in first)
    if profiler:
        result["profile"] = profiler.report()
    return result


class _Profiler:
    """py-spy on each segment backend of a job, while it runs (``--profile``)."""

    def __init__(self, dsn: str, output: str) -> None:
        self.dsn, self.output = dsn, output
        self.processes: dict[int, Any] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._attach, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _attach(self) -> None:
        import shutil
        import subprocess

        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        common.OUT_DIR.mkdir(parents=True, exist_ok=True)
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        engine = common.probe(self.dsn)
        while not self.stopping.is_set():
            with conn.cursor() as cur:
                for pid in common.session_pids(cur, engine, f"gpdl:{self.output}:seg"):
                    if pid not in self.processes:
                        path = common.OUT_DIR / f"pyspy-{pid}.txt"
                        self.processes[pid] = (subprocess.Popen(
                            [spy, "record", "-p", str(pid), "-r", "50", "-f", "raw",
                             "-o", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL), path)
            time.sleep(0.2)
        conn.close()

    def stop(self) -> None:
        import signal

        self.stopping.set()
        self.thread.join()
        for process, _ in self.processes.values():
            process.send_signal(signal.SIGINT)
        for process, _ in self.processes.values():
            process.wait(timeout=60)

    def report(self, top: int = 14) -> dict[str, float]:
        """Share of samples by the innermost frame worth naming (gpdl, Keras, TF)."""
        counts: dict[str, int] = {}
        total = 0
        for _, path in self.processes.values():
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if not count.isdigit():
                    continue
                total += int(count)
                counts[_bucket(stack)] = counts.get(_bucket(stack), 0) + int(count)
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return {name: round(100 * n / max(1, total), 1) for name, n in ranked}


_BUCKETS = (
    ("import TF (first unit)", ("import_keras", "setup_tensorflow")),
    ("gather/decode partition", ("gather (",)),
    ("build+compile model", ("cached_model",)),
    ("set weights", ("set_weights_from_bytes",)),
    ("set optimizer state", ("set_optimizer_state",)),
    ("get weights/opt state", ("weights_to_bytes", "optimizer_state_to_bytes")),
    ("set_random_seed", ("set_random_seed",)),
    ("fit: data adapter", ("get_data_adapter", "data_adapter", "_make_tf_dataset",
                           "get_tf_dataset", "EpochIterator")),
    ("fit: train step", ("one_step_on_iterator", "multi_step_on_iterator", "train_function",
                         "function_call", "_call (tensorflow")),
    ("evaluate", ("evaluate_unit",)),
    ("fit: other", ("fit (keras",)),
    ("train_unit other", ("train_unit",)),
)


def _bucket(stack: str) -> str:
    """The most specific bucket a collapsed stack falls in (innermost match wins)."""
    best, position = "outside train/evaluate (idle, SQL)", -1
    for name, needles in _BUCKETS:
        for needle in needles:
            found = stack.rfind(needle)
            if found > position:
                best, position = name, found
    return best


# --- (c) schedulers -------------------------------------------------------------------
def scheduler_replay(units: dict[str, dict], configs: list[int], iterations: int,
                     seed: int) -> list[dict]:
    """Makespans of fixed rotation vs the asynchronous scheduler on measured unit times."""
    times = {tuple(map(int, key.split("/"))): value["seconds"] for key, value in units.items()}
    segments = sorted({segment for _, _, segment in times})

    def unit_time(unit: Unit) -> float:
        return times[(unit.iteration, unit.config, unit.segment)]

    rows = []
    for size in range(len(segments) + 1, len(configs) + 1):
        for subset in itertools.combinations(configs, size):
            rotation = simulate(lambda s=subset: FixedRotationScheduler(
                s, segments, iterations), unit_time)
            mop = simulate(lambda s=subset: MopScheduler(s, segments, iterations, seed=seed),
                           unit_time)
            rows.append({"configs": list(subset), "multiple": size % len(segments) == 0,
                         "fixed_rotation_s": rotation, "mop_s": mop,
                         "speedup": rotation / mop})
    return rows


# --- main -----------------------------------------------------------------------------
def prepare(dsn: str, args: argparse.Namespace, folder: Path,
            watch: common.Stopwatch | None = None) -> tuple[list[dict], int]:
    """Load and pack the images, write the architectures and the grid.

    Returns:
        The configurations and the number of images packed.
    """
    images = common.load_and_pack(dsn, folder / "train", TRAIN_IMAGES, TRAIN_PACKED,
                                  watch=watch)
    archs = {name: common.ARCHITECTURES[name]() for name in args.archs.split(",")}
    ids = common.load_architectures(dsn, ARCH_TABLE, archs)
    common.generate_grid(
        dsn, ARCH_TABLE, MST_TABLE, list(ids.values()),
        {"loss": ["categorical_crossentropy"], "metrics": ["accuracy"],
         "optimizer_params_list": [{"optimizer": ["Adam"], "lr": [1e-3]}]},
        {"batch_size": [int(b) for b in args.batch_sizes.split(",")], "epochs": [1]})
    configs = common.read_configs(dsn, MST_TABLE, ARCH_TABLE)
    for config in configs:
        common.say(f"  mst {config['mst_key']}: {config['arch']} {describe(config)}")
    return configs, images


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import_s = import_tensorflow()
    where = args.dsn or f"an embedded server, {args.segments} segments"
    common.say(f"bench_train: {args.images} images, {args.iterations} iteration(s), "
               f"archs {args.archs}, batch sizes {args.batch_sizes}, on {where}, "
               f"{args.repeats} round(s)")
    result: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()},
                              "machine": common.machine(), "tf_import_s": import_s}
    folder = common.fashion_mnist_dir(args.data_dir, ("train",), args.images)
    rounds = []
    with common.database(args.dsn, args.segments, keep=args.keep_server) as dsn:
        if args.dsn:
            common.drop_tables(dsn, *TABLES)  # an earlier run's job would be refused
        engine = common.probe(dsn)
        result.update(server=engine.kind, segments=engine.num_segments)
        configs, _ = prepare(dsn, args, folder)
        for number in range(1, args.repeats + 1):
            common.say(f"round {number}: (b) plain Keras, one process, one configuration "
                       f"after another (load average {_load()})")
            baseline = keras_baseline(dsn, configs, args.iterations, args.seed, import_s)
            common.say(f"round {number}: (a) gpdl fit_multiple_model on {engine.num_segments} "
                       f"{engine.kind} segments (load average {_load()})")
            mop = mop_run(dsn, f"{OUTPUT}_{number}", configs, args.iterations, args.seed,
                          args.profile and number == args.repeats)
            rounds.append({"baseline": baseline, "mop": mop, "ratios": ratios(baseline, mop)})
        if args.dsn and not args.keep_server:
            common.drop_tables(dsn, *TABLES)
    replay = scheduler_replay(rounds[-1]["mop"]["units"], [c["mst_key"] for c in configs],
                              args.iterations, args.seed)
    result.update(configs=[{k: v for k, v in c.items() if k != "model_arch"} for c in configs],
                  rounds=rounds, replay=replay, loadavg_at_end=_load())
    report(result)
    report_replay(result)
    path = common.write_result("bench_train", result)
    common.say(f"wrote {path}")
    return result


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in common.machine()["loadavg_at_start"])


def describe(config: dict) -> str:
    fields = common.describe_config(config)
    return f"{fields['opt']} lr={fields['lr']} bs={fields['bs']} epochs={fields['epochs']}"


def ratios(base: dict, mop: dict) -> dict[str, float]:
    """Throughputs (images/s) of one round and the ratios a/b."""
    b_fit = base["images"] / base["train_s"]
    b_e2e = base["images"] / (base["train_s"] + base["export_s"] + base["import_s"])
    a_train = mop["images"] / mop["train_s"]
    a_steady = mop["images"] / (mop["train_s"] - mop["warmup_s"])
    return {
        "b_fit": b_fit, "b_e2e": b_e2e, "a_train": a_train, "a_steady": a_steady,
        "b_with_eval": base["images"] / (base["train_s"] + base["eval_s"]),
        "a_with_eval": mop["images"] / (mop["train_s"] + mop["eval_s"]),
        "a_over_b": a_train / b_fit, "a_steady_over_b": a_steady / b_fit,
        "a_over_b_e2e": a_train / b_e2e,
        # The user's wait: the fit call to its last metric, against exporting,
        # importing TensorFlow, fitting and evaluating one configuration after another.
        "b_end_to_end": base["images"] / (base["train_s"] + base["export_s"]
                                          + base["import_s"] + base["eval_s"]),
        "a_end_to_end": mop["images"] / mop["total_s"],
        "b_cpu_share": base["train_cpu_s"] / (base["train_s"] * CORES),
        "a_cpu_share": mop["train_cpu_s"] / (mop["train_s"] * CORES),
    }


CORES = common.machine()["cpus"] or 1


def report(result: dict) -> None:
    for number, one in enumerate(result["rounds"], 1):
        report_round(number, one)
    if len(result["rounds"]) > 1:
        print()
        print("All rounds (ratio a/b = gpdl training phase incl. warm-up / Keras fit)")
        common.print_table(
            ["round", "b img/s", "a img/s", "a/b", "a/b w/o warm-up", "overhead %"],
            [[n, r["ratios"]["b_fit"], r["ratios"]["a_train"], r["ratios"]["a_over_b"],
              r["ratios"]["a_steady_over_b"], r["mop"]["steady_overhead_pct"]]
             for n, r in enumerate(result["rounds"], 1)])
        medians = {key: statistics.median(r["ratios"][key] for r in result["rounds"])
                   for key in ("a_over_b", "a_steady_over_b")}
        print(f"median a/b: {medians['a_over_b']:.2f}; median a/b without warm-up: "
              f"{medians['a_steady_over_b']:.2f}")
    print()


def report_round(number: int, one: dict) -> None:
    base, mop, r = one["baseline"], one["mop"], one["ratios"]
    print()
    print(f"Round {number}: throughput (training images/s; evaluation excluded unless stated)")
    common.print_table(["run", "images", "seconds", "img/s", "ratio to (b) fit"], [
        ["(b) Keras fit (after export, TF imported)", base["images"], base["train_s"],
         r["b_fit"], 1.0],
        ["(b) Keras export + TF import + fit", base["images"],
         base["train_s"] + base["export_s"] + base["import_s"], r["b_e2e"],
         r["b_e2e"] / r["b_fit"]],
        ["(a) gpdl MOP training phase (incl. warm-up)", mop["images"], mop["train_s"],
         r["a_train"], r["a_over_b"]],
        ["(a) gpdl MOP without backend warm-up", mop["images"],
         mop["train_s"] - mop["warmup_s"], r["a_steady"], r["a_steady_over_b"]],
        ["(b) Keras fit + evaluate (train set)", base["images"],
         base["train_s"] + base["eval_s"], r["b_with_eval"], r["b_with_eval"] / r["b_fit"]],
        ["(a) gpdl MOP train + evaluate (train set)", mop["images"],
         mop["train_s"] + mop["eval_s"], r["a_with_eval"], r["a_with_eval"] / r["b_fit"]],
        ["(b) end to end: export + TF import + fit + evaluate", base["images"],
         base["images"] / r["b_end_to_end"], r["b_end_to_end"], r["b_end_to_end"] / r["b_fit"]],
        ["(a) end to end: fit call to last metric", mop["images"], mop["total_s"],
         r["a_end_to_end"], r["a_end_to_end"] / r["b_fit"]],
    ])
    print(f"ratio a/b end to end (fit call to last metric):       "
          f"{r['a_end_to_end'] / r['b_end_to_end']:.2f}  (target >= 1.0)")
    print(f"ratio a/b (training phase incl. warm-up vs Keras fit): {r['a_over_b']:.2f}  "
          f"(target >= 1.0)")
    print(f"ratio a/b (without warm-up vs Keras fit):              {r['a_steady_over_b']:.2f}")
    print(f"ratio a/b (training phase vs Keras export+import+fit): {r['a_over_b_e2e']:.2f}")
    print(f"share of the {CORES} cores each side got (1.0 = all, less on a shared machine): "
          f"(b) {r['b_cpu_share']:.2f}, (a) {r['a_cpu_share']:.2f}")
    print()
    steady = mop["steady_overhead_s"]
    print("Per-hop overhead (driver-side unit time - worker-measured seconds)")
    common.print_table(["what", "value"], [
        ["units after each segment's first", len(steady)],
        ["overhead per hop, median s", statistics.median(steady) if steady else None],
        ["overhead per hop, max s", max(steady) if steady else None],
        ["overhead % of unit time (steady)", mop["steady_overhead_pct"]],
        ["segment warm-up s (TF import, first transfer)", mop["warmup_s"]],
        ["planning s (checks, initial weights)", mop["planning_s"]],
        ["final evaluation s", mop["eval_s"]],
        ["segment utilization in training phase", mop["segment_utilization"]],
    ])
    print(f"per-hop overhead: {mop['steady_overhead_pct']:.2f}% of unit time (target < 5%)")
    if "profile" in mop:
        print()
        print("Where the segment backends spent their samples (py-spy, % of all samples)")
        common.print_table(["bucket", "%"], list(mop["profile"].items()))


def report_replay(result: dict) -> None:
    print("(c) fixed rotation (synchronous rounds) vs asynchronous MOP scheduler, "
          "replaying the unit times measured in (a), last round")
    common.print_table(["configs", "multiple of #segments", "fixed rotation s", "MOP s",
                        "rotation/MOP"],
                       [[",".join(map(str, r["configs"])), r["multiple"],
                         r["fixed_rotation_s"], r["mop_s"], r["speedup"]]
                        for r in result["replay"]])
    everything = [r for r in result["replay"] if len(r["configs"]) == len(result["configs"])]
    if everything:
        print(f"check: replaying all {len(result['configs'])} configurations gives "
              f"{everything[0]['mop_s']:.2f} s; the real run's training phase took "
              f"{result['rounds'][-1]['mop']['train_s']:.2f} s")
    odd = [r["speedup"] for r in result["replay"] if not r["multiple"]]
    if odd:
        print(f"not a multiple of #segments: MOP finishes {min(odd):.2f}x-{max(odd):.2f}x "
              f"sooner than fixed rotation (mean {statistics.mean(odd):.2f}x)")


if __name__ == "__main__":
    main()
