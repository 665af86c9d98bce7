"""Training of runs in any parameterization: seeded, checkpointed along the trajectory,
resumable, divergence-aware. Ordinary training is the ``FullSpace`` parameterization; random
subspaces, mode-connecting curves and simplicial complexes go through the same loop, which trains
M >= 1 members of one architecture as one vmapped computation (``train_members``); a run alone is
a batch of one (``train_run``).

A run is fully described by ``TrainSettings`` and its seed. The seed fixes the initialization
(``torch.manual_seed(seed)`` before the model is built, so runs that share a seed share θ₀) and the
order of the minibatches (a ``torch.Generator`` seeded with ``seed``). At the end of every epoch the
whole training state (trainable tensors, batch-norm statistics, optimizer, generators, histories,
trajectory checkpoints) is written atomically to a resume file; a rerun after a kill continues
from it and, on CPU, ends with the same final state as an uninterrupted run.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import vmap
from tqdm import tqdm

from . import io
from .evaluate import evaluate_points, evaluate_train_test
from .functional import FunctionalModel, loss_from_logits
from .parameterizations import FullSpace, Parameterization
from .params import get_flat_params, param_layout

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine", "garipov")


@dataclass(frozen=True)
class TrainSettings:
    """Knobs of one training run. ``lr`` is the peak learning rate; ``steps`` (if set) stops the run
    after that many optimizer steps, before ``epochs`` is reached. ``checkpoint_epochs`` lists the
    epochs after which θ is saved (0 = init); ``checkpoint_step_range`` = [start, stop) saves θ after
    each of those global steps (for walks between consecutive iterates). A run diverges when its
    loss, weights or gradients become non-finite or its train loss exceeds
    ``divergence_loss_factor`` times its initial (epoch-0) train loss."""

    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 10
    steps: int | None = None
    schedule: str = "constant"
    checkpoint_epochs: tuple[int, ...] = (0,)
    checkpoint_step_range: tuple[int, int] | None = None
    divergence_loss_factor: float = 100.0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.batch_size < 1 or self.epochs < 1 or not self.lr > 0 or not math.isfinite(self.lr):
            raise ValueError(f"need batch_size >= 1, epochs >= 1 and finite lr > 0, got {self}")
        if not self.divergence_loss_factor > 1 or not math.isfinite(self.divergence_loss_factor):
            raise ValueError(f"need a finite divergence_loss_factor > 1, got "
                             f"{self.divergence_loss_factor}")


@dataclass(frozen=True)
class Convergence:
    """Training until a stated convergence criterion holds or a cap is reached (structures: curves
    and complexes). Training proceeds in rounds, each one full learning-rate schedule restarted
    from the previous round's end with the optimizer state kept, each twice as long as the one
    before (warm restarts with T_mult = 2, Loshchilov & Hutter's SGDR): ``TrainSettings.epochs``
    epochs, then twice, four times as many, …, so rounds end at epochs E, 3E, 7E, 15E, … up to
    ``max_epochs``, one of those ends (``round_ends``). Before training and after every round the
    trainer evaluates the train loss at the parameterization's fixed ``evaluation_points`` on the
    whole training set (eval mode, batch-norm statistics recomputed at every point; deterministic,
    no random draw); the structure's loss is their largest less the largest at the fixed solutions
    among them (a curve's ends, a complex's modes): its barrier, what the structure adds to its
    solutions, which falls towards 0 between interpolating solutions while their own loss does
    not. A member has converged when that barrier is at most ``floor`` nats, or when it fell, but
    by less than ``tolerance`` (a fraction) of its value at the previous round's end (before
    training, for the first round): ``converged`` on the sequence of barriers. As every round
    doubles the training so far, the rule asks whether doubling the budget still lowers the
    barrier by ``tolerance`` or more: a barrier that decays as a power of the epochs falls by the
    same fraction in every round, so it is never taken for converged however slowly it falls per
    epoch. A rise is not convergence: the round ends are then noisier than the fall,
    and training goes on. A converged member stops (it is frozen and leaves its batch's
    computation while the others go on); one that has not converged at the cap stops there
    unconverged; either way its ``TrainResult.convergence`` says which."""

    max_epochs: int
    tolerance: float = 0.05
    floor: float = 1e-3

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ValueError(f"need max_epochs >= 1, got {self.max_epochs}")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"need a convergence tolerance in [0, 1), got {self.tolerance}")
        if not (self.floor >= 0 and math.isfinite(self.floor)):
            raise ValueError(f"need a finite convergence floor >= 0 nats, got {self.floor}")

    def criterion(self, settings: TrainSettings, parameterization: Parameterization) -> str:
        """The rule in words, for ``parameterization`` trained with ``settings``."""
        ends = round_ends(settings.epochs, self.max_epochs)
        return (f"{parameterization.loss_name}: the largest train loss (whole training set; "
                "batch-norm statistics, if any, recomputed at every point) "
                f"{parameterization.evaluation_set}, evaluated before training and after every "
                f"round, rounds of {settings.epochs}, {2 * settings.epochs}, "
                f"{4 * settings.epochs}, … epochs (each one full {settings.schedule} schedule, "
                "restarted warm from the previous round's end, twice as long as the one before) "
                f"ending at epochs {', '.join(map(str, ends))}; converged when it fell, by less "
                f"than {self.tolerance:.0%}, from its value at the previous round's end (before "
                f"training, for the first round; a rise is not convergence), or is at most "
                f"{self.floor:g} nats; at most {self.max_epochs} epochs")


def round_ends(epochs: int, max_epochs: int) -> list[int]:
    """The epochs at which rounds end (``Convergence``): E, 3E, 7E, … (E = ``epochs``, each round
    twice the one before) up to ``max_epochs``, which must be one of them."""
    ends = [epochs]
    while ends[-1] < max_epochs:
        ends.append(2 * ends[-1] + epochs)
    if ends[-1] != max_epochs:
        valid = ", ".join(map(str, ends[:-1] + [ends[-1], 2 * ends[-1] + epochs]))
        raise ValueError(f"max_epochs={max_epochs} is not the end of a round: rounds of {epochs} "
                         f"epochs, each twice the one before, end at epochs {valid}, …")
    return ends


STRUCTURE_CONVERGENCE_KEYS = ("max_epochs", "tolerance", "loss_floor")


def structure_training(training: dict, **overrides) -> tuple[TrainSettings, Convergence]:
    """The ``TrainSettings`` (its ``epochs``: the first round) and ``Convergence`` of a config's
    ``structure_training`` object (its ``l2`` belongs to the structure, not the optimizer: weight
    decay 0); ``overrides`` go to the settings (e.g. ``checkpoint_epochs``). ``max_epochs`` null
    is one round."""
    knobs = {k: v for k, v in training.items()
             if k != "l2" and k not in STRUCTURE_CONVERGENCE_KEYS}
    settings = TrainSettings(**{"weight_decay": 0.0, **knobs, **overrides})
    max_epochs = training.get("max_epochs") or settings.epochs
    try:
        round_ends(settings.epochs, max_epochs)
    except ValueError as error:
        raise ValueError(f"structure training: {error}") from None
    convergence = Convergence(max_epochs=max_epochs, tolerance=training.get("tolerance", 0.05),
                              floor=training.get("loss_floor", 1e-3))
    return settings, convergence


def converged(losses: Sequence[float], tolerance: float, floor: float) -> bool:
    """Whether a structure's loss sequence (before training, then at the end of every round) has
    converged (``Convergence``): its last value is at most ``floor``, or it is no higher than the
    value before it and fell by less than ``tolerance`` of it. A rise, or a non-finite last value,
    is not convergence."""
    if len(losses) < 2:
        raise ValueError(f"need the losses of at least one round and the one before it, got {losses}")
    previous, last = float(losses[-2]), float(losses[-1])
    if not math.isfinite(last):
        return False
    return last <= floor or 0 <= previous - last < tolerance * previous


def convergence_detail(losses: Sequence[float], epochs: Sequence[int], max_epochs: int,
                       tolerance: float, floor: float, name: str = "max loss") -> str:
    """Why the loss sequence ``losses`` at ``epochs`` (0, then the end of every round) converged
    or, at the cap ``max_epochs``, did not, in words."""
    previous, last = float(losses[-2]), float(losses[-1])
    change = (previous - last) / previous if previous > 0 else 0.0
    span = f"the last round (epochs {epochs[-2]} → {epochs[-1]}: {previous:.4g} → {last:.4g} nats)"
    if converged(losses, tolerance, floor):
        if last <= floor:
            return (f"{name} {last:.4g} nats is at most the floor of {floor:g} nats after "
                    f"{epochs[-1]} epochs")
        return f"{name} fell {change:.1%}, less than {tolerance:.0%}, in {span}"
    if not math.isfinite(last):
        return f"{name} is not finite after {epochs[-1]} epochs"
    trend = f"still falling {change:.1%}" if change >= 0 else f"rose {-change:.1%}"
    return f"{name} {trend} in {span}, at the cap of {max_epochs} epochs"


@dataclass
class TrainResult:
    """Outcome of a run: ``status`` is ``"ok"`` or ``"diverged"`` (``divergence`` says why);
    ``history`` one row per epoch;
    ``trajectory`` maps a label (``epoch-3``, ``step-120``) to a saved state dict (θ the
    parameterization maps to, plus buffers); ``trainable`` maps ``init``, ``final`` and the same
    labels to the parameterization's trainable tensors there; ``parameterization`` is its
    ``describe()``; ``convergence`` (training with a ``Convergence``, else ``None``) whether the
    criterion held: ``converged``, ``epochs`` trained, ``max_epochs``, ``criterion`` and ``detail``
    in words, ``loss`` the last evaluated structure loss (nats: the largest loss at the evaluation
    points less the largest at the solutions among them), ``max_loss``, ``solution_loss`` and
    ``mean_loss`` there, ``rounds`` every evaluation (``epoch``, ``loss``, ``max_loss``,
    ``solution_loss``, ``mean_loss``)."""

    status: str
    final_state: dict[str, torch.Tensor]
    init_state: dict[str, torch.Tensor]
    history: list[dict]
    trajectory: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    steps: int = 0
    trainable: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    parameterization: dict = field(default_factory=dict)
    divergence: str | None = None
    convergence: dict | None = None


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but no CUDA GPU is available")
    return torch.device(device)


def _cpu_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in tensors.items()}


def _garipov_factor(fraction: float) -> float:
    """Garipov et al. 2018's curve schedule: 1 for the first 50% of training, then linear down to
    0.01 at 90%, then 0.01."""
    if fraction <= 0.5:
        return 1.0
    if fraction <= 0.9:
        return 1.0 - 0.99 * (fraction - 0.5) / 0.4
    return 0.01


def _lr_factor(settings: TrainSettings, total_steps: int) -> Callable[[int], float]:
    if settings.schedule == "constant":
        return lambda step: 1.0
    if settings.schedule == "garipov":
        return lambda step: _garipov_factor(min(step, total_steps) / total_steps)
    return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))


def fingerprint(settings: TrainSettings, seed: int, identity: dict | None = None,
                parameterization: dict | None = None) -> str:
    """Hash of everything that defines a run: training settings, seed, the caller's ``identity``
    (model, data subset, init; ``train_run`` adds digests of the training data and of the initial
    trainable tensors and buffers) and the parameterization; a resume file is only used by the run
    that wrote it."""
    text = json.dumps({**dataclasses.asdict(settings), "seed": seed, "identity": identity or {},
                       "parameterization": parameterization or {}}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of named tensors (names, dtypes, shapes and values, in name order)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.flatten().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _divergence(row: dict, initial_loss: float, factor: float) -> str | None:
    """Why the epoch in ``row`` counts as diverged (non-finite values, or a train loss above
    ``factor`` times ``initial_loss``: the larger of the run's epoch-0 loss and a uniform
    prediction's, so that a run started from a fit solution, near 0 nats, is not called diverged
    when it leaves that minimum), or ``None``."""
    non_finite = [k for k in ("train_loss", "param_norm", "grad_norm") if not math.isfinite(row[k])]
    if non_finite:
        return f"non-finite {', '.join(non_finite)} at epoch {row['epoch']}"
    if row["train_loss"] > factor * initial_loss:
        return (f"train loss {row['train_loss']:.4g} at epoch {row['epoch']} exceeds "
                f"divergence_loss_factor {factor:g} x initial loss {initial_loss:.4g}")
    return None


def status_record(result: TrainResult) -> dict:
    """The ``status.json`` of a finished run or structure: status, divergence reason, steps, last
    epoch, its train loss (nats, full training set), train and test accuracy, and the
    parameterization; for training with a ``Convergence`` (structures) also ``convergence``
    (``TrainResult.convergence``)."""
    last = result.history[-1]
    record = {"status": result.status, "divergence": result.divergence, "steps": result.steps,
              "epochs": last["epoch"], "train_loss": last["train_loss"],
              "train_acc": last["train_acc"], "test_acc": last["test_acc"],
              "parameterization": result.parameterization}
    if result.convergence is not None:
        record["convergence"] = result.convergence
    return record


def init_model(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Build a model with its initialization fixed by ``seed`` (same seed => same θ₀)."""
    torch.manual_seed(seed)
    return build()


@dataclass
class Member:
    """One run of a batch trained by ``train_members``: an initialized ``model`` (its buffers are
    the initial batch-norm running statistics), its ``data`` (a ``DatasetTensors``: the run's own
    training subset and label-noise draw), settings, seed, parameterization (``None``:
    ``FullSpace`` at the model's θ) and ``identity`` (what else defines the run: model, data
    subset, init; part of its resume ``fingerprint``); ``convergence``: train in rounds until
    it converges or reaches a cap (``Convergence``; ``None``: ``settings.epochs`` epochs)."""

    model: nn.Module
    data: object
    settings: TrainSettings
    seed: int
    parameterization: Parameterization | None = None
    identity: dict | None = None
    convergence: Convergence | None = None


# Settings every member of a batch shares: they fix the steps taken together.
BATCH_SHARED_SETTINGS = ("optimizer", "batch_size", "epochs", "steps", "schedule",
                         "checkpoint_epochs", "checkpoint_step_range")


def _buffer_shapes(model: nn.Module) -> dict[str, torch.Size]:
    return {name: buffer.shape for name, buffer in model.named_buffers()}


def batch_incompatibility(members: list[Member]) -> str | None:
    """Why ``members`` cannot be trained as one vmapped batch (``None``: they can): they must share
    the architecture (names and shapes of the parameters and buffers), the training-set size, the
    ``BATCH_SHARED_SETTINGS``, the ``Convergence`` and the names and shapes of the trainable
    tensors."""
    if not members:
        return "a batch needs at least one member"
    first = members[0]
    layout, buffers = param_layout(first.model), _buffer_shapes(first.model)
    for index, member in enumerate(members):
        if param_layout(member.model) != layout or _buffer_shapes(member.model) != buffers:
            return f"member {index} has another architecture than member 0"
        if member.data.x_train.shape != first.data.x_train.shape:
            return (f"member {index} has {tuple(member.data.x_train.shape)} training inputs, "
                    f"member 0 {tuple(first.data.x_train.shape)}")
        for key in BATCH_SHARED_SETTINGS:
            if getattr(member.settings, key) != getattr(first.settings, key):
                return (f"member {index} has {key}={getattr(member.settings, key)!r}, member 0 "
                        f"{getattr(first.settings, key)!r}")
        if member.convergence != first.convergence:
            return (f"member {index} has convergence {member.convergence}, member 0 "
                    f"{first.convergence}")
    return None


def _column(values, like: torch.Tensor) -> torch.Tensor:
    """Per-member scalars ``(M,)`` shaped to broadcast against a stacked tensor ``like``
    ``(M, ...)``."""
    return torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(
        -1, *([1] * (like.dim() - 1)))


def _where(keep: torch.Tensor | None, new: torch.Tensor,
           old: torch.Tensor | float) -> torch.Tensor:
    """``new`` where ``keep`` (``None``: everywhere), else ``old``."""
    return new if keep is None else torch.where(keep, new, old)


class MemberOptimizer:
    """SGD (momentum, L2 weight decay added to the gradient, no dampening) or Adam (β = (0.9, 0.999),
    ε = 1e-8, L2 weight decay, bias-corrected) on stacked trainable tensors ``(M, ...)``, each
    member with its own learning rate, momentum and weight decay; the update rules of
    ``torch.optim.SGD`` and ``torch.optim.Adam`` with their defaults, applied row-wise. Members
    where ``active`` ``(M,)`` is false keep their tensors and state (``None``: all step)."""

    def __init__(self, kind: str, lrs, momenta, weight_decays):
        self.kind = kind
        self.lrs, self.momenta, self.weight_decays = list(lrs), list(momenta), list(weight_decays)
        self.steps = 0
        self.state: dict[str, dict[str, torch.Tensor]] = {}
        self._columns: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _knobs(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Learning rates, momenta and weight decays as columns for ``like`` (made once)."""
        key = (like.dim(), like.dtype, like.device)
        if key not in self._columns:
            self._columns[key] = tuple(_column(values, like) for values in (
                self.lrs, self.momenta, self.weight_decays))
        return self._columns[key]

    @torch.no_grad()
    def step(self, tensors: dict[str, torch.Tensor], lr_factor: float,
             active: torch.Tensor | None = None) -> None:
        self.steps += 1
        for name, tensor in tensors.items():
            keep = None if active is None else _column(active, tensor).bool()
            lrs, momenta, weight_decays = self._knobs(tensor)
            lr = lrs * lr_factor
            direction = tensor.grad + weight_decays * tensor
            state = self.state.setdefault(name, {})
            if self.kind == "sgd":
                previous = state.get("momentum")
                buffer = direction if previous is None else momenta * previous + direction
                state["momentum"] = _where(keep, buffer, previous if previous is not None
                                           else torch.zeros_like(buffer))
                update = lr * buffer
            else:
                beta1, beta2, eps = 0.9, 0.999, 1e-8
                exp_avg = state.get("exp_avg", torch.zeros_like(tensor))
                exp_avg_sq = state.get("exp_avg_sq", torch.zeros_like(tensor))
                exp_avg_next = exp_avg.lerp(direction, 1 - beta1)
                exp_avg_sq_next = exp_avg_sq * beta2 + (1 - beta2) * direction * direction
                bias1 = 1 - beta1 ** self.steps
                bias2_sqrt = (1 - beta2 ** self.steps) ** 0.5
                update = (lr / bias1) * exp_avg_next / (exp_avg_sq_next.sqrt() / bias2_sqrt + eps)
                state["exp_avg"] = _where(keep, exp_avg_next, exp_avg)
                state["exp_avg_sq"] = _where(keep, exp_avg_sq_next, exp_avg_sq)
            tensor.sub_(_where(keep, update, 0.0))

    def state_dict(self) -> dict:
        return {"steps": self.steps, "state": {name: _cpu_tensors(s) for name, s in self.state.items()}}

    def load_state_dict(self, saved: dict, device: torch.device) -> None:
        self.steps = saved["steps"]
        self.state = {name: {k: v.to(device) for k, v in s.items()}
                      for name, s in saved["state"].items()}


def _rows(tensors: dict[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
    """Member ``index``'s slice of stacked tensors ``{name: (M, ...)}``."""
    return {name: tensor[index] for name, tensor in tensors.items()}


@dataclass
class _BatchState:
    """What changes while a batch trains, all of it kept by the resume file: the stacked trainable
    tensors and running statistics ``(M, ...)``, the optimizer, the members' generators, θ₀
    ``(M, D)``, and per member its init state, history, trajectory, trainable tensors, status,
    divergence and steps; then the batch's epoch, step and training time (s)."""

    tensors: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    optimizer: MemberOptimizer
    generators: list[torch.Generator]
    theta0: torch.Tensor
    init: list[dict[str, torch.Tensor]]
    histories: list[list[dict]]
    trajectories: list[dict[str, dict[str, torch.Tensor]]]
    trainables: list[dict[str, dict[str, torch.Tensor]]]
    statuses: list[str]
    divergences: list[str | None]
    member_steps: list[int]
    epoch: int = 0
    step: int = 0
    elapsed: float = 0.0
    rounds: list[list[dict]] = field(default_factory=list)
    finished: list[bool] = field(default_factory=list)

    RECORDS = ("init", "histories", "trajectories", "trainables", "statuses", "divergences",
               "member_steps", "epoch", "step", "elapsed", "rounds", "finished")

    def active(self) -> list[int]:
        """Indices of the members still training (not diverged, not finished by their
        ``Convergence``)."""
        return [i for i, status in enumerate(self.statuses)
                if status == "ok" and not self.finished[i]]

    def saved(self, fingerprints: list[str]) -> dict:
        """The resume file's content (CPU tensors), tagged with the members' fingerprints."""
        return {"fingerprints": fingerprints, "tensors": _cpu_tensors(self.tensors),
                "buffers": _cpu_tensors(self.buffers), "optimizer": self.optimizer.state_dict(),
                "generators": [g.get_state() for g in self.generators],
                "theta0": self.theta0.cpu(), **{key: getattr(self, key) for key in self.RECORDS}}

    def load(self, saved: dict, device: torch.device) -> None:
        """Take the state from a resume file's content ``saved``."""
        with torch.no_grad():
            for name, tensor in self.tensors.items():
                tensor.copy_(saved["tensors"][name])
        self.buffers = {name: buffer.to(device) for name, buffer in saved["buffers"].items()}
        self.optimizer.load_state_dict(saved["optimizer"], device)
        for generator, generator_state in zip(self.generators, saved["generators"]):
            generator.set_state(generator_state)
        self.theta0 = saved["theta0"].to(device)
        for key in self.RECORDS:
            setattr(self, key, saved.get(key, getattr(self, key)))


def _projection_groups(parameterizations: list[Parameterization]
                       ) -> list[tuple[object, list[int]]] | None:
    """For a batch of random-subspace members, each projection object with the indices of the
    members that hold it (members of one projection seed share one, ``build_parameterization``),
    so that a step reads each A once; ``None`` for any other batch."""
    if not all(p.kind == "subspace" for p in parameterizations):
        return None
    groups: dict[int, tuple[object, list[int]]] = {}
    for index, parameterization in enumerate(parameterizations):
        projection = parameterization.projection
        groups.setdefault(id(projection), (projection, []))[1].append(index)
    return list(groups.values())


class _Batch:
    """What stays fixed while M compatible members train on ``device``: their functional model
    (train and eval mode), data, parameterizations, fingerprints and the shared step plan; its
    methods are the loop's duties (state, resume, step, record, checkpoint, divergence, result)."""

    def __init__(self, members: list[Member], device: torch.device):
        self.members, self.count, self.device = members, len(members), device
        self.settings = settings = members[0].settings
        models = [member.model.to(device) for member in members]
        self.parameterizations = [
            (FullSpace(get_flat_params(model)) if member.parameterization is None
             else member.parameterization).to(device) for member, model in zip(members, models)]
        self.full_space = all(p.kind == "full" for p in self.parameterizations)
        self.projection_groups = _projection_groups(self.parameterizations)
        if self.projection_groups is not None:
            self.subspace_origins = torch.stack([p.theta0 for p in self.parameterizations])
        self.train_model = FunctionalModel(models[0], bn_mode="train")
        self.eval_model = FunctionalModel(models[0])
        self.state_names = list(models[0].state_dict())
        self.initial_buffers = [{name: buffer.detach().clone() for name, buffer
                                 in model.named_buffers()} for model in models]
        self.x_trains = [member.data.x_train.to(device) for member in members]
        self.y_trains = [member.data.y_train.to(device) for member in members]
        # the train loss of a uniform prediction (zero logits): ln C for cross-entropy
        self.uniform_losses = [
            float(loss_from_logits(torch.zeros(len(member.data.y_train), len(member.data.classes)),
                                   member.data.y_train, self.eval_model.loss_name))
            for member in members]
        self.x_tests = [member.data.x_test.to(device) for member in members]
        self.y_tests = [member.data.y_test.to(device) for member in members]
        data_digests = [tensors_digest({"x": x, "y": y})
                        for x, y in zip(self.x_trains, self.y_trains)]
        self.data_groups: dict[tuple[str, str], list[int]] = {}
        for i, (x, y) in enumerate(zip(self.x_tests, self.y_tests)):
            key = (data_digests[i], tensors_digest({"x": x, "y": y}))
            self.data_groups.setdefault(key, []).append(i)
        self.shared_data = len(set(data_digests)) == 1
        self.x_stack = self.x_trains[0] if self.shared_data else torch.stack(self.x_trains)
        self.y_stack = self.y_trains[0] if self.shared_data else torch.stack(self.y_trains)
        self.n_train = self.x_trains[0].shape[0]
        self.batches_per_epoch = math.ceil(self.n_train / settings.batch_size)
        self.convergence = convergence = members[0].convergence
        self.round_ends = [settings.epochs]
        if convergence is not None:
            if settings.steps is not None:
                raise ValueError("training until convergence takes rounds of whole epochs: "
                                 f"unset steps (got {settings.steps})")
            self.round_ends = round_ends(settings.epochs, convergence.max_epochs)
        self.max_epochs = self.round_ends[-1]
        # every round one full schedule over its own steps (a run without a Convergence: one
        # round, its steps capped by ``steps``)
        first_round = settings.epochs * self.batches_per_epoch
        if settings.steps is not None:
            first_round = min(first_round, settings.steps)
        self.round_starts = [0] + [end * self.batches_per_epoch for end in self.round_ends[:-1]]
        self.round_steps = [first_round] + [
            (end - start) * self.batches_per_epoch
            for start, end in zip(self.round_ends, self.round_ends[1:])]
        self.total_steps = self.round_starts[-1] + self.round_steps[-1]
        self.round_factors = [_lr_factor(settings, steps) for steps in self.round_steps]
        self.initial = [p.initial_tensors() for p in self.parameterizations]
        if any(init.keys() != self.initial[0].keys() or any(
                init[name].shape != self.initial[0][name].shape for name in init)
               for init in self.initial):
            raise ValueError("cannot train these runs as one batch: their trainable tensors "
                             "differ in names or shapes")
        self.fingerprints = [
            fingerprint(member.settings, member.seed, {
                **(member.identity or {}), "data_sha256": data_digests[i],
                "init_sha256": tensors_digest({**self.initial[i], **{
                    f"buffer.{name}": b for name, b in self.initial_buffers[i].items()}})},
                self.parameterizations[i].describe())
            for i, member in enumerate(members)]
        if convergence is not None:
            for i, member in enumerate(members):
                self.fingerprints[i] = fingerprint(
                    member.settings, member.seed,
                    {"fingerprint": self.fingerprints[i],
                     "convergence": dataclasses.asdict(convergence)})

    def lr_factor(self, step: int) -> float:
        """The learning-rate factor of the step after ``step`` steps: the schedule of its round
        at its place in the round (every round restarts the schedule)."""
        k = bisect.bisect_right(self.round_starts, step) - 1
        return self.round_factors[k](step - self.round_starts[k])

    def recorded_lr_factor(self, step: int) -> float:
        """The factor recorded after ``step`` steps: the last step's own round, at its end when
        ``step`` ends a round."""
        k = max(bisect.bisect_left(self.round_starts, step) - 1, 0)
        return self.round_factors[k](step - self.round_starts[k])

    def fresh_state(self) -> _BatchState:
        """The state before the first step: every member at its initial tensors and buffers."""
        tensors = {name: torch.stack([init[name] for init in self.initial]).requires_grad_()
                   for name in self.initial[0]}
        buffers = {name: torch.stack([b[name] for b in self.initial_buffers])
                   for name in self.initial_buffers[0]}
        with torch.no_grad():
            theta0 = self.points(tensors).detach().clone()
        optimizer = MemberOptimizer(self.settings.optimizer, *zip(*[
            (m.settings.lr, m.settings.momentum, m.settings.weight_decay) for m in self.members]))
        return _BatchState(
            tensors, buffers, optimizer,
            [torch.Generator().manual_seed(member.seed) for member in self.members], theta0,
            init=[self.state_dict(theta0[i], buffers, i) for i in range(self.count)],
            histories=[[] for _ in range(self.count)],
            trajectories=[{} for _ in range(self.count)],
            trainables=[{"init": _cpu_tensors(_rows(tensors, i))} for i in range(self.count)],
            statuses=["ok"] * self.count, divergences=[None] * self.count,
            member_steps=[0] * self.count, rounds=[[] for _ in range(self.count)],
            finished=[False] * self.count)

    def resume(self, state: _BatchState, path: Path, progress_file) -> bool:
        """Load ``state`` from the resume file ``path`` when it exists and was written by these
        members (same fingerprints); whether it did. A damaged resume file is discarded
        (``io.load_resume`` logs it) and the batch starts afresh."""
        if not path.exists():
            return False
        saved = io.load_resume(path)
        if not saved:
            return False
        if saved.get("fingerprints") != self.fingerprints:
            if progress_file is not None:
                progress_file.write(f"{path} was written by another run (fingerprints "
                                    f"{saved.get('fingerprints')} != {self.fingerprints}); "
                                    "starting afresh\n")
            return False
        state.load(saved, self.device)
        if progress_file is not None:
            progress_file.write(f"resuming from {path} at epoch {state.epoch} "
                                f"(batch of {self.count})\n")
        return True

    def points(self, tensors: dict[str, torch.Tensor], samples=None) -> torch.Tensor:
        """θ of every member ``(M, D)`` (or ``(M, J, D)`` for J-point samples)."""
        if self.full_space:
            return tensors["theta"]
        if self.projection_groups is not None:
            return self.subspace_points(tensors["z"])
        samples = samples or [None] * self.count
        return torch.stack([p.theta(_rows(tensors, i), samples[i])
                            for i, p in enumerate(self.parameterizations)])

    def subspace_points(self, z: torch.Tensor) -> torch.Tensor:
        """θ₀ + A z of every member of a subspace batch ``(M, D)`` from z ``(M, d)``: one product
        per projection, shared by the members that hold the same one (``_projection_groups``)."""
        order, moved = [], []
        for projection, indices in self.projection_groups:
            moved.append(projection.apply_rows(z[indices]))
            order.extend(indices)
        inverse = torch.argsort(torch.tensor(order, device=z.device))
        return self.subspace_origins + torch.cat(moved)[inverse]

    def state_dict(self, theta: torch.Tensor, buffers: dict[str, torch.Tensor],
                   index: int) -> dict[str, torch.Tensor]:
        """The model's state dict (CPU copies, in the model's order) at θ ``(D,)`` with member
        ``index``'s running statistics."""
        values = {**_rows(buffers, index), **self.train_model.layout.unflatten(theta)}
        return {name: values[name].detach().cpu().clone() for name in self.state_names}

    def member_loss(self, thetas: torch.Tensor, buffers: dict[str, torch.Tensor],
                    x: torch.Tensor, y: torch.Tensor):
        """One member's minibatch loss at θ ``(D,)``, or the mean over J points ``(J, D)``, and
        its running statistics after it."""
        if thetas.dim() == 1:
            return self.train_model.train_loss(thetas, buffers, x, y)
        losses = []
        for theta in thetas:
            loss, buffers = self.train_model.train_loss(theta, buffers, x, y)
            losses.append(loss)
        return torch.stack(losses).mean(), buffers

    def losses(self, thetas: torch.Tensor, buffers: dict[str, torch.Tensor], x: torch.Tensor,
               y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Every member's minibatch loss ``(M,)`` and running statistics after it: ``member_loss``
        vmapped over the members (a batch of one calls it directly: vmap's own cost would
        triple the step time of a small model)."""
        if thetas.shape[0] > 1:
            return vmap(self.member_loss)(thetas, buffers, x, y)
        loss, updated = self.member_loss(thetas[0], _rows(buffers, 0), x[0], y[0])
        return loss[None], {name: buffer[None] for name, buffer in updated.items()}

    def step(self, state: _BatchState, index: torch.Tensor,
             active: torch.Tensor | None) -> torch.Tensor:
        """One optimizer step of the ``active`` members ``(M,)`` (``None``: all) on their
        minibatches ``index`` ``(M, B)`` (the others keep tensors and statistics); every member's
        gradient norm ``(M,)``. Members finished by their ``Convergence`` are left out of the
        computation (diverged ones stay in it, masked)."""
        for tensor in state.tensors.values():
            tensor.grad = None
        samples = [p.sample(g) for p, g in zip(self.parameterizations, state.generators)]
        thetas = self.points(state.tensors, samples)
        rows = torch.arange(self.count, device=self.device)[:, None]
        xb = self.x_stack[index] if self.shared_data else self.x_stack[rows, index]
        yb = self.y_stack[index] if self.shared_data else self.y_stack[rows, index]
        computed = [i for i in range(self.count) if not state.finished[i]]
        if len(computed) == self.count:
            losses, buffers = self.losses(thetas, state.buffers, xb, yb)
        else:
            kept = torch.tensor(computed, device=self.device)
            losses, updated = self.losses(thetas[kept], {name: b[kept] for name, b
                                                         in state.buffers.items()},
                                          xb[kept], yb[kept])
            buffers = {name: b.index_copy(0, kept, updated[name].detach().to(b.dtype))
                       for name, b in state.buffers.items()}
        loss = losses.sum()
        for i in computed:
            p = self.parameterizations[i]
            penalty = p.penalty(_rows(state.tensors, i), samples[i], thetas[i])
            if penalty is not None:
                loss = loss + penalty
        loss.backward()
        state.buffers = {name: _where(None if active is None else _column(active, b).bool(),
                                      buffers[name].detach(), b)
                         for name, b in state.buffers.items()}
        state.optimizer.step(state.tensors, self.lr_factor(state.step), active)
        return torch.stack([t.grad.flatten(1).norm(dim=1)
                            for t in state.tensors.values()]).norm(dim=0)

    def train_epoch(self, state: _BatchState, training: list[int]) -> torch.Tensor | None:
        """One epoch of steps of the members ``training``, with the step-range checkpoints; the
        mean over its steps of each member's gradient norm ``(M,)`` (``None``: no step left)."""
        size = self.settings.batch_size
        start_range, stop_range = self.settings.checkpoint_step_range or (0, 0)
        active = None
        if len(training) < self.count:
            active = torch.zeros(self.count, dtype=torch.bool, device=self.device)
            active[training] = True
        orders = torch.stack([torch.randperm(self.n_train, generator=g)
                              for g in state.generators]).to(self.device)
        grad_norm_sum, steps = torch.zeros(self.count, device=self.device), 0
        for batch in range(self.batches_per_epoch):
            if state.step >= self.total_steps:
                break
            grad_norm_sum += self.step(state, orders[:, batch * size:(batch + 1) * size], active)
            steps += 1
            state.step += 1
            for i in training:
                state.member_steps[i] += 1
            if start_range <= state.step < stop_range:
                self.checkpoint(state, f"step-{state.step}", training)
        return grad_norm_sum / steps if steps else None

    def record(self, state: _BatchState, indices: list[int],
               grad_norms: torch.Tensor | None) -> None:
        """Append the members ``indices``' row of the epoch to their histories: losses and
        accuracies on their train and test sets (eval-mode batch norm with each member's running
        statistics), norms, learning rate, training time."""
        with torch.no_grad():
            thetas = self.points(state.tensors).detach()
        for group in self.data_groups.values():
            members = [i for i in group if i in indices]
            if not members:
                continue
            bn = ({"bn_policy": "interpolate", "bn_buffers": {
                name: b[members] for name, b in state.buffers.items()}}
                  if self.eval_model.has_batch_norm else {})
            first = members[0]
            metrics = evaluate_train_test(self.eval_model, thetas[members], self.x_trains[first],
                                          self.y_trains[first], self.x_tests[first],
                                          self.y_tests[first], **bn)
            for k, i in enumerate(members):
                state.histories[i].append({
                    "epoch": state.epoch, "step": state.member_steps[i],
                    "train_loss": float(metrics.train.loss[k]),
                    "train_acc": float(metrics.train.accuracy[k]),
                    "test_loss": float(metrics.test.loss[k]),
                    "test_acc": float(metrics.test.accuracy[k]),
                    "param_norm": float(thetas[i].norm()),
                    "dist_from_init": float((thetas[i] - state.theta0[i]).norm()),
                    "grad_norm": float("nan") if grad_norms is None else float(grad_norms[i]),
                    "lr": self.members[i].settings.lr * self.recorded_lr_factor(state.step),
                    "wall_time_s": state.elapsed})

    def checkpoint(self, state: _BatchState, label: str, indices: list[int]) -> None:
        """Save the members ``indices``' state dicts and trainable tensors under ``label``."""
        with torch.no_grad():
            thetas = self.points(state.tensors).detach()
        for i in indices:
            state.trajectories[i][label] = self.state_dict(thetas[i], state.buffers, i)
            state.trainables[i][label] = _cpu_tensors(_rows(state.tensors, i))

    def judge_divergence(self, state: _BatchState, indices: list[int]) -> None:
        """Mark the members ``indices`` whose last epoch diverged (``_divergence``)."""
        for i in indices:
            history = state.histories[i]
            reference = max(history[0]["train_loss"], self.uniform_losses[i])
            state.divergences[i] = _divergence(history[-1], reference,
                                               self.members[i].settings.divergence_loss_factor)
            if state.divergences[i] is not None:
                state.statuses[i] = "diverged"

    def evaluate_rounds(self, state: _BatchState, indices: list[int]) -> None:
        """Append to the members ``indices``' rounds the train loss at their parameterization's
        ``evaluation_points`` (whole training set, eval mode, batch-norm statistics recomputed at
        every point; no random draw): ``loss``, the largest less the largest at the fixed solutions
        among them (the whole largest without solutions), ``max_loss``, ``solution_loss`` and
        ``mean_loss``."""
        with torch.no_grad():
            for group in self.data_groups.values():
                members = [i for i in group if i in indices]
                if not members:
                    continue
                points = [self.parameterizations[i].evaluation_points(_rows(state.tensors, i))
                          for i in members]
                first = members[0]
                bn = ({"bn_policy": "recompute", "bn_data": self.x_trains[first]}
                      if self.eval_model.has_batch_norm else {})
                losses = evaluate_points(self.eval_model, torch.cat(points).detach(),
                                         self.x_trains[first], self.y_trains[first], **bn).loss
                offset = 0
                for i, member_points in zip(members, points):
                    loss = losses[offset:offset + len(member_points)]
                    offset += len(member_points)
                    solutions = self.parameterizations[i].evaluation_solutions().numpy()
                    solution_loss = float(loss[solutions].max()) if solutions.any() else 0.0
                    state.rounds[i].append({
                        "epoch": state.epoch, "loss": float(loss.max()) - solution_loss,
                        "max_loss": float(loss.max()), "solution_loss": solution_loss,
                        "mean_loss": float(loss.mean())})

    def judge_convergence(self, state: _BatchState, indices: list[int]) -> None:
        """At the end of a round: evaluate the members ``indices`` (``evaluate_rounds``) and
        finish those that converged or reached the cap."""
        self.evaluate_rounds(state, indices)
        for i in indices:
            losses = [r["loss"] for r in state.rounds[i]]
            if (converged(losses, self.convergence.tolerance, self.convergence.floor)
                    or state.epoch >= self.max_epochs):
                state.finished[i] = True

    def convergence_record(self, state: _BatchState, i: int) -> dict | None:
        """Member ``i``'s ``TrainResult.convergence`` (``None`` without a ``Convergence``)."""
        if self.convergence is None:
            return None
        conv, settings, p = self.convergence, self.members[i].settings, self.parameterizations[i]
        losses = [r["loss"] for r in state.rounds[i]]
        epochs = state.histories[i][-1]["epoch"]
        if state.statuses[i] != "ok":
            ok, detail = False, (f"diverged after {epochs} epochs ({state.divergences[i]}); "
                                 "not judged")
        elif len(losses) < 2:
            ok, detail = False, f"not judged: no round finished in {epochs} epochs"
        else:
            ok = converged(losses, conv.tolerance, conv.floor)
            detail = convergence_detail(losses, [r["epoch"] for r in state.rounds[i]],
                                        conv.max_epochs, conv.tolerance, conv.floor, p.loss_name)
        last = state.rounds[i][-1] if state.rounds[i] else dict.fromkeys(
            ("loss", "max_loss", "solution_loss", "mean_loss"))
        return {"converged": ok, "epochs": epochs, "max_epochs": conv.max_epochs,
                "criterion": conv.criterion(settings, p), "detail": detail,
                "loss": last["loss"], "max_loss": last["max_loss"],
                "solution_loss": last["solution_loss"], "mean_loss": last["mean_loss"],
                "rounds": list(state.rounds[i])}

    def results(self, state: _BatchState) -> list[TrainResult]:
        """Every member's ``TrainResult`` at the end of training."""
        with torch.no_grad():
            final = self.points(state.tensors).detach()
        results = []
        for i in range(self.count):
            state.trainables[i]["final"] = _cpu_tensors(_rows(state.tensors, i))
            results.append(TrainResult(
                status=state.statuses[i], final_state=self.state_dict(final[i], state.buffers, i),
                init_state=state.init[i], history=state.histories[i],
                trajectory=state.trajectories[i], steps=state.member_steps[i],
                trainable=state.trainables[i],
                parameterization=self.parameterizations[i].describe(),
                divergence=state.divergences[i], convergence=self.convergence_record(state, i)))
        return results


def train_members(members: list[Member], *, resume_path: str | Path | None = None,
                  device: torch.device | str = "cpu", progress_file=None) -> list[TrainResult]:
    """Train M >= 1 runs of one architecture as one vmapped computation; one ``TrainResult`` per
    member. Each member keeps its own seed (initialization, minibatch order and parameterization
    samples from its own generator), data, learning rate, momentum, weight decay, init,
    parameterization (``None``: ``FullSpace`` at the model's θ), batch-norm running statistics and
    divergence (a diverged member is frozen at the end of its epoch while the others go on).

    Per step, each member's θ = f(tensors, sample) is taken from its trainable tensors, the
    members' minibatch losses come from ``torch.func.vmap`` over ``FunctionalModel.train_loss``
    (batch norm normalizes with batch statistics; each member's running statistics are returned
    updated, never changed in place), one backward pass gives every member's gradient and
    ``MemberOptimizer`` steps them. When the parameterization gives J points ``(J, D)`` (a
    complex), the minibatch loss is the mean of their losses (taken in turn, each updating the
    running statistics), and its ``penalty`` (e.g. L2 on θ(t) for curves) is added.

    Losses are mean cross-entropy in nats, accuracies fractions in [0, 1]; ``grad_norm`` is the
    mean over the epoch's steps of the norm of the minibatch gradient with respect to the
    trainable tensors (θ for the full space, z for a subspace); ``param_norm`` and
    ``dist_from_init`` are ‖θ‖ and ‖θ − θ₀‖ of the point f(tensors) (``sample=None``: θ(½) of a
    curve, the connectors' centroid of a complex); evaluation uses each member's running
    statistics. A member whose loss, weights or gradients become NaN/inf, or whose train loss
    exceeds its ``divergence_loss_factor`` times its epoch-0 train loss, stops at the end of that
    epoch as ``"diverged"``. ``wall_time_s`` is the batch's training time.

    With a ``Convergence`` (the members share it), training goes in rounds of
    ``settings.epochs`` epochs, then twice, four times as many, …, each a full schedule restarted
    from the previous round's end, and a member stops once its loss at its fixed evaluation points
    converged, or at the cap ``max_epochs``; ``TrainResult.convergence`` records which.

    The members must be compatible (``batch_incompatibility``). With ``resume_path``, the batch
    state is saved there after every epoch and resumed from it when it exists and every member's
    ``fingerprint`` (settings, seed, ``identity``, parameterization, training data, initial
    tensors and buffers) matches; a file of other runs is overwritten, and ``progress_file`` says
    so."""
    reason = batch_incompatibility(members)
    if reason is not None:
        raise ValueError(f"cannot train these runs as one batch: {reason}")
    batch = _Batch(members, torch.device(device))
    settings, state = batch.settings, batch.fresh_state()
    resume = Path(resume_path) if resume_path is not None else None
    if resume is None or not batch.resume(state, resume, progress_file):
        batch.record(state, state.active(), None)
        if batch.convergence is not None:
            batch.evaluate_rounds(state, state.active())
        if 0 in settings.checkpoint_epochs:
            batch.checkpoint(state, "epoch-0", state.active())
    bar = tqdm(total=batch.max_epochs, initial=state.epoch, desc=f"epochs (batch of {batch.count})",
               file=progress_file, mininterval=1.0, disable=progress_file is None)
    while state.epoch < batch.max_epochs and state.step < batch.total_steps and state.active():
        training = state.active()
        started = time.perf_counter()
        grad_norms = batch.train_epoch(state, training)
        state.epoch += 1
        state.elapsed += time.perf_counter() - started
        batch.record(state, training, grad_norms)
        batch.judge_divergence(state, training)
        if batch.convergence is not None and state.epoch in batch.round_ends:
            batch.judge_convergence(state, [i for i in training if state.statuses[i] == "ok"])
        if state.epoch in settings.checkpoint_epochs:
            batch.checkpoint(state, f"epoch-{state.epoch}", training)
        bar.update(1)
        bar.set_postfix(active=f"{len(state.active())}/{batch.count}", mean_train_loss=
                        f"{np.mean([state.histories[i][-1]['train_loss'] for i in training]):.4f}")
        if resume is not None:
            io.save_torch(state.saved(batch.fingerprints), resume)
    bar.close()
    return batch.results(state)


def train_run(model: nn.Module, data, settings: TrainSettings, seed: int, *,
              parameterization: Parameterization | None = None, identity: dict | None = None,
              convergence: Convergence | None = None, resume_path: str | Path | None = None,
              device: torch.device | str = "cpu", progress_file=None) -> TrainResult:
    """Train one run alone: ``train_members`` on a batch of one (arguments as in ``Member``)."""
    return train_members([Member(model, data, settings, seed, parameterization, identity,
                                 convergence)],
                         resume_path=resume_path, device=device, progress_file=progress_file)[0]


def train_each_or_batch(members: list[Member], *, device: torch.device | str = "cpu",
                        progress_file=None) -> list[TrainResult]:
    """``train_members`` on all ``members`` when they can train as one vmapped batch
    (``batch_incompatibility``), else on each alone (a batch of one)."""
    if not members:
        return []
    batches = [members] if batch_incompatibility(members) is None else [[m] for m in members]
    return [result for batch in batches
            for result in train_members(batch, device=device, progress_file=progress_file)]
