"""Pipes and FIFOs are read once (issue 13, defect 6): format detection looks at the head it
read, and the reader reads that head before the rest; nothing lost, nothing opened twice.

Every reader runs under a timeout so a regression fails instead of hanging the run."""
import gzip
import os
import subprocess
import threading
from pathlib import Path

import pytest

from fastctr import read_data
from fastctr.io.datasets import make_criteo

VENV_FASTCTR = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "fastctr"
ROWS = 2_000


@pytest.fixture(scope="module")
def text():
    data = b"".join(make_criteo(ROWS, seed=3))
    assert len(data) > 4 * 65536  # well past the head detection reads
    return data


def _write(path_or_fd, data: bytes) -> threading.Thread:
    """Write ``data`` into a FIFO path or a pipe fd from a thread (a FIFO's open blocks until
    its reader opens it)."""
    def run():
        if isinstance(path_or_fd, int):
            with os.fdopen(path_or_fd, "wb") as f:
                f.write(data)
        else:
            with open(path_or_fd, "wb") as f:
                f.write(data)

    writer = threading.Thread(target=run, daemon=True)
    writer.start()
    return writer


def _rows_read(source) -> int:
    counted = []

    def run():
        try:
            counted.append(sum(b.n_rows for b in read_data(source, format="auto", batch_size=500)))
        except Exception as error:  # noqa: BLE001 - raised in the test's thread
            counted.append(error)

    reader = threading.Thread(target=run, daemon=True)
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), f"reading {source} hangs"
    if isinstance(counted[0], Exception):
        raise counted[0]
    return counted[0]


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
def test_a_named_fifo_is_detected_and_read_whole(tmp_path, text, packed):
    fifo = tmp_path / "d.fifo"
    os.mkfifo(fifo)
    writer = _write(fifo, gzip.compress(text) if packed else text)
    assert _rows_read(str(fifo)) == ROWS
    writer.join(10)


def test_a_pipe_fd_path_is_detected_and_read_whole(text):
    read_fd, write_fd = os.pipe()
    try:
        writer = _write(write_fd, text)
        assert _rows_read(f"/dev/fd/{read_fd}") == ROWS
        writer.join(10)
    finally:
        os.close(read_fd)


def test_cli_trains_on_a_fifo_and_a_process_substitution(tmp_path, text):
    data = tmp_path / "d.tsv"
    data.write_bytes(text)
    fifo = tmp_path / "d.fifo"
    os.mkfifo(fifo)
    writer = _write(fifo, text)
    done = subprocess.run([str(VENV_FASTCTR), "train", str(fifo), "-o", str(tmp_path / "a.fctr")],
                          capture_output=True, text=True, timeout=120)
    writer.join(10)
    assert done.returncode == 0, done.stderr
    assert f"trained on {ROWS} rows" in done.stdout + done.stderr
    done = subprocess.run(["bash", "-c", '"$0" train <(cat "$1") -o "$2"', str(VENV_FASTCTR),
                           str(data), str(tmp_path / "b.fctr")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"trained on {ROWS} rows" in done.stdout + done.stderr
