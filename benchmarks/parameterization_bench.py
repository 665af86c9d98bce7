"""Step time of training in a parameterization against full-space training of the same model and
batch: a random subspace θ = θ₀ + A z with A dense and matrix-free (row blocks regenerated at every
product), a Bézier curve and a polygonal chain between two solutions, and a complex through three
solutions with two connectors and J = 5 points per minibatch.

Times come from ``train_run`` itself: ``wall_time_s`` of its per-epoch table covers the optimizer
steps only (not the per-epoch evaluation), so one epoch capped at ``--steps`` steps gives the time
per step of the one training loop. Run on an idle machine:

    .venv/bin/python benchmarks/parameterization_bench.py [--threads 2] [--steps 30] [--device auto]
"""

from __future__ import annotations

import argparse

import torch

from lossatlas.data import DatasetTensors
from lossatlas.models import build_model
from lossatlas.parameterizations import build_parameterization, build_structure
from lossatlas.params import get_flat_params
from lossatlas.train import TrainSettings, init_model, resolve_device, train_run

CASES = [  # model, model options, input shape, batch size, d values
    ("mlp", {"width": 100, "depth": 2}, (1, 40), 500, [100, 1000, 3800]),
    ("resnet20", {"width": 16}, (3, 32, 32), 128, [1000, 10000]),
]


def random_data(input_shape, n, classes=10, seed=0) -> DatasetTensors:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *input_shape, generator=generator)
    y = torch.randint(0, classes, (n,), generator=generator)
    return DatasetTensors("random", x, y, x[:64], y[:64], [str(c) for c in range(classes)])


STRUCTURES = [{"kind": "bezier"}, {"kind": "polychain"},
              {"kind": "complex", "connectors": 2, "samples": 5}]


def step_seconds(name, options, data, batch, spec, steps, device) -> float:
    def build():
        return build_model(name, data.input_shape, 10, **options)

    model = init_model(build, 0)
    if spec is not None and spec["kind"] in ("bezier", "polychain", "complex"):
        count = 2 if spec["kind"] != "complex" else 3
        points = torch.stack([get_flat_params(init_model(build, seed)) for seed in range(count)])
        parameterization = build_structure(spec, points, [str(s) for s in range(count)],
                                           device=device)
    else:
        parameterization = build_parameterization(spec, get_flat_params(model), device=device)
    settings = TrainSettings(optimizer="adam", lr=1e-3, batch_size=batch, epochs=1,
                             steps=steps)
    result = train_run(model, data, settings, seed=0, parameterization=parameterization,
                       device=device)
    return result.history[-1]["wall_time_s"] / result.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="*", default=[case[0] for case in CASES])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device {device}, {torch.get_num_threads()} threads, {args.steps} steps per timing")
    print("| model | D | batch | parameterization | ms per step | / full space |")
    print("|---|---|---|---|---|---|")
    for name, options, shape, batch, dims in CASES:
        if name not in args.models:
            continue
        data = random_data(shape, batch * args.steps)
        dim_full = get_flat_params(build_model(name, shape, 10, **options)).numel()
        step_seconds(name, options, data, batch, None, 3, device)
        full = step_seconds(name, options, data, batch, None, args.steps, device)
        print(f"| {name} | {dim_full} | {batch} | full space | {1e3 * full:.1f} | 1.00x |",
              flush=True)
        for dim in dims:
            for projection in ("dense", "blocked"):
                if projection == "dense" and 4 * dim * dim_full > 2**31:
                    print(f"| {name} | {dim_full} | {batch} | d={dim} dense | A needs "
                          f"{4 * dim * dim_full / 2**30:.1f} GiB: not run | |")
                    continue
                spec = {"kind": "subspace", "dim": dim, "projection": projection}
                seconds = step_seconds(name, options, data, batch, spec, args.steps, device)
                print(f"| {name} | {dim_full} | {batch} | d={dim} {projection} | "
                      f"{1e3 * seconds:.1f} | {seconds / full:.2f}x |", flush=True)
        for spec in STRUCTURES:
            seconds = step_seconds(name, options, data, batch, spec, args.steps, device)
            label = " ".join(f"{k}={v}" for k, v in spec.items() if k != "kind")
            print(f"| {name} | {dim_full} | {batch} | {spec['kind']} {label} | "
                  f"{1e3 * seconds:.1f} | {seconds / full:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
