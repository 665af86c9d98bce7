# Config validation, the run table of the sweep, and path helpers.
import json

from snakemake.utils import validate

from lossatlas.models import model_options

validate(config, "../schemas/config.schema.yaml")

MODEL_KNOBS = ("width", "depth", "norm")
DATASET = config["dataset"]["name"]
MODEL = config["model"]["name"]
RUN_ROOT = f"results/runs/{DATASET}/{MODEL}"
MEASURE_ROOT = f"results/measurements/{DATASET}/{MODEL}"


def _check_model_knobs(where, knobs):
    valid = model_options(MODEL)
    for key in MODEL_KNOBS:
        if key in knobs and key not in valid:
            raise ValueError(
                f"config {where}.{key}: model {MODEL!r} has no option {key!r}; "
                f"its options are {', '.join(sorted(valid))}"
            )


def _run_table():
    """run id (NAME-sSEED) -> settings: training defaults, then the run's own keys."""
    _check_model_knobs("model", config["model"])
    table = {}
    for name, overrides in config["runs"].items():
        _check_model_knobs(f"runs.{name}", overrides)
        init_from = overrides.get("init_from")
        if init_from is not None and init_from not in config["runs"]:
            raise ValueError(
                f"config runs.{name}.init_from: unknown run {init_from!r}; "
                f"runs are {', '.join(sorted(config['runs']))}"
            )
        for seed in config["seeds"]:
            settings = {**config["training"], **overrides, "seed": seed}
            settings["model"] = {
                k: config["model"][k] for k in MODEL_KNOBS if k in config["model"]
            }
            settings["model"].update(
                {k: overrides[k] for k in MODEL_KNOBS if k in overrides}
            )
            for key in MODEL_KNOBS:
                settings.pop(key, None)
            if init_from is not None:
                settings["init_from"] = f"{init_from}-s{seed}"
            table[f"{name}-s{seed}"] = settings
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
    """The run of group ``group`` with the first seed (figures that show one solution)."""
    return f"{group}-s{config['seeds'][0]}"


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
    return [f"{name}-s{seed}" for seed in config["seeds"]]
