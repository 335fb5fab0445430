"""FTRLClassifier: FTRL-Proximal logistic regression over hashed sparse rows."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fastctr._ext._score import FTRLScorer, RowHasher
from fastctr._kernels.tuples import FTRLHyper, FTRLState
from fastctr.io.rows import HashedRows
from fastctr.models.base import OnlineClassifier
from fastctr.serving.scorer import Scorer


class FTRLClassifier(OnlineClassifier):
    """Logistic regression trained online with FTRL-Proximal (McMahan et al., KDD 2013).

    Exactly Algorithm 1 of the paper with per-coordinate learning rates
    ``alpha / (beta + sqrt(n_i))``: L1 gives exact zeros (``w_i = 0`` when
    ``|z_i| <= l1``), and ``l2`` is the paper's lambda_2, added to the denominator of the
    closed-form weight (an L2 penalty ``l2 / 2 * ||w||^2`` per step). A hash collision inside
    one row is treated as two entries sharing one weight, each updated in turn, as in Vowpal
    Wabbit. Every call costs O(non-zeros) of its rows; the 2**bits table is allocated lazily
    (and zero-filled by the OS on first touch).

    Parameters
    ----------
    alpha : float, default=0.1
        Learning-rate scale.
    beta : float, default=1.0
        Learning-rate smoothing; > 0 so a weight is finite even when read mid-update.
    l1 : float, default=0.5
        L1 regularisation (lambda_1).
    l2 : float, default=1.0
        L2 regularisation (lambda_2).
    epochs : int, default=1
        Passes over the data made by :meth:`fit` (``partial_fit`` always makes one).
    n_jobs : int, default=1
        Threads learning each batch at once, lock-free (Hogwild). 1 is sequential and
        deterministic; more is faster on several cores but not reproducible run to run.
    value_scale : "auto" or float, default="auto"
        The typical size of the feature values alpha, beta, l1 and l2 are carried to (they
        are meant for values of size 1, as one-hot click logs have). "auto" measures it on
        the first batch learned (the root mean square of the non-bias values: 1 for one-hot
        rows, ~0.1 for L2-normalised text); 1.0 turns the scaling off. Learning is then
        exactly FTRL on the values divided by it (see :mod:`fastctr.models.scale`).
    fields, numeric, bits, hash_seed, numeric_transform, crosses
        Hashing of raw rows, as in :class:`fastctr.FeatureHasher` (default: the Criteo
        schema in 2**22 buckets).
    unknown : {"strict", "ignore"}, default="strict"
        A dict row's key (or DataFrame column) that is not a field raises ValueError naming
        it ("strict"), or is skipped ("ignore"), as in :class:`fastctr.FeatureHasher`; it
        changes no hash, so it may be set after fit.

    Attributes
    ----------
    zn_ : ndarray of shape (2**bits, 2)
        FTRL's z and sqrt(n) per bucket, side by side.
    n_rows_seen_ : int
        Rows learned so far.
    value_scale_ : float
        The value scale learning uses (the parameter, or measured on the first batch).
    state : FTRLState
        ``(zn, n_rows_seen, value_scale)``: everything learned, for :meth:`from_state` (and
        model files).

    Notes
    -----
    Predicting before any row was learned raises :class:`fastctr.NotFittedError`. Parameters
    are checked when first used (fit, partial_fit, predict), as scikit-learn does, with
    :class:`fastctr.InvalidParameterError`.

    X is a list of dict rows, a DataFrame, HashedRows, a scipy sparse matrix of hashed columns
    or a 2-D numeric array, whose column ``j`` is the numeric field ``"x{j}"`` (with
    ``fields=["x0", ...]`` and ``numeric`` the same, ``predict_one({"x0": ...})`` scores a
    single such row). The estimators work with scikit-learn's tools (``clone``,
    ``cross_val_score``, ``GridSearchCV``, ``Pipeline``); labels are clicks: {0, 1}, {-1, 1}
    or bool.

    Examples
    --------
    >>> from fastctr import FTRLClassifier
    >>> rows = [{"C1": "68fd1e64", "I1": 3}, {"C1": "80e26c9b"}] * 50
    >>> model = FTRLClassifier(bits=18).fit(rows, [1, 0] * 50)
    >>> round(model.predict_one({"C1": "68fd1e64", "I1": 3}), 2)
    0.75
    >>> model.predict_proba(rows[:2]).round(2)
    array([[0.25, 0.75],
           [0.67, 0.33]])
    """

    # its parameters' constraints are OnlineClassifier._parameter_constraints
    State = FTRLState

    def __init__(
        self,
        alpha: float = 0.1,
        beta: float = 1.0,
        l1: float = 0.5,
        l2: float = 1.0,
        epochs: int = 1,
        n_jobs: int = 1,
        *,
        value_scale: float | str = "auto",
        fields: Sequence[str] | None = None,
        numeric: Sequence[str] | None = None,
        bits: int = 22,
        hash_seed: int = 0,
        numeric_transform: str = "bin",
        crosses: Sequence[tuple[str, str]] = (),
        unknown: str = "strict",
    ) -> None:
        self._store_params(locals())

    def _hyper(self) -> FTRLHyper:
        return FTRLHyper(**self._linear_hyper())

    def _allocate(self) -> None:
        self.zn_ = np.zeros((1 << self.bits, 2), np.float64)

    def _learn(self, rows: HashedRows, p_out: np.ndarray) -> None:
        from fastctr._kernels.ftrl import ftrl_fit_splat

        self._call(ftrl_fit_splat, rows, p_out)

    def _margins(self, rows: HashedRows, out: np.ndarray) -> None:
        # The compiled scorer over the live state (predict_one's weights and sums; no numba).
        self._scorer().score(rows.indptr, rows.indices, rows.values, out, 0, rows.n_rows, False)

    def _make_scorer(self) -> FTRLScorer:
        hasher = self.hasher_
        return FTRLScorer(RowHasher(hasher._spec, hasher.fields), self._live_state(), self._hyper())

    def to_scorer(self, dtype: str = "float32", layout: str = "sparse") -> Scorer:
        """A read-only serving artifact: the weights as float32, float16 or int8, either the
        non-zero ones in a small table (``"sparse"``) or one per bucket (``"dense"``, the
        fastest for batches); see :class:`fastctr.serving.scorer.Scorer`."""
        return Scorer.from_weights(self.hasher_, self.coef_, dtype, layout)

    @property
    def coef_(self) -> np.ndarray:
        """The weight of every bucket, materialised from z and n (exact zeros under L1)."""
        from fastctr._kernels.ftrl import ftrl_weights

        self._check_fitted()
        out = np.empty(self.zn_.shape[0])
        ftrl_weights(self._live_state(), self._hyper(), out)
        return out
