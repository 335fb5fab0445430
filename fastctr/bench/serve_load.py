"""Load test over loopback: ``fastctr serve`` against the hand-written baseline service,
and the floor of both (a no-op app under the same HTTP server).

``fastctr bench --serve`` trains both services' models on the same rows, starts each (and
the floor, :mod:`fastctr.bench.floor_app`) on a free loopback port (one server process,
pinned to one CPU when there are two or more: fastctr and the floor under ``server``, uvicorn
or granian; the baseline under uvicorn, as it is written) and drives it with the same
bounded, closed-loop load from ``wrk`` (a generated Lua script posts the JSON bodies; ``wrk``
is pinned to another CPU): single rows at each concurrency, batches of 100 rows, and single
rows with feedback mixed in (every ``1/feedback_rate``-th prediction's id is sent back as a
click, the CTR of the traffic). Each point reports requests/s, rows/s, p50 and p99 latency,
errors (connection errors, timeouts, non-2xx), the CPU the load generator itself used (``wait4``'s
rusage over the wall time) and the server's CPU time per request (``/proc``: on a shared
machine latency also counts the time spent waiting for a core, CPU time does not). Without
``wrk``, ``ab`` (ApacheBench, keep-alive) runs the points without feedback.

Outputs in ``out``: ``serve-bench.json``, ``serve-bench.md`` and ``serve-bench.png``
(p50/p99 against concurrency, the offered load of a closed loop).

Entry point: :func:`run_serve_bench`.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fastctr.bench import DEFAULT_SERVER, SERVERS

log = logging.getLogger(__name__)

TRAIN_ROWS = 20_000  # rows both models learn before serving (same rows, same order)
REQUEST_ROWS = 2_000  # later rows the requests cycle through
BATCH = 100  # rows in a batch request
BATCH_BODIES = 20  # distinct batch bodies
START_TIMEOUT = 120.0  # seconds for a service to answer /health (a busy machine)
#: fastctr, the hand-written baseline, and the floor: a no-op app under fastctr's server
#: (what the HTTP stack alone costs: see fastctr.bench.floor_app)
SERVICES = ("fastctr", "baseline", "floor")


@dataclass
class Point:
    """One load level against one service."""

    service: str
    traffic: str  # "single", "single+feedback" or "batch100"
    concurrency: int
    server: str = DEFAULT_SERVER  # the HTTP server the service ran under
    generator: str = ""
    requests: int = 0
    seconds: float = 0.0
    requests_per_s: float = 0.0
    rows_per_s: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    generator_cpu_percent: float = 0.0
    #: the server's own CPU time per request (None without /proc): what a request costs,
    #: whatever else the machine runs, where latency also counts waiting for a busy core
    server_cpu_ms_per_request: float | None = None
    notes: list[str] = field(default_factory=list)


GENERATORS = ("wrk", "ab")


def find_generator(wanted: str | None = None) -> str:
    """``wanted`` if on PATH, else (None) ``wrk``, else ``ab``; a RuntimeError naming what
    to install otherwise."""
    if wanted is not None:
        if wanted not in GENERATORS:
            raise ValueError(f"generator must be one of {GENERATORS}; got {wanted!r}")
        if not shutil.which(wanted):
            package = "wrk" if wanted == "wrk" else "apache2-utils"
            raise RuntimeError(f"fastctr bench --serve --generator {wanted}: {wanted} is not on "
                               f"PATH (apt-get install {package}); nothing measured")
        return wanted
    for name in GENERATORS:
        if shutil.which(name):
            return name
    raise RuntimeError("fastctr bench --serve needs a compiled load generator: wrk "
                       "(apt-get install wrk) or ab (apt-get install apache2-utils); "
                       "neither is on PATH, nothing measured")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpus() -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, generator CPUs): one each when this process may use two or more."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    return ({cpus[0]}, {cpus[1]}) if len(cpus) >= 2 else (None, None)


def prepare(workdir: Path, bits: int) -> dict:
    """Both models trained on the same rows; the request bodies from later rows."""
    from fastctr.bench.baseline_service import train_baseline
    from fastctr.io.datasets import criteo_rows
    from fastctr.models.ftrl import FTRLClassifier

    rows, labels = criteo_rows(TRAIN_ROWS + REQUEST_ROWS, seed=0)
    train, test = rows[:TRAIN_ROWS], rows[TRAIN_ROWS:]
    fastctr_model = workdir / "model.fctr"
    FTRLClassifier(bits=bits).fit(train, labels[:TRAIN_ROWS]).save(fastctr_model)
    baseline_model = workdir / "river.pkl"
    train_baseline(train, [int(v) for v in labels[:TRAIN_ROWS]], str(baseline_model))
    single = [json.dumps({"features": row}, separators=(",", ":")) for row in test]
    batches = [json.dumps({"rows": [{"features": r} for r in test[i * BATCH:(i + 1) * BATCH]]},
                          separators=(",", ":")) for i in range(BATCH_BODIES)]
    return {"fastctr": str(fastctr_model), "baseline": str(baseline_model),
            "single": single, "batch100": batches}


def server_of(service: str, server: str) -> str:
    """The HTTP server ``service`` runs under: the baseline's is uvicorn (as it is written
    and run by hand); fastctr and the floor run under ``server``."""
    return "uvicorn" if service == "baseline" else server


def service_command(service: str, models: dict, port: int,
                    server: str = DEFAULT_SERVER) -> tuple[list[str], dict]:
    """The command line and environment that start ``service`` on ``port``."""
    env = dict(os.environ)
    if service == "fastctr":
        return ([sys.executable, "-m", "fastctr.cli", "serve", models["fastctr"], "--learn",
                 "--port", str(port), "--server", server], env)
    env["BASELINE_MODEL"] = models["baseline"]
    app = "fastctr.bench.floor_app:app" if service == "floor" \
        else "fastctr.bench.baseline_service:app"
    if server_of(service, server) == "granian":
        return ([sys.executable, "-m", "granian", "--interface", "rsgi", "--no-ws", "--port",
                 str(port), "--log-level", "warning", app], env)
    return ([sys.executable, "-m", "uvicorn", app, "--port", str(port), "--no-access-log",
             "--log-level", "warning"], env)


@contextmanager
def running(service: str, models: dict, cpus: set[int] | None, server: str = DEFAULT_SERVER):
    """The service listening on a free loopback port until the block ends; yields its URL
    and process id."""
    import urllib.error
    import urllib.request

    port = free_port()
    command, env = service_command(service, models, port, server)
    log_file = tempfile.TemporaryFile()
    process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                               preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log_file.seek(0)
                raise RuntimeError(f"{service} did not start: "
                                   + log_file.read().decode(errors="replace")[-2000:])
            time.sleep(0.2)
        yield url, process.pid
    finally:
        stop(process)
        log_file.close()


def stop(process: subprocess.Popen, grace: float = 15.0) -> None:
    """End a server process: SIGTERM (a clean shutdown), SIGKILL after ``grace`` seconds."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _lua_string(text: str) -> str:
    """``text`` as a Lua long-bracket literal (no level of '=' that occurs in it)."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def wrk_script(bodies: list[str], feedback_every: int) -> str:
    """A wrk script cycling over ``bodies`` (POST /predict); with ``feedback_every`` > 0,
    every feedback_every-th answer's request id is posted back to /feedback as a click. Its
    ``done`` prints the figures as one JSON line (latencies in microseconds)."""
    lua = ["local bodies = {" + ",\n".join(_lua_string(b) for b in bodies) + "}",
           f"local feedback_every = {feedback_every}",
           'local n, answers, pending = 0, 0, nil',
           'local headers = {["Content-Type"] = "application/json"}',
           "request = function()",
           "  if pending then",
           """    local body = '{"request_id":"' .. pending .. '","click":1}'""",
           "    pending = nil",
           '    return wrk.format("POST", "/feedback", headers, body)',
           "  end",
           "  n = n + 1",
           '  return wrk.format("POST", "/predict", headers, bodies[(n % #bodies) + 1])',
           "end"]
    if feedback_every > 0:
        lua += ["response = function(status, hdrs, body)",
                "  answers = answers + 1",
                "  if answers % feedback_every == 0 then",
                """    pending = string.match(body, '"request_ids?":%[?"(%w+)"')""",
                "  end",
                "end"]
    lua += ["done = function(summary, latency, requests)",
            "  local e = summary.errors",
            """  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,'""",
            """    .. '"p50_us":%d,"p99_us":%d}\\n', summary.requests, summary.duration,""",
            "    e.connect + e.read + e.write + e.status + e.timeout,",
            "    latency:percentile(50), latency:percentile(99)))",
            "end"]
    return "\n".join(lua) + "\n"


def _generate(command: list[str], cpus: set[int] | None) -> tuple[str, float, float]:
    """Run the load generator; (its stdout, wall seconds, CPU seconds it used)."""
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    out = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    process.stdout.close()
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}): {out[-1000:]}")
    return out, wall, usage.ru_utime + usage.ru_stime


def measure_wrk(url: str, point: Point, bodies: list[str], feedback_every: int,
                duration: float, workdir: Path, cpus: set[int] | None) -> Point:
    script = workdir / f"{point.traffic}.lua"
    script.write_text(wrk_script(bodies, feedback_every))
    threads = min(point.concurrency, 2)
    out, wall, cpu = _generate(["wrk", "-t", str(threads), "-c", str(point.concurrency),
                                "-d", f"{max(1, round(duration))}s", "--timeout", "5s",
                                "-s", str(script), url], cpus)
    found = re.search(r"^WRKJSON (.*)$", out, re.M)
    if found is None:
        raise RuntimeError(f"wrk printed no figures: {out[-1000:]}")
    figures = json.loads(found.group(1))
    point.generator = f"wrk -t {threads} -c {point.concurrency}"
    point.requests, point.errors = figures["requests"], figures["errors"]
    point.seconds = figures["duration_us"] / 1e6
    if point.requests:
        point.p50_ms, point.p99_ms = figures["p50_us"] / 1e3, figures["p99_us"] / 1e3
    point.generator_cpu_percent = 100.0 * cpu / wall
    return point


def measure_ab(url: str, point: Point, body: str, duration: float, workdir: Path,
               cpus: set[int] | None) -> Point:
    """ApacheBench: one body, keep-alive; percentiles from its -e table (ms)."""
    body_file, table = workdir / "body.json", workdir / "percentiles.csv"
    body_file.write_text(body)
    out, wall, cpu = _generate(["ab", "-q", "-k", "-c", str(point.concurrency),
                                "-t", str(max(1, round(duration))), "-n", "100000000",
                                "-p", str(body_file), "-T", "application/json",
                                "-e", str(table), url + "/predict"], cpus)
    number = lambda label: float(re.search(rf"^{label}:\s+([\d.]+)", out, re.M).group(1))  # noqa: E731
    point.generator = f"ab -k -c {point.concurrency}"
    point.requests = int(number("Complete requests"))
    point.seconds = number("Time taken for tests")
    non_2xx = re.search(r"^Non-2xx responses:\s+(\d+)", out, re.M)
    point.errors = int(number("Failed requests")) + (int(non_2xx.group(1)) if non_2xx else 0)
    percent = dict(line.split(",") for line in table.read_text().splitlines()[1:])
    # under 100 requests the nearest-rank p99 is the slowest (ab's own 99 row then reads
    # past its sorted times)
    point.p50_ms = float(percent["50"])
    point.p99_ms = float(percent["99" if point.requests >= 100 else "100"])
    point.generator_cpu_percent = 100.0 * cpu / wall
    return point


def warm_up(url: str, body: str, calls: int = 200) -> None:
    """Predictions and feedback before the first point, not reported: a service's first
    learn may compile its kernel (seconds), which would stall a measured point."""
    import urllib.request

    def post(path: str, data: str) -> dict:
        request = urllib.request.Request(url + path, data=data.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=START_TIMEOUT) as answer:
            return json.loads(answer.read())

    for i in range(calls):
        rid = post("/predict", body)["request_id"]
        if i % 50 == 0:
            post("/feedback", json.dumps({"request_id": rid, "click": 1}))


def plan(concurrency: list[int], feedback_rate: float) -> list[tuple[str, int]]:
    """The (traffic, concurrency) points run against each service."""
    points = [("single", c) for c in concurrency]
    points += [("batch100", c) for c in concurrency if c <= 10]
    if feedback_rate > 0:
        points += [("single+feedback", c) for c in concurrency]
    return points


def run_serve_bench(out: str | os.PathLike = "bench-results", *, duration: float = 5.0,
                    concurrency: tuple[int, ...] = (1, 10, 100), feedback_rate: float = 0.005,
                    bits: int = 20, services: tuple[str, ...] = SERVICES,
                    generator: str | None = None, server: str = DEFAULT_SERVER) -> dict:
    """Measure both services at every point; write JSON, markdown and PNG to ``out``.

    Parameters
    ----------
    out : folder for ``serve-bench.json``, ``serve-bench.md``, ``serve-bench.png``
    duration : seconds of load per point (wrk and ab count whole seconds)
    concurrency : connections held open by the load generator (the offered load)
    feedback_rate : share of predictions whose click is posted back (0: no feedback points)
    bits : hash bits of fastctr's model
    services : which of ``fastctr``, ``baseline`` and ``floor`` to run
    generator : ``wrk`` or ``ab``; None: wrk if installed, else ab
    server : the HTTP server of fastctr and the floor: ``uvicorn`` or ``granian``

    Returns
    -------
    dict with ``points`` (one dict per measurement), ``table`` (markdown), ``files``.

    Examples
    --------
    >>> report = run_serve_bench(tempfile.mkdtemp(), duration=1, concurrency=(1,),
    ...                          feedback_rate=0)                          # doctest: +SKIP
    >>> report["points"][0]["requests"] > 0                                # doctest: +SKIP
    True
    """
    generator = find_generator(generator)
    if server not in SERVERS:
        raise ValueError(f"server must be one of {SERVERS}; got {server!r}")
    if not 0 <= feedback_rate < 1:
        raise ValueError(f"feedback_rate must be in [0, 1); got {feedback_rate!r}")
    feedback_every = round(1 / feedback_rate) if feedback_rate else 0
    server_cpus, generator_cpus = _cpus()
    points: list[Point] = []
    with tempfile.TemporaryDirectory(prefix="fastctr-serve-bench-") as tmp:
        workdir = Path(tmp)
        log.info("training both models on %d rows", TRAIN_ROWS)
        models = prepare(workdir, bits)
        for service in services:
            with running(service, models, server_cpus, server) as (url, pid):
                log.info("%s listening at %s", service, url)
                warm_up(url, models["single"][0])
                for traffic, c in plan(list(concurrency), feedback_rate):
                    point = Point(service, traffic, c, server_of(service, server))
                    cpu_before = cpu_seconds(pid)
                    bodies = models["batch100" if traffic == "batch100" else "single"]
                    if generator == "ab" and traffic == "single+feedback":
                        point.notes.append("skipped: ab posts one body, it cannot send feedback")
                    elif generator == "ab":
                        measure_ab(url, point, bodies[0], duration, workdir, generator_cpus)
                    else:
                        measure_wrk(url, point, bodies, feedback_every if "feedback" in traffic
                                    else 0, duration, workdir, generator_cpus)
                    cpu_after = cpu_seconds(pid)
                    if point.requests and cpu_after is not None:
                        point.server_cpu_ms_per_request = 1e3 * (cpu_after - cpu_before) / point.requests
                    if point.seconds:
                        point.requests_per_s = point.requests / point.seconds
                        rows = BATCH if traffic == "batch100" else 1
                        point.rows_per_s = point.requests_per_s * rows
                    log.info("%s %s c=%d: %.0f req/s p50 %s ms p99 %s ms errors %d", service,
                             traffic, c, point.requests_per_s, point.p50_ms, point.p99_ms,
                             point.errors)
                    points.append(point)
    return _write(Path(out), points, duration, feedback_rate, generator,
                  pinned=server_cpus is not None)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time so far of process ``pid`` and its live descendants (all their
    threads: granian serves from a worker process); None without /proc."""
    stats = _proc_stats()
    if pid not in stats:
        return None
    children: dict[int, list[int]] = {}
    for p, (parent, _) in stats.items():
        children.setdefault(parent, []).append(p)
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats[p][1]
        todo += children.get(p, [])
    return total


def _proc_stats() -> dict[int, tuple[int, float]]:
    """{pid: (parent pid, user + system CPU seconds)} of every process /proc shows."""
    tick, stats = os.sysconf("SC_CLK_TCK"), {}
    for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()  # after the command name
            except OSError:  # ended meanwhile
                continue
            stats[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return stats


def _machine(pinned: bool) -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "load_average_1m": load and round(load[0], 2),
            "pinned": "server and load generator on one CPU each" if pinned else "no pinning"}


def _write(out: Path, points: list[Point], duration: float, feedback_rate: float,
           generator: str, pinned: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rows = [asdict(p) for p in points]
    table = markdown_table(rows)
    meta = {"duration_s": duration, "feedback_rate": feedback_rate, "generator": generator,
            "machine": _machine(pinned)}
    files = {"json": str(out / "serve-bench.json"), "markdown": str(out / "serve-bench.md"),
             "png": None}
    Path(files["json"]).write_text(json.dumps({**meta, "points": rows}, indent=2) + "\n")
    Path(files["markdown"]).write_text(table + "\n")
    files["png"] = latency_chart(rows, out / "serve-bench.png")
    return {**meta, "points": rows, "table": table, "files": files}


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def markdown_table(rows: list[dict]) -> str:
    """One line per point, and fastctr's requests/s over the baseline's at the same point."""
    base = {(r["traffic"], r["concurrency"]): r["requests_per_s"]
            for r in rows if r["service"] == "baseline"}
    lines = ["| service | server | traffic | concurrency | requests/s | rows/s | p50 ms | p99 ms "
             "| errors | generator CPU % | server CPU ms/request | x baseline req/s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        b = base.get((r["traffic"], r["concurrency"]))
        ratio = f"{r['requests_per_s'] / b:.1f}x" if r["service"] == "fastctr" and b else ""
        lines.append(f"| {r['service']} | {r['server']} | {r['traffic']} | {r['concurrency']} | "
                     f"{r['requests_per_s']:,.0f} | {r['rows_per_s']:,.0f} | {_ms(r['p50_ms'])} | "
                     f"{_ms(r['p99_ms'])} | {r['errors']} | {r['generator_cpu_percent']:.0f} | "
                     f"{_ms(r['server_cpu_ms_per_request'])} | {ratio} |")
    return "\n".join(lines)


def latency_chart(rows: list[dict], path: Path) -> str | None:
    """p50 (solid) and p99 (dashed) against concurrency, one panel per traffic; None
    without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        log.warning("chart skipped: matplotlib is not installed")
        return None
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    kinds = [k for k in ("single", "single+feedback", "batch100")
             if any(r["traffic"] == k and r["p50_ms"] is not None for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(kinds)), figsize=(4.2 * max(1, len(kinds)), 3.6),
                             squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for service, colour in zip(SERVICES, ("tab:blue", "tab:orange")):
            mine = sorted((r for r in rows if r["service"] == service and r["traffic"] == kind
                           and r["p50_ms"] is not None), key=lambda r: r["concurrency"])
            if not mine:
                continue
            c = [r["concurrency"] for r in mine]
            ax.plot(c, [r["p50_ms"] for r in mine], "o-", color=colour, label=f"{service} p50")
            ax.plot(c, [r["p99_ms"] for r in mine], "s--", color=colour, label=f"{service} p99")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(kind)
        ax.set_xlabel("concurrent connections (offered load)")
        ax.set_ylabel("latency (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)
