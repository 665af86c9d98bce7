# One claims table for every figure: each figure rule writes its claim rows to
# {CLAIMS_ROOT}/{figure}.csv (lossatlas.claims.write_claims); the dataset sanity rows compare the
# configured model and a reference model with the dataset's published test accuracies; `claims`
# gathers them into {RESULTS}/claims.csv, .md and .html, and claims_table.html (the same table
# without its page, the opening of the report), RESULTS the config's folder (common.smk).
from lossatlas.figure_claims import PUBLISHED_TEST_ACCURACY

SANITY = config["dataset_sanity"]
check_run_groups("dataset_sanity.run", [SANITY["run"]])
REFERENCE_ROOT = f"{RESULTS}/runs/{DATASET}/reference"
# The reference run is trained only where the dataset has a published accuracy for its model.
REFERENCE_RUN = (
    f"{SANITY['reference_model']}-s0"
    if SANITY["reference_model"] in PUBLISHED_TEST_ACCURACY.get(DATASET, {})
    else None
)
REFERENCE_SETTINGS = canonical(
    {
        **config["training"],
        **SANITY["reference_training"],
        "seed": 0,
        "model": {},
        "parameterization": {"kind": "full"},
    }
)
CLAIM_SOURCES = [*FIGURES, "dataset_sanity"]


rule train_reference:
    input:
        data=f"resources/data/{DATASET}.h5",
        init=[],
    output:
        final=f"{REFERENCE_ROOT}/{{run}}/final.pt",
        init=f"{REFERENCE_ROOT}/{{run}}/init.pt",
        trajectory=f"{REFERENCE_ROOT}/{{run}}/trajectory.pt",
        trainable=f"{REFERENCE_ROOT}/{{run}}/trainable.pt",
        metrics=f"{REFERENCE_ROOT}/{{run}}/metrics.csv",
        status=f"{REFERENCE_ROOT}/{{run}}/status.json",
    log:
        f"{RESULTS}/logs/train/{DATASET}/reference/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{DATASET}/reference/{{run}}.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        batches=lambda wildcards: {wildcards.run: [wildcards.run]},
        runs=lambda wildcards: {wildcards.run: REFERENCE_SETTINGS},
        run_dirs=lambda wildcards: {wildcards.run: f"{REFERENCE_ROOT}/{wildcards.run}"},
        model=SANITY["reference_model"],
        device=config["device"],
        resume=lambda wildcards: {
            wildcards.run: f"{REFERENCE_ROOT}/{wildcards.run}/resume.pt"
        },
    script:
        "../scripts/train.py"


rule dataset_sanity:
    input:
        run_status=f"{RUN_ROOT}/{first_run(SANITY['run'])}/status.json",
        reference_status=(
            [f"{REFERENCE_ROOT}/{REFERENCE_RUN}/status.json"] if REFERENCE_RUN else []
        ),
    output:
        f"{CLAIMS_ROOT}/dataset_sanity.csv",
        f"{CLAIMS_ROOT}/dataset_sanity.html",
    log:
        f"{RESULTS}/logs/claims/dataset_sanity.log",
    benchmark:
        f"{RESULTS}/benchmarks/claims/dataset_sanity.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        dataset=DATASET,
        model=MODEL,
        run=first_run(SANITY["run"]),
        reference_model=SANITY["reference_model"],
        reference_run=REFERENCE_RUN,
        tolerance=SANITY["tolerance"],
    script:
        "../scripts/dataset_sanity.py"


rule claims:
    input:
        own=expand(f"{CLAIMS_ROOT}/{{source}}.csv", source=CLAIM_SOURCES),
        second_scale=[
            f"{RESULTS}/scales/{SECOND_SCALE['name']}/measurements/{DATASET}/{MODEL}/"
            f"claims/{figure}.csv"
            for figure in (SECOND_SCALE["figures"] if SECOND_SCALE else [])
        ],
    output:
        csv=f"{RESULTS}/claims.csv",
        markdown=f"{RESULTS}/claims.md",
        html=report(f"{RESULTS}/claims.html", category="Claims"),
        report_table=f"{RESULTS}/claims_table.html",
    log:
        f"{RESULTS}/logs/claims/claims.log",
    benchmark:
        f"{RESULTS}/benchmarks/claims/claims.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        config_name=CONFIG_NAME,
        scale=SCALE,
        second_scale=SECOND_SCALE_LABEL,
    script:
        "../scripts/gather_claims.py"


rule plot_claims_by_scale:
    input:
        claims=rules.claims.output.csv,
    output:
        table=f"{MEASURE_ROOT}/claims_by_scale.csv",
        pdf=f"{RESULTS}/figures/claims_by_scale.pdf",
        png=report(
            f"{RESULTS}/figures/claims_by_scale.png",
            caption="../report/claims_by_scale.rst",
            category="Claims",
        ),
    log:
        f"{RESULTS}/logs/figures/claims_by_scale.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/claims_by_scale.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        scale=SCALE,
    script:
        "../scripts/plot_claims_by_scale.py"


rule claims_by_scale:
    input:
        rules.plot_claims_by_scale.output,
