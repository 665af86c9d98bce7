"""Datasets -> one HDF5 file each -> normalized tensors.

``prepare_dataset`` writes ``x_train, y_train, x_test, y_test`` once per dataset: MNIST-1D
(Greydanus 2020) is generated offline by the ``mnist1d`` package with its default arguments and
seed (4000 train / 1000 test signals of length 40, float32 (N, 1, 40)); ``gratings`` is generated
offline by ``generate_gratings`` (CIFAR-shaped uint8 images (N, 3, 32, 32), 10 classes of noisy
colour gratings: a stand-in with CIFAR-10's shape for tests, whose results say nothing about
CIFAR-10); MNIST, Fashion-MNIST,
CIFAR-10 and CIFAR-100 are downloaded with torchvision's utilities, md5-verified against
``CHECKSUMS`` and stored as raw uint8 pixels (N, C, H, W). ``load_dataset`` reads that file,
standardizes every channel with the train-set mean/std stored next to the arrays, and optionally
subsamples the training set and corrupts a fixed number of its labels (Zhang et al. 2017 style
label noise).

A dataset of your own (``dataset_info``, ``prepare_dataset(..., source=...)``) is an ``.npz`` or
HDF5 file with arrays ``x_train`` (N, ...), ``y_train`` (N,) integer labels, ``x_test``, ``y_test``
and optionally ``classes`` (one name per class; default: labels 0 ... max label), used as given
(stored mean 0, std 1, so ``load_dataset`` leaves the inputs unchanged); or a folder with ``train/``
and ``test/`` folders in torchvision ``ImageFolder`` layout (one folder of images per class, same
classes in both, every image the same size), read as RGB uint8 pixels (N, 3, H, W) and standardized
per channel with the train-set statistics like the built-in image datasets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import importlib.metadata
import json
import logging
import math
import os
import pickle
import random
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from . import io

logger = logging.getLogger("lossatlas.data")

DATASETS = ("mnist1d", "gratings", "mnist", "fashion_mnist", "cifar10", "cifar100")

DEFAULT_URL_BASES = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    # The S3 website host of the dataset has no https; its GitHub repository holds the same files.
    "fashion_mnist": "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/",
    "cifar100": "https://www.cs.toronto.edu/~kriz/",
}

# The one table of expected md5 sums: dataset -> {archive file name: md5 of the whole file}.
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "cifar10": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    "cifar100": {"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
}

IDX_CLASSES = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
}

INPUT_SHAPES = {
    "mnist1d": (1, 40),
    "gratings": (3, 32, 32),
    "mnist": (1, 28, 28),
    "fashion_mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "cifar100": (3, 32, 32),
}

# Training samples of each prepared dataset (before train_fraction).
TRAIN_SIZES = {"mnist1d": 4000, "gratings": 300, "mnist": 60000, "fashion_mnist": 60000,
               "cifar10": 50000, "cifar100": 50000}
TEST_SIZES = {"mnist1d": 1000, "gratings": 100, "mnist": 10000, "fashion_mnist": 10000,
              "cifar10": 10000, "cifar100": 10000}

NUM_CLASSES = {"mnist1d": 10, "gratings": 10, "mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100}


ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")
ARRAY_SUFFIXES = (".npz", ".h5", ".hdf5")


@dataclass(frozen=True)
class DatasetInfo:
    """What the workflow needs of a dataset before any job runs: its ``name``, the shape of one
    sample ``input_shape``, ``num_classes``, ``n_train`` training and ``n_test`` test samples."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    n_train: int
    n_test: int


class DatasetDownloadError(RuntimeError):
    """An archive that could not be fetched from its URL (unreachable mirror, HTTP error)."""


@dataclass
class DatasetTensors:
    """A dataset in memory: ``x_*`` float32 (N, *input_shape), standardized per channel with the
    train-set statistics; ``y_*`` int64 (N,) class indices into ``classes``."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (1, 40) or (3, 32, 32)."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to(self, device: str | torch.device) -> DatasetTensors:
        """The same dataset with every tensor on ``device``."""
        return dataclasses.replace(
            self, x_train=self.x_train.to(device), y_train=self.y_train.to(device),
            x_test=self.x_test.to(device), y_test=self.y_test.to(device))


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")


def prepare_dataset(name: str, out_path: str | os.PathLike, *, download_dir: str | os.PathLike,
                    mirror: str | None = None, source: str | os.PathLike | None = None) -> None:
    """Write dataset ``name`` to the HDF5 file ``out_path`` (atomically).

    Datasets ``x_train, y_train, x_test, y_test`` (y int64); attributes ``name``, ``classes``,
    ``input_shape``, ``mean``, ``std`` (JSON lists, one entry per channel, in the units of the
    stored x: 0-255 pixel values for images), ``source`` and ``sha256`` (JSON: array name ->
    sha256 of its bytes, checked by ``load_dataset``). Archives are kept, verified, under
    ``download_dir/<name>/``; ``mirror`` replaces the official URL base (file names unchanged).
    ``source``: a dataset of your own (module docstring) stored under ``name`` instead.
    """
    if source is not None:
        arrays, classes = read_source(Path(source))
        images = Path(source).is_dir()
        mean, std = _channel_stats(arrays["x_train"]) if images else (
            [0.0] * arrays["x_train"].shape[1], [1.0] * arrays["x_train"].shape[1])
        io.write_h5(out_path, arrays, {
            "name": name, "classes": classes, "input_shape": list(arrays["x_train"].shape[1:]),
            "mean": mean, "std": std, "source": f"{source} ({'ImageFolder' if images else 'arrays'})",
            "sha256": {key: _sha256(array) for key, array in arrays.items()}})
        logger.info("wrote %s from %s: %d train / %d test samples", out_path, source,
                    len(arrays["y_train"]), len(arrays["y_test"]))
        return
    _check_name(name)
    if name == "mnist1d":
        arrays, classes, source = _generate_mnist1d()
    elif name == "gratings":
        arrays = generate_gratings(TRAIN_SIZES[name], TEST_SIZES[name])
        classes = [str(label) for label in range(NUM_CLASSES[name])]
        source = "generated by lossatlas.data.generate_gratings (seed 0)"
    else:
        url_base = mirror if mirror is not None else DEFAULT_URL_BASES[name]
        arrays, classes = _download_and_read(name, url_base, Path(download_dir) / name)
        source = f"{url_base} (md5-verified)"
    _check_arrays(name, arrays, len(classes))
    mean, std = _channel_stats(arrays["x_train"])
    io.write_h5(out_path, arrays, {"name": name, "classes": classes,
                                   "input_shape": list(INPUT_SHAPES[name]), "mean": mean,
                                   "std": std, "source": source,
                                   "sha256": {key: _sha256(array) for key, array in arrays.items()}})
    logger.info("wrote %s: %d train / %d test samples, per-channel mean %s std %s", out_path,
                len(arrays["y_train"]), len(arrays["y_test"]), mean, std)


def generate_gratings(n_train: int, n_test: int, seed: int = 0) -> dict[str, np.ndarray]:
    """CIFAR-shaped images of 10 classes, uint8 (N, 3, 32, 32), labels balanced and shuffled
    (int64). Class c is a sinusoidal grating of orientation c·18°, 2 + c % 3 cycles per image and
    a colour of its own; each image shifts its class's grating by a random phase, scales its
    contrast by U(0.5, 1) and adds Gaussian pixel noise (std 40 of 255), so classes overlap a
    little. A test stand-in for CIFAR-10 made offline: it exercises the image code paths, and its
    accuracies and landscapes describe these gratings only."""
    rng = np.random.default_rng(seed)
    classes = 10
    colours = rng.uniform(0.2, 1.0, size=(classes, 3))
    coordinates = np.stack(np.meshgrid(np.arange(32), np.arange(32), indexing="ij")) / 32.0

    def images(n):
        labels = rng.permutation(np.arange(n) % classes)
        angle = labels * math.pi / classes
        cycles = 2 + labels % 3
        along = (np.cos(angle)[:, None, None] * coordinates[0]
                 + np.sin(angle)[:, None, None] * coordinates[1])
        phase = rng.uniform(0, 2 * math.pi, size=(n, 1, 1))
        wave = np.sin(2 * math.pi * cycles[:, None, None] * along + phase)
        contrast = rng.uniform(0.5, 1.0, size=(n, 1, 1, 1))
        pixels = 127.5 + 127.5 * contrast * colours[labels][:, :, None, None] * wave[:, None]
        pixels += rng.normal(0.0, 40.0, size=pixels.shape)
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8), labels.astype(np.int64)

    x_train, y_train = images(n_train)
    x_test, y_test = images(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _generate_mnist1d() -> tuple[dict[str, np.ndarray], list[str], str]:
    """MNIST-1D from ``mnist1d.data.make_dataset`` with the package defaults (seed 42), never
    touching the network or a pickle cache; the global ``random``/``numpy`` RNG states it reseeds
    are restored afterwards."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        generated = make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    arrays = {
        "x_train": generated["x"].astype(np.float32)[:, None, :],
        "y_train": generated["y"].astype(np.int64),
        "x_test": generated["x_test"].astype(np.float32)[:, None, :],
        "y_test": generated["y_test"].astype(np.int64),
    }
    version = importlib.metadata.version("mnist1d")
    source = f"generated by mnist1d {version} make_dataset (default arguments, seed {args.seed})"
    return arrays, [str(digit) for digit in range(10)], source


def _download_and_read(name: str, url_base: str, archive_dir: Path
                       ) -> tuple[dict[str, np.ndarray], list[str]]:
    archives = {filename: _fetch(name, url_base, filename, md5, archive_dir)
                for filename, md5 in CHECKSUMS[name].items()}
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=archive_dir) as scratch:
        if name in IDX_CLASSES:
            return _read_idx(name, archives, Path(scratch)), IDX_CLASSES[name]
        return _read_cifar(name, next(iter(archives.values())), Path(scratch))


def _fetch(name: str, url_base: str, filename: str, md5: str, archive_dir: Path) -> Path:
    """Path of ``archive_dir/filename`` with md5 ``md5``, downloading it from ``url_base`` unless a
    verified copy is there. A failed or mismatching download is deleted before raising."""
    from torchvision.datasets.utils import calculate_md5, check_integrity, download_url

    path = archive_dir / filename
    if check_integrity(path, md5):
        logger.info("%s: using verified %s", name, path)
        return path
    path.unlink(missing_ok=True)
    url = f"{url_base.rstrip('/')}/{filename}"
    logger.info("%s: downloading %s", name, url)
    try:
        download_url(url, archive_dir, filename)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        path.unlink(missing_ok=True)
        raise DatasetDownloadError(f"dataset {name}: cannot download {url}: {exc}") from exc
    actual = calculate_md5(path)
    if actual != md5:
        path.unlink()
        raise io.CorruptFileError(
            f"dataset {name}: {filename} from {url} has md5 {actual}, expected {md5} (truncated or "
            f"wrong file); deleted it")
    return path


@contextlib.contextmanager
def _reading(name: str, archive: Path) -> Iterator[None]:
    """Turn any failure to extract or parse ``archive`` into a ``CorruptFileError`` naming it, and
    delete the archive so that a rerun downloads it again."""
    try:
        yield
    except Exception as exc:  # extraction and parsing raise many types for a damaged archive
        archive.unlink(missing_ok=True)
        raise io.CorruptFileError(
            f"dataset {name}: cannot read archive {archive} ({type(exc).__name__}: {exc}); "
            f"deleted it") from exc


def _read_idx(name: str, archives: dict[str, Path], scratch: Path) -> dict[str, np.ndarray]:
    """MNIST/Fashion-MNIST gzipped idx files -> uint8 images (N, 1, 28, 28), int64 labels (N,)."""
    from torchvision.datasets.mnist import read_image_file, read_label_file
    from torchvision.datasets.utils import extract_archive

    def read(filename: str, parse) -> np.ndarray:
        with _reading(name, archives[filename]):
            return parse(extract_archive(str(archives[filename]), str(scratch))).numpy()

    return {
        "x_train": read("train-images-idx3-ubyte.gz", read_image_file)[:, None],
        "y_train": read("train-labels-idx1-ubyte.gz", read_label_file),
        "x_test": read("t10k-images-idx3-ubyte.gz", read_image_file)[:, None],
        "y_test": read("t10k-labels-idx1-ubyte.gz", read_label_file),
    }


def _read_cifar(name: str, archive: Path, scratch: Path
                ) -> tuple[dict[str, np.ndarray], list[str]]:
    """CIFAR-10/100 python-pickle tarball -> uint8 images (N, 3, 32, 32), int64 labels (N,) and
    class names (CIFAR-100: the 100 fine labels). The tarball is extracted with tarfile's ``data``
    filter (no absolute paths, links out of ``scratch`` or device files), md5 check or not."""

    if name == "cifar10":
        folder, train_files, test_file = "cifar-10-batches-py", [
            f"data_batch_{i}" for i in range(1, 6)], "test_batch"
        meta_file, label_key, names_key = "batches.meta", "labels", "label_names"
    else:
        folder, train_files, test_file = "cifar-100-python", ["train"], "test"
        meta_file, label_key, names_key = "meta", "fine_labels", "fine_label_names"

    def unpickle(filename: str) -> dict:
        with open(scratch / folder / filename, "rb") as f:
            return pickle.load(f, encoding="latin1")

    def images_and_labels(filenames: list[str]) -> tuple[np.ndarray, np.ndarray]:
        batches = [unpickle(filename) for filename in filenames]
        images = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
        labels = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
        return images.reshape(-1, 3, 32, 32), labels

    with _reading(name, archive):
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(scratch, filter="data")
        x_train, y_train = images_and_labels(train_files)
        x_test, y_test = images_and_labels([test_file])
        classes = [str(c) for c in unpickle(meta_file)[names_key]]
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}, classes


def _check_arrays(name: str, arrays: dict[str, np.ndarray], num_classes: int) -> None:
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.shape[1:] != INPUT_SHAPES[name] or y.shape != (len(x),):
            raise io.CorruptFileError(
                f"dataset {name}: {split} images {x.shape} / labels {y.shape} do not match the "
                f"expected (N, {', '.join(map(str, INPUT_SHAPES[name]))}) / (N,)")
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise io.CorruptFileError(
                f"dataset {name}: {split} labels outside [0, {num_classes})")


def dataset_info(name: str, source: str | os.PathLike | None = None) -> DatasetInfo:
    """``DatasetInfo`` of built-in dataset ``name``, or of the dataset of your own at ``source``
    read without loading its inputs (array headers, the image folders' listing and first image),
    checking what the workflow relies on: the four arrays, samples of one shape in both splits,
    one integer label per sample in [0, number of classes). A failed check is a ``ValueError``
    naming ``source``."""
    if source is None:
        _check_name(name)
        return DatasetInfo(name, INPUT_SHAPES[name], NUM_CLASSES[name], TRAIN_SIZES[name],
                           TEST_SIZES[name])
    source = Path(source)
    if source.is_dir():
        train, test = _image_folders(source)
        first_path = train.samples[0][0]
        from PIL import Image

        with Image.open(first_path) as image:
            width, height = image.size
        return DatasetInfo(name, (3, height, width), len(train.classes), len(train.samples),
                           len(test.samples))
    shapes, labels, classes = _array_headers(source)
    _check_source_arrays(source, shapes, labels, classes)
    return DatasetInfo(name, shapes["x_train"][1:], len(classes), shapes["x_train"][0],
                       shapes["x_test"][0])


def _check_source_arrays(source: Path, shapes: dict, labels: dict, classes: list[str]) -> None:
    _check_classes(source, classes)
    x_train, x_test = shapes["x_train"], shapes["x_test"]
    if len(x_train) < 2 or x_train[1:] != x_test[1:]:
        raise ValueError(f"dataset {source}: x_train {x_train} and x_test {x_test} must be arrays "
                         "(N, ...) of samples of one shape")
    for split in ("train", "test"):
        y = labels[f"y_{split}"]
        if y.shape != (shapes[f"x_{split}"][0],) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"dataset {source}: y_{split} must hold one integer label per sample "
                             f"of x_{split} {shapes[f'x_{split}']}, got {y.dtype} {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise ValueError(f"dataset {source}: y_{split} has labels outside [0, {len(classes)}) "
                             f"for its {len(classes)} classes")


def _array_headers(source: Path) -> tuple[dict[str, tuple], dict[str, np.ndarray], list[str]]:
    """Shapes of the four arrays of an .npz/HDF5 dataset, its labels and class names."""
    if source.suffix not in ARRAY_SUFFIXES:
        raise ValueError(f"dataset {source}: not an {', '.join(ARRAY_SUFFIXES)} file or an "
                         "ImageFolder directory")
    if not source.exists():
        raise ValueError(f"dataset {source}: file not found")
    try:
        if source.suffix == ".npz":
            with np.load(source) as npz:
                names = {name.removesuffix(".npy") for name in npz.zip.namelist()}
                _require_arrays(source, names)
                shapes, dtypes = {}, {}
                for key in ("x_train", "x_test"):
                    with npz.zip.open(f"{key}.npy") as stream:
                        read_header = (np.lib.format.read_array_header_1_0
                                       if np.lib.format.read_magic(stream) == (1, 0)
                                       else np.lib.format.read_array_header_2_0)
                        shape, _, dtypes[key] = read_header(stream)
                        shapes[key] = tuple(shape)
                _require_numbers(source, dtypes)
                labels = {key: npz[key] for key in ("y_train", "y_test")}
                classes = npz["classes"].tolist() if "classes" in names else None
        else:
            with h5py.File(source, "r") as f:
                _require_arrays(source, set(f.keys()))
                shapes = {key: tuple(f[key].shape) for key in ("x_train", "x_test")}
                _require_numbers(source, {key: f[key].dtype for key in ("x_train", "x_test")})
                labels = {key: f[key][()] for key in ("y_train", "y_test")}
                classes = [c.decode() if isinstance(c, bytes) else c
                           for c in f["classes"][()].tolist()] if "classes" in f else None
    except (OSError, KeyError, ValueError) as exc:  # numpy's and h5py's errors for damaged files
        if isinstance(exc, ValueError) and str(exc).startswith(f"dataset {source}"):
            raise
        raise ValueError(f"dataset {source}: cannot read it ({type(exc).__name__}: {exc})") from exc
    if classes is None:
        top = max((int(y.max()) for y in labels.values() if len(y)), default=0)
        classes = [str(label) for label in range(top + 1)]
    return shapes, labels, [str(c) for c in classes]


def _require_numbers(source: Path, dtypes: dict[str, np.dtype]) -> None:
    for key, dtype in dtypes.items():
        if not np.issubdtype(dtype, np.number):
            raise ValueError(f"dataset {source}: {key} has dtype {dtype}; it must hold numbers "
                             "(an integer or float array, never objects, which are not read)")


def _check_classes(source: Path, classes: list[str]) -> None:
    if len(classes) < 2:
        raise ValueError(f"dataset {source}: {len(classes)} class ({', '.join(classes)}); a "
                         "classifier needs at least 2 (its loss would be 0 from the start)")


def _require_arrays(source: Path, names: set[str]) -> None:
    missing = [name for name in ARRAY_NAMES if name not in names]
    if missing:
        raise ValueError(f"dataset {source}: missing array(s) {', '.join(missing)}; it needs "
                         f"{', '.join(ARRAY_NAMES)}")


def _image_folders(source: Path):
    """torchvision ``ImageFolder``s of ``source/train`` and ``source/test`` (same classes)."""
    from torchvision.datasets import ImageFolder

    folders = []
    for split in ("train", "test"):
        try:
            folders.append(ImageFolder(str(source / split)))
        except (FileNotFoundError, OSError) as exc:
            raise ValueError(f"dataset {source}: {source / split} is not an ImageFolder "
                             f"(one folder of images per class): {exc}") from exc
    _check_classes(source, folders[0].classes)
    if folders[0].classes != folders[1].classes:
        raise ValueError(f"dataset {source}: train classes {folders[0].classes} differ from test "
                         f"classes {folders[1].classes}")
    return folders


def read_source(source: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The four arrays and class names of a dataset of your own (module docstring), checked."""
    if source.is_dir():
        train, test = _image_folders(source)
        arrays = {}
        for split, folder in (("train", train), ("test", test)):
            images = []
            for path, _ in folder.samples:
                image = np.asarray(folder.loader(path), dtype=np.uint8).transpose(2, 0, 1)
                if images and image.shape != images[0].shape:
                    raise ValueError(f"dataset {source}: {path} is {image.shape[2]}x"
                                     f"{image.shape[1]} pixels, the first image "
                                     f"{images[0].shape[2]}x{images[0].shape[1]}")
                images.append(image)
            arrays[f"x_{split}"] = np.stack(images)
            arrays[f"y_{split}"] = np.array(folder.targets, dtype=np.int64)
        if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
            raise ValueError(f"dataset {source}: train images {arrays['x_train'].shape[1:]} and "
                             f"test images {arrays['x_test'].shape[1:]} differ in size")
        return arrays, list(train.classes)
    shapes, labels, classes = _array_headers(source)
    _check_source_arrays(source, shapes, labels, classes)
    if source.suffix == ".npz":
        with np.load(source) as npz:
            x = {key: npz[key] for key in ("x_train", "x_test")}
    else:
        with h5py.File(source, "r") as f:
            x = {key: f[key][()] for key in ("x_train", "x_test")}
    for key, array in x.items():
        if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
            raise ValueError(f"dataset {source}: {key} must hold finite numbers")
    return {"x_train": x["x_train"], "y_train": labels["y_train"].astype(np.int64),
            "x_test": x["x_test"], "y_test": labels["y_test"].astype(np.int64)}, classes


def _sha256(array: np.ndarray) -> str:
    """sha256 hex digest of an array's bytes (C order)."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _channel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean and (population) std of each channel of x (N, C, ...), in float64, one channel at a
    time to bound memory."""
    means, stds = [], []
    for channel in range(x.shape[1]):
        values = x[:, channel].astype(np.float64)
        means.append(float(values.mean()))
        stds.append(float(values.std()))
    return means, stds


def load_dataset(path: str | os.PathLike, *, train_fraction: float = 1.0,
                 label_noise: float = 0.0, seed: int = 0,
                 device: str | torch.device = "cpu") -> DatasetTensors:
    """Read a file written by ``prepare_dataset`` as standardized float32 tensors.

    ``train_fraction`` in (0, 1] keeps round(fraction * N) training samples drawn at random (in
    their original order); ``label_noise`` in [0, 1) then gives exactly round(label_noise * n) of
    the n kept training labels a different class, uniform over the other classes. Both draws come
    from a ``torch.Generator`` seeded with ``seed``; the test set is never changed.
    """
    if not (isinstance(train_fraction, (int, float)) and 0 < train_fraction <= 1):
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction!r}")
    if not (isinstance(label_noise, (int, float)) and 0 <= label_noise < 1):
        raise ValueError(f"label_noise must be in [0, 1), got {label_noise!r}")
    arrays, attrs = _read_h5(Path(path))
    mean = torch.tensor(attrs["mean"], dtype=torch.float32)
    std = torch.tensor(attrs["std"], dtype=torch.float32)

    def standardize(x: np.ndarray) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return (torch.from_numpy(x).float() - mean.view(shape)) / std.view(shape)

    classes = attrs["classes"]
    x_train, y_train = standardize(arrays["x_train"]), torch.from_numpy(arrays["y_train"]).long()
    generator = torch.Generator().manual_seed(seed)
    n_keep = round(train_fraction * len(y_train))
    if n_keep < 1:
        raise ValueError(f"train_fraction={train_fraction} keeps no sample of {len(y_train)}")
    if n_keep < len(y_train):
        kept = torch.randperm(len(y_train), generator=generator)[:n_keep].sort().values
        x_train, y_train = x_train[kept], y_train[kept]
    n_noisy = round(label_noise * n_keep)
    if n_noisy:
        noisy = torch.randperm(n_keep, generator=generator)[:n_noisy]
        shift = torch.randint(1, len(classes), (n_noisy,), generator=generator)
        y_train = y_train.clone()
        y_train[noisy] = (y_train[noisy] + shift) % len(classes)
        logger.info("label noise: %d of %d training labels changed", n_noisy, n_keep)
    data = DatasetTensors(attrs["name"], x_train, y_train, standardize(arrays["x_test"]),
                          torch.from_numpy(arrays["y_test"]).long(), classes)
    return data.to(device)


def _read_h5(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    if not path.exists():
        raise FileNotFoundError(f"dataset file not found: {path} (run prepare_dataset first)")
    try:
        with h5py.File(path, "r") as f:
            arrays = {key: f[key][()] for key in ("x_train", "y_train", "x_test", "y_test")}
            attrs = {"name": str(f.attrs["name"]),
                     **{key: json.loads(f.attrs[key]) for key in ("classes", "mean", "std")}}
            checksums = json.loads(f.attrs["sha256"]) if "sha256" in f.attrs else None
    except (OSError, RuntimeError, KeyError, ValueError) as exc:  # h5py's errors for damaged files
        raise io.CorruptFileError(f"cannot read dataset file {path}: {exc}") from exc
    if checksums is None:
        raise io.CorruptFileError(f"dataset file {path} has no array checksums (written before "
                                  "they were stored); delete it and rerun to prepare it again")
    for key, array in arrays.items():
        if _sha256(array) != checksums.get(key):
            raise io.CorruptFileError(f"dataset file {path}: array {key} does not match its "
                                      "sha256 (damaged file); delete it and rerun")
    if not all(math.isfinite(s) and s > 0 for s in attrs["std"]):
        raise io.CorruptFileError(f"dataset file {path} has a non-positive std {attrs['std']}")
    for key in ("x_train", "x_test"):
        if not np.isfinite(arrays[key]).all():
            raise io.CorruptFileError(f"dataset file {path}: array {key} has non-finite values")
    for key in ("y_train", "y_test"):
        if len(arrays[key]) and not 0 <= arrays[key].min() <= arrays[key].max() < len(attrs["classes"]):
            raise io.CorruptFileError(f"dataset file {path}: array {key} has labels outside "
                                      f"[0, {len(attrs['classes'])})")
    return arrays, attrs
