# Random-subspace training (intrinsic dimension, Li et al. 2018; the random "cuts" of the wedge
# model, Fort & Jastrzebski 2019): one run group per (init scale, d) plus a full-space baseline
# per init scale, trained by the `train` rule, then one table and figure.
SUBSPACE = config["figures"]["subspace_training"]
# The model of the subspace runs: the config's, with any model knob of the figure's training.
SUBSPACE_KNOBS = {
    **MODEL_SETTINGS,
    **{k: SUBSPACE["training"][k] for k in MODEL_KNOBS if k in SUBSPACE["training"]},
}
SUBSPACE_D = parameter_count(SUBSPACE_KNOBS)
for _dim in SUBSPACE["dims"]:
    if _dim > SUBSPACE_D:
        raise ValueError(
            f"config figures.subspace_training.dims: d={_dim} exceeds D={SUBSPACE_D}, the "
            f"parameter count of {MODEL} {SUBSPACE_KNOBS}"
        )
if len(set(SUBSPACE["dims"])) != len(SUBSPACE["dims"]):
    raise ValueError("config figures.subspace_training.dims: values must be distinct")


SUBSPACE_RUNS = []
for _scale in SUBSPACE["init_scales"]:
    for _dim in [*sorted(SUBSPACE["dims"]), None]:
        _group = f"subspace_a{_scale:g}_" + ("full" if _dim is None else f"d{_dim}")
        _parameterization = (
            {"kind": "full"}
            if _dim is None
            else {
                "kind": "subspace",
                "dim": _dim,
                "orthonormal": SUBSPACE["orthonormal"],
                "projection": SUBSPACE["projection"],
                "memory_budget_mib": SUBSPACE["memory_budget_mib"],
            }
        )
        _overrides = {
            **SUBSPACE["training"],
            "seeds": SUBSPACE["seeds"],
            "init_scale": _scale,
            "parameterization": _parameterization,
        }
        _runs = run_group_table(_group, _overrides, "figures.subspace_training")
        RUNS.update(_runs)
        SUBSPACE_RUNS.extend(_runs)


rule plot_subspace_training:
    input:
        metrics=[f"{RUN_ROOT}/{run}/metrics.csv" for run in SUBSPACE_RUNS],
        status=[f"{RUN_ROOT}/{run}/status.json" for run in SUBSPACE_RUNS],
    output:
        table=f"{MEASURE_ROOT}/subspace_training.csv",
        claims=f"{CLAIMS_ROOT}/subspace_training.csv",
        claims_html=f"{CLAIMS_ROOT}/subspace_training.html",
        pdf=f"{RESULTS}/figures/subspace_training.pdf",
        png=report(
            f"{RESULTS}/figures/subspace_training.png",
            caption="../report/subspace_training.rst",
            category="Wedge model",
        ),
    log:
        f"{RESULTS}/logs/figures/subspace_training.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/subspace_training.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        # d_int is read against the full-space baselines: they are trained solutions and must
        # fit (config regime); the subspace runs themselves train for a fixed budget
        regime=regime_settings(
            True,
            "subspace runs trained for a fixed budget; d_int read from test accuracy against "
            "the full-space baselines",
        ),
        runs=SUBSPACE_RUNS,
        settings={run: RUNS[run] for run in SUBSPACE_RUNS},
        dim_full=SUBSPACE_D,
        fraction=SUBSPACE["fraction"],
    script:
        "../scripts/plot_subspace_training.py"


rule subspace_training:
    input:
        rules.plot_subspace_training.output,
