"""Datasets: MNIST-1D generation and loading, and the download path against a loopback mirror
serving small archives in the real MNIST idx / CIFAR-10 pickle formats."""

import functools
import gzip
import hashlib
import http.server
import io as stdio
import json
import math
import pickle
import socket
import struct
import tarfile
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from lossatlas import data
from lossatlas.io import CorruptFileError


def read_h5(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}, dict(f.attrs)


@pytest.fixture(scope="module")
def mnist1d_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("mnist1d") / "mnist1d.h5"
    data.prepare_dataset("mnist1d", path, download_dir=path.parent / "downloads")
    return path


def test_mnist1d_prepared_arrays(mnist1d_path, tmp_path, monkeypatch):
    arrays, attrs = read_h5(mnist1d_path)
    assert arrays["x_train"].shape == (4000, 1, 40) and arrays["x_train"].dtype == np.float32
    assert arrays["x_test"].shape == (1000, 1, 40) and arrays["x_test"].dtype == np.float32
    assert arrays["y_train"].dtype == np.int64 and arrays["y_test"].shape == (1000,)
    assert sorted(set(arrays["y_train"].tolist())) == list(range(10))
    assert attrs["name"] == "mnist1d"
    assert json.loads(attrs["classes"]) == [str(i) for i in range(10)]
    assert json.loads(attrs["input_shape"]) == [1, 40]
    assert json.loads(attrs["mean"]) == pytest.approx([arrays["x_train"].astype(np.float64).mean()])
    assert json.loads(attrs["std"]) == pytest.approx([arrays["x_train"].astype(np.float64).std()])
    # a second generation, from another working directory, is identical and leaves no cache file
    monkeypatch.chdir(tmp_path)
    again = tmp_path / "again.h5"
    data.prepare_dataset("mnist1d", again, download_dir=tmp_path / "downloads")
    arrays_again, attrs_again = read_h5(again)
    assert all(np.array_equal(arrays[k], arrays_again[k]) for k in arrays)
    assert attrs == attrs_again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.h5", "again.h5.sha256"]


def test_gratings_are_cifar_shaped_balanced_and_reproducible(tmp_path):
    path = tmp_path / "gratings.h5"
    data.prepare_dataset("gratings", path, download_dir=tmp_path / "downloads")
    arrays, attrs = read_h5(path)
    assert arrays["x_train"].shape == (300, 3, 32, 32) and arrays["x_train"].dtype == np.uint8
    assert arrays["x_test"].shape == (100, 3, 32, 32) and arrays["y_test"].dtype == np.int64
    assert np.bincount(arrays["y_train"]).tolist() == [30] * 10
    assert np.bincount(arrays["y_test"]).tolist() == [10] * 10
    assert json.loads(attrs["input_shape"]) == [3, 32, 32]
    assert "generate_gratings" in attrs["source"]
    again = data.generate_gratings(300, 100)
    assert all(np.array_equal(arrays[k], again[k]) for k in again)
    assert not np.array_equal(data.generate_gratings(300, 100, seed=1)["x_train"],
                              arrays["x_train"])
    assert data.dataset_info("gratings") == data.DatasetInfo("gratings", (3, 32, 32), 10, 300, 100)
    loaded = data.load_dataset(path)
    assert loaded.x_train.shape == (300, 3, 32, 32) and loaded.x_train.dtype == torch.float32


def test_mnist1d_generation_restores_global_rng():
    np.random.seed(7)
    expected = np.random.rand(3)
    np.random.seed(7)
    data._generate_mnist1d()
    assert np.array_equal(np.random.rand(3), expected)


def test_load_standardizes_per_channel(mnist1d_path):
    d = data.load_dataset(mnist1d_path)
    assert d.name == "mnist1d" and d.input_shape == (1, 40) and d.num_classes == 10
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.x_train.shape == (4000, 1, 40) and d.x_test.shape == (1000, 1, 40)
    x = d.x_train.double()
    assert abs(x.mean().item()) < 1e-5 and abs(x.std(unbiased=False).item() - 1) < 1e-5
    moved = d.to("meta")
    assert moved.x_train.device.type == "meta" and moved.y_test.device.type == "meta"
    assert d.x_train.device.type == "cpu"


def test_train_fraction_is_exact_seeded_subset(mnist1d_path):
    full = data.load_dataset(mnist1d_path)
    rows = {x.numpy().tobytes(): int(y) for x, y in zip(full.x_train, full.y_train)}
    sub = data.load_dataset(mnist1d_path, train_fraction=0.25, seed=3)
    assert len(sub.y_train) == len(sub.x_train) == 1000
    assert all(rows[x.numpy().tobytes()] == int(y) for x, y in zip(sub.x_train, sub.y_train))
    assert torch.equal(sub.x_test, full.x_test) and torch.equal(sub.y_test, full.y_test)
    same = data.load_dataset(mnist1d_path, train_fraction=0.25, seed=3)
    other = data.load_dataset(mnist1d_path, train_fraction=0.25, seed=4)
    assert torch.equal(same.x_train, sub.x_train) and torch.equal(same.y_train, sub.y_train)
    assert not torch.equal(other.x_train, sub.x_train)


@pytest.mark.parametrize("fraction, noise, expected_wrong", [(1.0, 0.1, 400), (0.5, 0.25, 500),
                                                             (1.0, 0.0, 0)])
def test_label_noise_changes_exactly_that_many_labels(mnist1d_path, fraction, noise,
                                                      expected_wrong):
    clean = data.load_dataset(mnist1d_path, train_fraction=fraction, seed=5)
    noisy = data.load_dataset(mnist1d_path, train_fraction=fraction, label_noise=noise, seed=5)
    assert torch.equal(noisy.x_train, clean.x_train)
    assert int((noisy.y_train != clean.y_train).sum()) == expected_wrong
    assert noisy.y_train.min() >= 0 and noisy.y_train.max() < 10
    assert torch.equal(noisy.y_test, clean.y_test)
    again = data.load_dataset(mnist1d_path, train_fraction=fraction, label_noise=noise, seed=5)
    assert torch.equal(again.y_train, noisy.y_train)


def test_label_noise_depends_on_seed(mnist1d_path):
    a = data.load_dataset(mnist1d_path, label_noise=0.1, seed=0).y_train
    b = data.load_dataset(mnist1d_path, label_noise=0.1, seed=1).y_train
    assert not torch.equal(a, b)


@pytest.mark.parametrize("kwargs, culprit", [
    ({"train_fraction": 0.0}, "train_fraction"), ({"train_fraction": 1.5}, "train_fraction"),
    ({"train_fraction": math.nan}, "train_fraction"), ({"train_fraction": 1e-5}, "train_fraction"),
    ({"label_noise": -0.1}, "label_noise"), ({"label_noise": 1.0}, "label_noise"),
])
def test_load_rejects_bad_arguments(mnist1d_path, kwargs, culprit):
    with pytest.raises(ValueError, match=culprit):
        data.load_dataset(mnist1d_path, **kwargs)


def test_unknown_name_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match="svhn.*mnist1d, gratings, mnist, fashion_mnist, cifar10, cifar100"):
        data.prepare_dataset("svhn", tmp_path / "x.h5", download_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        data.load_dataset(tmp_path / "missing.h5")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file")
    with pytest.raises(CorruptFileError, match="garbage.h5"):
        data.load_dataset(garbage)


def test_random_bytes_in_training_array_are_detected(mnist1d_path, tmp_path):
    damaged = tmp_path / "mnist1d.h5"
    damaged.write_bytes(mnist1d_path.read_bytes())
    with h5py.File(damaged, "r") as f:
        offset = f["x_train"].id.get_offset() + 4 * 1000
    with open(damaged, "r+b") as stream:
        stream.seek(offset)
        stream.write(np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8).tobytes())
    with pytest.raises(CorruptFileError, match=r"mnist1d\.h5: array x_train does not match its sha256"):
        data.load_dataset(damaged)


def test_dataset_without_checksums_or_with_non_finite_values_is_refused(mnist1d_path, tmp_path):
    legacy = tmp_path / "legacy.h5"
    legacy.write_bytes(mnist1d_path.read_bytes())
    with h5py.File(legacy, "r+") as f:
        del f.attrs["sha256"]
    with pytest.raises(CorruptFileError, match="legacy.h5 has no array checksums.*delete it"):
        data.load_dataset(legacy)
    arrays, attrs = read_h5(mnist1d_path)
    arrays["x_test"][3, 0, 7] = np.nan
    attrs["sha256"] = json.dumps({k: data._sha256(v) for k, v in arrays.items()})
    nonfinite = tmp_path / "nonfinite.h5"
    with h5py.File(nonfinite, "w") as f:
        for key, value in arrays.items():
            f[key] = value
        f.attrs.update(attrs)
    with pytest.raises(CorruptFileError, match="nonfinite.h5: array x_test has non-finite"):
        data.load_dataset(nonfinite)


# --- download path: small archives in the real formats, served on 127.0.0.1 -------------------

def gzip_idx(array: np.ndarray) -> bytes:
    """An idx-ubyte file (big-endian header: magic 0x08 0x<ndim>, then each dimension), gzipped."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def cifar10_tarball(batches, test, label_names) -> bytes:
    """``cifar-10-python.tar.gz`` with the real layout: ``cifar-10-batches-py/data_batch_1..5``,
    ``test_batch`` and ``batches.meta`` pickles; images as rows of 3072 uint8 (R, G, B planes)."""
    members = {f"data_batch_{i + 1}": b for i, b in enumerate(batches)} | {"test_batch": test}
    members = {name: {"data": x.reshape(len(x), -1), "labels": y.tolist()}
               for name, (x, y) in members.items()}
    members["batches.meta"] = {"label_names": label_names, "num_vis": 3072}
    buffer = stdio.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            payload = pickle.dumps(content, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, stdio.BytesIO(payload))
    return buffer.getvalue()


def md5(payload: bytes) -> str:
    return hashlib.md5(payload).hexdigest()


@pytest.fixture(scope="module")
def small_archives():
    rng = np.random.default_rng(0)
    mnist = {"x_train": rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
             "y_train": rng.integers(0, 10, 64), "x_test": rng.integers(0, 256, (16, 28, 28),
                                                                        dtype=np.uint8),
             "y_test": rng.integers(0, 10, 16)}
    mnist_files = {"train-images-idx3-ubyte.gz": gzip_idx(mnist["x_train"]),
                   "train-labels-idx1-ubyte.gz": gzip_idx(mnist["y_train"]),
                   "t10k-images-idx3-ubyte.gz": gzip_idx(mnist["x_test"]),
                   "t10k-labels-idx1-ubyte.gz": gzip_idx(mnist["y_test"])}
    batches = [(rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 8))
               for _ in range(5)]
    test = (rng.integers(0, 256, (12, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 12))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    cifar = {"x_train": np.concatenate([x for x, _ in batches]),
             "y_train": np.concatenate([y for _, y in batches]), "x_test": test[0],
             "y_test": test[1], "classes": names}
    cifar_file = cifar10_tarball(batches, test, names)
    return {"mnist": (mnist, mnist_files), "cifar10": (cifar, {"cifar-10-python.tar.gz":
                                                                cifar_file})}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def mirror(tmp_path):
    """A static file server on 127.0.0.1 (random free port) serving ``tmp_path/served``; yields
    (serve_dir, url, requested paths)."""
    served = tmp_path / "served"
    served.mkdir()
    requests = []
    handler = type("Handler", (QuietHandler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}/", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def serve(served: Path, subdir: str, files: dict[str, bytes]) -> None:
    (served / subdir).mkdir()
    for name, payload in files.items():
        (served / subdir / name).write_bytes(payload)


def test_mnist_download_parse_and_reuse(small_archives, mirror, tmp_path, monkeypatch):
    served, url, requests = mirror
    expected, files = small_archives["mnist"]
    serve(served, "mnist", files)
    monkeypatch.setitem(data.CHECKSUMS, "mnist", {name: md5(p) for name, p in files.items()})
    out, downloads = tmp_path / "mnist.h5", tmp_path / "downloads"
    data.prepare_dataset("mnist", out, download_dir=downloads, mirror=url + "mnist")
    arrays, attrs = read_h5(out)
    assert arrays["x_train"].dtype == np.uint8 and arrays["x_train"].shape == (64, 1, 28, 28)
    assert np.array_equal(arrays["x_train"][:, 0], expected["x_train"])
    assert np.array_equal(arrays["x_test"][:, 0], expected["x_test"])
    assert np.array_equal(arrays["y_train"], expected["y_train"])
    assert np.array_equal(arrays["y_test"], expected["y_test"])
    assert json.loads(attrs["input_shape"]) == [1, 28, 28]
    assert json.loads(attrs["mean"]) == pytest.approx([expected["x_train"].mean()])
    assert url in attrs["source"]
    assert set(requests) == {f"/mnist/{name}" for name in files}
    requests_before = len(requests)
    assert sorted(p.name for p in (downloads / "mnist").iterdir()) == sorted(files)
    # verified archives are reused: a second prepare makes no request
    data.prepare_dataset("mnist", tmp_path / "again.h5", download_dir=downloads,
                         mirror=url + "mnist")
    assert len(requests) == requests_before
    loaded = data.load_dataset(out)
    assert loaded.input_shape == (1, 28, 28) and loaded.classes == [str(i) for i in range(10)]
    pixels = (expected["x_train"].astype(np.float64) - expected["x_train"].mean()) \
        / expected["x_train"].std()
    assert np.allclose(loaded.x_train[:, 0].numpy(), pixels, atol=1e-5)


def test_cifar10_download_parse(small_archives, mirror, tmp_path, monkeypatch):
    served, url, _ = mirror
    expected, files = small_archives["cifar10"]
    serve(served, "cifar", files)
    monkeypatch.setitem(data.CHECKSUMS, "cifar10", {n: md5(p) for n, p in files.items()})
    out = tmp_path / "cifar10.h5"
    data.prepare_dataset("cifar10", out, download_dir=tmp_path / "downloads", mirror=url + "cifar/")
    arrays, attrs = read_h5(out)
    assert arrays["x_train"].dtype == np.uint8 and arrays["x_train"].shape == (40, 3, 32, 32)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(arrays[key], expected[key]), key
    assert json.loads(attrs["classes"]) == expected["classes"]
    channel_means = expected["x_train"].astype(np.float64).mean(axis=(0, 2, 3))
    assert json.loads(attrs["mean"]) == pytest.approx(channel_means.tolist())
    assert [p.name for p in (tmp_path / "downloads" / "cifar10").iterdir()] == [
        "cifar-10-python.tar.gz"]  # the extraction scratch directory is gone


def assert_no_output_and_no_archive(tmp_path, out):
    assert not out.exists()
    assert list(out.parent.glob("*.h5*")) == []
    assert list((tmp_path / "downloads" / "cifar10").iterdir()) == []


@pytest.mark.parametrize("served_bytes", ["full", "truncated"])
def test_checksum_mismatch_fails_cleanly(small_archives, mirror, tmp_path, monkeypatch,
                                         served_bytes):
    served, url, _ = mirror
    _, files = small_archives["cifar10"]
    payload = files["cifar-10-python.tar.gz"]
    serve(served, "cifar", {"cifar-10-python.tar.gz": payload if served_bytes == "full"
                            else payload[: len(payload) // 2]})
    expected_md5 = "0" * 32 if served_bytes == "full" else md5(payload)
    monkeypatch.setitem(data.CHECKSUMS, "cifar10", {"cifar-10-python.tar.gz": expected_md5})
    out = tmp_path / "out" / "cifar10.h5"
    with pytest.raises(CorruptFileError, match=rf"cifar10.*cifar-10-python\.tar\.gz.*{url}cifar"
                                               rf".*expected {expected_md5}"):
        data.prepare_dataset("cifar10", out, download_dir=tmp_path / "downloads",
                             mirror=url + "cifar")
    assert_no_output_and_no_archive(tmp_path, out)


def test_truncated_archive_with_matching_checksum_fails_cleanly(small_archives, mirror, tmp_path,
                                                                 monkeypatch):
    served, url, _ = mirror
    _, files = small_archives["cifar10"]
    truncated = files["cifar-10-python.tar.gz"][:-300]
    serve(served, "cifar", {"cifar-10-python.tar.gz": truncated})
    monkeypatch.setitem(data.CHECKSUMS, "cifar10", {"cifar-10-python.tar.gz": md5(truncated)})
    out = tmp_path / "out" / "cifar10.h5"
    with pytest.raises(CorruptFileError, match=r"cifar10: cannot read archive .*cifar-10-python"):
        data.prepare_dataset("cifar10", out, download_dir=tmp_path / "downloads",
                             mirror=url + "cifar")
    assert_no_output_and_no_archive(tmp_path, out)


def test_archive_member_outside_the_extraction_folder_is_refused(mirror, tmp_path, monkeypatch):
    served, url, _ = mirror
    buffer = stdio.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 4
        tar.addfile(info, stdio.BytesIO(b"evil"))
    serve(served, "cifar", {"cifar-10-python.tar.gz": buffer.getvalue()})
    monkeypatch.setitem(data.CHECKSUMS, "cifar10", {"cifar-10-python.tar.gz":
                                                    md5(buffer.getvalue())})
    out = tmp_path / "out" / "cifar10.h5"
    with pytest.raises(CorruptFileError, match="OutsideDestinationError"):
        data.prepare_dataset("cifar10", out, download_dir=tmp_path / "downloads",
                             mirror=url + "cifar")
    assert not (tmp_path / "downloads" / "escaped").exists()
    assert_no_output_and_no_archive(tmp_path, out)


def test_default_urls_use_https():
    assert all(base.startswith("https://") for base in data.DEFAULT_URL_BASES.values())


def test_unreachable_mirror_and_missing_file(mirror, tmp_path):
    _, url, _ = mirror
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    dead = f"http://127.0.0.1:{closed_port}/"
    out = tmp_path / "out" / "cifar10.h5"
    for base in (dead, url + "nowhere/"):
        with pytest.raises(data.DatasetDownloadError,
                           match=rf"dataset cifar10: cannot download {base}cifar-10-python"):
            data.prepare_dataset("cifar10", out, download_dir=tmp_path / "downloads", mirror=base)
        assert_no_output_and_no_archive(tmp_path, out)


def test_checksum_table_matches_torchvision():
    from torchvision.datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST

    assert data.CHECKSUMS["mnist"] == dict(MNIST.resources)
    assert data.CHECKSUMS["fashion_mnist"] == dict(FashionMNIST.resources)
    assert data.CHECKSUMS["cifar10"] == {CIFAR10.filename: CIFAR10.tgz_md5}
    assert data.CHECKSUMS["cifar100"] == {CIFAR100.filename: CIFAR100.tgz_md5}
