# Sweeps: load x temperature grids (Yang et al. 2021) and one-knob sweeps (Fort & Jastrzebski
# 2019), each expanded into run groups SWEEP_TAGVALUE[_TAGVALUE] (one run per seed) of the run
# table, so every figure rule can name them; validated here, before any job.
from lossatlas.train import structure_training

SWEEPS = {name: sweep_cells(name, sweep) for name, sweep in config["sweeps"].items()}


SWEEP_MEASURE = config["sweep_measurements"]
try:
    structure_training(SWEEP_MEASURE["curve_training"])
except ValueError as error:
    raise ValueError(f"config sweep_measurements.curve_training: {error}") from None
HYPERPARAMS = config["figures"]["hyperparams_curvature"]
TAXONOMY = config["figures"]["taxonomy_metrics"]
PHASES = config["figures"]["taxonomy_phases"]
for _name in HYPERPARAMS["sweeps"]:
    check_sweep("figures.hyperparams_curvature.sweeps", _name, "knob")
check_sweep("figures.taxonomy_metrics.sweep", TAXONOMY["sweep"], "grid")
if len(config["sweeps"][TAXONOMY["sweep"]].get("seeds", config["seeds"])) < 2:
    raise ValueError(
        f"config sweeps.{TAXONOMY['sweep']}.seeds: the taxonomy needs at least two seeds per "
        "cell (mode connectivity and CKA compare seeds)"
    )


SWEEP_ROWS = {name: sweep_rows(name) for name in SWEEPS}


CELL_PARTS = {
    name: cell_parts(rows, SWEEP_MEASURE["cells_per_job"])
    for name, rows in SWEEP_ROWS.items()
}


# One job per sweep, all its runs (one interpreter start for the whole sweep).
rule measure_sweep_curvature:
    input:
        data=f"resources/data/{DATASET}.h5",
        trajectory=sweep_files("trajectory.pt"),
        final=sweep_files("final.pt"),
        status=sweep_files("status.json"),
        metrics=sweep_files("metrics.csv"),
    output:
        sweep_curvature_file("{sweep}"),
    log:
        f"{RESULTS}/logs/sweeps/{DATASET}/{MODEL}/{{sweep}}/curvature.log",
    benchmark:
        f"{RESULTS}/benchmarks/sweeps/{DATASET}/{MODEL}/{{sweep}}/curvature.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        runs=sweep_runs,
        settings=lambda wildcards: {run: RUNS[run] for run in sweep_runs(wildcards)},
        epochs=lambda wildcards: (
            "final" if "load" in config["sweeps"][wildcards.sweep] else "all"
        ),
        measurements=SWEEP_MEASURE,
        model=MODEL,
        device=config["device"],
    script:
        "../scripts/measure_sweep_curvature.py"


rule measure_sweep_cells:
    input:
        data=f"resources/data/{DATASET}.h5",
        final=cell_part_files("final.pt"),
        status=cell_part_files("status.json"),
    output:
        cells=f"{MEASURE_ROOT}/sweeps/{{sweep}}/{{part}}.cells.csv",
        curves=f"{MEASURE_ROOT}/sweeps/{{sweep}}/{{part}}.curves.pt",
    log:
        f"{RESULTS}/logs/sweeps/{DATASET}/{MODEL}/{{sweep}}/{{part}}.cells.log",
    benchmark:
        f"{RESULTS}/benchmarks/sweeps/{DATASET}/{MODEL}/{{sweep}}/{{part}}.cells.tsv"
    wildcard_constraints:
        part=r"[A-Za-z0-9_.]+",
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        cells=lambda wildcards: CELL_PARTS[wildcards.sweep][wildcards.part],
        runs=cell_part_runs,
        settings=lambda wildcards: {run: RUNS[run] for run in cell_part_runs(wildcards)},
        measurements=SWEEP_MEASURE,
        model=MODEL,
        device=config["device"],
    script:
        "../scripts/measure_sweep_cells.py"


rule plot_hyperparams_curvature:
    input:
        curvature=[sweep_curvature_file(name) for name in HYPERPARAMS["sweeps"]],
        regime_solutions=solution_status(
            run
            for name in HYPERPARAMS["sweeps"]
            for cell in SWEEPS[name]
            for run in cell["runs"]
        ),
    output:
        table=f"{MEASURE_ROOT}/hyperparams_curvature.csv",
        claims=f"{CLAIMS_ROOT}/hyperparams_curvature.csv",
        claims_html=f"{CLAIMS_ROOT}/hyperparams_curvature.html",
        pdf=f"{RESULTS}/figures/hyperparams_curvature.pdf",
        png=report(
            f"{RESULTS}/figures/hyperparams_curvature.png",
            caption="../report/hyperparams_curvature.rst",
            category="Sweeps and taxonomy",
        ),
    log:
        f"{RESULTS}/logs/figures/hyperparams_curvature.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/hyperparams_curvature.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        regime=regime_settings(),
        sweeps={
            name: {
                "knob": sweep_axes(name)[0],
                "values": {cell["group"]: cell["value"] for cell in SWEEPS[name]},
            }
            for name in HYPERPARAMS["sweeps"]
        },
    script:
        "../scripts/plot_hyperparams_curvature.py"


rule hyperparams_curvature:
    input:
        rules.plot_hyperparams_curvature.output,


_TAXONOMY_RUNS = [run for cell in SWEEPS[TAXONOMY["sweep"]] for run in cell["runs"]]
_TAXONOMY_LOADS = {
    run: cell["load"] for cell in SWEEPS[TAXONOMY["sweep"]] for run in cell["runs"]
}


rule plot_taxonomy_metrics:
    input:
        curvature=[sweep_curvature_file(TAXONOMY["sweep"])],
        cells=[
            f"{MEASURE_ROOT}/sweeps/{TAXONOMY['sweep']}/{part}.cells.csv"
            for part in CELL_PARTS[TAXONOMY["sweep"]]
        ],
        regime_solutions=solution_status(_TAXONOMY_RUNS),
    output:
        table=f"{MEASURE_ROOT}/taxonomy_metrics.csv",
        claims=f"{CLAIMS_ROOT}/taxonomy_metrics.csv",
        claims_html=f"{CLAIMS_ROOT}/taxonomy_metrics.html",
        pdf=f"{RESULTS}/figures/taxonomy_metrics.pdf",
        png=report(
            f"{RESULTS}/figures/taxonomy_metrics.png",
            caption="../report/taxonomy_metrics.rst",
            category="Sweeps and taxonomy",
        ),
    log:
        f"{RESULTS}/logs/figures/taxonomy_metrics.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/taxonomy_metrics.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        axes=sweep_axes(TAXONOMY["sweep"]),
        runs=_TAXONOMY_RUNS,
        loads=_TAXONOMY_LOADS,
        max_train_error=REGIME["max_train_error"],
        regime=regime_settings(
            False, "Yang et al. 2021 span both sides of interpolation"
        ),
    script:
        "../scripts/plot_taxonomy_metrics.py"


rule taxonomy_metrics:
    input:
        rules.plot_taxonomy_metrics.output,


rule plot_taxonomy_phases:
    input:
        metrics=rules.plot_taxonomy_metrics.output.table,
        cells=rules.plot_taxonomy_metrics.input.cells,
        regime_solutions=solution_status(_TAXONOMY_RUNS),
    output:
        table=f"{MEASURE_ROOT}/taxonomy_phases.csv",
        claims=f"{CLAIMS_ROOT}/taxonomy_phases.csv",
        claims_html=f"{CLAIMS_ROOT}/taxonomy_phases.html",
        pdf=f"{RESULTS}/figures/taxonomy_phases.pdf",
        png=report(
            f"{RESULTS}/figures/taxonomy_phases.png",
            caption="../report/taxonomy_phases.rst",
            category="Sweeps and taxonomy",
        ),
    log:
        f"{RESULTS}/logs/figures/taxonomy_phases.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/taxonomy_phases.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        thresholds=PHASES,
        runs=_TAXONOMY_RUNS,
        loads=_TAXONOMY_LOADS,
        max_train_error=REGIME["max_train_error"],
        regime=regime_settings(
            False, "Yang et al. 2021 span both sides of interpolation"
        ),
    script:
        "../scripts/plot_taxonomy_phases.py"


rule taxonomy_phases:
    input:
        rules.plot_taxonomy_phases.output,
