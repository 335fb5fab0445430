"""Input checks over a batch's entries, in one pass (no temporaries on the training path)."""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def entries_are_valid(indices, values, size):
    """Whether every index lies in [0, size) and every value is finite.

    Branch-free so that it vectorises: a negative index wraps to >= size as uint32, and
    v - v is 0 only for a finite v (NaN for NaN and +-inf).
    """
    bad = False
    limit = np.uint32(size)
    for j in range(indices.shape[0]):
        bad |= (np.uint32(indices[j]) >= limit) | (values[j] - values[j] != 0)
    return not bad
