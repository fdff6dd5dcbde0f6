"""Segment speed-up: the same load and training job on a 1-segment and a 2-segment cluster.

On each Greenplum cluster (``--dsn-1``, ``--dsn-2``), in turn:

- ``load_images`` loads the Fashion-MNIST training PNGs (one statement on all
  primary segments) and ``training_preprocessor`` packs them;
- ``fit_multiple_model`` trains the configurations of bench_train.py (same
  architectures, batch sizes, iterations and seed) with model hopper parallelism.

Printed per cluster: seconds and images/s of the load and of the training phase
(from the driver's start to the last unit, segment warm-up included, as in
bench_train.py; also without the warm-up); then the speed-up, the 2-segment
throughput over the 1-segment one (ideal: 2.0, on a machine with a free core
per segment). Both clusters run on this machine one after the other, so each
gets all its cores; ``--repeats`` alternates them for a noisy machine.

``--start-1`` starts the 1-segment cluster with the shared script
(``GP_PORT=7200 GP_DATA=/home/gpadmin/gp1 GP_SEGMENTS=1 cluster start``) and
stops it at the end if it was not running before.

Run::

    .venv/bin/python bench/bench_segments.py --start-1 \\
        --dsn-2 postgresql://gpadmin@127.0.0.1:7000/gpdl           # 20K images, 4 configs
    .venv/bin/python bench/bench_segments.py --quick --start-1 \\
        --dsn-2 postgresql://gpadmin@127.0.0.1:7000/gpdl           # smoke size
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import bench_train as train

CLUSTER = common.ROOT.parent / "shared" / "greenplum" / "cluster"
ONE_SEGMENT = {"GP_PORT": "7200", "GP_DATA": "/home/gpadmin/gp1", "GP_SEGMENTS": "1"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    train.add_job_options(parser)
    parser.add_argument("--dsn-1", default=None, help="the 1-segment cluster")
    parser.add_argument("--dsn-2", required=True, help="the 2-segment cluster")
    parser.add_argument("--start-1", action="store_true",
                        help=f"start the 1-segment cluster with {CLUSTER} "
                             f"({' '.join(f'{k}={v}' for k, v in ONE_SEGMENT.items())})")
    parser.add_argument("--keep-tables", action="store_true",
                        help="keep the benchmark's tables on both clusters")
    args = train.job_sizes(parser.parse_args(argv))
    if (args.dsn_1 is None) == (not args.start_1):
        parser.error("give one of --dsn-1 and --start-1")
    return args


# --- the 1-segment cluster ------------------------------------------------------------
def cluster(command: str) -> subprocess.CompletedProcess[str]:
    """Run the shared cluster script on the 1-segment cluster; its output is printed."""
    common.say(f"{' '.join(f'{k}={v}' for k, v in ONE_SEGMENT.items())} {CLUSTER} {command}")
    done = subprocess.run([str(CLUSTER), command], env={**os.environ, **ONE_SEGMENT},
                          capture_output=True, text=True, check=False)
    for line in (done.stdout + done.stderr).splitlines():
        print(f"    {line}", flush=True)
    return done


def start_one_segment() -> tuple[str, bool]:
    """Start the 1-segment cluster (~50 s when new); its DSN and whether it was up already."""
    was_up = cluster("status").returncode == 0
    done = cluster("start")
    if done.returncode != 0:
        raise SystemExit(f"the 1-segment cluster did not start (exit {done.returncode})")
    return done.stdout.strip().splitlines()[-1], was_up


# --- one cluster ----------------------------------------------------------------------
def run_on(dsn: str, args: argparse.Namespace, folder: Path, number: int) -> dict[str, Any]:
    """Load, pack and train on one cluster; seconds and images of each phase."""
    with common.database(dsn) as dsn:
        segments = common.probe(dsn).num_segments
        common.drop_tables(dsn, *train.TABLES)
        common.say(f"round {number}, {segments} segment(s): load and pack")
        watch = common.Stopwatch()
        configs, images = train.prepare(dsn, args, folder, watch)
        common.say(f"round {number}, {segments} segment(s): train {len(configs)} "
                   f"configurations, {args.iterations} iteration(s)")
        mop = train.mop_run(dsn, f"{train.OUTPUT}_{number}", configs, args.iterations,
                            args.seed, profile=False)
        if not args.keep_tables:
            common.drop_tables(dsn, *train.TABLES)
    return {"segments": segments, "images_loaded": images,
            "load_s": watch.seconds[f"load {train.TRAIN_IMAGES}"],
            "pack_s": watch.seconds[f"pack {train.TRAIN_PACKED}"],
            "train_images": mop["images"], "train_s": mop["train_s"],
            "steady_s": mop["train_s"] - mop["warmup_s"], "job_s": mop["total_s"]}


def throughputs(one: dict[str, Any]) -> dict[str, float]:
    """Images/s of the load, the training phase (with and without warm-up), the whole job."""
    return {"load": one["images_loaded"] / one["load_s"],
            "train": one["train_images"] / one["train_s"],
            "steady": one["train_images"] / one["steady_s"],
            "job": one["train_images"] / one["job_s"]}


# --- main -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started_here = False
    dsn_1 = args.dsn_1
    if args.start_1:
        dsn_1, was_up = start_one_segment()
        started_here = not was_up
    common.say(f"bench_segments: {args.images} images, {args.iterations} iteration(s), "
               f"archs {args.archs}, batch sizes {args.batch_sizes}, {args.repeats} round(s); "
               f"1-segment {dsn_1}, 2-segment {args.dsn_2}")
    folder = common.fashion_mnist_dir(args.data_dir, ("train",), args.images)
    rounds: list[dict[str, Any]] = []
    try:
        for number in range(1, args.repeats + 1):
            order = [("1", dsn_1), ("2", args.dsn_2)]
            if number % 2 == 0:  # alternate, so that drift in the machine's load evens out
                order.reverse()
            runs = {label: run_on(dsn, args, folder, number) for label, dsn in order}
            rounds.append(runs)
            report_round(number, runs)
    finally:
        if started_here:
            cluster("stop")
    result: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()},
                              "machine": common.machine(), "rounds": rounds}
    if len(rounds) > 1:
        medians = {key: statistics.median(_ratios(r)[key] for r in rounds)
                   for key in ("load", "train", "steady", "job")}
        result["median_speedup"] = medians
        print("median speed-up over the rounds (2-segment / 1-segment throughput): "
              + ", ".join(f"{key} {value:.2f}" for key, value in medians.items()))
    common.say(f"wrote {common.write_result('bench_segments', result)}")
    return result


def _ratios(runs: dict[str, dict]) -> dict[str, float]:
    one, two = throughputs(runs["1"]), throughputs(runs["2"])
    return {key: two[key] / one[key] for key in one}


def report_round(number: int, runs: dict[str, dict]) -> None:
    print()
    print(f"Round {number}: the same load and training job on each cluster")
    rows = []
    for label in ("1", "2"):
        one, rate = runs[label], throughputs(runs[label])
        rows.append([f"--dsn-{label}", one["segments"], one["images_loaded"], one["load_s"],
                     rate["load"], one["train_images"], one["train_s"], rate["train"],
                     rate["steady"], one["job_s"]])
    common.print_table(["cluster", "segments", "images", "load s", "load img/s",
                        "trained images", "train s", "train img/s", "w/o warm-up img/s",
                        "whole job s"], rows)
    ratio = _ratios(runs)
    print(f"segment speed-up, load (2-seg / 1-seg img/s):                {ratio['load']:.2f}")
    print(f"segment speed-up, training phase incl. warm-up:              {ratio['train']:.2f}")
    print(f"segment speed-up, training without warm-up:                  {ratio['steady']:.2f}")
    print(f"segment speed-up, whole fit_multiple_model call (incl. eval): {ratio['job']:.2f}")


if __name__ == "__main__":
    main()
