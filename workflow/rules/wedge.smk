# Wedge-model tests of Fort & Jastrzebski 2019 on independent solutions (one run group, one run
# per seed): long and short directions from the first solution, and 2D cuts through the origin.
# One measurement through the batched evaluator per figure, then a table and a figure.
LONG_SHORT = config["figures"]["long_short_directions"]
CUTS = config["figures"]["wedge_cuts"]
for _key, _settings, _least in (
    ("long_short_directions", LONG_SHORT, 2),
    ("wedge_cuts", CUTS, 2),
):
    check_run_groups(f"figures.{_key}.run", [_settings["run"]])
    if len(run_ids(_settings["run"])) < _least:
        raise ValueError(
            f"config figures.{_key}.run: run group {_settings['run']!r} has "
            f"{len(run_ids(_settings['run']))} seed(s); {_key} needs at least {_least} "
            f"independent solutions (set runs.{_settings['run']}.seeds)"
        )
if LONG_SHORT["hessian_directions"] > config["curvature"]["max_iter"]:
    raise ValueError(
        f"config figures.long_short_directions.hessian_directions="
        f"{LONG_SHORT['hessian_directions']} exceeds curvature.max_iter="
        f"{config['curvature']['max_iter']} (Lanczos needs at least that many iterations)"
    )
if CUTS["offsets"] % 2 == 0:
    raise ValueError(
        "config figures.wedge_cuts.offsets must be odd, so that the offsets contain w = 0 "
        f"(the ray itself); got {CUTS['offsets']}"
    )
LONG_SHORT_RUNS = run_ids(LONG_SHORT["run"])
CUTS_RUNS = run_ids(CUTS["run"])[:2]
_dim_full = parameter_count(RUNS[LONG_SHORT_RUNS[0]]["model"])
for _key in ("random_directions", "hessian_directions"):
    if LONG_SHORT[_key] > _dim_full:
        raise ValueError(
            f"config figures.long_short_directions.{_key}={LONG_SHORT[_key]} exceeds D="
            f"{_dim_full}, the parameter count of the solutions of {LONG_SHORT['run']!r}"
        )


rule measure_long_short_directions:
    input:
        data=f"resources/data/{DATASET}.h5",
        final=[f"{RUN_ROOT}/{run}/final.pt" for run in LONG_SHORT_RUNS],
        status=[f"{RUN_ROOT}/{run}/status.json" for run in LONG_SHORT_RUNS],
    output:
        f"{MEASURE_ROOT}/long_short_directions.h5",
    log:
        f"{RESULTS}/logs/measure/{DATASET}/{MODEL}/long_short_directions.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure/{DATASET}/{MODEL}/long_short_directions.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        model=MODEL,
        runs=LONG_SHORT_RUNS,
        settings={run: RUNS[run] for run in LONG_SHORT_RUNS},
        figure=LONG_SHORT,
        curvature=config["curvature"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/measure_long_short_directions.py"


# Both planes in one job: through the origin and two solutions, and the origin, an init and its
# solution.
rule measure_wedge_cuts:
    input:
        data=f"resources/data/{DATASET}.h5",
        final=[f"{RUN_ROOT}/{run}/final.pt" for run in CUTS_RUNS],
        status=[f"{RUN_ROOT}/{run}/status.json" for run in CUTS_RUNS],
        init=f"{RUN_ROOT}/{CUTS_RUNS[0]}/init.pt",
    output:
        solutions=f"{MEASURE_ROOT}/wedge_cuts/solutions_plane.h5",
        init=f"{MEASURE_ROOT}/wedge_cuts/init_plane.h5",
    log:
        f"{RESULTS}/logs/measure/{DATASET}/{MODEL}/wedge_cuts.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure/{DATASET}/{MODEL}/wedge_cuts.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        model=MODEL,
        runs=CUTS_RUNS,
        settings={run: RUNS[run] for run in CUTS_RUNS},
        figure=CUTS,
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/measure_wedge_cuts.py"


rule plot_long_short_directions:
    input:
        measurement=rules.measure_long_short_directions.output[0],
        regime_solutions=solution_status(LONG_SHORT_RUNS),
    output:
        table=f"{MEASURE_ROOT}/long_short_directions.csv",
        claims=f"{CLAIMS_ROOT}/long_short_directions.csv",
        claims_html=f"{CLAIMS_ROOT}/long_short_directions.html",
        pdf=f"{RESULTS}/figures/long_short_directions.pdf",
        png=report(
            f"{RESULTS}/figures/long_short_directions.png",
            caption="../report/long_short_directions.rst",
            category="Wedge model",
        ),
    log:
        f"{RESULTS}/logs/figures/long_short_directions.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/long_short_directions.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        regime=regime_settings(),
        runs=LONG_SHORT_RUNS,
    script:
        "../scripts/plot_long_short_directions.py"


rule plot_wedge_cuts:
    input:
        solutions=rules.measure_wedge_cuts.output.solutions,
        init=rules.measure_wedge_cuts.output.init,
        regime_solutions=solution_status(CUTS_RUNS),
    output:
        table=f"{MEASURE_ROOT}/wedge_cuts.csv",
        claims=f"{CLAIMS_ROOT}/wedge_cuts.csv",
        claims_html=f"{CLAIMS_ROOT}/wedge_cuts.html",
        pdf=f"{RESULTS}/figures/wedge_cuts.pdf",
        png=report(
            f"{RESULTS}/figures/wedge_cuts.png",
            caption="../report/wedge_cuts.rst",
            category="Wedge model",
        ),
    log:
        f"{RESULTS}/logs/figures/wedge_cuts.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/wedge_cuts.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        regime=regime_settings(),
        runs=CUTS_RUNS,
    script:
        "../scripts/plot_wedge_cuts.py"


rule long_short_directions:
    input:
        rules.plot_long_short_directions.output,


rule wedge_cuts:
    input:
        rules.plot_wedge_cuts.output,
