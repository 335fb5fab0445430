"""Where a save writes (issue 13, defect 11): through symlinks, never over a device, a FIFO or
a directory, no temporary files left by a killed save, the umask and an existing file's mode
honoured, and a mapped model untouched by a save over its file."""
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fastctr import FTRLClassifier, ModelFileError, load
from fastctr.serving.files import destination

from child import REPO

ROWS = [{"C1": "a", "C2": "x"}, {"C1": "b", "C2": "y"}, {"C1": "c", "C2": "x"}]


@pytest.fixture(scope="module")
def model():
    return FTRLClassifier(bits=18).fit(ROWS, [1, 0, 1])


@pytest.fixture(scope="module", params=["model", "scorer"])
def saveable(request, model):
    """What can be saved: a model and its Scorer go through the same code."""
    return model if request.param == "model" else model.to_scorer("float32", "dense")


def _scores(model) -> list:
    return [model.predict_one(row) for row in ROWS]


def _same(a, b) -> bool:
    return _scores(a) == _scores(b)


def test_save_through_a_symlink_writes_where_it_points(tmp_path, saveable):
    (tmp_path / "v1.fctr").write_bytes(b"the previous model")
    link = tmp_path / "current.fctr"
    link.symlink_to("v1.fctr")
    saveable.save(link)
    assert link.is_symlink() and os.readlink(link) == "v1.fctr"
    assert _same(load(tmp_path / "v1.fctr"), saveable)
    assert sorted(os.listdir(tmp_path)) == ["current.fctr", "v1.fctr"]


def test_save_through_a_dangling_symlink_creates_its_target(tmp_path, model):
    (tmp_path / "models").mkdir()
    link = tmp_path / "current.fctr"
    link.symlink_to(tmp_path / "models" / "v2.fctr")
    model.save(link)
    assert link.is_symlink() and _same(load(tmp_path / "models" / "v2.fctr"), model)


def test_saving_into_a_missing_directory_names_it(tmp_path, saveable):
    target = tmp_path / "no-such-dir" / "m.fctr"
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        saveable.save(target)
    assert not (tmp_path / "no-such-dir").exists()


def test_a_fifo_or_a_directory_is_refused_and_kept(tmp_path, saveable):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match=f"{fifo}.*not a regular file"):
        saveable.save(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    (tmp_path / "adir").mkdir()
    with pytest.raises(ModelFileError, match=f"{tmp_path / 'adir'}.*is a directory"):
        saveable.save(tmp_path / "adir")
    assert sorted(os.listdir(tmp_path)) == ["adir", "pipe"]  # no temporary file either


def test_a_device_is_refused_and_kept(model):
    before = os.stat("/dev/null")
    # destination() first: should the check ever regress, the save below is never reached
    # (as root, it would replace /dev/null)
    with pytest.raises(ModelFileError, match="'/dev/null'.*not a regular file"):
        destination("/dev/null")
    with pytest.raises(ModelFileError, match="'/dev/null'.*not a regular file"):
        model.save("/dev/null")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_the_cli_refuses_a_fifo_before_training(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    fastctr = str(Path(sys.executable).parent / "fastctr")
    out = subprocess.run([fastctr, "train", "--rows", "5000000", "-o", str(fifo)],
                         capture_output=True, timeout=120)
    err = out.stderr.decode()
    assert out.returncode == 2 and "Traceback" not in err, err
    assert str(fifo) in err and "not a regular file" in err and "kernels ready" not in err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_model_file_honours_the_umask(tmp_path, model, umask, mode):
    old = os.umask(umask)
    try:
        model.save(tmp_path / "m.fctr")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "m.fctr").st_mode) == mode


def test_overwriting_keeps_the_files_mode(tmp_path, saveable):
    path = tmp_path / "m.fctr"
    for mode in (0o644, 0o640, 0o600):
        path.write_bytes(b"old")
        os.chmod(path, mode)
        saveable.save(path)
        assert stat.S_IMODE(os.stat(path).st_mode) == mode
        assert _same(load(path), saveable)


def test_saving_over_a_mapped_model_leaves_it_readable(tmp_path, model):
    # a new file is renamed over the old one, whose pages the mapped model keeps; truncating
    # the file in place would kill it with SIGBUS (see the README's "Model files")
    path = tmp_path / "m.fctr"
    first = model.to_scorer("float32", "dense")
    first.save(path)
    mapped = load(path, mmap=True)
    assert any(isinstance(a, np.memmap) for a in mapped.state if isinstance(a, np.ndarray))
    expected = _scores(mapped)
    other = FTRLClassifier(bits=18, alpha=1.0).fit(ROWS * 5, [0, 0, 1] * 5)
    other.to_scorer("float32", "dense").save(path)
    assert _scores(mapped) == expected != _scores(load(path))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_dead_saves_temporary_file_is_removed_a_live_ones_kept(tmp_path, model):
    path = tmp_path / "m.fctr"
    dead = tmp_path / f".m.fctr.fastctr-tmp-{_dead_pid()}-0badf00d"
    live = tmp_path / f".m.fctr.fastctr-tmp-{os.getpid()}-0000cafe"  # a save in progress
    other = tmp_path / f".other.fctr.fastctr-tmp-{_dead_pid()}-12345678"  # another target's
    for p in (dead, live, other):
        p.write_bytes(b"half a model")
    model.save(path)
    assert sorted(os.listdir(tmp_path)) == sorted(["m.fctr", live.name, other.name])


SAVE_FOR_EVER = """
import sys
import numpy as np
from fastctr import FeatureHasher
from fastctr.serving.scorer import Scorer
# 2**24 float32 weights: 64 MiB a save, long enough to be killed in the middle
scorer = Scorer.from_weights(FeatureHasher(bits=24), np.full(1 << 24, 0.5), "float32", "dense")
print("ready", flush=True)
while True:
    scorer.save(sys.argv[1])
"""


def _kill_a_save(path: Path) -> list:
    """Start a child saving to ``path`` in a loop, SIGKILL it once a temporary file is seen;
    the names left next to ``path``."""
    child = subprocess.Popen([sys.executable, "-c", SAVE_FOR_EVER, str(path)], cwd=REPO,
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + 120
        while not [n for n in os.listdir(path.parent) if n != path.name]:  # a save under way
            assert time.monotonic() < deadline and child.poll() is None, "no save was seen"
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)  # reaped: its pid is no one's now
    finally:
        child.kill()
        child.stdout.close()
    return [n for n in os.listdir(path.parent) if n != path.name]


def test_kill_9_during_a_save_leaves_nothing_behind_for_long(tmp_path, model):
    path = tmp_path / "m.fctr"
    model.save(path)
    for _ in range(5):  # the kill may land between two saves: try again
        left = _kill_a_save(path)
        if left:
            break
    assert left, "no kill landed during a save"
    load(path)  # the previous model (the first or the child's last) is whole
    model.save(path)  # the next save to the same path cleans up
    assert os.listdir(tmp_path) == ["m.fctr"]
    assert _same(load(path), model)


def test_a_kill_during_the_clis_write_probe_is_cleaned_by_the_next_save(tmp_path, model):
    """``fastctr train`` probes the output folder with a temporary file before any work
    (issue 14): named and locked as a save's, so one a kill leaves is removed by the save."""
    target = tmp_path / "model.fctr"
    killed = subprocess.run(  # killed between creating the probe and removing it
        [sys.executable, "-c", "import os; from fastctr import cli; "
         "os.unlink = lambda path: os._exit(9); "
         f"cli._check_output({str(target)!r})"], cwd=REPO, timeout=120)
    assert killed.returncode == 9
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".model.fctr.fastctr-tmp-"), left
    model.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.fctr"]
