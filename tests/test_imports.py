"""Start-up cost: each engine module, imported in a fresh interpreter that holds only the libraries
allowed to it, loads no other library, and the figure scripts load no torch; so a job's start-up
stays at the torch floor."""

import ast
import json
import os
import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import lossatlas

ROOT = Path(__file__).resolve().parents[1]
FIGURES = {"matplotlib.pyplot", "seaborn", "pandas"}

# Third-party libraries each engine module may load (their own dependencies come with them).
# A new module must be added here with what it needs.
ALLOWED = {
    "lossatlas.api": {"torch"},
    "lossatlas.claims": {"pandas"},
    "lossatlas.cli": {"torch", "h5py"},
    "lossatlas.curvature": {"torch"},
    "lossatlas.data": {"torch", "h5py"},
    "lossatlas.evaluate": {"torch"},
    "lossatlas.figure_claims": {"numpy", "pandas"},
    "lossatlas.functional": {"torch"},
    "lossatlas.goldilocks": {"torch"},
    "lossatlas.io": {"numpy"},
    "lossatlas.landscape": {"torch"},
    "lossatlas.models": {"torch"},
    "lossatlas.parameterizations": {"torch"},
    "lossatlas.plan": {"torch"},
    "lossatlas.params": {"torch"},
    "lossatlas.plots": {"matplotlib.pyplot"},
    "lossatlas.plots.curvature": FIGURES,
    "lossatlas.plots.goldilocks": FIGURES,
    "lossatlas.plots.landscape": FIGURES,
    "lossatlas.plots.lines": FIGURES,
    "lossatlas.plots.structures": FIGURES,
    "lossatlas.plots.subspace": FIGURES,
    "lossatlas.plots.sweeps": FIGURES,
    "lossatlas.plots.scales": FIGURES,
    "lossatlas.plots.wedge": FIGURES,
    "lossatlas.runs": {"torch", "h5py"},
    "lossatlas.stats": {"numpy"},
    "lossatlas.structures": {"torch"},
    "lossatlas.sweeps": {"torch"},
    "lossatlas.taxonomy": {"numpy"},
    "lossatlas.train": {"torch"},
    "lossatlas.wedge": {"torch"},
}

MODULES = sorted(m.name for m in pkgutil.walk_packages(lossatlas.__path__, "lossatlas."))
FIGURE_SCRIPTS = sorted((ROOT / "workflow" / "scripts").glob("plot_*.py"))

# Imports the allowed libraries, then each probe in turn, and prints for each probe the
# third-party top-level packages that appeared during its imports.
PROBE = """
import json, sys
def loaded():
    return {{name.split(".")[0] for name in sys.modules if not name.startswith("_")}}
{allowed}
extras = {{}}
for label, statements in {probes!r}:
    before = loaded()
    exec(statements)
    extras[label] = sorted(loaded() - before - set(sys.stdlib_module_names)
                           - {{"lossatlas", "cython_runtime"}})
print(json.dumps(extras))
"""


def extra_libraries(allowed: frozenset[str], probes: list[tuple[str, str]]) -> dict[str, list]:
    """For each ``(label, statements)`` of ``probes``, the third-party packages its statements load
    beyond ``allowed`` (and what those load), all run in one fresh interpreter that has imported
    ``allowed`` first. A package is charged to the first probe that loads it."""
    code = PROBE.format(allowed="\n".join(f"import {name}" for name in sorted(allowed)),
                        probes=probes)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, check=True)
    return json.loads(result.stdout)


def script_imports(path: Path) -> str:
    """The module-level import statements of a rule script (its start-up)."""
    lines = path.read_text().splitlines()
    return "\n".join("\n".join(lines[node.lineno - 1:node.end_lineno])
                     for node in ast.parse(path.read_text()).body
                     if isinstance(node, (ast.Import, ast.ImportFrom)))


@pytest.fixture(scope="module")
def extras():
    """Probe every module and figure script: one fresh interpreter per distinct allow-list (a
    fresh one per module would cost a torch import each), as many in parallel as there are
    CPUs."""
    groups = {}
    for name in MODULES:
        groups.setdefault(frozenset(ALLOWED.get(name, ())), []).append((name, f"import {name}"))
    for path in FIGURE_SCRIPTS:
        groups.setdefault(frozenset(FIGURES), []).append((path.name, script_imports(path)))
    found = {}
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        for result in pool.map(lambda group: extra_libraries(*group), groups.items()):
            found.update(result)
    return found


def test_every_engine_module_has_an_allow_list():
    assert sorted(set(MODULES) - set(ALLOWED)) == [], "add these modules to ALLOWED"
    assert sorted(set(ALLOWED) - set(MODULES)) == [], "remove these modules from ALLOWED"


@pytest.mark.parametrize("module", MODULES)
def test_engine_module_loads_only_what_it_needs(extras, module):
    assert extras[module] == [], (f"importing {module} (or a module it imports) loads "
                                  f"{extras[module]}; import them where "
                                  "they are used or add them to its ALLOWED entry")


@pytest.mark.parametrize("script", [path.name for path in FIGURE_SCRIPTS])
def test_figure_script_loads_no_torch(extras, script):
    assert extras[script] == [], f"{script} loads {extras[script]} at start-up"
