"""File formats and run read-back: atomic writes, checkpoints, HDF5, job logs, trajectories."""

import ast
import builtins
import errno
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lossatlas import io
from lossatlas.landscape import (
    Surface,
    SurfacePart,
    load_surface_part,
    merge_surface_parts,
    save_merged_surface,
    save_surface_part,
    surface_1d_table,
)
from lossatlas.models import build_model
from lossatlas.params import get_flat_params, param_layout
from lossatlas.runs import flat_checkpoints, load_trajectory, read_status, skip_reason


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("configfiles, name", [
    ([], "config"),  # the default config/config.yaml
    (["config/smoke.yaml"], "smoke"),
    ([Path("/elsewhere/paper.yaml")], "paper"),
    (["config/paper.yaml", "local/gpu.yml"], "paper+gpu"),
    (["my config (v2).yaml"], "my_config__v2_"),
    (["a+b.yaml"], "a_b"),  # never the name of the two files a and b
    ([".hidden.yaml"], "_hidden"),
    (["..yaml"], "_"),  # never results/. or results/..
])
def test_config_name_is_a_safe_folder_name(configfiles, name):
    assert io.config_name(configfiles) == name
    assert io.results_dir(configfiles) == Path("results") / name


def test_removing_a_file_removes_its_checksum(tmp_path):
    io.save_torch({"step": 3}, tmp_path / "resume.pt")
    assert io.checksum_path(tmp_path / "resume.pt").exists()
    io.remove_file(tmp_path / "resume.pt")
    assert list(tmp_path.iterdir()) == []
    io.remove_file(tmp_path / "resume.pt")   # already gone: nothing to do


def test_atomic_write_is_world_readable(tmp_path):
    io.write_json({"a": 1}, tmp_path / "x.json")
    assert (tmp_path / "x.json").stat().st_mode & 0o044 == 0o044


def test_corrupted_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "final.pt"
    io.save_state_dict({"w": torch.ones(3)}, path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(io.CorruptFileError, match="final.pt"):
        io.load_state_dict(path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        io.load_state_dict(tmp_path / "missing.pt")


def test_h5_roundtrip_with_attributes(tmp_path):
    path = tmp_path / "s.h5"
    io.write_h5(path, {"a": np.arange(6.0).reshape(2, 3)}, {"grid": [1, 2], "bn": None, "n": 3})
    arrays, attrs = io.read_h5(path)
    np.testing.assert_array_equal(arrays["a"], np.arange(6.0).reshape(2, 3))
    assert json.loads(attrs["grid"]) == [1, 2] and attrs["bn"] == "none" and attrs["n"] == 3
    path.write_bytes(b"not hdf5")
    with pytest.raises(io.CorruptFileError, match="s.h5"):
        io.read_h5(path)


def test_job_log_records_the_traceback(tmp_path):
    log = tmp_path / "job.log"
    with pytest.raises(ValueError):
        with io.job_log(log):
            logging.info("starting")
            raise ValueError("bad setting x")
    text = log.read_text()
    assert "starting" in text and "job failed" in text and "bad setting x" in text
    assert set(io.job_timings(log)) == {"startup_wall", "startup_cpu"}


def test_job_log_times_start_up_and_job(tmp_path):
    log = tmp_path / "job.log"
    with io.job_log(log):
        sum(range(10**6))
    timings = io.job_timings(log)
    assert 0 < timings["startup_cpu"] < timings["cpu"]
    assert 0 < timings["startup_wall"] <= timings["wall"] < 3600


JOB_SCRIPT = """
import atexit, logging, sys
from pathlib import Path
from lossatlas import io
atexit.register(lambda: Path(sys.argv[2]).write_text("teardown ran"))
with io.job_log(sys.argv[1], exit_when_done=True):
    logging.info("computing")
    print("to stdout, buffered", end="")
    if sys.argv[3] == "fail":
        raise ValueError("bad setting x")
"""


def test_a_finished_job_ends_its_process_without_teardown_a_failed_one_with_its_error(tmp_path):
    log, marker = tmp_path / "job.log", tmp_path / "teardown"
    done = subprocess.run([sys.executable, "-c", JOB_SCRIPT, str(log), str(marker), "ok"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "to stdout, buffered"
    assert "computing" in log.read_text() and set(io.job_timings(log)) >= {"wall", "cpu"}
    assert not marker.exists()
    failed = subprocess.run([sys.executable, "-c", JOB_SCRIPT, str(log), str(marker), "fail"],
                            capture_output=True, text=True)
    assert failed.returncode == 1 and "bad setting x" in failed.stderr
    assert "job failed" in log.read_text() and marker.read_text() == "teardown ran"


def test_every_workflow_script_ends_with_its_job_log():
    """``exit_when_done`` ends the process with the ``with`` block: nothing may follow it."""
    for script in sorted((Path(__file__).parents[1] / "workflow/scripts").glob("*.py")):
        last = ast.parse(script.read_text()).body[-1]
        assert isinstance(last, ast.With), script
        assert re.fullmatch(r"io\.job_log\(smk\.log\[0\], exit_when_done=True\)",
                            ast.unparse(last.items[0].context_expr)), script


def test_write_rows_reads_back_with_pandas(tmp_path):
    rows = [{"epoch": 0, "loss": float("nan"), "lr": np.float64(0.1), "status": "ok"},
            {"epoch": 1, "loss": 1 / 3, "lr": 0.05, "status": "ok"}]
    io.write_rows(rows, tmp_path / "m.csv")
    table = pd.read_csv(tmp_path / "m.csv")
    assert list(table.columns) == ["epoch", "loss", "lr", "status"]
    assert table["epoch"].tolist() == [0, 1] and np.isnan(table["loss"][0])
    assert table["loss"][1] == 1 / 3 and table["lr"].tolist() == [0.1, 0.05]


def test_trajectory_read_back_in_order(tmp_path):
    torch.manual_seed(0)
    model = build_model("mlp", (1, 4), 2, width=3, depth=1)
    states = {}
    for label in ("epoch-10", "epoch-2", "step-5", "epoch-0"):
        for p in model.parameters():
            p.data.add_(1.0)
        states[label] = {k: v.clone() for k, v in model.state_dict().items()}
    io.save_torch(states, tmp_path / "trajectory.pt")
    epochs = load_trajectory(tmp_path / "trajectory.pt", "epoch")
    assert [index for index, _ in epochs] == [0, 2, 10]
    thetas = flat_checkpoints(epochs, param_layout(model))
    assert thetas.shape == (3, param_layout(model).dim)
    model.load_state_dict(states["epoch-2"])
    assert torch.equal(thetas[1], get_flat_params(model))
    assert [i for i, _ in load_trajectory(tmp_path / "trajectory.pt", "step")] == [5]


def test_status_and_skip_reason(tmp_path):
    io.write_json({"status": "diverged"}, tmp_path / "d.json")
    io.write_json({"status": "ok"}, tmp_path / "o.json")
    io.write_json({"status": "weird"}, tmp_path / "w.json")
    assert skip_reason(tmp_path / "d.json", "lb-s0") == "skipped: lb-s0 diverged"
    assert skip_reason(tmp_path / "o.json", "lb-s0") is None
    with pytest.raises(ValueError, match="w.json"):
        read_status(tmp_path / "w.json")


def test_surface_part_file_roundtrip_and_merge(tmp_path):
    xs, ys = np.array([0.0, 1.0]), np.array([0.0, 1.0, 2.0])
    values = np.arange(6.0)
    for part, (start, stop) in enumerate([(0, 4), (4, 6)]):
        save_surface_part(tmp_path / f"p{part}.h5", SurfacePart(
            start, stop, xs, ys, {"train_loss": values[start:stop]}, {"bn_policy": "none"}))
    parts = [load_surface_part(tmp_path / f"p{i}.h5") for i in (1, 0)]
    merged = merge_surface_parts(parts)
    np.testing.assert_array_equal(merged.arrays["train_loss"], values.reshape(3, 2))
    assert merged.attrs["bn_policy"] == "none"


def test_a_merged_surface_file_holds_the_grid_or_the_skip_reason(tmp_path):
    """One part written whole reads as its parts merged would; a skipped part leaves only its
    reason (and the identity) in the file."""
    xs, ys = np.array([0.0, 1.0]), np.array([0.0, 1.0, 2.0])
    whole = SurfacePart(0, 6, xs, ys, {"train_loss": np.arange(6.0)},
                        {"bn_policy": "none", "status": "ok", "run": "part's"})
    assert save_merged_surface(tmp_path / "s.h5", [whole], {"run": "sb-s0", "xnum": 2}) is None
    arrays, attrs = io.read_h5(tmp_path / "s.h5")
    np.testing.assert_array_equal(arrays["train_loss"], np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(arrays["xcoordinates"], xs)
    assert attrs["status"] == "ok" and attrs["xnum"] == 2 and attrs["run"] == "part's"
    assert attrs["orientation"].startswith("values[iy, ix]")
    skipped = SurfacePart(0, 0, xs, ys, {}, {"status": "skipped: sb-s0 diverged"})
    reason = save_merged_surface(tmp_path / "k.h5", [whole, skipped], {"run": "sb-s0"})
    arrays, attrs = io.read_h5(tmp_path / "k.h5")
    assert reason == attrs["status"] == "skipped: sb-s0 diverged"
    assert arrays == {} and attrs["run"] == "sb-s0"


def test_surface_1d_table_is_tidy():
    surface = Surface({"xcoordinates": np.array([0.0, 0.5]), "train_loss": np.array([1.0, 2.0]),
                       "train_acc": np.array([50.0, 25.0]), "test_loss": np.array([3.0, 4.0]),
                       "test_acc": np.array([10.0, 20.0])}, {"bn_policy": "none"})
    table = surface_1d_table(surface)
    assert len(table) == 4
    row = table[(table["split"] == "test") & (table["alpha"] == 0.5)].iloc[0]
    assert row["loss"] == 4.0 and row["accuracy"] == 0.2 and row["bn_policy"] == "none"


def test_claim_rows():
    from lossatlas.claims import claim_row

    row = claim_row("Fort & Jastrzebski 2019", "wedge_cuts", "widens", "spearman", 0.8, "> 0.5", True)
    assert row["run"] == "claim" and row["verdict"] == "holds"
    assert claim_row("w", "f", "c", "s", 0.1, "> 0.5", False)["verdict"] == "does not hold"
    skipped = claim_row("w", "f", "c", "s", None, "> 0.5", None, reason="skipped: a-s0 diverged")
    assert skipped["verdict"] == "inconclusive" and skipped["reason"].startswith("skipped")
    with pytest.raises(ValueError, match="needs a reason"):
        claim_row("w", "f", "c", "s", float("nan"), "> 0.5", True)


def test_write_leaves_no_temporary_file_of_a_killed_writer(tmp_path):
    stale = tmp_path / ".resume.pt.abc123.tmp"
    stale.write_bytes(b"")
    stale_sidecar = tmp_path / ".resume.pt.sha256.abc123.tmp"
    stale_sidecar.write_bytes(b"")
    other = tmp_path / ".final.pt.abc123.tmp"
    other.write_bytes(b"")
    io.save_torch({"epoch": 1}, tmp_path / "resume.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".final.pt.abc123.tmp", "resume.pt",
                                                          "resume.pt.sha256"]


def test_full_disk_names_the_file_and_enospc(tmp_path, monkeypatch):
    """Writes go to /dev/full, which answers every write with ENOSPC."""
    monkeypatch.setattr(io, "open", lambda path, mode: builtins.open("/dev/full", mode),
                        raising=False)
    target = tmp_path / "resume.pt"
    with pytest.raises(OSError, match=rf"cannot write {target} \(ENOSPC"):
        io.save_torch({"w": torch.zeros(100_000)}, target)
    assert list(tmp_path.iterdir()) == []


def test_random_bytes_in_h5_name_the_file(tmp_path):
    """Random bytes over each 64-byte block of the file's metadata: h5py raises OSError,
    RuntimeError or KeyError depending on what they hit; every one must name the file."""
    path = tmp_path / "surface.h5"
    io.write_h5(path, {"train_loss": np.arange(4096.0), "xcoordinates": np.arange(7.0)},
                {"status": "ok"})
    intact = path.read_bytes()
    rng = np.random.default_rng(0)
    failures = 0
    for offset in range(0, 2048, 64):
        damaged = bytearray(intact)
        damaged[offset:offset + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(damaged))
        try:
            io.read_h5(path)
        except io.CorruptFileError as exc:
            assert str(path) in str(exc)
            failures += 1
    assert failures > 10


def test_status_json_is_strict_json(tmp_path):
    path = tmp_path / "status.json"
    io.write_json({"status": "diverged", "train_loss": float("nan"), "losses": [float("inf"), 1.0]},
                  path)
    status = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(name))
    assert status == {"status": "diverged", "train_loss": None, "losses": [None, 1.0]}


def test_write_refuses_to_replace_a_device_or_folder(tmp_path):
    for target in (Path("/dev/null"), tmp_path):
        with pytest.raises(OSError, match=f"cannot write {target}: it exists and is not a regular"):
            io.write_json({"a": 1}, target)
    assert Path("/dev/null").is_char_device()


def vts_arrays(path) -> dict[str, np.ndarray]:
    """The appended raw float64 arrays of a ``.vts`` file by name (each block: UInt64 byte count,
    then the values), as ParaView's reader decodes them."""
    content = Path(path).read_bytes()
    header, data = content.split(b'<AppendedData encoding="raw">\n_', 1)
    arrays = {}
    for name, offset in re.findall(rb'Name="(\w+)".*?offset="(\d+)"', header):
        start = int(offset)
        size = int(np.frombuffer(data[start:start + 8], dtype="<u8")[0])
        arrays[name.decode()] = np.frombuffer(data[start + 8:start + 8 + size], dtype="<f8")
    return arrays


def test_surface_vts_puts_each_value_at_its_own_x_and_y(tmp_path):
    xs, ys = np.linspace(-1.0, 2.0, 5), np.linspace(-0.5, 0.25, 3)
    grid_x, grid_y = np.meshgrid(xs, ys)
    loss = 1.0 + grid_x + 10 * grid_y ** 2
    path = tmp_path / "surface.train_loss.vts"
    io.write_surface_vts(path, {"xcoordinates": xs, "ycoordinates": ys, "train_loss": loss,
                                "train_acc": 100 - loss, "explained_variance_ratio_": xs[:2]})
    assert b'WholeExtent="0 4 0 2 0 0"' in path.read_bytes()
    arrays = vts_arrays(path)
    assert set(arrays) == {"points", "train_loss", "train_acc"}
    points = arrays["points"].reshape(-1, 3)
    np.testing.assert_array_equal(points[:, 0], grid_x.ravel())
    np.testing.assert_array_equal(points[:, 1], grid_y.ravel())
    np.testing.assert_array_equal(points[:, 2], loss.ravel())
    np.testing.assert_array_equal(arrays["train_acc"], (100 - loss).ravel())
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, f"{path.name}.sha256"]
    with pytest.raises(ValueError, match="'test_loss' is not a 2D metric"):
        io.write_surface_vts(path, {"xcoordinates": xs, "ycoordinates": ys, "train_loss": loss},
                             height="test_loss")
    with pytest.raises(ValueError, match="must end in .vts"):
        io.write_surface_vts(tmp_path / "surface.vtp", {"xcoordinates": xs, "ycoordinates": ys,
                                                        "train_loss": loss})


def _flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def _write_each_kind(directory: Path) -> dict:
    """One file of each kind the pipeline writes and reads back, and its reader."""
    torch_file, h5_file = directory / "final.pt", directory / "surface.h5"
    table_file, rows_file = directory / "mli.csv", directory / "metrics.csv"
    json_file = directory / "status.json"
    io.save_state_dict({"w": torch.arange(64.0)}, torch_file)
    io.write_h5(h5_file, {"train_loss": np.arange(64.0)}, {"status": "ok"})
    io.write_csv(pd.DataFrame({"alpha": np.linspace(0, 1, 64)}), table_file)
    io.write_rows([{"epoch": e, "train_loss": 1.0 / (e + 1)} for e in range(64)], rows_file)
    io.write_json({"status": "ok", "epochs": 3}, json_file)
    return {torch_file: io.load_state_dict, h5_file: io.read_h5, table_file: io.read_csv,
            rows_file: io.read_rows, json_file: io.read_json}


def test_every_written_file_has_a_sha256sum_sidecar(tmp_path):
    for path in _write_each_kind(tmp_path):
        digest, name = io.checksum_path(path).read_text().split()
        assert name == path.name and digest == io.file_sha256(path)


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_a_flipped_bit_in_any_kind_names_the_file(tmp_path, where):
    """A single low-order bit flipped at the start, middle or end of each kind of file: the read
    stops with an error naming the file and the remedy, never returns the changed values."""
    for path, read in _write_each_kind(tmp_path).items():
        intact = path.read_bytes()
        _flip_bit(path, int(where * (len(intact) - 1)))
        with pytest.raises(io.CorruptFileError,
                           match=rf"{re.escape(str(path))} does not match its checksum.*delete"):
            read(path)
        path.write_bytes(intact)
        read(path)


def test_a_file_written_before_checksums_is_named(tmp_path):
    for path, read in _write_each_kind(tmp_path).items():
        io.checksum_path(path).unlink()
        with pytest.raises(io.CorruptFileError, match=rf"{re.escape(str(path))} has no checksum "
                                                      r"file .*written before"):
            read(path)


def test_a_file_of_your_own_is_read_without_a_checksum(tmp_path):
    path = tmp_path / "mine.pt"
    torch.save({"w": torch.ones(2)}, path)
    assert torch.equal(io.load_state_dict(path, verify=False)["w"], torch.ones(2))
    with pytest.raises(io.CorruptFileError, match="has no checksum"):
        io.load_state_dict(path)


def test_a_damaged_resume_file_is_discarded_with_a_log_line(tmp_path, caplog):
    path = tmp_path / "resume.pt"
    io.save_torch({"epoch": 3, "tensors": {"w": torch.ones(8)}}, path)
    assert io.load_resume(path)["epoch"] == 3
    _flip_bit(path, path.stat().st_size // 2)
    with caplog.at_level(logging.WARNING):
        assert io.load_resume(path) == {}
    assert "discarding the resume file" in caplog.text and str(path) in caplog.text
    assert not path.exists()


def test_a_figure_on_a_full_disk_names_its_file(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from lossatlas.plots import save_figure

    monkeypatch.setattr(io, "open", lambda path, mode: builtins.open("/dev/full", mode),
                        raising=False)
    figure, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    pdf = tmp_path / "figure.pdf"
    with pytest.raises(OSError, match=rf"cannot write {pdf} \(ENOSPC"):
        save_figure(figure, pdf, tmp_path / "figure.png")
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_folder_is_reported_by_the_target_not_its_temporary_file(tmp_path,
                                                                            monkeypatch):
    """The temporary file cannot be created (as in a read-only folder; the tests may run as
    root, which may write anyway)."""
    def refuse(prefix, suffix, dir):
        raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/{prefix}x1{suffix}")

    monkeypatch.setattr(io.tempfile, "mkstemp", refuse)
    target = tmp_path / "metrics.csv"
    with pytest.raises(OSError, match=rf"^\[Errno 13\] cannot write {target} \(EACCES: "
                                      r"Permission denied\)$"):
        io.write_rows([{"epoch": 0}], target)
