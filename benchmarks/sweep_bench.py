"""Models per hour of a sweep: one process per model (what one `train` job per run costs: a fresh
interpreter, the imports, the dataset load and `train_run`) against one process that trains the
whole sweep (`train_each_or_batch`: one vmapped batch where the runs can form one, what one
`train_batch_*` job costs), on the default MLP (width 100, depth 2, MNIST-1D, SGD momentum 0.9,
batch 64), without or with batch norm (``--norm``), for a learning-rate x seed sweep. Every figure
is wall-clock time of the child processes, measured by this parent. Run on an idle machine after
`snakemake resources/data/mnist1d.h5`:

    .venv/bin/python benchmarks/sweep_bench.py [--epochs 10] [--lrs 0.01 0.02 0.05 0.1 0.2]
        [--seeds 0 1 2] [--threads 2] [--norm none]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

DATA = "resources/data/mnist1d.h5"
MODEL = {"width": 100, "depth": 2}


def train(runs: list[tuple[int, float]], epochs: int, threads: int, norm: str) -> None:
    """Train ``runs`` ((seed, lr) pairs) in this process: alone with `train_run` for one run,
    with `train_each_or_batch` for several."""
    import torch

    from lossatlas.data import load_dataset
    from lossatlas.runs import build_run_model
    from lossatlas.train import Member, TrainSettings, init_model, train_each_or_batch, train_run

    torch.set_num_threads(threads)
    data = load_dataset(DATA, train_fraction=1.0, label_noise=0.0, seed=0)
    model = {**MODEL, "norm": norm}
    members = [Member(init_model(lambda: build_run_model("mlp", model, data), seed), data,
                      TrainSettings(lr=lr, epochs=epochs, batch_size=64), seed)
               for seed, lr in runs]
    if len(members) == 1:
        m = members[0]
        train_run(m.model, m.data, m.settings, m.seed)
    else:
        train_each_or_batch(members)


def timed_child(runs, epochs, threads, norm) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--child", json.dumps(runs), "--epochs", str(epochs),
                    "--threads", str(threads), "--norm", norm], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.1, 0.2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--norm", choices=("none", "batch"), default="none")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        train([tuple(run) for run in json.loads(args.child)], args.epochs, args.threads, args.norm)
        return
    runs = [(seed, lr) for lr in args.lrs for seed in args.seeds]
    print(f"default MLP {MODEL}, norm {args.norm}, MNIST-1D, {len(runs)} runs ({len(args.lrs)} "
          f"learning rates x {len(args.seeds)} seeds), {args.epochs} epochs each, "
          f"{args.threads} threads")
    alone = [timed_child([run], args.epochs, args.threads, args.norm) for run in runs]
    batched = timed_child(runs, args.epochs, args.threads, args.norm)
    per_hour_alone = 3600 * len(runs) / sum(alone)
    per_hour_batched = 3600 * len(runs) / batched
    print("| mode | wall s (all runs) | s per model | models per hour |")
    print("|---|---|---|---|")
    print(f"| one process per model | {sum(alone):.1f} | {sum(alone) / len(runs):.2f} | "
          f"{per_hour_alone:.0f} |")
    print(f"| one process, whole sweep | {batched:.1f} | {batched / len(runs):.2f} | "
          f"{per_hour_batched:.0f} |")
    print(f"speed-up: {per_hour_batched / per_hour_alone:.1f}x models per hour")


if __name__ == "__main__":
    main()
