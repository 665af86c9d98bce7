"""Cost plan of a workflow's jobs before launch: the compute of each job in FLOPs, from the forward
cost of its model and the work its settings ask for.

A job's work is counted in *sample passes*: one forward pass of one sample through its model.
Training a sample costs ``TRAIN_PASSES`` (forward + backward, about twice a forward: Kaplan et al.
2020's 2N + 4N FLOPs per parameter), a Hessian- or Gauss-Newton-vector product ``PRODUCT_PASSES``
per sample (about two gradients, Pearlmutter 1994), and evaluating a point (loss and accuracy) one
pass per sample of its training and test sets, plus one pass per training sample when batch-norm
statistics are recomputed there. Random-subspace training adds the products with A, 4 D d FLOPs
per step. Iterative algorithms are counted at their iteration caps (Lanczos ``max_iter``), so the
estimate errs high. FLOPs per sample pass come from the caller (``forward_flops``); a job's time is
its FLOPs over a throughput in FLOP/s, measured (``measure_throughput``) or assumed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

TRAIN_PASSES = 3
PRODUCT_PASSES = 6


@dataclass(frozen=True)
class ModelCost:
    """What the plan needs of one model: ``flops`` per sample of a forward pass, ``parameters``
    D, and whether it has batch norm (``batch_norm``)."""

    flops: float
    parameters: int
    batch_norm: bool


@dataclass(frozen=True)
class JobCost:
    """One job of the plan: its ``rule``, a ``name`` telling it from the rule's other jobs,
    ``flops`` (FLOPs) and the rule's runtime limit in minutes (``limit_minutes``, None if none)."""

    rule: str
    name: str
    flops: float
    limit_minutes: float | None = None

    def minutes(self, flops_per_second: float) -> float:
        return self.flops / flops_per_second / 60.0


def forward_flops(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """FLOPs of a forward pass of one sample of shape ``input_shape`` through ``model`` in eval
    mode (torch's FLOP counter: 2 per multiply-add of matrix products and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    parameter = next(model.parameters())
    x = torch.zeros(1, *input_shape, dtype=parameter.dtype, device=parameter.device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    model.train(was_training)
    return float(counter.get_total_flops())


def measure_throughput(model: nn.Module, input_shape: tuple[int, ...], batch_size: int = 128,
                       repeats: int = 5) -> float:
    """FLOP/s of training steps (forward and backward of a batch of ``batch_size`` samples,
    counted as ``TRAIN_PASSES`` forward passes) of ``model`` on this machine: the median of
    ``repeats`` timed steps after one warm-up step."""
    flops = TRAIN_PASSES * forward_flops(model, input_shape) * batch_size
    parameter = next(model.parameters())
    x = torch.randn(batch_size, *input_shape, dtype=parameter.dtype, device=parameter.device)
    model.train()
    seconds = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        model(x).square().mean().backward()
        if parameter.device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    return flops / sorted(seconds[1:])[repeats // 2]


@dataclass(frozen=True)
class Sizes:
    """Samples of the dataset: ``n_train`` training and ``n_test`` test samples."""

    n_train: int
    n_test: int


def _train_samples(settings: dict, sizes: Sizes) -> int:
    return max(1, round(sizes.n_train * settings.get("train_fraction", 1.0)))


def _evaluations(points: float, n_train: int, n_test: int, recompute: bool) -> float:
    """Sample passes of evaluating ``points`` points on ``n_train`` training and ``n_test`` test
    samples, with batch-norm statistics recomputed from the training samples when ``recompute``."""
    return points * (n_train + n_test + (n_train if recompute else 0))


def _recompute(cost: ModelCost, policy: str | None) -> bool:
    return cost.batch_norm and policy == "recompute"


def _run_training(settings: dict, cost: ModelCost, sizes: Sizes) -> float:
    """FLOPs of training one run: every epoch's steps and its evaluation on train and test."""
    if "checkpoints" in settings:  # given by files, not trained
        return 0.0
    n = _train_samples(settings, sizes)
    epochs = settings["epochs"]
    passes = epochs * n * TRAIN_PASSES + _evaluations(epochs + 1, n, sizes.n_test, False)
    flops = passes * cost.flops
    parameterization = settings.get("parameterization", {})
    if parameterization.get("kind") == "subspace":
        steps = epochs * math.ceil(n / settings["batch_size"])
        flops += steps * 4.0 * cost.parameters * parameterization["dim"]
    return flops


def _curvature_products(curvature: dict, spectrum: bool) -> int:
    """Hessian(-or-Gauss-Newton)-vector products of one curvature measurement: Lanczos at its cap,
    the trace's products and, for a spectrum, SLQ densities of H and G."""
    products = curvature["max_iter"] + curvature["trace_products"]
    if spectrum:
        products += 2 * curvature["density_vectors"] * curvature["density_steps"]
    return products


def job_flops(rule: str, params: dict, sizes: Sizes, cost_of) -> float:
    """FLOPs of one job of rule ``rule`` (a generated rule by its family: ``train_batch``,
    ``train_structures``, ``measure_curvature_along``) with the ``params`` Snakemake gives its
    script; ``cost_of(knobs)`` is the ``ModelCost`` of the model with a run's ``model`` knobs.
    Rules whose work is not a model pass (data preparation, merges, figures, tables) cost 0."""
    estimate = _ESTIMATES.get(rule)
    return 0.0 if estimate is None else float(estimate(params, sizes, cost_of))


def _train(params, sizes, cost_of):
    return sum(_run_training(s, cost_of(s["model"]), sizes) for s in params["runs"].values())


def _structure_epochs(training: dict) -> tuple[int, int]:
    """Epochs at the cap and rounds of a ``structure_training`` object (trained in rounds until
    converged or at the cap: the plan counts the cap)."""
    from .train import round_ends

    epochs = training.get("max_epochs") or training["epochs"]
    return epochs, len(round_ends(training["epochs"], epochs))


def _convergence_points(spec: dict) -> int:
    """Points at which a structure's convergence is judged after every round
    (``Parameterization.evaluation_points``)."""
    from .parameterizations import (COMPLEX_EVALUATION_RESOLUTION, CURVE_EVALUATION_POINTS,
                                    simplex_lattice)

    if spec.get("kind") != "complex":
        return CURVE_EVALUATION_POINTS
    return spec.get("modes", 3) * len(simplex_lattice(spec.get("connectors", 1) + 1,
                                                      COMPLEX_EVALUATION_RESOLUTION))


def _train_structures(params, sizes, cost_of):
    """The structures of one figure, trained as one batch: the sum of their costs at the cap."""
    total = 0.0
    for structure in params["structures"].values():
        first = params["runs"][structure["points"][0]]
        cost = cost_of(first["model"])
        n = _train_samples(first, sizes)
        epochs, rounds = _structure_epochs(structure["training"])
        points_per_step = structure["spec"].get("samples", 1)
        spec = {**structure["spec"], "modes": len(structure["points"])}
        passes = (epochs * n * TRAIN_PASSES * points_per_step
                  + _evaluations(epochs + 1, n, sizes.n_test, cost.batch_norm)
                  + _evaluations((rounds + 1) * _convergence_points(spec), n, 0, cost.batch_norm))
        total += passes * cost.flops
    return total


def _surfaces(params, sizes, cost_of):
    """One part of a solution's surfaces: its share of both planes' grids and of the roughness
    profiles (at most the larger share of an uneven split)."""
    settings, run = params["settings"], params["run_settings"]
    cost = cost_of(run["model"])
    parts = settings["parts"]
    points = (2 * math.ceil(settings["xnum"] * settings["ynum"] / parts)
              + math.ceil(settings["roughness_directions"] / parts) * settings["roughness_points"])
    return _evaluations(points, _train_samples(run, sizes), sizes.n_test,
                        _recompute(cost, settings["bn_policy"])) * cost.flops


def _trajectory_pca(params, sizes, cost_of):
    settings, run = params["settings"], params["run_settings"]
    cost = cost_of(run["model"])
    return _evaluations(settings["num"] ** 2, _train_samples(run, sizes), sizes.n_test,
                        _recompute(cost, settings["bn_policy"])) * cost.flops


def _mli(params, sizes, cost_of):
    total = 0.0
    for run in params["settings"].values():
        cost = cost_of(run["model"])
        total += _evaluations(params["mli"]["points"], _train_samples(run, sizes), sizes.n_test,
                              cost.batch_norm) * cost.flops
    return total


def _sgd_walk(params, sizes, cost_of):
    settings, run = params["settings"], params["run_settings"]
    cost = cost_of(run["model"])
    start, stop = run["checkpoint_step_range"] or (0, 0)
    segments = min(settings["max_segments"], max(0, stop - start))
    return _evaluations(segments * settings["points_per_segment"], _train_samples(run, sizes), 0,
                        cost.batch_norm) * cost.flops


def _lb_sb(params, sizes, cost_of):
    total = 0.0
    for run in params["runs"].values():
        cost = cost_of(run["model"])
        total += _evaluations(params["points"], _train_samples(run, sizes), sizes.n_test,
                              cost.batch_norm) * cost.flops
    return total


def _curvature_samples(curvature: dict, settings: dict, sizes: Sizes) -> int:
    n = _train_samples(settings, sizes)
    return n if curvature["n_samples"] is None else min(n, curvature["n_samples"])


def _curvature(params, sizes, cost_of):
    settings, curvature = params["settings"], params["curvature"]
    n = _curvature_samples(curvature, settings, sizes)
    products = sum(_curvature_products(curvature, label == "final")
                   for label in params["checkpoints"])
    return products * n * PRODUCT_PASSES * cost_of(settings["model"]).flops


def _goldilocks(params, sizes, cost_of):
    figure = params["goldilocks"]
    cost = cost_of(params["knobs"])
    n = min(figure["n_samples"], round(sizes.n_train * params["train_fraction"]))
    products = len(figure["radius_scales"]) * (figure["trace_samples"]
                                               + figure["subspaces"] * figure["subspace_dim"])
    return products * n * PRODUCT_PASSES * cost.flops


def _long_short(params, sizes, cost_of):
    figure, curvature = params["figure"], params["curvature"]
    run = params["settings"][params["runs"][0]]
    cost = cost_of(run["model"])
    n = _train_samples(run, sizes)
    n_hessian = n if figure["n_samples"] is None else min(n, figure["n_samples"])
    lines = figure["random_directions"] + figure["hessian_directions"] + len(params["runs"]) - 1
    passes = (curvature["max_iter"] * n_hessian * PRODUCT_PASSES
              + _evaluations(lines * figure["points"], n, 0,
                             _recompute(cost, figure["bn_policy"])))
    return passes * cost.flops


def _wedge_cuts(params, sizes, cost_of):
    figure = params["figure"]
    run = params["settings"][params["runs"][0]]
    cost = cost_of(run["model"])
    rays = 2 + 1   # both planes: the solutions' (2 rays) and the init's (1 ray)
    points = 2 * figure["grid"] ** 2 + rays * len(figure["radii"]) * figure["offsets"]
    return _evaluations(points, _train_samples(run, sizes), 0,
                        _recompute(cost, figure["bn_policy"])) * cost.flops


def _subset(figure: dict, run: dict, sizes: Sizes) -> int:
    n = _train_samples(run, sizes)
    return n if figure.get("n_samples") is None else min(n, figure["n_samples"])


def _mode_connectivity(params, sizes, cost_of):
    figure = params["figure"]
    run = next(iter(params["settings"].values()))
    cost = cost_of(run["model"])
    pairs = len(params["pairs"])
    points = pairs * ((len(figure["curves"]) + 1) * figure["points"] + figure["plane_grid"] ** 2)
    return _evaluations(points, _subset(figure, run, sizes), sizes.n_test,
                        _recompute(cost, figure["bn_policy"])) * cost.flops


def _low_loss(params, sizes, cost_of):
    figure = params["figure"]
    run = next(iter(params["settings"].values()))
    cost = cost_of(run["model"])
    vertices = figure["modes"] + figure["connectors"]
    edges = vertices * (vertices - 1) // 2
    simplices = figure["modes"] * figure["connectors"] + 1
    lattice = math.comb(figure["resolution"] + 2, 2)
    points = (2 * edges * figure["edge_points"] + 2 * simplices * lattice
              + 2 * figure["plane_grid"] ** 2)
    return _evaluations(points, _subset(figure, run, sizes), sizes.n_test,
                        _recompute(cost, figure["bn_policy"])) * cost.flops


def _ensembles(params, sizes, cost_of):
    figure = params["figure"]
    run = params["settings"][params["runs"][0]]
    cost = cost_of(run["model"])
    n = _train_samples(run, sizes)
    recompute = _recompute(cost, figure["bn_policy"])
    perturbations = _evaluations((figure["members"] - 1) * figure["perturbation_points"], n, 0,
                                 recompute)
    predictions = _evaluations(3 * figure["members"], n if recompute else 0, sizes.n_test, False)
    return (perturbations + predictions) * cost.flops


def _sweep_curvature(params, sizes, cost_of):
    measure = params["measurements"]
    total = 0.0
    for settings in params["settings"].values():
        checkpoints = 1 if params["epochs"] == "final" else len(settings["checkpoint_epochs"])
        n = min(_train_samples(settings, sizes), measure["hessian_samples"])
        products = measure["lanczos_iterations"] + measure["trace_samples"]
        total += checkpoints * products * n * PRODUCT_PASSES * cost_of(settings["model"]).flops
    return total


def _sweep_cells(params, sizes, cost_of):
    measure = params["measurements"]
    epochs, rounds = _structure_epochs(measure["curve_training"])
    total = 0.0
    for cell in params["cells"]:
        settings = params["settings"][cell["runs"][0]]
        cost = cost_of(settings["model"])
        n = _train_samples(settings, sizes)
        passes = (epochs * n * TRAIN_PASSES
                  + _evaluations(measure["curve_points"], n, 0,
                                 _recompute(cost, measure["bn_policy"]))
                  + _evaluations((rounds + 1) * _convergence_points({"kind": "bezier"}), n, 0,
                                 cost.batch_norm)
                  + len(cell["runs"]) * measure["cka_samples"])
        total += passes * cost.flops
    return total


_ESTIMATES = {
    "train": _train,
    "train_batch": _train,
    "train_reference": _train,
    "train_structures": _train_structures,
    "measure_surfaces": _surfaces,
    "measure_trajectory_pca": _trajectory_pca,
    "measure_mli_lines": _mli,
    "measure_sgd_walk": _sgd_walk,
    "measure_lb_sb_interpolation": _lb_sb,
    "measure_curvature": _curvature,
    "measure_curvature_along": _curvature,
    "measure_goldilocks": _goldilocks,
    "measure_long_short_directions": _long_short,
    "measure_wedge_cuts": _wedge_cuts,
    "measure_mode_connectivity": _mode_connectivity,
    "measure_low_loss_subspace": _low_loss,
    "measure_ensembles": _ensembles,
    "measure_sweep_curvature": _sweep_curvature,
    "measure_sweep_cells": _sweep_cells,
}


GENERATED_RULE_FAMILIES = ("train_batch", "train_structures", "measure_curvature_along")


def rule_family(rule: str) -> str:
    """The rule a job is planned as: a rule generated per batch, figure or run
    (``train_batch_NAME``, ``train_structures_FIGURE``, ``measure_curvature_along_RUN``) by its
    family, any other rule by its name."""
    for family in GENERATED_RULE_FAMILIES:
        if rule.startswith(f"{family}_"):
            return family
    return rule


def over_limit(jobs: list[JobCost], flops_per_second: float) -> list[JobCost]:
    """The jobs whose estimated minutes at ``flops_per_second`` exceed their rule's limit."""
    return [job for job in jobs
            if job.limit_minutes is not None and job.minutes(flops_per_second) > job.limit_minutes]


def format_plan(jobs: list[JobCost], flops_per_second: float, throughput: str) -> str:
    """The plan as Markdown: per rule family its jobs, total PFLOP, hours at ``flops_per_second``
    and its largest job (minutes, against the rule's limit), the jobs without model passes on one
    line; then the total and one warning line per job over its limit. ``throughput`` says where the FLOP/s figure comes from."""
    families: dict[str, list[JobCost]] = {}
    for job in jobs:
        families.setdefault(rule_family(job.rule), []).append(job)
    lines = [f"Throughput: {flops_per_second:.3g} FLOP/s ({throughput}).", "",
             "| rule | jobs | PFLOP | hours | largest job | its minutes | limit (min) |",
             "| --- | ---: | ---: | ---: | --- | ---: | ---: |"]
    total = sum(job.flops for job in jobs)
    passless = [family for family, members in families.items()
                if not any(job.flops for job in members)]
    computing = {family: members for family, members in families.items()
                 if family not in passless}
    for family, members in sorted(computing.items(), key=lambda item: -sum(j.flops for j in item[1])):
        flops = sum(job.flops for job in members)
        largest = max(members, key=lambda job: job.flops)
        limit = "" if largest.limit_minutes is None else f"{largest.limit_minutes:g}"
        lines.append(f"| {family} | {len(members)} | {flops / 1e15:.3g} | "
                     f"{flops / flops_per_second / 3600:.3g} | {largest.name} | "
                     f"{largest.minutes(flops_per_second):.3g} | {limit} |")
    if passless:
        count = sum(len(families[family]) for family in passless)
        lines.append(f"| {count} jobs without model passes ({', '.join(sorted(passless))}) "
                     "| | | | | | |")
    lines += ["", f"Total: {len(jobs)} jobs, {total / 1e15:.3g} PFLOP, "
              f"{total / flops_per_second / 3600:.3g} hours on one device."]
    for job in over_limit(jobs, flops_per_second):
        lines.append(f"WARNING: {job.rule} {job.name}: {job.minutes(flops_per_second):.0f} min "
                     f"estimated, over its runtime limit of {job.limit_minutes:g} min")
    return "\n".join(lines)


def undecidable_claims(params: dict[str, dict]) -> list[str]:
    """The claims a plan can only leave ``inconclusive`` (or, for Goldilocks, cannot hold), from
    the ``params`` of its jobs by rule (``measure_mli_lines``, ``dataset_sanity``,
    ``measure_goldilocks``; a rule absent is not checked): one line per claim, naming what the
    config lacks."""
    from lossatlas.figure_claims import PUBLISHED_TEST_ACCURACY

    reasons = []
    if "measure_mli_lines" in params:
        runs = params["measure_mli_lines"]["settings"].values()
        optimizers = {run["optimizer"] for run in runs}
        norms = {run["model"].get("norm", "none") for run in runs}
        sgd_plain = [run for run in runs
                     if run["optimizer"] == "sgd" and run["model"].get("norm", "none") != "batch"]
        if not sgd_plain:
            reasons.append("mli: 'MLI holds for most SGD runs without BN' has no SGD run "
                           "without batch norm")
        if not {"adam", "sgd"} <= optimizers:
            reasons.append(f"mli: the Adam vs SGD comparison has only {sorted(optimizers)} runs")
        if not {"batch", "none"} <= norms:
            reasons.append(f"mli: the BN vs no-BN comparison has only norm {sorted(norms)} runs")
        if len(runs) < 3:
            reasons.append("mli: the Spearman claim needs at least 3 runs")
    if "dataset_sanity" in params:
        sanity = params["dataset_sanity"]
        published = PUBLISHED_TEST_ACCURACY.get(sanity["dataset"], {})
        if sanity["model"] not in published:
            reasons.append(f"dataset_sanity: no published test accuracy of {sanity['model']} "
                           f"on {sanity['dataset']}")
    if "measure_goldilocks" in params:
        if params["measure_goldilocks"]["knobs"].get("norm") == "batch":
            reasons.append("goldilocks: the shell claim on a batch-norm model, whose Tr H/||H||_F "
                           "is negative at init at every radius")
    return reasons
