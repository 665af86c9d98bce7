"""Kill a training subprocess mid-run, for the resume-after-kill tests."""
import signal
import subprocess
import time
from pathlib import Path

from lossatlas import io


def kill_mid_run(argv: list, resume: Path, attempts: int = 5) -> dict:
    """Start ``argv``, SIGKILL it 0.3 s after its resume file ``resume`` first appears, and return
    the resume state it left. A kill that lands between the file's rename and its checksum sidecar
    leaves a damaged pair (which training discards by design, ``io.load_resume``); that attempt is
    cleared and repeated, at most ``attempts`` times."""
    for _ in range(attempts):
        process = subprocess.Popen(argv)
        deadline = time.time() + 120
        while not io.checksum_path(resume).exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
        try:
            return io.load_torch(resume)
        except io.CorruptFileError:
            resume.unlink(missing_ok=True)
            io.checksum_path(resume).unlink(missing_ok=True)
    raise AssertionError(f"every kill left {resume} without its checksum sidecar")
