# Config validation, the run table of the sweep, and path helpers.
import json

from snakemake.utils import validate

from lossatlas.data import INPUT_SHAPES, NUM_CLASSES
from lossatlas.models import build_model, model_options

validate(config, "../schemas/config.schema.yaml")

MODEL_KNOBS = ("width", "depth", "norm")
DATASET = config["dataset"]["name"]
MODEL = config["model"]["name"]
RUN_ROOT = f"results/runs/{DATASET}/{MODEL}"
MEASURE_ROOT = f"results/measurements/{DATASET}/{MODEL}"
CLAIMS_ROOT = f"{MEASURE_ROOT}/claims"


def _check_model_knobs(where, knobs):
    valid = model_options(MODEL)
    for key in MODEL_KNOBS:
        if key in knobs and key not in valid:
            raise ValueError(
                f"config {where}.{key}: model {MODEL!r} has no option {key!r}; "
                f"its options are {', '.join(sorted(valid))}"
            )


def parameter_count(knobs):
    """D, the number of trainable parameters of the configured model with ``knobs``."""
    model = build_model(MODEL, INPUT_SHAPES[DATASET], NUM_CLASSES[DATASET], **knobs)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def run_group_table(name, overrides, where):
    """Run id (NAME-sSEED) -> settings of one run group: training defaults, then the group's own
    keys; ``where`` is the config key named in errors."""
    _check_model_knobs(where, overrides)
    init_from = overrides.get("init_from")
    if init_from is not None and init_from not in config["runs"]:
        raise ValueError(
            f"config {where}.init_from: unknown run {init_from!r}; "
            f"runs are {', '.join(sorted(config['runs']))}"
        )
    knobs = {k: config["model"][k] for k in MODEL_KNOBS if k in config["model"]}
    knobs.update({k: overrides[k] for k in MODEL_KNOBS if k in overrides})
    parameterization = overrides.get("parameterization", {"kind": "full"})
    if parameterization.get("kind") == "subspace":
        dim_full = parameter_count(knobs)
        if parameterization["dim"] > dim_full:
            raise ValueError(
                f"config {where}.parameterization.dim={parameterization['dim']} exceeds "
                f"D={dim_full}, the parameter count of {MODEL} {knobs}"
            )
    table = {}
    for seed in overrides.get("seeds", config["seeds"]):
        settings = {
            **config["training"],
            **overrides,
            "seed": seed,
            "model": dict(knobs),
        }
        settings.pop("seeds", None)
        for key in MODEL_KNOBS:
            settings.pop(key, None)
        settings["parameterization"] = dict(parameterization)
        if parameterization.get("kind") == "subspace":
            settings["parameterization"].setdefault("seed", seed)
        if init_from is not None:
            if seed not in config["runs"][init_from].get("seeds", config["seeds"]):
                raise ValueError(
                    f"config {where}.init_from: run {init_from!r} has no seed {seed}"
                )
            settings["init_from"] = f"{init_from}-s{seed}"
        table[f"{name}-s{seed}"] = settings
    return table


def _run_table():
    """run id (NAME-sSEED) -> settings of every run group of the config."""
    _check_model_knobs("model", config["model"])
    table = {}
    for name, overrides in config["runs"].items():
        table.update(run_group_table(name, overrides, f"runs.{name}"))
    return table


RUNS = _run_table()


def check_run_groups(key, groups):
    """Stop with an error naming config key ``key`` if it names a run group the config lacks."""
    for name in groups:
        if name not in config["runs"]:
            raise ValueError(
                f"config {key}: unknown run {name!r}; "
                f"runs are {', '.join(sorted(config['runs']))}"
            )


def first_run(group):
    """The run of group ``group`` with its first seed (figures that show one solution)."""
    return run_ids(group)[0]


def run_dir(run):
    return f"{RUN_ROOT}/{run}"


def run_settings_json(wildcards):
    return json.dumps(RUNS[wildcards.run], sort_keys=True)


def init_checkpoint(wildcards):
    """The final checkpoint a continuation run starts from (none for a fresh run)."""
    parent = RUNS[wildcards.run].get("init_from")
    return [f"{run_dir(parent)}/final.pt"] if parent else []


def run_ids(name):
    """Run ids NAME-sSEED of a run group, one per seed."""
    return [run for run in RUNS if run.rsplit("-s", 1)[0] == name]
