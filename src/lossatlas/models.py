"""Model registry: ``build_model(name, input_shape, num_classes, **options)``.

Every model maps a batch ``x`` of shape ``(N, *input_shape)`` to logits ``(N, num_classes)``.
``width`` is the number of units (MLP) or channels of the first stage (CNNs, ResNet-20; the
standard ResNet-20 has width 16, so the width multiplier of Yang et al. 2021 is ``width / 16``).
``norm`` is ``"none"`` or ``"batch"`` (batch normalization after every hidden linear/conv layer).

A model of your own is named by its factory, ``"module.path:callable"``, and built by
``build_factory_model`` with the factory's keyword arguments (it must map inputs of the dataset's
shape to logits itself).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable

import torch
from torch import nn

NORMS = ("none", "batch")


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid norms: {', '.join(NORMS)}")


def _norm_layer(norm: str, channels: int, dims: int) -> nn.Module:
    if norm == "none":
        return nn.Identity()
    return {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dims](channels)


def mlp(input_shape: tuple[int, ...], num_classes: int, width: int = 100, depth: int = 2,
        norm: str = "none") -> nn.Module:
    """Fully connected ReLU network with ``depth`` hidden layers of ``width`` units."""
    _check_norm(norm)
    if depth < 1 or width < 1:
        raise ValueError(f"mlp needs depth >= 1 and width >= 1, got depth={depth}, width={width}")
    in_features = 1
    for size in input_shape:
        in_features *= size
    layers: list[nn.Module] = [nn.Flatten()]
    for _ in range(depth):
        layers += [nn.Linear(in_features, width, bias=norm == "none"), _norm_layer(norm, width, 0),
                   nn.ReLU()]
        in_features = width
    layers.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*layers)


def cnn1d(input_shape: tuple[int, ...], num_classes: int, width: int = 25,
          norm: str = "none") -> nn.Module:
    """1D CNN for sequences ``(channels, length)`` such as MNIST-1D: three conv layers, the last two
    with stride 2, then a linear read-out."""
    _check_norm(norm)
    if len(input_shape) != 2:
        raise ValueError(f"cnn1d needs inputs of shape (channels, length), got {input_shape}")
    channels, length = input_shape
    bias = norm == "none"
    layers: list[nn.Module] = []
    in_channels = channels
    for kernel, stride in ((5, 1), (3, 2), (3, 2)):
        layers += [nn.Conv1d(in_channels, width, kernel, stride=stride, padding=kernel // 2, bias=bias),
                   _norm_layer(norm, width, 1), nn.ReLU()]
        in_channels = width
        length = (length + 2 * (kernel // 2) - kernel) // stride + 1
    layers += [nn.Flatten(), nn.Linear(width * length, num_classes)]
    return nn.Sequential(*layers)


def cnn2d(input_shape: tuple[int, ...], num_classes: int, width: int = 16,
          norm: str = "none") -> nn.Module:
    """Simple image CNN: three conv-ReLU-maxpool stages with ``width``, ``2 width``, ``4 width``
    channels, global average pooling and a linear read-out."""
    _check_norm(norm)
    if len(input_shape) != 3:
        raise ValueError(f"cnn2d needs inputs of shape (channels, height, width), got {input_shape}")
    bias = norm == "none"
    layers: list[nn.Module] = []
    in_channels = input_shape[0]
    for out_channels in (width, 2 * width, 4 * width):
        layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
                   _norm_layer(norm, out_channels, 2), nn.ReLU(), nn.MaxPool2d(2)]
        in_channels = out_channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes)]
    return nn.Sequential(*layers)


class _BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016) with a 1x1 projection shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str):
        super().__init__()
        bias = norm == "none"
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=bias)
        self.norm1 = _norm_layer(norm, out_channels, 2)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias)
        self.norm2 = _norm_layer(norm, out_channels, 2)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=bias),
                _norm_layer(norm, out_channels, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR ResNet-20: a conv stem and three stages of three basic blocks with ``width``,
    ``2 width`` and ``4 width`` channels, global average pooling and a linear read-out."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, norm: str):
        super().__init__()
        bias = norm == "none"
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], width, 3, padding=1, bias=bias),
                                  _norm_layer(norm, width, 2), nn.ReLU())
        blocks: list[nn.Module] = []
        in_channels = width
        for stage, out_channels in enumerate((width, 2 * width, 4 * width)):
            for index in range(3):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(_BasicBlock(in_channels, out_channels, stride, norm))
                in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(in_channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def resnet20(input_shape: tuple[int, ...], num_classes: int, width: int = 16,
             norm: str = "batch") -> nn.Module:
    """CIFAR ResNet-20 with first-stage ``width`` channels (16 is the standard network)."""
    _check_norm(norm)
    if len(input_shape) != 3:
        raise ValueError(f"resnet20 needs inputs of shape (channels, height, width), got {input_shape}")
    return ResNet20(input_shape, num_classes, width, norm)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp,
    "cnn1d": cnn1d,
    "cnn2d": cnn2d,
    "resnet20": resnet20,
}


def model_options(name: str) -> dict[str, object]:
    """Options of model ``name`` with their defaults."""
    builder = _builder(name)
    return {p.name: p.default for p in inspect.signature(builder).parameters.values()
            if p.default is not inspect.Parameter.empty}


def _builder(name: str) -> Callable[..., nn.Module]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, **options) -> nn.Module:
    """Build registry model ``name``; unknown names or options raise ``ValueError`` listing the
    valid ones."""
    builder = _builder(name)
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for model {name!r}; "
                         f"valid options: {', '.join(sorted(valid))}")
    return builder(tuple(input_shape), num_classes, **options)


FACTORY_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def import_factory(spec: str) -> Callable[..., nn.Module]:
    """The callable named by ``spec`` = ``"module.path:name"`` (``name`` may be dotted, e.g. a
    class method). The module is imported as ``python -m`` would import it from the working
    directory (the working directory is put on ``sys.path`` when it is not there), or from an
    installed package; every failure is a ``ValueError`` naming ``spec``."""
    if not FACTORY_PATTERN.match(spec):
        raise ValueError(f"model factory {spec!r} is not of the form 'module.path:callable'")
    module_name, attribute = spec.split(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target = importlib.import_module(module_name)
    except Exception as exc:  # a missing module, or any error raised while importing it
        raise ValueError(f"model factory {spec!r}: cannot import module {module_name!r} "
                         f"({type(exc).__name__}: {exc})") from exc
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"model factory {spec!r}: {module_name!r} has no attribute "
                             f"{attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"model factory {spec!r} is not callable")
    return target


def build_factory_model(spec: str, kwargs: dict) -> nn.Module:
    """``factory(**kwargs)`` for the factory named by ``spec`` (see ``import_factory``); an error
    raised by the factory, or a result that is not an ``nn.Module``, is a ``ValueError`` naming
    ``spec``."""
    factory = import_factory(spec)
    try:
        model = factory(**kwargs)
    except Exception as exc:  # the user's code may raise anything for bad arguments
        raise ValueError(f"model factory {spec!r} failed with arguments {kwargs}: "
                         f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ValueError(f"model factory {spec!r} returned {type(model).__name__}, not an "
                         "nn.Module")
    return model


def check_logits(model: nn.Module, input_shape: tuple[int, ...], num_classes: int,
                 name: str) -> None:
    """Stop with an error naming ``name`` unless ``model`` maps a batch of two zero inputs of
    ``input_shape`` to logits ``(2, num_classes)`` (run in eval mode, without gradients)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(torch.zeros(2, *input_shape))
    except Exception as exc:  # a shape mismatch raises many types inside the user's forward
        raise ValueError(f"{name} cannot take inputs of shape (N, "
                         f"{', '.join(map(str, input_shape))}): {type(exc).__name__}: {exc}") from exc
    finally:
        model.train(was_training)
    if not isinstance(logits, torch.Tensor) or logits.shape != (2, num_classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"{name} maps inputs (2, {', '.join(map(str, input_shape))}) to {shape}; "
                         f"the dataset has {num_classes} classes, so logits must be "
                         f"(2, {num_classes})")
