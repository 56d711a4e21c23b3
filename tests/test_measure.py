"""Tests for snakescope.measure: hand-computed values and agreement with regionprops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import label as sk_label
from skimage.measure import regionprops

from snakescope.errors import InputError
from snakescope.measure import INTENSITY_SUFFIXES, SHAPE_COLUMNS, intensity_columns, measure_objects


def square_frame():
    """A 3x3 object (label 5) at rows 2..4, cols 1..3 with values 1..9."""
    labels = np.zeros((7, 7), dtype=np.int32)
    labels[2:5, 1:4] = 5
    img = np.zeros((7, 7), dtype=np.uint16)
    img[2:5, 1:4] = np.arange(1, 10, dtype=np.uint16).reshape(3, 3)
    return labels, img


def test_square_by_hand():
    labels, img = square_frame()
    df = measure_objects(labels, {"dna": img})
    assert len(df) == 1
    row = df.iloc[0]
    assert row["label"] == 5
    assert row["area_px"] == 9
    assert row["x"] == 2.0 and row["y"] == 3.0
    assert row["perimeter_px"] == pytest.approx(8.0)
    assert row["solidity"] == 1.0
    assert row["eccentricity"] == 0.0
    # mu_rr = mu_cc = 6, mu_rc = 0 -> eigenvalues 6/9; axes 4 sqrt(2/3)
    assert row["major_axis_px"] == pytest.approx(4 * math.sqrt(2 / 3))
    assert row["minor_axis_px"] == pytest.approx(4 * math.sqrt(2 / 3))
    assert row["orientation"] == pytest.approx(-math.pi / 4)  # skimage's convention for a - c == 0
    assert row["equivalent_diameter_px"] == pytest.approx(math.sqrt(36 / math.pi))
    assert row["dna_mean"] == 5.0
    assert row["dna_median"] == 5.0
    assert row["dna_min"] == 1.0
    assert row["dna_max"] == 9.0
    assert row["dna_integrated"] == 45.0
    assert row["dna_std"] == pytest.approx(math.sqrt(60 / 9))  # population std of 1..9
    assert row["dna_saturated_px"] == 0
    for col in ("x_um", "y_um", "area_um2", "perimeter_um", "major_axis_um"):
        assert np.isnan(row[col])


def test_column_order_and_dtypes():
    labels, img = square_frame()
    df = measure_objects(labels, {"b": img, "a": img.astype(np.float32)})
    expected = list(SHAPE_COLUMNS) + intensity_columns("b") + intensity_columns("a")
    assert list(df.columns) == expected
    assert len(INTENSITY_SUFFIXES) == 7
    assert df["label"].dtype == np.int64
    assert df["area_px"].dtype == np.int64
    assert df["b_saturated_px"].dtype == np.int64
    assert df["b_mean"].dtype == np.float64


def test_micrometre_conversion():
    labels, img = square_frame()
    labels[0, 0:2] = 2  # a second, elongated object
    px = measure_objects(labels, {"c": img})
    um = measure_objects(labels, {"c": img}, pixel_size_um=0.5)
    np.testing.assert_allclose(um["area_um2"], 0.25 * px["area_px"])
    np.testing.assert_allclose(um["perimeter_um"], 0.5 * px["perimeter_px"])
    np.testing.assert_allclose(um["x_um"], 0.5 * px["x"])
    np.testing.assert_allclose(um["y_um"], 0.5 * px["y"])
    np.testing.assert_allclose(um["equivalent_diameter_um"], 0.5 * px["equivalent_diameter_px"])
    np.testing.assert_allclose(um["major_axis_um"], 0.5 * px["major_axis_px"])
    np.testing.assert_allclose(um["minor_axis_um"], 0.5 * px["minor_axis_px"])
    assert list(um.columns) == list(px.columns)


def test_labels_sorted_and_non_contiguous_ids():
    labels = np.zeros((6, 10), dtype=np.uint16)
    labels[0:2, 0:2] = 900
    labels[3:6, 5:9] = 7
    labels[4, 0] = 30
    df = measure_objects(labels, {})
    assert df["label"].tolist() == [7, 30, 900]
    assert df["area_px"].tolist() == [12, 1, 4]


def test_saturation_count():
    labels, img = square_frame()
    df = measure_objects(labels, {"c": img}, saturation_value=8)
    assert df["c_saturated_px"].iloc[0] == 2  # values 8 and 9
    df = measure_objects(labels, {"c": img}, saturation_value=100)
    assert df["c_saturated_px"].iloc[0] == 0


def test_median_of_even_count_and_signed_values():
    labels = np.zeros((3, 5), dtype=np.int64)
    labels[1, :4] = 1
    img = np.zeros((3, 5), dtype=np.int16)
    img[1, :4] = [-3, 10, 1, 2]
    row = measure_objects(labels, {"c": img}).iloc[0]
    assert row["c_median"] == 1.5
    assert row["c_min"] == -3 and row["c_max"] == 10
    assert row["c_mean"] == 2.5


def test_nan_inside_object_raises_naming_channel():
    labels, img = square_frame()
    bad = img.astype(np.float32)
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="GFP"):
        measure_objects(labels, {"dna": img, "GFP": bad})
    inf = img.astype(np.float64)
    inf[2, 1] = np.inf
    with pytest.raises(InputError, match="dna"):
        measure_objects(labels, {"dna": inf})


def test_nan_outside_objects_is_fine():
    labels, img = square_frame()
    f = img.astype(np.float32)
    f[0, 0] = np.nan
    assert measure_objects(labels, {"c": f})["c_mean"].iloc[0] == 5.0


def test_empty_labels_give_empty_table_with_all_columns():
    labels = np.zeros((8, 8), dtype=np.uint16)
    df = measure_objects(labels, {"x": np.ones((8, 8))}, pixel_size_um=0.3)
    assert len(df) == 0
    assert list(df.columns) == list(SHAPE_COLUMNS) + intensity_columns("x")


@pytest.mark.parametrize(
    "labels, intensities",
    [
        (np.zeros((2, 3, 3), dtype=int), {}),  # 3-D
        (np.zeros((3, 3), dtype=float), {}),  # float labels
        (np.zeros((3, 3), dtype=bool), {}),  # mask, not labels
        (np.full((3, 3), -1), {}),  # negative ids
        (np.zeros((3, 3), dtype=int), {"c": np.zeros((3, 4))}),  # shape mismatch
        (np.zeros((3, 3), dtype=int), {"c": np.zeros((3, 3), dtype=complex)}),
    ],
)
def test_invalid_inputs_raise(labels, intensities):
    with pytest.raises(InputError):
        measure_objects(labels, intensities)


def test_invalid_pixel_size():
    labels, img = square_frame()
    with pytest.raises(InputError, match="pixel_size_um"):
        measure_objects(labels, {}, pixel_size_um=0)


def _random_labels(rng, shape):
    """Random blobs: touching (merged ids) and disconnected objects, odd shapes."""
    img = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.7, 3.0))
    mask = img > np.quantile(img, rng.uniform(0.3, 0.8))
    labels = sk_label(mask, connectivity=int(rng.integers(1, 3)))
    if rng.random() < 0.4 and labels.max() > 1:
        # give several blobs the same id -> disconnected objects
        remap = np.r_[0, rng.integers(1, labels.max() // 2 + 2, labels.max())]
        labels = remap[labels]
    return labels.astype(np.int32)


SHAPE_PROPS = {
    "x": lambda r: r.centroid[1],
    "y": lambda r: r.centroid[0],
    "area_px": lambda r: r.area,
    "perimeter_px": lambda r: r.perimeter,
    "equivalent_diameter_px": lambda r: r.equivalent_diameter_area,
    "major_axis_px": lambda r: r.axis_major_length,
    "minor_axis_px": lambda r: r.axis_minor_length,
    "eccentricity": lambda r: r.eccentricity,
    "solidity": lambda r: r.solidity,
    "orientation": lambda r: r.orientation,
}


def test_shape_columns_match_regionprops_on_random_blobs():
    rng = np.random.default_rng(42)
    checked = 0
    for _ in range(40):
        shape = tuple(int(v) for v in rng.integers(6, 70, 2))
        labels = _random_labels(rng, shape)
        intensity = rng.integers(0, 4096, shape).astype(np.uint16)
        df = measure_objects(labels, {"c": intensity})
        props = regionprops(labels, intensity_image=intensity)
        assert df["label"].tolist() == [p.label for p in props]
        for col, getter in SHAPE_PROPS.items():
            ref = np.array([getter(p) for p in props], dtype=float)
            got = df[col].to_numpy(float)
            if col == "orientation":
                # undefined for isotropic objects (equal eigenvalues); +pi/2 and -pi/2 are the
                # same (horizontal) axis: skimage's sign there depends on float rounding
                iso = np.array([p.inertia_tensor_eigvals[0] - p.inertia_tensor_eigvals[1] for p in props]) < 1e-9
                ref, got = ref[~iso], got[~iso]
                horizontal = np.isclose(np.abs(ref), np.pi / 2, rtol=0, atol=1e-12)
                assert np.all(got[horizontal] == np.pi / 2)
                ref, got = ref[~horizontal], got[~horizontal]
            np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6, err_msg=col)
        for suffix, getter in (("mean", "intensity_mean"), ("min", "intensity_min"), ("max", "intensity_max")):
            ref = np.array([getattr(p, getter) for p in props], dtype=float)
            np.testing.assert_allclose(df[f"c_{suffix}"], ref, rtol=1e-12)
        for p, (_, row) in zip(props, df.iterrows()):
            values = p.image_intensity[p.image].astype(float)
            assert row["c_median"] == np.median(values)
            assert row["c_std"] == pytest.approx(np.std(values), rel=1e-9, abs=1e-12)
            assert row["c_integrated"] == values.sum()
        checked += len(df)
    assert checked > 200


@pytest.mark.parametrize(
    "pixels",
    [
        [(3, 3)],  # single pixel
        [(2, c) for c in range(1, 9)],  # one row
        [(r, 4) for r in range(0, 9)],  # one column touching the border
        [(i, i) for i in range(8)],  # diagonal line (8-connected)
        [(r, 1) for r in range(1, 8)] + [(7, c) for c in range(2, 8)],  # L shape
        [(1, 1), (1, 7), (7, 4)],  # three separate pixels, one id
        [(r, c) for r in range(9) for c in range(9) if abs(r - 4) + abs(c - 4) <= 4],  # diamond
    ],
)
def test_special_shapes_match_regionprops(pixels):
    labels = np.zeros((9, 9), dtype=np.uint8)
    for r, c in pixels:
        labels[r, c] = 3
    row = measure_objects(labels, {}).iloc[0]
    ref = regionprops(labels)[0]
    for col, getter in SHAPE_PROPS.items():
        if col == "orientation" and abs(ref.inertia_tensor_eigvals[0] - ref.inertia_tensor_eigvals[1]) < 1e-9:
            continue
        if col == "orientation" and abs(abs(ref.orientation) - np.pi / 2) < 1e-12:
            assert row[col] == np.pi / 2  # horizontal major axis: always +pi/2 here
            continue
        assert row[col] == pytest.approx(getter(ref), rel=1e-6, abs=1e-6), col


def test_float64_intensities_general_path():
    rng = np.random.default_rng(1)
    labels = _random_labels(rng, (40, 40))
    img = rng.normal(0, 1, (40, 40))  # not float32-representable
    df = measure_objects(labels, {"c": img})
    for p, (_, row) in zip(regionprops(labels, intensity_image=img), df.iterrows()):
        values = p.image_intensity[p.image]
        assert row["c_median"] == pytest.approx(np.median(values), rel=1e-12, abs=1e-12)
        assert row["c_min"] == values.min() and row["c_max"] == values.max()
