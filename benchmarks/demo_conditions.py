# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Does the demo converge on every machine? The full `pixelrefer demo` training and evaluation under several conditions
that change the floating-point path the way another machine would: training seeds x torch threads x the CPU kernel
families torch offers here (`ATEN_CPU_CAPABILITY`: `default`, `avx2`, `avx512`).

Prints per condition the accuracy of each question type, the zeroed-object-token control, whether the demo's targets
hold (overall >= 85 %, every question type >= 70 % and >= 20 points above the control), and the band over all
conditions. Each condition runs in its own process (the kernel family is read when torch starts) with its own demo
cache folder, so nothing is shared between conditions or read from the user's cache.

    .venv/bin/python benchmarks/demo_conditions.py                 # seeds 0 1, threads 1 2, every kernel family
    .venv/bin/python benchmarks/demo_conditions.py --seeds 0 --json demo-conditions.json
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pixelrefer_plugin.demo.trained import band_table

TARGET_OVERALL = 85.0
TARGET_PER_KIND = 70.0
TARGET_MARGIN = 20.0
KINDS = ("colour", "shape", "larger", "video")


def kernel_families() -> list[str]:
    """The values of `ATEN_CPU_CAPABILITY` this CPU can run: `default` always, `avx2` / `avx512` when supported."""
    families = ["default"]
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx2" in flags:
        families.append("avx2")
    if " avx512f" in flags and " avx512bw" in flags and " avx512vl" in flags and " avx512dq" in flags:
        families.append("avx512")
    return families


class CoreBudget:
    """At most `cores` threads of the running conditions at a time, started in the order they ask (first come, first
    served: a condition with more threads is not overtaken by smaller ones while it waits for the cores)."""

    def __init__(self, cores: int):
        self.cores = max(1, cores)
        self.free = self.cores
        self.serving = 0
        self.changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, threads: int, ticket: int):
        wanted = min(threads, self.cores)
        with self.changed:
            self.changed.wait_for(lambda: self.serving == ticket and self.free >= wanted)
            self.free -= wanted
            self.serving += 1
            self.changed.notify_all()
        try:
            yield
        finally:
            with self.changed:
                self.free += wanted
                self.changed.notify_all()


def run_one(seed: int, threads: int, root: Path) -> dict:
    """In this process: the demo with training seed `seed` and `threads` torch threads; returns its scores."""
    import torch  # the condition's process: ATEN_CPU_CAPABILITY was set before it started

    from pixelrefer_plugin.demo.trained import run_demo

    result = run_demo({"training.seed": seed}, picture=None, root=root, threads=threads)
    return {
        "scores": result.scores,
        "train_seconds": result.train_seconds,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def run_condition(seed: int, threads: int, kernels: str, work: Path) -> dict:
    """One condition in a child process with `ATEN_CPU_CAPABILITY=kernels`; returns its scores and timing."""
    root = work / f"seed{seed}-threads{threads}-{kernels}"
    # passive OpenMP waits: a condition whose threads share the cores with another's does not spin on them (the
    # thread count, and so the arithmetic, stays the condition's)
    env = {**os.environ, "ATEN_CPU_CAPABILITY": kernels, "OMP_WAIT_POLICY": "PASSIVE"}
    start = time.perf_counter()
    child = subprocess.run(
        [sys.executable, __file__, "--one", str(seed), str(threads), str(root)],
        env=env,
        capture_output=True,
        text=True,
    )
    if child.returncode != 0:
        raise RuntimeError(f"condition seed={seed} threads={threads} {kernels} failed:\n{child.stderr[-4000:]}")
    report = json.loads(child.stdout.strip().splitlines()[-1])
    return {"seed": seed, "threads": threads, "kernels": kernels, "seconds": time.perf_counter() - start, **report}


def check_targets(scores: dict[str, dict[str, float]]) -> list[str]:
    """The demo targets a condition misses (empty: all met)."""
    trained, control = scores["trained"], scores["control"]
    misses = []
    if trained["overall"] < TARGET_OVERALL:
        misses.append(f"overall {trained['overall']:.1f} < {TARGET_OVERALL:.0f}")
    for kind in KINDS:
        if trained[kind] < TARGET_PER_KIND:
            misses.append(f"{kind} {trained[kind]:.1f} < {TARGET_PER_KIND:.0f}")
        if trained[kind] < control[kind] + TARGET_MARGIN:
            misses.append(f"{kind} only {trained[kind] - control[kind]:.1f} points above the control")
    return misses


def print_report(results: list[dict]) -> bool:
    """A row per condition and the band over all of them; True when every condition meets the targets."""
    header = f"{'seed':>4} {'threads':>7} {'kernels':>8} | " + " ".join(f"{k:>7}" for k in (*KINDS, "overall"))
    header += f" | {'control':>7} | {'train s':>7} | targets"
    print(header)
    print("-" * len(header))
    all_met = True
    for result in results:
        trained, control = result["scores"]["trained"], result["scores"]["control"]
        misses = check_targets(result["scores"])
        all_met &= not misses
        cells = " ".join(f"{trained[k]:>7.1f}" for k in (*KINDS, "overall"))
        seconds = result["train_seconds"] or float("nan")
        print(
            f"{result['seed']:>4} {result['threads']:>7} {result['kernels']:>8} | {cells} | "
            f"{control['overall']:>7.1f} | {seconds:>7.0f} | {'met' if not misses else '; '.join(misses)}"
        )
    print(f"\nband over the {len(results)} conditions:\n{band_table([result['scores'] for result in results])}\n")
    print(f"every condition meets the targets: {all_met}")
    return all_met


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--one":
        print(json.dumps(run_one(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds (recipe: 0)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts")
    parser.add_argument("--kernels", nargs="+", default=None, help="ATEN_CPU_CAPABILITY values (default: all here)")
    parser.add_argument(
        "--cores",
        type=int,
        default=os.cpu_count(),
        help="cores to fill: conditions run side by side while their threads fit (default: all)",
    )
    parser.add_argument("--work", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    kernels = args.kernels or kernel_families()
    conditions = list(itertools.product(args.seeds, args.threads, kernels))
    with tempfile.TemporaryDirectory(prefix="demo-conditions-") as temporary:
        work = args.work or Path(temporary)
        print(f"{len(conditions)} conditions on {args.cores} cores, in {work}", flush=True)
        cores = CoreBudget(args.cores)

        # the conditions with the most threads first, so that the 1-thread ones fill the cores at the end
        order = sorted(range(len(conditions)), key=lambda index: -conditions[index][1])

        def run(ticket: int) -> dict:
            condition = conditions[order[ticket]]
            with cores.hold(condition[1], ticket):
                return run_condition(*condition, work)

        with ThreadPoolExecutor(len(conditions)) as pool:
            finished = dict(zip(order, pool.map(run, range(len(order))), strict=True))
        results = [finished[index] for index in range(len(conditions))]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if print_report(results) else 1


if __name__ == "__main__":
    sys.exit(main())
