"""Type stubs of the compiled ``fastctr._ext._score`` (src_ext/_score.pyx): single-row
serving, a raw row (a dict, or one tab-separated line) hashed and scored in one call."""
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

#: a raw row: {field name: value}, or the fields' values in schema order separated by tabs
_RawRow = dict[str, object] | str | bytes

DTYPES: tuple[str, ...]
#: |margin| beyond which the probability is clipped (shared with the numba kernels)
MARGIN_CLIP: float
#: splitmix64's (golden, mix1, mix2) constants of the latent vectors' seeded initial values
SPLITMIX64: tuple[int, int, int]
#: uniform initial values on [-s, s) with s = init_std * INIT_SCALE have std init_std
INIT_SCALE: float
#: the sparse scorer table's bucket hash multiplier, and its empty-slot key
TABLE_HASH: int
TABLE_EMPTY: int

def probabilities(margins: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Probabilities of no click and click, shape (n, 2), with ``predict_one``'s sigmoid."""

class RowHasher:
    """Hashes one raw row into reusable buffers with the FeatureHasher's spec."""

    def __init__(self, spec_arrays: tuple, keys: tuple[str, ...]) -> None: ...
    def hash_row(
        self, row: _RawRow
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], npt.NDArray[np.uint16]]:
        """(indices, values, fields) of one raw row, as new arrays."""
    def hash_row_bytes(self, row: _RawRow) -> tuple[bytes, bytes, bytes]:
        """(indices, values, fields) of one raw row as bytes in the machine's order (int32,
        float32, uint16): what an impression keeps, without an array between."""

class _LiveScorer:
    """Scores rows against a model's live state: ``state`` is the model's State NamedTuple
    (``zn``, and ``vg``, ``seed`` for FM/FFM), ``hyper`` its hyperparameter NamedTuple."""

    def __init__(self, hasher: RowHasher, state: NamedTuple, hyper: NamedTuple) -> None: ...
    def predict_one(self, row: _RawRow) -> float:
        """Probability of a click for one raw row."""
    def predict_hashed(
        self,
        indices: npt.ArrayLike,
        values: npt.ArrayLike,
        fields: npt.ArrayLike | None = None,
    ) -> float:
        """Probability of a click for one pre-hashed row (int32 indices, float32 values,
        uint16 field ids)."""

class FTRLScorer(_LiveScorer):
    """Scores rows against live FTRL state ``zn`` (z and n interleaved per bucket)."""

    def __init__(self, hasher: RowHasher, state: NamedTuple, hyper: NamedTuple) -> None: ...
    def score(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        values: npt.NDArray[np.float32],
        out: npt.NDArray[np.float64],
        start: int,
        stop: int,
        proba: bool,
    ) -> None:
        """Rows ``start:stop`` of a CSR batch into ``out`` (margins, or with ``proba`` the
        probabilities of no click and click): FTRLClassifier's batch prediction, the GIL
        released."""

class FMScorer(_LiveScorer):
    """Scores rows against live FM state: FTRL ``zn`` and latent ``vg`` (V | G per bucket)."""

    def __init__(self, hasher: RowHasher, state: NamedTuple, hyper: NamedTuple) -> None: ...

class FFMScorer(_LiveScorer):
    """Scores rows against live FFM state: FTRL ``zn`` and latent ``vg`` (bucket, field, V | G)."""

    def __init__(self, hasher: RowHasher, state: NamedTuple, hyper: NamedTuple) -> None: ...

class DenseScorer:
    """Scores rows with one stored weight per bucket (float32, float16 as uint16, or int8;
    ``dtype`` indexes DTYPES)."""

    def __init__(
        self, hasher: RowHasher, weights: np.ndarray, dtype: int, scale: float, bits: int
    ) -> None: ...
    def predict_one(self, row: _RawRow) -> float: ...
    def score(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        values: npt.NDArray[np.float32],
        out: npt.NDArray[np.float64],
        start: int,
        stop: int,
        proba: bool,
    ) -> None:
        """Rows ``start:stop`` of a CSR batch into ``out`` (margins, or with ``proba`` the
        probabilities of no click and click); the GIL is released."""

class TableScorer(DenseScorer):
    """Weights of the non-zero buckets only, in a linear-probing table keyed by bucket."""

    def __init__(
        self,
        hasher: RowHasher,
        keys: npt.NDArray[np.uint32],
        weights: np.ndarray,
        dtype: int,
        scale: float,
        bits: int,
    ) -> None: ...

#: the largest latent dimension a FactorTable scores (the models' k is at most 256)
MAX_FACTORS: int

class FactorTable:
    """Scores rows with stored FM or FFM weights: ``weights`` one linear weight per row,
    ``factors`` (n, k) for FM or (n, n_fields, k) for FFM (float32, float16 as uint16, or
    int8 times ``scale_w`` / ``scale_v``; ``dtype`` indexes DTYPES); ``keys`` the bucket of
    each table slot and ``rows`` its row (sparse), or both None (dense: row = bucket). Buckets
    not stored score with their seeded initial latent values."""

    def __init__(
        self,
        hasher: RowHasher,
        keys: npt.NDArray[np.uint32] | None,
        rows: npt.NDArray[np.uint32] | None,
        weights: np.ndarray,
        factors: np.ndarray,
        dtype: int,
        scale_w: float,
        scale_v: float,
        bits: int,
        seed: int,
        init_scale: float,
        normalize: bool,
    ) -> None: ...
    def predict_one(self, row: _RawRow) -> float:
        """Probability of a click for one raw row."""
    def score(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        values: npt.NDArray[np.float32],
        fields: npt.NDArray[np.uint16] | None,
        out: npt.NDArray[np.float64],
        start: int,
        stop: int,
        proba: bool,
    ) -> None:
        """Rows ``start:stop`` of a CSR batch into ``out`` (margins, or with ``proba`` the
        probabilities of no click and click); the GIL is released. ``fields`` None: every
        entry interacts (FM only)."""

def fill_initial(
    buckets: npt.NDArray[np.uint32],
    fresh: npt.NDArray[np.uint8],
    out: npt.NDArray[np.float64],
    seed: int,
    scale: float,
) -> None:
    """``out[r, f, :]`` = the seeded initial latent vector of bucket ``buckets[r]`` towards
    field f, wherever ``fresh[r, f]``."""
