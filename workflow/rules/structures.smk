# Low-loss structures through independent solutions of one run group: mode-connecting curves
# between pairs (Garipov et al. 2018), a complex through N solutions (Benton et al. 2021; Fort &
# Jastrzebski 2019), and ensembles of independent vs related solutions (Fort, Hu &
# Lakshminarayanan 2019). The structures of one figure are trained by one job,
# `train_structures_FIGURE`, as one vmapped batch (the same trainer as runs), in rounds until each
# one's convergence criterion holds or the cap (structure_training).
from lossatlas.train import structure_training

MODE_CONNECTIVITY = config["figures"]["mode_connectivity"]
LOW_LOSS = config["figures"]["low_loss_subspace"]
ENSEMBLES = config["figures"]["ensembles"]
STRUCTURE_ROOT = f"{RESULTS}/structures/{DATASET}/{MODEL}"
for _key, _settings, _least in (
    ("mode_connectivity", MODE_CONNECTIVITY, 2 * MODE_CONNECTIVITY["pairs"]),
    ("low_loss_subspace", LOW_LOSS, LOW_LOSS["modes"]),
    ("ensembles", ENSEMBLES, ENSEMBLES["members"]),
):
    check_run_groups(f"figures.{_key}.run", [_settings["run"]])
    if len(run_ids(_settings["run"])) < _least:
        raise ValueError(
            f"config figures.{_key}: run group {_settings['run']!r} has "
            f"{len(run_ids(_settings['run']))} seed(s); {_key} needs {_least} independent "
            f"solutions (set runs.{_settings['run']}.seeds)"
        )
for _key, _settings in (
    ("mode_connectivity", MODE_CONNECTIVITY),
    ("low_loss_subspace", LOW_LOSS),
):
    try:
        structure_training(_settings["training"])
    except ValueError as error:
        raise ValueError(f"config figures.{_key}.training: {error}") from None
STRUCTURES = {}
PAIRS = []
for _p in range(MODE_CONNECTIVITY["pairs"]):
    _a, _b = run_ids(MODE_CONNECTIVITY["run"])[2 * _p : 2 * _p + 2]
    PAIRS.append([_a, _b])
    for _kind in MODE_CONNECTIVITY["curves"]:
        STRUCTURES[f"{_kind}_{_a}_{_b}"] = {
            "spec": {"kind": _kind, "l2": MODE_CONNECTIVITY["training"]["l2"]},
            "points": [_a, _b],
            "training": MODE_CONNECTIVITY["training"],
        }
COMPLEX_MODES = run_ids(LOW_LOSS["run"])[: LOW_LOSS["modes"]]
COMPLEX = f"complex_{LOW_LOSS['run']}_n{LOW_LOSS['modes']}_k{LOW_LOSS['connectors']}"
STRUCTURES[COMPLEX] = {
    "spec": {
        "kind": "complex",
        "connectors": LOW_LOSS["connectors"],
        "samples": LOW_LOSS["samples"],
        "volume_weight": LOW_LOSS["volume_weight"],
        "l2": LOW_LOSS["training"]["l2"],
    },
    "points": COMPLEX_MODES,
    "training": LOW_LOSS["training"],
}
ENSEMBLE_RUNS = run_ids(ENSEMBLES["run"])[: ENSEMBLES["members"]]
if COMPLEX_MODES[0] != ENSEMBLE_RUNS[0]:
    raise ValueError(
        f"config figures.ensembles.run={ENSEMBLES['run']!r}: its first solution "
        f"{ENSEMBLE_RUNS[0]} must be the first mode of figures.low_loss_subspace "
        f"({COMPLEX_MODES[0]}), whose complex gives the structure ensemble"
    )
_anchor = RUNS[ENSEMBLE_RUNS[0]]
_snapshots = [e for e in _anchor["checkpoint_epochs"] if 0 < e < _anchor["epochs"]]
if len(_snapshots) < ENSEMBLES["members"] - 1:
    raise ValueError(
        f"config figures.ensembles.members={ENSEMBLES['members']}: run {ENSEMBLE_RUNS[0]} "
        f"saves {len(_snapshots)} checkpoint(s) strictly between epoch 0 and its last epoch "
        f"(checkpoint_epochs {_anchor['checkpoint_epochs']}); a snapshot ensemble needs "
        "members - 1 of them besides the final point"
    )


# The structures each figure trains, one job per figure (a profile cannot name generated rules:
# their cluster size is here; the paper config's 6 curves, Bézier and polygonal chain between 3
# pairs, are about 2 GPU hours by the cost plan, workflow/plan.py).
STRUCTURE_GROUPS = {
    "mode_connectivity": [name for name in STRUCTURES if name != COMPLEX],
    "low_loss_subspace": [COMPLEX],
}
STRUCTURE_RESOURCES = {"runtime": 240, "mem_mb": 16000}
STRUCTURE_FILES = ("trainable.pt", "metrics.csv", "status.json")

for _group, _names in STRUCTURE_GROUPS.items():
    _points = list(
        dict.fromkeys(run for name in _names for run in STRUCTURES[name]["points"])
    )

    rule:
        name:
            f"train_structures_{_group}"
        input:
            data=f"resources/data/{DATASET}.h5",
            final=[f"{run_dir(run)}/final.pt" for run in _points],
            status=[f"{run_dir(run)}/status.json" for run in _points],
        output:
            [
                f"{STRUCTURE_ROOT}/{name}/{file}"
                for name in _names
                for file in STRUCTURE_FILES
            ],
        log:
            f"{RESULTS}/logs/structures/{DATASET}/{MODEL}/{_group}.log",
        benchmark:
            f"{RESULTS}/benchmarks/structures/{DATASET}/{MODEL}/{_group}.tsv"
        priority: LONG_CHAIN_PRIORITY
        conda:
            "../../envs/lossatlas.yaml"
        threads: 1
        resources:
            **STRUCTURE_RESOURCES,
            gpu=1 if config["device"] != "cpu" else 0,
        params:
            structures={name: STRUCTURES[name] for name in _names},
            runs={run: RUNS[run] for run in _points},
            folders={name: f"{STRUCTURE_ROOT}/{name}" for name in _names},
            model=MODEL,
            device=config["device"],
            resume=f"{STRUCTURE_ROOT}/{_group}.resume.pt",
        script:
            "../scripts/train_structure.py"


rule measure_mode_connectivity:
    input:
        data=f"resources/data/{DATASET}.h5",
        final=[f"{run_dir(run)}/final.pt" for pair in PAIRS for run in pair],
        status=[f"{run_dir(run)}/status.json" for pair in PAIRS for run in pair],
        curves=[
            f"{STRUCTURE_ROOT}/{kind}_{a}_{b}/trainable.pt"
            for a, b in PAIRS
            for kind in MODE_CONNECTIVITY["curves"]
        ],
        curve_status=[
            f"{STRUCTURE_ROOT}/{kind}_{a}_{b}/status.json"
            for a, b in PAIRS
            for kind in MODE_CONNECTIVITY["curves"]
        ],
    output:
        f"{MEASURE_ROOT}/mode_connectivity.h5",
    log:
        f"{RESULTS}/logs/measure/{DATASET}/{MODEL}/mode_connectivity.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure/{DATASET}/{MODEL}/mode_connectivity.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        model=MODEL,
        pairs=PAIRS,
        settings={run: RUNS[run] for pair in PAIRS for run in pair},
        figure=MODE_CONNECTIVITY,
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/measure_mode_connectivity.py"


rule measure_low_loss_subspace:
    input:
        data=f"resources/data/{DATASET}.h5",
        final=[f"{run_dir(run)}/final.pt" for run in COMPLEX_MODES],
        status=[f"{run_dir(run)}/status.json" for run in COMPLEX_MODES],
        complex=f"{STRUCTURE_ROOT}/{COMPLEX}/trainable.pt",
        complex_status=f"{STRUCTURE_ROOT}/{COMPLEX}/status.json",
    output:
        f"{MEASURE_ROOT}/low_loss_subspace.h5",
    log:
        f"{RESULTS}/logs/measure/{DATASET}/{MODEL}/low_loss_subspace.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure/{DATASET}/{MODEL}/low_loss_subspace.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        model=MODEL,
        runs=COMPLEX_MODES,
        settings={run: RUNS[run] for run in COMPLEX_MODES},
        figure=LOW_LOSS,
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/measure_low_loss_subspace.py"


rule measure_ensembles:
    input:
        data=f"resources/data/{DATASET}.h5",
        final=[f"{run_dir(run)}/final.pt" for run in ENSEMBLE_RUNS],
        status=[f"{run_dir(run)}/status.json" for run in ENSEMBLE_RUNS],
        trajectory=f"{run_dir(ENSEMBLE_RUNS[0])}/trajectory.pt",
        mode_final=[f"{run_dir(run)}/final.pt" for run in COMPLEX_MODES],
        complex=f"{STRUCTURE_ROOT}/{COMPLEX}/trainable.pt",
        complex_status=f"{STRUCTURE_ROOT}/{COMPLEX}/status.json",
    output:
        f"{MEASURE_ROOT}/ensembles.h5",
    log:
        f"{RESULTS}/logs/measure/{DATASET}/{MODEL}/ensembles.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure/{DATASET}/{MODEL}/ensembles.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        model=MODEL,
        runs=ENSEMBLE_RUNS,
        settings={run: RUNS[run] for run in [*ENSEMBLE_RUNS, *COMPLEX_MODES]},
        modes=COMPLEX_MODES,
        figure=ENSEMBLES,
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/measure_ensembles.py"


rule plot_mode_connectivity:
    input:
        measurement=rules.measure_mode_connectivity.output[0],
        regime_solutions=solution_status([run for pair in PAIRS for run in pair]),
        regime_structures=rules.measure_mode_connectivity.input.curve_status,
    output:
        table=f"{MEASURE_ROOT}/mode_connectivity.csv",
        claims=f"{CLAIMS_ROOT}/mode_connectivity.csv",
        claims_html=f"{CLAIMS_ROOT}/mode_connectivity.html",
        pdf=f"{RESULTS}/figures/mode_connectivity.pdf",
        png=report(
            f"{RESULTS}/figures/mode_connectivity.png",
            caption="../report/mode_connectivity.rst",
            category="Low-loss structures",
        ),
    log:
        f"{RESULTS}/logs/figures/mode_connectivity.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/mode_connectivity.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        regime=regime_settings(structures_witness=True),
        barrier_ratio=MODE_CONNECTIVITY["barrier_ratio"],
        runs=[run for pair in PAIRS for run in pair],
    script:
        "../scripts/plot_mode_connectivity.py"


rule plot_low_loss_subspace:
    input:
        measurement=rules.measure_low_loss_subspace.output[0],
        regime_solutions=solution_status(COMPLEX_MODES),
        regime_structures=rules.measure_low_loss_subspace.input.complex_status,
    output:
        table=f"{MEASURE_ROOT}/low_loss_subspace.csv",
        claims=f"{CLAIMS_ROOT}/low_loss_subspace.csv",
        claims_html=f"{CLAIMS_ROOT}/low_loss_subspace.html",
        pdf=f"{RESULTS}/figures/low_loss_subspace.pdf",
        png=report(
            f"{RESULTS}/figures/low_loss_subspace.png",
            caption="../report/low_loss_subspace.rst",
            category="Low-loss structures",
        ),
    log:
        f"{RESULTS}/logs/figures/low_loss_subspace.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/low_loss_subspace.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        regime=regime_settings(structures_witness=True),
        barrier_tolerance=LOW_LOSS["barrier_tolerance"],
        runs=COMPLEX_MODES,
    script:
        "../scripts/plot_low_loss_subspace.py"


rule plot_ensembles:
    input:
        measurement=rules.measure_ensembles.output[0],
        regime_solutions=solution_status(ENSEMBLE_RUNS),
        regime_structures=rules.measure_ensembles.input.complex_status,
    output:
        table=f"{MEASURE_ROOT}/ensembles.csv",
        claims=f"{CLAIMS_ROOT}/ensembles.csv",
        claims_html=f"{CLAIMS_ROOT}/ensembles.html",
        pdf=f"{RESULTS}/figures/ensembles.pdf",
        png=report(
            f"{RESULTS}/figures/ensembles.png",
            caption="../report/ensembles.rst",
            category="Low-loss structures",
        ),
    log:
        f"{RESULTS}/logs/figures/ensembles.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/ensembles.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        regime=regime_settings(),
        runs=ENSEMBLE_RUNS,
    script:
        "../scripts/plot_ensembles.py"


rule mode_connectivity:
    input:
        rules.plot_mode_connectivity.output,


rule low_loss_subspace:
    input:
        rules.plot_low_loss_subspace.output,


rule ensembles:
    input:
        rules.plot_ensembles.output,
