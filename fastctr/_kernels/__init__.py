"""numba kernels: pure functions over contiguous numpy arrays, state updated in place."""
