"""Flood fill: drop-in replacements for ``skimage.segmentation.flood`` and
``skimage.segmentation.flood_fill``.

This module validates input, resolves the neighbourhood exactly as
scikit-image does, and picks a kernel from :mod:`fastctr.image._kernels`:

* a row kernel when every row of the neighbourhood (cells sharing all
  leading coordinates) is an interval along the last axis and the seed's own
  row holds exactly the two adjacent cells, which covers every
  ``connectivity`` and the default full connectivity: on bitmasks, 64 cells
  a word, when rows have at least ``_BIT_MIN_WIDTH`` cells (and the
  neighbourhood reaches at most 63 cells along it), else a scanline kernel;
* a breadth-first search over arbitrary offsets for any other footprint (and
  for a NaN seed, which is filled without matching itself).
"""

from __future__ import annotations

import math
import numbers
import operator
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from fastctr.image._kernels import bit_fill, offset_fill, span_fill

__all__ = ["flood", "flood_fill", "SeedOutOfBoundsError"]

class SeedOutOfBoundsError(IndexError, ValueError):
    """``seed_point`` lies outside the image.

    An ``IndexError`` like NumPy's (and scikit-image's) and a ``ValueError``
    like every other bad argument here.
    """


def flood(
    image: Any,
    seed_point: int | tuple[int, ...],
    *,
    footprint: Any = None,
    connectivity: float | None = None,
    tolerance: float | None = None,
) -> np.ndarray:
    """Mask of the region a flood fill from `seed_point` would cover.

    Starting at `seed_point`, every cell connected to it through cells equal
    to (or within `tolerance` of) the seed value is selected. Same signature
    and answers as :func:`skimage.segmentation.flood`.

    Parameters
    ----------
    image : array_like
        An n-dimensional (n >= 1) array of any integer, float (float16 to
        float64) or bool dtype, in any memory layout.
    seed_point : tuple of int or int
        Index of the starting cell, one integer per axis; negative indices
        count from the end. For a 1-D image a plain int is accepted.
    footprint : array_like, optional
        Neighbourhood of each cell: an array with the same number of
        dimensions as `image`, odd length on every axis, nonzero where a
        neighbour is. The centre cell is not a neighbour of itself. If None,
        `connectivity` decides.
    connectivity : int, optional
        Neighbours are the cells reachable in at most `connectivity`
        orthogonal steps (1: faces only; ``image.ndim``: all adjacent cells).
        If both `footprint` and `connectivity` are None, all adjacent cells
        are neighbours (full connectivity). Ignored if `footprint` is given.
    tolerance : float or int, optional
        If None (default), cells must equal the seed value. Otherwise cells
        whose value is within ``abs(tolerance)`` of the seed value (inclusive)
        are filled; the range is clipped to the dtype's range and then cast to
        it, truncating toward zero for integer dtypes, as scikit-image does.
        For a float image, an integer too large for a float (``10**400``) is
        an infinite tolerance: every finite value matches, as with
        ``float("inf")`` (scikit-image raises ``OverflowError``).

    Returns
    -------
    mask : ndarray of bool
        Same shape as `image`; True on the filled region. It may be a view
        (transposed, or cropped from a padded work array) rather than a
        C-contiguous array. An image with an axis of length 0 gives an empty
        mask of its shape whatever the other arguments, as in scikit-image.

    Raises
    ------
    TypeError
        For an unsupported dtype (complex, object, ...) or non-integer seed
        coordinates, connectivity or tolerance of the wrong type.
    ValueError
        For a 0-d image, a seed with the wrong number of coordinates
        or outside the image (:class:`SeedOutOfBoundsError`), a bad footprint,
        or a NaN tolerance or connectivity.

    See Also
    --------
    flood_fill : Set the region to a new value.

    Notes
    -----
    Unlike scikit-image, float16 is supported (compared exactly, via float32).

    Neighbours are only looked for along axes longer than one cell: a step
    along any other leaves the image. So a 16-D image of one cell (or of
    shape ``(2, 1, ..., 1)``) has no or two neighbour offsets, not ``3**16``.

    Fills never recurse; work lists live in arrays. Besides the mask, a fill
    along rows of 64 or more cells (the contiguous axis) keeps two bitmasks,
    a quarter byte per cell, and 42 bytes per row. The image is read in
    place when some permutation of its axes is C-contiguous (so C and
    Fortran order cost nothing); other views, float16, and non-native byte
    order are copied once.

    Reproducing scikit-image exactly includes one quirk: the footprint's
    offsets are sorted by distance from the centre and the first is dropped,
    meant to be the centre itself. If the footprint's centre is zero, the
    nearest neighbour (first in C order) is dropped instead.

    Examples
    --------
    >>> import numpy as np
    >>> from fastctr.image.flood import flood
    >>> image = np.zeros((4, 7), dtype=int)
    >>> image[1:3, 1:3] = 1
    >>> image[3, 0] = 1
    >>> image[1:3, 4:6] = 2
    >>> image[3, 6] = 3

    Full connectivity (diagonals included) is the default:

    >>> flood(image, (1, 1)).astype(int)
    array([[0, 0, 0, 0, 0, 0, 0],
           [0, 1, 1, 0, 0, 0, 0],
           [0, 1, 1, 0, 0, 0, 0],
           [1, 0, 0, 0, 0, 0, 0]])

    Faces only (connectivity 1) leaves the diagonal cell out:

    >>> flood(image, (1, 1), connectivity=1).astype(int)
    array([[0, 0, 0, 0, 0, 0, 0],
           [0, 1, 1, 0, 0, 0, 0],
           [0, 1, 1, 0, 0, 0, 0],
           [0, 0, 0, 0, 0, 0, 0]])

    With a tolerance, values 0 and 1 are both within 1 of the seed's 0:

    >>> flood(image, (0, 0), tolerance=1).astype(int)
    array([[1, 1, 1, 1, 1, 1, 1],
           [1, 1, 1, 1, 0, 0, 1],
           [1, 1, 1, 1, 0, 0, 1],
           [1, 1, 1, 1, 1, 1, 0]])

    A 1-D image takes an int seed, negative indices count from the end:

    >>> flood(np.array([5, 5, 7, 5, 5]), -1)
    array([False, False, False,  True,  True])
    """
    image = np.asarray(image)
    if 0 in image.shape:  # scikit-image's answer, before any check: no cell to fill
        return np.zeros(image.shape, dtype=bool)
    _check_image(image)
    seed = _normalize_seed(seed_point, image.shape)
    neighborhood = _neighborhood_key(footprint, connectivity, image.shape)
    if tolerance is not None:
        _check_tolerance(tolerance)

    work, perm = _kernel_view(image)
    work_seed = tuple(seed[p] for p in perm)
    if tolerance is None:
        lo = hi = work[work_seed]
    else:
        lo, hi = _value_range(image[seed], tolerance, work.dtype)

    plan = _span_plan(neighborhood, perm, work.shape)
    if plan is not None and lo <= work[work_seed] <= hi:
        mask = _span_flood(work, work_seed, plan, lo, hi)
    else:
        offsets = _neighbor_offsets(neighborhood)[:, perm]
        mask = _offset_flood(work, work_seed, offsets, lo, hi)
    if perm != tuple(range(work.ndim)):
        mask = mask.transpose(np.argsort(perm))
    return mask


def flood_fill(
    image: Any,
    seed_point: int | tuple[int, ...],
    new_value: Any,
    *,
    footprint: Any = None,
    connectivity: float | None = None,
    tolerance: float | None = None,
    in_place: bool = False,
) -> np.ndarray:
    """Set the flood-filled region of `image` to `new_value`.

    Same signature and answers as :func:`skimage.segmentation.flood_fill`;
    the region is the one :func:`flood` selects.

    Parameters
    ----------
    image : array_like
        An n-dimensional (n >= 1) array; see :func:`flood`.
    seed_point : tuple of int or int
        Index of the starting cell; see :func:`flood`.
    new_value : scalar
        Value for the filled cells. It must be representable in
        ``image.dtype``: within the integer range and integral for integer
        dtypes, finite-to-finite for floats, 0/1 for bool.
    footprint, connectivity, tolerance
        Define the region; see :func:`flood`.
    in_place : bool, optional
        If True, fill `image` itself (it must be a writeable ndarray) and
        return it. If False (default), return a filled copy.

    Returns
    -------
    filled : ndarray
        `image` (``in_place=True``) or a copy of it, with the region set to
        `new_value`.

    Raises
    ------
    TypeError
        If `new_value` is not a real scalar, or ``in_place=True`` is given
        something other than an ndarray; plus everything :func:`flood` raises.
    ValueError
        If `new_value` does not fit ``image.dtype``, or ``in_place=True`` is
        given a read-only array; plus everything :func:`flood` raises.

    Examples
    --------
    >>> import numpy as np
    >>> from fastctr.image.flood import flood_fill
    >>> image = np.zeros((4, 7), dtype=int)
    >>> image[1:3, 1:3] = 1
    >>> image[3, 0] = 1
    >>> image[1:3, 4:6] = 2
    >>> image[3, 6] = 3
    >>> flood_fill(image, (1, 1), 5)
    array([[0, 0, 0, 0, 0, 0, 0],
           [0, 5, 5, 0, 2, 2, 0],
           [0, 5, 5, 0, 2, 2, 0],
           [5, 0, 0, 0, 0, 0, 3]])
    >>> flood_fill(image, (1, 1), 5, connectivity=1)
    array([[0, 0, 0, 0, 0, 0, 0],
           [0, 5, 5, 0, 2, 2, 0],
           [0, 5, 5, 0, 2, 2, 0],
           [1, 0, 0, 0, 0, 0, 3]])
    >>> flood_fill(image, (0, 0), 5, tolerance=1)
    array([[5, 5, 5, 5, 5, 5, 5],
           [5, 5, 5, 5, 2, 2, 5],
           [5, 5, 5, 5, 2, 2, 5],
           [5, 5, 5, 5, 5, 5, 3]])

    The new value must fit the dtype:

    >>> flood_fill(image.astype(np.uint8), (0, 0), 300)
    Traceback (most recent call last):
        ...
    ValueError: new_value 300 does not fit dtype uint8 (integers in [0, 255]); pick a value in that range or convert the image first, e.g. image.astype(np.int64)
    """  # noqa: E501 (a doctest's expected error message is one line)
    if in_place:
        if not isinstance(image, np.ndarray):
            raise TypeError(
                f"in_place=True needs a numpy array to modify, got "
                f"{type(image).__name__}; pass np.asarray(image) or use "
                f"in_place=False"
            )
        if not image.flags.writeable:
            raise ValueError(
                "in_place=True but image is read-only; pass a writeable "
                "array or use in_place=False"
            )
    image = np.asarray(image)
    value = _fit_new_value(new_value, image.dtype)
    mask = flood(image, seed_point, footprint=footprint,
                 connectivity=connectivity, tolerance=tolerance)
    out = image if in_place else image.copy(order="K")
    np.copyto(out, value, where=mask)
    return out


def _check_image(image: np.ndarray) -> None:
    """Reject dtypes and shapes no flood can be run on."""
    dtype = image.dtype
    if dtype.kind not in "biuf" or dtype.itemsize > 8:
        raise TypeError(
            f"image dtype {dtype} is not supported; use a bool, integer or "
            f"float (up to 64-bit) array, e.g. image.astype(np.float64)"
        )
    if image.ndim == 0:
        raise ValueError(
            "image is 0-dimensional; pass an array with at least one axis, "
            "e.g. np.atleast_1d(image)"
        )


def _normalize_seed(seed_point: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Return the seed as non-negative in-bounds indices, one per axis."""
    coords = (seed_point,) if np.ndim(seed_point) == 0 else tuple(seed_point)
    try:
        seed = tuple(operator.index(c) for c in coords)
    except TypeError:
        raise TypeError(
            f"seed_point coordinates must be integers, got {seed_point!r}"
        ) from None
    if len(seed) != len(shape):
        raise ValueError(
            f"seed_point {seed_point!r} has {len(seed)} coordinate(s) but the "
            f"image has {len(shape)} dimension(s); give one index per axis"
        )
    for axis, (c, n) in enumerate(zip(seed, shape)):
        if not -n <= c < n:
            raise SeedOutOfBoundsError(
                f"seed_point {seed_point!r} is outside the image of shape "
                f"{shape}: index {c} on axis {axis} must lie in [{-n}, {n})"
            )
    return tuple(c % n for c, n in zip(seed, shape))


def _neighborhood_key(footprint: Any, connectivity: Any,
                      shape: tuple[int, ...]) -> tuple:
    """Validate the neighbourhood arguments; return a hashable description.

    ``("connectivity", ndim, c, moving)`` (``moving[axis]``: the image is
    longer than one cell along it) or ``("footprint", shape, bytes)`` with the
    footprint cropped to the steps that can stay inside an image of
    ``shape``, so that the offsets and kernel plans derived from it can be
    cached and do not grow as ``3**ndim`` along axes nothing moves on.
    """
    ndim = len(shape)
    if footprint is None:
        if connectivity is None:
            connectivity = ndim
        if isinstance(connectivity, bool) or not isinstance(connectivity, numbers.Real):
            raise TypeError(
                f"connectivity must be a number such as 1 or image.ndim, got "
                f"{connectivity!r}"
            )
        if connectivity != connectivity:
            raise ValueError("connectivity is NaN; use an integer from 1 to image.ndim")
        return ("connectivity", ndim, connectivity, tuple(n > 1 for n in shape))
    footprint = np.asarray(footprint, dtype=bool)
    if footprint.ndim != ndim:
        raise ValueError(
            f"footprint has {footprint.ndim} dimension(s) but the image has "
            f"{ndim}; give the footprint one axis per image axis"
        )
    if any(s % 2 == 0 for s in footprint.shape):
        raise ValueError(
            f"footprint shape {footprint.shape} has an even length; every axis "
            f"needs odd length so that the centre is defined"
        )
    if not footprint.any():
        raise ValueError("footprint is all zero; mark at least one neighbour")
    center = tuple(s // 2 for s in footprint.shape)
    if footprint[center]:
        # scikit-image drops the nearest offset, here the centre, which stays:
        # the offsets cropped (a step of an axis's length or more) never land
        # inside, so the fill is the same
        footprint = footprint[tuple(slice(max(c - n + 1, 0), c + n)
                                    for c, n in zip(center, shape))]
    return ("footprint", footprint.shape, footprint.tobytes())


@lru_cache(maxsize=128)
def _neighbor_offsets(key: tuple) -> np.ndarray:
    """Neighbour offsets, shape (K, ndim), resolved exactly as scikit-image.

    A connectivity ``c`` selects the cells within ``max(c, 1)`` orthogonal
    steps, like ``scipy.ndimage.generate_binary_structure``. scikit-image then
    sorts the footprint's offsets by distance from the centre (stable, C
    order) and drops the first, assuming it is the centre.
    """
    if key[0] == "connectivity":
        # Steps along the axes the image moves on (``moving``) only, 0 on the
        # others: the offsets of scikit-image's that can land inside, in its
        # C order (the sort below keeps it), so the fill is the same.
        _, ndim, connectivity, moving = key
        axes = [axis for axis in range(ndim) if moving[axis]]
        steps = (np.indices((3,) * len(axes)).reshape(len(axes), -1).T - 1
                 if axes else np.zeros((1, 0), dtype=np.int64))
        steps = steps[np.abs(steps).sum(axis=1) <= max(connectivity, 1)]
        offsets = np.zeros((len(steps), ndim), dtype=np.int64)
        offsets[:, axes] = steps
    else:
        _, shape, data = key
        footprint = np.frombuffer(data, dtype=bool).reshape(shape)
        offsets = np.argwhere(footprint) - np.array(footprint.shape) // 2
    order = np.argsort((offsets**2).sum(axis=1), kind="stable")
    offsets = offsets[order[1:]].astype(np.int64)
    offsets.flags.writeable = False  # shared through the cache
    return offsets


def _check_tolerance(tolerance: Any) -> None:
    """Reject a tolerance that is not a real number, or is NaN."""
    if not isinstance(tolerance, numbers.Real):
        raise TypeError(f"tolerance must be a real number or None, got {tolerance!r}")
    if tolerance != tolerance:
        raise ValueError("tolerance is NaN; pass a number >= 0, or None for equality")


def _kernel_view(image: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """Return a C-contiguous array of a kernel dtype, and the axis permutation.

    ``work == image.transpose(perm)`` (up to dtype). No copy is made when a
    permutation of the axes is C-contiguous, which covers C and F order.
    The kernels are compiled for native-order uint/int 8-64 and float32/64.
    """
    if image.dtype == np.bool_:
        image = image.view(np.uint8)
    elif image.dtype == np.float16:
        image = image.astype(np.float32)  # exact
    elif not image.dtype.isnative:
        image = image.astype(image.dtype.newbyteorder("="))
    identity = tuple(range(image.ndim))
    if image.flags.c_contiguous:
        return image, identity
    perm = tuple(int(a) for a in np.argsort([-s for s in image.strides], kind="stable"))
    work = image.transpose(perm)
    if work.flags.c_contiguous:
        return work, perm
    return np.ascontiguousarray(image), identity


def _dtype_min_max(dtype: np.dtype) -> tuple[Any, Any]:
    """Smallest and largest value of `dtype` as numpy scalars of that dtype."""
    if dtype == np.bool_:
        return np.bool_(False), np.bool_(True)
    info = np.iinfo(dtype) if dtype.kind in "iu" else np.finfo(dtype)
    return dtype.type(info.min), dtype.type(info.max)


def _value_range(seed_value: np.generic, tolerance: Any,
                 kernel_dtype: np.dtype) -> tuple[np.generic, np.generic]:
    """Inclusive range of values within `tolerance` of `seed_value`, as
    scalars of `kernel_dtype`.

    Mirrors scikit-image: clip ``seed -/+ abs(tolerance)`` to the image
    dtype's range in Python arithmetic, then cast (truncating for integers).
    """
    tolerance = abs(tolerance)
    if seed_value.dtype.kind == "f":
        try:  # what the float arithmetic below does to it, without its OverflowError
            tolerance = float(tolerance)
        except OverflowError:  # 10**400: larger than any float
            tolerance = math.inf
    min_value, max_value = _dtype_min_max(seed_value.dtype)
    low = max(min_value.item(), seed_value.item() - tolerance)
    high = min(max_value.item(), seed_value.item() + tolerance)
    return (_cast_bound(low, seed_value.dtype, kernel_dtype),
            _cast_bound(high, seed_value.dtype, kernel_dtype))


def _cast_bound(bound: Any, dtype: np.dtype, kernel_dtype: np.dtype) -> np.generic:
    """Cast a range bound to `dtype` and then to `kernel_dtype`."""
    if kernel_dtype.kind == "f":
        return kernel_dtype.type(dtype.type(bound))
    info = np.iinfo(kernel_dtype)
    return kernel_dtype.type(min(max(int(bound), info.min), info.max))


# Shortest rows (last axis) for bit_fill: its bookkeeping costs 42 bytes per
# row, under 1 byte per cell from here on, and two bits per cell.
_BIT_MIN_WIDTH = 64


class _SpanPlan(NamedTuple):
    """Neighbour rows in the form :func:`span_fill` and :func:`bit_fill` take
    them."""

    lead_shape: np.ndarray
    row_strides: np.ndarray
    dlead: np.ndarray
    drow: np.ndarray
    elo: np.ndarray
    ehi: np.ndarray
    rev: np.ndarray


@lru_cache(maxsize=128)
def _span_plan(key: tuple, perm: tuple[int, ...],
               shape: tuple[int, ...]) -> _SpanPlan | None:
    """Plan the row kernels over axes ``perm`` of an image of ``shape``
    (already permuted), or None if the neighbourhood does not suit it."""
    rows = _span_rows(_neighbor_offsets(key)[:, perm])
    if rows is None:
        return None
    lead_shape = np.array(shape[:-1], dtype=np.int64)
    m = lead_shape.size
    row_strides = np.append(np.cumprod(lead_shape[::-1])[::-1][1:], 1)[:m]
    dlead = np.array([r[0] for r in rows], dtype=np.int64).reshape(len(rows), m)
    index = {r[0]: k for k, r in enumerate(rows)}
    rev = [index.get(tuple(-d for d in r[0]), -1) for r in rows]
    return _SpanPlan(
        lead_shape, row_strides, dlead, dlead @ row_strides,
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.int64),
        np.array(rev, dtype=np.int64),
    )


def _span_rows(offsets: np.ndarray) -> list[tuple[tuple[int, ...], int, int]] | None:
    """Describe `offsets` as rows for the row kernels, or None if it can't.

    A row is ``(leading offset, lo, hi)``: the last-axis offsets reaching that
    row are exactly ``lo..hi``. The seed's own row must hold exactly -1 and +1
    so that maximal runs along the last axis are connected.
    """
    by_row: dict[tuple[int, ...], list[int]] = {}
    for off in offsets.tolist():
        by_row.setdefault(tuple(off[:-1]), []).append(off[-1])
    zero = (0,) * (offsets.shape[1] - 1)
    if sorted(by_row.pop(zero, [])) != [-1, 1]:
        return None
    rows = []
    for lead, last in by_row.items():
        if max(last) - min(last) + 1 != len(last):
            return None
        rows.append((lead, min(last), max(last)))
    return rows


def _span_flood(work: np.ndarray, seed: tuple[int, ...], plan: _SpanPlan,
                lo: np.generic, hi: np.generic) -> np.ndarray:
    """Run a row kernel (bitmask or scanline); returns a C-contiguous bool
    mask."""
    mask = np.zeros(work.shape, dtype=np.bool_)
    seed_row = sum(c * s for c, s in zip(seed[:-1], plan.row_strides.tolist()))
    width = work.shape[-1]
    args = (work.reshape(-1), mask.view(np.uint8).reshape(-1), plan.lead_shape,
            width, seed_row, seed[-1], plan.dlead, plan.drow, plan.elo, plan.ehi)
    reach = max(np.abs(plan.elo).max(initial=0), np.abs(plan.ehi).max(initial=0))
    if width >= _BIT_MIN_WIDTH and reach < 64:
        bit_fill(*args, lo, hi)
    else:
        span_fill(*args, plan.rev, lo, hi)
    return mask


def _offset_flood(work: np.ndarray, seed: tuple[int, ...], offsets: np.ndarray,
                  lo: np.generic, hi: np.generic) -> np.ndarray:
    """Run the offset kernel on a padded flag array; returns a cropped view."""
    pad = np.abs(offsets).max(axis=0) if len(offsets) else np.zeros(work.ndim, np.int64)
    flags = np.zeros(tuple(np.array(work.shape) + 2 * pad), dtype=np.uint8)
    for axis, p in enumerate(pad):
        if p:
            before = (slice(None),) * axis + (slice(None, p),)
            after = (slice(None),) * axis + (slice(-p, None),)
            flags[before] = flags[after] = 2
    flag_strides = np.array(flags.strides, dtype=np.int64)
    img_strides = np.array(work.strides, dtype=np.int64) // work.itemsize
    offset_fill(
        work.reshape(-1), flags.reshape(-1),
        int((np.array(seed) + pad) @ flag_strides), int(np.array(seed) @ img_strides),
        offsets @ flag_strides, offsets @ img_strides, lo, hi,
    )
    interior = tuple(slice(p, p + n) for p, n in zip(pad, work.shape))
    return flags[interior].view(np.bool_)


def _fit_new_value(value: Any, dtype: np.dtype) -> np.generic:
    """Return `value` as a scalar of `dtype`, or raise if it does not fit."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if not isinstance(value, numbers.Real):
        raise TypeError(
            f"new_value must be a real scalar, got {value!r} "
            f"({type(value).__name__})"
        )
    if dtype.kind == "b":
        if value not in (0, 1):
            raise ValueError(
                f"new_value {value!r} does not fit dtype bool; use True or False"
            )
        return np.bool_(value)
    if dtype.kind in "iu":
        return _fit_integer(value, dtype)
    if dtype.kind == "f":
        return _fit_float(value, dtype)
    raise TypeError(f"image dtype {dtype} is not supported")


def _fit_integer(value: numbers.Real, dtype: np.dtype) -> np.generic:
    """`value` as an integer scalar of `dtype`; it must be integral and in range."""
    info = np.iinfo(dtype)
    fix = (f"pick a value in that range or convert the image first, "
           f"e.g. image.astype(np.{'float64' if dtype.kind == 'i' else 'int64'})")
    if not isinstance(value, numbers.Integral):
        if not float(value).is_integer():
            raise ValueError(
                f"new_value {value!r} does not fit dtype {dtype} (integers in "
                f"[{info.min}, {info.max}]); {fix}"
            )
        value = int(value)
    if not info.min <= int(value) <= info.max:
        raise ValueError(
            f"new_value {value!r} does not fit dtype {dtype} (integers in "
            f"[{info.min}, {info.max}]); {fix}"
        )
    return dtype.type(int(value))


def _fit_float(value: numbers.Real, dtype: np.dtype) -> np.generic:
    """`value` as a float scalar of `dtype`; finite values must stay finite."""
    error = ValueError(
        f"new_value {value!r} does not fit dtype {dtype} (magnitude at most "
        f"{np.finfo(dtype).max}); pick a smaller value or convert the image "
        f"first, e.g. image.astype(np.float64)"
    )
    try:
        as_float = float(value)
    except OverflowError:  # an int too large for any float
        raise error from None
    with np.errstate(over="ignore"):
        cast = dtype.type(as_float)
    if np.isinf(cast) and not np.isinf(as_float):
        raise error
    return cast
