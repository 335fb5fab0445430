"""Run code in a child interpreter, so that a crash (segfault, abort) or a hang is a counted
test failure instead of a dead pytest.

The child runs with ``PYTHONMALLOC=debug``: freed memory is overwritten with 0xDD bytes, so a
read through a dangling pointer crashes at once instead of silently reading stale data.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    returncode: int | None  # None: killed after the timeout (a hang)
    stdout: str
    stderr: str

    @property
    def crashed(self) -> bool:
        """Killed by a signal (segfault, bus error, abort) rather than exiting."""
        return self.returncode is not None and self.returncode < 0

    @property
    def hung(self) -> bool:
        return self.returncode is None

    def describe(self) -> str:
        if self.hung:
            what = "hung (killed after the timeout)"
        elif self.crashed:
            what = f"died of signal {signal.Signals(-self.returncode).name}"
        else:
            what = f"exited with {self.returncode}"
        return f"child {what}\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"


def run_child(code: str, timeout: float = 120, stdin: bytes | None = None,
              debug_malloc: bool = True, env: dict | None = None) -> Outcome:
    """Run ``code`` with ``python -c`` in the repository root; never raises on a crash."""
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), str(REPO / "tests"), child_env.get("PYTHONPATH", "")])
    child_env["PYTHONFAULTHANDLER"] = "1"  # a crash prints the Python stack to stderr
    if debug_malloc and "LD_PRELOAD" not in child_env:  # under ASan, keep its allocator
        child_env["PYTHONMALLOC"] = "debug"
    child_env.update(env or {})
    try:
        out = subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True,
                             timeout=timeout, cwd=REPO, env=child_env)
    except subprocess.TimeoutExpired as e:
        return Outcome(None, _text(e.stdout), _text(e.stderr))
    return Outcome(out.returncode, _text(out.stdout), _text(out.stderr))


def _text(b) -> str:
    if b is None:
        return ""
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else b


def assert_child_ok(code: str, **kwargs) -> str:
    """Run ``code`` in a child; fail the test (with its output) unless it exits 0. Returns
    its stdout."""
    out = run_child(code, **kwargs)
    assert out.returncode == 0, out.describe()
    return out.stdout


_BATCH_LOOP = r'''
import faulthandler as _fh, json as _json, os as _os, pickle as _pickle
with open(_os.environ["FASTCTR_BATCH_FILE"], "rb") as _f:
    _items = _pickle.load(_f)
_limit = float(_os.environ["FASTCTR_ITEM_SECONDS"])
for _i in range(int(_os.environ["FASTCTR_BATCH_START"]), len(_items)):
    print("BEGIN", _i, flush=True)
    # a stalled item (even one holding the GIL) ends the child: a C watchdog thread
    _fh.dump_traceback_later(_limit, exit=True)
    try:
        _out = check(_items[_i])
    except Exception as _e:  # an uncaught error is an outcome, not a crash
        _out = f"uncaught {type(_e).__name__}: {str(_e)[:300]}"
    _fh.cancel_dump_traceback_later()
    print("END", _i, _json.dumps(_out), flush=True)
'''


def run_batches(worker: str, items: list, timeout: float = 600, item_seconds: float = 20,
                env: dict | None = None, **kwargs) -> list:
    """Run ``check(item)`` (defined by ``worker``) on every item in as few child processes
    as possible; returns one outcome per item: ``check``'s return value (a JSON value), or
    ``"CRASH <signal>"`` / ``"HANG"`` when the child died or stalled (more than
    ``item_seconds``) on that item (a new child then goes on with the next item)."""
    import json
    import pickle
    import tempfile

    results: list = [None] * len(items)
    with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as f:
        pickle.dump(items, f)
    try:
        start = 0
        while start < len(items):
            batch_env = {**(env or {}), "FASTCTR_BATCH_FILE": f.name,
                         "FASTCTR_BATCH_START": str(start), "FASTCTR_ITEM_SECONDS": str(item_seconds)}
            out = run_child(worker + _BATCH_LOOP, timeout=timeout, env=batch_env, **kwargs)
            current = None
            for line in out.stdout.splitlines():
                if line.startswith("BEGIN "):
                    current = int(line.split()[1])
                elif line.startswith("END "):
                    _, i, value = line.split(" ", 2)
                    results[int(i)] = json.loads(value)
                    current = None
            if current is None:  # finished (or died between items: start again after the last)
                done = [i for i, r in enumerate(results) if r is not None]
                nxt = (max(done) + 1) if done else start
                if out.returncode != 0 and nxt < len(items) and nxt == start:
                    raise AssertionError("the batch child failed before its first item:\n"
                                         + out.describe())
                start = nxt
                continue
            stalled = out.hung or (out.returncode == 1 and "Timeout (" in out.stderr)
            results[current] = "HANG" if stalled else (
                f"CRASH {signal.Signals(-out.returncode).name}" if out.crashed
                else f"EXIT {out.returncode}: {out.stderr[-300:]}")
            start = current + 1
    finally:
        os.unlink(f.name)
    return results
