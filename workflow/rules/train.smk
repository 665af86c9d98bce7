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
