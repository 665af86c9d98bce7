LB_SB = config["figures"]["lb_sb_interpolation"]
for _key in ("small_batch_run", "large_batch_run", "continuation_run"):
    if LB_SB[_key] is not None:
        check_run_groups(f"figures.lb_sb_interpolation.{_key}", [LB_SB[_key]])
if not (
    LB_SB["alpha_min"] <= -LB_SB["rise_alpha"]
    and 1 + LB_SB["rise_alpha"] <= LB_SB["alpha_max"]
):
    raise ValueError(
        f"config figures.lb_sb_interpolation.rise_alpha={LB_SB['rise_alpha']} must fit outside "
        f"both solutions: alpha_min <= -rise_alpha and 1 + rise_alpha <= alpha_max"
    )
LB_SB_RUNS = [
    run
    for key in ("large_batch_run", "small_batch_run", "continuation_run")
    if LB_SB[key] is not None
    for run in run_ids(LB_SB[key])
]


rule measure_lb_sb_interpolation:
    input:
        data=f"resources/data/{DATASET}.h5",
        finals=expand(f"{RUN_ROOT}/{{run}}/final.pt", run=LB_SB_RUNS),
        statuses=expand(f"{RUN_ROOT}/{{run}}/status.json", run=LB_SB_RUNS),
    output:
        f"{MEASURE_ROOT}/lb_sb_interpolation.csv",
    log:
        f"{RESULTS}/logs/measure/{DATASET}/{MODEL}/lb_sb_interpolation.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure/{DATASET}/{MODEL}/lb_sb_interpolation.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        model=MODEL,
        runs={run: RUNS[run] for run in LB_SB_RUNS},
        run_ids=LB_SB_RUNS,
        large_batch=run_ids(LB_SB["large_batch_run"]),
        small_batch=run_ids(LB_SB["small_batch_run"]),
        continuation=(
            run_ids(LB_SB["continuation_run"]) if LB_SB["continuation_run"] else []
        ),
        alpha_min=LB_SB["alpha_min"],
        alpha_max=LB_SB["alpha_max"],
        points=LB_SB["points"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/measure_lb_sb_interpolation.py"


rule plot_lb_sb_interpolation:
    input:
        table=f"{MEASURE_ROOT}/lb_sb_interpolation.csv",
        regime_solutions=solution_status(LB_SB_RUNS),
    output:
        claims=f"{CLAIMS_ROOT}/lb_sb_interpolation.csv",
        claims_html=f"{CLAIMS_ROOT}/lb_sb_interpolation.html",
        pdf=f"{RESULTS}/figures/lb_sb_interpolation.pdf",
        png=report(
            f"{RESULTS}/figures/lb_sb_interpolation.png",
            caption="../report/lb_sb_interpolation.rst",
            category="Large vs small batch",
        ),
    log:
        f"{RESULTS}/logs/figures/lb_sb_interpolation.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/lb_sb_interpolation.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        regime=regime_settings(),
        rise_alpha=LB_SB["rise_alpha"],
    script:
        "../scripts/plot_lb_sb_interpolation.py"


rule lb_sb_interpolation:
    input:
        f"{RESULTS}/figures/lb_sb_interpolation.pdf",
        f"{RESULTS}/figures/lb_sb_interpolation.png",
