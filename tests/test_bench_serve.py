"""``fastctr bench --serve`` as a user runs it: both services and the floor (a no-op app)
started for real on loopback, driven by the compiled load generator for a second per point
(tiny load: two connections), and the table, JSON and chart written. Speed itself is not
asserted here (benches/, README)."""
import json
import os
import subprocess
import sys

import pytest

from fastctr.bench.serve_load import markdown_table, wrk_script


def bench(*options: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastctr.cli", "bench", "--serve", *options],
                          capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.parametrize("generator, server", [("wrk", "uvicorn"), ("ab", "uvicorn"),
                                               ("wrk", "granian")])  # .ci/run installs both
def test_bench_serve_measures_both_services(tmp_path, generator, server):
    out = tmp_path / "out"
    done = bench("--generator", generator, "--server", server, "--duration", "1",
                 "--concurrency", "2", "--feedback-rate", "0.05", "--bits", "18", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "serve-bench.json").read_text())
    assert report["generator"] == generator
    points = report["points"]
    measured = {(p["service"], p["traffic"]) for p in points if not p["notes"]}
    kinds = {"single", "batch100"} | ({"single+feedback"} if generator == "wrk" else set())
    assert measured == {(s, k) for s in ("fastctr", "baseline", "floor") for k in kinds}
    for p in points:
        if p["notes"]:  # ab cannot send feedback: said, not measured
            continue
        where = f"{p['service']} {p['traffic']}"
        assert p["server"] == ("uvicorn" if p["service"] == "baseline" else server), where
        assert p["requests"] > 0 and p["requests_per_s"] > 0, where
        assert p["errors"] == 0, where  # every fed-back id was known to the service
        assert 0 < p["p50_ms"] <= p["p99_ms"], where
        assert p["generator_cpu_percent"] > 0, where
        assert p["server_cpu_ms_per_request"] > 0, where  # Linux: /proc
        assert p["rows_per_s"] == p["requests_per_s"] * (100 if p["traffic"] == "batch100" else 1)
    table = (out / "serve-bench.md").read_text()
    assert table.strip() == markdown_table(points)
    assert table.count("| fastctr |") == table.count("| baseline |") == table.count("| floor |") \
        == len(points) // 3
    png = (out / "serve-bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert f"| fastctr | {server} | single | 2 |" in done.stdout


def test_without_a_load_generator_nothing_is_measured(tmp_path):
    """No wrk nor ab on PATH: one line saying what to install, a non-zero exit, no files."""
    done = bench("--out", str(tmp_path / "out"), env={**os.environ, "PATH": str(tmp_path)})
    assert done.returncode != 0
    assert "needs a compiled load generator: wrk (apt-get install wrk) or ab" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_wrk_script_quotes_any_body():
    """A body holding Lua's closing bracket still reaches wrk verbatim (a long bracket of a
    level that does not occur in it)."""
    script = wrk_script(['{"C1":"]]"}', '{"C1":"]]]=]"}'], 0)
    assert '[=[{"C1":"]]"}]=]' in script and '[==[{"C1":"]]]=]"}]==]' in script
    assert "response = function" not in script  # no feedback: wrk does not parse answers
    assert "local feedback_every = 200" in wrk_script(["{}"], 200)
