# Hessian spectra at the solutions (Sagun et al. 2017; Papyan 2019; Keskar et al. 2017) and
# curvature along training (Gur-Ari et al. 2018; Cohen et al. 2021): one measurement per run and
# checkpoint through the curvature engine, then a figure.
CURVATURE = config["curvature"]
SPECTRUM = config["figures"]["hessian_spectrum"]
ALONG = config["figures"]["curvature_along_training"]
for _key, _groups in (
    ("hessian_spectrum.runs", SPECTRUM["runs"]),
    ("curvature_along_training.runs", ALONG["runs"]),
):
    check_run_groups(f"figures.{_key}", _groups)
if ALONG["overlap_k"] is not None and ALONG["overlap_k"] > CURVATURE["top_k"]:
    raise ValueError(
        f"config figures.curvature_along_training.overlap_k={ALONG['overlap_k']} exceeds "
        f"curvature.top_k={CURVATURE['top_k']}; the overlap uses the top-k eigenvectors"
    )
if (
    CURVATURE["bottom_k"] > CURVATURE["max_iter"]
    or CURVATURE["top_k"] > CURVATURE["max_iter"]
):
    raise ValueError(
        f"config curvature.max_iter={CURVATURE['max_iter']} must be at least "
        f"curvature.top_k and curvature.bottom_k"
    )
if CURVATURE["density_grid"] - 1 < 1 / CURVATURE["density_broadening"] + 10:
    raise ValueError(
        f"config curvature.density_grid={CURVATURE['density_grid']} makes the grid step wider "
        f"than the density's Gaussian width (curvature.density_broadening="
        f"{CURVATURE['density_broadening']}); it must be at least "
        f"1 / density_broadening + 11"
    )
SPECTRUM_RUNS = [first_run(group) for group in SPECTRUM["runs"]]
ALONG_RUNS = [first_run(group) for group in ALONG["runs"]]


# Labels epoch-N of the epoch checkpoints each run saves (those within the epochs it reaches).
ALONG_CHECKPOINTS = {
    run: [
        f"epoch-{epoch}"
        for epoch in saved_epochs(
            run,
            "figures.curvature_along_training.runs",
            1,
            "the curvature-along-training figure",
        )
    ]
    for run in ALONG_RUNS
}


# The final checkpoint of any run (hessian_spectrum, surface_2d's Hessian directions).
rule measure_curvature:
    input:
        unpack(lambda wildcards: curvature_inputs(wildcards.run)),
    output:
        f"{MEASURE_ROOT}/curvature/{{run}}/final.h5",
    log:
        f"{RESULTS}/logs/measure/{DATASET}/{MODEL}/curvature/{{run}}/final.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure/{DATASET}/{MODEL}/curvature/{{run}}/final.tsv"
    priority: LONG_CHAIN_PRIORITY
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        model=MODEL,
        run=lambda wildcards: wildcards.run,
        checkpoints=["final"],
        settings=run_settings,
        curvature=CURVATURE,
        device=config["device"],
    script:
        "../scripts/measure_curvature.py"


# Every epoch checkpoint of one run along training in one job (one interpreter start per run);
# one rule per run, since the checkpoints each run saves differ.
for _run, _checkpoints in ALONG_CHECKPOINTS.items():

    rule:
        name:
            f"measure_curvature_along_{rule_safe(_run)}"
        input:
            **curvature_inputs(_run),
        output:
            [f"{MEASURE_ROOT}/curvature/{_run}/{label}.h5" for label in _checkpoints],
        log:
            f"{RESULTS}/logs/measure/{DATASET}/{MODEL}/curvature/{_run}/along.log",
        benchmark:
            f"{RESULTS}/benchmarks/measure/{DATASET}/{MODEL}/curvature/{_run}/along.tsv"
        priority: LONG_CHAIN_PRIORITY
        conda:
            "../../envs/lossatlas.yaml"
        threads: 1
        resources:
            # cluster size (a profile cannot name generated rules)
            runtime=240,
            mem_mb=16000,
            gpu=1 if config["device"] != "cpu" else 0,
        params:
            model=MODEL,
            run=_run,
            checkpoints=_checkpoints,
            settings=RUNS[_run],
            curvature=CURVATURE,
            device=config["device"],
        script:
            "../scripts/measure_curvature.py"


rule plot_hessian_spectrum:
    input:
        measurements=expand(
            f"{MEASURE_ROOT}/curvature/{{run}}/final.h5", run=SPECTRUM_RUNS
        ),
        regime_solutions=solution_status(SPECTRUM_RUNS),
    output:
        table=f"{MEASURE_ROOT}/hessian_spectrum.csv",
        claims=f"{CLAIMS_ROOT}/hessian_spectrum.csv",
        claims_html=f"{CLAIMS_ROOT}/hessian_spectrum.html",
        pdf=f"{RESULTS}/figures/hessian_spectrum.pdf",
        png=report(
            f"{RESULTS}/figures/hessian_spectrum.png",
            caption="../report/hessian_spectrum.rst",
            category="Curvature",
        ),
    log:
        f"{RESULTS}/logs/figures/hessian_spectrum.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/hessian_spectrum.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        regime=regime_settings(),
        outlier_tolerance=SPECTRUM["outlier_tolerance"],
    script:
        "../scripts/plot_hessian_spectrum.py"


rule plot_curvature_along_training:
    input:
        measurements=[
            f"{MEASURE_ROOT}/curvature/{run}/{checkpoint}.h5"
            for run, checkpoints in ALONG_CHECKPOINTS.items()
            for checkpoint in checkpoints
        ],
        regime_solutions=solution_status(ALONG_CHECKPOINTS),
    output:
        table=f"{MEASURE_ROOT}/curvature_along_training.csv",
        claims=f"{CLAIMS_ROOT}/curvature_along_training.csv",
        claims_html=f"{CLAIMS_ROOT}/curvature_along_training.html",
        pdf=f"{RESULTS}/figures/curvature_along_training.pdf",
        png=report(
            f"{RESULTS}/figures/curvature_along_training.png",
            caption="../report/curvature_along_training.rst",
            category="Curvature",
        ),
    log:
        f"{RESULTS}/logs/figures/curvature_along_training.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/curvature_along_training.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        regime=regime_settings(False, "along training"),
        overlap_k=ALONG["overlap_k"],
        stability_window=ALONG["stability_window"],
        stability_tolerance=ALONG["stability_tolerance"],
        min_overlap=ALONG["min_overlap"],
        min_peak_drop=ALONG["min_peak_drop"],
    script:
        "../scripts/plot_curvature_along_training.py"


rule hessian_spectrum:
    input:
        rules.plot_hessian_spectrum.output,


rule curvature_along_training:
    input:
        rules.plot_curvature_along_training.output,
