rule train:
    input:
        data=f"resources/data/{DATASET}.h5",
        init=init_checkpoint,
    output:
        final=f"{RUN_ROOT}/{{run}}/final.pt",
        init=f"{RUN_ROOT}/{{run}}/init.pt",
        trajectory=f"{RUN_ROOT}/{{run}}/trajectory.pt",
        trainable=f"{RUN_ROOT}/{{run}}/trainable.pt",
        metrics=f"{RUN_ROOT}/{{run}}/metrics.csv",
        status=f"{RUN_ROOT}/{{run}}/status.json",
    log:
        f"results/logs/train/{DATASET}/{MODEL}/{{run}}.log",
    benchmark:
        f"results/benchmarks/train/{DATASET}/{MODEL}/{{run}}.tsv"
    wildcard_constraints:
        run=TRAINED_RUN,
    conda:
        "../../envs/lossatlas.yaml"
    threads: 2
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        settings=run_settings_json,
        model=MODEL,
        device=config["device"],
        resume=lambda wildcards: f"{run_dir(wildcards.run)}/resume.pt",
    script:
        "../scripts/train.py"


# Runs given by their checkpoint files (runs.NAME.checkpoints) are imported instead of trained.
if EXTERNAL_RUNS:
    _EXTERNAL_INIT = "|".join(
        re.escape(run) for run in EXTERNAL_RUNS if "init" in RUNS[run]["checkpoints"]
    )

    rule import_run:
        input:
            data=f"resources/data/{DATASET}.h5",
            checkpoints=lambda wildcards: [
                path
                for label, path in RUNS[wildcards.run]["checkpoints"].items()
                if label != "init"
            ],
        output:
            final=f"{RUN_ROOT}/{{run}}/final.pt",
            trajectory=f"{RUN_ROOT}/{{run}}/trajectory.pt",
            metrics=f"{RUN_ROOT}/{{run}}/metrics.csv",
            status=f"{RUN_ROOT}/{{run}}/status.json",
        log:
            f"results/logs/import/{DATASET}/{MODEL}/{{run}}.log",
        benchmark:
            f"results/benchmarks/import/{DATASET}/{MODEL}/{{run}}.tsv"
        wildcard_constraints:
            run=EXTERNAL_RUN,
        conda:
            "../../envs/lossatlas.yaml"
        threads: 2
        resources:
            gpu=1 if config["device"] != "cpu" else 0,
        params:
            model=MODEL,
            settings=run_settings,
            device=config["device"],
        script:
            "../scripts/import_run.py"

    rule import_run_init:
        input:
            data=f"resources/data/{DATASET}.h5",
            init=lambda wildcards: RUNS[wildcards.run]["checkpoints"]["init"],
        output:
            f"{RUN_ROOT}/{{run}}/init.pt",
        log:
            f"results/logs/import/{DATASET}/{MODEL}/{{run}}.init.log",
        benchmark:
            f"results/benchmarks/import/{DATASET}/{MODEL}/{{run}}.init.tsv"
        wildcard_constraints:
            run=_EXTERNAL_INIT or "(?!)",
        conda:
            "../../envs/lossatlas.yaml"
        params:
            model=MODEL,
            settings=run_settings,
        script:
            "../scripts/import_run.py"
