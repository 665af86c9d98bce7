# Goldilocks zone (Fort & Scherlis 2019): curvature of the loss at a seeded random init rescaled to
# several radii (one measurement job), then the figure with the subspace-training success overlaid.
GOLDILOCKS = config["figures"]["goldilocks"]
# The model of the subspace-training figure, whose success the figure overlays.
GOLDILOCKS_KNOBS = dict(SUBSPACE_KNOBS)
GOLDILOCKS_D = parameter_count(GOLDILOCKS_KNOBS)
if GOLDILOCKS["subspace_dim"] > GOLDILOCKS_D:
    raise ValueError(
        f"config figures.goldilocks.subspace_dim={GOLDILOCKS['subspace_dim']} exceeds "
        f"D={GOLDILOCKS_D}, the parameter count of {MODEL} {GOLDILOCKS_KNOBS}"
    )
_scales = GOLDILOCKS["radius_scales"]
if any(b <= a for a, b in zip(_scales, _scales[1:])):
    raise ValueError(
        f"config figures.goldilocks.radius_scales={_scales} must increase strictly"
    )
_overlay_dims = config["figures"]["subspace_training"]["dims"]
if GOLDILOCKS["overlay_dim"] is not None:
    if GOLDILOCKS["overlay_dim"] not in _overlay_dims:
        raise ValueError(
            f"config figures.goldilocks.overlay_dim={GOLDILOCKS['overlay_dim']} is not one "
            f"of figures.subspace_training.dims={_overlay_dims}"
        )
elif not any(d < GOLDILOCKS_D / 10 for d in _overlay_dims):
    raise ValueError(
        f"config figures.goldilocks.overlay_dim is null but no d of "
        f"figures.subspace_training.dims={_overlay_dims} is below D/10={GOLDILOCKS_D / 10:g}; "
        "set figures.goldilocks.overlay_dim"
    )


rule measure_goldilocks:
    input:
        data=f"resources/data/{DATASET}.h5",
    output:
        f"{MEASURE_ROOT}/goldilocks.h5",
    log:
        f"{RESULTS}/logs/measure/{DATASET}/{MODEL}/goldilocks.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure/{DATASET}/{MODEL}/goldilocks.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        model=MODEL,
        knobs=GOLDILOCKS_KNOBS,
        goldilocks=GOLDILOCKS,
        train_fraction=config["training"]["train_fraction"],
        label_noise=config["training"]["label_noise"],
        device=config["device"],
    script:
        "../scripts/measure_goldilocks.py"


rule plot_goldilocks:
    input:
        measurement=rules.measure_goldilocks.output[0],
        subspace=rules.plot_subspace_training.output.table,
    output:
        table=f"{MEASURE_ROOT}/goldilocks.csv",
        claims=f"{CLAIMS_ROOT}/goldilocks.csv",
        claims_html=f"{CLAIMS_ROOT}/goldilocks.html",
        pdf=f"{RESULTS}/figures/goldilocks.pdf",
        png=report(
            f"{RESULTS}/figures/goldilocks.png",
            caption="../report/goldilocks.rst",
            category="Wedge model",
        ),
    log:
        f"{RESULTS}/logs/figures/goldilocks.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/goldilocks.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        regime=regime_settings(False, "at random initialization (no trained solution)"),
        overlay_dim=GOLDILOCKS["overlay_dim"],
    script:
        "../scripts/plot_goldilocks.py"


rule goldilocks:
    input:
        rules.plot_goldilocks.output,
