"""Flat parameter views, directions and their normalizations.

θ is handled as one flat vector of shape ``(D,)`` (or a batch of points ``(K, D)``) in the order of
``model.named_parameters()``. ``ParamLayout`` maps between that vector and the named tensors that
``torch.func.functional_call`` takes. Buffers (batch-norm running statistics) are not part of θ.
Direction normalizations follow Li et al. 2018, "Visualizing the loss landscape of neural nets".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

NORMALIZATIONS = ("filter", "layer", "none")


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of a model's trainable parameters, in flat-vector order."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @property
    def numels(self) -> tuple[int, ...]:
        return tuple(math.prod(shape) for shape in self.shapes)

    @property
    def dim(self) -> int:
        """D, the number of parameters."""
        return sum(self.numels)

    def slices(self) -> list[tuple[str, torch.Size, slice]]:
        """``(name, shape, slice into the flat vector)`` for every parameter tensor."""
        out, start = [], 0
        for name, shape, numel in zip(self.names, self.shapes, self.numels):
            out.append((name, shape, slice(start, start + numel)))
            start += numel
        return out

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Flat ``(..., D)`` -> ``{name: (..., *shape)}`` (views, no copy)."""
        if flat.shape[-1] != self.dim:
            raise ValueError(f"flat parameter vector has {flat.shape[-1]} entries, model has {self.dim}")
        lead = flat.shape[:-1]
        return {name: flat[..., piece].reshape(*lead, *shape) for name, shape, piece in self.slices()}

    def flatten(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``{name: tensor}`` -> flat ``(D,)``; every name of the layout must be present."""
        missing = [name for name in self.names if name not in tensors]
        if missing:
            raise KeyError(f"parameters missing: {', '.join(missing)}")
        return torch.cat([tensors[name].reshape(-1) for name in self.names])


def param_layout(model: nn.Module) -> ParamLayout:
    """Layout of the trainable parameters of ``model``."""
    named = [(n, p.shape) for n, p in model.named_parameters() if p.requires_grad]
    return ParamLayout(tuple(n for n, _ in named), tuple(s for _, s in named))


def get_flat_params(model: nn.Module) -> torch.Tensor:
    """θ of ``model`` as a detached flat ``(D,)`` copy."""
    layout = param_layout(model)
    return layout.flatten({n: p.detach() for n, p in model.named_parameters()}).clone()


@torch.no_grad()
def set_flat_params_(model: nn.Module, flat: torch.Tensor) -> None:
    """Copy flat θ ``(D,)`` into the parameters of ``model`` in place."""
    tensors = param_layout(model).unflatten(flat)
    for name, param in model.named_parameters():
        param.copy_(tensors[name])


def flat_params_from_state(state: Mapping[str, torch.Tensor], layout: ParamLayout) -> torch.Tensor:
    """θ ``(D,)`` taken from a state dict (e.g. a checkpoint) in ``layout`` order."""
    return layout.flatten(state).detach().clone()


def normalize_direction(direction: torch.Tensor, theta: torch.Tensor, layout: ParamLayout,
                        method: str = "filter", ignore_biasbn: bool = True) -> torch.Tensor:
    """Rescale a flat direction ``(D,)`` to the scale of θ (Li et al. 2018).

    ``filter``: every filter (slice along the first axis of a tensor with >1 dims) gets the norm of
    the matching filter of θ; ``layer``: every tensor gets the norm of the matching tensor of θ;
    ``none``: unchanged. 1-D tensors (biases, BN affine) are set to zero when ``ignore_biasbn``,
    else (filter and layer) set equal to θ's entries, as in the reference implementation.
    """
    if method not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {method!r}; valid: {', '.join(NORMALIZATIONS)}")
    out = direction.clone()
    for _, shape, piece in layout.slices():
        d, w = out[piece], theta[piece]
        if len(shape) <= 1:
            if ignore_biasbn:
                d.zero_()
            elif method != "none":
                d.copy_(w)
            continue
        if method == "filter":
            d2, w2 = d.view(shape[0], -1), w.reshape(shape[0], -1)
            d2.mul_(w2.norm(dim=1, keepdim=True) / (d2.norm(dim=1, keepdim=True) + 1e-10))
        elif method == "layer":
            d.mul_(w.norm() / (d.norm() + 1e-10))
    return out


def random_direction(theta: torch.Tensor, layout: ParamLayout, generator: torch.Generator,
                     method: str = "filter", ignore_biasbn: bool = True) -> torch.Tensor:
    """Gaussian direction with the shape of θ, normalized by ``method`` (Li et al. 2018)."""
    gaussian = torch.randn(theta.shape, generator=generator, dtype=theta.dtype,
                           device=generator.device).to(theta.device)
    return normalize_direction(gaussian, theta, layout, method, ignore_biasbn)
