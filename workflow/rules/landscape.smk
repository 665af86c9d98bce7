# Li et al. 2018 surfaces, trajectory PCA, MLI (Goodfellow et al. 2015; Lucas et al. 2021) and the
# SGD walk (Xing et al. 2018): each a measurement through the batched engine, then a figure.
SURFACE = config["figures"]["surface_2d"]
TRAJECTORY = config["figures"]["trajectory_pca"]
MLI = config["figures"]["mli"]
WALK = config["figures"]["sgd_walk"]
MLI["runs"] = MLI["runs"] or [
    name
    for name, run in config["runs"].items()
    if "init_from" not in run and "init" in run.get("checkpoints", {"init": None})
]
for _key, _groups in (
    ("surface_2d.runs", SURFACE["runs"]),
    ("trajectory_pca.run", [TRAJECTORY["run"]]),
    ("mli.runs", MLI["runs"]),
    ("sgd_walk.run", [WALK["run"]]),
):
    check_run_groups(f"figures.{_key}", _groups)
_walk = RUNS[first_run(WALK["run"])]
if _walk["checkpoint_step_range"] is None:
    raise ValueError(
        f"config figures.sgd_walk.run: run {WALK['run']!r} saves no step checkpoints; "
        f"set runs.{WALK['run']}.checkpoint_step_range"
    )
_start, _stop = _walk["checkpoint_step_range"]
if _stop - _start < 2 or _stop - 1 > total_steps(_walk):
    raise ValueError(
        f"config runs.{WALK['run']}.checkpoint_step_range={[_start, _stop]}: the SGD walk "
        f"needs at least 2 step checkpoints within the run's {total_steps(_walk)} steps"
    )
saved_epochs(
    first_run(TRAJECTORY["run"]), "figures.trajectory_pca.run", 3, "the trajectory PCA"
)
if SURFACE["roughness_points"] % 2 == 0:
    raise ValueError(
        "config figures.surface_2d.roughness_points must be odd, so that the profiles "
        f"contain α = 0; got {SURFACE['roughness_points']}"
    )
if SURFACE["parts"] > SURFACE["xnum"] * SURFACE["ynum"]:
    raise ValueError(
        f"config figures.surface_2d.parts={SURFACE['parts']} exceeds the "
        f"xnum x ynum = {SURFACE['xnum'] * SURFACE['ynum']} points of the grid; a part "
        "would be empty"
    )
SURFACE_RUNS = [first_run(group) for group in SURFACE["runs"]]
SURFACE_KINDS = ["random", "hessian"]
# The settings a solution's surfaces job uses (a change of another key does not rerun it); its
# surface files carry the grid keys as attributes.
_DIRECTION_KEYS = ["bn_policy", "ignore_biasbn", "normalization"]
SURFACE_GRID_KEYS = [
    *_DIRECTION_KEYS,
    "direction_seed",
    "hessian_extent",
    "parts",
    "width_delta",
    "xmax",
    "xmin",
    "xnum",
    "ymax",
    "ymin",
    "ynum",
]
SURFACE_KEYS = [*SURFACE_GRID_KEYS, "roughness_directions", "roughness_points"]
MLI_RUNS = [run for group in MLI["runs"] for run in run_ids(group)]


# One job per solution measures both direction kinds' surfaces and its roughness profiles (one
# interpreter start); in several parts, each part measures its share of all three and a merge job
# per solution assembles them (a large grid spread over a cluster).
SURFACE_SINGLE = SURFACE["parts"] == 1
_SURFACE_PART = "" if SURFACE_SINGLE else ".part{part}"


# A solution's surface files, whole (SURFACE_OUTPUTS) or as part {part} (SURFACE_PART_OUTPUTS).
_SURFACE_FILES = {
    "random": (f"{MEASURE_ROOT}/surface_2d/random/{{run}}", "h5"),
    "hessian": (f"{MEASURE_ROOT}/surface_2d/hessian/{{run}}", "h5"),
    "roughness": (f"{MEASURE_ROOT}/roughness/{{run}}", "csv"),
}
SURFACE_OUTPUTS = {key: f"{stem}.{ext}" for key, (stem, ext) in _SURFACE_FILES.items()}
SURFACE_PART_OUTPUTS = {
    key: f"{stem}.part{{part}}.{ext}" for key, (stem, ext) in _SURFACE_FILES.items()
}


rule measure_surfaces:
    input:
        data=f"resources/data/{DATASET}.h5",
        final=f"{RUN_ROOT}/{{run}}/final.pt",
        status=f"{RUN_ROOT}/{{run}}/status.json",
        curvature=f"{MEASURE_ROOT}/curvature/{{run}}/final.h5",
    output:
        **(
            SURFACE_OUTPUTS
            if SURFACE_SINGLE
            else {key: temp(path) for key, path in SURFACE_PART_OUTPUTS.items()}
        ),
    log:
        f"{RESULTS}/logs/measure/{DATASET}/{MODEL}/surfaces/{{run}}{_SURFACE_PART}.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure/{DATASET}/{MODEL}/surfaces/{{run}}{_SURFACE_PART}.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        model=MODEL,
        run_settings=run_settings,
        settings={key: SURFACE[key] for key in SURFACE_KEYS},
        surface_attrs={key: SURFACE[key] for key in SURFACE_GRID_KEYS},
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/surfaces.py"


if not SURFACE_SINGLE:

    rule merge_surfaces:
        input:
            **{
                key: expand(path, run="{run}", part=range(SURFACE["parts"]))
                for key, path in SURFACE_PART_OUTPUTS.items()
            },
        output:
            **SURFACE_OUTPUTS,
        log:
            f"{RESULTS}/logs/measure/{DATASET}/{MODEL}/surfaces/{{run}}.merge.log",
        benchmark:
            f"{RESULTS}/benchmarks/measure/{DATASET}/{MODEL}/surfaces/{{run}}.merge.tsv"
        conda:
            "../../envs/lossatlas.yaml"
        params:
            surface_attrs={key: SURFACE[key] for key in SURFACE_GRID_KEYS},
        script:
            "../scripts/surfaces_merge.py"


rule surface_vtk:
    input:
        f"{MEASURE_ROOT}/{{surface}}.h5",
    output:
        f"{MEASURE_ROOT}/{{surface}}.{{metric}}.vts",
    log:
        f"{RESULTS}/logs/measure/{DATASET}/{MODEL}/{{surface}}.{{metric}}.vts.log",
    wildcard_constraints:
        surface=r"(surface_2d/(random|hessian)|trajectory_pca)/[A-Za-z0-9_.]+-s\d+",
        metric="train_loss|train_acc|test_loss|test_acc",
    conda:
        "../../envs/lossatlas.yaml"
    script:
        "../scripts/surface_vtk.py"


rule plot_surface_2d:
    input:
        surfaces=expand(
            f"{MEASURE_ROOT}/surface_2d/{{kind}}/{{run}}.h5",
            kind=SURFACE_KINDS,
            run=SURFACE_RUNS,
        ),
        roughness=expand(f"{MEASURE_ROOT}/roughness/{{run}}.csv", run=SURFACE_RUNS),
        regime_solutions=solution_status(SURFACE_RUNS),
    output:
        claims=f"{CLAIMS_ROOT}/surface_2d.csv",
        claims_html=f"{CLAIMS_ROOT}/surface_2d.html",
        pdf=f"{RESULTS}/figures/surface_2d.pdf",
        png=report(
            f"{RESULTS}/figures/surface_2d.png",
            caption="../report/surface_2d.rst",
            category="Loss surfaces",
        ),
    log:
        f"{RESULTS}/logs/figures/surface_2d.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/surface_2d.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        regime=regime_settings(),
        runs=SURFACE_RUNS,
        kinds=SURFACE_KINDS,
        small_batch=first_run(LB_SB["small_batch_run"]),
        large_batch=first_run(LB_SB["large_batch_run"]),
        width_delta=SURFACE["width_delta"],
    script:
        "../scripts/plot_surface_2d.py"


rule measure_trajectory_pca:
    input:
        data=f"resources/data/{DATASET}.h5",
        trajectory=f"{RUN_ROOT}/{{run}}/trajectory.pt",
        final=f"{RUN_ROOT}/{{run}}/final.pt",
        status=f"{RUN_ROOT}/{{run}}/status.json",
    output:
        surface=f"{MEASURE_ROOT}/trajectory_pca/{{run}}.h5",
        directions=f"{MEASURE_ROOT}/trajectory_pca/{{run}}.directions.h5",
    log:
        f"{RESULTS}/logs/measure/{DATASET}/{MODEL}/trajectory_pca/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure/{DATASET}/{MODEL}/trajectory_pca/{{run}}.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        model=MODEL,
        run_settings=run_settings,
        settings=TRAJECTORY,
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/trajectory_pca.py"


rule plot_trajectory_pca:
    input:
        measurement=f"{MEASURE_ROOT}/trajectory_pca/{first_run(TRAJECTORY['run'])}.h5",
        regime_solutions=solution_status([first_run(TRAJECTORY["run"])]),
    output:
        claims=f"{CLAIMS_ROOT}/trajectory_pca.csv",
        claims_html=f"{CLAIMS_ROOT}/trajectory_pca.html",
        pdf=f"{RESULTS}/figures/trajectory_pca.pdf",
        png=report(
            f"{RESULTS}/figures/trajectory_pca.png",
            caption="../report/trajectory_pca.rst",
            category="Loss surfaces",
        ),
    log:
        f"{RESULTS}/logs/figures/trajectory_pca.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/trajectory_pca.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        regime=regime_settings(False, "along training"),
        min_explained_variance=TRAJECTORY["min_explained_variance"],
    script:
        "../scripts/plot_trajectory_pca.py"


# Every line of the MLI sweep in one job (one interpreter start for all of them).
rule measure_mli_lines:
    input:
        data=f"resources/data/{DATASET}.h5",
        init=[f"{RUN_ROOT}/{run}/init.pt" for run in MLI_RUNS],
        final=[f"{RUN_ROOT}/{run}/final.pt" for run in MLI_RUNS],
        status=[f"{RUN_ROOT}/{run}/status.json" for run in MLI_RUNS],
    output:
        curves=[f"{MEASURE_ROOT}/mli/{run}.curve.csv" for run in MLI_RUNS],
        metrics=[f"{MEASURE_ROOT}/mli/{run}.metrics.csv" for run in MLI_RUNS],
    log:
        f"{RESULTS}/logs/measure/{DATASET}/{MODEL}/mli.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure/{DATASET}/{MODEL}/mli.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        model=MODEL,
        runs=MLI_RUNS,
        settings={run: RUNS[run] for run in MLI_RUNS},
        mli=MLI,
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/mli_lines.py"


rule plot_mli:
    input:
        curves=rules.measure_mli_lines.output.curves,
        metrics=rules.measure_mli_lines.output.metrics,
        regime_solutions=solution_status(MLI_RUNS),
    output:
        table=f"{MEASURE_ROOT}/mli.csv",
        claims=f"{CLAIMS_ROOT}/mli.csv",
        claims_html=f"{CLAIMS_ROOT}/mli.html",
        pdf=f"{RESULTS}/figures/mli.pdf",
        png=report(
            f"{RESULTS}/figures/mli.png",
            caption="../report/mli.rst",
            category="Linear interpolation",
        ),
    log:
        f"{RESULTS}/logs/figures/mli.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/mli.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        regime=regime_settings(),
        min_monotonic_fraction=MLI["min_monotonic_fraction"],
    script:
        "../scripts/plot_mli.py"


rule measure_sgd_walk:
    input:
        data=f"resources/data/{DATASET}.h5",
        trajectory=f"{RUN_ROOT}/{{run}}/trajectory.pt",
        status=f"{RUN_ROOT}/{{run}}/status.json",
    output:
        f"{MEASURE_ROOT}/sgd_walk/{{run}}.csv",
    log:
        f"{RESULTS}/logs/measure/{DATASET}/{MODEL}/sgd_walk/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure/{DATASET}/{MODEL}/sgd_walk/{{run}}.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        model=MODEL,
        run_settings=run_settings,
        settings=WALK,
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/sgd_walk.py"


rule plot_sgd_walk:
    input:
        walk=f"{MEASURE_ROOT}/sgd_walk/{first_run(WALK['run'])}.csv",
        regime_solutions=solution_status([first_run(WALK["run"])]),
    output:
        claims=f"{CLAIMS_ROOT}/sgd_walk.csv",
        claims_html=f"{CLAIMS_ROOT}/sgd_walk.html",
        pdf=f"{RESULTS}/figures/sgd_walk.pdf",
        png=report(
            f"{RESULTS}/figures/sgd_walk.png",
            caption="../report/sgd_walk.rst",
            category="Linear interpolation",
        ),
    log:
        f"{RESULTS}/logs/figures/sgd_walk.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/sgd_walk.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        regime=regime_settings(False, "along training"),
        run=first_run(WALK["run"]),
        min_interior_fraction=WALK["min_interior_fraction"],
    script:
        "../scripts/plot_sgd_walk.py"


rule surface_2d:
    input:
        rules.plot_surface_2d.output,


rule trajectory_pca:
    input:
        rules.plot_trajectory_pca.output,


rule mli:
    input:
        rules.plot_mli.output,


rule sgd_walk:
    input:
        rules.plot_sgd_walk.output,
