"""Points per second of ``evaluate_points`` (each strategy, and the automatic choice) against plain
per-point loops, and each method's arithmetic rate as a fraction of a large fp32 GEMM on the same
threads.

Same model, grid and data for all: MNIST-1D generated offline by the ``mnist1d`` package (4000
training samples of shape (1, 40), 10 classes), a 2D filter-normalized grid around the
initialization, full training set per point, loss and accuracy. Baselines copy θ into the module
and evaluate under ``torch.no_grad`` in eval mode:
- ``loop-128``: the data in minibatches of 128 (as the reference loss-landscape code iterates its
  data loader),
- ``loop-full``: the whole training set as one batch (the strongest simple loop; speed-ups are
  against it).
Loops are timed on a prefix of the grid's points and reported per point; every method's losses are
checked against the engine's. GFLOP/s counts the model's forward multiply-adds (×2) per sample and
point, the same nominal work for every method (``structured`` does less arithmetic for its first
layer, so its rate can exceed what it computes). Each time is the best of ``--repeats`` runs.

Run: ``.venv/bin/python benchmarks/landscape_bench.py [--threads N]`` (about a minute on 2 idle
CPU cores).
"""

from __future__ import annotations

import argparse
import copy
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from mnist1d.data import get_dataset_args, make_dataset
from torch import nn

from lossatlas.evaluate import choose_strategy, evaluate_points
from lossatlas.functional import FunctionalModel
from lossatlas.landscape import plane_points, random_directions
from lossatlas.models import build_model
from lossatlas.params import get_flat_params, param_layout, set_flat_params_

GEMM_SIZE = 2048


def load() -> str:
    return open("/proc/loadavg").read().split()[0]


def best_time(fn, repeats: int):
    """Output of ``fn`` and its best wall time in seconds over ``repeats`` calls after a warm-up."""
    out = fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def gemm_gflops(repeats: int) -> float:
    a, b = torch.randn(GEMM_SIZE, GEMM_SIZE), torch.randn(GEMM_SIZE, GEMM_SIZE)
    _, seconds = best_time(lambda: a @ b, repeats)
    return 2 * GEMM_SIZE**3 / seconds / 1e9


def forward_flops_per_sample(model: nn.Module, x: torch.Tensor) -> int:
    """2 × the multiply-adds of the linear and convolution layers for one sample."""
    total = []

    def count(module, _inputs, out):
        if isinstance(module, nn.Linear):
            total.append(2 * out.numel() * module.in_features)
        elif isinstance(module, nn.modules.conv._ConvNd):
            total.append(2 * out.numel() * module.weight[0].numel())

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    with torch.no_grad():
        model(x[:1])
    for hook in hooks:
        hook.remove()
    return sum(total)


def loop_losses(model, points, x, y, batch_size):
    net = copy.deepcopy(model).eval()
    losses = []
    with torch.no_grad():
        for theta in points:
            set_flat_params_(net, theta)
            total = 0.0
            for start in range(0, x.shape[0], batch_size):
                logits = net(x[start:start + batch_size])
                total += F.cross_entropy(logits, y[start:start + batch_size], reduction="sum").item()
            losses.append(total / x.shape[0])
    return np.array(losses)


def bench(name, options, grid, loop_points, x, y, repeats):
    torch.manual_seed(0)
    model = build_model(name, (1, 40), 10, **options)
    theta = get_flat_params(model)
    d1, d2 = random_directions(theta, param_layout(model), 2, seed=0)
    axis = torch.linspace(-1, 1, grid)
    points = plane_points(theta, d1, d2, axis, axis)
    chosen, _ = choose_strategy("auto", FunctionalModel(model), points, x, x.shape[0])
    reference = evaluate_points(model, points, x, y, strategy="loop")
    rows = []
    for strategy in ("auto", "vmap", "loop", "structured"):
        result, seconds = best_time(
            lambda: evaluate_points(model, points, x, y, strategy=strategy), repeats)
        np.testing.assert_allclose(result.loss, reference.loss, rtol=1e-5)
        label = f"engine {strategy}" + (f" (→ {chosen})" if strategy == "auto" else "")
        rows.append((label, len(points), seconds))
    for label, batch_size in (("loop-128", 128), ("loop-full", x.shape[0])):
        losses, seconds = best_time(
            lambda: loop_losses(model, points[:loop_points], x, y, batch_size), repeats)
        np.testing.assert_allclose(losses, reference.loss[:loop_points], rtol=1e-4)
        rows.append((label, loop_points, seconds))
    return rows, forward_flops_per_sample(model, x) * x.shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = make_dataset(get_dataset_args())
    x = torch.as_tensor(data["x"], dtype=torch.float32)[:, None, :]
    y = torch.as_tensor(data["y"], dtype=torch.int64)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {x.shape[0]} samples, load average {load()} at start")
    peak = gemm_gflops(args.repeats)
    print(f"# fp32 GEMM {GEMM_SIZE}x{GEMM_SIZE}: {peak:.1f} GFLOP/s (the peak below)")
    print("| model | method | points | seconds | points/s | × loop-full | GFLOP/s | % of GEMM |")
    print("|---|---|---|---|---|---|---|---|")
    for name, options, grid, loop_points in (("mlp", {"width": 100, "depth": 2}, 21, 60),
                                             ("cnn1d", {"width": 25}, 11, 12)):
        rows, flops_per_point = bench(name, options, grid, loop_points, x, y, args.repeats)
        loop_rate = rows[-1][1] / rows[-1][2]
        for label, n, seconds in rows:
            rate = n / seconds
            gflops = rate * flops_per_point / 1e9
            print(f"| {name} | {label} | {n} | {seconds:.3f} | {rate:.1f} | {rate / loop_rate:.2f}× "
                  f"| {gflops:.1f} | {100 * gflops / peak:.0f}% |")
    print(f"# GEMM again: {gemm_gflops(args.repeats):.1f} GFLOP/s; load average {load()} at the end")


if __name__ == "__main__":
    main()
