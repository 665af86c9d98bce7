"""Curvature engine benchmark (CPU): top-5 Hessian eigenvalues by Lanczos vs power iteration with
deflation (PyHessian), and the time per Hessian-vector product of ``HessianOperator`` in each
``hvp_mode`` (and its automatic choice) against classic double backward on the ``nn.Module``.

Problem: MNIST-1D generated offline by the ``mnist1d`` package (its default arguments, seed 42, 4000
training samples of shape (1, 40), 10 classes), MLP width 100 depth 2 (no batch norm) trained with
500 Adam steps (lr 1e-3, batch 128, seed 0); the Hessian is that of the mean cross-entropy over the
4000 training samples, float32. The eigenvalue comparison runs on one thread (wall times on a shared
2-core machine are steadier so); products are the machine-independent measure.

Run: ``.venv/bin/python benchmarks/curvature_bench.py`` (a few minutes on 2 CPU cores).
"""

from __future__ import annotations

import platform
import time

import torch
import torch.nn.functional as F
from mnist1d.data import get_dataset_args, make_dataset

from lossatlas.curvature import HVP_MODES, HessianOperator, lanczos, power_iteration
from lossatlas.functional import FunctionalModel
from lossatlas.models import build_model
from lossatlas.params import set_flat_params_

TOP_K = 5
TARGET_ERROR = 1e-3
TOLERANCES = (3e-2, 1e-2, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)
TRIALS = 5


def mnist1d_train() -> tuple[torch.Tensor, torch.Tensor]:
    data = make_dataset(get_dataset_args())
    x = torch.tensor(data["x"], dtype=torch.float32)[:, None, :]
    return x, torch.tensor(data["y"], dtype=torch.int64)


def trained_mlp(x: torch.Tensor, y: torch.Tensor, steps: int = 500) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("mlp", (1, 40), 10, width=100, depth=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = torch.randint(0, len(x), (128,), generator=generator)
        optimizer.zero_grad()
        F.cross_entropy(model(x[batch]), y[batch]).backward()
        optimizer.step()
    return model


def eigen_comparison(operator: HessianOperator) -> list[dict]:
    reference = lanczos(operator, TOP_K, tol=1e-7, max_iter=400)
    print(f"reference (Lanczos tol 1e-7): {reference.products} products, converged "
          f"{reference.converged}, top-{TOP_K} = {[round(v, 5) for v in reference.eigenvalues.tolist()]}")
    rows = []
    for method in ("lanczos", "power"):
        for tol in TOLERANCES:
            if method == "lanczos":
                result = lanczos(operator, TOP_K, tol=tol, max_iter=400, seed=1)
            else:
                result = power_iteration(operator, TOP_K, tol=tol, max_iter=1000, seed=1)
            error = ((result.eigenvalues - reference.eigenvalues).abs() / reference.eigenvalues.abs()).max()
            rows.append(dict(method=method, tol=tol, products=result.products, seconds=result.seconds,
                             error=error.item(), converged=result.converged))
            print(f"{method:8s} tol {tol:7.0e}  products {result.products:5d}  "
                  f"{result.seconds:7.2f} s  max rel err {error.item():.2e}  converged {result.converged}")
    return rows


def best_throughput(apply, vectors: torch.Tensor) -> float:
    """Vectors per second of ``apply(vectors)``, best of ``TRIALS`` timed calls after one warm-up
    (the best trial is the least disturbed by other processes on a shared machine)."""
    apply(vectors)
    best = float("inf")
    for _ in range(TRIALS):
        start = time.perf_counter()
        apply(vectors)
        best = min(best, time.perf_counter() - start)
    return len(vectors) / best


def double_backward_hvp(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    """Classic HVP of a batch of vectors ``(k, D)``: one gradient with create_graph, then one
    ``torch.autograd.grad`` of the gradient per vector (retain_graph), as in PyHessian."""
    params = list(model.parameters())

    def apply(vectors: torch.Tensor) -> torch.Tensor:
        gradient = torch.autograd.grad(F.cross_entropy(model(x), y), params, create_graph=True)
        flat_gradient = torch.cat([g.reshape(-1) for g in gradient])
        return torch.stack([torch.cat([h.reshape(-1) for h in torch.autograd.grad(
            flat_gradient, params, grad_outputs=v, retain_graph=True)]) for v in vectors])

    return apply


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    x, y = mnist1d_train()
    model = trained_mlp(x, y)
    with torch.no_grad():
        logits = model(x)
    print(f"trained MLP: train loss {F.cross_entropy(logits, y).item():.4f}, "
          f"train accuracy {(logits.argmax(1) == y).float().mean().item():.3f}")
    torch.set_num_threads(1)
    fmodel = FunctionalModel(model, bn_mode="eval")
    operator = HessianOperator(fmodel, fmodel.theta0, x, y)
    print(f"D = {operator.dim}, N = {len(x)}, no batch norm, float32, one chunk, "
          f"{torch.get_num_threads()} threads\n")

    rows = eigen_comparison(operator)
    best = {}
    for method in ("lanczos", "power"):
        reached = [r for r in rows if r["method"] == method and r["error"] <= TARGET_ERROR]
        best[method] = min(reached, key=lambda r: r["products"]) if reached else None
    print(f"\nfewest products reaching max relative error <= {TARGET_ERROR:g} on the top-{TOP_K}:")
    print("| method | tol | products | seconds | max rel. error |")
    print("|---|---|---|---|---|")
    for method, row in best.items():
        if row is None:
            print(f"| {method} | — | not reached | | |")
        else:
            print(f"| {method} | {row['tol']:g} | {row['products']} | {row['seconds']:.2f} | {row['error']:.1e} |")
    if best["lanczos"] and best["power"]:
        print(f"Lanczos / power products: {best['lanczos']['products'] / best['power']['products']:.3f}")

    classic = build_model("mlp", (1, 40), 10, width=100, depth=2)
    set_flat_params_(classic, fmodel.theta0)
    classic.eval()
    classic_hvp = double_backward_hvp(classic, x, y)
    operators = {f"{mode}, 1 chunk": HessianOperator(fmodel, fmodel.theta0, x, y, hvp_mode=mode)
                 for mode in HVP_MODES}
    operators["forward_over_reverse, chunks of 1000"] = HessianOperator(
        fmodel, fmodel.theta0, x, y, chunk_size=1000, hvp_mode="forward_over_reverse")
    check = torch.randn(2, operator.dim)
    reference = classic_hvp(check)
    print(f"\nHVP on all {len(x)} samples, ms per product (best of {TRIALS} calls), load average "
          f"{open('/proc/loadavg').read().split()[0]}; max |operator − classic| on 2 vectors:")
    for label, op in operators.items():
        print(f"  {label} (runs {op.hvp_mode}): {(op(check) - reference).abs().max():.1e}")
    print("| threads | k vectors per call | " + " | ".join(operators) + " | classic double backward |")
    print("|---" * (len(operators) + 3) + "|")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for k in (1, 10):
            vectors = torch.randn(k, operator.dim, generator=torch.Generator().manual_seed(k))
            classic_ms = 1e3 / best_throughput(classic_hvp, vectors)
            times = [1e3 / best_throughput(op, vectors) for op in operators.values()]
            cells = [f"{ms:.1f} ({ms / classic_ms:.2f}×)" for ms in times]
            print(f"| {threads} | {k} | " + " | ".join(cells) + f" | {classic_ms:.1f} (1.00×) |")
    print(f"load average {open('/proc/loadavg').read().split()[0]} at the end")

if __name__ == "__main__":
    main()
