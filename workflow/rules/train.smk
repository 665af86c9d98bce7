# Training. Runs that share the architecture and the step plan (batch_key) train together in one
# job as one vmapped batch of at most batch_training.max_members runs (rule train_batch_NAME, one
# per batch, named after its first run); every other run trains alone in rule `train`. Either way
# each run gets the same files in its run directory. Included after every file that adds runs.
import re

from lossatlas.functional import has_batch_norm
from lossatlas.runs import RUN_FILES

MAX_BATCH_MEMBERS = config["batch_training"]["max_members"]
# Cluster size of one batch job (a Snakemake profile cannot name generated rules).
BATCH_RESOURCES = {"runtime": 240, "mem_mb": 16000}
_BATCH_SHARED = (
    "optimizer",
    "batch_size",
    "epochs",
    "steps",
    "schedule",
    "checkpoint_epochs",
    "checkpoint_step_range",
    "train_fraction",
)
_has_bn = {}


def batch_key(settings):
    """What runs must share to train as one vmapped batch (lossatlas.train.batch_incompatibility),
    as a string; None for a run that trains alone (it starts from another run's checkpoint, or its
    model has batch norm)."""
    knobs = json.dumps(settings["model"], sort_keys=True)
    if knobs not in _has_bn:
        _has_bn[knobs] = has_batch_norm(
            build_model(MODEL, INPUT_SHAPES[DATASET], NUM_CLASSES[DATASET], **settings["model"])
        )
    if settings.get("init_from") or _has_bn[knobs]:
        return None
    parameterization = {k: v for k, v in settings["parameterization"].items() if k != "seed"}
    shared = {key: settings[key] for key in _BATCH_SHARED}
    return json.dumps([knobs, parameterization, shared], sort_keys=True)


def plan_batches():
    """Batch name -> its runs, for every group of at least two runs with one batch_key, split
    into batches of at most MAX_BATCH_MEMBERS in run-table order."""
    groups = {}
    for run, settings in RUNS.items():
        key = batch_key(settings)
        if key is not None:
            groups.setdefault(key, []).append(run)
    batches = {}
    for runs in groups.values():
        for start in range(0, len(runs), MAX_BATCH_MEMBERS):
            members = runs[start : start + MAX_BATCH_MEMBERS]
            if len(members) > 1:
                batches[re.sub(r"\W", "_", members[0])] = members
    return batches


TRAIN_BATCHES = plan_batches()
BATCH_OF = {run: name for name, members in TRAIN_BATCHES.items() for run in members}
_batched = "|".join(re.escape(run) for run in BATCH_OF)
SINGLE_RUN_PATTERN = (
    rf"(?!(?:{_batched})(?![\w.-]))[A-Za-z0-9_.]+-s\d+" if BATCH_OF else r"[A-Za-z0-9_.]+-s\d+"
)


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
        run=SINGLE_RUN_PATTERN,
    conda:
        "../../envs/lossatlas.yaml"
    threads: 2
    resources:
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        runs=lambda wildcards: {wildcards.run: run_settings(wildcards)},
        run_dirs=lambda wildcards: {wildcards.run: run_dir(wildcards.run)},
        model=MODEL,
        device=config["device"],
        resume=lambda wildcards: f"{run_dir(wildcards.run)}/resume.pt",
    script:
        "../scripts/train.py"


for _batch, _members in TRAIN_BATCHES.items():

    rule:
        name:
            f"train_batch_{_batch}"
        input:
            data=f"resources/data/{DATASET}.h5",
            init=[],
        output:
            [f"{run_dir(run)}/{name}" for run in _members for name in RUN_FILES],
        log:
            f"results/logs/train/{DATASET}/{MODEL}/batch_{_batch}.log",
        benchmark:
            f"results/benchmarks/train/{DATASET}/{MODEL}/batch_{_batch}.tsv"
        conda:
            "../../envs/lossatlas.yaml"
        threads: 2
        resources:
            gpu=1 if config["device"] != "cpu" else 0,
            **BATCH_RESOURCES,
        params:
            runs={run: RUNS[run] for run in _members},
            run_dirs={run: run_dir(run) for run in _members},
            model=MODEL,
            device=config["device"],
            resume=f"{RUN_ROOT}/batches/{_batch}.resume.pt",
        script:
            "../scripts/train.py"
