"""A real ``fastctr serve`` process for tests: :func:`serving` starts it on a free loopback
port and yields an httpx client; the process is stopped when the block ends."""
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx

from fastctr.bench.serve_load import free_port, stop

START_TIMEOUT = 90  # seconds for the process to answer /health (numba's cache, a busy machine)


@contextmanager
def serving(model_path, *options):
    """``fastctr serve MODEL --port P OPTIONS`` until the block ends; yields an httpx client."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "fastctr.cli", "serve", str(model_path), "--port", str(port),
         *options], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("fastctr serve did not start:\n"
                                       + process.stdout.read().decode(errors="replace")[-3000:])
                time.sleep(0.1)
            yield client
    finally:
        stop(process)
        process.stdout.close()
