"""Tests for fastctr.image.flood: scikit-image's answers, literal cases, errors."""
from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastctr.image.flood import SeedOutOfBoundsError, flood, flood_fill

from child import assert_child_ok

# ``fastctr.image.flood`` the attribute is the function (re-exported by the
# package); the module itself comes from the import system.
flood_module = importlib.import_module("fastctr.image.flood")
skimage_segmentation = pytest.importorskip("skimage.segmentation")
sk_flood = skimage_segmentation.flood

DTYPES = [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16,
          np.int32, np.int64, np.float32, np.float64, np.bool_]
TOLERANCES = [None, 0, 0.5, 1, 1.5, -1, 2, 2.5]


def _sk_reference(image: np.ndarray, seed, **kwargs) -> np.ndarray:
    """scikit-image's mask; it reads bool images as uint8, as fastctr does."""
    if image.dtype == np.bool_:
        image = image.view(np.uint8)
    return sk_flood(image, seed, **kwargs)


@st.composite
def flood_cases(draw):
    """An image (in some memory layout), a seed and flood keyword arguments."""
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 7 if ndim < 3 else 4),
                                min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    image = rng.integers(0, draw(st.integers(1, 4)), size=shape).astype(dtype)
    if dtype.kind == "f" and draw(st.booleans()):
        image[rng.random(shape) < 0.1] = np.nan
    layout = draw(st.sampled_from(["C", "F", "strided", "transposed"]))
    if layout == "F":
        image = np.asfortranarray(image)
    elif layout == "strided":
        image = np.repeat(image, 2, axis=-1)[..., ::2]
    elif layout == "transposed":
        image = np.ascontiguousarray(image.T).T
    seed = tuple(draw(st.integers(-n, n - 1)) for n in shape)
    kwargs = {}
    how = draw(st.sampled_from(["default", "connectivity", "footprint"]))
    if how == "connectivity":
        kwargs["connectivity"] = draw(st.integers(0, ndim + 1))
    elif how == "footprint":
        fp_shape = tuple(draw(st.sampled_from([1, 3, 3, 5])) for _ in range(ndim))
        footprint = rng.random(fp_shape) < draw(st.floats(0.2, 0.9))
        footprint.flat[rng.integers(footprint.size)] = True
        kwargs["footprint"] = footprint
    kwargs["tolerance"] = draw(st.sampled_from(TOLERANCES))
    return image, seed, kwargs


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flood_cases())
def test_matches_skimage(case):
    image, seed, kwargs = case
    expected = _sk_reference(image, seed, **kwargs)
    got = flood(image, seed, **kwargs)
    assert got.dtype == np.bool_ and got.shape == image.shape
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([(40, 50), (9, 10, 11)]),
       st.sampled_from([0.45, 0.6, 0.75]), st.sampled_from([1, 2, 3]))
def test_matches_skimage_on_larger_random_regions(seed, shape, density, connectivity):
    rng = np.random.default_rng(seed)
    image = (rng.random(shape) < density).astype(np.uint8)
    start = tuple(int(i) for i in np.argwhere(image)[0]) if image.any() else (0,) * len(shape)
    np.testing.assert_array_equal(
        flood(image, start, connectivity=connectivity),
        sk_flood(image, start, connectivity=connectivity))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flood_cases())
def test_bitmask_kernel_matches_skimage_on_small_images(case):
    # Force the bitmask row kernel onto rows of any length (normally only
    # rows of 64+ cells use it): every dtype, layout, tolerance and
    # neighbourhood of flood_cases, one word per row.
    image, seed, kwargs = case
    expected = _sk_reference(image, seed, **kwargs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(flood_module, "_BIT_MIN_WIDTH", 1)
        got = flood(image, seed, **kwargs)
    np.testing.assert_array_equal(got, expected)


@st.composite
def interval_footprints(draw, ndim):
    """A footprint whose rows along the last axis are intervals (possibly
    empty), with the centre row exactly the centre and its two neighbours:
    the neighbourhoods the row kernels take, beyond plain connectivity."""
    shape = tuple(draw(st.sampled_from([1, 3, 5])) for _ in range(ndim - 1))
    width = draw(st.sampled_from([3, 5, 7]))
    footprint = np.zeros(shape + (width,), dtype=bool)
    for lead in np.ndindex(shape):
        lo = draw(st.integers(0, width - 1))
        hi = draw(st.integers(lo - 1, width - 1))  # hi < lo: an empty row
        footprint[lead][lo:hi + 1] = True
    centre = tuple(n // 2 for n in shape)
    footprint[centre] = False
    footprint[centre][width // 2 - 1:width // 2 + 2] = True
    return footprint


@st.composite
def wide_binary_cases(draw):
    """Random binary images with rows of 64+ cells (several words, partial
    last word), a seed and a row-kernel neighbourhood."""
    ndim = draw(st.integers(1, 3))
    lead = [draw(st.integers(1, 40 if ndim == 2 else 8)) for _ in range(ndim - 1)]
    width = draw(st.sampled_from([64, 65, 127, 128, 129, 200, 300]))
    shape = tuple(lead) + (width,)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    image = (rng.random(shape) < draw(st.sampled_from([0.4, 0.55, 0.65, 0.8, 1.0]))).astype(np.uint8)
    seed = tuple(int(rng.integers(n)) for n in shape)
    if draw(st.booleans()):
        kwargs = {"connectivity": draw(st.integers(1, ndim))}
    else:
        kwargs = {"footprint": draw(interval_footprints(ndim))}
    return image, seed, kwargs


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wide_binary_cases())
def test_bitmask_kernel_matches_skimage_on_wide_rows(case):
    image, seed, kwargs = case
    np.testing.assert_array_equal(flood(image, seed, **kwargs),
                                  sk_flood(image, seed, **kwargs))


def test_wide_footprint_on_wide_rows_matches_skimage():
    # Offsets of 64+ cells along the rows: beyond the bitmask kernel's
    # one-word reach, so the scanline kernel runs although rows are long.
    rng = np.random.default_rng(3)
    image = (rng.random((6, 300)) < 0.3).astype(np.uint8)
    footprint = np.zeros((3, 131), dtype=bool)
    footprint[1, 64:67] = True
    footprint[0, :] = footprint[2, 65] = True
    for seed in [(0, 0), (2, 150), (5, 299)]:
        np.testing.assert_array_equal(flood(image, seed, footprint=footprint),
                                      sk_flood(image, seed, footprint=footprint))


def test_nan_seed_matches_skimage():
    image = np.array([[np.nan, 1.0, 2.0], [np.inf, np.nan, 3.0]])
    for tolerance in (None, 1, 10):
        np.testing.assert_array_equal(
            flood(image, (0, 0), tolerance=tolerance),
            sk_flood(image, (0, 0), tolerance=tolerance))


def test_extreme_values_and_tolerance_clipping():
    for dtype in (np.uint8, np.int8, np.int64, np.uint64):
        info = np.iinfo(dtype)
        image = np.array([info.min, info.min + 1, info.max - 1, info.max], dtype=dtype)
        for seed in range(4):
            for tolerance in (None, 1, 3, 10**30):
                np.testing.assert_array_equal(
                    flood(image, seed, tolerance=tolerance),
                    sk_flood(image, seed, tolerance=tolerance))


def test_two_d_connectivities_literal():
    image = np.array([[0, 0, 0, 0, 0, 0, 0],
                      [0, 1, 1, 0, 2, 2, 0],
                      [0, 1, 1, 0, 2, 2, 0],
                      [1, 0, 0, 0, 0, 0, 3]])
    full = np.array([[0, 0, 0, 0, 0, 0, 0],
                     [0, 1, 1, 0, 0, 0, 0],
                     [0, 1, 1, 0, 0, 0, 0],
                     [1, 0, 0, 0, 0, 0, 0]], dtype=bool)
    faces = full.copy()
    faces[3, 0] = False
    np.testing.assert_array_equal(flood(image, (1, 1)), full)
    np.testing.assert_array_equal(flood(image, (1, 1), connectivity=2), full)
    np.testing.assert_array_equal(flood(image, (1, 1), connectivity=1), faces)
    np.testing.assert_array_equal(flood(image, (-3, -6), connectivity=1), faces)


def test_one_d_int_seed_literal():
    image = np.array([3, 3, 1, 3, 3, 3])
    np.testing.assert_array_equal(flood(image, 4), [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(flood(image, -6), [1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(flood(image, 4, tolerance=2), [1, 1, 1, 1, 1, 1])


def test_three_d_literal():
    image = np.zeros((3, 3, 3), dtype=np.int16)
    image[0, 0, 0] = image[1, 1, 1] = image[2, 2, 1] = 7
    expected = image == 7
    np.testing.assert_array_equal(flood(image, (1, 1, 1)), expected)
    edges = expected.copy()
    edges[0, 0, 0] = False  # a corner away: three steps
    np.testing.assert_array_equal(flood(image, (1, 1, 1), connectivity=2), edges)
    only_centre = np.zeros_like(expected)
    only_centre[1, 1, 1] = True
    np.testing.assert_array_equal(flood(image, (1, 1, 1), connectivity=1), only_centre)


def test_integer_tolerance_truncates_like_skimage():
    # 5 -/+ 1.5 is [3.5, 6.5], cast to uint8 as [3, 6]: 3 is included.
    image = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(flood(image, 5, tolerance=1.5),
                                  [0, 0, 0, 1, 1, 1, 1, 0, 0, 0])


def test_footprint_without_centre_drops_nearest_offset_like_skimage():
    # Offsets sorted by distance, first dropped: here (-1, 0), so the fill
    # cannot move up.
    footprint = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    image = np.zeros((3, 3), dtype=np.uint8)
    expected = np.array([[0, 0, 0], [1, 1, 1], [1, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(flood(image, (1, 1), footprint=footprint), expected)


def test_asymmetric_footprint_is_directed():
    footprint = np.array([[0, 0, 0], [0, 1, 1], [0, 0, 0]])  # step right only
    image = np.zeros((2, 5), dtype=np.uint8)
    np.testing.assert_array_equal(flood(image, (0, 2), footprint=footprint),
                                  [[0, 0, 1, 1, 1], [0, 0, 0, 0, 0]])


def test_bool_and_float16_images():
    image = np.array([[True, True, False], [False, True, True]])
    np.testing.assert_array_equal(flood(image, (0, 0), connectivity=1), image)
    half = np.array([0.5, 0.5, 1.0, 0.5], dtype=np.float16)
    np.testing.assert_array_equal(flood(half, 0), [1, 1, 0, 0])
    np.testing.assert_array_equal(flood(half, 0, tolerance=0.5), [1, 1, 1, 1])


def test_layouts_and_byte_order_agree():
    rng = np.random.default_rng(7)
    image = rng.integers(0, 2, size=(6, 7, 8)).astype(np.int32)
    expected = flood(image, (1, 2, 3), connectivity=1)
    for variant in (np.asfortranarray(image), image.astype(">i4"),
                    np.ascontiguousarray(image.transpose(2, 0, 1)).transpose(1, 2, 0)):
        np.testing.assert_array_equal(flood(variant, (1, 2, 3), connectivity=1), expected)
    strided = np.repeat(image, 3, axis=1)[:, ::3]
    np.testing.assert_array_equal(flood(strided, (1, 2, 3), connectivity=1), expected)
    assert flood(image.tolist(), (1, 2, 3), connectivity=1).shape == image.shape


def test_huge_regions_do_not_recurse():
    # A serpentine corridor: one region whose spans form a very deep chain.
    maze = np.ones((401, 400), dtype=np.uint8)
    maze[1::2, 1:] = 0
    maze[3::4, 1:] = 1
    maze[3::4, :-1] = 0
    maze[1::4, 1:] = 0
    mask = flood(maze, (0, 0), connectivity=1)
    np.testing.assert_array_equal(mask, sk_flood(maze, (0, 0), connectivity=1))
    line = np.zeros(3_000_000, dtype=np.uint8)
    assert flood(line, -1).all()
    # The general path (a footprint with a jump) on a large region.
    grid = np.zeros((300, 300), dtype=np.uint8)
    footprint = np.zeros((3, 5), dtype=bool)
    footprint[1, 2] = footprint[0, 2] = footprint[2, 2] = True
    footprint[1, [0, 4]] = True
    np.testing.assert_array_equal(flood(grid, (5, 5), footprint=footprint),
                                  sk_flood(grid, (5, 5), footprint=footprint))


def test_flood_fill_values_and_in_place():
    image = np.array([[1, 1, 0], [0, 1, 0]], dtype=np.uint8)
    filled = flood_fill(image, (0, 0), 9, connectivity=1)
    np.testing.assert_array_equal(filled, [[9, 9, 0], [0, 9, 0]])
    np.testing.assert_array_equal(image, [[1, 1, 0], [0, 1, 0]])
    assert filled.dtype == np.uint8
    same = flood_fill(image, (0, 2), 4, in_place=True)
    assert same is image
    np.testing.assert_array_equal(image, [[1, 1, 4], [0, 1, 4]])
    np.testing.assert_array_equal(flood_fill([0.5, 0.5, 2.0], 0, np.nan), [np.nan, np.nan, 2.0])
    np.testing.assert_array_equal(flood_fill(np.array([True, False]), 1, True), [True, True])
    np.testing.assert_array_equal(flood_fill(np.array([1, 2], dtype=np.int32), 0, 7.0), [7, 2])


@settings(max_examples=40, deadline=None)
@given(flood_cases(), st.integers(0, 1))
def test_flood_fill_matches_skimage(case, new_value):
    image, seed, kwargs = case
    if image.dtype == np.bool_:
        image = image.view(np.uint8)
    np.testing.assert_array_equal(
        flood_fill(image, seed, new_value, **kwargs),
        skimage_segmentation.flood_fill(image, seed, new_value, **kwargs))


@pytest.mark.parametrize("seed, error, match", [
    ((3, 0), SeedOutOfBoundsError, r"index 3 on axis 0 must lie in \[-3, 3\)"),
    ((0, -5), SeedOutOfBoundsError, r"index -5 on axis 1"),
    ((1,), ValueError, r"has 1 coordinate\(s\) but the image has 2"),
    (1, ValueError, r"has 1 coordinate\(s\) but the image has 2"),
    ((1, 1, 1), ValueError, r"has 3 coordinate\(s\)"),
    ((1.0, 2), TypeError, "coordinates must be integers"),
])
def test_bad_seed(seed, error, match):
    with pytest.raises(error, match=match):
        flood(np.zeros((3, 4)), seed)


def test_out_of_bounds_seed_is_also_an_index_error():
    with pytest.raises(IndexError):
        flood(np.zeros(3), 3)


def test_zero_dimensional_image_is_refused():
    with pytest.raises(ValueError, match="0-dimensional"):
        flood(np.zeros(()), (0, 0))


# -- issue 13, defect 13: empty images, huge tolerances, many dimensions -----------------------
@pytest.mark.parametrize("shape, seed", [
    ((0,), 0), ((0,), -1), ((0, 3), (0, 0)), ((3, 0), (2, 0)), ((0, 0), (0, 0)),
    ((2, 0, 2), (1, 0, 1)),
    ((0, 3), (5, 5)), ((0, 3), (0,)),  # seeds no image could take: scikit-image ignores them
])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.bool_, np.complex128])
def test_empty_image_gives_what_skimage_gives(shape, seed, dtype):
    image = np.zeros(shape, dtype)
    expected = sk_flood(image, seed)
    got = flood(image, seed, connectivity=1, tolerance=2)
    assert got.shape == expected.shape == shape and got.dtype == expected.dtype == np.bool_
    if dtype is not np.complex128:  # fastctr refuses complex new values' images
        filled = flood_fill(image, seed, 1)
        sk_filled = skimage_segmentation.flood_fill(image, seed, 1)
        assert filled.shape == sk_filled.shape and filled.dtype == sk_filled.dtype
        assert filled is not image and flood_fill(image, seed, 1, in_place=True) is image


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("tolerance", [10**400, -10**400], ids=["1e400", "-1e400"])
def test_tolerance_beyond_floats_is_infinite_on_float_images(dtype, tolerance):
    # scikit-image raises OverflowError here; its answer for an infinite tolerance is ours
    image = np.array([[0, 1e4, -np.inf], [np.inf, 5, np.nan], [-7, 3, 2]]).astype(dtype)
    with pytest.raises(OverflowError):
        sk_flood(image, (0, 0), tolerance=tolerance)
    got = flood(image, (0, 0), tolerance=tolerance)
    np.testing.assert_array_equal(got, flood(image, (0, 0), tolerance=np.inf))
    np.testing.assert_array_equal(got, np.isfinite(image))
    if dtype != np.float16:
        np.testing.assert_array_equal(got, sk_flood(image, (0, 0), tolerance=np.inf))


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.uint64])
def test_tolerance_beyond_floats_on_integer_images_matches_skimage(dtype):
    info = np.iinfo(dtype)
    image = np.array([[info.min, info.max], [3, 0]], dtype=dtype)
    for tolerance in (10**400, -10**400):
        np.testing.assert_array_equal(flood(image, (1, 0), tolerance=tolerance),
                                      sk_flood(image, (1, 0), tolerance=tolerance))


@st.composite
def thin_cases(draw):
    """Images of up to 7 axes, most of them one cell long, with every kind of neighbourhood
    (footprints larger than the image included)."""
    ndim = draw(st.integers(2, 7))
    shape = tuple(draw(st.sampled_from([1, 1, 1, 2, 3])) for _ in range(ndim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    image = rng.integers(0, 2, size=shape).astype(np.uint8)
    seed = tuple(draw(st.integers(0, n - 1)) for n in shape)
    how = draw(st.sampled_from(["default", "connectivity", "footprint"]))
    kwargs = {}
    if how == "connectivity":
        kwargs["connectivity"] = draw(st.integers(1, ndim))
    elif how == "footprint":
        fp_shape = tuple(draw(st.sampled_from([1, 3, 5])) for _ in range(ndim))
        footprint = rng.random(fp_shape) < 0.5
        footprint.flat[rng.integers(footprint.size)] = True
        footprint[tuple(n // 2 for n in fp_shape)] = draw(st.booleans())
        if footprint.any():
            kwargs["footprint"] = footprint
    return image, seed, kwargs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(thin_cases())
def test_axes_of_one_cell_match_skimage(case):
    image, seed, kwargs = case
    np.testing.assert_array_equal(flood(image, seed, **kwargs), sk_flood(image, seed, **kwargs))


def test_sixteen_dimensions_of_one_or_two_cells():
    # scikit-image (and fastctr before) builds 3**16 neighbour offsets here: minutes; run in a
    # child so that a regression fails after the timeout instead of stalling the suite
    code = """
import numpy as np
from fastctr.image.flood import flood, flood_fill
one = (1,) * 16
assert flood(np.zeros(one), (0,) * 16).tolist() == np.ones(one, bool).tolist()
assert flood(np.zeros(one), (0,) * 16, connectivity=1, tolerance=3).all()
for values, expected in (([4, 4], [True, True]), ([4, 5], [True, False])):
    image = np.array(values, np.int32).reshape((2,) + (1,) * 15)
    got = flood(image, (0,) * 16)
    assert got.shape == image.shape and got.ravel().tolist() == expected, got.ravel()
    assert flood_fill(image, (0,) * 16, 9).ravel().tolist() == [9 if e else v
                                                                for v, e in zip(values, expected)]
image = np.zeros((3,) + (1,) * 14 + (4,)); image[1, ..., 2] = 1
got = flood(image, (0,) * 16)
assert got.sum() == 11 and not got[1, ..., 2].any()
assert flood(image, (0,) * 16, connectivity=1).sum() == 11
print("ok")
"""
    assert assert_child_ok(code, timeout=300, debug_malloc=False).strip() == "ok"


@pytest.mark.parametrize("dtype", [np.complex128, object, "U3", np.longdouble])
def test_unsupported_dtype(dtype):
    if np.dtype(dtype).itemsize == 8 and np.dtype(dtype).kind == "f":
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(TypeError, match="is not supported"):
        flood(np.zeros((2, 2), dtype=dtype), (0, 0))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"footprint": np.ones((3,))}, ValueError, r"footprint has 1 dimension\(s\) but the image has 2"),
    ({"footprint": np.ones((3, 2))}, ValueError, "even length"),
    ({"footprint": np.zeros((3, 3))}, ValueError, "all zero"),
    ({"tolerance": float("nan")}, ValueError, "tolerance is NaN"),
    ({"tolerance": "1"}, TypeError, "tolerance must be a real number"),
    ({"connectivity": float("nan")}, ValueError, "connectivity is NaN"),
    ({"connectivity": "full"}, TypeError, "connectivity must be a number"),
])
def test_bad_neighbourhood_or_tolerance(kwargs, error, match):
    with pytest.raises(error, match=match):
        flood(np.zeros((3, 3)), (1, 1), **kwargs)


@pytest.mark.parametrize("dtype, value, error, match", [
    (np.uint8, 300, ValueError, r"300 does not fit dtype uint8 \(integers in \[0, 255\]\)"),
    (np.uint8, -1, ValueError, "does not fit dtype uint8"),
    (np.int32, 1.5, ValueError, "1.5 does not fit dtype int32"),
    (np.int64, float("nan"), ValueError, "does not fit dtype int64"),
    (np.float32, 1e40, ValueError, "does not fit dtype float32"),
    (np.float64, 10**400, ValueError, "does not fit dtype float64"),
    (np.bool_, 2, ValueError, "does not fit dtype bool"),
    (np.uint8, "7", TypeError, "new_value must be a real scalar"),
    (np.float64, 1j, TypeError, "new_value must be a real scalar"),
])
def test_bad_new_value(dtype, value, error, match):
    with pytest.raises(error, match=match):
        flood_fill(np.zeros((2, 2), dtype=dtype), (0, 0), value)


def test_bad_in_place_targets():
    with pytest.raises(TypeError, match="in_place=True needs a numpy array"):
        flood_fill([[0, 0]], (0, 0), 1, in_place=True)
    frozen = np.zeros((2, 2))
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        flood_fill(frozen, (0, 0), 1, in_place=True)


def test_docstring_examples():
    failures, tried = doctest.testmod(flood_module, verbose=False)
    assert tried > 10
    assert failures == 0
