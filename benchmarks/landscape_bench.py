"""Points per second of the batched evaluator (``evaluate_points``) against plain per-point loops.

Same model, grid and data for both: MNIST-1D generated offline by the ``mnist1d`` package (4000
training samples of shape (1, 40), 10 classes), a 2D filter-normalized grid around the
initialization, full training set per point. Two per-point baselines, both copying θ into the module
and evaluating under ``torch.no_grad`` in eval mode:
- ``loop-128``: the data in minibatches of 128 (as the reference loss-landscape code iterates its
  data loader),
- ``loop-full``: the whole training set as one batch (the strongest simple loop).
The loops are timed on a prefix of the grid's points and reported per point; their values are
checked against the batched ones.

Run: ``.venv/bin/python benchmarks/landscape_bench.py`` (a few minutes on 2 CPU cores).
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

from lossatlas.evaluate import evaluate_points
from lossatlas.landscape import plane_points, random_directions
from lossatlas.models import build_model
from lossatlas.params import get_flat_params, param_layout, set_flat_params_


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


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench(name, options, grid, loop_points, x, y):
    torch.manual_seed(0)
    model = build_model(name, (1, 40), 10, **options)
    theta = get_flat_params(model)
    d1, d2 = random_directions(theta, param_layout(model), 2, seed=0)
    axis = torch.linspace(-1, 1, grid)
    points = plane_points(theta, d1, d2, axis, axis)
    evaluate_points(model, points[:2], x, y)
    batched, t_batched = timed(lambda: evaluate_points(model, points, x, y))
    rows = [(f"{name} batched", len(points), t_batched)]
    for label, batch_size in (("loop-128", 128), ("loop-full", x.shape[0])):
        loop_losses(model, points[:1], x, y, batch_size)
        losses, t_loop = timed(lambda: loop_losses(model, points[:loop_points], x, y, batch_size))
        np.testing.assert_allclose(losses, batched.loss[:loop_points], rtol=1e-4)
        rows.append((f"{name} {label}", loop_points, t_loop))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = make_dataset(get_dataset_args())
    x = torch.as_tensor(data["x"], dtype=torch.float32)[:, None, :]
    y = torch.as_tensor(data["y"], dtype=torch.int64)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {x.shape[0]} samples")
    rows = bench("mlp", {"width": 100, "depth": 2}, 21, 60, x, y)
    rows += bench("cnn1d", {"width": 25}, 11, 12, x, y)
    print("| model, method | points | seconds | points/s | batched / this |")
    print("|---|---|---|---|---|")
    rate = {}
    for label, n, seconds in rows:
        model = label.split()[0]
        rate.setdefault(model, n / seconds)
        print(f"| {label} | {n} | {seconds:.2f} | {n / seconds:.1f} | "
              f"{rate[model] / (n / seconds):.2f}x |")


if __name__ == "__main__":
    main()
