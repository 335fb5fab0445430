"""Flood fill benchmarks: fastctr.image.flood against scikit-image and OpenCV.

Groups are ``flood|<size>|<pattern>|conn<n>``: 1024^2 and 4096^2 grids and a
256^3 volume; ``uniform`` is one region covering everything, ``random55`` and
``random65`` are uint8 images with 55% / 65% ones (seeded), flooded from a
cell of their largest region. Each peer's mask is checked against fastctr's,
and names the fastctr benchmark it is compared with (``vs``) for the ratio
summary that ``--benchmark-enable`` prints.

``pytest benches/bench_flood.py`` runs every case once (smoke run);
``pytest benches/bench_flood.py --benchmark-enable`` times them, with one
untimed warm-up round so numba compilation stays out of the figures.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import pytest

from fastctr.image.flood import flood

# (shape label, shape, timed rounds): fewer rounds where scikit-image needs
# seconds per call.
SIZES = {"1024^2": ((1024, 1024), 15), "4096^2": ((4096, 4096), 3),
         "256^3": ((256, 256, 256), 3)}
# The smoke run (benchmarks disabled) checks every case on small grids.
SMOKE_SHAPES = {"1024^2": (128, 128), "4096^2": (256, 256), "256^3": (32, 32, 32)}
PATTERNS = {"uniform": None, "random55": 0.55, "random65": 0.65}
CASES = [
    (size, pattern, conn)
    for size in ("1024^2", "4096^2")
    for pattern in PATTERNS
    for conn in (4, 8)
] + [("256^3", "uniform", 6), ("256^3", "uniform", 26), ("256^3", "random65", 6)]


def _connectivity(ndim: int, conn: int) -> int:
    """scikit-image connectivity for 4/6 (faces) or 8/26 (all neighbours)."""
    return 1 if conn in (4, 6) else ndim


@cache
def _case(shape: tuple[int, ...], pattern: str, conn: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """The image and a seed in its largest region (for ``uniform``, the centre)."""
    if PATTERNS[pattern] is None:
        return np.zeros(shape, dtype=np.uint8), tuple(n // 2 for n in shape)
    ndi = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(12345)
    image = (rng.random(shape, dtype=np.float32) < PATTERNS[pattern]).astype(np.uint8)
    structure = ndi.generate_binary_structure(image.ndim, _connectivity(image.ndim, conn))
    labels, _ = ndi.label(image, structure=structure)
    largest = np.bincount(labels.ravel())[1:].argmax() + 1
    seed = np.unravel_index(np.flatnonzero(labels == largest)[0], shape)
    return image, tuple(int(c) for c in seed)


@cache
def _reference(shape: tuple[int, ...], pattern: str, conn: int) -> np.ndarray:
    """fastctr's mask for a case, against which the peers are checked."""
    image, seed = _case(shape, pattern, conn)
    return flood(image, seed, connectivity=_connectivity(image.ndim, conn))


def _fastctr(image: np.ndarray, seed: tuple[int, ...], conn: int) -> Callable[[], np.ndarray]:
    connectivity = _connectivity(image.ndim, conn)
    return lambda: flood(image, seed, connectivity=connectivity)


def _skimage(image: np.ndarray, seed: tuple[int, ...], conn: int) -> Callable[[], np.ndarray]:
    segmentation = pytest.importorskip("skimage.segmentation")
    connectivity = _connectivity(image.ndim, conn)
    return lambda: segmentation.flood(image, seed, connectivity=connectivity)


def _opencv(image: np.ndarray, seed: tuple[int, ...], conn: int) -> Callable[[], np.ndarray]:
    cv2 = pytest.importorskip("cv2")
    flags = conn | cv2.FLOODFILL_MASK_ONLY | (1 << 8)  # mask value 1
    point = (seed[1], seed[0])  # OpenCV takes (x, y)

    def fill() -> np.ndarray:
        # Allocating the mask is part of the call, as it is in flood().
        mask = np.zeros((image.shape[0] + 2, image.shape[1] + 2), dtype=np.uint8)
        cv2.floodFill(image, mask, point, 1, 0, 0, flags)
        return mask[1:-1, 1:-1].view(bool)

    return fill


IMPLS = {"fastctr": _fastctr, "skimage": _skimage, "opencv": _opencv}
RUNS = [(*case, impl) for case in CASES for impl in IMPLS
        if not (impl == "opencv" and case[0] == "256^3")]  # cv2.floodFill is 2-D


def _case_id(size: str, pattern: str, conn: int) -> str:
    return f"{size}-{pattern}-conn{conn}"


@pytest.mark.parametrize("size,pattern,conn,impl", RUNS,
                         ids=[f"{_case_id(*run[:3])}-{run[3]}" for run in RUNS])
def test_flood(benchmark, enabled: bool, size: str, pattern: str, conn: int, impl: str) -> None:
    shape = SIZES[size][0] if enabled else SMOKE_SHAPES[size]
    image, seed = _case(shape, pattern, conn)
    fill = IMPLS[impl](image, seed, conn)
    benchmark.group = f"flood|{size}|{pattern}|conn{conn}"
    if impl != "fastctr":
        benchmark.extra_info["vs"] = f"test_flood[{_case_id(size, pattern, conn)}-fastctr]"
    rounds = SIZES[size][1]
    result = benchmark.pedantic(fill, rounds=rounds, iterations=1, warmup_rounds=1)
    np.testing.assert_array_equal(result, _reference(shape, pattern, conn))
