"""File formats in one place: atomic writes, checkpoints (state dicts), HDF5 and CSV outputs.

Every writer goes through ``atomic_path``: the data is written to a temporary file next to the
target and renamed over it, so a crash never leaves a half-written output (and the temporary file a
killed writer leaves behind is removed by the next write of the same target). A failed write
(full disk, read-only folder) raises ``OSError`` naming the target and the errno. torch, h5py and
pandas are imported by the functions that use them, so a job that only reads tables and draws
figures does not pay for torch.

Integrity: every file written here gets a sidecar ``NAME.sha256`` (the SHA-256 of its bytes, in
``sha256sum`` format, so ``sha256sum -c NAME.sha256`` checks it too), written atomically after the
file itself; every reader here verifies it before parsing, and a missing or mismatching sidecar is
a ``CorruptFileError`` naming the file and what to do. Files of your own (checkpoints given in the
config, ``api`` arguments) have no sidecar and are read with ``verify=False``.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import glob
import hashlib
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import torch


class CorruptFileError(RuntimeError):
    """A checkpoint, archive or data file that exists but cannot be read (or fails its checksum)."""


CHECKSUM_SUFFIX = ".sha256"


def checksum_path(path: str | os.PathLike) -> Path:
    """The sidecar ``NAME.sha256`` that holds the SHA-256 of file ``path``."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of the bytes of file ``path``, as 64 hex digits (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: str | os.PathLike) -> None:
    """Stop with a ``CorruptFileError`` naming ``path`` unless its bytes match its sidecar
    ``NAME.sha256`` (written by ``atomic_path``). A file without a sidecar was written before
    lossatlas kept checksums, or its writer was killed between the file and its sidecar."""
    path = Path(path)
    sidecar = checksum_path(path)
    remedy = f"delete {path} and rerun snakemake: the rule that writes it runs again"
    if not sidecar.is_file():
        raise CorruptFileError(
            f"{path} has no checksum file {sidecar.name} (it was written before lossatlas kept "
            f"checksums, or its writer was killed before finishing); {remedy}")
    recorded = sidecar.read_text().split()
    if not recorded or recorded[0] != file_sha256(path):
        raise CorruptFileError(
            f"{path} does not match its checksum in {sidecar.name} (the file was damaged or "
            f"changed after it was written); {remedy}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path`` and write its
    sidecar ``NAME.sha256`` (``checksum_path``), on error delete it. The old sidecar is removed
    before the rename and the new one renamed into place after it, so a kill in between leaves a
    file without a sidecar (an error on read), never a file with a wrong one. A ``path`` that
    exists as something other than a regular file (a device such as /dev/null, a folder) is
    refused: the rename would replace it. Temporary files of ``path`` left by a killed writer
    (``.NAME.*.tmp``, its sidecar's included) are removed first: one job owns each output, so none
    of them is being written. An ``OSError`` of the write or rename is raised again naming
    ``path``."""
    target = Path(path)
    if target.exists() and not target.is_file():
        raise OSError(errno.EEXIST, f"cannot write {target}: it exists and is not a regular file "
                                    "(renaming onto it would replace it)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _naming(exc, target) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    sidecar = checksum_path(target)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~umask)
        digest = file_sha256(tmp_path)
        sidecar.unlink(missing_ok=True)
        os.replace(tmp_path, target)
        _write_sidecar(sidecar, f"{digest}  {target.name}\n", umask)
    except OSError as exc:
        raise _naming(exc, target) from exc
    finally:
        tmp_path.unlink(missing_ok=True)


def _naming(exc: OSError, target: Path) -> OSError:
    """``exc`` as an ``OSError`` naming ``target`` (not its temporary file) and the errno."""
    code = errno.errorcode.get(exc.errno, "unknown errno") if exc.errno else "no errno"
    return OSError(exc.errno, f"cannot write {target} ({code}: {exc.strerror or exc})")


def write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Atomically write ``data`` (e.g. a rendered figure) to ``path``, flushed and fsynced, so a
    full disk raises ``OSError`` (ENOSPC) naming ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def _write_sidecar(sidecar: Path, text: str, umask: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{sidecar.name}.", suffix=".tmp", dir=sidecar.parent)
    try:
        with os.fdopen(fd, "w") as stream:
            stream.write(text)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, sidecar)
    finally:
        Path(tmp).unlink(missing_ok=True)


def save_torch(obj: object, path: str | os.PathLike) -> None:
    """Atomically ``torch.save`` an object made of tensors, numbers, strings, lists and dicts. The
    data goes through a Python file object (flushed and fsynced), so a full disk raises
    ``OSError`` (ENOSPC) naming ``path`` rather than torch's unnamed stream error."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        torch.save(obj, stream)
        stream.flush()
        os.fsync(stream.fileno())


def load_torch(path: str | os.PathLike, map_location: str | torch.device = "cpu", *,
               verify: bool = True) -> object:
    """``torch.load`` with ``weights_only=True`` of a file checked against its sidecar checksum
    (``verify_checksum``; ``verify=False`` for a file of your own, which has none); a missing,
    damaged or unreadable file raises an error naming it."""
    import torch

    path = _existing(path, "checkpoint")
    if verify:
        verify_checksum(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CorruptFileError(f"cannot read checkpoint {path}: {exc}") from exc


def remove_file(path: str | os.PathLike) -> None:
    """Delete file ``path`` and its sidecar checksum (``checksum_path``), either of them missing
    or not (e.g. a training job's resume file once the job has written its results)."""
    Path(path).unlink(missing_ok=True)
    checksum_path(path).unlink(missing_ok=True)


def load_resume(path: str | os.PathLike) -> dict:
    """The state a training job saved in its resume file ``path`` (a dict), or ``{}`` when the
    file is damaged or has no checksum: the damage is logged, the file deleted and the run starts
    afresh (its end result is the same, only later)."""
    try:
        return load_torch(path)
    except CorruptFileError as exc:
        logging.warning("discarding the resume file, training starts afresh: %s", exc)
        Path(path).unlink(missing_ok=True)
        return {}


def save_state_dict(state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Save a model state dict (tensors moved to CPU) atomically."""
    save_torch({k: v.detach().cpu() for k, v in state.items()}, path)


def load_state_dict(path: str | os.PathLike, *, verify: bool = True) -> dict[str, torch.Tensor]:
    """Load a model state dict saved by ``save_state_dict`` (``verify``: as ``load_torch``)."""
    import torch

    state = load_torch(path, verify=verify)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CorruptFileError(f"{path} is not a state dict of tensors")
    return state


def _attr_value(value: object) -> object:
    if value is None:
        return "none"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return value


def write_h5(path: str | os.PathLike, arrays: Mapping[str, np.ndarray | torch.Tensor],
             attrs: Mapping[str, object]) -> None:
    """Atomically write arrays as datasets (a name ``group/name`` inside that group) and ``attrs``
    as file attributes (dicts and lists as JSON strings, ``None`` as ``"none"``); torch tensors are
    written as their numpy arrays."""
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, array in arrays.items():
                if hasattr(array, "detach"):
                    array = array.detach().cpu().numpy()
                f.create_dataset(name, data=array)
            for key, value in attrs.items():
                f.attrs[key] = _attr_value(value)


def write_surface_vts(path: str | os.PathLike, arrays: Mapping[str, np.ndarray],
                      height: str = "train_loss") -> None:
    """Atomically write a 2D surface as a VTK structured grid (``.vts``, opened by ParaView) through
    pyevtk. ``arrays``: ``xcoordinates`` ``(nx,)``, ``ycoordinates`` ``(ny,)`` and metrics ``(ny,
    nx)`` indexed ``[iy, ix]`` (``landscape.ORIENTATION_2D``); grid node (ix, iy) lies at
    (xcoordinates[ix], ycoordinates[iy], ``height``[iy, ix]) and carries every metric of that shape
    as point data, so the 3D surface tomgoldstein/loss-landscape renders from its ``.vtp`` files is
    drawn and can be coloured by any metric."""
    from pyevtk.hl import gridToVTK

    target = Path(path)
    if target.suffix != ".vts":
        raise ValueError(f"a VTK structured grid file must end in .vts, got {target}")
    xs = np.asarray(arrays["xcoordinates"], dtype=np.float64)
    ys = np.asarray(arrays["ycoordinates"], dtype=np.float64)
    metrics = {name: np.ascontiguousarray(np.asarray(values, dtype=np.float64).T[:, :, None])
               for name, values in arrays.items() if np.shape(values) == (ys.size, xs.size)}
    if height not in metrics:
        raise ValueError(f"height {height!r} is not a 2D metric of shape {(ys.size, xs.size)} "
                         f"(len(ycoordinates), len(xcoordinates)); 2D metrics: {sorted(metrics)}")
    grid_x, grid_y = (np.ascontiguousarray(g.T[:, :, None]) for g in np.meshgrid(xs, ys))
    with atomic_path(target) as tmp:
        written = gridToVTK(str(tmp), grid_x, grid_y, metrics[height].copy(), pointData=metrics)
        os.replace(written, tmp)


def write_csv(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Atomically write a tidy table as CSV."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def write_rows(rows: Sequence[Mapping[str, object]], path: str | os.PathLike) -> None:
    """Atomically write rows with the same keys as CSV (columns in the first row's order) without
    pandas; floats are written with ``repr`` precision (NaN as ``nan``)."""
    columns = list(rows[0])
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(columns)
            writer.writerows([_csv_value(row[key]) for key in columns] for row in rows)


def _csv_value(value: object) -> object:
    return repr(float(value)) if isinstance(value, float) else value


def write_json(obj: object, path: str | os.PathLike) -> None:
    """Atomically write strict JSON: non-finite floats (NaN, ±inf) become ``null``."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite_or_none(obj), indent=2, sort_keys=True,
                                  allow_nan=False) + "\n")


def _finite_or_none(obj: object) -> object:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: _finite_or_none(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(value) for value in obj]
    return obj


def read_h5(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """All datasets (those in groups by their path, ``group/name``) and file attributes of an
    HDF5 file written by ``write_h5`` (JSON attributes stay strings), checked against its sidecar
    checksum; a damaged or unreadable file raises ``CorruptFileError`` naming it."""
    import h5py

    path = _existing(path, "HDF5 file")
    verify_checksum(path)
    try:
        with h5py.File(path, "r") as f:
            arrays = {}
            f.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                         if isinstance(item, h5py.Dataset) else None)
            attrs = {key: (value.decode() if isinstance(value, bytes) else value)
                     for key, value in f.attrs.items()}
    except (OSError, RuntimeError, KeyError, ValueError) as exc:  # h5py's errors for damaged files
        raise CorruptFileError(f"cannot read HDF5 file {path}: {exc}") from exc
    return arrays, attrs


def read_csv(path: str | os.PathLike, **options: object) -> pd.DataFrame:
    """A table written by ``write_csv`` or ``write_rows``, checked against its sidecar checksum,
    read by ``pandas.read_csv`` with ``options``."""
    import pandas as pd

    verify_checksum(_existing(path, "table"))
    return pd.read_csv(path, **options)


def read_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a CSV table written here, checked against its sidecar checksum, as dicts of
    strings (``csv.DictReader``; no pandas)."""
    verify_checksum(_existing(path, "table"))
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def read_json(path: str | os.PathLike) -> object:
    """A JSON file written by ``write_json``, checked against its sidecar checksum."""
    verify_checksum(_existing(path, "JSON file"))
    return json.loads(Path(path).read_text())


def _existing(path: str | os.PathLike, kind: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{kind} not found: {path}")
    return path


TIMING_FORMAT = "{label}: {wall:.3f} s wall, {cpu:.3f} s CPU from interpreter start"


def seconds_since_process_start() -> float:
    """Wall-clock seconds since this process started (Linux ``/proc``, 10 ms resolution; NaN where
    there is no ``/proc``)."""
    try:
        stat = Path("/proc/self/stat").read_text()
    except OSError:
        return float("nan")
    start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
    return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def job_log(path: str | os.PathLike, exit_when_done: bool = False) -> Iterator[TextIO]:
    """Open a job's log file, send ``logging`` (level INFO) to it, and record the traceback of an
    exception that ends the job before re-raising it. Yields the stream (for progress bars).

    The first line is the job's start-up (interpreter, imports and module-level code of the
    script), the last of a finished job its total, both as wall and CPU seconds of this process
    (``TIMING_FORMAT``; ``job_timings`` reads them back).

    With ``exit_when_done`` (a workflow script's last statement), a job that finished ends its
    process at once with status 0 once the log and the standard streams are flushed: the
    interpreter's teardown of torch and the job's objects (0.3-0.7 s of CPU per job on the 2-core
    machine, ``benchmarks/RESULTS.md``) does no work for a job whose outputs are written. A job
    that fails exits the usual way, with its traceback."""
    with open(path, "w") as stream:
        logging.basicConfig(stream=stream, level=logging.INFO, force=True,
                            format="%(asctime)s %(levelname)s %(message)s")
        _log_timing("start-up")
        try:
            yield stream
        except BaseException:
            logging.exception("job failed")
            raise
        _log_timing("finished")
    if exit_when_done:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _log_timing(label: str) -> None:
    logging.info(TIMING_FORMAT.format(label=label, wall=seconds_since_process_start(),
                                      cpu=time.process_time()))


def job_timings(path: str | os.PathLike) -> dict[str, float]:
    """The timings a ``job_log`` wrote to the log ``path``: ``startup_wall``, ``startup_cpu`` and,
    for a job that finished, ``wall`` and ``cpu`` (seconds from interpreter start)."""
    text = Path(path).read_text()
    timings = {}
    for label, prefix in (("start-up", "startup_"), ("finished", "")):
        match = re.search(rf"{label}: (\S+) s wall, (\S+) s CPU", text)
        if match:
            timings[f"{prefix}wall"], timings[f"{prefix}cpu"] = map(float, match.groups())
    return timings


RUN_STATUSES = ("ok", "diverged", "skipped")


def read_status(path: str | os.PathLike) -> dict:
    """The ``status.json`` of a run or structure: ``{"status": "ok"|"diverged"|"skipped", ...}``
    (``skipped`` with a ``reason``: a structure whose solutions did not all finish)."""
    status = read_json(path)
    if status.get("status") not in RUN_STATUSES:
        raise ValueError(f"{path}: unknown run status {status.get('status')!r}")
    return status


DEFAULT_CONFIGFILE = "config/config.yaml"


def config_name(configfiles: Sequence[str | os.PathLike] = ()) -> str:
    """The name of the config made of ``configfiles`` (Snakemake's ``--configfile``, in order; none:
    the default ``config/config.yaml``): each file's name without its suffix, joined by ``+``
    (``config/config.yaml`` → ``config``, ``a.yaml b.yaml`` → ``a+b``), every character but a
    letter, a digit, ``_``, ``-`` and ``.`` of a name replaced by ``_``, and so is a leading ``.``
    (no hidden folder, never ``.`` or ``..``). The workflow writes every result of the config under
    ``results/NAME/`` and names it so in its claims table."""
    stems = [Path(path).stem for path in configfiles or [DEFAULT_CONFIGFILE]]
    return "+".join(re.sub(r"^\.|[^A-Za-z0-9_.-]", "_", stem) for stem in stems)


def results_dir(configfiles: Sequence[str | os.PathLike] = ()) -> Path:
    """``results/NAME``, the folder of every result of the config made of ``configfiles``
    (``config_name``), relative to the project root."""
    return Path("results") / config_name(configfiles)
