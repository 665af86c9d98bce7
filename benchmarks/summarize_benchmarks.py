"""Summarize the per-job benchmarks of a pipeline run as Markdown for benchmarks/RESULTS.md.

Every rule has a Snakemake ``benchmark:`` file at the path of its log with ``logs`` →
``benchmarks`` and ``.log`` → ``.tsv``, under the config's results folder ``RESULTS``
(``results/NAME``, ``--results``; default ``results/config``, the default config's) and under each
of its second scales' folders (``RESULTS/scales/SCALE``): every job of the config's pipeline. The job's
log holds its start-up and total as wall and CPU seconds from interpreter start
(``lossatlas.io.job_log``). Start-up is everything before the script's first real computation:
interpreter, Snakemake's preamble, imports. The torch floor, ``python -c "import torch"``, is
measured here, on the same machine, after the run; each job's start-up is split into the floor
(capped at the job's start-up, so a job without torch is charged only what it took) and what it
spent beyond it.

Utilization comes from Snakemake's own job records (``.snakemake/metadata``: each output file's
rule, log, inputs and the job's start and end time; only the jobs whose log lies in the config's
folder (its scales' included) and still exists count, so neither another config's jobs nor the records of a removed run
do): the pipeline's wall (first job start to last job end), the sum of job CPU over that wall (the
average number of busy cores), and the critical path, the chain of jobs linked by their files
whose summed wall is longest: the wall the pipeline could not go below with any number of cores.

Run after a pipeline run from ``make clean``:
``.venv/bin/python benchmarks/summarize_benchmarks.py`` (``--results results/smoke`` for the smoke
config's run).
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from lossatlas.io import job_timings


@dataclass
class Job:
    """One job: its rule, Snakemake's wall time and peak memory, and the timings of its log (CPU
    from the log when the job finished, else Snakemake's sampled ``cpu_time``)."""

    rule: str
    wall: float
    cpu: float
    startup_wall: float
    startup_cpu: float
    max_rss_mb: float


def read_jobs(benchmarks: Path, logs: Path) -> tuple[list[Job], list[Path]]:
    """Every benchmarked job, and the benchmark files whose log holds no start-up line."""
    jobs, unmatched = [], []
    for path in sorted(benchmarks.rglob("*.tsv")):
        with open(path, newline="") as stream:
            record = next(csv.DictReader(stream, delimiter="\t"))
        log = logs / path.relative_to(benchmarks).with_suffix(".log")
        timings = job_timings(log) if log.exists() else {}
        if "startup_cpu" not in timings:
            unmatched.append(path)
            continue
        rule = record.get("rule_name") or path.relative_to(benchmarks).parts[0]
        jobs.append(Job(rule, float(record["s"]), timings.get("cpu", float(record["cpu_time"])),
                        timings["startup_wall"], timings["startup_cpu"],
                        float(record["max_rss"])))
    return jobs, unmatched


@dataclass
class PipelineJob:
    """One job of Snakemake's records: its rule, log, start and end (Unix seconds), the files it
    read and the files it wrote."""

    rule: str
    log: str
    start: float
    end: float
    inputs: set[str]
    outputs: set[str]


def read_pipeline(metadata: Path) -> list[PipelineJob]:
    """The jobs of Snakemake's per-output records (a record's path is its output path in URL-safe
    base64, cut into folders named ``@part`` where longer than a file name may be); the outputs
    of one job share its log (or, without a log, its job hash)."""
    jobs: dict[str, PipelineJob] = {}
    for path in metadata.rglob("*"):
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        if record.get("incomplete") or record.get("starttime") is None:
            continue
        parts = path.relative_to(metadata).parts
        output = base64.urlsafe_b64decode("".join(part.removeprefix("@") for part in parts)).decode()
        key = ";".join(record.get("log") or []) or str(record["job_hash"])
        job = jobs.setdefault(key, PipelineJob(record["rule"], key, record["starttime"],
                                               record["endtime"], set(record["input"]), set()))
        job.outputs.add(output)
    return sorted(jobs.values(), key=lambda job: job.start)


def critical_path(jobs: list[PipelineJob]) -> list[PipelineJob]:
    """The chain of jobs, each reading a file of the one before, with the longest summed wall."""
    producer = {output: job for job in jobs for output in job.outputs}
    best: dict[str, tuple[float, PipelineJob | None]] = {}
    for job in sorted(jobs, key=lambda job: job.end):
        parents = {producer[path].log for path in job.inputs if path in producer}
        length, parent = max(((best[log][0], log) for log in parents if log in best),
                             default=(0.0, None))
        best[job.log] = (length + job.end - job.start, parent)
    by_log = {job.log: job for job in jobs}
    log = max(best, key=lambda log: best[log][0])
    chain = []
    while log is not None:
        chain.append(by_log[log])
        log = best[log][1]
    return chain[::-1]


def concurrency(jobs: list[PipelineJob]) -> dict[int, float]:
    """Seconds of the pipeline's wall during which exactly k jobs ran, by k."""
    events = sorted([(job.start, 1) for job in jobs] + [(job.end, -1) for job in jobs])
    seconds: dict[int, float] = defaultdict(float)
    running, last = 0, events[0][0]
    for time_point, change in events:
        seconds[running] += time_point - last
        running, last = running + change, time_point
    return dict(sorted(seconds.items()))


def utilization(pipeline: list[PipelineJob], job_cpu: float, cores: int) -> str:
    """The Markdown lines on the pipeline's wall, busy cores, jobs running side by side and the
    critical path."""
    wall = max(job.end for job in pipeline) - min(job.start for job in pipeline)
    chain = critical_path(pipeline)
    chain_wall = sum(job.end - job.start for job in chain)
    side_by_side = ", ".join(f"{running} job{'s' * (running != 1)} {seconds:.0f} s"
                             for running, seconds in concurrency(pipeline).items())
    lines = [f"Pipeline wall (first job start to last job end, {len(pipeline)} jobs): "
             f"{wall:.1f} s; job CPU {job_cpu:.1f} s; average busy cores {job_cpu / wall:.2f} "
             f"of {cores}.", "", f"Jobs running side by side, wall by count: {side_by_side}.",
             "",
             f"Critical path ({len(chain)} jobs, {chain_wall:.1f} s of job wall, "
             f"{chain_wall / wall:.0%} of the pipeline wall):", "",
             "| job (log) | rule | start (s) | wall (s) |", "|---|---|---|---|"]
    origin = min(job.start for job in pipeline)
    lines += [f"| {job.log} | {job.rule} | {job.start - origin:.1f} | {job.end - job.start:.1f} |"
              for job in chain]
    return "\n".join(lines)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not an integer of at least 1")
    return value


def torch_floor(runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``python -c "import torch"`` in this interpreter."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def summary(jobs: list[Job], floor_wall: float, floor_cpu: float, top: int) -> str:
    """The Markdown summary: totals with the start-up split, then the rules with the most CPU."""
    wall, cpu = sum(j.wall for j in jobs), sum(j.cpu for j in jobs)
    startup = (sum(j.startup_wall for j in jobs), sum(j.startup_cpu for j in jobs))
    floor = (sum(min(j.startup_wall, floor_wall) for j in jobs),
             sum(min(j.startup_cpu, floor_cpu) for j in jobs))
    beyond = (startup[0] - floor[0], startup[1] - floor[1])
    rows = [("all jobs", (wall, cpu)), ("start-up (before the first computation)", startup),
            ("… the torch floor", floor), ("… beyond the torch floor", beyond),
            ("computation", (wall - startup[0], cpu - startup[1]))]
    lines = [f"{len(jobs)} jobs. Torch floor on this machine (median of `python -c \"import "
             f"torch\"`): {floor_wall:.2f} s wall, {floor_cpu:.2f} s CPU.", "",
             "| | job wall (s) | share | CPU (s) | share |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {w:.1f} | {w / wall:.1%} | {c:.1f} | {c / cpu:.1%} |"
              for name, (w, c) in rows]
    by_rule = defaultdict(list)
    for job in jobs:
        by_rule[job.rule].append(job)
    ranked = sorted(by_rule.items(), key=lambda item: -sum(j.cpu for j in item[1]))[:top]
    lines += ["", f"Rules with the most CPU (top {len(ranked)} of {len(by_rule)}):", "",
              "| rule | jobs | job wall (s) | CPU (s) | start-up CPU per job (s) | beyond torch "
              "per job (s) | max RSS (MB) |", "|---|---|---|---|---|---|---|"]
    for rule, group in ranked:
        n = len(group)
        lines.append(
            f"| {rule} | {n} | {sum(j.wall for j in group):.1f} | {sum(j.cpu for j in group):.1f} "
            f"| {sum(j.startup_cpu for j in group) / n:.2f} "
            f"| {sum(max(j.startup_cpu - floor_cpu, 0.0) for j in group) / n:.2f} "
            f"| {max(j.max_rss_mb for j in group):.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results/config"),
                        help="the config's results folder, results/NAME (README, 'Where outputs "
                             "go')")
    parser.add_argument("--floor-runs", type=positive_int, default=5,
                        help="runs of `python -c \"import torch\"` for the floor (median)")
    parser.add_argument("--top", type=int, default=10, help="rules listed")
    parser.add_argument("--metadata", type=Path, default=Path(".snakemake/metadata"),
                        help="Snakemake's job records (for wall, busy cores, critical path)")
    parser.add_argument("--cores", type=int, default=os.cpu_count(),
                        help="cores the pipeline ran on")
    args = parser.parse_args()
    jobs, unmatched = [], []
    for logs in [args.results / "logs", *sorted(args.results.glob("scales/*/logs"))]:
        scale_jobs, scale_unmatched = read_jobs(logs.parent / "benchmarks", logs)
        jobs += scale_jobs
        unmatched += scale_unmatched
    if not jobs:
        sys.exit(f"no benchmark with a matching job log under {args.results}")
    print(summary(jobs, *torch_floor(args.floor_runs), args.top))
    print()
    pipeline = [job for job in read_pipeline(args.metadata)
                if Path(job.log).is_relative_to(args.results) and Path(job.log).exists()]
    if pipeline:
        print(utilization(pipeline, sum(job.cpu for job in jobs), args.cores))
    else:
        print(f"No job record in {args.metadata} with its log under {args.results}: no pipeline "
              "wall.")
    if unmatched:
        print(f"\n{len(unmatched)} benchmark file(s) left out, their log has no start-up line: "
              + ", ".join(str(path) for path in unmatched[:5]))


if __name__ == "__main__":
    main()
