"""Stateless view of a model: logits and loss as functions of a flat parameter vector θ ``(D,)``.

This is the single place where a network is called at an arbitrary θ (``torch.func.functional_call``);
the batched evaluator, the trainer of parameterizations and the curvature operators build on it, and
``torch.func.vmap`` / ``jvp`` / ``grad`` compose with it.

Batch-norm mode (recorded by every caller in its outputs):
- ``"eval"``: normalize with the running statistics stored in the model's buffers;
- ``"batch"``: normalize with the statistics of the batch being evaluated (buffers never change);
- ``"train"``: training mode: normalize with the batch statistics and update the running statistics
  as ``nn.Module.train()`` does; ``train_loss`` updates copies of the buffers it is given and
  returns them (the trainer's mode: under ``vmap`` every member carries its own statistics).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, replace_all_batch_norm_modules_

from .params import ParamLayout, get_flat_params, param_layout

BN_MODES = ("eval", "batch", "train")
LOSSES = ("cross_entropy", "mse")


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def loss_from_logits(logits: torch.Tensor, y: torch.Tensor, loss: str = "cross_entropy") -> torch.Tensor:
    """Mean loss over the batch: cross-entropy on integer labels, or MSE of the logits against the
    one-hot labels (summed over classes, averaged over samples)."""
    if loss == "cross_entropy":
        return F.cross_entropy(logits, y)
    if loss == "mse":
        target = F.one_hot(y, logits.shape[-1]).to(logits.dtype)
        return ((logits - target) ** 2).sum(-1).mean()
    raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")


class FunctionalModel:
    """``logits(θ, x)`` and ``loss(θ, x, y)`` of a private copy of ``model``.

    ``buffers`` (BN running statistics) default to the model's own; ``bn_mode`` as in the module
    docstring. θ has shape ``(D,)``; use ``torch.func.vmap`` to batch over points.
    """

    def __init__(self, model: nn.Module, bn_mode: str = "eval", loss: str = "cross_entropy"):
        if bn_mode not in BN_MODES:
            raise ValueError(f"unknown batch-norm mode {bn_mode!r}; valid: {', '.join(BN_MODES)}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
        self.layout: ParamLayout = param_layout(model)
        self.theta0 = get_flat_params(model)
        self.bn_mode = bn_mode
        self.loss_name = loss
        self.has_batch_norm = has_batch_norm(model)
        module = copy.deepcopy(model)
        self.buffers = {name: b.detach() for name, b in module.named_buffers()}
        if bn_mode == "batch":
            replace_all_batch_norm_modules_(module)
            module.train()
            self.buffers = {name: b for name, b in module.named_buffers() if b is not None}
        elif bn_mode == "train":
            module.train()
        else:
            module.eval()
        self.module = module

    def logits(self, theta: torch.Tensor, x: torch.Tensor,
               buffers: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits ``(N, C)`` of the network at θ ``(D,)`` for inputs ``x`` ``(N, ...)``. Floating
        buffers (BN running statistics) of another dtype than θ are used in θ's dtype (copies: a
        ``train``-mode update needs θ in the buffers' dtype)."""
        params = self.layout.unflatten(theta)
        buffers = self.buffers if buffers is None else buffers
        state = {**{name: b.to(theta.dtype) if b.is_floating_point() else b
                    for name, b in buffers.items()}, **params}
        return functional_call(self.module, state, (x,))

    def loss(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
             buffers: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Mean loss (scalar) of the network at θ on the batch ``(x, y)``."""
        return loss_from_logits(self.logits(theta, x, buffers), y, self.loss_name)

    def train_loss(self, theta: torch.Tensor, buffers: dict[str, torch.Tensor], x: torch.Tensor,
                   y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean loss (scalar) at θ on the batch ``(x, y)`` in ``bn_mode="train"``, and the buffers
        after this batch: the running statistics updated from ``buffers`` (left unchanged)."""
        if self.bn_mode != "train":
            raise ValueError(f"train_loss needs bn_mode='train', got {self.bn_mode!r}")
        updated = {name: buffer.clone() for name, buffer in buffers.items()}
        return self.loss(theta, x, y, updated), updated
