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
