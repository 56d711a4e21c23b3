"""Tests for snakescope.rings: ring construction, background subtraction, C/N ratios."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

import snakescope.rings as rings_mod
from snakescope.errors import InputError
from snakescope.rings import BACKGROUND_METHODS, ring_labels, ring_stats, subtract_background


def disk_labels(shape, centres, radius, dtype=np.uint16):
    """Labels 1..n of disks; earlier disks win overlaps (touching nuclei)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=dtype)
    for i, (cy, cx) in enumerate(centres, start=1):
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        labels[inside & (labels == 0)] = i
    return labels


def per_label_distances(labels):
    """Exact Euclidean distance of every pixel to every label, shape (n, H, W)."""
    ids = np.unique(labels[labels > 0])
    return ids, np.stack([ndi.distance_transform_edt(labels != k) for k in ids])


# --------------------------------------------------------------------------
# ring_labels
# --------------------------------------------------------------------------


def test_isolated_disk_gives_annulus():
    labels = disk_labels((41, 41), [(20, 20)], 6)
    ring = ring_labels(labels, inner_px=1, width_px=3, buffer_px=2)
    dist = ndi.distance_transform_edt(labels == 0)
    expected = (dist > 1) & (dist <= 4)
    np.testing.assert_array_equal(ring > 0, expected)
    assert set(np.unique(ring)) == {0, 1}
    assert ring.dtype == labels.dtype
    n = int((ring > 0).sum())
    # annulus between radii ~7.5 and ~10.5: pi * (10.5**2 - 7.5**2) ~ 170
    assert 140 <= n <= 200


def test_edt_fallback_gives_the_same_annulus(monkeypatch):
    labels = disk_labels((41, 41), [(20, 20)], 6)
    fast = ring_labels(labels, inner_px=0.5, width_px=4)
    monkeypatch.setattr(rings_mod, "_BOUNDED_MAX_RADIUS", 0.0)
    slow = ring_labels(labels, inner_px=0.5, width_px=4)
    np.testing.assert_array_equal(fast, slow)


def test_bounded_transform_matches_edt():
    rng = np.random.default_rng(3)
    labels = np.zeros((80, 90), dtype=np.int32)
    for k in range(1, 40):
        y, x = rng.integers(0, 78, 2)
        labels[y : y + rng.integers(1, 6), x : x + rng.integers(1, 6)] = k
    ids, dists = per_label_distances(labels)
    dist = dists.min(axis=0)
    for radius in (2.5, 5.5, 7.0):
        sq, nearest = rings_mod._nearest_label_bounded(labels, radius)
        within = dist <= radius
        np.testing.assert_array_equal(nearest > 0, within)
        np.testing.assert_array_equal(sq[within], np.round(dist[within] ** 2))
        # the label is a nearest one; ties go to the smaller id
        tied = np.isclose(dists, dist[None], atol=1e-9)
        smallest = ids[np.argmax(tied, axis=0)]
        np.testing.assert_array_equal(nearest[within], smallest[within])


def check_exclusive(labels, ring, buffer_px):
    """Invariants every ring image must satisfy."""
    ids = set(np.unique(labels[labels > 0]).tolist())
    assert set(np.unique(ring[ring > 0]).tolist()) <= ids
    assert not ring[labels > 0].any(), "ring pixel inside a nucleus"
    # rings of different nuclei never touch, not even diagonally
    padded = np.pad(ring, 1)
    core = padded[1:-1, 1:-1]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            other = padded[1 + dy : padded.shape[0] - 1 + dy, 1 + dx : padded.shape[1] - 1 + dx]
            clash = (core > 0) & (other > 0) & (core != other)
            assert not clash.any()
    # every ring pixel belongs to its nearest nucleus and keeps clear of other territories
    id_list, dists = per_label_distances(labels)
    nearest = dists.min(axis=0)
    territory = np.where(labels > 0, labels, id_list[np.argmin(dists, axis=0)])
    ys, xs = np.nonzero(ring)
    for y, x in zip(ys, xs):
        own = ring[y, x]
        assert dists[list(id_list).index(own), y, x] == nearest[y, x]
        others = np.argwhere(territory != own)
        gap = np.sqrt(((others - (y, x)) ** 2).sum(axis=1)).min()
        assert gap >= buffer_px / 2 + 0.5 - 1e-9


def test_touching_nuclei_rings_are_exclusive():
    labels = disk_labels((30, 40), [(15, 12), (15, 24), (5, 30)], 6)
    assert ((labels[:, 1:] != labels[:, :-1]) & (labels[:, 1:] > 0) & (labels[:, :-1] > 0)).any()
    for buffer_px in (2.0, 3.0, 5.0):
        ring = ring_labels(labels, inner_px=1, width_px=3, buffer_px=buffer_px)
        assert set(np.unique(ring)) == {0, 1, 2, 3}
        check_exclusive(labels, ring, buffer_px)


def test_dense_random_nuclei_rings_are_exclusive():
    rng = np.random.default_rng(7)
    centres = rng.integers(4, 56, (14, 2))
    labels = disk_labels((60, 60), centres, 4, dtype=np.int32)
    ring = ring_labels(labels, inner_px=0, width_px=4, buffer_px=2)
    check_exclusive(labels, ring, 2.0)


def test_buffer_is_exact_between_facing_nuclei():
    # two vertical bars 10 px apart: d1 + d2 = 11, so |d2 - d1| < 2 only in the middle 2 columns
    labels = np.zeros((12, 20), dtype=np.uint8)
    labels[:, :5] = 1
    labels[:, 15:] = 2
    ring = ring_labels(labels, inner_px=0, width_px=6, buffer_px=2)
    row = ring[6]
    np.testing.assert_array_equal(row[5:15], [1, 1, 1, 1, 0, 0, 2, 2, 2, 2])
    # excluded pixels always satisfy d2 - d1 < buffer + 1 (never over-exclude more than 1 px)
    labels = disk_labels((40, 40), [(12, 12), (20, 27), (30, 10)], 7)
    ids, dists = per_label_distances(labels)
    d_sorted = np.sort(dists, axis=0)
    full = ring_labels(labels, inner_px=1, width_px=3, buffer_px=0)
    for buffer_px in (2.0, 4.0):
        ring = ring_labels(labels, inner_px=1, width_px=3, buffer_px=buffer_px)
        dropped = (full > 0) & (ring == 0)
        assert dropped.any()
        assert np.all((d_sorted[1] - d_sorted[0])[dropped] < buffer_px + 1)


def test_allowed_mask_is_respected():
    labels = disk_labels((30, 30), [(15, 15)], 5)
    allowed = np.zeros((30, 30), dtype=bool)
    allowed[:, :15] = True
    full = ring_labels(labels)
    masked = ring_labels(labels, allowed=allowed)
    assert not masked[:, 15:].any()
    np.testing.assert_array_equal(masked[:, :15], full[:, :15])


def test_large_label_ids_keep_their_ids():
    labels = disk_labels((50, 50), [(15, 15), (15, 28), (35, 25)], 6, dtype=np.int64)
    big = np.where(labels > 0, labels * 100_000 + 7, 0)
    ring = ring_labels(labels)
    ring_big = ring_labels(big)
    np.testing.assert_array_equal(ring_big, np.where(ring > 0, ring * 100_000 + 7, 0))


def test_empty_labels_give_empty_rings():
    ring = ring_labels(np.zeros((10, 10), dtype=np.uint16))
    assert ring.dtype == np.uint16 and not ring.any()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"width_px": 0}, "width_px"),
        ({"width_px": -1}, "width_px"),
        ({"inner_px": -0.5}, "inner_px"),
        ({"buffer_px": -1}, "buffer_px"),
        ({"inner_px": 1, "width_px": 9}, "width_px"),  # 1 + 9 >= 10 px image
        ({"width_px": float("nan")}, "width_px"),
        ({"allowed": np.ones((5, 5), dtype=bool)}, "allowed"),
    ],
)
def test_ring_parameter_errors(kwargs, match):
    labels = np.zeros((10, 10), dtype=np.uint16)
    labels[4:6, 4:6] = 1
    with pytest.raises(InputError, match=match):
        ring_labels(labels, **kwargs)


def test_float_labels_rejected():
    with pytest.raises(InputError, match="labels"):
        ring_labels(np.zeros((10, 10)))


# --------------------------------------------------------------------------
# subtract_background
# --------------------------------------------------------------------------


def test_background_none_and_constant():
    img = np.arange(12, dtype=np.uint16).reshape(3, 4)
    out, level = subtract_background(img)
    assert out.dtype == np.float32 and level == 0.0
    np.testing.assert_array_equal(out, img)
    out, level = subtract_background(img, method="constant", value=5)
    assert level == 5.0
    np.testing.assert_array_equal(out, img.astype(np.float32) - 5)
    assert out.min() == -5  # no clipping, no unsigned wrap-around


def test_background_percentile_ignores_excluded_pixels():
    img = np.arange(100, dtype=np.float64).reshape(10, 10)
    exclude = np.zeros((10, 10), dtype=bool)
    exclude[5:] = True  # values 50..99 are objects
    img[5:] += 1000
    out, level = subtract_background(img, method="percentile", percentile=50, exclude=exclude)
    assert level == pytest.approx(np.percentile(np.arange(50), 50))
    np.testing.assert_allclose(out, img - level, rtol=1e-6)
    _, level = subtract_background(img, method="percentile", percentile=0)
    assert level == 0.0
    with pytest.raises(InputError, match="exclude"):
        subtract_background(img, method="percentile", exclude=np.ones((10, 10), dtype=bool))
    with pytest.raises(InputError, match="percentile"):
        subtract_background(img, method="percentile", percentile=120)


def test_background_rolling_ball_removes_smooth_background():
    yy, xx = np.mgrid[:128, :128]
    background = 100 + 0.5 * xx + 0.2 * yy
    img = background.copy()
    img[60:66, 60:66] += 500  # small bright object
    out, level = subtract_background(img, method="rolling_ball", radius_px=30)
    assert np.isnan(level)
    assert out.dtype == np.float32
    assert out.min() >= -1e-3
    # a ball of radius r under a plane of slope s stays r * (sqrt(1 + s**2) - 1) ~ 4 below it
    assert np.median(out) < 6.0  # tilted background gone
    assert out[62, 62] == pytest.approx(500, abs=10)  # object kept
    flat = np.full((64, 64), 50.0)
    flat[10:14, 10:14] += 100
    out, _ = subtract_background(flat, method="rolling_ball", radius_px=30)
    np.testing.assert_allclose(out[flat == 50.0], 0.0, atol=1e-4)
    np.testing.assert_allclose(out[10:14, 10:14], 100.0, atol=1e-4)


def test_background_rolling_ball_close_to_skimage():
    from skimage.restoration import rolling_ball

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :96]
    img = 200 + 40 * np.sin(xx / 30.0) + 30 * np.cos(yy / 25.0) + rng.normal(0, 3, (96, 96))
    img[40:46, 30:36] += 300
    out, _ = subtract_background(img, method="rolling_ball", radius_px=20)
    ref = img - rolling_ball(img, radius=20)
    assert np.abs(out - ref).mean() < 3.0  # ~ noise level
    assert out[42, 32] == pytest.approx(ref[42, 32], abs=15)


def test_unknown_background_method_lists_valid_ones():
    with pytest.raises(InputError) as err:
        subtract_background(np.zeros((4, 4)), method="tophat")
    for method in BACKGROUND_METHODS:
        assert method in str(err.value)


# --------------------------------------------------------------------------
# ring_stats
# --------------------------------------------------------------------------


def hand_built_cell():
    """Nucleus 1 (2x2) with a hand-made ring of 5 pixels, one of them an outlier."""
    nuclei = np.zeros((6, 6), dtype=np.uint16)
    nuclei[2:4, 2:4] = 1
    rings = np.zeros_like(nuclei)
    rings[1, 1:6] = 1
    img = np.zeros((6, 6), dtype=np.float32)
    img[2:4, 2:4] = [[20, 20], [20, 40]]  # nucleus: mean 25, median 20
    img[1, 1:6] = [10, 10, 10, 10, 100]  # ring: mean 28, median 10
    return nuclei, rings, img


def test_ring_mean_and_median_with_outlier():
    nuclei, rings, img = hand_built_cell()
    df = ring_stats(nuclei, rings, {"ktr": img}, reporters=["ktr"], statistic="mean", min_ring_px=1)
    row = df.iloc[0]
    assert row["ring_area_px"] == 5
    assert row["ktr_ring_mean"] == 28.0
    assert row["ktr_ring_median"] == 10.0
    assert row["cn_ktr"] == pytest.approx(28.0 / 25.0)
    assert row["cn_reason"] == ""
    med = ring_stats(nuclei, rings, {"ktr": img}, reporters=["ktr"], statistic="median", min_ring_px=1)
    assert med["cn_ktr"].iloc[0] == pytest.approx(10.0 / 20.0)


def test_cn_exact_on_flat_synthetic_cell():
    labels = disk_labels((40, 40), [(20, 20)], 6)
    ring = ring_labels(labels)
    img = np.full((40, 40), 100.0, dtype=np.float32)  # cytoplasm
    img[labels > 0] = 400.0
    other = np.full((40, 40), 7, dtype=np.uint16)
    for statistic in ("mean", "median"):
        df = ring_stats(labels, ring, {"ktr": img, "dna": other}, reporters=["ktr"], statistic=statistic)
        assert list(df.columns) == [
            "label",
            "ring_area_px",
            "ktr_ring_mean",
            "ktr_ring_median",
            "dna_ring_mean",
            "dna_ring_median",
            "cn_ktr",
            "cn_reason",
        ]
        assert df["cn_ktr"].iloc[0] == 0.25
        assert df["cn_reason"].iloc[0] == ""
        assert df["ring_area_px"].iloc[0] == int((ring > 0).sum())


def test_too_small_ring_and_missing_ring_give_nan_and_reason():
    nuclei, rings, img = hand_built_cell()
    nuclei[5, 0] = 2  # nucleus without ring
    df = ring_stats(nuclei, rings, {"ktr": img}, reporters=["ktr"], min_ring_px=10)
    assert df["label"].tolist() == [1, 2]
    assert df["ring_area_px"].tolist() == [5, 0]
    assert np.isnan(df["cn_ktr"]).all()
    assert df["cn_reason"].tolist() == ["ring_too_small", "no_ring"]
    assert df["ktr_ring_mean"].iloc[0] == 28.0  # the statistics themselves are still reported
    assert np.isnan(df["ktr_ring_mean"].iloc[1]) and np.isnan(df["ktr_ring_median"].iloc[1])


def test_nonpositive_nucleus_gives_nan_and_reason():
    nuclei, rings, img = hand_built_cell()
    img2 = img.copy()
    img2[2:4, 2:4] = -5.0  # over-subtracted background
    df = ring_stats(nuclei, rings, {"a": img, "b": img2}, reporters=["a", "b"], min_ring_px=1)
    row = df.iloc[0]
    assert row["cn_a"] == pytest.approx(28.0 / 25.0)  # the other reporter stays valid
    assert np.isnan(row["cn_b"])
    assert row["cn_reason"] == "nucleus_nonpositive"


def test_ring_stats_input_errors():
    nuclei, rings, img = hand_built_cell()
    with pytest.raises(InputError, match=r"'erk'.*available: ktr"):
        ring_stats(nuclei, rings, {"ktr": img}, reporters=["erk"])
    with pytest.raises(InputError, match="statistic"):
        ring_stats(nuclei, rings, {"ktr": img}, reporters=["ktr"], statistic="mode")
    orphan = rings.copy()
    orphan[5, 5] = 9
    with pytest.raises(InputError, match="9"):
        ring_stats(nuclei, orphan, {"ktr": img}, reporters=["ktr"])
    bad = img.copy()
    bad[1, 2] = np.nan
    with pytest.raises(InputError, match="ktr"):
        ring_stats(nuclei, rings, {"ktr": bad}, reporters=["ktr"])
    with pytest.raises(InputError, match="rings"):
        ring_stats(nuclei, rings[:5], {"ktr": img}, reporters=["ktr"])


def test_ring_stats_vectorised_matches_loop():
    rng = np.random.default_rng(5)
    labels = disk_labels((64, 64), rng.integers(5, 59, (10, 2)), 5)
    ring = ring_labels(labels)
    img = rng.integers(0, 1000, (64, 64)).astype(np.uint16)
    df = ring_stats(labels, ring, {"c": img}, reporters=["c"], statistic="median", min_ring_px=0)
    for _, row in df.iterrows():
        values = img[ring == row["label"]].astype(float)
        nuc = img[labels == row["label"]].astype(float)
        assert row["ring_area_px"] == values.size
        assert row["c_ring_mean"] == pytest.approx(values.mean())
        assert row["c_ring_median"] == np.median(values)
        assert row["cn_c"] == pytest.approx(np.median(values) / np.median(nuc))


def test_erode_labels_shrinks_each_object_and_separates_touching():
    from snakescope.rings import erode_labels

    labels = np.zeros((12, 20), np.int32)
    labels[1:11, 1:10] = 1
    labels[1:11, 10:19] = 2  # touching
    out = erode_labels(labels, radius_px=1)
    assert set(np.unique(out)) == {0, 1, 2}
    assert (out[2:10, 2:9] == 1).all() and out[:, 9].max() == 0 and out[:, 10].max() == 0
    tiny = np.zeros((5, 5), np.int32)
    tiny[2, 2] = 3
    assert erode_labels(tiny, radius_px=1).max() == 0
    assert (erode_labels(labels, radius_px=0) == labels).all()
