"""Start-up of every rule script against the torch floor, measured in one run.

A job's start-up is a fresh interpreter, Snakemake's script preamble and the script's module-level
imports, before it reads its inputs. For each script in workflow/scripts this runs exactly that in
a fresh interpreter (the preamble's imports, then the script's import statements), each run
paired with a run of `python -c "import torch"` (the floor) just before it, so that a change of
load on a shared machine hits both; over several rounds it reports the medians of wall and CPU
(user + system) seconds, of the differences to the paired floor (Δ), and the libraries each
script loads besides torch's, lossatlas and Snakemake's. Goal: every script within 0.5 s of the
floor.

Run: ``.venv/bin/python benchmarks/startup_bench.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import ast
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"
# The imports of the preamble Snakemake puts before a script (snakemake.script.PythonScript).
PREAMBLE = ("import pickle\nfrom snakemake.logging import logger\n"
            "from snakemake.iocontainers import Snakemake")
REPORT = """
import json, sys
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules if not name.startswith("_")}
                        - set(sys.stdlib_module_names))))
"""
GOAL = 0.5


def script_imports(path: Path) -> str:
    """The module-level import statements of a script."""
    source = path.read_text()
    lines = source.splitlines()
    return "\n".join("\n".join(lines[node.lineno - 1:node.end_lineno])
                     for node in ast.parse(source).body
                     if isinstance(node, (ast.Import, ast.ImportFrom)))


def timed(code: str) -> tuple[float, float, set[str]]:
    """Wall and CPU seconds of a fresh interpreter running ``code``, and the third-party packages
    it loaded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code + REPORT], capture_output=True, text=True,
                            cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, set(json.loads(result.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cases = {"python -c pass": "pass"}
    cases.update({path.name: f"{PREAMBLE}\n{script_imports(path)}"
                  for path in sorted(SCRIPTS.glob("*.py"))})
    runs = {name: [] for name in ["floor", *cases]}
    loaded = {}
    for _ in range(args.rounds):
        for name, code in cases.items():
            *floor, loaded["floor"] = timed("import torch")
            *startup, loaded[name] = timed(code)
            runs["floor"].append(floor)
            runs[name].append((*startup, startup[0] - floor[0], startup[1] - floor[1]))
    expected = loaded["floor"] | {"lossatlas"}
    floor_wall, floor_cpu = (statistics.median(values) for values in zip(*runs["floor"]))
    print(f"Median of {args.rounds} rounds; torch floor `python -c \"import torch\"`: "
          f"{floor_wall:.2f} s wall, {floor_cpu:.2f} s CPU; Δ = start-up − the paired floor.\n")
    print("| start-up of | wall (s) | Δ wall (s) | CPU (s) | Δ CPU (s) | also loads |")
    print("|---|---|---|---|---|---|")
    met = 0
    for name in cases:
        wall, cpu, delta_wall, delta_cpu = (statistics.median(v) for v in zip(*runs[name]))
        extra = ", ".join(sorted(library for library in loaded[name] - expected
                                 if not library.startswith("snakemake"))) or "–"
        print(f"| {name} | {wall:.2f} | {delta_wall:+.2f} | {cpu:.2f} | {delta_cpu:+.2f} | "
              f"{extra} |")
        met += name.endswith(".py") and max(delta_wall, delta_cpu) <= GOAL
    print(f"\n{met} of {len(cases) - 1} scripts within {GOAL} s of the torch floor (wall and CPU).")


if __name__ == "__main__":
    main()
