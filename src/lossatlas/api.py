"""Measurements on your own network: an ``nn.Module``, a loss and data in, arrays and the pipeline's
HDF5 files out.

Each function here is a thin front end to the engine the workflow runs (``landscape``, ``evaluate``,
``curvature``, ``params``), with the workflow's options and defaults: random directions drawn from
one seeded generator and filter-normalized to θ (Li et al. 2018), the batch-norm policy
(``evaluate.BN_POLICIES``), evaluation precision (fp32 on a CPU; ``tf32``/``bf16`` on CUDA), the
activation memory budget of a chunk of points, and the device. With ``path`` set, the result is also
written to that HDF5 file in the layout the workflow writes (``io.write_h5``).

Data (``train``, ``test``): a pair ``(x, y)`` of tensors or numpy arrays, a ``Dataset`` of
``(x, y)`` samples, or a ``DataLoader`` (read once, in its order; losses are full-set means, so the
order does not matter). Inputs are cast to the model's floating dtype. The loss is a name of
``functional.LOSSES``: ``"cross_entropy"`` on integer labels or ``"mse"`` of the logits against
one-hot labels; losses are in nats, accuracies in [0, 1].
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping

import torch
from torch import nn

from . import io, landscape
from .curvature import CurvatureMeasurement, CurvatureSettings, measure_curvature, seeded_subset
from .evaluate import DEFAULT_MEMORY_BUDGET, precision_for
from .functional import FunctionalModel
from .landscape import Surface, random_directions
from .params import flat_params_from_state, get_flat_params, normalize_direction, param_layout

Data = tuple | torch.utils.data.Dataset | torch.utils.data.DataLoader


def data_tensors(data: Data, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` on ``device`` from a pair of arrays, a ``Dataset`` or a ``DataLoader``; floating
    inputs are cast to ``dtype``, labels to int64."""
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(f"data as a sequence must be a pair (x, y), got {len(data)} items")
        x, y = (torch.as_tensor(part) for part in data)
    else:
        loader = data if isinstance(data, torch.utils.data.DataLoader) else \
            torch.utils.data.DataLoader(data, batch_size=1024)
        batches = list(loader)
        if not batches:
            raise ValueError("the dataset or DataLoader yields no samples")
        x = torch.cat([torch.as_tensor(batch[0]) for batch in batches])
        y = torch.cat([torch.as_tensor(batch[1]) for batch in batches])
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"need as many labels as inputs (at least one), got {len(x)} inputs and "
                         f"{len(y)} labels")
    if x.is_floating_point():
        x = x.to(dtype)
    return x.to(device), y.long().to(device)


def load_checkpoint(model: nn.Module, checkpoint: str | os.PathLike | Mapping | nn.Module
                    ) -> nn.Module:
    """A copy of ``model`` holding ``checkpoint``: a state-dict file (``torch.load`` with
    ``weights_only=True``), a state dict or a module of the same architecture. A checkpoint that
    does not fit the model is an error naming it."""
    model = copy.deepcopy(model)
    if isinstance(checkpoint, nn.Module):
        state, name = checkpoint.state_dict(), f"module {type(checkpoint).__name__}"
    elif isinstance(checkpoint, Mapping):
        state, name = checkpoint, "state dict"
    else:
        state, name = io.load_state_dict(checkpoint, verify=False), f"checkpoint {checkpoint}"
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{name} does not fit the model {type(model).__name__}: {exc}") from exc
    return model


def _prepared(model: nn.Module, device: str | torch.device) -> tuple[nn.Module, torch.Tensor]:
    """A copy of ``model`` on ``device`` and its θ ``(D,)`` there."""
    model = copy.deepcopy(model).to(device)
    return model, get_flat_params(model)


def _train_test(model: nn.Module, train: Data, test: Data, device) -> tuple:
    dtype = get_flat_params(model).dtype
    return (*data_tensors(train, device, dtype), *data_tensors(test, device, dtype))


def _directions(theta: torch.Tensor, model: nn.Module, directions, count: int, seed: int,
                normalization: str, ignore_biasbn: bool) -> torch.Tensor:
    """``count`` directions ``(count, D)``: ``"random"`` draws standard normal directions from a
    generator seeded with ``seed`` (as the workflow's shared directions) and normalizes each to θ
    by ``normalization``; a tensor ``(count, D)`` is taken as given."""
    layout = param_layout(model)
    if isinstance(directions, str):
        if directions != "random":
            raise ValueError(f"unknown directions {directions!r}; give 'random' or a tensor "
                             f"({count}, D)")
        raw = random_directions(theta, layout, count, seed, method="none", ignore_biasbn=False)
        return torch.stack([normalize_direction(d, theta, layout, normalization, ignore_biasbn)
                            for d in raw])
    directions = torch.as_tensor(directions).to(theta)
    if directions.shape != (count, layout.dim):
        raise ValueError(f"directions must have shape ({count}, {layout.dim}), got "
                         f"{tuple(directions.shape)}")
    return directions


def _save(surface: Surface, path: str | os.PathLike | None, attrs: Mapping[str, object]) -> Surface:
    surface.attrs.update(attrs)
    if path is not None:
        io.write_h5(path, surface.arrays, surface.attrs)
    return surface


def surface_1d(model: nn.Module, loss: str, train: Data, test: Data, alphas, *,
                      direction="random", seed: int = 0, normalization: str = "filter",
                      ignore_biasbn: bool = True, bn_policy: str = "keep",
                      n_samples: int | None = None, precision: str = "fp32",
                      memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
                      device: str | torch.device = "cpu",
                      path: str | os.PathLike | None = None) -> Surface:
    """f(α) = L(θ + α d) at the model's θ along one direction (``"random"``: seeded,
    filter-normalized; or a tensor ``(1, D)``), on the training and test sets (seeded subsets of
    at most ``n_samples`` each when given). Arrays ``xcoordinates`` ``(A,)``, ``train_loss``,
    ``train_acc``, ``test_loss``, ``test_acc`` ``(A,)``."""
    model, theta = _prepared(model, device)
    d = _directions(theta, model, direction, 1, seed, normalization, ignore_biasbn)[0]
    surface = landscape.surface_1d(FunctionalModel(model, loss=loss), theta, d, alphas,
                         _train_test(model, train, test, device), bn_policy=bn_policy,
                         n_samples=n_samples, precision=precision_for(precision, theta.device),
                         memory_budget_bytes=memory_budget_bytes)
    return _save(surface, path, {"direction_seed": seed, "normalization": normalization,
                                 "ignore_biasbn": ignore_biasbn, "loss_function": loss})


def surface_2d(model: nn.Module, loss: str, train: Data, test: Data, xs, ys, *,
                      directions="random", seed: int = 0, normalization: str = "filter",
                      ignore_biasbn: bool = True, bn_policy: str = "keep",
                      n_samples: int | None = None, precision: str = "fp32",
                      memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
                      device: str | torch.device = "cpu",
                      path: str | os.PathLike | None = None) -> Surface:
    """f(x, y) = L(θ + x d₁ + y d₂) on the grid ``xs`` × ``ys`` around the model's θ (Li et al.
    2018): ``directions`` ``"random"`` (two seeded directions, filter-normalized) or a tensor
    ``(2, D)``. Arrays and orientation as ``landscape.surface_2d`` (the workflow's surface file)."""
    model, theta = _prepared(model, device)
    d1, d2 = _directions(theta, model, directions, 2, seed, normalization, ignore_biasbn)
    surface = landscape.surface_2d(FunctionalModel(model, loss=loss), theta, d1, d2, xs, ys,
                         _train_test(model, train, test, device), bn_policy=bn_policy,
                         n_samples=n_samples, precision=precision_for(precision, theta.device),
                         memory_budget_bytes=memory_budget_bytes)
    return _save(surface, path, {"direction_seed": seed, "normalization": normalization,
                                 "ignore_biasbn": ignore_biasbn, "loss_function": loss})


def interpolation(model: nn.Module, loss: str, start, end, train: Data, test: Data, alphas, *,
                  bn_policy: str = "recompute", n_samples: int | None = None,
                  precision: str = "fp32", memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
                  device: str | torch.device = "cpu",
                  path: str | os.PathLike | None = None) -> Surface:
    """The loss on the line (1 − α) θ_start + α θ_end between two checkpoints of ``model``'s
    architecture (files, state dicts or modules; see ``load_checkpoint``), as the workflow's MLI
    and LB–SB lines (Goodfellow et al. 2015). ``bn_policy`` ``"recompute"`` (the workflow's
    choice) recomputes batch-norm statistics at every point from the training inputs; ``"keep"``
    uses ``start``'s buffers. Arrays as ``surface_1d`` with ``xcoordinates`` = α."""
    start_model, theta_start = _prepared(load_checkpoint(model, start), device)
    theta_end = flat_params_from_state(load_checkpoint(model, end).state_dict(),
                                       param_layout(start_model)).to(theta_start)
    surface = landscape.surface_1d(FunctionalModel(start_model, loss=loss), theta_start,
                         theta_end - theta_start, alphas,
                         _train_test(start_model, train, test, device), bn_policy=bn_policy,
                         n_samples=n_samples, precision=precision_for(precision, theta_start.device),
                         memory_budget_bytes=memory_budget_bytes)
    return _save(surface, path, {"loss_function": loss,
                                 "distance": float((theta_end - theta_start).double().norm())})


def curvature(model: nn.Module, loss: str, train: Data, *, top_k: int = 20, bottom_k: int = 0,
              tol: float = 1e-3, max_iter: int = 200, trace_products: int = 99,
              density_vectors: int = 10, density_steps: int = 80,
              density_broadening: float = 0.01, density_grid: int = 1000,
              spectrum: bool = True, eigenvectors: bool = False, bn_mode: str = "eval",
              n_samples: int | None = None, subset_seed: int = 0, chunk_size: int | None = None,
              seed: int = 0, device: str | torch.device = "cpu",
              path: str | os.PathLike | None = None) -> CurvatureMeasurement:
    """Hessian of the mean training loss at the model's θ, as the workflow's curvature file: top-k
    (and bottom-k) eigenvalues by Lanczos, Hutch++ trace, SLQ spectral density and, with
    ``spectrum``, the Gauss–Newton top-k (``curvature.measure_curvature``, whose docstring lists
    arrays and attributes). ``bn_mode``: ``"eval"`` (stored running statistics) or ``"batch"``
    (each chunk of ``chunk_size`` samples normalized by its own statistics); ``n_samples``: a
    seeded subset (``subset_seed``) of the training set; ``seed`` fixes every random start."""
    model, theta = _prepared(model, device)
    x, y = data_tensors(train, device, theta.dtype)
    if n_samples is not None:
        x, y = seeded_subset(x, y, min(n_samples, len(x)), subset_seed)
    fmodel = FunctionalModel(model, bn_mode=bn_mode, loss=loss)
    settings = CurvatureSettings(
        top_k=top_k, bottom_k=bottom_k, tol=tol, max_iter=max_iter, trace_products=trace_products,
        density_vectors=density_vectors, density_steps=density_steps,
        density_broadening=density_broadening, density_grid=density_grid, chunk_size=chunk_size,
        seed=seed, eigenvectors=eigenvectors, spectrum=spectrum)
    measurement = measure_curvature(fmodel, theta, x, y, settings)
    measurement.attrs.update({"n_samples_setting": n_samples, "subset_seed": subset_seed,
                              "device": str(theta.device)})
    if path is not None:
        io.write_h5(path, measurement.arrays, measurement.attrs)
    return measurement
