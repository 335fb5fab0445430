"""The peer comparison (`fastctr bench --peers`): table, ratios, files, skips, leakage check."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from fastctr.bench import peers as bench
from fastctr.cli import main

HIDDEN = "lightgbm"  # a peer made to look uninstalled


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One small CLI run with every peer, LightGBM hidden from the import system."""
    out = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, HIDDEN, None)  # `import lightgbm` now raises ImportError
        installed = [name for name, (module, _) in bench.PEERS.items() if bench.importable(module)]
        code = main(["bench", "--peers", "--rows", "20000", "--test-rows", "5000", "--out", str(out),
                     "--river-rows", "500", "--river-fm-rows", "200", "--latency-calls", "200"])
    assert code == 0
    report = json.loads((out / "peers-synthetic.json").read_text())
    return out, report, installed


def test_a_row_per_installed_peer(run):
    _, report, installed = run
    assert [r["peer"] for r in report["results"]] == installed
    rows = [line for line in report["table"].splitlines() if line.startswith("| ")][1:]
    assert [line.split(" | ")[0].strip("| ") for line in rows] == installed


def test_fastctr_latency_is_also_timed_on_the_raw_line(run):
    _, report, _ = run
    (fastctr,) = [r for r in report["results"] if r["peer"] == "fastctr-ftrl"]
    (note,) = [n for n in fastctr["notes"] if n.startswith("predict_one on the raw TSV line")]
    median = float(note.split(": ")[1].split(" us")[0])
    assert 0 < median < 1_000  # microseconds: the line was scored, not rejected


def test_missing_peer_is_skipped_with_a_note(run):
    _, report, installed = run
    assert HIDDEN not in installed
    assert report["skipped"] == {HIDDEN: f"{HIDDEN} is not installed"}
    assert f"skipped {HIDDEN}: {HIDDEN} is not installed" in report["table"]


def test_ratios_are_positive_and_finite(run):
    _, report, _ = run
    results = [bench.PeerResult(**r) for r in report["results"]]
    for peer, (train, latency) in bench.ratios(results).items():
        assert math.isfinite(train) and train > 0, peer
        assert math.isfinite(latency) and latency > 0, peer
    for r in results:
        assert 0.5 < r.auc <= bench.SUSPICIOUS_AUC or r.peer.startswith("river"), r.peer


def test_files_are_written(run):
    out, report, _ = run
    assert Path(report["files"]["png"]).stat().st_size > 0
    assert (out / "peers-synthetic.md").read_text().startswith("| peer |")
    assert Path(report["files"]["png"]).parent == out


def test_leaked_split_is_refused(tmp_path):
    with pytest.raises(bench.LeakageError, match="overlap training rows"):
        bench.run_comparison(rows=2_000, test_rows=500, test_start=1_500, out=tmp_path,
                             peers=["fastctr-ftrl"])


def test_shared_lines_are_refused(tmp_path):
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    train.write_bytes(b"1\ta\n0\tb\n0\tc\n")
    test.write_bytes(b"0\tb\n1\td\n")  # a training line again
    with pytest.raises(bench.LeakageError, match="1 of 2 test lines"):
        bench.check_split(range(0, 3), range(3, 5), train, test)


def test_suspicious_auc_is_flagged():
    s = bench.Settings("train.tsv", "test.tsv", 10, 10, alpha=0.1, beta=1.0, l1=1.0, l2=1.0)
    too_good = bench.PeerResult("vw-sgd", "online", "", auc=0.99)
    notes = bench._notes("synthetic", range(0, 10), range(10, 20), 0, s, [too_good])
    assert any(n.startswith("SUSPICIOUS: vw-sgd") for n in notes)


def test_unknown_peer_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown peers"):
        bench.run_comparison(rows=100, test_rows=10, out=tmp_path, peers=["nope"])
