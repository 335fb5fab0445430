"""Read-ahead of gzip sources ends its thread when the consumer stops early (issue 13,
defect 5): a break, an iterator dropped after one batch, a ParseError mid-stream.

Each consumer runs in its own thread, joined with a timeout, so a regression fails the test
instead of hanging the run."""
import gc
import gzip
import subprocess
import threading
import time
from pathlib import Path

import pytest

from fastctr import FeatureHasher, ParseError, read_criteo
from fastctr.io.datasets import make_criteo

VENV_FASTCTR = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "fastctr"
BOUND = 10.0  # seconds; the read-ahead ends in a fraction of one


@pytest.fixture(scope="module")
def text():
    # ~160 KB stored uncompressed in gzip: inflated in 3 blocks (one a 64 KiB read), so
    # after the consumer takes the first the producer fills the queue (depth 2) and reaches
    # the end marker, the put that blocked for ever
    return b"".join(make_criteo(800, seed=5))


@pytest.fixture(scope="module")
def gz(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("ahead") / "d.tsv.gz"
    path.write_bytes(gzip.compress(text, compresslevel=0))
    return path


@pytest.fixture(scope="module")
def bad_gz(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("ahead") / "bad_line.tsv.gz"
    lines = text.splitlines(keepends=True)
    path.write_bytes(gzip.compress(b"".join(lines[:50] + [b"oops\n"] + lines[50:]),
                                   compresslevel=0))
    return path


def _ahead_threads():
    return [t for t in threading.enumerate() if t.name == "fastctr-read-ahead"]


def _ends(consume):
    """Run ``consume`` in a thread; assert it and every read-ahead thread end within BOUND."""
    assert not _ahead_threads()
    errors = []

    def run():
        try:
            consume()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(BOUND)
    assert not worker.is_alive(), "the consumer hangs in the read-ahead's clean-up"
    deadline = time.monotonic() + BOUND
    while _ahead_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _ahead_threads(), "the read-ahead thread did not end"
    return errors


def test_break_after_the_first_batch_ends_the_thread(gz):
    def consume():
        for batch in read_criteo(gz, FeatureHasher(bits=18), batch_size=100):
            assert batch.n_rows == 100
            time.sleep(0.5)  # let the producer fill the queue and finish the file
            break

    assert _ends(consume) == []


def test_dropping_an_iterator_after_one_batch_ends_the_thread(gz):
    def consume():
        batches = iter(read_criteo(gz, FeatureHasher(bits=18), batch_size=100))
        assert next(batches).n_rows == 100
        time.sleep(0.5)  # let the producer fill the queue and finish the file
        del batches
        gc.collect()

    assert _ends(consume) == []


def test_a_parse_error_mid_stream_ends_the_thread(bad_gz):
    def consume():
        for _ in read_criteo(bad_gz, FeatureHasher(bits=18), batch_size=100):
            pass

    errors = _ends(consume)
    assert len(errors) == 1 and isinstance(errors[0], ParseError), errors
    assert "line 51" in str(errors[0])


def test_cli_train_on_a_bad_line_in_gzip_exits(bad_gz, tmp_path):
    try:
        done = subprocess.run([str(VENV_FASTCTR), "train", str(bad_gz), "-o", str(tmp_path / "x.fctr")],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("fastctr train hangs after the ParseError")
    assert done.returncode != 0
    assert "line 51" in done.stderr, done.stderr
