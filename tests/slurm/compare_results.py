"""Compare the results/ folders of two runs of the workflow: checkpoints bit for bit, JSON and HDF5
exactly, CSV tables exactly; timing values (names with ``seconds`` or ``time``, or ending in
``_s``) are left out, and so are the checksum sidecars (``NAME.sha256``: every read here verifies
its file against its own, and a file with timing values has a different one). Usage: python compare_results.py LOCAL_DIR CLUSTER_DIR [SUBFOLDER ...]."""

import re
import sys
from pathlib import Path

import numpy as np
import torch

from lossatlas import io

TIMING = re.compile(r"seconds|time|_s$")


def same_object(a, b) -> bool:
    """Equality of loaded checkpoints: tensors bit for bit, containers element by element."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_object(a[k], b[k])
                                                                    for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same_object, a, b))
    return a == b or (a != a and b != b)  # NaN == NaN here


def without_timing(mapping: dict) -> dict:
    return {k: v for k, v in mapping.items() if not TIMING.search(k)}


def same_file(a: Path, b: Path) -> bool:
    if a.suffix == io.CHECKSUM_SUFFIX:
        return True
    if a.suffix == ".pt":
        return same_object(io.load_torch(a), io.load_torch(b))
    if a.suffix == ".json":
        return io.read_json(a) == io.read_json(b)
    if a.suffix == ".csv":
        tables = [io.read_csv(path) for path in (a, b)]
        tables = [t.drop(columns=[c for c in t.columns if TIMING.search(c)]) for t in tables]
        return tables[0].equals(tables[1])
    if a.suffix == ".h5":
        (arrays_a, attrs_a), (arrays_b, attrs_b) = io.read_h5(a), io.read_h5(b)
        arrays_a, arrays_b = without_timing(arrays_a), without_timing(arrays_b)
        return (arrays_a.keys() == arrays_b.keys()
                and all(np.array_equal(arrays_a[k], arrays_b[k], equal_nan=True) for k in arrays_a)
                and same_object(without_timing(attrs_a), without_timing(attrs_b)))
    return a.read_bytes() == b.read_bytes()


def main(local: Path, cluster: Path, subfolders: list[str]) -> int:
    compared, differing = 0, []
    for subfolder in subfolders:
        files_local = {p.relative_to(local) for p in (local / subfolder).rglob("*") if p.is_file()}
        files_cluster = {p.relative_to(cluster) for p in (cluster / subfolder).rglob("*")
                         if p.is_file()}
        differing += [f"only in {local}: {p}" for p in sorted(files_local - files_cluster)]
        differing += [f"only in {cluster}: {p}" for p in sorted(files_cluster - files_local)]
        for path in sorted(files_local & files_cluster):
            compared += 1
            if not same_file(local / path, cluster / path):
                differing.append(f"differs: {path}")
    print(f"compared {compared} files under {', '.join(subfolders)}: {len(differing)} differ")
    for line in differing:
        print(f"  {line}")
    return 1 if differing or not compared else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:] or ["results"]))
