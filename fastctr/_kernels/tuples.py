"""The NamedTuples the kernels take, and the constants their callers share, without numba.

Estimators build these (their ``State``, their hyperparameters, the ``Rows`` of a batch), and
a process that only predicts builds them too, so they live apart from the numba kernels:
importing this module loads numpy only. The kernels of :mod:`fastctr._kernels.ftrl`,
:mod:`~fastctr._kernels.fm` and :mod:`~fastctr._kernels.ffm` take them whole, as
``(rows, state, hyper, out)``.
"""
from typing import NamedTuple

import numpy as np

MARGIN_CLIP = 35.0  # |margin| beyond this changes p by < 1e-15; keeps exp finite
GRAD_CLIP = 1e4  # FM/FFM's per-coordinate gradient clip: bounds every step, keeps g*g finite
DIVERGE_LIMIT = 1e8  # |margin| or a row's latent energy sum (v x)^2 beyond this = diverged


class Rows(NamedTuple):
    """A CSR batch passed whole to a kernel: ``rows.indices[rows.indptr[r]:rows.indptr[r + 1]]``
    are row r's buckets. Every field is always an array, so each kernel compiles once:
    ``fields`` (uint16, one per entry) is empty for a model that reads none, and ``labels``
    and ``weights`` (float32, one per row) are empty for prediction."""

    indptr: np.ndarray  # int64, n_rows + 1
    indices: np.ndarray  # int32, nnz
    values: np.ndarray  # float32, nnz
    fields: np.ndarray  # uint16, nnz or 0
    labels: np.ndarray  # float32, n_rows or 0
    weights: np.ndarray  # float32, n_rows or 0


# Kernels are called from Python as ``kernel_splat(*rows, *state, *hyper, out)``: numba types a
# flat argument list in ~2 us, NamedTuples of arrays in ~5-10 us more per call (measured), and
# the ``*_splat`` entry rebuilds the tuples inside (free) by the field counts below.
ROW_FIELDS = len(Rows._fields)

NO_FIELDS = np.empty(0, np.uint16)
NO_TARGETS = np.empty(0, np.float32)


class FTRLHyper(NamedTuple):
    """FTRL-Proximal's hyperparameters, as the estimator's attributes of the same names.

    FM's and FFM's hyperparameter tuples start with the same four fields, so every function
    of :mod:`fastctr._kernels.ftrl` reads them too.
    """

    alpha: float
    beta: float
    l1: float
    l2: float


class FTRLState(NamedTuple):
    """What an FTRLClassifier learned (``model.state``).

    Attributes
    ----------
    zn : ndarray of float64, shape (2**bits, 2)
        z and sqrt(n) of every bucket, side by side.
    n_rows_seen : int
        Rows learned so far.
    value_scale : float
        The typical size of the feature values, measured on the first batch learned (see
        :mod:`fastctr.models.scale`): the estimator carries its hyperparameters to it before
        they reach the kernels, which read ``zn`` only. 1.0 in files written before it.
    """

    zn: np.ndarray
    n_rows_seen: int
    value_scale: float = 1.0


class FMHyper(NamedTuple):
    """FMClassifier's hyperparameters, as its attributes of the same names (the first four
    are :class:`FTRLHyper`'s, read by the linear part)."""

    alpha: float
    beta: float
    l1: float
    l2: float
    eta: float
    l2_v: float
    init_std: float


class FMState(NamedTuple):
    """What an FMClassifier or FFMClassifier learned (``model.state``).

    Attributes
    ----------
    zn : ndarray of float64, shape (2**bits, 2)
        FTRL's z and sqrt(n) of the linear weights.
    vg : ndarray of float64, shape (2**bits, 2 * k), or (2**bits, n_fields, 2 * k) for FFM
        Latent vectors and their AdaGrad accumulators, side by side.
    seed : int
        Seed of the initial latent values (in [0, 2**53)).
    n_rows_seen : int
        Rows learned so far.
    value_scale : float
        The typical size of the feature values (as in :class:`FTRLState`).
    """

    zn: np.ndarray
    vg: np.ndarray
    seed: int
    n_rows_seen: int
    value_scale: float = 1.0


class FFMHyper(NamedTuple):
    """FFMClassifier's hyperparameters, as its attributes of the same names."""

    alpha: float
    beta: float
    l1: float
    l2: float
    eta: float
    l2_v: float
    init_std: float
    normalize: bool
