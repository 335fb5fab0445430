"""Factorization machines: FMClassifier (Rendle 2010) and FFMClassifier (Juan et al. 2016).

Both learn online over hashed sparse rows with the logistic loss: a linear part (the bias
included) trained with FTRL-Proximal exactly as :class:`fastctr.FTRLClassifier` (so L1 gives
exact zeros), plus latent factors trained with per-coordinate AdaGrad.
"""
from __future__ import annotations

import abc
import numbers
from collections.abc import Sequence

import numpy as np

from fastctr._ext._score import FFMScorer, FMScorer, RowHasher
from fastctr._kernels.tuples import DIVERGE_LIMIT, FFMHyper, FMHyper, FMState
from fastctr._validation import Booleans, Interval
from fastctr.exceptions import DivergenceError
from fastctr.io.rows import HashedRows
from fastctr.models.base import NON_NEGATIVE, POSITIVE, OnlineClassifier
from fastctr.serving.factors import FactorScorer

__all__ = ["FFMClassifier", "FMClassifier"]

_SEED_MASK = (1 << 53) - 1  # seeds stay exact as float64 (older model files, JSON readers)


class _FactorizationBase(OnlineClassifier):
    """Shared plumbing of FM and FFM: state, seeds, kernel calls, divergence errors."""

    State = FMState

    def _derive_seed(self) -> int:
        ss = np.random.SeedSequence(self.random_state)
        lo, hi = ss.generate_state(2, np.uint32)
        return int((int(hi) << 32 | int(lo)) & _SEED_MASK)

    @abc.abstractmethod
    def _fields_of(self, rows: HashedRows) -> np.ndarray:
        """The field id of every entry, as the kernels read them."""

    @abc.abstractmethod
    def _vg_shape(self) -> tuple[int, ...]:
        """The shape of the latent table ``vg_`` under the current parameters."""

    def _allocate(self) -> None:
        self.zn_ = np.zeros((1 << self.bits, 2), np.float64)
        self.vg_ = np.zeros(self._vg_shape(), np.float64)
        self.seed_ = self._derive_seed()

    def _state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {**super()._state_shapes(), "vg": self._vg_shape()}

    def _check_state(self, state) -> None:
        super()._check_state(state)
        seed = state.seed
        if not (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
                and 0 <= seed <= _SEED_MASK):
            raise ValueError(f"{type(self).__name__} state 'seed' must be an int in [0, 2**53); "
                             f"got {seed!r}")

    @staticmethod
    @abc.abstractmethod
    def _kernels() -> tuple:
        """The model's numba kernels ``(fit, margin)``, imported on first use (numba loads
        with them, not with fastctr)."""

    def _learn(self, rows: HashedRows, p_out: np.ndarray) -> None:
        status = self._call(self._kernels()[0], rows, p_out)
        if status >= 0:
            self._diverged(rows, int(status))

    def _margins(self, rows: HashedRows, out: np.ndarray) -> None:
        self._call(self._kernels()[1], rows, out)

    def _make_scorer(self):
        hasher = self.hasher_
        return self._scorer_class(RowHasher(hasher._spec, hasher.fields), self._live_state(),
                                  self._hyper())

    def to_scorer(self, dtype: str = "float32", layout: str = "sparse") -> FactorScorer:
        """A read-only serving artifact: the linear weights and latent vectors of the touched
        buckets as float32, float16 or int8, in a small table keyed by bucket (``"sparse"``)
        or one row per bucket (``"dense"``); see
        :class:`fastctr.serving.factors.FactorScorer`."""
        from fastctr._kernels.ftrl import ftrl_weights  # numba: loaded when a scorer is made

        self._check_fitted()
        coef = np.empty(self.zn_.shape[0])
        ftrl_weights(self._live_state(), self._hyper(), coef)
        return FactorScorer.from_factors(self.hasher_, coef, self.vg_, self.seed_, self.init_std,
                                         bool(getattr(self, "normalize", False)), dtype, layout)

    def _diverged(self, rows: HashedRows, r: int) -> None:
        # Rows before r were learned: count them, then say what the row held and every
        # possible cause with its fix (the values are only one of them).
        name = type(self).__name__
        self.n_rows_seen_ += r
        row = rows[r : r + 1]
        m = np.empty(1)
        self._margins(row, m)
        biggest = float(np.abs(row.values).max()) if row.nnz else 0.0
        weight = "1" if row.weights is None else f"{float(row.weights[0]):.3g}"
        label = "" if row.labels is None else f", label {float(row.labels[0]):g}"
        k = self.vg_.shape[-1] // 2
        latent = float(np.abs(self.vg_[row.indices, ..., :k]).max()) if row.nnz else 0.0
        raise DivergenceError(
            f"{name} diverged at row {r} of this batch (row {self.n_rows_seen_} overall, counted "
            f"from 0): its margin or latent energy left the finite range (margin {m[0]:.3g}, "
            f"limit {DIVERGE_LIMIT:.0e}). That row: largest |feature value| {biggest:.3g}, "
            f"importance weight {weight}{label}, largest |latent factor| of its buckets "
            f"{latent:.3g}. Possible causes: (1) a learning rate too high "
            f"for the data: lower eta (latent factors, eta={self.eta!r}) and/or alpha (linear "
            f"part, alpha={self.alpha!r}), e.g. by 10x; (2) huge or non-finite feature values: "
            "scale numeric features (numeric_transform='log1p' or 'bin', or rescale the values "
            "to about [-10, 10]); (3) a huge importance weight (sample_weight or a VW "
            "importance multiplies the row's every step); (4) model weights already huge (a "
            "state learned at too high a rate, or set by hand): start from a fresh model. The "
            "rows before it were learned and the state is finite; that row and the rest of the "
            "batch were not."
        )

    @property
    def V_(self) -> np.ndarray:
        """Latent vectors of the touched buckets (a view; untouched ones read 0 here but are
        their seeded initial vectors for prediction and learning)."""
        k = self.vg_.shape[-1] // 2
        return self.vg_[..., :k]

    @property
    def G_(self) -> np.ndarray:
        """AdaGrad accumulators (a view; 0 marks an untouched latent vector, else >= 1)."""
        k = self.vg_.shape[-1] // 2
        return self.vg_[..., k:]


class FMClassifier(_FactorizationBase):
    """Factorization machine (Rendle, ICDM 2010) for click prediction, learned online.

    The margin of a row ``x`` is ``w . x + sum_{j<l} <v_j, v_l> x_j x_l``, the pairwise sum
    computed in O(k x nnz) with the sum-of-squares identity over the entries whose field id is
    not 0 (the bias the hasher puts first in every row is linear only; rows without field ids,
    such as a scipy CSR, have no such entry and every entry interacts). Logistic loss.

    * Linear part (bias included): FTRL-Proximal, the same math as
      :class:`fastctr.FTRLClassifier` (``alpha``, ``beta``, ``l1``, ``l2``; exact zeros under L1).
    * Latent factors: per-coordinate AdaGrad with learning rate ``eta`` (accumulators start at
      1, as in libFFM) and L2 penalty ``l2_v / 2 * ||v||^2`` per touched vector and row.
    * Sample weights scale every gradient (a weight-0 row changes nothing).
    * Latent vectors start as seeded uniform draws with standard deviation ``init_std``,
      computed per bucket from ``(random_state, bucket)`` on first touch: every call costs
      O(k x non-zeros) and memory is committed only for touched buckets.
    * Stable by construction: gradients are clipped per coordinate to +-1e4 and AdaGrad steps
      are at most ``eta`` times that, so the state stays finite; a row whose margin or latent
      energy ``sum (v x)^2`` is non-finite or beyond 1e8 stops learning with a
      :class:`DivergenceError` naming the cause and the fix (scale the features, lower eta).

    Parameters
    ----------
    alpha, beta, l1, l2 : float, default=0.1, 1.0, 0.5, 1.0
        FTRL-Proximal parameters of the linear part (see FTRLClassifier).
    k : int, default=8
        Latent dimension (1 to 256).
    eta : float, default=0.02
        AdaGrad learning rate of the latent factors.
    l2_v : float, default=1e-4
        L2 regularisation of the latent factors.
    init_std : float, default=0.01
        Standard deviation of the initial latent values.
    random_state : int or None, default=0
        Seed of the initial latent values (None: a fresh seed, kept in ``seed_``).
    epochs : int, default=1
        Passes over the data made by :meth:`fit`.
    n_jobs : int, default=1
        Threads learning each batch at once, lock-free (Hogwild); 1 is deterministic.
    value_scale : "auto" or float, default="auto"
        The typical size of the feature values the linear part's alpha, beta, l1 and l2 are
        carried to, as in FTRLClassifier ("auto": measured on the first batch learned).
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
        FTRL's z and sqrt(n) of the linear weights.
    vg_ : ndarray of shape (2**bits, 2 * k)
        Latent vector and AdaGrad accumulators of every bucket, side by side (``V_`` and
        ``G_`` are views). float64: 2**bits * 16k bytes, 512 MiB at bits=22, k=8, committed
        by the OS only for touched buckets.
    seed_ : int
        The seed of the initial latent values.
    n_rows_seen_ : int
        Rows learned so far.
    state : FMState
        ``(zn, vg, seed, n_rows_seen, value_scale)``: everything learned, for
        :meth:`from_state`.

    Examples
    --------
    >>> from fastctr.models.fm import FMClassifier
    >>> rows = [{"C1": "a", "C2": "x"}, {"C1": "a", "C2": "y"},
    ...         {"C1": "b", "C2": "x"}, {"C1": "b", "C2": "y"}] * 200
    >>> y = [1, 0, 0, 1] * 200          # XOR of two fields: no linear model can learn it
    >>> model = FMClassifier(k=4, eta=0.2, init_std=0.1, bits=18).fit(rows, y)
    >>> [round(model.predict_one(r)) for r in rows[:4]]
    [1, 0, 0, 1]
    """

    _parameter_constraints = {
        **OnlineClassifier._parameter_constraints,
        "k": [Interval(numbers.Integral, 1, 256, closed="both")],
        "eta": POSITIVE,
        "l2_v": NON_NEGATIVE,
        "init_std": NON_NEGATIVE,
        "random_state": [Interval(numbers.Integral, 0, None, closed="left"), None],
    }
    _scorer_class = FMScorer

    def __init__(
        self,
        alpha: float = 0.1,
        beta: float = 1.0,
        l1: float = 0.5,
        l2: float = 1.0,
        k: int = 8,
        eta: float = 0.02,
        l2_v: float = 1e-4,
        init_std: float = 0.01,
        random_state: int | None = 0,
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

    @staticmethod
    def _kernels() -> tuple:
        from fastctr._kernels.fm import fm_fit_splat, fm_margin_splat

        return fm_fit_splat, fm_margin_splat

    def _hyper(self) -> FMHyper:
        return FMHyper(**self._linear_hyper(), eta=self.eta, l2_v=self.l2_v,
                       init_std=self.init_std)

    def _vg_shape(self) -> tuple[int, ...]:
        return (1 << self.bits, 2 * self.k)

    def _fields_of(self, rows: HashedRows) -> np.ndarray:
        if rows.fields is None:  # no field ids: no bias entry, every entry interacts
            return np.ones(rows.nnz, np.uint16)
        return rows.fields


class FFMClassifier(_FactorizationBase):
    """Field-aware factorization machine (Juan et al., RecSys 2016), learned online.

    Every bucket has one latent vector per field; the margin of a row is
    ``w . x + r * sum_{j<l} <V[i_j, f_l], V[i_l, f_j]> x_j x_l`` over the entries whose field
    id is not 0 (the bias is linear only), with libFFM's instance normalisation
    ``r = 1 / sum_j x_j^2`` when ``normalize=True`` (each row's non-bias values scaled to unit
    squared norm in the pairwise term). The rows must carry field ids (``HashedRows.fields``,
    filled by FeatureHasher and the readers); field ids are ``1 + position`` in the hasher's
    schema, crosses after the fields.

    Cost: O(k x nnz^2) per row for prediction and learning (741 pairs for a 39-field Criteo
    row), against O(k x nnz) for :class:`FMClassifier`. Memory: ``vg_`` is float64 of shape
    (2**bits, n_fields, 2k): 2**bits * n_fields * 16k bytes, 640 MiB for the Criteo schema at
    the default bits=18, k=4 (committed only where touched), hence the smaller default bits.

    The linear part (bias included) is FTRL-Proximal as in FTRLClassifier; the latent vectors
    follow libFFM's per-pair AdaGrad update (accumulators start at 1), with L2 ``l2_v``,
    seeded lazy initialisation, gradient clipping and divergence detection as in
    :class:`FMClassifier`. Sample weights scale every gradient.

    Parameters
    ----------
    alpha, beta, l1, l2 : float, default=0.1, 1.0, 0.5, 1.0
        FTRL-Proximal parameters of the linear part.
    k : int, default=4
        Latent dimension (1 to 256).
    eta : float, default=0.1
        AdaGrad learning rate of the latent factors.
    l2_v : float, default=2e-5
        L2 regularisation of the latent factors (libFFM's lambda).
    init_std : float, default=0.1
        Standard deviation of the initial latent values.
    normalize : bool, default=True
        libFFM's instance normalisation of the pairwise term.
    random_state : int or None, default=0
        Seed of the initial latent values.
    epochs : int, default=1
        Passes over the data made by :meth:`fit`.
    n_jobs : int, default=1
        Threads learning each batch at once, lock-free (Hogwild); 1 is deterministic.
    value_scale : "auto" or float, default="auto"
        The typical size of the feature values the linear part's alpha, beta, l1 and l2 are
        carried to, as in FTRLClassifier ("auto": measured on the first batch learned).
    fields, numeric, bits, hash_seed, numeric_transform, crosses
        Hashing of raw rows, as in :class:`fastctr.FeatureHasher`; ``bits`` defaults to 18.
    unknown : {"strict", "ignore"}, default="strict"
        A dict row's key (or DataFrame column) that is not a field raises ValueError naming
        it ("strict"), or is skipped ("ignore"), as in :class:`fastctr.FeatureHasher`; it
        changes no hash, so it may be set after fit.

    Notes
    -----
    Inputs and scikit-learn use as in :class:`fastctr.FTRLClassifier`, except that a scipy
    sparse matrix carries no field ids (refused), and a 2-D array may have at most as many
    columns as ``fields`` names (its column ``j`` has field id ``1 + j``).

    Attributes
    ----------
    zn_ : ndarray of shape (2**bits, 2)
    vg_ : ndarray of shape (2**bits, n_fields, 2 * k)
        ``n_fields = hasher_.n_fields`` (bias + fields + crosses).
    seed_, n_rows_seen_
        As in FMClassifier.

    Examples
    --------
    >>> from fastctr.models.fm import FFMClassifier
    >>> rows = [{"C1": "a", "C2": "x"}, {"C1": "a", "C2": "y"},
    ...         {"C1": "b", "C2": "x"}, {"C1": "b", "C2": "y"}] * 200
    >>> y = [1, 0, 0, 1] * 200
    >>> model = FFMClassifier(k=4, eta=0.2, init_std=0.1, normalize=False, bits=18).fit(rows, y)
    >>> [round(model.predict_one(r)) for r in rows[:4]]
    [1, 0, 0, 1]
    """

    _parameter_constraints = {**FMClassifier._parameter_constraints, "normalize": [Booleans()]}
    _accepts_sparse = False  # it needs field ids
    _scorer_class = FFMScorer

    def __init__(
        self,
        alpha: float = 0.1,
        beta: float = 1.0,
        l1: float = 0.5,
        l2: float = 1.0,
        k: int = 4,
        eta: float = 0.1,
        l2_v: float = 2e-5,
        init_std: float = 0.1,
        normalize: bool = True,
        random_state: int | None = 0,
        epochs: int = 1,
        n_jobs: int = 1,
        *,
        value_scale: float | str = "auto",
        fields: Sequence[str] | None = None,
        numeric: Sequence[str] | None = None,
        bits: int = 18,
        hash_seed: int = 0,
        numeric_transform: str = "bin",
        crosses: Sequence[tuple[str, str]] = (),
        unknown: str = "strict",
    ) -> None:
        self._store_params(locals())

    @staticmethod
    def _kernels() -> tuple:
        from fastctr._kernels.ffm import ffm_fit_splat, ffm_margin_splat

        return ffm_fit_splat, ffm_margin_splat

    def _hyper(self) -> FFMHyper:
        return FFMHyper(**self._linear_hyper(), eta=self.eta, l2_v=self.l2_v,
                        init_std=self.init_std, normalize=bool(self.normalize))

    def _vg_shape(self) -> tuple[int, ...]:
        return (1 << self.bits, self.hasher_.n_fields, 2 * self.k)

    def _fields_of(self, rows: HashedRows) -> np.ndarray:
        if rows.fields is None:
            raise ValueError(
                "FFMClassifier needs the field id of every entry, and these rows have none "
                "(HashedRows.fields is None, e.g. rows from a scipy CSR: sparse input is not "
                "supported). Pass dict rows, a 2-D array, a "
                "DataFrame, or HashedRows from a FeatureHasher or a reader, which fill fields."
            )
        n_fields = self.vg_.shape[1]
        if rows.nnz and int(rows.fields.max()) >= n_fields:
            raise ValueError(
                f"FFMClassifier: field ids must be < n_fields = {n_fields} (bias + "
                f"{len(self.hasher_.fields)} fields + {len(self.hasher_.crosses)} crosses of "
                f"this model's hasher); got a field id {int(rows.fields.max())}. Hash the rows "
                "with the model's own hasher (model.hasher_)."
            )
        return rows.fields
