"""Speed-up of each rule's jobs from 1 to 2 threads, on a finished pipeline run.

For every rule family (generated rules such as ``train_batch_*`` and ``measure_curvature_along_*``
count as one family), the job with the median wall of the last run (Snakemake's records in
``.snakemake/metadata``) is rerun with ``--force``, all chosen jobs in one Snakemake call per
setting: once with 1 thread on 1 core, once with 2 threads on 2 cores, so that the jobs run one at
a time either way; the settings alternate over ``--repeats``. Its wall and CPU are read from the job's
benchmark file after each call. A rule pays for its second thread when its speed-up is close to
2: two one-thread jobs side by side already give 2 on two cores.

Run on an idle machine after ``make reproduce`` (the forced jobs rewrite their outputs, so what
depends on them is out of date afterwards: rerun ``make reproduce`` before using the results):
``.venv/bin/python benchmarks/threads_bench.py``; ``--configfile config/smoke.yaml`` measures the
jobs of another config (its results folder, ``results/smoke``).
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from summarize_benchmarks import read_pipeline

from lossatlas.io import results_dir

FAMILIES = (r"train_batch_.*", r"measure_curvature_along_.*")


def family(rule: str) -> str:
    """The rule family of ``rule``: generated rules share one (``train_batch_*``)."""
    for pattern in FAMILIES:
        if re.fullmatch(pattern, rule):
            return pattern.replace(".*", "*")
    return rule


def benchmark_path(log: str, results: Path) -> Path:
    """The benchmark file of the job with log ``log`` under the config's folder ``results`` (the
    project's convention: ``RESULTS/logs/X.log`` → ``RESULTS/benchmarks/X.tsv``)."""
    return (results / "benchmarks" / Path(log).relative_to(results / "logs")).with_suffix(".tsv")


def read_benchmark(path: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one job's Snakemake benchmark file."""
    with open(path, newline="") as stream:
        record = next(csv.DictReader(stream, delimiter="\t"))
    return float(record["s"]), float(record["cpu_time"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metadata", type=Path, default=Path(".snakemake/metadata"))
    parser.add_argument("--profile", default="workflow/profiles/default")
    parser.add_argument("--configfile", nargs="+", default=[],
                        help="the config's files, as given to Snakemake (default: the default "
                             "config, results/config)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip", nargs="*",
                        default=["all", "claims", "dataset_sanity", "prepare_dataset",
                                 "merge_surfaces"],
                        help="rule families not measured (preparing the dataset again would put "
                             "everything out of date; merges read temporary parts)")
    args = parser.parse_args()
    results = results_dir(args.configfile)
    jobs = [job for job in read_pipeline(args.metadata)
            if Path(job.log).is_relative_to(results / "logs") and Path(job.log).exists()]
    by_family = defaultdict(list)
    for job in jobs:
        if family(job.rule) not in args.skip and not job.rule.startswith("plot_"):
            by_family[family(job.rule)].append(job)
    chosen = {}
    for name, members in sorted(by_family.items()):
        members.sort(key=lambda job: job.end - job.start)
        chosen[name] = members[(len(members) - 1) // 2]
    rules = sorted({job.rule for job in chosen.values()})
    targets = [sorted(job.outputs)[0] for job in chosen.values()]
    snakemake = str(Path(sys.executable).parent / "snakemake")
    timings = defaultdict(lambda: defaultdict(list))
    for _ in range(args.repeats):
        for threads in (1, 2):
            configfiles = ["--configfile", *args.configfile] if args.configfile else []
            subprocess.run([snakemake, "--profile", args.profile, *configfiles, "--cores",
                            str(threads), "--quiet", "rules", "--set-threads",
                            *(f"{rule}={threads}" for rule in rules), "--force", "--", *targets],
                           check=True)
            for name, job in chosen.items():
                timings[name][threads].append(read_benchmark(benchmark_path(job.log, results)))
    print("| rule | job (log) | wall, 1 thread (s) | wall, 2 threads (s) | speed-up | "
          "CPU, 1 thread (s) | CPU, 2 threads (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, job in chosen.items():
        one, two = timings[name][1], timings[name][2]
        wall1, wall2 = (statistics.median(w for w, _ in t) for t in (one, two))
        cpu1, cpu2 = (statistics.median(c for _, c in t) for t in (one, two))
        log = Path(job.log).relative_to(results / "logs")
        print(f"| {name} | {log} | {wall1:.1f} | {wall2:.1f} | {wall1 / wall2:.2f}× | {cpu1:.1f} "
              f"| {cpu2:.1f} |")


if __name__ == "__main__":
    main()
