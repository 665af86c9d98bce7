"""The batched evaluator: loss and accuracy of one network at K parameter points θ_k at once.

Every measurement that evaluates the network away from its stored weights goes through
``evaluate_points``: the logits of the K points on batches of the data, accumulated as sums and
divided once by the number of samples, so the result equals the full-dataset mean (up to float
error). Three strategies compute the same logits (``STRATEGIES``; ``tests/test_evaluate.py`` checks
that they agree to float32 rounding, rtol 1e-5):
- ``"vmap"``: ``torch.func.vmap`` over a chunk of points of ``FunctionalModel.logits``, chunked over
  points and data to the memory budget;
- ``"loop"``: one forward pass per point (``FunctionalModel.logits``) on data batches sized to
  ``CPU_WORKING_SET_BYTES`` of activations on a CPU (cache-sized; the memory budget on CUDA);
- ``"structured"``: when the first layer is an ``nn.Linear``/``nn.ConvNd`` that no parameterized
  module precedes and the points' first-layer parameters lie in an affine subspace of small rank r
  (a plane θ* + x d₁ + y d₂: r = 2), its output at every point is a combination of r + 1 outputs
  computed once per data batch (W X = W₀X + Σ_j c_j Q_jX, the layer being linear in its
  parameters), and the rest of the network runs per point as in ``"loop"``.
``"auto"`` (the default) picks by rule, from measurements on a 2-core CPU (benchmarks/RESULTS.md):
on CUDA ``"vmap"``; on a CPU ``"structured"`` where it applies and saves work (r + 1 ≤ fan-in / 4
multiply-adds per output), else ``"loop"`` when a data batch holds at least ``LOOP_MIN_SAMPLES``
samples, else ``"vmap"`` (small batches, where per-call overhead dominates). The rule is fixed, not
timed, so that a run's values do not depend on the machine's load.

The memory budget (``memory_budget_bytes``) defaults to ``default_memory_budget(device)``: 64 MiB on
a CPU, ``CUDA_FREE_FRACTION`` of the free device memory (``torch.cuda.mem_get_info``) on CUDA.

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
import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap
from tqdm import tqdm

from .functional import FunctionalModel

BN_POLICIES = ("keep", "recompute", "interpolate")
PRECISIONS = ("fp32", "bf16", "tf32")
STRATEGIES = ("auto", "vmap", "loop", "structured")
DEFAULT_MEMORY_BUDGET = 64 * 2**20
CUDA_FREE_FRACTION = 0.5
DEFAULT_BATCH_SIZE = 4096
CPU_WORKING_SET_BYTES = 16 * 2**20
LOOP_MIN_SAMPLES = 256
NARROW_OUTPUTS = 16


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


def budget_from_free_memory(free_bytes: int) -> int:
    """Memory budget on CUDA: ``CUDA_FREE_FRACTION`` of the device's free bytes, at least
    ``DEFAULT_MEMORY_BUDGET``."""
    return max(DEFAULT_MEMORY_BUDGET, int(CUDA_FREE_FRACTION * free_bytes))


def default_memory_budget(device: torch.device | str) -> int:
    """Bytes of activations a chunk may take on ``device``: ``DEFAULT_MEMORY_BUDGET`` (64 MiB) on a
    CPU; on CUDA ``budget_from_free_memory`` of the free memory ``torch.cuda.mem_get_info`` reports
    now."""
    device = torch.device(device)
    if device.type == "cuda":
        free_bytes, _total = torch.cuda.mem_get_info(device)
        return budget_from_free_memory(free_bytes)
    return DEFAULT_MEMORY_BUDGET


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
    _one_sample_pass(fmodel, x, lambda _name, m: m.register_forward_hook(
        lambda _m, _i, out: total.append(out.numel())))
    return 4 * sum(total)


def _one_sample_pass(fmodel: FunctionalModel, x: torch.Tensor, hook_leaf) -> None:
    """One forward pass of ``x[:1]`` at θ₀ with ``hook_leaf(name, module)`` (which returns a hook
    handle) registered on every leaf module for its duration."""
    hooks = [hook_leaf(name, m) for name, m in fmodel.module.named_modules()
             if not list(m.children())]
    try:
        with torch.no_grad():
            fmodel.logits(fmodel.theta0.to(x.device), x[:1], _buffers_on(fmodel, x.device))
    finally:
        for hook in hooks:
            hook.remove()


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


class _NarrowLinear(nn.Linear):
    """``nn.Linear`` computing a 2D batch as (W xᵀ + b)ᵀ: for few outputs (a classifier) the CPU
    BLAS runs that product about 2.5× faster than x Wᵀ (benchmarks/RESULTS.md); same values to
    float32 rounding."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() != 2:
            return super().forward(inputs)
        if self.bias is None:
            return (self.weight @ inputs.T).T
        return torch.addmm(self.bias[:, None], self.weight, inputs.T).T


def _per_point_network(module: nn.Module) -> nn.Module:
    """A private copy of ``module`` for per-point forward passes: every ``nn.Linear`` with at most
    ``NARROW_OUTPUTS`` outputs becomes a ``_NarrowLinear`` (same parameter names)."""
    network = copy.deepcopy(module)
    for name, layer in list(network.named_modules()):
        if type(layer) is nn.Linear and layer.out_features <= NARROW_OUTPUTS:
            narrow = _NarrowLinear(layer.in_features, layer.out_features, layer.bias is not None,
                                   device=layer.weight.device, dtype=layer.weight.dtype)
            narrow.load_state_dict(layer.state_dict())
            network.set_submodule(name, narrow)
    return network


class _StopForward(Exception):
    """Raised by ``_SharedFirstLayer`` once it has captured its input (nothing after it runs)."""


class _SharedFirstLayer(nn.Module):
    """Stands in for the first layer in a private copy of the network: returns ``output`` (set per
    point), or, while ``capture`` is set, records its input and stops the forward pass."""

    def __init__(self):
        super().__init__()
        self.output: torch.Tensor | None = None
        self.capture = False
        self.captured: torch.Tensor | None = None

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.capture:
            self.captured = inputs
            raise _StopForward
        return self.output


@dataclass
class _FirstLayerPlan:
    """The ``"structured"`` strategy's plan: the first layer ``name`` (``module``, its parameter
    names ``param_names`` and their slices of θ), a private copy ``network`` of the model with that
    layer replaced by ``shared``, and the affine basis of the points' first-layer parameters:
    ``origin`` ``(m,)``, orthonormal ``basis`` ``(r, m)``, ``coefficients`` ``(K, r + 1)`` (first
    column ones), so that point k's parameters are coefficients[k] @ [origin; basis] to float32
    rounding."""

    name: str
    module: nn.Module
    param_names: list[str]
    slices: list[slice]
    network: nn.Module
    shared: _SharedFirstLayer
    origin: torch.Tensor
    basis: torch.Tensor
    coefficients: torch.Tensor


FIRST_LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _first_layer_name(fmodel: FunctionalModel, x: torch.Tensor) -> str | None:
    """Name of the first module with parameters or buffers in forward order, if it is a linear or
    convolution layer called once and nothing with parameters or buffers runs before it (so its
    input does not depend on θ); ``None`` otherwise."""
    module = fmodel.module
    if any(list(m.parameters(recurse=False)) or list(m.buffers(recurse=False))
           for m in module.modules() if list(m.children())):
        return None
    order: list[str] = []
    _one_sample_pass(fmodel, x, lambda name, m: m.register_forward_pre_hook(
        lambda _m, _i: order.append(name)))
    modules = dict(module.named_modules())
    for name in order:
        m = modules[name]
        if list(m.parameters(recurse=False)) or list(m.buffers(recurse=False)):
            return name if type(m) in FIRST_LAYER_TYPES and order.count(name) == 1 else None
    return None


def _affine_basis(params: torch.Tensor, max_rank: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Origin ``(m,)``, orthonormal basis ``(r, m)`` and coefficients ``(K, r + 1)`` (first column
    ones) with params[k] = coefficients[k] @ [origin; basis] within float32 rounding (max abs
    error ≤ 1e-6 · max |params|), by pivoted Gram–Schmidt in float64; ``None`` if that needs
    r > ``max_rank``."""
    params = params.double()
    origin = params[0]
    residual = params - origin
    tolerance = 1e-6 * params.abs().max().item()
    basis = []
    while residual.abs().max().item() > tolerance:
        if len(basis) == max_rank:
            return None
        norms = residual.norm(dim=1)
        direction = residual[norms.argmax()] / norms.max()
        for q in basis:
            direction = direction - (direction @ q) * q
        direction = direction / direction.norm()
        basis.append(direction)
        residual = residual - (residual @ direction)[:, None] * direction
    basis = torch.stack(basis) if basis else params.new_zeros(0, params.shape[1])
    coefficients = torch.cat([params.new_ones(len(params), 1), (params - origin) @ basis.T], 1)
    return origin, basis, coefficients


def _first_layer_plan(fmodel: FunctionalModel, points: torch.Tensor, x: torch.Tensor,
                      worthwhile_only: bool) -> _FirstLayerPlan | None:
    """The ``"structured"`` plan for ``points`` ``(K, D)`` on inputs like ``x``, or ``None`` where
    the first layer does not qualify. With ``worthwhile_only`` also ``None`` where it saves no
    work: the r + 1 basis outputs must cost at most a quarter of the layer's fan-in (its
    multiply-adds per output) and be fewer than K."""
    name = _first_layer_name(fmodel, x)
    if name is None:
        return None
    module = fmodel.module.get_submodule(name)
    max_rank = points.shape[0] - 1
    if worthwhile_only:
        max_rank = min(max_rank - 1, module.weight[0].numel() // 4 - 1)
        if max_rank < 0:
            return None
    param_names = [f"{name}.{p}" for p, _ in module.named_parameters(recurse=False)]
    slices = {n: piece for n, _, piece in fmodel.layout.slices()}
    if any(n not in slices for n in param_names):
        return None
    pieces = [slices[n] for n in param_names]
    found = _affine_basis(torch.cat([points[:, piece] for piece in pieces], 1), max_rank)
    if found is None:
        return None
    network = _per_point_network(fmodel.module)
    shared = _SharedFirstLayer()
    network.set_submodule(name, shared)
    origin, basis, coefficients = (t.to(points.dtype) for t in found)
    return _FirstLayerPlan(name, copy.deepcopy(module), param_names, pieces, network, shared,
                           origin, basis, coefficients)


def _layer_params(plan: _FirstLayerPlan, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """The first layer's parameters ``{local name: tensor}`` from its flat slice ``flat`` ``(m,)``."""
    out, start = {}, 0
    for full_name in plan.param_names:
        local = full_name.rsplit(".", 1)[1]
        shape = getattr(plan.module, local).shape
        out[local] = flat[start:start + shape.numel()].reshape(shape)
        start += shape.numel()
    return out


def choose_strategy(requested: str, fmodel: FunctionalModel, points: torch.Tensor,
                    x: torch.Tensor, batch_size: int) -> tuple[str, _FirstLayerPlan | None]:
    """The strategy to run (``STRATEGIES``; ``"auto"`` by the rule in the module docstring) and,
    for ``"structured"``, its plan; ``batch_size`` is the samples per point-forward."""
    if requested not in STRATEGIES:
        raise ValueError(f"unknown strategy {requested!r}; valid: {', '.join(STRATEGIES)}")
    if requested in ("vmap", "loop"):
        return requested, None
    if requested == "auto" and x.device.type == "cuda":
        return "vmap", None
    plan = _first_layer_plan(fmodel, points, x, worthwhile_only=requested == "auto")
    if plan is not None:
        return "structured", plan
    if requested == "structured":
        raise ValueError(f"strategy 'structured' needs a first layer of type "
                         f"{', '.join(t.__name__ for t in FIRST_LAYER_TYPES)}, called once, with no "
                         f"module holding parameters or buffers before it or around it")
    return ("loop" if batch_size >= LOOP_MIN_SAMPLES else "vmap"), None


def _batched_logits(fmodel: FunctionalModel, points: torch.Tensor, x: torch.Tensor, *,
                    bn_policy: str, bn_data: torch.Tensor | None, bn_batch_size: int | None,
                    bn_buffers: Mapping[str, torch.Tensor] | None, chunk_points: int | None,
                    batch_size: int | None, memory_budget_bytes: int | None, precision: str,
                    strategy: str, progress_file
                    ) -> tuple[str, str, Iterator[tuple[int, int, torch.Tensor]]]:
    """The BN policy applied, the strategy run, and an iterator over ``(start, first, logits)``:
    the float32 logits ``(k, b, C)`` of the points ``points[start:start + k]`` on the samples
    ``x[first:first + b]`` (arguments as in ``evaluate_points``)."""
    if fmodel.bn_mode != "eval":
        raise ValueError(f"evaluation needs a FunctionalModel with bn_mode='eval', "
                         f"got {fmodel.bn_mode!r}; batch norm is set by bn_policy")
    if bn_policy not in BN_POLICIES:
        raise ValueError(f"unknown bn_policy {bn_policy!r}; valid: {', '.join(BN_POLICIES)}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    if points.dim() != 2 or points.shape[1] != fmodel.layout.dim:
        raise ValueError(f"points must have shape (K, {fmodel.layout.dim}), got {tuple(points.shape)}")
    if x.shape[0] == 0:
        raise ValueError("need at least one sample")
    device, dtype = x.device, fmodel.theta0.dtype
    x = x.to(dtype) if x.is_floating_point() else x
    memory_budget_bytes = memory_budget_bytes or default_memory_budget(device)
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

    points = points.to(device=device, dtype=fmodel.theta0.dtype)
    bytes_per_sample = activation_bytes_per_sample(fmodel, x)
    point_batch = batch_size or max(1, min(n_samples, (
        CPU_WORKING_SET_BYTES if device.type == "cpu" else memory_budget_bytes) // bytes_per_sample))
    strategy, plan = choose_strategy(strategy, fmodel, points, x, point_batch)
    network = plan.network if plan is not None else (
        None if strategy == "vmap" else _per_point_network(fmodel.module))
    if strategy == "vmap":
        chunk, batch = _chunk_sizes(n_points, n_samples, bytes_per_sample, chunk_points, batch_size,
                                    memory_budget_bytes)
    else:
        batch, chunk = point_batch, chunk_points or n_points
    if policy == "recompute" and chunk_points is None:
        chunk = max(1, min(chunk, memory_budget_bytes // (bn_batch_size * bytes_per_sample)))

    def vmapped_logits(theta, buffers, xb):
        return fmodel.logits(theta, xb, {**base_buffers, **buffers})

    def per_point_logits(start, thetas, buffers, xb):
        """``(i, logits (1, b, C))`` for every point of the chunk; with a plan, the first layer's
        output at point start + i is coefficients[start + i] @ the basis outputs, written into
        one reused buffer."""
        if plan is not None:
            outputs = basis_outputs(xb)
            flat = outputs.reshape(len(outputs), -1)
            combined = torch.empty(1, flat.shape[1], dtype=flat.dtype, device=device)
        for i, theta in enumerate(thetas):
            state = {**base_buffers, **{name: b[i] for name, b in buffers.items()}}
            params = fmodel.layout.unflatten(theta)
            if plan is not None:
                for name in plan.param_names:
                    del params[name]
                torch.mm(plan.coefficients[start + i:start + i + 1], flat, out=combined)
                plan.shared.output = combined.view(outputs.shape[1:])
            yield i, functional_call(network, {**state, **params}, (xb,))[None]

    def basis_outputs(xb):
        """The first layer's outputs ``(r + 1, b, ...)`` at the origin and the basis vectors."""
        plan.shared.capture = True
        try:
            functional_call(plan.network, base_buffers, (xb,))
        except _StopForward:
            pass
        finally:
            plan.shared.capture = False
        layer_input, plan.shared.captured = plan.shared.captured, None
        return torch.stack([functional_call(plan.module, _layer_params(plan, flat), (layer_input,))
                            for flat in torch.cat([plan.origin[None], plan.basis])])

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
                    if strategy == "vmap":
                        yield start, first, vmap(vmapped_logits, in_dims=(0, 0, None))(
                            thetas, buffers, xb).float()
                        continue
                    for i, out in per_point_logits(start, thetas, buffers, xb):
                        yield start + i, first, out.float()

    return policy, strategy, batches()


def _loss_sums(logits: torch.Tensor, y: torch.Tensor,
               loss_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss ``(k,)`` and number of correct arg-max predictions ``(k,)`` over the samples of
    logits ``(k, b, C)`` on labels ``(b,)``: cross-entropy as max + log Σ exp(z − max) minus the
    label's logit (what ``F.cross_entropy`` computes, sharing one max pass with the arg-max and
    without the log-softmax that is slow on narrow outputs on a CPU), or the squared error against
    one-hot labels."""
    labels = y.expand(logits.shape[0], -1)
    top, predicted = logits.max(-1)
    correct = (predicted == labels).sum(-1)
    if loss_name == "cross_entropy":
        log_partition = top + (logits - top[..., None]).exp().sum(-1).log()
        return (log_partition - logits.gather(-1, labels[..., None])[..., 0]).sum(-1), correct
    if loss_name == "mse":
        target = F.one_hot(y, logits.shape[-1]).to(logits.dtype)
        return ((logits - target) ** 2).sum((-1, -2)), correct
    raise ValueError(f"unknown loss {loss_name!r}")


def evaluate_points(model: nn.Module | FunctionalModel, points: torch.Tensor, x: torch.Tensor,
                    y: torch.Tensor, *, bn_policy: str = "keep", bn_data: torch.Tensor | None = None,
                    bn_batch_size: int | None = None,
                    bn_buffers: Mapping[str, torch.Tensor] | None = None,
                    chunk_points: int | None = None, batch_size: int | None = None,
                    memory_budget_bytes: int | None = None, precision: str = "fp32",
                    strategy: str = "auto", progress_file=None) -> PointMetrics:
    """Mean loss and accuracy of ``model`` at each row of ``points`` ``(K, D)`` on ``(x, y)``.

    ``model``: an ``nn.Module`` (evaluated in eval mode on a private copy) or a ``FunctionalModel``
    with ``bn_mode="eval"``. ``x`` ``(N, ...)`` and ``y`` ``(N,)`` stay on their device; points and
    buffers are moved there. ``strategy``: ``"auto"``, ``"vmap"``, ``"loop"`` or ``"structured"``
    (module docstring). Points are processed ``chunk_points`` at a time, the data in batches of
    ``batch_size`` samples; unset sizes are chosen so that the activations of a chunk fit
    ``memory_budget_bytes`` (default ``default_memory_budget(x.device)``) and, for one point at a
    time on a CPU, ``CPU_WORKING_SET_BYTES``. ``bn_policy``, ``bn_data`` (training inputs),
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
    policy, _, batches = _batched_logits(
        fmodel, points, x, bn_policy=bn_policy, bn_data=bn_data, bn_batch_size=bn_batch_size,
        bn_buffers=bn_buffers, chunk_points=chunk_points, batch_size=batch_size,
        memory_budget_bytes=memory_budget_bytes, precision=precision, strategy=strategy,
        progress_file=progress_file)
    n_points, n_samples = points.shape[0], x.shape[0]
    loss_sum = torch.zeros(n_points, dtype=torch.float64, device=x.device)
    correct = torch.zeros(n_points, dtype=torch.int64, device=x.device)
    for start, first, out in batches:
        yb = y[first:first + out.shape[1]]
        batch_loss, batch_correct = _loss_sums(out, yb, fmodel.loss_name)
        loss_sum[start:start + out.shape[0]] += batch_loss.double()
        correct[start:start + out.shape[0]] += batch_correct
    return PointMetrics(loss=(loss_sum.cpu() / n_samples).numpy(),
                        accuracy=(correct.cpu().double() / n_samples).numpy(),
                        bn_policy=policy, n_samples=n_samples)


def predict_points(model: nn.Module | FunctionalModel, points: torch.Tensor, x: torch.Tensor, *,
                   bn_policy: str = "keep", bn_data: torch.Tensor | None = None,
                   bn_batch_size: int | None = None, chunk_points: int | None = None,
                   batch_size: int | None = None, memory_budget_bytes: int | None = None,
                   precision: str = "fp32", strategy: str = "auto",
                   progress_file=None) -> tuple[torch.Tensor, str]:
    """Softmax outputs ``(K, N, C)`` (float32, CPU) of ``model`` at each row of ``points``
    ``(K, D)`` on the inputs ``x`` ``(N, ...)``, and the BN policy applied; the same passes and
    options as ``evaluate_points`` (ensembles, disagreement, CKA)."""
    fmodel = model if isinstance(model, FunctionalModel) else FunctionalModel(model)
    policy, _, batches = _batched_logits(
        fmodel, points, x, bn_policy=bn_policy, bn_data=bn_data, bn_batch_size=bn_batch_size,
        bn_buffers=None, chunk_points=chunk_points, batch_size=batch_size,
        memory_budget_bytes=memory_budget_bytes, precision=precision, strategy=strategy,
        progress_file=progress_file)
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
