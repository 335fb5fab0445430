"""Tests for the synthetic Criteo stream in fastctr.io.datasets."""

import doctest
import gzip
import re

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import roc_auc_score

from fastctr.io import datasets
from fastctr.io.datasets import (
    CRITEO_CATEGORICAL,
    CRITEO_NUMERIC,
    criteo_rows,
    make_criteo,
    write_criteo,
)

N_LARGE = 200_000
FIELDS = CRITEO_NUMERIC + CRITEO_CATEGORICAL
HEX8 = re.compile(rb"[0-9a-f]{8}")


def _parse(data: bytes, labeled: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized TSV split: each field's first 8 bytes as a uint64 token, and its length.

    Column 0 is the label when ``labeled``.  Tokens are zero-padded, so an empty
    field is token 0 and equal strings give equal tokens.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf < 11).reshape(-1, 40 if labeled else 39)  # tabs and newlines
    starts = np.concatenate([[0], ends.ravel()[:-1] + 1]).reshape(ends.shape)
    lengths = ends - starts
    k = np.arange(8)
    tokens = np.empty(ends.shape, dtype=np.uint64)
    for j in range(ends.shape[1]):
        chars = buf[np.minimum(starts[:, j, None] + k, buf.size - 1)]
        chars[k >= lengths[:, j, None]] = 0
        tokens[:, j] = chars.view(np.uint64)[:, 0]
    return tokens, lengths


@pytest.fixture(scope="module")
def large():
    """200K labeled rows: (raw bytes, labels, tokens of the 39 features, field lengths)."""
    data = b"".join(make_criteo(N_LARGE, seed=0))
    tokens, lengths = _parse(data)
    labels = (tokens[:, 0] == ord("1")).astype(np.int64)
    return data, labels, tokens[:, 1:], lengths[:, 1:]


def test_constants():
    assert CRITEO_NUMERIC == tuple(f"I{j}" for j in range(1, 14))
    assert CRITEO_CATEGORICAL == tuple(f"C{j}" for j in range(1, 27))


def test_line_format():
    lines = b"".join(make_criteo(2_000, seed=3)).split(b"\n")
    assert lines[-1] == b""  # every line, the last included, ends with a newline
    for line in lines[:-1]:
        fields = line.split(b"\t")
        assert len(fields) == 40
        assert fields[0] in (b"0", b"1")
        for value in fields[1:14]:
            if value:
                int(value)
        for value in fields[14:]:
            assert value == b"" or HEX8.fullmatch(value)


def test_unlabeled_lines_are_the_labeled_lines_without_label():
    labeled = b"".join(make_criteo(2_000, seed=5)).splitlines()
    unlabeled = b"".join(make_criteo(2_000, seed=5, labeled=False)).splitlines()
    assert [line.count(b"\t") for line in unlabeled] == [38] * 2_000
    assert unlabeled == [line[2:] for line in labeled]


@pytest.mark.parametrize("chunk_rows", [1, 7, 999, 65_536])
def test_output_does_not_depend_on_chunking(chunk_rows):
    reference = b"".join(make_criteo(3_000, seed=11))
    chunks = list(make_criteo(3_000, seed=11, chunk_rows=chunk_rows))
    assert b"".join(chunks) == reference
    assert [c.count(b"\n") for c in chunks[:-1]] == [chunk_rows] * (len(chunks) - 1)
    assert 0 < chunks[-1].count(b"\n") <= chunk_rows


def test_seed_determinism():
    a = b"".join(make_criteo(1_000, seed=1))
    assert a == b"".join(make_criteo(1_000, seed=1))
    assert a != b"".join(make_criteo(1_000, seed=2))
    # a prefix of a longer stream is the shorter stream
    assert b"".join(make_criteo(1_500, seed=1)).startswith(a)


def test_empty_and_invalid():
    assert list(make_criteo(0)) == []
    with pytest.raises(ValueError):
        make_criteo(-1)
    with pytest.raises(ValueError):
        make_criteo(10, chunk_rows=0)


def test_ctr(large):
    _, labels, _, _ = large
    assert 0.22 <= labels.mean() <= 0.28


def test_numeric_values(large):
    data, _, tokens, lengths = large
    negative = tokens[:, :13] & np.uint64(0xFF) == ord("-")
    assert 0.01 < negative[:, 1].mean() < 0.05  # I2's rare -1 / -2
    assert not np.delete(negative, 1, axis=1).any()
    small = np.isin(tokens[:, :13], [ord("0"), ord("1"), ord("2")]) & (lengths[:, :13] > 0)
    assert small.sum() / (lengths[:, :13] > 0).sum() > 0.2  # many tiny counts...
    i5 = [int(f) for line in data.splitlines()[:20_000] if (f := line.split(b"\t")[5])]
    assert np.median(i5) > 100 and max(i5) > 100_000  # ...and heavy tails


def test_missing_rates(large):
    _, _, _, lengths = large
    missing = dict(zip(FIELDS, (lengths == 0).mean(axis=0)))
    assert 0.42 < missing["I1"] < 0.48
    assert 0.72 < missing["I12"] < 0.78
    assert missing["I2"] == 0.0
    often_missing = {"I1", "I10", "I12", "C19", "C20", "C22", "C25", "C26"}
    assert all(missing[f] <= 0.25 for f in FIELDS if f not in often_missing)
    for name in ("C19", "C20", "C22", "C25", "C26"):
        assert 0.4 <= missing[name] <= 0.8
    # grouped fields are missing on the same rows, as in the real logs
    assert np.array_equal(lengths[:, FIELDS.index("C19")] == 0, lengths[:, FIELDS.index("C26")] == 0)


def test_categorical_cardinality_and_skew(large):
    _, _, tokens, lengths = large
    for name, (card, _, _) in zip(CRITEO_CATEGORICAL, datasets._CATEGORICAL_SPEC):
        j = FIELDS.index(name)
        values, counts = np.unique(tokens[lengths[:, j] > 0, j], return_counts=True)
        top_share = counts.max() / counts.sum()
        if card <= 30:
            assert len(values) == card, name
            assert top_share > 0.2, name
        else:
            assert len(values) > min(card, 20_000) // 4, name
            assert 0.01 < top_share < 0.3, name  # Zipf: a heavy head, a long tail
    assert len(np.unique(tokens[:, FIELDS.index("C9")])) == 3


def test_bayes_auc(large):
    _, labels, _, _ = large
    p = datasets._row_probabilities(N_LARGE, seed=0)
    assert abs(p.mean() - 0.25) < 0.01
    assert 0.75 <= roc_auc_score(labels, p) <= 0.85


def _onehot(columns: np.ndarray) -> sp.csr_matrix:
    """One-hot encoding: one column per distinct value of each input column."""
    n, k = columns.shape
    index = np.empty((n, k), dtype=np.int64)
    offset = 0
    for j in range(k):
        values, index[:, j] = np.unique(columns[:, j], return_inverse=True)
        index[:, j] += offset
        offset += values.size
    return sp.csr_matrix((np.ones(n * k), index.ravel(), np.arange(0, n * k + 1, k)))


def _holdout_auc(x: sp.csr_matrix, y: np.ndarray, n_train: int) -> float:
    model = SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=5, tol=None, random_state=0)
    model.fit(x[:n_train], y[:n_train])
    return roc_auc_score(y[n_train:], model.decision_function(x[n_train:]))


def test_true_interactions_help_a_linear_model(large):
    _, labels, tokens, _ = large
    crosses = [
        tokens[:, FIELDS.index(a)] * np.uint64(1_000_003) ^ tokens[:, FIELDS.index(b)]
        for a, b in datasets._INTERACTION_PAIRS
    ]
    n_train = 150_000
    auc_lr = _holdout_auc(_onehot(tokens), labels, n_train)
    auc_crossed = _holdout_auc(_onehot(np.column_stack([tokens, *crosses])), labels, n_train)
    assert 0.65 < auc_lr < auc_crossed - 0.01


def test_write_criteo(tmp_path):
    expected = b"".join(make_criteo(500, seed=4, labeled=False))
    plain = write_criteo(tmp_path / "test.txt", 500, seed=4, labeled=False)
    assert plain.read_bytes() == expected
    gz = write_criteo(tmp_path / "test.txt.gz", 500, seed=4, labeled=False)
    assert gzip.decompress(gz.read_bytes()) == expected
    forced = write_criteo(str(tmp_path / "forced.bin"), 500, seed=4, labeled=False, compress=True)
    assert gzip.decompress(forced.read_bytes()) == expected


def test_criteo_rows():
    rows, labels = criteo_rows(300, seed=2)
    lines = b"".join(make_criteo(300, seed=2)).decode().splitlines()
    assert len(rows) == 300 and labels.shape == (300,)
    for row, label, line in zip(rows, labels, lines):
        fields = line.split("\t")
        assert label == int(fields[0])
        assert list(row) == [name for name, value in zip(FIELDS, fields[1:]) if value]
        assert all(isinstance(row[name], int) for name in CRITEO_NUMERIC if name in row)
        assert all(len(row[name]) == 8 for name in CRITEO_CATEGORICAL if name in row)


def test_docstring_examples():
    assert doctest.testmod(datasets).failed == 0
