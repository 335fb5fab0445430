"""Iterative flood-fill kernels (numba).

Every kernel fills each cell reachable from a seed through cells whose value
lies in ``[lo, hi]``; equality is the case ``lo == hi``. None recurses: work
is kept in explicit numpy arrays, so region size is bounded only by memory.

* :func:`bit_fill` grows the region a whole row of the last, contiguous axis
  at a time, on bitmasks packed 64 cells to a word: 1-D runs are filled with
  carries and shifts, and reached from neighbouring rows by shifted ORs. For
  any neighbourhood whose rows are intervals (see ``fastctr.image.flood``) on rows
  of at least 64 cells; its per-row bookkeeping makes narrower rows costly.
* :func:`span_fill` walks maximal runs ("spans") along the last axis, the
  scanline idea behind OpenCV's ``floodFill`` generalised to n-D: the same
  neighbourhoods on narrow rows. It works cell by cell, which costs branches
  when runs are short (noisy images), hence :func:`bit_fill`.
* :func:`offset_fill` is a breadth-first search over raveled indices with
  arbitrary neighbour offsets, bounded by a padded flag array.

The image is read-only. :func:`span_fill` and :func:`offset_fill` are drivers
around a ``_drain_*`` loop that never reallocates its work array: numba
rebinding an array variable inside a hot loop costs reference counting and
defeats LLVM's alias analysis (2-10x slower here). The loop returns when the
array might overflow; the driver grows it and resumes.
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


@njit(cache=True, inline="always")
def _row_coords(row, lead_shape, lead):
    """Leading coordinates of a row into ``lead`` (for bounds checks); nothing in 2-D, where
    the row index itself is the coordinate."""
    if lead_shape.shape[0] > 1:
        r = row
        for i in range(lead_shape.shape[0] - 1, -1, -1):
            lead[i] = r % lead_shape[i]
            r //= lead_shape[i]


@njit(cache=True, inline="always")
def _neighbour_inside(nrow, k, lead, dlead, lead_shape, total_rows):
    """Whether neighbour row ``k`` (index ``nrow``) of the row at ``lead`` lies in the image."""
    if lead_shape.shape[0] > 1:
        for i in range(lead_shape.shape[0]):
            c = lead[i] + dlead[k, i]
            if c < 0 or c >= lead_shape[i]:
                return False
        return True
    return 0 <= nrow < total_rows


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
        _row_coords(row, lead_shape, lead)
        for k in range(nrows):
            nrow = row + drow[k]
            if not _neighbour_inside(nrow, k, lead, dlead, lead_shape, total_rows):
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


_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_TOP = np.uint64(63)


# Eight 0/1 flag bytes, read as a little-endian uint64, pack into one byte by
# a multiply: each product term moves one flag to its place, and no two
# terms overlap, so nothing carries.
_GATHER = np.uint64(0x0102040810204080)  # flag at bit 8j -> bit 56 + j


@njit(cache=True)
def _load_row(img, base, width, lo, hi, cand, row, buf):
    """Pack ``lo <= img[base:base + width] <= hi`` into ``cand[row]``: bit i
    of word w is cell ``64 * w + i``; bits past the row's end stay clear.

    ``buf`` is a scratch uint64 array of ``8 * cand.shape[1]`` words. Two
    passes (compare into bytes, then gather) vectorise; a shift-or per cell
    does not, and is ten times slower.
    """
    flags = buf.view(np.uint8)
    # Through a slice, the index is provably non-negative: numba then drops
    # its negative-index wraparound, which would block vectorisation.
    cells = img[base:base + width]
    for i in range(width):
        v = cells[i]
        flags[i] = (lo <= v) & (v <= hi)
    flags[width:] = 0
    for w in range(cand.shape[1]):
        bits = _ZERO
        for k in range(8):
            byte = (buf[8 * w + k] * _GATHER) >> np.uint64(56)
            bits |= byte << np.uint64(8 * k)
        cand[row, w] = bits


@njit(cache=True)
def _store_row(fill, row, width, mask, base):
    """Set ``mask[base + i]`` to 1 for each filled cell i of ``fill[row]``.

    A whole-row loop of byte-wise shifts by ``i & 7`` vectorises (word-wise
    shifts, or a loop per word, do not: 2-20x slower on full rows)."""
    bits = fill[row].view(np.uint8)
    out = mask[base:base + width]
    for i in range(width):
        out[i] = (bits[i >> 3] >> (i & 7)) & 1


@njit(cache=True)
def _word_runs(c, s):
    """The bits of word ``c`` in runs (stretches of set bits) holding a bit
    of ``s``, a subset of ``c``; within this word only."""
    # Upward by carry: adding a seed to its run clears it from the seed up and
    # carries into the clear bit above; xor recovers the bits, | s any later
    # seeds of the same run.
    x = (((c + s) ^ c) | s) & c
    # Downward by doubling (Kogge-Stone occluded fill): g marks bits whose
    # next 1, 2, 4, ... lower bits are all candidates.
    g = c
    x |= (x >> np.uint64(1)) & g
    g &= g >> np.uint64(1)
    x |= (x >> np.uint64(2)) & g
    g &= g >> np.uint64(2)
    x |= (x >> np.uint64(4)) & g
    g &= g >> np.uint64(4)
    x |= (x >> np.uint64(8)) & g
    g &= g >> np.uint64(8)
    x |= (x >> np.uint64(16)) & g
    g &= g >> np.uint64(16)
    x |= (x >> np.uint64(32)) & g
    return x


@njit(cache=True)
def _fill_runs(cand, fill, row, t, seeds):
    """Fill the runs of ``cand[row]`` through ``seeds`` (unfilled bits of word
    ``t``), following them across words; returns the first and last word
    changed.

    Filled cells form whole runs, so the runs of unfilled seeds are wholly
    unfilled: following them needs no look at ``fill``.
    """
    nw = cand.shape[1]
    x = _word_runs(cand[row, t], seeds)
    fill[row, t] |= x
    first = t
    last = t
    # A run through bit 63 goes on while the next word starts with a candidate.
    up = x >> _TOP
    w = t + 1
    while up != 0 and w < nw:
        c = cand[row, w]
        y = ((c + _ONE) ^ c) & c  # bit 0 up to the first clear bit
        if y == 0:
            break
        fill[row, w] |= y
        last = w
        up = y >> _TOP
        w += 1
    down = x & _ONE
    w = t - 1
    while down != 0 and w >= 0:
        c = cand[row, w]
        if c >> _TOP == 0:
            break
        y = _word_runs(c, _ONE << _TOP)
        fill[row, w] |= y
        first = w
        down = y & _ONE
        w -= 1
    return first, last


@njit(cache=True)
def bit_fill(img, mask, lead_shape, width, seed_row, seed_x, dlead, drow,
             elo, ehi, lo, hi):
    """Flood fill on packed bitmasks, a row of the last axis at a time.

    Two bitmasks of shape (rows, words) are kept: ``cand``, the cells in
    ``[lo, hi]`` (packed from the image when a row is first reached), and
    ``fill``, the filled cells. Filled cells always form whole runs of
    ``cand`` in their row. A stack holds the rows whose filled cells may
    reach unfilled candidates in neighbouring rows, each with the range of
    words changed since it was last scanned; a row is on the stack at most
    once (a second push widens its range), so the stack needs one slot per
    row. Scanning a row shifts and ORs its filled words into each neighbour
    row, and fills the runs of candidates they hit there.

    Memory: two bits per cell, plus 42 bytes per row.

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
        Last-axis offsets reaching row ``k`` form the interval ``[elo, ehi]``;
        ``-63 <= elo <= ehi <= 63``, so one word reaches at most its two
        neighbours.
    lo, hi : scalar of the image dtype
        Inclusive value range of fillable cells.
    """
    m = lead_shape.shape[0]
    nk = drow.shape[0]
    nrows = 1
    for i in range(m):
        nrows *= lead_shape[i]
    nw = (width + 63) // 64
    cand = np.empty((nrows, nw), dtype=np.uint64)
    fill = np.zeros((nrows, nw), dtype=np.uint64)
    loaded = np.zeros(nrows, dtype=np.bool_)
    queued = np.zeros(nrows, dtype=np.bool_)
    dirty = np.empty((nrows, 2), dtype=np.int64)
    stack = np.empty(nrows, dtype=np.int64)
    lead = np.empty(m, dtype=np.int64)
    buf = np.empty(8 * nw, dtype=np.uint64)  # scratch for _load_row

    _load_row(img, seed_row * width, width, lo, hi, cand, seed_row, buf)
    loaded[seed_row] = True
    first, last = _fill_runs(cand, fill, seed_row, seed_x // 64,
                             _ONE << np.uint64(seed_x % 64))
    dirty[seed_row, 0] = first
    dirty[seed_row, 1] = last
    queued[seed_row] = True
    stack[0] = seed_row
    sp = 1
    while sp > 0:
        sp -= 1
        row = stack[sp]
        queued[row] = False
        # Words changed since the row was last scanned: only they (and, by
        # a shift across a word boundary, one word either side) can reach
        # new cells. Earlier filled words were scanned already.
        a = dirty[row, 0]
        b = dirty[row, 1]
        _row_coords(row, lead_shape, lead)
        for k in range(nk):
            nrow = row + drow[k]
            if not _neighbour_inside(nrow, k, lead, dlead, lead_shape, nrows):
                continue
            if not loaded[nrow]:
                _load_row(img, nrow * width, width, lo, hi, cand, nrow, buf)
                loaded[nrow] = True
            d0 = elo[k]
            d1 = ehi[k]
            t0 = max(a - 1, 0) if d0 < 0 else a
            t1 = min(b + 1, nw - 1) if d1 > 0 else b
            first = nw
            last = -1
            for t in range(t0, t1 + 1):
                # Cells of word t in row nrow reached from the filled cells of
                # row: cell x from x - d for each d in [d0, d1].
                cur = fill[row, t]
                prev = fill[row, t - 1] if t > 0 else _ZERO
                nxt = fill[row, t + 1] if t + 1 < nw else _ZERO
                reach = _ZERO
                for d in range(d0, d1 + 1):
                    if d > 0:
                        reach |= (cur << np.uint64(d)) | (prev >> np.uint64(64 - d))
                    elif d < 0:
                        reach |= (cur >> np.uint64(-d)) | (nxt << np.uint64(64 + d))
                    else:
                        reach |= cur
                # An unfilled reached candidate starts an unfilled run.
                seeds = reach & cand[nrow, t] & ~fill[nrow, t]
                if seeds != 0:
                    run_first, run_last = _fill_runs(cand, fill, nrow, t, seeds)
                    first = min(first, run_first)
                    last = max(last, run_last)
            if last >= 0:
                if queued[nrow]:
                    dirty[nrow, 0] = min(dirty[nrow, 0], first)
                    dirty[nrow, 1] = max(dirty[nrow, 1], last)
                else:
                    dirty[nrow, 0] = first
                    dirty[nrow, 1] = last
                    queued[nrow] = True
                    stack[sp] = nrow
                    sp += 1
    # Filled rows are among the loaded ones; the others stay zero.
    for row in range(nrows):
        if loaded[row] and fill[row].any():
            _store_row(fill, row, width, mask, row * width)
    return mask
