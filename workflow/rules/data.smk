rule prepare_dataset:
    output:
        "resources/data/{dataset}.h5",
    params:
        mirror=config["dataset"]["mirror"],
        download_dir="resources/downloads",
    log:
        "results/logs/prepare_dataset/{dataset}.log",
    conda:
        "../../envs/lossatlas.yaml"
    script:
        "../scripts/prepare_dataset.py"
