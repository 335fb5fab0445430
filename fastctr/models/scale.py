"""The feature values' scale, and FTRL's hyperparameters carried to it.

fastctr's default hyperparameters are meant for one-hot rows (every value 1), as click logs
hashed by the readers are. Real-valued rows (L2-normalised TF-IDF text, libsvm files) have
values ~10x smaller: learned with the same values, FTRL's L1 zeroes nearly every weight and
its learning rate is 10x too slow per unit of margin. The estimators therefore measure the
:func:`value_scale` of the first batch they learn (``value_scale="auto"``, kept in the state
and in model files as ``value_scale_``) and learn with :func:`scaled_params`: exactly FTRL on
the values divided by that scale, without touching a value. One-hot rows have scale 1:
nothing changes for them.
"""
from __future__ import annotations

import math

import numpy as np

from fastctr.io.rows import HashedRows

#: the FTRL hyperparameters the value scale changes
LINEAR_PARAMS = ("alpha", "beta", "l1", "l2")


def value_scale(rows: HashedRows) -> float:
    """The typical size of a feature value: the root mean square of the entries other than
    the bias (field id 0; with no field ids, of every entry). 1 for one-hot rows and when
    there is no such entry.

    Examples
    --------
    >>> import numpy as np
    >>> rows = HashedRows(np.array([0, 3]), np.array([0, 5, 9]), np.array([1.0, 0.6, 0.8]),
    ...                   fields=np.array([0, 1, 1]))
    >>> round(value_scale(rows), 4)
    0.7071
    """
    values = rows.values if rows.fields is None else rows.values[rows.fields != 0]
    if values.size == 0:
        return 1.0
    rms = float(np.sqrt(np.mean(np.square(values, dtype=np.float64))))
    return rms if rms > 0 and math.isfinite(rms) else 1.0


def scaled_params(params: dict[str, float], scale: float) -> dict[str, float]:
    """FTRL hyperparameters meant for values of size 1, carried to values of size ``scale``.

    Learning the values divided by ``scale`` with ``(alpha, beta, l1, l2)`` is *exactly* FTRL
    on the raw values with ``(alpha / scale, beta * scale, l1 * scale, l2 * scale**2)`` (z and
    sqrt(n) scale by ``scale``, the weights by 1/scale): no value is transformed to learn or
    to predict. ``scaled_params(p, 1 / scale)`` undoes it.

    Examples
    --------
    >>> scaled_params({"alpha": 0.1, "beta": 1.0, "l1": 0.5, "l2": 1.0}, 0.5)
    {'alpha': 0.2, 'beta': 0.5, 'l1': 0.25, 'l2': 0.25}
    """
    return {"alpha": params["alpha"] / scale, "beta": params["beta"] * scale,
            "l1": params["l1"] * scale, "l2": params["l2"] * scale * scale}
