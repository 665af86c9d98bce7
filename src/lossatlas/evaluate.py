"""The batched evaluator: loss and accuracy of one network at K parameter points θ_k at once.

Every measurement that evaluates the network away from its stored weights goes through
``evaluate_points``: ``torch.func.vmap`` over the K points of ``FunctionalModel.logits``, chunked
over points to a memory budget and over the data in large batches, accumulated as sums and divided
once by the number of samples, so the result equals the full-dataset mean (up to float error).

Units: ``loss`` is the mean loss over the samples — cross-entropy in nats (or the MSE of the logits
against one-hot labels for an MSE ``FunctionalModel``); ``accuracy`` is the fraction of samples whose
arg-max logit is the label, in [0, 1].

Batch-norm policy (``BN_POLICIES``; callers record ``PointMetrics.bn_policy`` in their outputs):
- ``"keep"``: normalize with the running statistics stored in the model's buffers;
- ``"recompute"``: at each point, the running statistics are recomputed from training inputs
  ``bn_data`` exactly as a loop would get them by resetting the BN buffers, setting
  ``momentum=None``, passing ``bn_data`` through the network in train mode (no grad) in batches of
  ``bn_batch_size`` and then evaluating in eval mode ("warm BN", Lucas et al. 2021; Garipov et al.
  2018): each buffer is the average over those batches of the batch mean / unbiased batch variance
  of the layer's input;
- ``"interpolate"``: per-point buffers ``(K, ...)`` given by the caller (e.g. ``interpolate_buffers``).
For a model without batch norm the policy has no effect; it is accepted and recorded as ``"none"``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import vmap
from tqdm import tqdm

from .functional import FunctionalModel, loss_from_logits

BN_POLICIES = ("keep", "recompute", "interpolate")
PRECISIONS = ("fp32", "bf16", "tf32")
DEFAULT_MEMORY_BUDGET = 64 * 2**20
DEFAULT_BATCH_SIZE = 4096


@dataclass(frozen=True)
class PointMetrics:
    """Loss ``(K,)`` (mean over samples, nats for cross-entropy) and accuracy ``(K,)`` (fraction in
    [0, 1]) as float64 numpy arrays; ``bn_policy`` is the policy used (``"none"`` without BN);
    ``n_samples`` the number of samples averaged over."""

    loss: np.ndarray
    accuracy: np.ndarray
    bn_policy: str
    n_samples: int


@dataclass(frozen=True)
class TrainTestMetrics:
    """``evaluate_train_test`` result: metrics on the training and the test set."""

    train: PointMetrics
    test: PointMetrics


def interpolate_buffers(buffers_a: Mapping[str, torch.Tensor], buffers_b: Mapping[str, torch.Tensor],
                        alphas: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-point BN buffers ``(K, ...)``: ``(1 − α_k) a + α_k b`` for every floating-point buffer
    (running means and variances) of two models with the same architecture; integer buffers
    (``num_batches_tracked``) are left out. For the ``"interpolate"`` policy along a line."""
    alphas = torch.as_tensor(alphas)
    out = {}
    for name, a in buffers_a.items():
        if name not in buffers_b:
            raise KeyError(f"buffer {name!r} missing from the second set of buffers")
        if not a.is_floating_point():
            continue
        b = buffers_b[name].to(a)
        shape = (-1,) + (1,) * a.dim()
        w = alphas.to(a).reshape(shape)
        out[name] = (1 - w) * a + w * b
    return out


def subset_indices(n_total: int, n_samples: int | None, seed: int) -> torch.Tensor | None:
    """Sorted indices of a seeded random subset of ``min(n_samples, n_total)`` out of ``n_total``
    (``None``: all samples, no subset)."""
    if n_samples is None:
        return None
    if n_samples < 1:
        raise ValueError(f"subset size must be >= 1, got {n_samples}")
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n_total, generator=generator)[:n_samples].sort().values


def precision_for(requested: str, device: torch.device) -> str:
    """The evaluation precision to use on ``device``: ``requested`` on CUDA, ``"fp32"`` on a CPU
    (where TF32 and bf16 autocast do not apply)."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; valid: {', '.join(PRECISIONS)}")
    return requested if torch.device(device).type == "cuda" else "fp32"


@contextlib.contextmanager
def _precision(precision: str, device: torch.device) -> Iterator[None]:
    """fp32 everywhere; on CUDA optionally TF32 matmuls/convolutions or bf16 autocast."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        if precision != "fp32":
            raise ValueError(f"precision {precision!r} needs a CUDA device, data is on {device}")
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _bn_modules(module: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in module.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)}


def activation_bytes_per_sample(fmodel: FunctionalModel, x: torch.Tensor) -> int:
    """Bytes of all module outputs of one forward pass for one sample at one point: the memory
    estimate used to size point chunks and data batches."""
    total = [x[:1].numel()]
    hooks = [m.register_forward_hook(lambda _m, _i, out: total.append(out.numel()))
             for m in fmodel.module.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            fmodel.logits(fmodel.theta0.to(x.device), x[:1], _buffers_on(fmodel, x.device))
    finally:
        for hook in hooks:
            hook.remove()
    return 4 * sum(total)


def _buffers_on(fmodel: FunctionalModel, device: torch.device) -> dict[str, torch.Tensor]:
    return {name: b.to(device) for name, b in fmodel.buffers.items()}


def _chunk_sizes(n_points: int, n_samples: int, bytes_per_sample: int, chunk_points: int | None,
                 batch_size: int | None, memory_budget_bytes: int) -> tuple[int, int]:
    """Points per chunk and samples per data batch so that their product times the activation
    size stays within the budget (explicit values are taken as given)."""
    if batch_size is None:
        per_point = memory_budget_bytes // max(1, chunk_points or 1)
        batch_size = max(1, min(n_samples, DEFAULT_BATCH_SIZE, per_point // bytes_per_sample))
    if chunk_points is None:
        chunk_points = max(1, min(n_points, memory_budget_bytes // (batch_size * bytes_per_sample)))
    if chunk_points < 1 or batch_size < 1:
        raise ValueError(f"chunk_points and batch_size must be >= 1, got {chunk_points}, {batch_size}")
    return chunk_points, batch_size


def _recomputed_buffers(batch_fmodel: FunctionalModel, bn_names: list[str], thetas: torch.Tensor,
                        bn_data: torch.Tensor, bn_batch_size: int) -> dict[str, torch.Tensor]:
    """BN running statistics ``(k, C)`` at every point of ``thetas`` ``(k, D)`` after a
    ``momentum=None`` train-mode pass over ``bn_data`` in batches of ``bn_batch_size``."""
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []

    def capture(_module, inputs):
        h = inputs[0]
        dims = [d for d in range(h.dim()) if d != 1]
        captured.append((h.mean(dims), h.var(dims, correction=1)))

    modules = _bn_modules(batch_fmodel.module)
    hooks = [modules[name].register_forward_pre_hook(capture) for name in bn_names]

    def statistics(theta, xb):
        captured.clear()
        batch_fmodel.logits(theta, xb)
        return [m for m, _ in captured], [v for _, v in captured]

    try:
        means = [torch.zeros(thetas.shape[0], modules[n].num_features, dtype=thetas.dtype,
                             device=thetas.device) for n in bn_names]
        variances = [torch.zeros_like(m) for m in means]
        starts = range(0, bn_data.shape[0], bn_batch_size)
        for start in starts:
            batch_means, batch_vars = vmap(statistics, in_dims=(0, None))(
                thetas, bn_data[start:start + bn_batch_size])
            for i in range(len(bn_names)):
                means[i] += batch_means[i].to(thetas.dtype)
                variances[i] += batch_vars[i].to(thetas.dtype)
    finally:
        for hook in hooks:
            hook.remove()
    out = {}
    for name, mean, var in zip(bn_names, means, variances):
        out[f"{name}.running_mean"] = mean / len(starts)
        out[f"{name}.running_var"] = var / len(starts)
    return out


def _batched_logits(fmodel: FunctionalModel, points: torch.Tensor, x: torch.Tensor, *,
                    bn_policy: str, bn_data: torch.Tensor | None, bn_batch_size: int | None,
                    bn_buffers: Mapping[str, torch.Tensor] | None, chunk_points: int | None,
                    batch_size: int | None, memory_budget_bytes: int, precision: str,
                    progress_file) -> tuple[str, Iterator[tuple[int, int, torch.Tensor]]]:
    """The BN policy applied, and an iterator over ``(start, first, logits)``: the float32 logits
    ``(k, b, C)`` of the points ``points[start:start + k]`` on the samples ``x[first:first + b]``
    (arguments as in ``evaluate_points``)."""
    if fmodel.bn_mode != "eval":
        raise ValueError(f"evaluation needs a FunctionalModel with bn_mode='eval', "
                         f"got {fmodel.bn_mode!r}; batch norm is set by bn_policy")
    if bn_policy not in BN_POLICIES:
        raise ValueError(f"unknown bn_policy {bn_policy!r}; valid: {', '.join(BN_POLICIES)}")
    if points.dim() != 2 or points.shape[1] != fmodel.layout.dim:
        raise ValueError(f"points must have shape (K, {fmodel.layout.dim}), got {tuple(points.shape)}")
    if x.shape[0] == 0:
        raise ValueError("need at least one sample")
    device, dtype = x.device, fmodel.theta0.dtype
    x = x.to(dtype) if x.is_floating_point() else x
    n_points, n_samples = points.shape[0], x.shape[0]
    policy = bn_policy if fmodel.has_batch_norm else "none"
    base_buffers = _buffers_on(fmodel, device)
    per_point_buffers: dict[str, torch.Tensor] = {}
    batch_fmodel, bn_names = None, []
    if policy == "interpolate":
        if bn_buffers is None:
            raise ValueError("bn_policy='interpolate' needs per-point bn_buffers {name: (K, ...)}")
        unknown = sorted(set(bn_buffers) - set(base_buffers))
        if unknown:
            raise KeyError(f"bn_buffers names not buffers of the model: {', '.join(unknown)}")
        for name, b in bn_buffers.items():
            if b.shape != (n_points, *base_buffers[name].shape):
                raise ValueError(f"bn_buffers[{name!r}] must have shape "
                                 f"{(n_points, *base_buffers[name].shape)}, got {tuple(b.shape)}")
        per_point_buffers = {name: b.to(device=device, dtype=base_buffers[name].dtype)
                             for name, b in bn_buffers.items()}
    elif policy == "recompute":
        if bn_data is None:
            raise ValueError("bn_policy='recompute' needs the training inputs bn_data")
        bn_data = bn_data.to(device=device, dtype=dtype)
        bn_batch_size = bn_batch_size or bn_data.shape[0]
        batch_fmodel = FunctionalModel(fmodel.module, bn_mode="batch")
        bn_names = list(_bn_modules(fmodel.module))

    bytes_per_sample = activation_bytes_per_sample(fmodel, x)
    chunk, batch = _chunk_sizes(n_points, n_samples, bytes_per_sample, chunk_points, batch_size,
                                memory_budget_bytes)
    if policy == "recompute" and chunk_points is None:
        chunk = max(1, min(chunk, memory_budget_bytes // (bn_batch_size * bytes_per_sample)))

    def logits(theta, buffers, xb):
        return fmodel.logits(theta, xb, {**base_buffers, **buffers})

    points = points.to(device=device, dtype=dtype)

    def batches() -> Iterator[tuple[int, int, torch.Tensor]]:
        with torch.no_grad(), _precision(precision, device):
            for start in tqdm(range(0, n_points, chunk), desc="point chunks", file=progress_file,
                              mininterval=1.0, disable=progress_file is None):
                thetas = points[start:start + chunk]
                buffers = {name: b[start:start + chunk] for name, b in per_point_buffers.items()}
                if batch_fmodel is not None:
                    buffers = _recomputed_buffers(batch_fmodel, bn_names, thetas, bn_data,
                                                  bn_batch_size)
                for first in range(0, n_samples, batch):
                    xb = x[first:first + batch]
                    yield start, first, vmap(logits, in_dims=(0, 0, None))(thetas, buffers, xb).float()

    return policy, batches()


def evaluate_points(model: nn.Module | FunctionalModel, points: torch.Tensor, x: torch.Tensor,
                    y: torch.Tensor, *, bn_policy: str = "keep", bn_data: torch.Tensor | None = None,
                    bn_batch_size: int | None = None,
                    bn_buffers: Mapping[str, torch.Tensor] | None = None,
                    chunk_points: int | None = None, batch_size: int | None = None,
                    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET, precision: str = "fp32",
                    progress_file=None) -> PointMetrics:
    """Mean loss and accuracy of ``model`` at each row of ``points`` ``(K, D)`` on ``(x, y)``.

    ``model``: an ``nn.Module`` (evaluated in eval mode on a private copy) or a ``FunctionalModel``
    with ``bn_mode="eval"``. ``x`` ``(N, ...)`` and ``y`` ``(N,)`` stay on their device; points and
    buffers are moved there. Points are processed ``chunk_points`` at a time (one vmapped forward
    pass per data batch of ``batch_size`` samples); unset sizes are chosen so that the activations
    of a chunk fit ``memory_budget_bytes``. ``bn_policy``, ``bn_data`` (training inputs),
    ``bn_batch_size`` (default: all of ``bn_data`` at once) and ``bn_buffers`` (per point,
    ``{name: (K, ...)}``) as in the module docstring. The network is evaluated in the dtype of its
    parameters: points, floating-point inputs and ``bn_data`` of another dtype (a float64 θ on a
    float32 model) are converted to it once. ``precision``: ``"fp32"``; on CUDA also
    ``"tf32"`` or ``"bf16"`` (autocast). ``progress_file``: stream for a tqdm bar over point chunks.
    """
    fmodel = model if isinstance(model, FunctionalModel) else FunctionalModel(model)
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"x and y must hold the same nonzero number of samples, got {x.shape[0]} "
                         f"and {y.shape[0]}")
    policy, batches = _batched_logits(
        fmodel, points, x, bn_policy=bn_policy, bn_data=bn_data, bn_batch_size=bn_batch_size,
        bn_buffers=bn_buffers, chunk_points=chunk_points, batch_size=batch_size,
        memory_budget_bytes=memory_budget_bytes, precision=precision, progress_file=progress_file)

    def summed_loss(batch_logits, yb):
        return loss_from_logits(batch_logits, yb, fmodel.loss_name) * yb.shape[0]

    n_points, n_samples = points.shape[0], x.shape[0]
    loss_sum = torch.zeros(n_points, dtype=torch.float64, device=x.device)
    correct = torch.zeros(n_points, dtype=torch.int64, device=x.device)
    for start, first, out in batches:
        yb = y[first:first + out.shape[1]]
        loss_sum[start:start + out.shape[0]] += vmap(summed_loss, in_dims=(0, None))(out, yb).double()
        correct[start:start + out.shape[0]] += (out.argmax(-1) == yb).sum(-1)
    return PointMetrics(loss=(loss_sum.cpu() / n_samples).numpy(),
                        accuracy=(correct.cpu().double() / n_samples).numpy(),
                        bn_policy=policy, n_samples=n_samples)


def predict_points(model: nn.Module | FunctionalModel, points: torch.Tensor, x: torch.Tensor, *,
                   bn_policy: str = "keep", bn_data: torch.Tensor | None = None,
                   bn_batch_size: int | None = None, chunk_points: int | None = None,
                   batch_size: int | None = None, memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
                   precision: str = "fp32", progress_file=None) -> tuple[torch.Tensor, str]:
    """Softmax outputs ``(K, N, C)`` (float32, CPU) of ``model`` at each row of ``points``
    ``(K, D)`` on the inputs ``x`` ``(N, ...)``, and the BN policy applied; the same batched
    passes and options as ``evaluate_points`` (ensembles, disagreement, CKA)."""
    fmodel = model if isinstance(model, FunctionalModel) else FunctionalModel(model)
    policy, batches = _batched_logits(
        fmodel, points, x, bn_policy=bn_policy, bn_data=bn_data, bn_batch_size=bn_batch_size,
        bn_buffers=None, chunk_points=chunk_points, batch_size=batch_size,
        memory_budget_bytes=memory_budget_bytes, precision=precision, progress_file=progress_file)
    probabilities = None
    for start, first, out in batches:
        if probabilities is None:
            probabilities = torch.empty(points.shape[0], x.shape[0], out.shape[-1])
        probabilities[start:start + out.shape[0], first:first + out.shape[1]] = \
            out.softmax(-1).cpu()
    return probabilities, policy


def evaluate_train_test(model: nn.Module | FunctionalModel, points: torch.Tensor,
                        x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                        y_test: torch.Tensor, *, n_samples: int | None = None, seed: int = 0,
                        bn_policy: str = "keep", bn_data: torch.Tensor | None = None,
                        **options) -> TrainTestMetrics:
    """``evaluate_points`` on the training and the test set. With ``n_samples``, each set is
    replaced by its seeded random subset of at most that size (``subset_indices(N, n_samples, seed)``).
    ``bn_data`` for ``"recompute"`` defaults to the (subset of the) training inputs; other keyword
    options go to ``evaluate_points``."""
    fmodel = model if isinstance(model, FunctionalModel) else FunctionalModel(model)
    train_index = subset_indices(x_train.shape[0], n_samples, seed)
    test_index = subset_indices(x_test.shape[0], n_samples, seed)
    if train_index is not None:
        x_train, y_train = x_train[train_index.to(x_train.device)], y_train[train_index.to(y_train.device)]
        x_test, y_test = x_test[test_index.to(x_test.device)], y_test[test_index.to(y_test.device)]
    if bn_policy == "recompute" and bn_data is None:
        bn_data = x_train
    train = evaluate_points(fmodel, points, x_train, y_train, bn_policy=bn_policy, bn_data=bn_data,
                            **options)
    test = evaluate_points(fmodel, points, x_test, y_test, bn_policy=bn_policy, bn_data=bn_data,
                           **options)
    return TrainTestMetrics(train=train, test=test)
