"""Stochastic curvature estimators against exact Hessians of tiny networks (CPU): Hutchinson vs
Hutch++ trace estimates at equal products, and the SLQ density's mass fractions per broadening.

Problems (float64, Hessian of the mean loss over all samples, built densely from D products of
``HessianOperator``; the estimators then run on it as a ``MatrixOperator``, which gives them the
same products):

- ``mnist1d-mlp``: MNIST-1D (``mnist1d`` defaults, seed 42; the first 2000 training samples, shape
  (1, 40), 10 classes), mlp width 10 depth 1, cross-entropy, trained 300 full-batch Adam steps (lr
  1e-2): a few outliers above a dense bulk, as in the pipeline's solutions.
- ``mnist1d-mlp-init``: the same network at its initialization.
- ``random-mlp``: 512 Gaussian inputs (10 features), 4 random labels, mlp width 12 depth 1,
  cross-entropy, 30 Adam steps: a dense spectrum, a fifth of it negative.
- ``linear-mse``: a linear layer (40 → 4) under the squared error on 2000 Gaussian inputs: H ≈ 2 I,
  a flat spectrum.

And at the pipeline's size, the network of ``curvature_bench.py`` (MNIST-1D, all 4000 training
samples, mlp width 100 depth 2, D = 15210, 500 Adam steps, float32): Hutchinson vs Hutch++ at the
default 99 products over ``PIPELINE_SEEDS`` seeds against a 1500-product Hutch++ reference, and
the share of ‖H‖_F² (from 64 Hutchinson vectors) outside its top 33 eigenvalues (Lanczos).

Trace: relative RMSE over ``SEEDS`` seeds of Hutchinson (Rademacher) and Hutch++ with the same
number of products m; the spectrum's decay is summarized by the share of ‖H‖_F² outside the top
m/3 eigenvalues (Hutch++ deflates m/3 directions and spends m/3 samples on the rest, so it wins
when that share is well below 1/3). Density: |mass below c − exact fraction of eigenvalues below c|
for c = 0 and c = λ_max/10, ``spectral_density`` with 10 starts and 80 steps.

Run: ``.venv/bin/python benchmarks/estimator_bench.py`` (a few minutes on 2 CPU cores).
"""

from __future__ import annotations

import math
import platform
import time

import torch
from mnist1d.data import get_dataset_args, make_dataset

from curvature_bench import mnist1d_train, trained_mlp
from lossatlas.curvature import (HessianOperator, MatrixOperator, hutchinson_trace, hutchpp_trace,
                                 lanczos, spectral_density, trace_to_frobenius_ratio)
from lossatlas.functional import FunctionalModel
from lossatlas.models import build_model

PRODUCTS = (30, 99)
SEEDS = 40
PIPELINE_SEEDS = 8
BROADENINGS = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4)


def trained(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, loss: str
            ) -> tuple[FunctionalModel, torch.Tensor]:
    fmodel = FunctionalModel(model.double(), loss=loss)
    theta = fmodel.theta0.clone().requires_grad_()
    optimizer = torch.optim.Adam([theta], lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        fmodel.loss(theta, x, y).backward()
        optimizer.step()
    return fmodel, theta.detach()


def problems() -> dict[str, tuple[FunctionalModel, torch.Tensor, torch.Tensor, torch.Tensor]]:
    data = make_dataset(get_dataset_args())
    x = torch.tensor(data["x"][:2000], dtype=torch.float64)[:, None, :]
    y = torch.tensor(data["y"][:2000], dtype=torch.int64)
    generator = torch.Generator().manual_seed(1)
    x_random = torch.randn(512, 10, generator=generator, dtype=torch.float64)
    y_random = torch.randint(0, 4, (512,), generator=generator)
    x_linear = torch.randn(2000, 40, generator=generator, dtype=torch.float64)
    y_linear = torch.randint(0, 4, (2000,), generator=generator)
    out = {}
    for name, steps in (("mnist1d-mlp", 300), ("mnist1d-mlp-init", 0)):
        torch.manual_seed(0)
        out[name] = (*trained(build_model("mlp", (1, 40), 10, width=10, depth=1), x, y, steps,
                              "cross_entropy"), x, y)
    torch.manual_seed(0)
    out["random-mlp"] = (*trained(build_model("mlp", (10,), 4, width=12, depth=1), x_random,
                                  y_random, 30, "cross_entropy"), x_random, y_random)
    torch.manual_seed(0)
    out["linear-mse"] = (*trained(torch.nn.Linear(40, 4), x_linear, y_linear, 0, "mse"),
                         x_linear, y_linear)
    return out


def dense_hessian(fmodel: FunctionalModel, theta: torch.Tensor, x: torch.Tensor,
                  y: torch.Tensor) -> torch.Tensor:
    operator = HessianOperator(fmodel, theta, x, y)
    identity = torch.eye(operator.dim, dtype=torch.float64)
    h = torch.cat([operator(identity[i:i + 64]) for i in range(0, operator.dim, 64)])
    return (h + h.T) / 2


def relative_rmse(estimates: list[float], exact: float) -> float:
    return math.sqrt(sum((e - exact) ** 2 for e in estimates) / len(estimates)) / abs(exact)


def pipeline_size_trace() -> str:
    """Hutchinson vs Hutch++ at 99 products on the D = 15210 MLP of ``curvature_bench.py``."""
    x, y = mnist1d_train()
    fmodel = FunctionalModel(trained_mlp(x, y))
    operator = HessianOperator(fmodel, fmodel.theta0, x, y)
    reference = hutchpp_trace(operator, 1500, seed=100).estimate
    top = lanczos(operator, 33, tol=1e-3, max_iter=200).eigenvalues
    frobenius_squared = trace_to_frobenius_ratio(operator, 64, seed=101).frobenius ** 2
    tail = 1 - (top ** 2).sum().item() / frobenius_squared
    plain = relative_rmse([hutchinson_trace(operator, 99, seed=s).estimate
                           for s in range(PIPELINE_SEEDS)], reference)
    plus = relative_rmse([hutchpp_trace(operator, 99, seed=s).estimate
                          for s in range(PIPELINE_SEEDS)], reference)
    return (f"| pipeline MLP (trained) | {operator.dim} | 99 | {tail:.3f} | {plain:.2e} | {plus:.2e} | "
            f"{'Hutch++' if plus < plain else 'Hutchinson'} |")


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    start = time.perf_counter()
    trace_rows, density_rows = [], []
    for name, (fmodel, theta, x, y) in problems().items():
        h = dense_hessian(fmodel, theta, x, y)
        eigenvalues = torch.linalg.eigvalsh(h)
        operator = MatrixOperator(h)
        exact = eigenvalues.sum().item()
        squares = (eigenvalues ** 2).sort(descending=True).values
        for m in PRODUCTS:
            tail = (squares[m // 3:].sum() / squares.sum()).item()
            plain = relative_rmse([hutchinson_trace(operator, m, seed=s).estimate
                                   for s in range(SEEDS)], exact)
            plus = relative_rmse([hutchpp_trace(operator, m, seed=s).estimate
                                  for s in range(SEEDS)], exact)
            trace_rows.append(f"| {name} | {operator.dim} | {m} | {tail:.3f} | {plain:.2e} | "
                              f"{plus:.2e} | {'Hutch++' if plus < plain else 'Hutchinson'} |")
        cuts = (0.0, 0.1 * eigenvalues[-1].item())
        exact_mass = [(eigenvalues < c).double().mean().item() for c in cuts]
        errors = []
        for broadening in BROADENINGS:
            density = spectral_density(operator, 10, 80, broadening, grid_size=40_000, seed=0)
            errors.append(max(abs(torch.trapezoid(density.density[density.grid < c],
                                                  density.grid[density.grid < c]).item() - e)
                              for c, e in zip(cuts, exact_mass)))
        density_rows.append(f"| {name} | {operator.dim} | {exact_mass[0]:.3f} | "
                            + " | ".join(f"{e:.3f}" for e in errors) + " |")
        print(f"{name}: D = {operator.dim}, λ_max = {eigenvalues[-1].item():.4g}, "
              f"λ_min = {eigenvalues[0].item():.4g}", flush=True)
    print(f"\ntrace, relative RMSE over {SEEDS} seeds at equal products m:")
    print("| problem | D | m | share of ‖H‖_F² outside the top m/3 | Hutchinson | Hutch++ | better |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(trace_rows))
    print(pipeline_size_trace(), flush=True)
    print("\nSLQ density (10 starts, 80 steps): largest |mass error| at c = 0 and c = λ_max/10:")
    print("| problem | D | exact share below 0 | "
          + " | ".join(f"broadening {b:g}" for b in BROADENINGS) + " |")
    print("|---|---|---|" + "---|" * len(BROADENINGS))
    print("\n".join(density_rows))
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
