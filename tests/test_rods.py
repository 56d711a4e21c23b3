"""Tests of rod-shaped-bacteria segmentation and measurement (snakescope.rods)
and of their synthetic phase-contrast example (snakescope.synthetic_rods)."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from snakescope import io, rods, synthetic_rods
from snakescope.errors import InputError
from snakescope.rods import log_edges_defaults, log_edges_segment, rod_dimensions
from snakescope.validate import match, pool_scores, scores

#: Typical rod width of the example (µm): the centre of its 0.6-1.0 µm range.
WIDTH_UM = 0.8


@pytest.fixture(scope="module")
def fields():
    return synthetic_rods.make_rods(0)


@pytest.fixture(scope="module")
def segmented(fields):
    out = []
    for f in fields:
        params = log_edges_defaults(WIDTH_UM / f["pixel_size_um"])
        out.append(log_edges_segment(f["image"], **params))
    return out


def capsule(shape, cy, cx, *, length_px, width_px, theta):
    """Boolean capsule: pixel centres within width/2 of the axis segment."""
    r = width_px / 2
    half = length_px / 2 - r
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    uy, ux = math.sin(theta), math.cos(theta)
    t = np.clip((yy - cy) * uy + (xx - cx) * ux, -half, half)
    return np.hypot(yy - (cy + t * uy), xx - (cx + t * ux)) <= r


def pooled_f1(truths, preds) -> float:
    per = pd.concat([scores(t, p, thresholds=[0.5]) for t, p in zip(truths, preds)])
    return float(pool_scores(per)["f1"].iloc[0])


def naive_otsu(image: np.ndarray) -> np.ndarray:
    """Global Otsu threshold (cells darker) and connected components."""
    img = image.astype(float)
    return ndi.label(img < threshold_otsu(img))[0]


def naive_watershed(image: np.ndarray, width_px: float) -> np.ndarray:
    """Naive pipeline: Gaussian (w/12), Otsu (cells darker), fill holes, watershed of the
    distance transform from maxima 0.4 w apart, objects of equivalent diameter 0.4-3 w
    (as benchmarks/accuracy.py's baseline)."""
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    smooth = ndi.gaussian_filter(-image.astype(float), width_px / 12)
    mask = ndi.binary_fill_holes(smooth > threshold_otsu(smooth))
    dist = ndi.distance_transform_edt(mask)
    peaks = peak_local_max(dist, min_distance=max(1, round(0.4 * width_px)), labels=ndi.label(mask)[0],
                           exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-dist, markers, mask=mask)
    eqd = np.sqrt(4 * np.bincount(labels.ravel()) / np.pi)
    keep = (eqd >= 0.4 * width_px) & (eqd <= 3 * width_px)
    keep[0] = False
    return np.where(keep[labels], labels, 0)


def textured_background(shape, *, seed, level=1000.0, sd=20.0, sigma_px=3.0):
    """Bright background with spatially correlated texture of the given SD (phase-contrast mottle)."""
    rng = np.random.default_rng(seed)
    t = ndi.gaussian_filter(rng.standard_normal(shape), sigma_px)
    return level + sd * t / t.std()


# ---------------------------------------------------------------------------
# synthetic example
# ---------------------------------------------------------------------------


def test_make_rods_is_deterministic(fields):
    again = synthetic_rods.make_rods(0)
    for a, b in zip(fields, again):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["labels"], b["labels"])
        pd.testing.assert_frame_equal(a["cells"], b["cells"])
    other = synthetic_rods.make_rods(1, n_images=1)[0]
    assert not np.array_equal(other["image"], fields[0]["image"])
    # field k does not depend on n_images
    np.testing.assert_array_equal(synthetic_rods.make_rods(0, n_images=1)[0]["image"], fields[0]["image"])


def test_make_rods_ground_truth_is_consistent(fields):
    assert len(fields) == 3
    for f in fields:
        img, labels, cells = f["image"], f["labels"], f["cells"]
        assert img.dtype == np.uint16 and img.shape == (256, 256)
        assert labels.dtype == np.uint16 and labels.shape == img.shape
        assert f["pixel_size_um"] == synthetic_rods.PIXEL_SIZE_UM
        assert list(cells.columns) == ["label", "x", "y", "length_um", "width_um", "area_px"]
        ids = np.unique(labels[labels > 0])
        np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
        np.testing.assert_array_equal(cells["label"], ids)
        np.testing.assert_array_equal(cells["area_px"], np.bincount(labels.ravel())[1:])
        assert 15 <= len(cells) <= 60
        assert cells["width_um"].between(0.6, 1.0).all()
        assert cells["length_um"].between(1.2, 4.0).all()
        assert (cells["length_um"] > cells["width_um"] + 0.45).all()
        # capsule area ~ pixel count
        w = cells["width_um"] / f["pixel_size_um"]
        length = cells["length_um"] / f["pixel_size_um"]
        nominal = length * w - (1 - math.pi / 4) * w**2
        assert np.allclose(cells["area_px"], nominal, rtol=0.08)
        # phase contrast: cells darker than the background
        assert np.median(img[labels > 0]) < 0.8 * np.median(img[labels == 0])
        # most cells touch a neighbour (8-connected contact between different labels)
        lab = labels.astype(np.int32)
        highest = ndi.grey_dilation(lab, size=3)  # largest label around each pixel
        lowest = ndi.grey_erosion(np.where(lab > 0, lab, lab.max() + 1), size=3)  # smallest non-zero
        touching = np.unique(lab[(lab > 0) & ((highest > lab) | (lowest < lab))])
        assert touching.size >= 0.7 * len(cells)


def test_write_rods_example_is_byte_identical(tmp_path):
    a = synthetic_rods.write_rods_example(tmp_path / "a", seed=0)
    b = synthetic_rods.write_rods_example(tmp_path / "b", seed=0)
    assert a == synthetic_rods.rods_example_files(tmp_path / "a")
    assert [p.relative_to(tmp_path / "a") for p in a] == [p.relative_to(tmp_path / "b") for p in b]
    assert len(a) == 9
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    img_path = tmp_path / "a" / "rods" / "colony_00.tif"
    md = io.read_metadata(img_path)
    assert md.pixel_size_um == pytest.approx(synthetic_rods.PIXEL_SIZE_UM, rel=1e-6)
    assert md.shape == (256, 256) and md.dtype == np.uint16
    data, _ = io.read_stack(tmp_path / "a" / "rods" / "gt" / "colony_00.tif")
    table = io.read_table(tmp_path / "a" / "rods" / "gt" / "colony_00.csv")
    assert list(table.columns) == ["label", "x", "y", "length_um", "width_um", "area_px"]
    np.testing.assert_array_equal(np.unique(data[data > 0]), table["label"])


# ---------------------------------------------------------------------------
# rod_dimensions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "length_px, width_px, theta",
    [(40, 12, 0.0), (40, 12, 0.3), (40, 12, math.pi / 4), (25, 12, 1.1), (60, 10, 2.0),
     (30, 16, 2.7), (80, 14, 0.9), (22, 10, 1.6)],
)
def test_rod_dimensions_of_capsules(length_px, width_px, theta):
    labels = np.zeros((120, 120), dtype=np.uint16)
    labels[capsule(labels.shape, 60.3, 59.6, length_px=length_px, width_px=width_px, theta=theta)] = 7
    d = rod_dimensions(labels, pixel_size_um=0.05)
    assert list(d.columns) == ["label", "length_px", "width_px", "length_um", "width_um"]
    assert d["label"].tolist() == [7]
    row = d.iloc[0]
    assert row.length_px == pytest.approx(length_px, rel=0.05)
    assert row.width_px == pytest.approx(width_px, rel=0.05)
    assert row.length_um == pytest.approx(row.length_px * 0.05)
    assert row.width_um == pytest.approx(row.width_px * 0.05)


def test_rod_dimensions_many_random_capsules():
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(25):
        w = rng.uniform(10, 20)
        length = w * rng.uniform(1.8, 6.0)
        size = int(length + 2 * w + 10)
        lab = capsule((size, size), size / 2 + rng.uniform(-0.5, 0.5), size / 2 + rng.uniform(-0.5, 0.5),
                      length_px=length, width_px=w, theta=rng.uniform(0, np.pi)).astype(np.int32)
        row = rod_dimensions(lab).iloc[0]
        errors.append((row.length_px / length - 1, row.width_px / w - 1))
    errors = np.abs(np.array(errors))
    assert errors.max() < 0.05


def test_rod_dimensions_several_labels_and_calibration():
    labels = np.zeros((100, 160), dtype=np.int32)
    labels[capsule(labels.shape, 30, 40, length_px=50, width_px=12, theta=0.2)] = 3
    labels[capsule(labels.shape, 70, 110, length_px=30, width_px=10, theta=1.3)] = 9
    labels[5, 150] = 12  # a single pixel
    d = rod_dimensions(labels)
    assert d["label"].tolist() == [3, 9, 12]
    assert d["length_um"].isna().all() and d["width_um"].isna().all()
    assert d.loc[0, "length_px"] == pytest.approx(50, rel=0.05)
    assert d.loc[1, "length_px"] == pytest.approx(30, rel=0.05)
    assert d.loc[2, "length_px"] == pytest.approx(1.0, abs=0.2)
    # sparse huge ids give the same numbers
    big = np.where(labels > 0, labels.astype(np.int64) * 10**8, 0)
    d_big = rod_dimensions(big)
    assert d_big["label"].tolist() == [3 * 10**8, 9 * 10**8, 12 * 10**8]
    np.testing.assert_allclose(d_big["length_px"], d["length_px"])


def test_rod_dimensions_empty_and_bad_input():
    empty = rod_dimensions(np.zeros((10, 10), dtype=np.uint16), pixel_size_um=0.1)
    assert empty.empty and list(empty.columns) == ["label", "length_px", "width_px", "length_um", "width_um"]
    with pytest.raises(InputError, match="2-D"):
        rod_dimensions(np.zeros((2, 5, 5), dtype=np.uint16))
    with pytest.raises(InputError, match="rod_dimensions: pixel_size_um must be > 0"):
        rod_dimensions(np.ones((5, 5), dtype=np.uint16), pixel_size_um=0)
    with pytest.raises(InputError, match="integers"):
        rod_dimensions(np.ones((5, 5), dtype=np.float32))


# ---------------------------------------------------------------------------
# log_edges_defaults / log_edges_segment
# ---------------------------------------------------------------------------


def test_log_edges_defaults_scale_with_width():
    small, large = log_edges_defaults(8.0), log_edges_defaults(24.0)
    assert large["sigma_px"] == pytest.approx(3.0)  # σ≈3 px for 24 px wide rods
    for key in ("mask_dilation_px", "seed_erosion_px", "gap_closing_px", "split_depth_px",
                "min_width_px", "max_width_px"):
        assert large[key] == pytest.approx(3 * small[key])
    for key in ("min_area_px", "max_area_px"):
        assert large[key] == pytest.approx(9 * small[key])
    for key in ("min_aspect", "threshold_sd"):  # dimensionless
        assert large[key] == small[key]
    assert small["min_area_px"] == pytest.approx(math.pi / 4 * 64)  # a disc as wide as the rod
    assert small["min_area_px"] < small["max_area_px"] and small["min_width_px"] < 8 < small["max_width_px"]
    assert log_edges_defaults(4.0)["sigma_px"] == 1.0
    with pytest.raises(InputError, match="log_edges_defaults: diameter_px must be > 0"):
        log_edges_defaults(0)


def test_log_edges_beats_naive_otsu(fields, segmented):
    truths = [f["labels"] for f in fields]
    ours = pooled_f1(truths, segmented)
    naive = pooled_f1(truths, [naive_otsu(f["image"]) for f in fields])
    assert ours >= 0.85
    assert naive < 0.6
    # even with a fair size filter the naive method merges touching rods
    w = WIDTH_UM / fields[0]["pixel_size_um"]
    filtered = []
    for f in fields:
        lab = naive_otsu(f["image"])
        area = np.bincount(lab.ravel())
        keep = area >= 0.5 * w * w
        keep[0] = False
        filtered.append(np.where(keep[lab], lab, 0))
    assert pooled_f1(truths, filtered) < ours - 0.2


def test_log_edges_lengths_and_widths_match_truth(fields, segmented):
    rows = []
    for f, lab in zip(fields, segmented):
        m = match(f["labels"], lab)
        m = m[m["iou"] >= 0.5]
        dims = rod_dimensions(lab, pixel_size_um=f["pixel_size_um"])
        rows.append(
            m.merge(f["cells"], left_on="true_label", right_on="label")
            .merge(dims, left_on="pred_label", right_on="label", suffixes=("_true", ""))
        )
    mm = pd.concat(rows)
    assert len(mm) >= 0.85 * sum(len(f["cells"]) for f in fields)
    length_err = (mm["length_um"] / mm["length_um_true"] - 1).abs()
    width_err = (mm["width_um"] / mm["width_um_true"] - 1).abs()
    assert length_err.median() <= 0.10
    assert width_err.median() <= 0.10


def test_log_edges_segment_output_and_determinism(fields, segmented):
    f = fields[0]
    lab = segmented[0]
    assert lab.dtype == np.int32 and lab.shape == f["image"].shape
    ids = np.unique(lab[lab > 0])
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
    # numbered in raster order of their first pixel
    flat = lab.ravel()
    first = np.array([np.flatnonzero(flat == i)[0] for i in ids])
    assert np.all(np.diff(first) > 0)
    params = log_edges_defaults(WIDTH_UM / f["pixel_size_um"])
    np.testing.assert_array_equal(log_edges_segment(f["image"], **params), lab)
    area = np.bincount(flat)[1:]
    assert area.min() >= params["min_area_px"] and area.max() <= params["max_area_px"]


def test_log_edges_bright_cells_without_invert(fields):
    f = fields[0]
    params = log_edges_defaults(WIDTH_UM / f["pixel_size_um"])
    bright = 70000.0 - f["image"].astype(np.float64)  # cells bright
    lab = log_edges_segment(bright, invert=False, **params)
    assert pooled_f1([f["labels"]], [lab]) >= 0.85


def test_log_edges_edge_cases():
    params = log_edges_defaults(12.0)
    flat = np.full((64, 64), 500, dtype=np.uint16)
    out = log_edges_segment(flat, **params)
    assert out.shape == (64, 64) and out.dtype == np.int32 and not out.any()
    # a single dark rod on a bright background
    img = np.full((80, 80), 1000.0)
    rod = capsule(img.shape, 40, 40, length_px=36, width_px=12, theta=0.5)
    img[rod] = 500.0
    img = ndi.gaussian_filter(img, 1.5)
    lab = log_edges_segment(img, **params)
    assert lab.max() == 1
    inter = np.logical_and(lab == 1, rod).sum()
    assert inter / np.logical_or(lab == 1, rod).sum() > 0.8


@pytest.mark.parametrize(
    "override, message",
    [({"sigma_px": 0}, "sigma_px must be > 0"),
     ({"seed_erosion_px": -1}, "seed_erosion_px must be >= 0"),
     ({"mask_dilation_px": float("nan")}, "mask_dilation_px must be >= 0"),
     ({"min_area_px": 100, "max_area_px": 50}, "max_area_px (50) must exceed min_area_px (100)"),
     ({"gap_closing_px": "wide"}, "gap_closing_px must be a number"),
     ({"threshold_sd": -2}, "threshold_sd must be >= 0"),
     ({"split_depth_px": float("inf")}, "split_depth_px must be >= 0"),
     ({"min_width_px": 10, "max_width_px": 5}, "max_width_px (5) must exceed min_width_px (10)"),
     ({"min_aspect": "long"}, "min_aspect must be a number")],
)
def test_log_edges_bad_parameters(override, message):
    params = {**log_edges_defaults(12.0), **override}
    with pytest.raises(InputError, match=re.escape("log_edges_segment: " + message)) as err:
        log_edges_segment(np.zeros((32, 32)), **params)
    assert "config" not in str(err.value)  # the workflow names its config keys itself


def test_log_edges_rejects_non_2d_and_nan():
    params = log_edges_defaults(12.0)
    with pytest.raises(InputError, match="2-D"):
        log_edges_segment(np.zeros((2, 32, 32)), **params)
    img = np.zeros((32, 32))
    img[3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        log_edges_segment(img, **params)


def test_log_edges_ignores_background_texture():
    """Textured, unevenly lit background and nothing else: no objects (a histogram
    threshold of such a field segments the texture)."""
    img = textured_background((256, 384), seed=2, sd=30.0)
    img *= np.linspace(0.85, 1.15, img.shape[1])[None, :]
    assert log_edges_segment(img, **log_edges_defaults(12.0)).max() == 0
    # the same field with one dark rod: exactly that rod
    rod = capsule(img.shape, 120, 200, length_px=48, width_px=12, theta=0.7)
    img = img - 500.0 * ndi.gaussian_filter(rod.astype(float), 1.0)
    lab = log_edges_segment(img, **log_edges_defaults(12.0))
    assert lab.max() == 1
    assert np.logical_and(lab == 1, rod).sum() / np.logical_or(lab == 1, rod).sum() > 0.8


# ---------------------------------------------------------------------------
# building blocks of log_edges_segment
# ---------------------------------------------------------------------------


def disk(radius):
    r = int(math.floor(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return yy * yy + xx * xx <= radius * radius


@pytest.mark.parametrize("radius", [1.0, 2.5, 4.0, 6.3])
def test_disc_morphology_matches_scipy(radius):
    mask = ndi.gaussian_filter(np.random.default_rng(0).standard_normal((60, 70)), 2) > 0.2
    np.testing.assert_array_equal(rods._dilate(mask, radius), ndi.binary_dilation(mask, structure=disk(radius)))
    np.testing.assert_array_equal(rods._erode(mask, radius), ndi.binary_erosion(mask, structure=disk(radius)))


def test_flatten_recovers_background_and_noise():
    h, w = 200, 300
    yy, xx = np.mgrid[:h, :w] / 100.0
    surface = 50.0 + 8.0 * yy - 5.0 * xx + 3.0 * yy * xx - 2.0 * xx * xx
    img = surface + np.random.default_rng(1).normal(0.0, 2.0, (h, w))
    objects = np.zeros((h, w), bool)
    objects[50:70, 40:120] = objects[120:180, 200:215] = True
    halos = ndi.binary_dilation(objects, iterations=8) & ~objects
    img[objects] += 40.0  # cells (inverted image: bright)
    img[halos] -= 25.0  # phase-contrast halos (dark after inversion)
    flat, sd = rods._flatten(img.astype(np.float32))
    background = ~ndi.binary_dilation(objects, iterations=10)
    assert sd == pytest.approx(2.0, rel=0.1)
    assert np.abs((img - flat) - surface)[background].max() < 0.6  # the fitted surface
    assert np.median(flat[objects]) == pytest.approx(40.0, abs=1.0)


def test_split_at_constrictions():
    w = 14.0
    depth, min_area = w / 8, math.pi / 4 * w * w
    shape = (60, 130)
    # two rods end to end, poles touching: a deep neck
    a = capsule(shape, 30, 35, length_px=44, width_px=w, theta=0.0)
    b = capsule(shape, 30, 78, length_px=44, width_px=w, theta=0.0)
    out = rods._split_constrictions((a | b).astype(np.int32), depth_px=depth, min_area_px=min_area)
    assert len(np.unique(out[out > 0])) == 2
    for truth in (a, b):
        part = out == np.bincount(out[truth]).argmax()
        assert np.logical_and(part, truth).sum() / np.logical_or(part, truth).sum() > 0.9
    # a dividing rod: the septum narrows it to half its width -> two cells
    rod = capsule(shape, 30, 65, length_px=90, width_px=w, theta=0.0)
    yy, xx = np.indices(shape)
    groove = (np.abs(xx - 65) <= 2)
    dividing = rod & ~(groove & (np.abs(yy - 30) > w / 4))
    assert len(np.unique(rods._split_constrictions(dividing.astype(np.int32), depth_px=depth,
                                                   min_area_px=min_area))) == 3
    # a straight rod and one with a shallow dent (1 px per side, < w/8) stay whole
    dented = rod & ~(groove & (np.abs(yy - 30) > w / 2 - 0.5))
    for obj in (rod, dented):
        out = rods._split_constrictions(obj.astype(np.int32) * 5, depth_px=depth, min_area_px=min_area)
        np.testing.assert_array_equal(out, obj.astype(np.int32) * 5)


def test_shape_rules_keep_rods_and_reject_debris():
    w = 12.0
    p = log_edges_defaults(w)
    lab = np.zeros((120, 260), np.int32)
    lab[capsule(lab.shape, 30, 40, length_px=40, width_px=w, theta=0.3)] = 1  # a rod: kept
    lab[capsule(lab.shape, 90, 40, length_px=20, width_px=w * 1.1, theta=2.0)] = 2  # short fat rod: kept
    yy, xx = np.indices(lab.shape)
    lab[np.hypot(yy - 30, xx - 110) <= 9] = 3  # round particle 1.5 w wide: aspect 1
    lab[85:89, 90:150] = 4  # sliver 4 px wide (< w/2)
    lab[5:35, 170:240] = 5  # clump 30 px wide (> 2 w)
    lab[100:108, 200:208] = 6  # speck: area < pi/4 w^2
    out = rods._shape_filter(lab, min_area_px=p["min_area_px"], max_area_px=p["max_area_px"],
                             min_width_px=p["min_width_px"], max_width_px=p["max_width_px"],
                             min_aspect=p["min_aspect"])
    np.testing.assert_array_equal(out, np.where(lab == 1, 1, np.where(lab == 2, 2, 0)))
    # without the shape rules only the area rule acts
    out = rods._shape_filter(lab, min_area_px=p["min_area_px"], max_area_px=None, min_width_px=None,
                             max_width_px=None, min_aspect=None)
    assert out.max() == 5


# ---------------------------------------------------------------------------
# the hard case: a small colony in a large, dirty field
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dirty_fields():
    return [synthetic_rods.phase_colony_with_debris(seed) for seed in (0, 1)]


def test_phase_colony_with_debris_ground_truth(dirty_fields):
    again = synthetic_rods.phase_colony_with_debris(0)
    np.testing.assert_array_equal(again["image"], dirty_fields[0]["image"])
    np.testing.assert_array_equal(again["labels"], dirty_fields[0]["labels"])
    assert not np.array_equal(dirty_fields[1]["image"], dirty_fields[0]["image"])
    for f in dirty_fields:
        img, labels, cells = f["image"], f["labels"], f["cells"]
        assert img.dtype == np.uint16 and labels.dtype == np.uint16 and img.shape == labels.shape == (384, 576)
        ids = np.unique(labels[labels > 0])
        np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
        np.testing.assert_array_equal(cells["label"], ids)
        np.testing.assert_array_equal(cells["area_px"], np.bincount(labels.ravel())[1:])
        assert 6 <= len(cells) <= 16
        assert (labels > 0).mean() < 0.1  # a small colony in a large field
        bg = float(np.median(img[labels == 0]))
        assert np.median(img[labels > 0]) < 0.7 * bg  # cells dark
        away = ~ndi.binary_dilation(labels > 0, iterations=15)
        smooth = ndi.gaussian_filter(img.astype(float), 1.0)
        # debris: dark particles and bright rings far from the cells
        assert (smooth[away] < 0.7 * bg).sum() > 200
        assert (smooth[away] > 1.2 * bg).sum() > 50


def test_log_edges_segments_the_dirty_field_and_naive_fails(dirty_fields):
    truths = [f["labels"] for f in dirty_fields]
    w = WIDTH_UM / dirty_fields[0]["pixel_size_um"]
    ours = [log_edges_segment(f["image"], **log_edges_defaults(w)) for f in dirty_fields]
    naive = [naive_watershed(f["image"], w) for f in dirty_fields]
    assert pooled_f1(truths, ours) >= 0.85
    assert pooled_f1(truths, naive) <= 0.5
    assert sum(int(lab.max()) for lab in naive) > 2 * sum(len(np.unique(t)) - 1 for t in truths)
    # the shape rules matter here: without them round particles are kept
    p = {**log_edges_defaults(w), "min_aspect": None, "min_width_px": None, "max_width_px": None}
    loose = [log_edges_segment(f["image"], **p) for f in dirty_fields]
    assert sum(int(lab.max()) for lab in loose) > sum(int(lab.max()) for lab in ours)


def test_background_is_the_densest_mode():
    """45 % of the pixels are cells and halos: the shorth start and the clipped refits find
    the background's level and SD, where the median and MAD are pulled away."""
    rng = np.random.default_rng(3)
    n = 150 * 200
    values = np.r_[rng.normal(100.0, 5.0, int(0.55 * n)), rng.normal(160.0, 30.0, int(0.25 * n)),
                   rng.normal(40.0, 20.0, n - int(0.55 * n) - int(0.25 * n))]
    level, first_sd = rods._shorth(values)
    assert level == pytest.approx(100.0, abs=1.0)
    assert 5.0 < first_sd < 15.0  # a first estimate, inflated by the 45 %
    img = rng.permutation(values).reshape(150, 200).astype(np.float32)
    flat, sd = rods._flatten(img)
    assert sd == pytest.approx(5.0, rel=0.1)
    assert np.median(img - flat) == pytest.approx(100.0, abs=1.0)
    mad_sd = 1.4826 * np.median(np.abs(values - np.median(values)))
    assert mad_sd > 2 * 5.0
