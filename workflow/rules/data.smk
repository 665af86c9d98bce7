# The dataset is prepared on the submitting machine: it may download, and compute nodes often have
# no network.
localrules:
    prepare_dataset,


rule prepare_dataset:
    input:
        # a dataset of your own: its file or ImageFolder directory
        lambda wildcards: (
            [config["dataset"]["path"]]
            if wildcards.dataset == DATASET and "path" in config["dataset"]
            else []
        ),
    output:
        "resources/data/{dataset}.h5",
    log:
        f"{RESULTS}/logs/prepare_dataset/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_dataset/{{dataset}}.tsv"
    conda:
        "../../envs/lossatlas.yaml"
    params:
        mirror=config["dataset"]["mirror"],
        download_dir="resources/downloads",
        source=lambda wildcards, input: input[0] if input else None,
    script:
        "../scripts/prepare_dataset.py"
