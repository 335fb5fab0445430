"""Deterministic synthetic click logs in the Criteo Kaggle TSV format.

``make_criteo`` streams raw ``train.txt``-style lines (``label \\t I1..I13 \\t
C1..C26``) without any download; it is the default data for ``fastctr train``
and for the benchmarks.  Rows come from a hidden logistic model with per-value
categorical effects, ``log(1 + x)`` numeric effects and low-rank pairwise
interactions (so a factorization machine can beat a plain logistic regression),
calibrated to a ~25% click-through rate.

Every random draw is a counter-based hash of ``(seed, row index)``, so the
output for a given ``(n_rows, seed, labeled)`` is identical whatever the
chunking, and each value id maps to a fixed 8-hex-digit token per field.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist

import numpy as np

from fastctr._kernels import synth
from fastctr.io.hashing import CRITEO_CATEGORICAL, CRITEO_NUMERIC

__all__ = ["CRITEO_CATEGORICAL", "CRITEO_NUMERIC", "criteo_rows", "make_criteo", "write_criteo"]


# Per numeric field: (mu, sigma) of the lognormal latent t with x = floor(e^t) - 1
# (clipped at 0, so small counts dominate), rate of negative values, hidden-model
# weight of log(1 + x) and of "missing", missing rate.  Medians and missing rates
# roughly follow the real Kaggle data.
_NUMERIC_SPEC = (
    (0.7, 1.0, 0.0, 0.30, -0.20, 0.45),    # I1
    (1.5, 1.6, 0.03, 0.10, 0.0, 0.0),      # I2: also -1 / -2
    (2.2, 1.5, 0.0, -0.10, 0.10, 0.21),    # I3
    (1.8, 1.0, 0.0, -0.15, 0.05, 0.22),    # I4
    (8.0, 1.8, 0.0, -0.20, 0.30, 0.026),   # I5
    (3.6, 1.6, 0.0, -0.25, 0.10, 0.22),    # I6
    (1.4, 1.4, 0.0, 0.20, -0.10, 0.043),   # I7
    (2.2, 1.0, 0.0, 0.05, 0.0, 0.0005),    # I8
    (3.7, 1.3, 0.0, -0.10, -0.10, 0.043),  # I9
    (0.6, 0.5, 0.0, 0.15, -0.10, 0.45),    # I10
    (0.8, 0.9, 0.0, 0.30, -0.10, 0.043),   # I11
    (0.2, 0.8, 0.0, 0.10, -0.05, 0.75),    # I12
    (1.8, 1.0, 0.0, -0.15, 0.05, 0.22),    # I13
)
_NUMERIC_TAIL_QUANTILE = 1.0 - 1e-7  # the top bucket ends here (~5.2 sigma)

# Per categorical field: cardinality, Zipf exponent, missing rate.
_CATEGORICAL_SPEC = (
    (1460, 1.1, 0.0),           # C1
    (583, 1.1, 0.0),            # C2
    (1_000_000, 1.05, 0.034),   # C3
    (800_000, 1.05, 0.034),     # C4
    (305, 1.2, 0.0),            # C5
    (10, 1.3, 0.12),            # C6
    (12517, 1.1, 0.0),          # C7
    (633, 1.1, 0.0),            # C8
    (3, 1.5, 0.0),              # C9
    (93145, 1.05, 0.0),         # C10
    (5683, 1.1, 0.0),           # C11
    (1_000_000, 1.05, 0.034),   # C12
    (3194, 1.1, 0.0),           # C13
    (27, 1.3, 0.0),             # C14
    (14992, 1.1, 0.0),          # C15
    (600_000, 1.05, 0.034),     # C16
    (10, 1.3, 0.0),             # C17
    (5652, 1.1, 0.0),           # C18
    (2173, 1.1, 0.44),          # C19
    (4, 1.5, 0.44),             # C20
    (1_000_000, 1.05, 0.034),   # C21
    (18, 1.3, 0.76),            # C22
    (15, 1.3, 0.0),             # C23
    (286181, 1.05, 0.034),      # C24
    (105, 1.2, 0.44),           # C25
    (142572, 1.05, 0.44),       # C26
)

# Fields missing together share one uniform draw (as in the real logs, where
# e.g. C19/C20/C25/C26 are blank on the same rows); the rest draw their own.
_MISSING_GROUPS = (
    ("I1", "I10"),
    ("I3", "I4", "I6", "I13"),
    ("C3", "C4", "C12", "C16", "C21", "C24"),
    ("C19", "C20", "C25", "C26"),
)

_CATEGORICAL_WEIGHT = 0.20  # std of each per-value effect
_MISSING_CATEGORICAL_WEIGHT = -0.15

# Low-rank interactions between moderately frequent values: the joint effect of
# (value a, value b) is the dot product of their hashed latent vectors, which a
# factorization machine can learn and a linear model over single fields cannot.
_INTERACTION_PAIRS = (
    ("C1", "C5"), ("C2", "C8"), ("C6", "C14"), ("C7", "C13"),
    ("C11", "C18"), ("C15", "C17"), ("C23", "C2"), ("C5", "C14"),
)
_INTERACTION_SCALE = 0.45
_LATENT_CAP = 500  # only ids below this (the head of each Zipf) interact

_TARGET_CTR = 0.25
_CALIBRATION_ROWS = 1 << 15
_BUCKETS = 1 << synth.TABLE_BITS


def _zipf_table(cardinality: int, exponent: float) -> np.ndarray:
    """Quantile table: bucket b of a uniform draw covers ids table[b]..table[b+1]."""
    cdf = np.cumsum(np.arange(1, cardinality + 1, dtype=np.float64) ** -exponent)
    cdf /= cdf[-1]
    ids = np.searchsorted(cdf, np.arange(_BUCKETS + 1) / _BUCKETS, side="right")
    return np.minimum(ids, cardinality - 1).astype(np.int64)


def _count_table(mu: float, sigma: float) -> np.ndarray:
    """Quantile table of floor(exp(t)) - 1 (at least 0) for t ~ Normal(mu, sigma)."""
    normal = NormalDist(mu, sigma)
    qs = [normal.inv_cdf(b / _BUCKETS) for b in range(1, _BUCKETS)]
    t = np.array([-np.inf, *qs, normal.inv_cdf(_NUMERIC_TAIL_QUANTILE)])
    return np.maximum(np.floor(np.exp(t)) - 1, 0).astype(np.int64)


@lru_cache(maxsize=1)
def _model() -> tuple[np.ndarray, ...]:
    """Seed-independent kernel inputs, built once per process.

    In order: missing group per field (-1 = own draw), missing and negative
    thresholds out of 65536, count quantile tables, numeric (weight, missing
    weight, center), log(1 + x) table, Zipf quantile tables, categorical
    (weight, missing weight), interaction id caps, pairs, pair scales.
    """
    fields = CRITEO_NUMERIC + CRITEO_CATEGORICAL
    miss_group = np.full(len(fields), -1, dtype=np.int64)
    for g, group in enumerate(_MISSING_GROUPS):
        miss_group[[fields.index(name) for name in group]] = g
    miss_rates = [s[5] for s in _NUMERIC_SPEC] + [s[2] for s in _CATEGORICAL_SPEC]
    num = np.array(_NUMERIC_SPEC)
    card = np.array([s[0] for s in _CATEGORICAL_SPEC], dtype=np.int64)
    cat_params = np.empty((len(CRITEO_CATEGORICAL), 2))
    cat_params[:] = (_CATEGORICAL_WEIGHT, _MISSING_CATEGORICAL_WEIGHT)
    pairs = [[CRITEO_CATEGORICAL.index(a), CRITEO_CATEGORICAL.index(b)] for a, b in _INTERACTION_PAIRS]
    return (
        miss_group,
        np.round(np.array(miss_rates) * 65536).astype(np.uint64),
        np.round(num[:, 2] * 65536).astype(np.uint64),
        np.stack([_count_table(mu, sigma) for mu, sigma, *_ in _NUMERIC_SPEC]),
        np.ascontiguousarray(num[:, [3, 4, 0]]),  # weight, missing weight, center
        np.log1p(np.arange(synth.LOG_TABLE_SIZE, dtype=np.float64)),
        np.stack([_zipf_table(k, s) for k, s, _ in _CATEGORICAL_SPEC]),
        cat_params,
        np.minimum(card, _LATENT_CAP),
        np.array(pairs, dtype=np.int64),
        np.full(len(pairs), _INTERACTION_SCALE),
    )


def _seed_key(seed: int) -> np.uint64:
    return np.uint64(seed & 0xFFFFFFFFFFFFFFFF)


@lru_cache(maxsize=16)
def _bias(seed: int) -> float:
    """Intercept giving a ~25% CTR, solved on a fixed row sample (so independent of n_rows)."""
    logits = synth.row_logits(0, _CALIBRATION_ROWS, _seed_key(seed), _model())
    lo, hi = -10.0, 10.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if np.mean(1.0 / (1.0 + np.exp(-(logits + mid)))) < _TARGET_CTR:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _row_probabilities(n_rows: int, seed: int = 0) -> np.ndarray:
    """True click probabilities of rows ``0..n_rows-1`` under the hidden model."""
    logits = synth.row_logits(0, n_rows, _seed_key(seed), _model())
    return 1.0 / (1.0 + np.exp(-(logits + _bias(seed))))


def make_criteo(
    n_rows: int = 1_000_000, *, seed: int = 0, labeled: bool = True, chunk_rows: int = 65_536
) -> Iterator[bytes]:
    """Stream synthetic Criteo Kaggle click logs as raw TSV bytes.

    Parameters
    ----------
    n_rows : int
        Number of lines to generate.
    seed : int
        Selects the hidden model (value tokens, effects) and the row draws.
    labeled : bool
        If True each line starts with the 0/1 label (like ``train.txt``, 40
        fields); otherwise only the 39 feature fields (like ``test.txt``).
    chunk_rows : int
        Lines per chunk (the last may be shorter); the concatenated output does
        not depend on it.  Memory use is about ``400 * chunk_rows`` bytes.

    Returns
    -------
    Iterator[bytes]
        Chunks of whole ``\\n``-terminated lines: ``I1..I13`` as decimal
        integers and ``C1..C26`` as 8 lowercase hex digits, tab-separated,
        empty where missing.

    Raises
    ------
    ValueError
        If ``n_rows < 0`` or ``chunk_rows <= 0``.

    Examples
    --------
    >>> from fastctr.io.datasets import make_criteo
    >>> data = b"".join(make_criteo(1_000, seed=0, chunk_rows=256))
    >>> lines = data.splitlines()
    >>> len(lines), len(lines[0].split(b"\\t"))
    (1000, 40)
    >>> data == b"".join(make_criteo(1_000, seed=0))
    True
    """
    if n_rows < 0 or chunk_rows <= 0:
        raise ValueError("n_rows must be >= 0 and chunk_rows > 0")
    return _chunks(n_rows, seed, labeled, chunk_rows)


def _chunks(n_rows: int, seed: int, labeled: bool, chunk_rows: int) -> Iterator[bytes]:
    """make_criteo's generator; one reused buffer, one kernel call per chunk."""
    model, key = _model(), _seed_key(seed)
    bias = _bias(seed) if labeled else 0.0
    buf = np.empty(min(chunk_rows, n_rows) * synth.MAX_ROW_BYTES, dtype=np.uint8)
    for start in range(0, n_rows, chunk_rows):
        count = min(chunk_rows, n_rows - start)
        size = synth.fill_tsv(buf, start, count, key, labeled, bias, model)
        yield buf[:size].tobytes()


def write_criteo(
    path: str | os.PathLike,
    n_rows: int = 1_000_000,
    *,
    seed: int = 0,
    labeled: bool = True,
    compress: bool | None = None,
) -> Path:
    """Write ``make_criteo(n_rows, seed=seed, labeled=labeled)`` to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    n_rows, seed, labeled
        As in :func:`make_criteo`.
    compress : bool or None
        Gzip the file; ``None`` means "if ``path`` ends with ``.gz``".

    Returns
    -------
    pathlib.Path
        The written path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from fastctr.io.datasets import write_criteo
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = write_criteo(pathlib.Path(d) / "train.txt.gz", 100)
    ...     p.name, p.stat().st_size > 0
    ('train.txt.gz', True)
    """
    path = Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    # level 1: the generator outruns gzip by far, so favour speed over size
    opener = gzip.open(path, "wb", compresslevel=1) if compress else open(path, "wb")
    with opener as f:
        for chunk in make_criteo(n_rows, seed=seed, labeled=labeled):
            f.write(chunk)
    return path


def criteo_rows(n_rows: int, *, seed: int = 0) -> tuple[list[dict[str, int | str]], np.ndarray]:
    """Labeled rows as dicts (missing fields omitted) plus the label array.

    Parameters
    ----------
    n_rows : int
        Number of rows; meant for small samples (parsed in Python).
    seed : int
        As in :func:`make_criteo`; the rows equal its first ``n_rows`` lines.

    Returns
    -------
    rows : list of dict
        ``{"I1": 3, ..., "C1": "68fd1e64", ...}``.
    labels : numpy.ndarray
        ``int8`` array of 0/1 clicks.

    Examples
    --------
    >>> from fastctr.io.datasets import criteo_rows
    >>> rows, y = criteo_rows(5)
    >>> len(rows), y.shape, all(len(r["C1"]) == 8 for r in rows)
    (5, (5,), True)
    """
    names = CRITEO_NUMERIC + CRITEO_CATEGORICAL
    rows: list[dict[str, int | str]] = []
    labels = np.empty(n_rows, dtype=np.int8)
    data = b"".join(make_criteo(n_rows, seed=seed)).decode("ascii")
    for i, line in enumerate(data.splitlines()):
        label, *values = line.split("\t")
        labels[i] = int(label)
        row: dict[str, int | str] = {}
        for name, value in zip(names, values):
            if value:
                row[name] = int(value) if name[0] == "I" else value
        rows.append(row)
    return rows, labels


# -- stand-ins for other kinds of data ---------------------------------------------------------
#: Avazu's columns (its ``id`` and ``click`` first), as in the Kaggle CTR competition's train.csv
AVAZU_COLUMNS = (
    "id", "click", "hour", "C1", "banner_pos", "site_id", "site_domain", "site_category",
    "app_id", "app_domain", "app_category", "device_id", "device_ip", "device_model",
    "device_type", "device_conn_type", "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21",
)
# Per feature column after hour: cardinality and Zipf exponent (roughly Avazu's: a few dominant
# site/app/device values, near-unique device ids and ips)
_AVAZU_SPEC = (
    (7, 2.0), (7, 2.0), (4000, 1.1), (5000, 1.1), (26, 1.5), (8000, 1.1), (500, 1.2),
    (36, 1.5), (500_000, 0.6), (800_000, 0.5), (8000, 1.0), (5, 2.0), (4, 2.0), (2600, 1.0),
    (8, 2.0), (9, 2.0), (460, 1.1), (4, 2.0), (170, 1.1), (60, 1.2), (170, 1.1),
)


def _zipf_draw(rng: np.random.Generator, cardinality: int, exponent: float, size: int) -> np.ndarray:
    """Ids in [0, cardinality) with P(id) proportional to (id + 1) ** -exponent."""
    cdf = np.cumsum(np.arange(1, cardinality + 1, dtype=np.float64) ** -exponent)
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(size)), cardinality - 1)


def _formatted(ids: np.ndarray, format_unique) -> list[str]:
    """``ids`` as strings, each distinct id formatted once by ``format_unique``."""
    unique, inverse = np.unique(ids, return_inverse=True)
    table = format_unique(unique)
    return [table[i] for i in inverse.tolist()]


def make_avazu(n_rows: int = 100_000, *, seed: int = 0) -> bytes:
    """Synthetic Avazu-style click log: a CSV with a header, as the Kaggle train.csv.

    Columns are :data:`AVAZU_COLUMNS`: a row ``id``, the ``click`` label, ``hour`` as
    ``YYMMDDHH`` rising through ten days, then 21 categorical columns (8-hex-digit ids for the
    site, app and device columns, small integers for the others) with Avazu-like cardinalities
    and Zipf skew. Clicks come from a hidden logistic model: per-value effects of every column
    (the head of each Zipf matters, the near-unique device ids and ips are noise), an
    hour-of-day effect and a site x device-model interaction, calibrated to a ~17% click rate.

    Parameters
    ----------
    n_rows : int
        Number of rows (>= 0).
    seed : int
        Seed of the hidden model and the draws.

    Returns
    -------
    bytes
        The CSV text (read it with ``read_data(data, "csv", label="click")``, or
        ``fastctr train --format csv --label click --ignore id``).

    Examples
    --------
    >>> from fastctr.io.datasets import make_avazu
    >>> lines = make_avazu(1_000, seed=0).splitlines()
    >>> len(lines), lines[0].split(b",")[:3]
    (1001, [b'id', b'click', b'hour'])
    """
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0; got {n_rows}")
    rng = np.random.default_rng([seed, 0xA7A2])
    hour = np.sort(rng.integers(0, 240, n_rows))
    margin = np.full(n_rows, -3.1) + 0.35 * np.sin(2 * np.pi * (hour % 24) / 24)
    columns = [map(str, rng.integers(10**17, 2**62, n_rows, dtype=np.int64).tolist()), None,
               _formatted(14102100 + (hour // 24) * 100 + hour % 24, lambda u: list(map(str, u.tolist())))]
    ids = []
    for c, (cardinality, exponent) in enumerate(_AVAZU_SPEC):
        v = _zipf_draw(rng, cardinality, exponent, n_rows)
        ids.append(v)
        effect = rng.normal(0.0, 0.35 if cardinality < 100_000 else 0.05, cardinality)
        margin += effect[v]
        name = AVAZU_COLUMNS[3 + c]
        salt = (seed * 1_000_003 + c * 7919) & 0xFFFF
        hexed = name.endswith(("_id", "_domain", "_category", "_ip", "_model"))
        columns.append(_formatted(v, lambda u, salt=salt, hexed=hexed, name=name: [
            f"{x:08x}" for x in ((u * 2654435761 + salt * 40503 + 0x5BD1E995) % 2**32).tolist()]
            if hexed else [str(x + (1000 if name[0] == "C" else 0)) for x in u.tolist()]))
    site, model = ids[2], ids[10]
    pair = rng.normal(0.0, 0.5, (64, 64))
    margin += pair[site % 64, model % 64] * ((site < 64) & (model < 64))
    clicks = rng.random(n_rows) < 1.0 / (1.0 + np.exp(-margin))
    columns[1] = ("1" if c else "0" for c in clicks.tolist())
    lines = [",".join(AVAZU_COLUMNS)] + [",".join(row) for row in zip(*columns)]
    return ("\n".join(lines) + "\n").encode("ascii")


def make_text(n_rows: int = 100_000, *, seed: int = 0, vocabulary: int = 50_000,
              words: float = 80.0) -> bytes:
    """Synthetic real-valued text in VW format, shaped like RCV1's TF-IDF rows.

    Each document draws about ``words`` tokens (log-normal length) from a Zipfian vocabulary;
    its features are the distinct words with TF-IDF values ``(1 + log tf) * idf`` scaled so
    that every row has unit L2 norm (all values in (0, 1], as in RCV1's VW files). The label
    comes from a hidden sparse logistic model over the words (a quarter of them carry a
    Laplace-distributed weight), with a margin spread that makes the classes about as separable
    as RCV1's CCAT (a linear model reaches AUC ~0.95) and ~47% positives.

    Parameters
    ----------
    n_rows : int
        Number of documents (>= 0).
    seed : int
        Seed of the hidden model and the draws.
    vocabulary : int
        Number of distinct words.
    words : float
        Mean number of tokens per document.

    Returns
    -------
    bytes
        VW lines ``1 |w w17:0.1832 w4:0.0712 ...`` (labels -1 and 1).

    Examples
    --------
    >>> from fastctr.io.datasets import make_text
    >>> line = make_text(10, seed=0).splitlines()[0]
    >>> line.split(b" ")[1], line.split(b" ")[2][:1]
    (b'|w', b'w')
    """
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0; got {n_rows}")
    rng = np.random.default_rng([seed, 0x7E47])
    rank = np.arange(1, vocabulary + 1, dtype=np.float64)
    p_word = rank**-1.0 / np.sum(rank**-1.0)
    idf = np.log(1.0 / np.minimum(1.0, p_word * words)) + 1.0  # rare words weigh more
    coef = rng.laplace(0.0, 1.0, vocabulary) * (rng.random(vocabulary) < 0.25)
    coef[:50] = 0.0  # the commonest words (stop words) say nothing
    lengths = np.maximum(1, rng.lognormal(np.log(words) - 0.125, 0.5, n_rows).astype(np.int64))
    tokens = _zipf_draw(rng, vocabulary, 1.0, int(lengths.sum()))
    doc = np.repeat(np.arange(n_rows), lengths)
    pairs, tf = np.unique(doc * np.int64(vocabulary) + tokens, return_counts=True)
    doc, word = pairs // vocabulary, pairs % vocabulary
    value = (1.0 + np.log(tf)) * idf[word]
    norm = np.sqrt(np.bincount(doc, value * value, n_rows))
    value /= norm[doc]
    margin = np.bincount(doc, coef[word] * value, n_rows)
    margin = 3.0 * (margin - np.median(margin)) / max(np.std(margin), 1e-12) - 0.1
    labels = np.where(rng.random(n_rows) < 1.0 / (1.0 + np.exp(-margin)), "1", "-1").tolist()
    # values written with 4 decimals (at least 0.0001): one string per word and per value
    names = [f"w{w}:" for w in range(vocabulary)]
    decimals = [f"{q / 10_000:.4f}" for q in range(10_001)]
    q = np.clip(np.rint(value * 10_000), 1, 10_000).astype(np.int64)
    feats = [names[w] + decimals[v] for w, v in zip(word.tolist(), q.tolist())]
    starts = np.searchsorted(doc, np.arange(n_rows + 1)).tolist()
    lines = [f"{labels[r]} |w {' '.join(feats[starts[r]:starts[r + 1]])}" for r in range(n_rows)]
    return ("\n".join(lines) + "\n").encode("ascii")
