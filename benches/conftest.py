"""pytest-benchmark setup for fastctr's benchmarks.

``pytest benches`` is a cheap smoke run: benchmarks are disabled (each one runs once) and the
data is small. ``pytest benches --benchmark-enable`` is the latency run: realistic sizes,
warm-up on (so numba compilation and cold caches stay out of the figures), and a table of
each peer's ratio to fastctr at the end. Compare two saved runs with
``pytest-benchmark compare 0001 0002 --columns=median,ops``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

#: what `pytest_collect_file` adds to pytest's python_files for this folder
BENCH_GLOB = "bench_*.py"


@dataclass(frozen=True)
class Sizes:
    """Rows used by each benchmark; small in the smoke run, realistic in the latency run."""

    parse: int
    train: int
    predict: int
    distinct: int
    river: int


SMOKE = Sizes(parse=2_000, train=5_000, predict=2_000, distinct=200, river=500)
LATENCY = Sizes(parse=200_000, train=1_000_000, predict=200_000, distinct=10_000, river=20_000)


def pytest_configure(config: pytest.Config) -> None:
    # Runs before pytest-benchmark's own (trylast) configure, which reads these options.
    if not config.getoption("benchmark_enable", False):
        config.option.benchmark_disable = True
    if not _given(config, "--benchmark-warmup"):
        config.option.benchmark_warmup = True


def _given(config: pytest.Config, flag: str) -> bool:
    return any(arg.split("=")[0] == flag for arg in config.invocation_params.args)


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """Collect ``bench_*.py`` unless pytest already does (``python_files``, or a file named
    on the command line)."""
    if (file_path.suffix == ".py" and file_path.match(BENCH_GLOB)
            and not parent.session.isinitpath(file_path)
            and BENCH_GLOB not in parent.config.getini("python_files")):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="session")
def enabled(pytestconfig: pytest.Config) -> bool:
    """True in the latency run (``--benchmark-enable``)."""
    return bool(pytestconfig.getoption("benchmark_enable", False))


@pytest.fixture(scope="session")
def sizes(enabled: bool) -> Sizes:
    return LATENCY if enabled else SMOKE


def _size_label(n: int) -> str:
    for div, suffix in ((1_000_000, "M"), (1_000, "K")):
        if n >= div and n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)


@pytest.fixture(scope="session")
def size_label():
    """``size_label(n)``: 200_000 -> '200K', 1_000_000 -> '1M' (for group names)."""
    return _size_label


def _record_rate(benchmark, rows: int, vs: str | None = None) -> None:
    benchmark.extra_info["rows"] = rows
    if vs:
        benchmark.extra_info["vs"] = vs
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["rows_per_s"] = round(rows / stats.stats.median)


@pytest.fixture(scope="session")
def record_rate():
    """``record_rate(benchmark, rows, vs=None)``: rows and rows/s (median round) in extra_info.

    ``vs`` names the fastctr benchmark this one is compared with in the ratio summary.
    """
    return _record_rate


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables
def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """Print each peer's ratio to the fastctr benchmark it names in ``extra_info['vs']``."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled or not session.benchmarks:
        return
    by_name = {b.name: b for b in session.benchmarks}
    lines = []
    for bench in session.benchmarks:
        ref = by_name.get(bench.extra_info.get("vs", ""))
        if ref is None:
            continue
        rows = ref.extra_info.get("rows", 1) / bench.extra_info.get("rows", 1)
        ratio = bench.stats.median / ref.stats.median * rows
        lines.append(f"{bench.name:<44} vs {ref.name:<34} {ratio:8.2f}x the time per row")
    if lines:
        terminalreporter.write_sep(
            "-", "peers: time per row relative to fastctr (median; >1 = fastctr faster)")
        for line in lines:
            terminalreporter.write_line(line)
    paired = [b for b in session.benchmarks if "speedup" in b.extra_info]
    if paired:
        terminalreporter.write_sep("-", "speed-up over one thread (median of alternating pairs)")
        for bench in paired:
            terminalreporter.write_line(f"{bench.name:<44} {bench.extra_info['speedup']:8.2f}x  "
                                        f"pairs {bench.extra_info['speedup_pairs']}")
