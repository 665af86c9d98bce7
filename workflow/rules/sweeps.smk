# Sweeps: load x temperature grids (Yang et al. 2021) and one-knob sweeps (Fort & Jastrzebski
# 2019), each expanded into run groups SWEEP_TAGVALUE[_TAGVALUE] (one run per seed) of the run
# table, so every figure rule can name them; validated here, before any job.
LOAD_KNOBS = ("width", "train_fraction", "label_noise")
TEMPERATURE_KNOBS = ("batch_size", "lr")
ONE_KNOBS = ("lr", "width", "weight_decay", "batch_size")
KNOB_TAGS = {
    "width": "w",
    "train_fraction": "frac",
    "label_noise": "noise",
    "batch_size": "bs",
    "lr": "lr",
    "weight_decay": "wd",
}
# knob -> (valid(value), what a valid value is)
KNOB_VALUES = {
    "width": (lambda v: float(v).is_integer() and v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: float(v).is_integer() and v >= 1, "an integer >= 1"),
    "lr": (lambda v: v > 0, "> 0"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "train_fraction": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "label_noise": (lambda v: 0 <= v < 1, "in [0, 1)"),
}


def knob_tag(knob, value):
    """``w64``, ``lr0.05``, ``wd1em05``: a knob value as it appears in run ids."""
    text = f"{value:g}".replace("e-", "em").replace("e+", "e")
    return f"{KNOB_TAGS[knob]}{text}"


def check_axis(where, knob, values, valid_knobs):
    if knob not in valid_knobs:
        raise ValueError(
            f"config {where}.knob={knob!r}: unknown knob; valid: {', '.join(valid_knobs)}"
        )
    if knob == "width" and "width" not in model_options(MODEL):
        raise ValueError(
            f"config {where}.knob=width: model {MODEL!r} has no option 'width'; its options "
            f"are {', '.join(sorted(model_options(MODEL)))}"
        )
    if not values:
        raise ValueError(f"config {where}.values: the axis is empty")
    if len(set(values)) != len(values):
        raise ValueError(f"config {where}.values={values}: values must be distinct")
    valid, meaning = KNOB_VALUES[knob]
    for index, value in enumerate(values):
        if not valid(value):
            raise ValueError(f"config {where}.values[{index}]={value}: {knob} must be {meaning}")
    return [int(v) if knob in ("width", "batch_size") else v for v in values]


def sweep_cells(name, sweep):
    """The cells of sweep ``name``: one dict per knob-value combination with the run group's
    name, its runs and its knob values (``load``/``temperature`` for a grid, ``value`` for a
    one-knob sweep); the run groups are added to the run table."""
    where = f"sweeps.{name}"
    seeds = sweep.get("seeds", config["seeds"])
    if "load" in sweep:
        loads = check_axis(
            f"{where}.load", sweep["load"]["knob"], sweep["load"]["values"], LOAD_KNOBS
        )
        temperatures = check_axis(
            f"{where}.temperature",
            sweep["temperature"]["knob"],
            sweep["temperature"]["values"],
            TEMPERATURE_KNOBS,
        )
        axes = [
            (sweep["load"]["knob"], load, sweep["temperature"]["knob"], temperature)
            for load in loads
            for temperature in temperatures
        ]
    else:
        values = check_axis(where, sweep["knob"], sweep["values"], ONE_KNOBS)
        axes = [(sweep["knob"], value) for value in values]
    cells = []
    for axis in axes:
        knobs = dict(zip(axis[::2], axis[1::2]))
        group = "_".join([name, *(knob_tag(k, v) for k, v in knobs.items())])
        overrides = {**sweep["training"], **knobs, "seeds": seeds}
        runs = run_group_table(group, overrides, where)
        for run in runs:
            if run in RUNS:
                raise ValueError(f"config {where}: run {run} is already a run of the config")
        RUNS.update(runs)
        values = list(knobs.values())
        cells.append(
            {"group": group, "runs": list(runs), "load": values[0], "temperature": values[-1]}
            if "load" in sweep
            else {"group": group, "runs": list(runs), "value": values[0]}
        )
    return cells


SWEEPS = {name: sweep_cells(name, sweep) for name, sweep in config["sweeps"].items()}


def sweep_axes(name):
    """Knob names of sweep ``name``: (load, temperature) of a grid, (knob,) of a one-knob sweep."""
    sweep = config["sweeps"][name]
    if "load" in sweep:
        return sweep["load"]["knob"], sweep["temperature"]["knob"]
    return (sweep["knob"],)


def check_sweep(key, name, kind):
    """Stop with an error naming config key ``key`` unless ``name`` is a sweep of ``kind``
    (``grid`` or ``knob``)."""
    if name not in SWEEPS:
        raise ValueError(
            f"config {key}: unknown sweep {name!r}; sweeps are {', '.join(sorted(SWEEPS)) or 'none'}"
        )
    if ("load" in config["sweeps"][name]) != (kind == "grid"):
        what = "a load x temperature grid" if kind == "grid" else "a one-knob sweep"
        raise ValueError(f"config {key}: sweep {name!r} is not {what}")


SWEEP_MEASURE = config["sweep_measurements"]
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


def sweep_rows(name):
    """Row tag -> cells of sweep ``name``: a grid's rows are its load values (all temperatures
    of one load measured in one job: one architecture, one vmapped batch of curves), a one-knob
    sweep's are its values."""
    rows = {}
    for cell in SWEEPS[name]:
        knob = sweep_axes(name)[0]
        tag = knob_tag(knob, cell["load"] if "load" in cell else cell["value"])
        rows.setdefault(tag, []).append(cell)
    return rows


SWEEP_ROWS = {name: sweep_rows(name) for name in SWEEPS}


def row_runs(wildcards):
    """Runs of row ``wildcards.row`` of sweep ``wildcards.sweep`` (an unknown one is an error
    naming it)."""
    rows = SWEEP_ROWS.get(wildcards.sweep, {})
    if wildcards.row not in rows:
        raise ValueError(
            f"sweep {wildcards.sweep!r} has no row {wildcards.row!r}; rows: {', '.join(rows)}"
        )
    return [run for cell in rows[wildcards.row] for run in cell["runs"]]


def row_files(name):
    return lambda wildcards: [f"{run_dir(run)}/{name}" for run in row_runs(wildcards)]


def sweep_curvature_files(name):
    return [
        f"{MEASURE_ROOT}/sweeps/{name}/{row}.curvature.csv" for row in SWEEP_ROWS[name]
    ]


rule measure_sweep_curvature:
    input:
        data=f"resources/data/{DATASET}.h5",
        trajectory=row_files("trajectory.pt"),
        final=row_files("final.pt"),
        status=row_files("status.json"),
        metrics=row_files("metrics.csv"),
    output:
        f"{MEASURE_ROOT}/sweeps/{{sweep}}/{{row}}.curvature.csv",
    log:
        f"results/logs/sweeps/{DATASET}/{MODEL}/{{sweep}}/{{row}}.curvature.log",
    benchmark:
        f"results/benchmarks/sweeps/{DATASET}/{MODEL}/{{sweep}}/{{row}}.curvature.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        runs=row_runs,
        settings=lambda wildcards: {run: RUNS[run] for run in row_runs(wildcards)},
        epochs=lambda wildcards: "final" if "load" in config["sweeps"][wildcards.sweep] else "all",
        measurements=SWEEP_MEASURE,
        model=MODEL,
        device=config["device"],
    script:
        "../scripts/measure_sweep_curvature.py"


rule measure_sweep_cells:
    input:
        data=f"resources/data/{DATASET}.h5",
        final=row_files("final.pt"),
        status=row_files("status.json"),
    output:
        cells=f"{MEASURE_ROOT}/sweeps/{{sweep}}/{{row}}.cells.csv",
        curves=f"{MEASURE_ROOT}/sweeps/{{sweep}}/{{row}}.curves.pt",
    log:
        f"results/logs/sweeps/{DATASET}/{MODEL}/{{sweep}}/{{row}}.cells.log",
    benchmark:
        f"results/benchmarks/sweeps/{DATASET}/{MODEL}/{{sweep}}/{{row}}.cells.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        cells=lambda wildcards: SWEEP_ROWS[wildcards.sweep][wildcards.row],
        runs=row_runs,
        settings=lambda wildcards: {run: RUNS[run] for run in row_runs(wildcards)},
        measurements=SWEEP_MEASURE,
        model=MODEL,
        device=config["device"],
    script:
        "../scripts/measure_sweep_cells.py"


rule plot_hyperparams_curvature:
    input:
        curvature=[f for name in HYPERPARAMS["sweeps"] for f in sweep_curvature_files(name)],
    output:
        table=f"{MEASURE_ROOT}/hyperparams_curvature.csv",
        claims=f"{CLAIMS_ROOT}/hyperparams_curvature.csv",
        pdf="results/figures/hyperparams_curvature.pdf",
        png=report(
            "results/figures/hyperparams_curvature.png",
            caption="../report/hyperparams_curvature.rst",
            category="Sweeps and taxonomy",
        ),
    log:
        "results/logs/figures/hyperparams_curvature.log",
    benchmark:
        "results/benchmarks/figures/hyperparams_curvature.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        sweeps={
            name: {"knob": sweep_axes(name)[0], "cells": SWEEPS[name]}
            for name in HYPERPARAMS["sweeps"]
        },
        runs=[
            run for name in HYPERPARAMS["sweeps"] for cell in SWEEPS[name] for run in cell["runs"]
        ],
    script:
        "../scripts/plot_hyperparams_curvature.py"


rule hyperparams_curvature:
    input:
        rules.plot_hyperparams_curvature.output,


_TAXONOMY_ROWS = list(SWEEP_ROWS[TAXONOMY["sweep"]])
_TAXONOMY_RUNS = [run for cell in SWEEPS[TAXONOMY["sweep"]] for run in cell["runs"]]


rule plot_taxonomy_metrics:
    input:
        curvature=sweep_curvature_files(TAXONOMY["sweep"]),
        cells=[
            f"{MEASURE_ROOT}/sweeps/{TAXONOMY['sweep']}/{row}.cells.csv" for row in _TAXONOMY_ROWS
        ],
    output:
        table=f"{MEASURE_ROOT}/taxonomy_metrics.csv",
        claims=f"{CLAIMS_ROOT}/taxonomy_metrics.csv",
        pdf="results/figures/taxonomy_metrics.pdf",
        png=report(
            "results/figures/taxonomy_metrics.png",
            caption="../report/taxonomy_metrics.rst",
            category="Sweeps and taxonomy",
        ),
    log:
        "results/logs/figures/taxonomy_metrics.log",
    benchmark:
        "results/benchmarks/figures/taxonomy_metrics.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        axes=sweep_axes(TAXONOMY["sweep"]),
        runs=_TAXONOMY_RUNS,
    script:
        "../scripts/plot_taxonomy_metrics.py"


rule taxonomy_metrics:
    input:
        rules.plot_taxonomy_metrics.output,


rule plot_taxonomy_phases:
    input:
        metrics=rules.plot_taxonomy_metrics.output.table,
    output:
        table=f"{MEASURE_ROOT}/taxonomy_phases.csv",
        claims=f"{CLAIMS_ROOT}/taxonomy_phases.csv",
        pdf="results/figures/taxonomy_phases.pdf",
        png=report(
            "results/figures/taxonomy_phases.png",
            caption="../report/taxonomy_phases.rst",
            category="Sweeps and taxonomy",
        ),
    log:
        "results/logs/figures/taxonomy_phases.log",
    benchmark:
        "results/benchmarks/figures/taxonomy_phases.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        thresholds=PHASES,
        runs=_TAXONOMY_RUNS,
    script:
        "../scripts/plot_taxonomy_phases.py"


rule taxonomy_phases:
    input:
        rules.plot_taxonomy_phases.output,
