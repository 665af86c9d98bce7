"""``lossatlas``: the measurements of ``lossatlas.api`` on your own model and checkpoints, from the
shell, and the figure of any surface or curvature file.

Your model is named as the workflow names one (``model.factory`` in ``config/README.md``): a
factory ``module.path:callable`` importable from the working directory, called with the keyword
arguments of ``--model-kwargs`` (a JSON object); checkpoints are state-dict files of that model
(``torch.save(model.state_dict(), path)``). Data is one ``.npz`` or HDF5 file with the arrays
``x_train`` (N, ...), ``y_train`` (N,) integer labels, ``x_test`` and ``y_test``, the workflow's
dataset of your own, used as given (standardize the inputs before saving them). Every measuring
subcommand writes one HDF5 file in the workflow's layout (``api``: surfaces as
tomgoldstein/loss-landscape reads them, losses in nats, accuracies in percent); ``plot`` draws it.

Examples::

    lossatlas surface-2d --model mynet:build --checkpoint final.pt --data data.npz --out s.h5
    lossatlas interpolate --model mynet:build --start init.pt --end final.pt --data data.npz \\
        --out line.h5
    lossatlas plot s.h5 --out s.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import api
from .data import read_source
from .evaluate import BN_POLICIES, DEFAULT_MEMORY_BUDGET, PRECISIONS
from .functional import LOSSES
from .io import CorruptFileError, read_h5
from .models import build_factory_model
from .params import NORMALIZATIONS

DATA_SUFFIXES = (".npz", ".h5", ".hdf5")
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _device(name: str) -> str:
    """``auto``: CUDA when present, else the CPU; any other name as given."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(spec: str, kwargs: dict, checkpoint: str | None):
    """The model built by factory ``spec`` with ``kwargs``, holding ``checkpoint`` when given."""
    model = build_factory_model(spec, kwargs)
    return model if checkpoint is None else api.load_checkpoint(model, checkpoint)


def load_data(path: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(x_train, y_train), (x_test, y_test)`` of an ``.npz`` or HDF5 file, checked as the
    workflow checks a dataset of your own."""
    source = Path(path)
    if source.suffix not in DATA_SUFFIXES or source.is_dir():
        raise ValueError(f"--data {path}: give an {', '.join(DATA_SUFFIXES)} file with x_train, "
                         "y_train, x_test, y_test")
    arrays, _ = read_source(source)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _grid(bounds: list[float], points: int, option: str) -> np.ndarray:
    low, high = bounds
    if not low < high:
        raise ValueError(f"{option} needs MIN < MAX, got {low:g} {high:g}")
    return np.linspace(low, high, points)


def _model_options(parser: argparse.ArgumentParser, checkpoint: bool) -> None:
    group = parser.add_argument_group("model and data")
    group.add_argument("--model", required=True, metavar="MODULE:CALLABLE",
                       help="factory returning the nn.Module, importable from the working "
                            "directory (e.g. mynet:build)")
    group.add_argument("--model-kwargs", type=_json_object, default={}, metavar="JSON",
                       help="keyword arguments of the factory as a JSON object (default: {})")
    if checkpoint:
        group.add_argument("--checkpoint", required=True, metavar="FILE",
                           help="state-dict file of the model (torch.save(model.state_dict()))")
    group.add_argument("--data", required=True, metavar="FILE",
                       help=".npz or .h5 file with x_train, y_train, x_test, y_test, used as given")
    group.add_argument("--loss", choices=LOSSES, default="cross_entropy",
                       help="loss function (default: cross_entropy)")
    group.add_argument("--out", required=True, metavar="FILE.h5",
                       help="HDF5 file to write (atomically)")
    group.add_argument("--device", default="cpu",
                       help="torch device, or auto for CUDA when present (default: cpu)")


def _line_options(parser: argparse.ArgumentParser, bounds: tuple[float, float], points: int,
                  coordinate: str) -> None:
    parser.add_argument("--range", nargs=2, type=float, default=list(bounds),
                        metavar=("MIN", "MAX"),
                        help=f"range of {coordinate} (default: {bounds[0]:g} {bounds[1]:g})")
    parser.add_argument("--points", type=_positive_int, default=points,
                        help=f"points (default: {points})")


def _evaluation_options(parser: argparse.ArgumentParser, bn_policy: str) -> None:
    group = parser.add_argument_group("evaluation")
    group.add_argument("--bn-policy", choices=BN_POLICIES, default=bn_policy,
                       help=f"batch-norm statistics away from the checkpoint (default: {bn_policy})")
    group.add_argument("--n-samples", type=_positive_int, metavar="N",
                       help="evaluate on a seeded subset of at most N samples of each split")
    group.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="evaluation precision; tf32 and bf16 on CUDA only (default: fp32)")
    group.add_argument("--memory-budget-bytes", type=_positive_int, default=DEFAULT_MEMORY_BUDGET,
                       metavar="BYTES", help="activation memory of one chunk of points "
                                             f"(default: {DEFAULT_MEMORY_BUDGET})")


def _direction_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("directions (Li et al. 2018)")
    group.add_argument("--seed", type=int, default=0,
                       help="seed of the random Gaussian directions (default: 0)")
    group.add_argument("--normalization", choices=NORMALIZATIONS, default="filter",
                       help="scaling of each direction to the checkpoint (default: filter)")
    group.add_argument("--include-biasbn", action="store_true",
                       help="also perturb biases and batch-norm parameters (default: left at 0)")


def _evaluation_kwargs(args) -> dict:
    return {"bn_policy": args.bn_policy, "n_samples": args.n_samples, "precision": args.precision,
            "memory_budget_bytes": args.memory_budget_bytes, "device": _device(args.device),
            "path": args.out}


def _direction_kwargs(args) -> dict:
    return {"seed": args.seed, "normalization": args.normalization,
            "ignore_biasbn": not args.include_biasbn}


def run_surface_1d(args) -> str:
    model = load_model(args.model, args.model_kwargs, args.checkpoint)
    train, test = load_data(args.data)
    api.surface_1d(model, args.loss, train, test, _grid(args.range, args.points, "--range"),
                   **_direction_kwargs(args), **_evaluation_kwargs(args))
    return f"wrote {args.out}: {args.points} points along one direction"


def run_surface_2d(args) -> str:
    model = load_model(args.model, args.model_kwargs, args.checkpoint)
    train, test = load_data(args.data)
    xs = _grid(args.xrange, args.xnum, "--xrange")
    ys = _grid(args.yrange, args.ynum, "--yrange")
    api.surface_2d(model, args.loss, train, test, xs, ys, **_direction_kwargs(args),
                   **_evaluation_kwargs(args))
    return f"wrote {args.out}: {args.ynum} × {args.xnum} grid"


def run_interpolate(args) -> str:
    model = load_model(args.model, args.model_kwargs, None)
    train, test = load_data(args.data)
    api.interpolation(model, args.loss, args.start, args.end, train, test,
                      _grid(args.range, args.points, "--range"), **_evaluation_kwargs(args))
    return f"wrote {args.out}: {args.points} points from --start (0) to --end (1)"


def run_curvature(args) -> str:
    model = load_model(args.model, args.model_kwargs, args.checkpoint)
    train, _ = load_data(args.data)
    measurement = api.curvature(
        model, args.loss, train, top_k=args.top_k, bottom_k=args.bottom_k,
        trace_products=args.trace_products, density_vectors=args.density_vectors,
        density_steps=args.density_steps, spectrum=not args.no_gauss_newton,
        bn_mode=args.bn_mode, n_samples=args.n_samples, seed=args.seed,
        device=_device(args.device), path=args.out)
    return (f"wrote {args.out}: λ_max {measurement.attrs['lambda_max']:.6g}, "
            f"Tr H {measurement.attrs['trace']:.6g}")


def figure_of_file(path: str, metric: str):
    """The figure of a file written by a subcommand (or the workflow): a 2D surface (contours and
    3D view of ``metric``), a 1D line (loss and accuracy, train and test) or a curvature file
    (spectral density and top eigenvalues)."""
    from .plots.curvature import plot_curvature_measurement
    from .plots.landscape import plot_surfaces_2d
    from .plots.lines import plot_surface_1d

    arrays, attrs = read_h5(path)
    name = Path(path).stem
    if "hessian_top" in arrays:
        return plot_curvature_measurement(arrays, attrs, name)
    if "ycoordinates" in arrays:
        return plot_surfaces_2d({name: arrays}, metric)
    if "xcoordinates" in arrays:
        return plot_surface_1d(arrays, name)
    raise ValueError(f"{path} is neither a surface (xcoordinates) nor a curvature file "
                     f"(hessian_top); it holds {sorted(arrays)}")


def run_plot(args) -> str:
    from .plots import save_image

    out = Path(args.out) if args.out else Path(args.file).with_suffix(".png")
    if out.suffix not in FIGURE_SUFFIXES:
        raise ValueError(f"--out {out}: the figure's format comes from its suffix, one of "
                         f"{', '.join(FIGURE_SUFFIXES)}")
    save_image(figure_of_file(args.file, args.metric), out)
    return f"wrote {out}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lossatlas", description="Loss-landscape measurements on your own model and "
        "checkpoints (lossatlas.api), and their figures.",
        epilog="Run 'lossatlas SUBCOMMAND --help' for the options of each.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    line = commands.add_parser("surface-1d", help="loss along one random direction",
                               description="f(x) = L(θ + x d) along one seeded, normalized "
                                           "random direction d (Li et al. 2018).")
    _model_options(line, checkpoint=True)
    _line_options(line, (-1.0, 1.0), 51, "x")
    _direction_options(line)
    _evaluation_options(line, "keep")
    line.set_defaults(run=run_surface_1d)

    plane = commands.add_parser("surface-2d", help="loss surface over two random directions",
                                description="f(x, y) = L(θ + x d1 + y d2) over two seeded, "
                                            "normalized random directions (Li et al. 2018).")
    _model_options(plane, checkpoint=True)
    for axis in ("x", "y"):
        plane.add_argument(f"--{axis}range", nargs=2, type=float, default=[-1.0, 1.0],
                           metavar=("MIN", "MAX"), help=f"{axis} range (default: -1 1)")
        plane.add_argument(f"--{axis}num", type=_positive_int, default=21,
                           help=f"{axis} points (default: 21)")
    _direction_options(plane)
    _evaluation_options(plane, "keep")
    plane.set_defaults(run=run_surface_2d)

    interpolate = commands.add_parser(
        "interpolate", help="loss on the line between two checkpoints",
        description="The loss at (1 − t) θ_start + t θ_end (Goodfellow et al. 2015): from init to "
                    "solution for monotonic linear interpolation, or between two solutions.")
    _model_options(interpolate, checkpoint=False)
    interpolate.add_argument("--start", required=True, metavar="FILE",
                             help="state-dict file at t = 0")
    interpolate.add_argument("--end", required=True, metavar="FILE", help="state-dict file at t = 1")
    _line_options(interpolate, (-0.5, 1.5), 41, "t")
    _evaluation_options(interpolate, "recompute")
    interpolate.set_defaults(run=run_interpolate)

    curvature = commands.add_parser(
        "curvature", help="Hessian eigenvalues, trace and spectral density",
        description="Hessian of the mean training loss at the checkpoint: top-k eigenvalues "
                    "(Lanczos), trace (Hutch++), SLQ spectral density and the Gauss–Newton top-k.")
    _model_options(curvature, checkpoint=True)
    options = curvature.add_argument_group("curvature")
    options.add_argument("--top-k", type=_positive_int, default=20,
                         help="top eigenvalues (default: 20)")
    options.add_argument("--bottom-k", type=int, default=0,
                         help="bottom eigenvalues (default: 0)")
    options.add_argument("--trace-products", type=_positive_int, default=99,
                         help="Hessian-vector products of the trace estimate (default: 99)")
    options.add_argument("--density-vectors", type=_positive_int, default=10,
                         help="SLQ start vectors (default: 10)")
    options.add_argument("--density-steps", type=_positive_int, default=80,
                         help="Lanczos steps per SLQ vector (default: 80)")
    options.add_argument("--no-gauss-newton", action="store_true",
                         help="skip the density and the Gauss–Newton eigenvalues")
    options.add_argument("--bn-mode", choices=("eval", "batch"), default="eval",
                         help="batch norm: stored running statistics or batch statistics "
                              "(default: eval)")
    options.add_argument("--n-samples", type=_positive_int, metavar="N",
                         help="a seeded subset of at most N training samples")
    options.add_argument("--seed", type=int, default=0,
                         help="seed of every random start (default: 0)")
    curvature.set_defaults(run=run_curvature)

    plot = commands.add_parser("plot", help="draw a surface or curvature file",
                               description="The figure of an HDF5 file written by a subcommand "
                                           "or by the workflow: a 2D surface, a 1D line or a "
                                           "curvature measurement.")
    plot.add_argument("file", metavar="FILE.h5", help="surface or curvature file")
    plot.add_argument("--out", metavar="FIGURE",
                      help=f"figure file, format by suffix ({', '.join(FIGURE_SUFFIXES)}; "
                           "default: FILE with .png)")
    plot.add_argument("--metric", default="train_loss",
                      choices=("train_loss", "train_acc", "test_loss", "test_acc"),
                      help="metric of a 2D surface (default: train_loss)")
    plot.set_defaults(run=run_plot)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); a bad input exits with status 2
    and one line naming it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        print(args.run(args))
    except (ValueError, FileNotFoundError, CorruptFileError) as exc:
        parser.exit(2, f"lossatlas {args.command}: error: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
