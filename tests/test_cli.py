"""The fastctr command as a user runs it: train, predict, eval, stdin, errors."""
import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

from fastctr import load, read_criteo
from fastctr.cli import main
from fastctr.io.datasets import criteo_rows, make_criteo


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "fastctr.cli", *args], input=stdin,
                          capture_output=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    train = folder / "train.tsv.gz"
    train.write_bytes(gzip.compress(b"".join(make_criteo(30_000, seed=21))))
    test = folder / "test.tsv"
    test.write_bytes(b"".join(make_criteo(2_000, seed=22)))
    return folder, train, test


def test_train_predict_eval_round_trip(data, capsys):
    folder, train, test = data
    model_path = folder / "model.fctr"
    assert main(["train", str(train), "-o", str(model_path), "--bits", "20", "--alpha", "0.2",
                 "--report-every", "10000"]) == 0
    report = json.loads(capsys.readouterr().out)["progressive"]
    assert report["rows"] == 30_000 and 0.3 < report["log_loss"] < 0.6

    assert main(["predict", str(model_path), str(test)]) == 0
    lines = capsys.readouterr().out.split()
    model = load(model_path)
    expected = model.predict_proba(next(iter(read_criteo(test, model.hasher_))))[:, 1]
    np.testing.assert_allclose(np.array(lines, float), expected, atol=1e-6)

    assert main(["eval", str(model_path), str(test), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["rows"] == 2_000 and 0.6 < scores["auc"] < 0.95
    assert set(scores) >= {"log_loss", "normalized_entropy", "calibration"}


def test_dict_row_scores_like_the_tsv_row_of_a_cli_model(data, tmp_path, capsys):
    _, train, _ = data
    model_path = tmp_path / "m.fctr"
    assert main(["train", str(train), "-o", str(model_path)]) == 0
    rows, labels = criteo_rows(50, seed=5)
    tsv = tmp_path / "rows.tsv"
    tsv.write_bytes(b"".join(make_criteo(50, seed=5)))
    model = load(model_path)
    from_file = model.predict_proba(next(iter(read_criteo(tsv, model.hasher_))))[:, 1]
    from_dicts = [model.predict_one(row) for row in rows]
    np.testing.assert_allclose(from_dicts, from_file, rtol=0, atol=1e-12)


def test_train_without_data_uses_the_synthetic_stream(tmp_path):
    out = run("train", "--rows", "20000", "--report-every", "10000", "-o", str(tmp_path / "m"))
    assert out.returncode == 0, out.stderr
    assert b"synthetic Criteo-schema stream (20,000 rows" in out.stderr
    assert b"kernels ready in" in out.stderr  # compiled or loaded before the timed run
    assert b"avg_loss" in out.stderr  # the progressive-validation table goes to stderr
    assert json.loads(out.stdout)["progressive"]["rows"] == 20_000


def test_train_from_stdin_and_epochs(tmp_path):
    data = b"".join(make_criteo(5_000, seed=9))
    out = run("train", "-", "-o", str(tmp_path / "m"), stdin=data)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["progressive"]["rows"] == 5_000
    refused = run("train", "-", "--epochs", "2", stdin=data)
    assert refused.returncode != 0 and b"stdin can be read once" in refused.stderr


def test_bad_line_exits_2_naming_file_line_and_field(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"".join(make_criteo(3, seed=1)) + b"1\tNaNx" + b"\t" * 38 + b"\n")
    out = run("train", str(path))
    assert out.returncode == 2
    assert f"{path}, line 4: field 'I1'".encode() in out.stderr
    skipped = run("train", str(path), "--on-error", "skip")
    assert skipped.returncode == 0 and b"skipped 1 bad lines" in skipped.stderr


def test_generic_params_and_bad_values(tmp_path):
    ok = run("train", "--rows", "2000", "--param", "epochs=2", "--param", "l2=3.5")
    assert ok.returncode == 0, ok.stderr
    bad = run("train", "--rows", "2000", "--param", "alpha=-1")
    assert bad.returncode == 2 and b"The 'alpha' parameter of FTRLClassifier must be" in bad.stderr
    assert b"Traceback" not in bad.stderr
    missing = run("predict", str(tmp_path / "none.fctr"), "x.tsv")
    assert missing.returncode == 2 and b"no such model file" in missing.stderr


@pytest.mark.parametrize("option, value, message", [
    ("--bits", "40", "argument --bits: must be an int in the range [18, 30]. Got 40 instead."),
    ("--bits", "x", "argument --bits: must be an int in the range [18, 30]. Got 'x' instead."),
    ("--alpha", "-1", "argument --alpha: must be a float in the range (0.0, inf). Got -1.0 instead."),
    ("--threads", "0", "argument --threads: must be an int in the range [1, inf). Got 0 instead."),
    ("--batch-size", "0", "argument --batch-size: must be an int in the range [1, inf). Got 0 instead."),
])
def test_bad_option_values_are_one_line_usage_errors(option, value, message):
    out = run("train", option, value)
    assert out.returncode == 2
    assert out.stderr.decode().strip().splitlines()[-1] == f"fastctr train: error: {message}"
    assert b"Traceback" not in out.stderr


def test_csv_with_a_declared_schema(tmp_path):
    rows, labels = criteo_rows(2_000, seed=6)
    lines = ["id,click,hour,site,app"] + [
        f"{i},{y},{r.get('I1', '')},{r.get('C1', '')},{r.get('C2', '')}"
        for i, (r, y) in enumerate(zip(rows, labels))]
    path = tmp_path / "clicks.csv"
    path.write_text("\n".join(lines) + "\n")
    model_path = tmp_path / "m.fctr"
    out = run("train", str(path), "--format", "csv", "--label", "click", "--ignore", "id",
              "--numeric", "hour", "-o", str(model_path))
    assert out.returncode == 0, out.stderr
    model = load(model_path)
    assert model.hasher_.fields == ("hour", "site", "app") and model.hasher_.numeric == ("hour",)
    scores = run("eval", str(model_path), str(path), "--format", "csv", "--label", "click", "--json")
    assert json.loads(scores.stdout)["rows"] == 2_000


@pytest.mark.parametrize("model_name", ["fm", "ffm"])
def test_factorization_models_and_auto_format(tmp_path, model_name):
    rows, labels = criteo_rows(1_000, seed=7)
    path = tmp_path / "clicks.vw"
    path.write_text("".join(f"{2 * y - 1} |ad {r.get('C1', 'x')} |user {r.get('C2', 'y')}\n"
                            for r, y in zip(rows, labels)))
    model_path = tmp_path / "m.fctr"
    out = run("train", str(path), "--format", "auto", "--model", model_name, "--bits", "18",
              "-o", str(model_path))
    assert out.returncode == 0, out.stderr
    assert type(load(model_path)).__name__ == {"fm": "FMClassifier", "ffm": "FFMClassifier"}[model_name]
    predictions = run("predict", str(model_path), str(path), "--format", "auto")
    assert len(predictions.stdout.split()) == 1_000


def test_threads_train_ftrl_as_one_thread_and_fm_in_hogwild(data, tmp_path, capsys):
    _, train, _ = data
    reports = {}
    for n in ("1", "2"):
        assert main(["train", str(train), "--bits", "18", "--threads", n, "--batch-size", "4000",
                     "-o", str(tmp_path / f"ftrl{n}.fctr")]) == 0
        reports[n] = json.loads(capsys.readouterr().out)["progressive"]
    np.testing.assert_array_equal(load(tmp_path / "ftrl1.fctr").zn_, load(tmp_path / "ftrl2.fctr").zn_)
    assert reports["1"] == reports["2"] | {"seconds": reports["1"]["seconds"],
                                           "rows_per_s": reports["1"]["rows_per_s"]}
    assert main(["train", str(train), "--bits", "18", "--model", "fm", "--threads", "2",
                 "-o", str(tmp_path / "fm.fctr")]) == 0
    assert load(tmp_path / "fm.fctr").n_jobs == 2
    assert json.loads(capsys.readouterr().out)["progressive"]["rows"] == 30_000
