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
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Stack columns of span_fill after the leading coordinates.
_ROW, _X0, _X1, _PK, _P0, _P1 = range(6)
_SPAN_FIELDS = 6


@njit(cache=True)
def _grow_rows(stack: np.ndarray) -> np.ndarray:
    """Return a copy of the 2-D ``stack`` with twice as many rows."""
    bigger = np.empty((2 * stack.shape[0], stack.shape[1]), dtype=stack.dtype)
    bigger[: stack.shape[0]] = stack
    return bigger


@njit(cache=True)
def _push_span(stack, sp, lead, c, row, x0, x1, pk, p0, p1):
    """Push one span record with leading coordinates ``lead + c``.

    Returns the (possibly reallocated) stack and its new size.
    """
    if sp == stack.shape[0]:
        stack = _grow_rows(stack)
    m = c.shape[0]
    for i in range(m):
        stack[sp, i] = lead[i] + c[i]
    stack[sp, m + _ROW] = row
    stack[sp, m + _X0] = x0
    stack[sp, m + _X1] = x1
    stack[sp, m + _PK] = pk
    stack[sp, m + _P0] = p0
    stack[sp, m + _P1] = p1
    return stack, sp + 1


@njit(cache=True)
def _scan_segment(img, mask, base, width, s, e, lo, hi, stack, sp, lead, c,
                  row, k, p0, p1):
    """Fill every unfilled run meeting cells ``s..e`` of one row, pushing each.

    Filled cells always form whole runs, so an unfilled in-range cell starts a
    run that no other span has touched: extend it, fill it, push it, and skip
    the out-of-range cell that ended it.
    """
    x = s
    while x <= e:
        v = img[base + x]
        if mask[base + x] or not (lo <= v and v <= hi):
            x += 1
            continue
        x0 = x
        # Only the first cell of the segment can have an in-range left
        # neighbour: any later one would have been found first.
        if x == s:
            while x0 > 0 and lo <= img[base + x0 - 1] and img[base + x0 - 1] <= hi:
                x0 -= 1
        x1 = x
        while x1 + 1 < width and lo <= img[base + x1 + 1] and img[base + x1 + 1] <= hi:
            x1 += 1
        mask[base + x0: base + x1 + 1] = 1
        stack, sp = _push_span(stack, sp, lead, c, row, x0, x1, k, p0, p1)
        x = x1 + 2
    return stack, sp


@njit(cache=True)
def span_fill(img, mask, lead_shape, width, seed_lead, seed_row, seed_x,
              dlead, drow, elo, ehi, rev, lo, hi):
    """Scanline flood fill of a C-contiguous image viewed as rows of ``width``.

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
    seed_lead, seed_row, seed_x : int64 array (m,), int, int
        Seed coordinates: leading axes, raveled row index, last axis.
        The seed value must lie in ``[lo, hi]``.
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
    m = lead_shape.shape[0]
    nrows = drow.shape[0]
    stack = np.empty((64, m + _SPAN_FIELDS), dtype=np.int64)
    stack[0, :m] = seed_lead

    base = seed_row * width
    x0 = seed_x
    while x0 > 0 and lo <= img[base + x0 - 1] and img[base + x0 - 1] <= hi:
        x0 -= 1
    x1 = seed_x
    while x1 + 1 < width and lo <= img[base + x1 + 1] and img[base + x1 + 1] <= hi:
        x1 += 1
    mask[base + x0: base + x1 + 1] = 1
    stack[0, m + _ROW] = seed_row
    stack[0, m + _X0] = x0
    stack[0, m + _X1] = x1
    stack[0, m + _PK] = -1
    sp = 1

    # The popped record is copied out because its children overwrite it.
    lead = np.empty(m, dtype=np.int64)
    while sp > 0:
        sp -= 1
        lead[:] = stack[sp, :m]
        row = stack[sp, m + _ROW]
        x0 = stack[sp, m + _X0]
        x1 = stack[sp, m + _X1]
        pk = stack[sp, m + _PK]
        p0 = stack[sp, m + _P0]
        p1 = stack[sp, m + _P1]
        for k in range(nrows):
            inside = True
            for i in range(m):
                ci = lead[i] + dlead[k, i]
                if ci < 0 or ci >= lead_shape[i]:
                    inside = False
            if not inside:
                continue
            nrow = row + drow[k]
            nbase = nrow * width
            s = max(x0 + elo[k], 0)
            e = min(x1 + ehi[k], width - 1)
            if pk >= 0 and k == rev[pk]:
                # The parent span is filled already: scan only around it.
                stack, sp = _scan_segment(img, mask, nbase, width, s,
                                          min(e, p0 - 1), lo, hi, stack, sp,
                                          lead, dlead[k], nrow, k, x0, x1)
                stack, sp = _scan_segment(img, mask, nbase, width,
                                          max(s, p1 + 1), e, lo, hi, stack, sp,
                                          lead, dlead[k], nrow, k, x0, x1)
            else:
                stack, sp = _scan_segment(img, mask, nbase, width, s, e, lo,
                                          hi, stack, sp, lead, dlead[k], nrow,
                                          k, x0, x1)
    return mask


@njit(cache=True)
def _grow_ring(ring: np.ndarray, head: int) -> np.ndarray:
    """Return a ring buffer twice the size holding ``ring``'s items in order."""
    n = ring.shape[0]
    bigger = np.empty((2 * n, ring.shape[1]), dtype=ring.dtype)
    bigger[: n - head] = ring[head:]
    bigger[n - head: n] = ring[:head]
    return bigger


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
    # FIFO of (flag index, image index) pairs; its length is a power of two.
    ring = np.empty((64, 2), dtype=np.int64)
    head = 0
    size = 1
    ring[0, 0] = seed_flag
    ring[0, 1] = seed_img
    flags[seed_flag] = 1
    nk = flag_offsets.shape[0]
    while size > 0:
        f = ring[head, 0]
        i = ring[head, 1]
        head = (head + 1) & (ring.shape[0] - 1)
        size -= 1
        for k in range(nk):
            fn = f + flag_offsets[k]
            if flags[fn] != 0:
                continue
            v = img[i + img_offsets[k]]
            if lo <= v and v <= hi:
                flags[fn] = 1
                if size == ring.shape[0]:
                    ring = _grow_ring(ring, head)
                    head = 0
                tail = (head + size) & (ring.shape[0] - 1)
                ring[tail, 0] = fn
                ring[tail, 1] = i + img_offsets[k]
                size += 1
    return flags
