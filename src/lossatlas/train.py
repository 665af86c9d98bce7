"""Training of one run in any parameterization: seeded, checkpointed along the trajectory,
resumable, divergence-aware. Ordinary training is the ``FullSpace`` parameterization; random
subspaces, mode-connecting curves and simplicial complexes go through the same loop.

A run is fully described by ``TrainSettings`` and its seed. The seed fixes the initialization
(``torch.manual_seed(seed)`` before the model is built, so runs that share a seed share θ₀) and the
order of the minibatches (a ``torch.Generator`` seeded with ``seed``). At the end of every epoch the
whole training state (model, optimizer, schedule, generator, history, trajectory checkpoints) is
written atomically to a resume file; a rerun after a kill continues from it and, on CPU, ends with
the same final state as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import vmap
from tqdm import tqdm

from . import io
from .evaluate import evaluate_train_test
from .functional import FunctionalModel
from .parameterizations import FullSpace, Parameterization
from .params import flat_params_from_state, get_flat_params, param_layout, set_flat_params_

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


@dataclass
class TrainResult:
    """Outcome of a run: ``status`` is ``"ok"`` or ``"diverged"`` (``divergence`` says why);
    ``history`` one row per epoch;
    ``trajectory`` maps a label (``epoch-3``, ``step-120``) to a saved state dict (θ the
    parameterization maps to, plus buffers); ``trainable`` maps ``init``, ``final`` and the same
    labels to the parameterization's trainable tensors there; ``parameterization`` is its
    ``describe()``."""

    status: str
    final_state: dict[str, torch.Tensor]
    init_state: dict[str, torch.Tensor]
    history: list[dict]
    trajectory: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    steps: int = 0
    trainable: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    parameterization: dict = field(default_factory=dict)
    divergence: str | None = None


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but no CUDA GPU is available")
    return torch.device(device)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _cpu_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in tensors.items()}


def _make_optimizer(tensors: list[torch.Tensor], settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "sgd":
        return torch.optim.SGD(tensors, lr=settings.lr, momentum=settings.momentum,
                               weight_decay=settings.weight_decay)
    return torch.optim.Adam(tensors, lr=settings.lr, weight_decay=settings.weight_decay)


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


def train_run(model: nn.Module, data, settings: TrainSettings, seed: int, *,
              parameterization: Parameterization | None = None, identity: dict | None = None,
              resume_path: str | Path | None = None, device: torch.device | str = "cpu",
              progress_file=None) -> TrainResult:
    """Train ``model`` (already initialized, e.g. by ``init_model``) on ``data`` (a
    ``DatasetTensors``) in ``parameterization`` (default: ``FullSpace`` at the model's θ): the
    optimizer updates the parameterization's trainable tensors, each minibatch's loss is taken at
    θ = f(tensors, sample) through ``FunctionalModel`` in train mode (batch-norm layers use batch
    statistics and update the running statistics, which checkpoints keep); when the
    parameterization gives J points ``(J, D)`` (a complex), the minibatch loss is the mean of their
    losses, and its ``penalty`` (e.g. L2 on θ(t) for curves) is added.

    Losses are mean cross-entropy in nats, accuracies fractions in [0, 1]; ``grad_norm`` is the mean
    over the epoch's steps of the norm of the minibatch gradient with respect to the trainable
    tensors (θ for the full space, z for a subspace); ``param_norm`` and ``dist_from_init`` are
    ‖θ‖ and ‖θ − θ₀‖ of the point f(tensors) (``sample=None``: θ(½) of a curve, the connectors'
    centroid of a complex). A run whose loss, weights or gradients become NaN/inf, or whose train
    loss exceeds ``settings.divergence_loss_factor`` times its epoch-0 train loss,
    stops at the end of that epoch as ``"diverged"``.

    With ``resume_path``, the training state is saved there after every epoch and resumed from it
    when it exists and was written by the same run (``fingerprint`` of settings, seed,
    ``identity``, parameterization, training data and initial tensors); a resume file of another
    run is overwritten, and ``progress_file`` says so.
    """
    device = torch.device(device)
    model = model.to(device)
    parameterization = (FullSpace(get_flat_params(model)) if parameterization is None
                        else parameterization).to(device)
    fmodel = FunctionalModel(model, bn_mode="train")
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    n_train = x_train.shape[0]
    batches_per_epoch = math.ceil(n_train / settings.batch_size)
    total_steps = settings.epochs * batches_per_epoch
    if settings.steps is not None:
        total_steps = min(total_steps, settings.steps)
    tensors = {name: t.requires_grad_() for name, t in parameterization.initial_tensors().items()}
    optimizer = _make_optimizer(list(tensors.values()), settings)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(settings, total_steps))
    generator = torch.Generator().manual_seed(seed)
    description = parameterization.describe()
    run_identity = {**(identity or {}),
                    "data_sha256": tensors_digest({"x": x_train, "y": y_train}),
                    "init_sha256": tensors_digest({**tensors, **{
                        f"buffer.{name}": buffer for name, buffer in fmodel.buffers.items()}})}
    run_fingerprint = fingerprint(settings, seed, run_identity, description)

    def point() -> torch.Tensor:
        with torch.no_grad():
            return parameterization.theta(tensors).detach().clone()

    def sync_model() -> torch.Tensor:
        """Write θ = f(tensors) and the running statistics into ``model``; return θ."""
        theta = point()
        set_flat_params_(model, theta)
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(fmodel.buffers[name])
        return theta

    theta0 = sync_model()
    init_state = _cpu_state(model)
    history: list[dict] = []
    trajectory: dict[str, dict[str, torch.Tensor]] = {}
    trainable = {"init": _cpu_tensors(tensors)}
    epoch, step, elapsed, status, divergence = 0, 0, 0.0, "ok", None

    resume = Path(resume_path) if resume_path is not None else None
    if resume is not None and resume.exists():
        saved = io.load_resume(resume)
        if saved.get("fingerprint") == run_fingerprint:
            with torch.no_grad():
                for name, tensor in tensors.items():
                    tensor.copy_(saved["tensors"][name])
                for name, buffer in fmodel.buffers.items():
                    buffer.copy_(saved["buffers"][name])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            generator.set_state(saved["generator"])
            init_state, history, trajectory = saved["init"], saved["history"], saved["trajectory"]
            trainable = saved["trainable"]
            epoch, step, elapsed = saved["epoch"], saved["step"], saved["elapsed"]
            status, divergence = saved["status"], saved["divergence"]
            theta0 = flat_params_from_state(init_state, fmodel.layout).to(device)
            if progress_file is not None:
                progress_file.write(f"resuming from {resume} at epoch {epoch}\n")
        elif progress_file is not None:
            progress_file.write(f"{resume} was written by another run (fingerprint "
                                f"{saved.get('fingerprint')} != {run_fingerprint}); starting afresh\n")

    def record(epoch_index: int, grad_norm: float) -> dict:
        theta = sync_model()
        metrics = evaluate_train_test(model, theta[None], x_train, y_train, x_test, y_test)
        train, test = metrics.train, metrics.test
        return {"epoch": epoch_index, "step": step,
                "train_loss": float(train.loss[0]), "train_acc": float(train.accuracy[0]),
                "test_loss": float(test.loss[0]), "test_acc": float(test.accuracy[0]),
                "param_norm": float(theta.norm()), "dist_from_init": float((theta - theta0).norm()),
                "grad_norm": grad_norm, "lr": optimizer.param_groups[0]["lr"],
                "wall_time_s": elapsed}

    def checkpoint(label: str) -> None:
        sync_model()
        trajectory[label] = _cpu_state(model)
        trainable[label] = _cpu_tensors(tensors)

    if epoch == 0 and not history:
        history.append(record(0, float("nan")))
        if 0 in settings.checkpoint_epochs:
            checkpoint("epoch-0")

    start_range, stop_range = settings.checkpoint_step_range or (0, 0)
    bar = tqdm(total=settings.epochs, initial=epoch, desc=f"epochs ({parameterization.kind})",
               file=progress_file, mininterval=1.0, disable=progress_file is None)
    while epoch < settings.epochs and step < total_steps and status == "ok":
        started = time.perf_counter()
        order = torch.randperm(n_train, generator=generator).to(device)
        grad_norms = []
        for batch in range(batches_per_epoch):
            if step >= total_steps:
                break
            index = order[batch * settings.batch_size:(batch + 1) * settings.batch_size]
            optimizer.zero_grad(set_to_none=True)
            sample = parameterization.sample(generator)
            thetas = parameterization.theta(tensors, sample)
            xb, yb = x_train[index], y_train[index]
            loss = (fmodel.loss(thetas, xb, yb) if thetas.dim() == 1
                    else torch.stack([fmodel.loss(theta, xb, yb) for theta in thetas]).mean())
            penalty = parameterization.penalty(tensors, sample, thetas)
            (loss if penalty is None else loss + penalty).backward()
            grad_norms.append(torch.linalg.vector_norm(
                torch.stack([t.grad.norm() for t in tensors.values() if t.grad is not None])))
            optimizer.step()
            scheduler.step()
            step += 1
            if start_range <= step < stop_range:
                checkpoint(f"step-{step}")
        epoch += 1
        elapsed += time.perf_counter() - started
        row = record(epoch, float(torch.stack(grad_norms).mean()) if grad_norms else float("nan"))
        history.append(row)
        divergence = _divergence(row, history[0]["train_loss"], settings.divergence_loss_factor)
        if divergence is not None:
            status = "diverged"
        if epoch in settings.checkpoint_epochs:
            checkpoint(f"epoch-{epoch}")
        bar.update(1)
        bar.set_postfix(train_loss=f"{row['train_loss']:.4f}", test_acc=f"{row['test_acc']:.3f}")
        if resume is not None:
            io.save_torch({"fingerprint": run_fingerprint, "tensors": _cpu_tensors(tensors),
                           "buffers": _cpu_tensors(fmodel.buffers),
                           "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                           "generator": generator.get_state(), "init": init_state,
                           "history": history, "trajectory": trajectory, "trainable": trainable,
                           "epoch": epoch, "step": step, "elapsed": elapsed, "status": status,
                           "divergence": divergence},
                          resume)
    bar.close()
    sync_model()
    trainable["final"] = _cpu_tensors(tensors)
    return TrainResult(status=status, final_state=_cpu_state(model), init_state=init_state,
                       history=history, trajectory=trajectory, steps=step, trainable=trainable,
                       parameterization=description, divergence=divergence)


def _divergence(row: dict, initial_loss: float, factor: float) -> str | None:
    """Why the epoch in ``row`` counts as diverged (non-finite values, or a train loss above
    ``factor`` times ``initial_loss``), or ``None``."""
    non_finite = [k for k in ("train_loss", "param_norm", "grad_norm") if not math.isfinite(row[k])]
    if non_finite:
        return f"non-finite {', '.join(non_finite)} at epoch {row['epoch']}"
    if row["train_loss"] > factor * initial_loss:
        return (f"train loss {row['train_loss']:.4g} at epoch {row['epoch']} exceeds "
                f"divergence_loss_factor {factor:g} x initial loss {initial_loss:.4g}")
    return None


def status_record(result: TrainResult) -> dict:
    """The ``status.json`` of a finished run or structure: status, divergence reason, steps, last
    epoch, its train loss and test accuracy, and the parameterization."""
    last = result.history[-1]
    return {"status": result.status, "divergence": result.divergence, "steps": result.steps,
            "epochs": last["epoch"], "train_loss": last["train_loss"],
            "test_acc": last["test_acc"], "parameterization": result.parameterization}


def init_model(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Build a model with its initialization fixed by ``seed`` (same seed => same θ₀)."""
    torch.manual_seed(seed)
    return build()


@dataclass
class Member:
    """One run of a batch trained by ``train_members``: an initialized ``model``, its ``data`` (a
    ``DatasetTensors``: the run's own training subset and label-noise draw), settings, seed,
    parameterization (``None``: ``FullSpace`` at the model's θ) and ``identity`` (as in
    ``train_run``)."""

    model: nn.Module
    data: object
    settings: TrainSettings
    seed: int
    parameterization: Parameterization | None = None
    identity: dict | None = None


# Settings every member of a batch shares: they fix the steps taken together.
BATCH_SHARED_SETTINGS = ("optimizer", "batch_size", "epochs", "steps", "schedule",
                         "checkpoint_epochs", "checkpoint_step_range")


def batch_incompatibility(members: list[Member]) -> str | None:
    """Why ``members`` cannot be trained as one vmapped batch (``None``: they can): they must share
    the architecture (names and shapes of the parameters), have no buffers (batch-norm running
    statistics are updated in place, which ``vmap`` cannot batch), the training-set size, the
    ``BATCH_SHARED_SETTINGS`` and the names and shapes of the trainable tensors."""
    if not members:
        return "a batch needs at least one member"
    first = members[0]
    layout = param_layout(first.model)
    for index, member in enumerate(members):
        if any(True for _ in member.model.buffers()):
            return f"member {index} has buffers (batch norm); train it with train_run"
        if param_layout(member.model) != layout:
            return f"member {index} has another architecture than member 0"
        if member.data.x_train.shape != first.data.x_train.shape:
            return (f"member {index} has {tuple(member.data.x_train.shape)} training inputs, "
                    f"member 0 {tuple(first.data.x_train.shape)}")
        for key in BATCH_SHARED_SETTINGS:
            if getattr(member.settings, key) != getattr(first.settings, key):
                return (f"member {index} has {key}={getattr(member.settings, key)!r}, member 0 "
                        f"{getattr(first.settings, key)!r}")
    return None


def _column(values, like: torch.Tensor) -> torch.Tensor:
    """Per-member scalars ``(M,)`` shaped to broadcast against a stacked tensor ``like``
    ``(M, ...)``."""
    return torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(
        -1, *([1] * (like.dim() - 1)))


class MemberOptimizer:
    """SGD (momentum, L2 weight decay added to the gradient, no dampening) or Adam (β = (0.9, 0.999),
    ε = 1e-8, L2 weight decay, bias-corrected) on stacked trainable tensors ``(M, ...)``, each
    member with its own learning rate, momentum and weight decay; the update rules of
    ``torch.optim.SGD`` and ``torch.optim.Adam`` with their defaults, applied row-wise. Members
    where ``active`` is false keep their tensors and state."""

    def __init__(self, kind: str, lrs, momenta, weight_decays):
        self.kind = kind
        self.lrs, self.momenta, self.weight_decays = list(lrs), list(momenta), list(weight_decays)
        self.steps = 0
        self.state: dict[str, dict[str, torch.Tensor]] = {}

    @torch.no_grad()
    def step(self, tensors: dict[str, torch.Tensor], lr_factor: float,
             active: torch.Tensor) -> None:
        self.steps += 1
        for name, tensor in tensors.items():
            grad = tensor.grad
            keep = _column(active, tensor).bool()
            lr = _column(self.lrs, tensor) * lr_factor
            direction = grad + _column(self.weight_decays, tensor) * tensor
            state = self.state.setdefault(name, {})
            if self.kind == "sgd":
                previous = state.get("momentum")
                buffer = (direction if previous is None
                          else _column(self.momenta, tensor) * previous + direction)
                state["momentum"] = torch.where(keep, buffer, previous if previous is not None
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
                state["exp_avg"] = torch.where(keep, exp_avg_next, exp_avg)
                state["exp_avg_sq"] = torch.where(keep, exp_avg_sq_next, exp_avg_sq)
            tensor.copy_(torch.where(keep, tensor - update, tensor))

    def state_dict(self) -> dict:
        return {"steps": self.steps, "state": {name: _cpu_tensors(s) for name, s in self.state.items()}}

    def load_state_dict(self, saved: dict, device: torch.device) -> None:
        self.steps = saved["steps"]
        self.state = {name: {k: v.to(device) for k, v in s.items()}
                      for name, s in saved["state"].items()}


def train_members(members: list[Member], *, resume_path: str | Path | None = None,
                  device: torch.device | str = "cpu", progress_file=None) -> list[TrainResult]:
    """Train a batch of runs of one architecture as one vmapped computation and return one
    ``TrainResult`` per member, the same (up to float rounding) as ``train_run`` gives for that
    member alone: each member keeps its own seed (initialization, minibatch order and
    parameterization samples from its own generator), data, learning rate, momentum, weight
    decay, init and parameterization, and its own divergence (a diverged member is frozen at the
    end of its epoch while the others go on). Per step, every member's θ is taken from its
    trainable tensors, the members' minibatch losses are computed by ``torch.func.vmap`` over
    ``FunctionalModel.loss`` and one backward pass gives every member's gradient.
    ``wall_time_s`` in the histories is the batch's training time.

    The members must be compatible (``batch_incompatibility``). With ``resume_path`` the batch
    state is saved after every epoch and resumed when every member's fingerprint matches."""
    reason = batch_incompatibility(members)
    if reason is not None:
        raise ValueError(f"cannot train these runs as one batch: {reason}")
    device = torch.device(device)
    count = len(members)
    settings = members[0].settings
    models = [member.model.to(device) for member in members]
    parameterizations = [(FullSpace(get_flat_params(model)) if member.parameterization is None
                          else member.parameterization).to(device)
                         for member, model in zip(members, models)]
    fmodel = FunctionalModel(models[0], bn_mode="train")
    layout = fmodel.layout
    x_trains = [member.data.x_train.to(device) for member in members]
    y_trains = [member.data.y_train.to(device) for member in members]
    x_tests = [member.data.x_test.to(device) for member in members]
    y_tests = [member.data.y_test.to(device) for member in members]
    data_digests = [tensors_digest({"x": x, "y": y}) for x, y in zip(x_trains, y_trains)]
    test_digests = [tensors_digest({"x": x, "y": y}) for x, y in zip(x_tests, y_tests)]
    shared_data = len(set(data_digests)) == 1
    x_stack = x_trains[0] if shared_data else torch.stack(x_trains)
    y_stack = y_trains[0] if shared_data else torch.stack(y_trains)
    n_train = x_trains[0].shape[0]
    batches_per_epoch = math.ceil(n_train / settings.batch_size)
    total_steps = settings.epochs * batches_per_epoch
    if settings.steps is not None:
        total_steps = min(total_steps, settings.steps)
    initial = [p.initial_tensors() for p in parameterizations]
    if any(init.keys() != initial[0].keys() or any(
            init[name].shape != initial[0][name].shape for name in init) for init in initial):
        raise ValueError("cannot train these runs as one batch: their trainable tensors differ "
                         "in names or shapes")
    tensors = {name: torch.stack([init[name] for init in initial]).requires_grad_()
               for name in initial[0]}
    optimizer = MemberOptimizer(settings.optimizer, [m.settings.lr for m in members],
                                [m.settings.momentum for m in members],
                                [m.settings.weight_decay for m in members])
    lr_factor = _lr_factor(settings, total_steps)
    generators = [torch.Generator().manual_seed(member.seed) for member in members]
    descriptions = [p.describe() for p in parameterizations]
    full_space = all(p.kind == "full" for p in parameterizations)

    def member_tensors(index: int, source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: tensor[index] for name, tensor in source.items()}

    fingerprints = [
        fingerprint(member.settings, member.seed,
                    {**(member.identity or {}), "data_sha256": data_digests[index],
                     "init_sha256": tensors_digest(initial[index])}, descriptions[index])
        for index, member in enumerate(members)]

    def points(samples=None) -> torch.Tensor:
        """θ of every member ``(M, D)`` (or ``(M, J, D)`` for J-point samples)."""
        if full_space:
            return tensors["theta"]
        samples = samples or [None] * count
        return torch.stack([p.theta(member_tensors(i, tensors), samples[i])
                            for i, p in enumerate(parameterizations)])

    def state_of(theta: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: value.detach().cpu().clone() for name, value in layout.unflatten(theta).items()}

    with torch.no_grad():
        theta0 = points().detach().clone()
    init_states = [state_of(theta0[i]) for i in range(count)]
    histories: list[list[dict]] = [[] for _ in range(count)]
    trajectories: list[dict] = [{} for _ in range(count)]
    trainables = [{"init": _cpu_tensors(member_tensors(i, tensors))} for i in range(count)]
    statuses, divergences = ["ok"] * count, [None] * count
    member_steps = [0] * count
    epoch, step, elapsed = 0, 0, 0.0

    resume = Path(resume_path) if resume_path is not None else None
    if resume is not None and resume.exists():
        saved = io.load_resume(resume)
        if saved.get("fingerprints") == fingerprints:
            with torch.no_grad():
                for name, tensor in tensors.items():
                    tensor.copy_(saved["tensors"][name])
            optimizer.load_state_dict(saved["optimizer"], device)
            for generator, state in zip(generators, saved["generators"]):
                generator.set_state(state)
            init_states, histories = saved["init"], saved["histories"]
            trajectories, trainables = saved["trajectories"], saved["trainables"]
            statuses, divergences = saved["statuses"], saved["divergences"]
            member_steps = saved["member_steps"]
            epoch, step, elapsed = saved["epoch"], saved["step"], saved["elapsed"]
            theta0 = torch.stack([flat_params_from_state(s, layout) for s in init_states]).to(device)
            if progress_file is not None:
                progress_file.write(f"resuming the batch of {count} from {resume} at epoch {epoch}\n")
        elif progress_file is not None:
            progress_file.write(f"{resume} was written by another batch; starting afresh\n")

    def active_members() -> list[int]:
        return [i for i in range(count) if statuses[i] == "ok"]

    def record(epoch_index: int, members_now: list[int], grad_norms: torch.Tensor | None) -> None:
        with torch.no_grad():
            thetas = points().detach()
        groups: dict[tuple[str, str], list[int]] = {}
        for i in members_now:
            groups.setdefault((data_digests[i], test_digests[i]), []).append(i)
        for indices in groups.values():
            first = indices[0]
            metrics = evaluate_train_test(models[0], thetas[indices], x_trains[first],
                                          y_trains[first], x_tests[first], y_tests[first])
            for k, i in enumerate(indices):
                histories[i].append({
                    "epoch": epoch_index, "step": member_steps[i],
                    "train_loss": float(metrics.train.loss[k]),
                    "train_acc": float(metrics.train.accuracy[k]),
                    "test_loss": float(metrics.test.loss[k]),
                    "test_acc": float(metrics.test.accuracy[k]),
                    "param_norm": float(thetas[i].norm()),
                    "dist_from_init": float((thetas[i] - theta0[i]).norm()),
                    "grad_norm": float("nan") if grad_norms is None else float(grad_norms[i]),
                    "lr": members[i].settings.lr * lr_factor(step), "wall_time_s": elapsed})

    def checkpoint(label: str, members_now: list[int]) -> None:
        with torch.no_grad():
            thetas = points().detach()
        for i in members_now:
            trajectories[i][label] = state_of(thetas[i])
            trainables[i][label] = _cpu_tensors(member_tensors(i, tensors))

    if epoch == 0 and not histories[0]:
        record(0, list(range(count)), None)
        if 0 in settings.checkpoint_epochs:
            checkpoint("epoch-0", list(range(count)))

    def member_losses(thetas: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if thetas.dim() == 2:
            return vmap(fmodel.loss)(thetas, xb, yb)
        return vmap(lambda t, x, y: vmap(fmodel.loss, in_dims=(0, None, None))(t, x, y).mean())(
            thetas, xb, yb)

    start_range, stop_range = settings.checkpoint_step_range or (0, 0)
    rows = torch.arange(count, device=device)[:, None]
    bar = tqdm(total=settings.epochs, initial=epoch, desc=f"epochs (batch of {count})",
               file=progress_file, mininterval=1.0, disable=progress_file is None)
    while epoch < settings.epochs and step < total_steps and active_members():
        started = time.perf_counter()
        training = active_members()
        active = torch.tensor([statuses[i] == "ok" for i in range(count)], device=device)
        orders = torch.stack([torch.randperm(n_train, generator=g) for g in generators]).to(device)
        grad_norm_sum = torch.zeros(count, device=device)
        batches_done = 0
        for batch in range(batches_per_epoch):
            if step >= total_steps:
                break
            index = orders[:, batch * settings.batch_size:(batch + 1) * settings.batch_size]
            for tensor in tensors.values():
                tensor.grad = None
            samples = [p.sample(g) for p, g in zip(parameterizations, generators)]
            thetas = points(samples)
            xb = x_stack[index] if shared_data else x_stack[rows, index]
            yb = y_stack[index] if shared_data else y_stack[rows, index]
            loss = member_losses(thetas, xb, yb).sum()
            for i, p in enumerate(parameterizations):
                penalty = p.penalty(member_tensors(i, tensors), samples[i], thetas[i])
                if penalty is not None:
                    loss = loss + penalty
            loss.backward()
            grad_norm_sum += torch.stack([t.grad.flatten(1).norm(dim=1)
                                          for t in tensors.values()]).norm(dim=0).detach()
            optimizer.step(tensors, lr_factor(step), active)
            step += 1
            batches_done += 1
            for i in training:
                member_steps[i] += 1
            if start_range <= step < stop_range:
                checkpoint(f"step-{step}", training)
        epoch += 1
        elapsed += time.perf_counter() - started
        record(epoch, training, grad_norm_sum / batches_done if batches_done else None)
        for i in training:
            divergences[i] = _divergence(histories[i][-1], histories[i][0]["train_loss"],
                                         members[i].settings.divergence_loss_factor)
            if divergences[i] is not None:
                statuses[i] = "diverged"
        if epoch in settings.checkpoint_epochs:
            checkpoint(f"epoch-{epoch}", training)
        bar.update(1)
        losses = [histories[i][-1]["train_loss"] for i in training]
        bar.set_postfix(active=f"{len(active_members())}/{count}",
                        mean_train_loss=f"{np.nanmean(losses):.4f}")
        if resume is not None:
            io.save_torch({"fingerprints": fingerprints, "tensors": _cpu_tensors(tensors),
                           "optimizer": optimizer.state_dict(),
                           "generators": [g.get_state() for g in generators],
                           "init": init_states, "histories": histories,
                           "trajectories": trajectories, "trainables": trainables,
                           "statuses": statuses, "divergences": divergences,
                           "member_steps": member_steps, "epoch": epoch, "step": step,
                           "elapsed": elapsed}, resume)
    bar.close()
    with torch.no_grad():
        final = points().detach()
    results = []
    for i in range(count):
        trainables[i]["final"] = _cpu_tensors(member_tensors(i, tensors))
        results.append(TrainResult(
            status=statuses[i], final_state=state_of(final[i]), init_state=init_states[i],
            history=histories[i], trajectory=trajectories[i], steps=member_steps[i],
            trainable=trainables[i], parameterization=descriptions[i],
            divergence=divergences[i]))
    return results


def train_each_or_batch(members: list[Member], *, device: torch.device | str = "cpu",
                        progress_file=None) -> list[TrainResult]:
    """``train_members`` when the members can train as one vmapped batch
    (``batch_incompatibility``), else ``train_run`` for each (e.g. batch-norm models)."""
    if not members:
        return []
    if batch_incompatibility(members) is None:
        return train_members(members, device=device, progress_file=progress_file)
    return [train_run(m.model, m.data, m.settings, m.seed, parameterization=m.parameterization,
                      identity=m.identity, device=device, progress_file=progress_file)
            for m in members]
