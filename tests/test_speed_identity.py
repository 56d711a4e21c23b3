"""The fast paths of segment/rings/measure give byte-identical results to the
plain scipy/skimage computations they replace."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from snakescope import segment


def _blobs(seed: int, shape=(160, 200), n=40, rmax=9.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, dtype=bool)
    for _ in range(n):
        cy, cx = rng.uniform(-5, shape[0] + 5), rng.uniform(-5, shape[1] + 5)
        ry, rx = rng.uniform(2, rmax, size=2)
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return mask


MASKS = [_blobs(s) for s in range(6)] + [
    _blobs(10, n=8, rmax=40.0),  # wide objects
    np.pad(np.ones((30, 40), bool), 3),
    np.ones((20, 30), bool),  # no background
    np.zeros((20, 30), bool),
    np.eye(25, dtype=bool),  # diagonal line: many 4-components
    np.ones((200, 7), bool) & (np.arange(7) != 3),  # columns without background
    np.pad(np.ones((150, 150), bool), 1),  # deeper than the bounded transform
]


@pytest.mark.parametrize("i", range(len(MASKS)))
def test_distance_surface_is_scipy_edt(i):
    mask = MASKS[i]
    ref = ndi.distance_transform_edt(mask).astype(np.float32)
    got = segment._distance_surface(mask)
    assert got.dtype == ref.dtype and got.tobytes() == ref.tobytes()


@pytest.mark.parametrize("i", range(6))
def test_maximum_positions_is_scipy(i):
    mask = MASKS[i]
    components, n = ndi.label(mask)
    surface = ndi.gaussian_filter(ndi.distance_transform_edt(mask).astype(np.float32), 1.5)
    ids = np.arange(1, n + 1)
    assert [tuple(map(int, p)) for p in segment._maximum_positions(surface, components, ids)] == \
        [tuple(map(int, p)) for p in ndi.maximum_position(surface, components, ids)]
    # ties (integer distances) go to scipy itself
    plain = ndi.distance_transform_edt(mask).astype(np.float32)
    assert [tuple(map(int, p)) for p in segment._maximum_positions(plain, components, ids)] == \
        [tuple(map(int, p)) for p in ndi.maximum_position(plain, components, ids)]


@pytest.mark.parametrize("i", range(len(MASKS) - 1))
@pytest.mark.parametrize("smooth", [0.0, 1.5])
def test_watershed_is_skimage(i, smooth):
    mask = MASKS[i]
    components, _ = ndi.label(mask)
    surface = ndi.distance_transform_edt(mask).astype(np.float32)
    if smooth:
        surface = np.where(mask, ndi.gaussian_filter(surface, smooth), 0).astype(np.float32)
    coords = peak_local_max(np.where(mask, surface, -1), min_distance=2, threshold_abs=0, exclude_border=False)
    peaks = np.zeros(mask.shape, bool)
    peaks[tuple(coords.T)] = True
    peaks &= mask
    markers, _ = ndi.label(peaks, structure=np.ones((3, 3), bool))
    ref = watershed(-surface, markers, mask=mask).astype(np.int32)
    got = segment._watershed(surface, markers, mask, components)
    assert got.dtype == ref.dtype and np.array_equal(got, ref)


def _reference_split(mask, *, method="distance", intensity=None, min_distance_px=5.0, h_px=None, sigma_px=0.0):
    """segment.split as it was, with scipy's EDT, maximum_position and one watershed."""
    from skimage.morphology import h_maxima

    components, n = ndi.label(mask)
    if n == 0:
        return components.astype(np.int32)
    if method == "distance":
        surface = ndi.distance_transform_edt(mask).astype(np.float32)
        if sigma_px > 0:
            surface = np.where(mask, ndi.gaussian_filter(surface, float(sigma_px)), 0).astype(np.float32)
    else:
        surface = np.asarray(intensity, dtype=np.float32)
    if h_px:
        peaks = h_maxima(surface, float(h_px)).astype(bool) & mask
    else:
        dist = max(1, int(round(min_distance_px)))
        floor = float(surface[mask].min())
        coords = peak_local_max(np.where(mask, surface, floor - 1), min_distance=dist, threshold_abs=floor,
                                exclude_border=False)
        coords = coords[mask[tuple(coords.T)]]
        peaks = np.zeros(mask.shape, bool)
        peaks[tuple(coords.T)] = True
    seeded = np.zeros(n + 1, dtype=bool)
    seeded[components[peaks]] = True
    missing = np.flatnonzero(~seeded[1:]) + 1
    for p in (ndi.maximum_position(surface, components, missing) if missing.size else []):
        peaks[p] = True
    markers, _ = ndi.label(peaks, structure=np.ones((3, 3), bool))
    return watershed(-surface, markers, mask=mask).astype(np.int32)


@pytest.mark.parametrize("i", range(6))
@pytest.mark.parametrize("kw", [dict(sigma_px=1.8, min_distance_px=3.6), dict(min_distance_px=5.0),
                                dict(h_px=1.0), dict(method="intensity", min_distance_px=4.0)])
def test_split_unchanged(i, kw):
    mask = MASKS[i]
    rng = np.random.default_rng(i)
    intensity = ndi.gaussian_filter(rng.normal(size=mask.shape).astype(np.float32), 2) + mask
    if kw.get("method") == "intensity":
        kw = {**kw, "intensity": intensity}
    ref = _reference_split(mask, **kw)
    got = segment.split(mask, **kw)
    assert got.dtype == ref.dtype and np.array_equal(got, ref)


def _reference_erode(labels, radius_px):
    r = int(np.floor(radius_px))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    footprint = (yy * yy + xx * xx) <= radius_px * radius_px
    lo = ndi.minimum_filter(labels, footprint=footprint, mode="constant", cval=0)
    hi = ndi.maximum_filter(labels, footprint=footprint, mode="constant", cval=0)
    return np.where((lo == labels) & (hi == labels), labels, 0).astype(labels.dtype)


@pytest.mark.parametrize("i", range(6))
@pytest.mark.parametrize("radius", [1.0, 1.5, 2.0, 2.9, 4.0])
@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.uint8])
def test_erode_labels_is_min_max_filter(i, radius, dtype):
    from snakescope.rings import erode_labels

    labels = segment.split(MASKS[i], sigma_px=1.5, min_distance_px=3).astype(dtype)
    ref = _reference_erode(labels, radius)
    got = erode_labels(labels, radius_px=radius)
    assert got.dtype == ref.dtype and np.array_equal(got, ref)


@pytest.mark.parametrize("values", [
    np.array([3, 1, 2, 0, 5, 4, 4, 7], np.float32),
    np.array([3, 1, 2.5, 0, 5, 4, 4, 7], np.float32),  # not whole numbers
    np.array([3, -0.0, 2, 0, 5, 4, 4, 7], np.float32),  # a negative zero keeps the float keys
    np.array([3, -1, 2, 0, 5, 4, 4, 7], np.float32),
    np.array([3e9, 1, 2, 0, 5, 4, 4, 7], np.float32),  # beyond int32
])
def test_sort_within_groups_whole_floats(values):
    from snakescope.measure import _float_from_keys, _float_sort_keys, _sort_within_groups

    group = np.array([1, 0, 1, 0, 2, 2, 1, 0], np.intp)
    keys = group.astype(np.uint64) << np.uint64(32) | _float_sort_keys(values)
    ref = _float_from_keys(np.sort(keys) & np.uint64(0xFFFFFFFF)).astype(np.float64)
    got = _sort_within_groups(values, group, 3)
    assert got.dtype == ref.dtype and got.tobytes() == ref.tobytes()
