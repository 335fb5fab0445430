"""A real ``redis-server`` for the service tests: a free loopback port, a temp dir, no persistence.

The fault tests stop, pause (SIGSTOP) and restart it on the same port, so a client that
reconnects finds the same URL again.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, with the controls a fault test needs."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        # no RDB/AOF; bounded memory with eviction of keys that have a TTL, as the README advises
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
                "--save", "", "--appendonly", "no", "--maxmemory", "64mb",
                "--maxmemory-policy", "volatile-ttl", "--logfile", str(self.workdir / "redis.log")]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}: "
                                   f"{(self.workdir / 'redis.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.02)

    def ping(self, timeout: float = 0.2) -> bool:
        """True when the server answers PING within ``timeout`` seconds."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Kill the server (SIGKILL: an outage, not a clean shutdown) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.resume()  # a stopped process must be continued to die promptly
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing is answered."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Stop, then start an empty server on the same port."""
        self.stop()
        self.start()

    def flush(self) -> None:
        import redis
        redis.Redis.from_url(self.url).flushall()


@pytest.fixture(scope="session")
def redis_session(tmp_path_factory):
    """The session's ``redis-server`` (started once)."""
    if REDIS_SERVER is None:
        pytest.fail("redis-server is not installed: `apt-get install -y redis-server` (.ci/run does it)")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(redis_session):
    """A running, empty ``redis-server``; restarted if a test left it stopped or paused."""
    if redis_session.process is None or redis_session.process.poll() is not None:
        redis_session.start()
    else:
        redis_session.resume()
    redis_session.flush()
    yield redis_session
    if redis_session.process is not None:
        redis_session.resume()


@pytest.fixture
def redis_url(redis_server) -> str:
    """The URL of a running, empty ``redis-server`` on loopback."""
    return redis_server.url
