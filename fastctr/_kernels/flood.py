"""Iterative flood-fill kernels (numba).

Both kernels fill every cell reachable from a seed through cells whose value
lies in ``[lo, hi]``; equality is the case ``lo == hi``. Neither recurses: work
is kept in explicit, growable numpy arrays, so region size is bounded only by
memory.

* :func:`span_fill` walks maximal runs ("spans") along the last, contiguous
  axis, the scanline idea behind OpenCV's ``floodFill`` generalised to n-D and
  to any neighbourhood whose rows are intervals (see ``fastctr.flood``).
* :func:`offset_fill` is a breadth-first search over raveled indices with
  arbitrary neighbour offsets, bounded by a padded flag array.

Only the output mask (or padded flag array) is written; the image is read-only.
Each fill is a driver around a ``_drain_*`` loop that never reallocates its
work array: numba rebinding an array variable inside a hot loop costs
reference counting and defeats LLVM's alias analysis (2-10x slower here). The
loop returns when the array might overflow; the driver grows it and resumes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

@njit(cache=True)
def _grown(work: np.ndarray, used: int) -> np.ndarray:
    """Copy of the 2-D ``work`` array with twice the rows; first ``used`` kept."""
    bigger = np.empty((2 * work.shape[0], work.shape[1]), dtype=work.dtype)
    bigger[:used] = work[:used]
    return bigger


@njit(cache=True)
def _run_start(img, base, x, lo, hi):
    """Leftmost index of the in-range run through ``x`` in the row at ``base``."""
    while x > 0 and lo <= img[base + x - 1] and img[base + x - 1] <= hi:
        x -= 1
    return x


@njit(cache=True)
def _run_end(img, base, x, width, lo, hi):
    """Rightmost index of the in-range run through ``x`` in the row at ``base``."""
    while x + 1 < width and lo <= img[base + x + 1] and img[base + x + 1] <= hi:
        x += 1
    return x


@njit(cache=True)
def _all_set(mask, start, stop):
    """Whether ``mask[start:stop + 1]`` is all nonzero; branch-free so that
    LLVM vectorises it."""
    acc = np.uint8(1)
    for i in range(start, stop + 1):
        acc &= mask[i]
    return acc != 0


@njit(cache=True)
def span_fill(img, mask, lead_shape, width, seed_row, seed_x, dlead, drow,
              elo, ehi, rev, lo, hi):
    """Scanline flood fill of a C-contiguous image viewed as rows of ``width``.

    Filled cells always form whole runs (maximal in-range stretches of a row):
    a popped span scans the cells it reaches in each neighbouring row, and an
    unfilled in-range cell there starts a run nobody has touched yet, which is
    filled and pushed whole.

    Parameters
    ----------
    img : 1-D array
        The raveled C-contiguous image, ``prod(lead_shape) * width`` cells.
    mask : 1-D uint8 array
        Zeroed output of the same size; filled cells are set to 1.
    lead_shape : int64 array, shape (m,)
        Shape of all axes but the last (``m = ndim - 1``).
    width : int
        Length of the last axis.
    seed_row, seed_x : int
        Seed as a raveled row index and a last-axis index. The seed value
        must lie in ``[lo, hi]``.
    dlead : int64 array, shape (K, m)
        Leading-axis offset of each neighbouring row.
    drow : int64 array, shape (K,)
        The same offsets raveled into a row-index delta.
    elo, ehi : int64 arrays, shape (K,)
        Last-axis offsets reaching row ``k`` form the interval ``[elo, ehi]``.
    rev : int64 array, shape (K,)
        Index of the opposite row offset, or -1; lets a span skip re-scanning
        its parent, whose cells are all filled.
    lo, hi : scalar of the image dtype
        Inclusive value range of fillable cells.
    """
    # A record: row, x0, x1, the row offset it was reached by (-1 for the
    # seed) and its parent's x0, x1.
    stack = np.empty((64, 6), dtype=np.int64)
    base = seed_row * width
    x0 = _run_start(img, base, seed_x, lo, hi)
    x1 = _run_end(img, base, seed_x, width, lo, hi)
    for i in range(base + x0, base + x1 + 1):
        mask[i] = 1
    stack[0, 0] = seed_row
    stack[0, 1] = x0
    stack[0, 2] = x1
    stack[0, 3] = -1
    sp = 1
    while True:
        sp = _drain_spans(img, mask, lead_shape, width, dlead, drow, elo, ehi,
                          rev, lo, hi, stack, sp)
        if sp == 0:
            return mask
        stack = _grown(stack, sp)


@njit(cache=True)
def _drain_spans(img, mask, lead_shape, width, dlead, drow, elo, ehi, rev,
                 lo, hi, stack, sp):
    """Pop and scan spans until none is left (returns 0) or the top span might
    push more records than ``stack`` has room for (returns the stack size).

    Hot loop: every extra branch or load per cell or per span shows in the
    benchmarks, hence the flat structure.
    """
    m = lead_shape.shape[0]
    nrows = drow.shape[0]
    total_rows = 1
    reach = 0
    for i in range(m):
        total_rows *= lead_shape[i]
    for k in range(nrows):
        reach = max(reach, ehi[k] - elo[k])
    lead = np.empty(m, dtype=np.int64)
    while sp > 0:
        top = sp - 1
        row = stack[top, 0]
        x0 = stack[top, 1]
        x1 = stack[top, 2]
        # Runs met in one segment start at least two cells apart.
        if top + nrows * ((x1 - x0 + reach + 2) // 2 + 2) > stack.shape[0]:
            return sp
        sp = top
        pk = stack[top, 3]
        p0 = stack[top, 4]
        p1 = stack[top, 5]
        if m > 1:
            # Leading coordinates of the row, for bounds checks; in 2-D the
            # row index itself is the coordinate.
            r = row
            for i in range(m - 1, -1, -1):
                lead[i] = r % lead_shape[i]
                r //= lead_shape[i]
        for k in range(nrows):
            nrow = row + drow[k]
            if m > 1:
                inside = True
                for i in range(m):
                    c = lead[i] + dlead[k, i]
                    inside &= c >= 0 and c < lead_shape[i]
                if not inside:
                    continue
            elif nrow < 0 or nrow >= total_rows:
                continue
            nbase = nrow * width
            s = max(x0 + elo[k], 0)
            e = min(x1 + ehi[k], width - 1)
            if pk >= 0 and k == rev[pk]:
                # Back towards the parent: its cells are filled, so trim them
                # off the scan when they cover one end of it.
                if p0 <= s:
                    s = max(s, p1 + 1)
                elif p1 >= e:
                    e = min(e, p0 - 1)
            if (e - s >= 16 and mask[nbase + s] and mask[nbase + e]
                    and _all_set(mask, nbase + s, nbase + e)):
                # Already filled (typical in n-D, where a row has many
                # neighbour rows): one vectorised pass instead of a scan.
                continue
            x = s
            while x <= e:
                v = img[nbase + x]
                if mask[nbase + x] or not (lo <= v and v <= hi):
                    x += 1
                    continue
                # Only the scan's first cell can have an in-range left
                # neighbour: any later one would have been found first.
                # (_run_start/_run_end inlined by hand: calls cost ~10% here.)
                r0 = x
                if x == s:
                    while r0 > 0 and lo <= img[nbase + r0 - 1] and img[nbase + r0 - 1] <= hi:
                        r0 -= 1
                r1 = x
                while r1 + 1 < width and lo <= img[nbase + r1 + 1] and img[nbase + r1 + 1] <= hi:
                    r1 += 1
                for i in range(nbase + r0, nbase + r1 + 1):
                    mask[i] = 1
                stack[sp, 0] = nrow
                stack[sp, 1] = r0
                stack[sp, 2] = r1
                stack[sp, 3] = k
                stack[sp, 4] = x0
                stack[sp, 5] = x1
                sp += 1
                # r1 + 1 is out of range (or past the row's end).
                x = r1 + 2
    return sp


@njit(cache=True)
def offset_fill(img, flags, seed_flag, seed_img, flag_offsets, img_offsets,
                lo, hi):
    """Breadth-first flood fill over arbitrary neighbour offsets.

    Parameters
    ----------
    img : 1-D array
        The raveled C-contiguous image.
    flags : 1-D uint8 array
        The raveled, padded flag array: 0 unvisited, 1 filled, 2 border. The
        border is at least as wide as the largest offset on each axis, so a
        step never leaves the array or wraps to another row.
    seed_flag, seed_img : int
        Seed index in ``flags`` and in ``img``. The seed is filled whatever
        its value, as in scikit-image.
    flag_offsets, img_offsets : int64 arrays, shape (K,)
        Each neighbour offset raveled in ``flags`` and in ``img``.
    lo, hi : scalar of the image dtype
        Inclusive value range of fillable cells.
    """
    # FIFO ring of (flag index, image index) pairs, ``size`` of them from
    # ``head``; its length stays a power of two.
    ring = np.empty((64, 2), dtype=np.int64)
    ring[0, 0] = seed_flag
    ring[0, 1] = seed_img
    flags[seed_flag] = 1
    head = 0
    size = 1
    while True:
        head, size = _drain_ring(img, flags, flag_offsets, img_offsets, lo, hi,
                                 ring, head, size)
        if size == 0:
            return flags
        ring = _unrolled(ring, head, size)
        head = 0


@njit(cache=True)
def _unrolled(ring: np.ndarray, head: int, size: int) -> np.ndarray:
    """A ring twice as long holding the ``size`` items from ``head`` in order
    at its front."""
    n = ring.shape[0]
    bigger = np.empty((2 * n, ring.shape[1]), dtype=ring.dtype)
    for j in range(size):
        bigger[j] = ring[(head + j) & (n - 1)]
    return bigger


@njit(cache=True)
def _drain_ring(img, flags, flag_offsets, img_offsets, lo, hi, ring, head, size):
    """Pop and expand cells until the ring is empty or might overflow;
    returns the new ``(head, size)``."""
    nk = flag_offsets.shape[0]
    wrap = ring.shape[0] - 1
    while size > 0 and size + nk <= ring.shape[0]:
        f = ring[head, 0]
        i = ring[head, 1]
        head = (head + 1) & wrap
        size -= 1
        for k in range(nk):
            fn = f + flag_offsets[k]
            if flags[fn] != 0:
                continue
            j = i + img_offsets[k]
            v = img[j]
            if lo <= v and v <= hi:
                flags[fn] = 1
                tail = (head + size) & wrap
                ring[tail, 0] = fn
                ring[tail, 1] = j
                size += 1
    return head, size
