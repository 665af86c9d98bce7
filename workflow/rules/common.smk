# Config validation, the run table of the sweep, and path helpers.
import json
import math

from snakemake.utils import validate

from lossatlas.data import INPUT_SHAPES, NUM_CLASSES, TRAIN_SIZES
from lossatlas.models import build_model, model_options

validate(config, "../schemas/config.schema.yaml")


def check_finite(value, key):
    """Stop with an error naming config key ``key`` (or the one below it) at a NaN or infinite
    number, which the schema's bounds let through."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"config {key}={value}: must be a finite number")
    if isinstance(value, dict):
        for name, item in value.items():
            check_finite(item, f"{key}.{name}" if key else name)
    if isinstance(value, list):
        for index, item in enumerate(value):
            check_finite(item, f"{key}[{index}]")


def canonical(value):
    """``value`` with the keys of every dict sorted (recursively): Snakemake compares params by
    their repr, so settings must not depend on the order of the config's lines."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


check_finite(config, "")
for _key in list(config):
    if _key == "runs":  # the order of the run groups is the figures' order
        config[_key] = {name: canonical(group) for name, group in config[_key].items()}
    else:
        config[_key] = canonical(config[_key])

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
    step_range = overrides.get(
        "checkpoint_step_range", config["training"]["checkpoint_step_range"]
    )
    if step_range is not None and step_range[0] >= step_range[1]:
        raise ValueError(
            f"config {where}.checkpoint_step_range={step_range}: [start, stop) needs "
            "start < stop"
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
        table[f"{name}-s{seed}"] = canonical(settings)
    return table


def check_init_chains():
    """Stop with an error naming the config key if a run starts from itself, directly or
    through other runs' init_from."""
    for name in config["runs"]:
        chain = [name]
        while (parent := config["runs"][chain[-1]].get("init_from")) in config["runs"]:
            if parent in chain:
                raise ValueError(
                    f"config runs.{chain[-1]}.init_from: run {name!r} starts from itself "
                    f"({' -> '.join([*chain[chain.index(parent):], parent])})"
                )
            chain.append(parent)


def _run_table():
    """run id (NAME-sSEED) -> settings of every run group of the config."""
    _check_model_knobs("model", config["model"])
    check_init_chains()
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


def run_settings(wildcards):
    """Settings of the run ``wildcards.run``; a run the config lacks is an error naming it."""
    if wildcards.run not in RUNS:
        raise ValueError(
            f"run {wildcards.run!r} is not in the config; its runs are "
            f"{', '.join(sorted(RUNS))}"
        )
    return RUNS[wildcards.run]


def run_settings_json(wildcards):
    return json.dumps(run_settings(wildcards), sort_keys=True)


def init_checkpoint(wildcards):
    """The final checkpoint a continuation run starts from (none for a fresh run)."""
    parent = run_settings(wildcards).get("init_from")
    return [f"{run_dir(parent)}/final.pt"] if parent else []


def total_steps(settings):
    """Optimizer steps a run makes: epochs x minibatches per epoch, capped by ``steps``."""
    n_train = round(settings["train_fraction"] * TRAIN_SIZES[DATASET])
    steps = settings["epochs"] * math.ceil(n_train / settings["batch_size"])
    return steps if settings["steps"] is None else min(steps, settings["steps"])


def epochs_reached(settings):
    """The last epoch a run reaches (a ``steps`` cap ends it within a partial epoch)."""
    n_train = round(settings["train_fraction"] * TRAIN_SIZES[DATASET])
    return math.ceil(
        total_steps(settings) / math.ceil(n_train / settings["batch_size"])
    )


def saved_epochs(run, key, least, purpose):
    """Epochs of the epoch checkpoints run ``run`` saves; fewer than ``least`` is an error
    naming config key ``key``, the run's settings and what cuts them short."""
    settings = RUNS[run]
    reached = epochs_reached(settings)
    epochs = sorted(e for e in set(settings["checkpoint_epochs"]) if e <= reached)
    if len(epochs) < least:
        group = run.rsplit("-s", 1)[0]
        cause = (
            f"runs.{group}.steps={settings['steps']} stops it at epoch {reached}"
            if reached < settings["epochs"]
            else f"it trains {settings['epochs']} epochs"
        )
        raise ValueError(
            f"config {key}: run {run!r} saves epoch checkpoints {epochs} "
            f"(checkpoint_epochs {settings['checkpoint_epochs']}, and {cause}); {purpose} "
            f"needs at least {least}: set runs.{group}.checkpoint_epochs or "
            "training.checkpoint_epochs"
        )
    return epochs


def run_ids(name):
    """Run ids NAME-sSEED of a run group, one per seed."""
    return [run for run in RUNS if run.rsplit("-s", 1)[0] == name]
