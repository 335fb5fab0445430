"""Helpers over the CSR rows the kernels read (:class:`fastctr._kernels.tuples.Rows`)."""
from numba import njit


@njit(cache=True)
def longest_row(indptr):
    """The most entries of any row (the size of a kernel's per-row buffers)."""
    longest = 0
    for r in range(indptr.shape[0] - 1):
        longest = max(longest, indptr[r + 1] - indptr[r])
    return longest
