# Config validation, the run table (run groups, sweeps), path helpers and the training batches.
import json
import math
import re
import sys
from pathlib import Path

from snakemake.utils import validate

from lossatlas.data import dataset_info
from lossatlas.io import config_name
from lossatlas.models import check_logits, model_options
from lossatlas.runs import build_run_model, external_checkpoint_files, load_run_model
from lossatlas.train import BATCH_SHARED_SETTINGS

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


def planned_run_counts():
    """Config entry (``runs``, ``sweeps.NAME``, ``figures.subspace_training``) -> (runs it plans,
    how: e.g. ``200 x 200 values x 2 seeds``), counted from the config alone, before any run
    table or DAG is built."""
    counts = {
        "runs": (
            sum(len(g.get("seeds", config["seeds"])) for g in config["runs"].values()),
            f"{len(config['runs'])} run groups",
        )
    }
    for name, sweep in config["sweeps"].items():
        seeds = len(sweep.get("seeds", config["seeds"]))
        axes = (
            [sweep["load"]["values"], sweep["temperature"]["values"]]
            if "load" in sweep
            else [sweep["values"]]
        )
        sizes = " x ".join(str(len(values)) for values in axes)
        counts[f"sweeps.{name}"] = (
            math.prod(map(len, axes)) * seeds,
            f"{sizes} values x {seeds} seeds",
        )
    subspace = config["figures"]["subspace_training"]
    kinds = len(subspace["init_scales"]) * (len(subspace["dims"]) + 1)
    counts["figures.subspace_training"] = (
        kinds * len(subspace["seeds"]),
        f"{kinds} (init scale, dim) groups x {len(subspace['seeds'])} seeds",
    )
    return counts


def check_max_runs():
    """Print the number of runs the config plans; above ``max_runs`` stop with an error naming
    the largest entry (a sweep, as a rule) and its size."""
    counts = planned_run_counts()
    total = sum(count for count, _ in counts.values())
    print(f"lossatlas: the config plans {total} runs", file=sys.stderr)
    if total > config["max_runs"]:
        entry, (count, how) = max(counts.items(), key=lambda item: item[1][0])
        raise ValueError(
            f"config max_runs={config['max_runs']}: the config plans {total} runs; {entry} "
            f"alone plans {count} ({how}). Shrink it, or raise max_runs if this machine "
            "can train them"
        )


check_max_runs()
MODEL_KNOBS = ("width", "depth", "norm")
DATASET = config["dataset"]["name"]
MODEL = config["model"]["name"]


def _dataset_info():
    """Shape, classes and size of the configured dataset; a dataset of your own is read and
    checked here, before any job runs."""
    try:
        return dataset_info(DATASET, config["dataset"].get("path"))
    except ValueError as exc:
        raise ValueError(f"config dataset.path: {exc}") from exc


DATA_INFO = _dataset_info()
# The configured model: its registry knobs, or the factory of a model of your own and its kwargs.
MODEL_SETTINGS = {
    k: config["model"][k]
    for k in (*MODEL_KNOBS, "factory", "kwargs")
    if k in config["model"]
}


def dry_run_on_command_line():
    """Whether snakemake was started with -n (alone or among short flags, e.g. -np) or
    --dry-run: Snakemake parses the workflow before it tells it the executor."""
    return any(
        arg in ("--dry-run", "--dryrun")
        or (re.fullmatch(r"-[A-Za-z]+", arg) is not None and "n" in arg)
        for arg in sys.argv[1:]
    )


# model.factory is code named by the config: a dry run neither imports nor calls it unless
# model.check_in_dry_run is true (README, "What a config can run"); a real run calls it here.
CALL_FACTORY = "factory" not in MODEL_SETTINGS or (
    config["model"]["check_in_dry_run"] or not dry_run_on_command_line()
)
if not CALL_FACTORY:
    print(
        f"lossatlas: dry run: model.factory {MODEL_SETTINGS['factory']!r} is neither imported "
        "nor called (set model.check_in_dry_run: true to check it now); batches are planned as "
        "if the model had no batch norm",
        file=sys.stderr,
    )
# Every output of this config lies under RESULTS, results/ and the config's name: the stem of its
# file, of several files joined by "+" (config/config.yaml -> results/config, --configfile
# config/smoke.yaml -> results/smoke; lossatlas.io.config_name), so that running one config never
# overwrites another's results. Only the dataset cache, resources/data/, which depends on the
# dataset alone, is shared between configs.
CONFIG_NAME = config_name(workflow.overwrite_configfiles)
RESULTS = str(Path("results", CONFIG_NAME, config["scale_folder"] or ""))
RUN_ROOT = f"{RESULTS}/runs/{DATASET}/{MODEL}"
MEASURE_ROOT = f"{RESULTS}/measurements/{DATASET}/{MODEL}"
CLAIMS_ROOT = f"{MEASURE_ROOT}/claims"


def _check_model_knobs(where, knobs):
    if "factory" in config["model"]:
        for key in MODEL_KNOBS:
            if key in knobs:
                raise ValueError(
                    f"config {where}.{key}: model {MODEL!r} is built by model.factory "
                    f"{config['model']['factory']!r}; give its arguments in model.kwargs"
                )
        return
    valid = model_options(MODEL)
    for key in MODEL_KNOBS:
        if key in knobs and key not in valid:
            raise ValueError(
                f"config {where}.{key}: model {MODEL!r} has no option {key!r}; "
                f"its options are {', '.join(sorted(valid))}"
            )


def parameter_count(knobs):
    """D, the number of trainable parameters of the configured model with ``knobs`` (infinite,
    so that no bound on it is checked, in a dry run that does not call model.factory).
    """
    if not CALL_FACTORY:
        return math.inf
    model = build_run_model(MODEL, knobs, DATA_INFO)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# run id -> the config entry that defines it (runs.NAME, sweeps.NAME, figures.subspace_training)
CONFIG_ENTRY = {}


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
    knobs = dict(MODEL_SETTINGS)
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
        if "checkpoints" in overrides:
            settings.update(external_run_settings(settings, overrides, where))
        table[f"{name}-s{seed}"] = canonical(settings)
    CONFIG_ENTRY.update(dict.fromkeys(table, where))
    return table


def external_run_settings(settings, overrides, where):
    """Settings of a run given by its checkpoint files (``checkpoints``) instead of trained: the
    files of its seed, and the epochs and steps it has files of (none without a template).
    """
    templates = overrides["checkpoints"]
    if "init_from" in overrides:
        raise ValueError(
            f"config {where}: a run given by checkpoint files cannot have init_from"
        )
    seeds = overrides.get("seeds", config["seeds"])
    for label, template in templates.items():
        if len(seeds) > 1 and "{seed}" not in template:
            raise ValueError(
                f"config {where}.checkpoints.{label}={template!r}: the group has seeds "
                f"{seeds}, so the file name needs {{seed}}"
            )
    epochs = settings["checkpoint_epochs"] if "epoch" in templates else []
    step_range = settings["checkpoint_step_range"] if "step" in templates else None
    try:
        files = external_checkpoint_files(
            templates, settings["seed"], epochs, step_range
        )
    except ValueError as exc:
        raise ValueError(f"config {where}.checkpoints.{exc}") from exc
    return {
        "checkpoints": files,
        "checkpoint_epochs": epochs,
        "checkpoint_step_range": step_range,
    }


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
EXTERNAL_RUNS = [run for run, settings in RUNS.items() if "checkpoints" in settings]
# Run ids imported from checkpoint files (train.smk keeps them off the training rules).
EXTERNAL_RUN = "|".join(map(re.escape, EXTERNAL_RUNS)) or "(?!)"


def check_user_model_and_checkpoints():
    """Before any job runs: a model of your own imports, builds and maps the dataset's inputs
    to one logit per class; each checkpoint file of a run given by files loads into it.
    """
    if not CALL_FACTORY:
        return
    if "factory" in MODEL_SETTINGS:
        try:
            model = build_run_model(MODEL, MODEL_SETTINGS, DATA_INFO)
        except ValueError as exc:
            raise ValueError(f"config model.factory: {exc}") from exc
        dataset = config["dataset"].get("path", DATASET)
        try:
            check_logits(
                model,
                DATA_INFO.input_shape,
                DATA_INFO.num_classes,
                f"model {MODEL!r} ({MODEL_SETTINGS['factory']}) on dataset {dataset}",
            )
        except ValueError as exc:
            raise ValueError(f"config model.factory, dataset: {exc}") from exc
    for run in EXTERNAL_RUNS:
        group = run.rsplit("-s", 1)[0]
        for label, path in RUNS[run]["checkpoints"].items():
            try:
                load_run_model(MODEL, RUNS[run]["model"], DATA_INFO, path, verify=False)
            except (OSError, RuntimeError, ValueError) as exc:
                key = label.split("-")[0]
                raise ValueError(
                    f"config runs.{group}.checkpoints.{key} ({label} of run {run}): {exc}"
                ) from exc


check_user_model_and_checkpoints()


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


REGIME = config["regime"]


def scale_label(settings=MODEL_SETTINGS):
    """The scale claims are measured at, for the claims table: the model, its knobs ``settings``
    and its parameter count D (``mlp width=100 depth=2 norm=none, D = 15210``)."""
    knobs = " ".join(f"{key}={settings[key]}" for key in MODEL_KNOBS if key in settings)
    count = parameter_count(settings)
    size = f"D = {count}" if math.isfinite(count) else "D unknown in a dry run"
    return f"{MODEL} {knobs}".strip() + f", {size}"


SCALE = scale_label()
SECOND_SCALE = config["second_scale"]


def check_second_scale():
    """Stop with an error naming config ``second_scale.model`` when it changes a key that cannot
    change between scales or one the model lacks."""
    if "factory" in config["model"]:
        raise ValueError(
            "config second_scale: a model built by model.factory has no knobs to scale; "
            "give its second scale as a config of its own"
        )
    _check_model_knobs("second_scale.model", SECOND_SCALE["model"])
    unknown = set(SECOND_SCALE["model"]) - set(MODEL_KNOBS)
    if unknown:
        raise ValueError(
            f"config second_scale.model: {', '.join(sorted(unknown))} cannot change between "
            f"scales; the model keys that can are {', '.join(MODEL_KNOBS)}"
        )
    stray = set(SECOND_SCALE.get("figure_settings", {})) - set(SECOND_SCALE["figures"])
    if stray:
        raise ValueError(
            f"config second_scale.figure_settings: {', '.join(sorted(stray))} not in "
            f"second_scale.figures ({', '.join(SECOND_SCALE['figures'])})"
        )


def second_scale_config():
    """The config of the second scale's own DAG (Snakefile, module ``second_scale``): this config
    with the second scale's model keys and figure settings, writing under
    ``{RESULTS}/scales/NAME``."""
    second = json.loads(json.dumps(config))
    second["model"].update(SECOND_SCALE["model"])
    for figure, settings in SECOND_SCALE.get("figure_settings", {}).items():
        second["figures"][figure].update(settings)
    second["second_scale"] = None
    second["scale_folder"] = f"scales/{SECOND_SCALE['name']}"
    return second


if SECOND_SCALE:
    check_second_scale()
SECOND_SCALE_LABEL = (
    scale_label({**MODEL_SETTINGS, **SECOND_SCALE["model"]}) if SECOND_SCALE else None
)


def solution_status(runs):
    """The status.json of each run in ``runs``: the solutions of a figure's regime
    (``lossatlas.claims.read_regime``)."""
    return [f"{run_dir(run)}/status.json" for run in dict.fromkeys(runs)]


def regime_settings(fit_required=True, note="", structures_witness=False):
    """A figure's regime settings (``lossatlas.claims.read_regime``): the fit precondition of
    config ``regime``, or ``None`` where the figure's claims are about training itself (the fit is
    then reported, not required), a note on the regime of its own, and whether its claims assert
    that a low-loss structure exists (an unconverged one is then still a witness of ``holds``).
    """
    return {
        "max_train_error": REGIME["max_train_error"] if fit_required else None,
        "note": note,
        "structures_witness": structures_witness,
    }


# Scheduling: with 2 cores and one-thread jobs, the wall is bounded by the longest chain of jobs,
# so the jobs that head long chains (training, structure training, curvature along training) run
# before the measurements that only fill the cores around them (benchmarks/RESULTS.md, "Using
# both cores").
LONG_CHAIN_PRIORITY = 10


def rule_safe(name):
    """``name`` as part of a rule name (every non-word character becomes ``_``)."""
    return re.sub(r"\W", "_", name)


def run_settings(wildcards):
    """Settings of the run ``wildcards.run``; a run the config lacks is an error naming it."""
    if wildcards.run not in RUNS:
        raise ValueError(
            f"run {wildcards.run!r} is not in the config; its runs are "
            f"{', '.join(sorted(RUNS))}"
        )
    return RUNS[wildcards.run]


def curvature_inputs(run):
    """The files a curvature job of run ``run`` reads (the final checkpoint holds the model's
    buffers, the trajectory its epoch checkpoints)."""
    return {
        "data": f"resources/data/{DATASET}.h5",
        "final": f"{RUN_ROOT}/{run}/final.pt",
        "trajectory": f"{RUN_ROOT}/{run}/trajectory.pt",
        "metrics": f"{RUN_ROOT}/{run}/metrics.csv",
        "status": f"{RUN_ROOT}/{run}/status.json",
    }


def run_settings_json(wildcards):
    return json.dumps(run_settings(wildcards), sort_keys=True)


def init_checkpoint(wildcards):
    """The final checkpoint a continuation run starts from (none for a fresh run)."""
    parent = run_settings(wildcards).get("init_from")
    return [f"{run_dir(parent)}/final.pt"] if parent else []


def total_steps(settings):
    """Optimizer steps a run makes: epochs x minibatches per epoch, capped by ``steps``."""
    n_train = round(settings["train_fraction"] * DATA_INFO.n_train)
    steps = settings["epochs"] * math.ceil(n_train / settings["batch_size"])
    return steps if settings["steps"] is None else min(steps, settings["steps"])


def epochs_reached(settings):
    """The last epoch a run reaches (a ``steps`` cap ends it within a partial epoch)."""
    n_train = round(settings["train_fraction"] * DATA_INFO.n_train)
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


# Sweeps (sweeps.smk): knobs, run groups and rows.
LOAD_KNOBS = ("width", "train_fraction", "label_noise")
TEMPERATURE_KNOBS = ("batch_size", "lr")
ONE_KNOBS = ("lr", "width", "weight_decay", "batch_size")
KNOB_TAGS = {
    "width": "w",
    "train_fraction": "frac",
    "label_noise": "noise",
    "batch_size": "bs",
    "lr": "lr",
    "weight_decay": "wd",
}
# knob -> (valid(value), what a valid value is)
KNOB_VALUES = {
    "width": (lambda v: float(v).is_integer() and v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: float(v).is_integer() and v >= 1, "an integer >= 1"),
    "lr": (lambda v: v > 0, "> 0"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "train_fraction": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "label_noise": (lambda v: 0 <= v < 1, "in [0, 1)"),
}


def knob_tag(knob, value):
    """``w64``, ``lr0.05``, ``wd1em05``: a knob value as it appears in run ids."""
    text = f"{value:g}".replace("e-", "em").replace("e+", "e")
    return f"{KNOB_TAGS[knob]}{text}"


def check_axis(where, knob, values, valid_knobs):
    if knob not in valid_knobs:
        raise ValueError(
            f"config {where}.knob={knob!r}: unknown knob; valid: {', '.join(valid_knobs)}"
        )
    if knob in MODEL_KNOBS:
        _check_model_knobs(where, {knob: values})
    if not values:
        raise ValueError(f"config {where}.values: the axis is empty")
    if len(set(values)) != len(values):
        raise ValueError(f"config {where}.values={values}: values must be distinct")
    valid, meaning = KNOB_VALUES[knob]
    for index, value in enumerate(values):
        if not valid(value):
            raise ValueError(
                f"config {where}.values[{index}]={value}: {knob} must be {meaning}"
            )
    return [int(v) if knob in ("width", "batch_size") else v for v in values]


def sweep_cells(name, sweep):
    """The cells of sweep ``name``: one dict per knob-value combination with the run group's
    name, its runs and its knob values (``load``/``temperature`` for a grid, ``value`` for a
    one-knob sweep); the run groups are added to the run table."""
    where = f"sweeps.{name}"
    seeds = sweep.get("seeds", config["seeds"])
    if "load" in sweep:
        loads = check_axis(
            f"{where}.load", sweep["load"]["knob"], sweep["load"]["values"], LOAD_KNOBS
        )
        temperatures = check_axis(
            f"{where}.temperature",
            sweep["temperature"]["knob"],
            sweep["temperature"]["values"],
            TEMPERATURE_KNOBS,
        )
        axes = [
            (sweep["load"]["knob"], load, sweep["temperature"]["knob"], temperature)
            for load in loads
            for temperature in temperatures
        ]
    else:
        values = check_axis(where, sweep["knob"], sweep["values"], ONE_KNOBS)
        axes = [(sweep["knob"], value) for value in values]
    cells = []
    for axis in axes:
        knobs = dict(zip(axis[::2], axis[1::2]))
        group = "_".join([name, *(knob_tag(k, v) for k, v in knobs.items())])
        overrides = {**sweep["training"], **knobs, "seeds": seeds}
        runs = run_group_table(group, overrides, where)
        for run in runs:
            if run in RUNS:
                raise ValueError(
                    f"config {where}: run {run} is already a run of the config"
                )
        RUNS.update(runs)
        values = list(knobs.values())
        cells.append(
            {
                "group": group,
                "runs": list(runs),
                "load": values[0],
                "temperature": values[-1],
            }
            if "load" in sweep
            else {"group": group, "runs": list(runs), "value": values[0]}
        )
    return cells


def sweep_axes(name):
    """Knob names of sweep ``name``: (load, temperature) of a grid, (knob,) of a one-knob sweep."""
    sweep = config["sweeps"][name]
    if "load" in sweep:
        return sweep["load"]["knob"], sweep["temperature"]["knob"]
    return (sweep["knob"],)


def check_sweep(key, name, kind):
    """Stop with an error naming config key ``key`` unless ``name`` is a sweep of ``kind``
    (``grid`` or ``knob``)."""
    if name not in SWEEPS:
        raise ValueError(
            f"config {key}: unknown sweep {name!r}; sweeps are {', '.join(sorted(SWEEPS)) or 'none'}"
        )
    if ("load" in config["sweeps"][name]) != (kind == "grid"):
        what = "a load x temperature grid" if kind == "grid" else "a one-knob sweep"
        raise ValueError(f"config {key}: sweep {name!r} is not {what}")


def sweep_rows(name):
    """Row tag -> cells of sweep ``name``, the cells each measure_sweep_cells job starts from
    (``cell_parts``): a grid's rows are its load values (all temperatures of one load: one
    architecture, one vmapped batch of curves), a one-knob sweep is one row, ``all``."""
    if "load" not in config["sweeps"][name]:
        return {"all": SWEEPS[name]}
    rows = {}
    for cell in SWEEPS[name]:
        rows.setdefault(knob_tag(sweep_axes(name)[0], cell["load"]), []).append(cell)
    return rows


def sweep_runs(wildcards):
    """Runs of sweep ``wildcards.sweep``, all its cells (an unknown sweep is an error naming it)."""
    if wildcards.sweep not in SWEEPS:
        raise ValueError(
            f"no sweep {wildcards.sweep!r}; sweeps: {', '.join(SWEEPS) or 'none'}"
        )
    return [run for cell in SWEEPS[wildcards.sweep] for run in cell["runs"]]


def sweep_files(name):
    return lambda wildcards: [f"{run_dir(run)}/{name}" for run in sweep_runs(wildcards)]


def cell_parts(rows, cells_per_job):
    """Tag -> cells of each measure_sweep_cells job: a row whole (``cells_per_job`` None or at
    least its cells), else its cells in parts of at most ``cells_per_job``, tagged ROW.pI.
    """
    parts = {}
    for row, cells in rows.items():
        if cells_per_job is None or len(cells) <= cells_per_job:
            parts[row] = cells
            continue
        for index, start in enumerate(range(0, len(cells), cells_per_job)):
            parts[f"{row}.p{index}"] = cells[start : start + cells_per_job]
    return parts


def cell_part_runs(wildcards):
    """Runs of the cells of job ``wildcards.part`` of sweep ``wildcards.sweep``."""
    parts = CELL_PARTS.get(wildcards.sweep, {})
    if wildcards.part not in parts:
        raise ValueError(
            f"sweep {wildcards.sweep!r} has no cell part {wildcards.part!r}; parts: "
            f"{', '.join(parts)}"
        )
    return [run for cell in parts[wildcards.part] for run in cell["runs"]]


def cell_part_files(name):
    return lambda wildcards: [
        f"{run_dir(run)}/{name}" for run in cell_part_runs(wildcards)
    ]


def sweep_curvature_file(name):
    return f"{MEASURE_ROOT}/sweeps/{name}/curvature.csv"


# Vmapped training batches (train.smk).
MAX_BATCH_MEMBERS = config["batch_training"]["max_members"]
BATCHES_PER_JOB = config["batch_training"]["batches_per_job"]


def batch_key(settings):
    """What runs must share to train as one vmapped batch (lossatlas.train.batch_incompatibility),
    as a string; None for a run that trains alone (it starts from another run's checkpoint) or is
    not trained (given by checkpoint files)."""
    if "checkpoints" in settings or settings.get("init_from"):
        return None
    knobs = json.dumps(settings["model"], sort_keys=True)
    parameterization = {
        k: v for k, v in settings["parameterization"].items() if k != "seed"
    }
    # the trainer's shared settings, and train_fraction: the training-set size
    shared = {key: settings[key] for key in (*BATCH_SHARED_SETTINGS, "train_fraction")}
    return json.dumps([knobs, parameterization, shared], sort_keys=True)


def plan_batches():
    """Batch name -> its runs: the runs of one config entry (a run group of ``runs``, or a whole
    sweep) with one batch_key, at least two, split into batches of at most MAX_BATCH_MEMBERS in
    run-table order. Batches never mix entries, so adding, removing or reordering run groups or
    sweeps (or the subspace figure's runs) leaves every other entry's batches as they were: none of their finished runs, and
    nothing downstream of them, trains again."""
    groups = {}
    for run, settings in RUNS.items():
        key = batch_key(settings)
        if key is not None:
            groups.setdefault((CONFIG_ENTRY[run], key), []).append(run)
    batches = {}
    for runs in groups.values():
        for start in range(0, len(runs), MAX_BATCH_MEMBERS):
            members = runs[start : start + MAX_BATCH_MEMBERS]
            if len(members) > 1:
                batches[rule_safe(members[0])] = members
    return batches


def plan_batch_jobs(batches):
    """Job name -> its batches (batch name -> runs): the batches of one config entry (e.g. a
    subspace dimension each, or a width of a sweep), at most BATCHES_PER_JOB per job in order,
    each still its own vmapped computation, trained one after the other in one process (one
    interpreter start). A job is named after its first batch; jobs never mix entries either.
    """
    by_entry = {}
    for name, members in batches.items():
        by_entry.setdefault(CONFIG_ENTRY[members[0]], []).append(name)
    jobs = {}
    for names in by_entry.values():
        for start in range(0, len(names), BATCHES_PER_JOB):
            chunk = names[start : start + BATCHES_PER_JOB]
            jobs[chunk[0]] = {name: batches[name] for name in chunk}
    return jobs
