"""Reading finished training runs back: settings, status and models at saved checkpoints."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import io
from .io import read_status
from .data import DatasetTensors, load_dataset
from .evaluate import precision_for, subset_indices
from .models import build_factory_model, build_model
from .params import ParamLayout, flat_params_from_state, get_flat_params, param_layout
from .train import resolve_device



def build_run_model(model_name: str, model_knobs: dict, data) -> nn.Module:
    """The model of a run: the registry model ``model_name`` with ``model_knobs`` shaped for
    ``data`` (anything with ``input_shape`` and ``num_classes``, e.g. a ``DatasetTensors``), or,
    when the knobs hold a ``factory`` (``"module.path:callable"``), that factory called with the
    knobs' ``kwargs``."""
    if "factory" in model_knobs:
        return build_factory_model(model_knobs["factory"], model_knobs.get("kwargs", {}))
    return build_model(model_name, data.input_shape, data.num_classes, **model_knobs)


def load_run_model(model_name: str, model_knobs: dict, data, checkpoint: str | os.PathLike, *,
                   verify: bool = True) -> nn.Module:
    """The model of a run with the state dict of ``checkpoint`` loaded (a corrupted or mismatched
    checkpoint raises an error naming the file; ``verify=False`` for a checkpoint of your own,
    which has no sidecar checksum)."""
    model = build_run_model(model_name, model_knobs, data)
    state = io.load_state_dict(checkpoint, verify=verify)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise io.CorruptFileError(f"checkpoint {checkpoint} does not fit model {model_name} "
                                  f"{model_knobs}: {exc}") from exc
    return model


def external_checkpoint_files(templates: dict[str, str], seed: int, epochs: list[int],
                              step_range: list[int] | None) -> dict[str, str]:
    """Checkpoint label -> file of a run given by its checkpoint files (state dicts) instead of
    trained: ``final`` and, when ``templates`` has them, ``init``, ``epoch-N`` for each N of
    ``epochs`` and ``step-N`` for N in ``range(*step_range)``. A template's ``{seed}``, ``{epoch}``
    and ``{step}`` are replaced by the run's seed and the checkpoint's epoch or step; any other
    placeholder is a ``ValueError`` naming the template's label."""
    def fill(label: str, **values: int) -> str:
        try:
            return templates[label].format(**values)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{label}={templates[label]!r}: not a file name template "
                             f"({type(exc).__name__}: {exc}); it may hold "
                             f"{', '.join('{' + name + '}' for name in values)}") from exc

    files = {label: fill(label, seed=seed) for label in ("final", "init") if label in templates}
    if "epoch" in templates:
        files.update({f"epoch-{epoch}": fill("epoch", seed=seed, epoch=epoch)
                      for epoch in sorted(set(epochs))})
    if "step" in templates and step_range is not None:
        files.update({f"step-{step}": fill("step", seed=seed, step=step)
                      for step in range(*step_range)})
    return files


def load_trajectory(path: str | os.PathLike, kind: str = "epoch") -> list[tuple[int, dict]]:
    """Checkpoints of ``trajectory.pt`` of one kind (``epoch`` or ``step``) as
    ``[(index, state_dict), ...]`` sorted by index."""
    if kind not in ("epoch", "step"):
        raise ValueError(f"unknown checkpoint kind {kind!r}; valid: epoch, step")
    trajectory = io.load_torch(path)
    if not isinstance(trajectory, dict):
        raise io.CorruptFileError(f"{path} is not a trajectory file (label -> state dict)")
    points = []
    for label, state in trajectory.items():
        label_kind, _, index = label.partition("-")
        if label_kind == kind:
            points.append((int(index), state))
    return sorted(points, key=lambda item: item[0])


def skip_reason(status_path: str | os.PathLike, run: str) -> str | None:
    """``None`` for a run (or structure) that finished, else the visible reason a measurement skips
    it (``"skipped: RUN diverged"``, ``"skipped: STRUCTURE skipped (REASON)"``)."""
    status = read_status(status_path)
    if status["status"] == "skipped":
        return f"skipped: {run} skipped ({status.get('reason', 'no reason given')})"
    return None if status["status"] == "ok" else f"skipped: {run} {status['status']}"


def flat_checkpoints(points: list[tuple[int, dict]], layout) -> torch.Tensor:
    """θ ``(T, D)`` of ``load_trajectory`` checkpoints in ``layout`` order."""
    return torch.stack([flat_params_from_state(state, layout) for _, state in points])


@dataclass
class Solution:
    """A run's model loaded for measurement: ``data`` and ``model`` on ``device``, θ ``(D,)`` there
    too, and the evaluation ``precision`` that applies on that device."""

    data: DatasetTensors
    model: nn.Module
    layout: ParamLayout
    theta: torch.Tensor
    device: torch.device
    precision: str

    @property
    def train_test(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_train, y_train, x_test, y_test)``, the ``data`` argument of the surfaces."""
        return self.data.x_train, self.data.y_train, self.data.x_test, self.data.y_test

    def train_subset(self, n_samples: int | None, seed: int = 0
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of the seeded training subset of at most ``n_samples`` samples that
        ``evaluate_train_test(..., n_samples=n_samples, seed=seed)`` uses (``None``: all)."""
        index = subset_indices(len(self.data.y_train), n_samples, seed)
        if index is None:
            return self.data.x_train, self.data.y_train
        index = index.to(self.device)
        return self.data.x_train[index], self.data.y_train[index]


def load_solution(data_path: str | os.PathLike, model_name: str, run_settings: dict,
                  checkpoint: str | os.PathLike | None, *, device: str = "auto",
                  precision: str = "fp32", verify: bool = True) -> Solution:
    """Load a run's own training data (its ``train_fraction``, ``label_noise`` and ``seed`` from
    ``run_settings``, so "train loss" is the loss the run minimized) and its model with
    ``checkpoint`` (``None``: freshly built weights) onto ``device`` (``auto``, ``cpu`` or
    ``cuda``) for measurement (``verify``: as ``load_run_model``)."""
    torch_device = resolve_device(device)
    data = load_dataset(data_path, train_fraction=run_settings["train_fraction"],
                        label_noise=run_settings["label_noise"],
                        seed=run_settings["seed"]).to(torch_device)
    if checkpoint is None:
        model = build_run_model(model_name, run_settings["model"], data)
    else:
        model = load_run_model(model_name, run_settings["model"], data, checkpoint, verify=verify)
    model = model.to(torch_device)
    return Solution(data, model, param_layout(model), get_flat_params(model).to(torch_device),
                    torch_device, precision_for(precision, torch_device))


RUN_FILES = ("final.pt", "init.pt", "trajectory.pt", "trainable.pt", "metrics.csv", "status.json")


def prepare_member(data_path: str | os.PathLike, model_name: str, settings: dict,
                   init_checkpoint: str | os.PathLike | None, device: torch.device):
    """Everything ``train_members`` needs for one run of the config's run table:
    a ``Member`` with the run's own data (``train_fraction``, ``label_noise`` and ``seed``), its
    model initialized from its seed (or loaded from ``init_checkpoint``) and scaled by
    ``init_scale``, its parameterization, ``TrainSettings`` and identity (the settings that are
    not training settings)."""
    from .parameterizations import build_parameterization, scale_parameters_
    from .train import Member, TrainSettings, init_model

    data = load_dataset(data_path, train_fraction=settings["train_fraction"],
                        label_noise=settings["label_noise"], seed=settings["seed"])
    model = init_model(lambda: build_run_model(model_name, settings["model"], data), settings["seed"])
    if init_checkpoint is not None:
        model.load_state_dict(io.load_state_dict(init_checkpoint))
    scale_parameters_(model, settings["init_scale"])
    parameterization = build_parameterization(settings["parameterization"], get_flat_params(model),
                                              device=device)
    fields = TrainSettings.__dataclass_fields__
    train_settings = TrainSettings(**{k: settings[k] for k in fields if k in settings})
    identity = {k: v for k, v in settings.items() if k not in fields}
    return Member(model, data, train_settings, settings["seed"], parameterization, identity)


def write_run_files(result, directory: str | os.PathLike) -> None:
    """The ``RUN_FILES`` of a finished run (a ``TrainResult``) in ``directory``, each written
    atomically, ``status.json`` last."""
    from .train import status_record

    directory = Path(directory)
    io.save_state_dict(result.init_state, directory / "init.pt")
    io.save_torch(result.trajectory, directory / "trajectory.pt")
    io.save_torch({"parameterization": result.parameterization, "tensors": result.trainable},
                  directory / "trainable.pt")
    io.write_rows(result.history, directory / "metrics.csv")
    io.save_state_dict(result.final_state, directory / "final.pt")
    io.write_json(status_record(result), directory / "status.json")
