"""Open-addressing table of a scorer's non-zero weights (bucket -> slot), built once."""
import numpy as np
from numba import njit

EMPTY = np.uint32(0xFFFFFFFF)  # never a bucket: buckets are < 2**30
GOLDEN = 0x9E3779B1  # Fibonacci hashing spreads consecutive buckets (as src_ext/_score.pyx)


@njit(cache=True)
def table_slots(buckets, capacity_bits):
    """Slot of each bucket in a linear-probing table of 2**capacity_bits slots."""
    size = 1 << capacity_bits
    taken = np.full(size, EMPTY, np.uint32)
    slots = np.empty(buckets.shape[0], np.int64)
    for j in range(buckets.shape[0]):
        b = np.uint64(buckets[j])
        # 32-bit multiply (mod 2**32), then the top capacity_bits bits
        s = np.int64(((b * np.uint64(GOLDEN)) & np.uint64(0xFFFFFFFF)) >> np.uint64(32 - capacity_bits))
        while taken[s] != EMPTY:
            s = (s + 1) & (size - 1)
        taken[s] = buckets[j]
        slots[j] = s
    return slots
