# Training. Runs that share the architecture and the step plan (batch_key) train together as one
# vmapped batch of at most batch_training.max_members runs; a job (rule train_batch_NAME, named
# after its first batch) trains at most batch_training.batches_per_job batches of one config entry
# one after the other. Every other run trains alone in rule `train`, a batch of one through the
# same loop. Either way each run gets the same files in its run directory. Included after every
# file that adds runs.
from lossatlas.runs import RUN_FILES

# Cluster size of one batch job (a Snakemake profile cannot name generated rules).
# A batch of seeds of the widest paper model (3 ResNet-20 of width 64, 100 epochs) is about 11 GPU
# hours by the cost plan (workflow/plan.py).
BATCH_RESOURCES = {"runtime": 720, "mem_mb": 16000}
TRAIN_BATCHES = plan_batches()
TRAIN_BATCH_JOBS = plan_batch_jobs(TRAIN_BATCHES)
BATCH_OF = {run: name for name, members in TRAIN_BATCHES.items() for run in members}
# The run ids rule `train` makes: every run neither trained in a batch nor given by files.
_not_alone = "|".join(re.escape(run) for run in [*BATCH_OF, *EXTERNAL_RUNS]) or "(?!)"
SINGLE_RUN_PATTERN = rf"(?!(?:{_not_alone})(?![\w.-]))[A-Za-z0-9_.]+-s\d+"


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
        f"{RESULTS}/logs/train/{DATASET}/{MODEL}/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{DATASET}/{MODEL}/{{run}}.tsv"
    wildcard_constraints:
        run=SINGLE_RUN_PATTERN,
    priority: LONG_CHAIN_PRIORITY
    conda:
        "../../envs/lossatlas.yaml"
    threads: 1
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        batches=lambda wildcards: {wildcards.run: [wildcards.run]},
        runs=lambda wildcards: {wildcards.run: run_settings(wildcards)},
        run_dirs=lambda wildcards: {wildcards.run: run_dir(wildcards.run)},
        model=MODEL,
        device=config["device"],
        resume=lambda wildcards: {wildcards.run: f"{run_dir(wildcards.run)}/resume.pt"},
    script:
        "../scripts/train.py"


for _job, _batches in TRAIN_BATCH_JOBS.items():
    _members = [run for members in _batches.values() for run in members]

    rule:
        name:
            f"train_batch_{_job}"
        input:
            data=f"resources/data/{DATASET}.h5",
            init=[],
        output:
            [f"{run_dir(run)}/{name}" for run in _members for name in RUN_FILES],
        log:
            f"{RESULTS}/logs/train/{DATASET}/{MODEL}/batch_{_job}.log",
        benchmark:
            f"{RESULTS}/benchmarks/train/{DATASET}/{MODEL}/batch_{_job}.tsv"
        priority: LONG_CHAIN_PRIORITY
        conda:
            "../../envs/lossatlas.yaml"
        threads: 1
        resources:
            **BATCH_RESOURCES,
            gpu=1 if config["device"] != "cpu" else 0,
        params:
            batches=_batches,
            runs={run: RUNS[run] for run in _members},
            run_dirs={run: run_dir(run) for run in _members},
            model=MODEL,
            device=config["device"],
            resume={
                batch: f"{RESULTS}/batches/{DATASET}/{MODEL}/{batch}.resume.pt"
                for batch in _batches
            },
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
            f"{RESULTS}/logs/import/{DATASET}/{MODEL}/{{run}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/import/{DATASET}/{MODEL}/{{run}}.tsv"
        wildcard_constraints:
            run=EXTERNAL_RUN,
        conda:
            "../../envs/lossatlas.yaml"
        threads: 1
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
            f"{RESULTS}/logs/import/{DATASET}/{MODEL}/{{run}}.init.log",
        benchmark:
            f"{RESULTS}/benchmarks/import/{DATASET}/{MODEL}/{{run}}.init.tsv"
        wildcard_constraints:
            run=_EXTERNAL_INIT or "(?!)",
        conda:
            "../../envs/lossatlas.yaml"
        params:
            model=MODEL,
            settings=run_settings,
        script:
            "../scripts/import_run.py"
