import numpy as np
import pytest

from snakescope import segment, validate
from snakescope.errors import InputError

from conftest import disks


def test_gaussian_smooth_preserves_mean_and_reduces_noise():
    rng = np.random.default_rng(0)
    img = rng.normal(100, 10, (64, 64)).astype(np.float32)
    out = segment.smooth(img, method="gaussian", size_px=2)
    assert out.dtype == np.float32
    assert abs(out.mean() - img.mean()) < 0.5
    assert out.std() < img.std() / 3


def test_median_removes_salt_noise():
    img = np.zeros((9, 9), np.float32)
    img[4, 4] = 100
    assert segment.smooth(img, method="median", size_px=3).max() == 0
    mean = segment.smooth(img, method="mean", size_px=3)
    assert mean[4, 4] == pytest.approx(100 / 9)


def test_unknown_smooth_method():
    with pytest.raises(InputError, match="segment.smooth.method"):
        segment.smooth(np.zeros((4, 4)), method="bilateral", size_px=1)


def test_otsu_separates_two_levels():
    img = np.zeros((10, 10), np.float32)
    img[:, 5:] = 10
    mask, value = segment.threshold(img, method="otsu")
    assert 0 <= value < 10
    assert mask[:, 5:].all() and not mask[:, :5].any()


@pytest.mark.parametrize("method", ["li", "triangle", "yen", "isodata", "mean", "multiotsu"])
def test_threshold_methods_find_disks(method):
    img, truth = disks()
    img = img + np.random.default_rng(1).normal(0, 20, img.shape).astype(np.float32)
    mask, value = segment.threshold(img, method=method, classes=2 if method == "multiotsu" else 3)
    assert 120 < value < 950  # between background (100) and disks (1000)
    assert (mask == (truth > 0)).mean() > 0.95


def test_manual_threshold_and_correction():
    img = np.arange(10, dtype=np.float32).reshape(1, 10)
    mask, value = segment.threshold(img, method="manual", value=4, correction=1.5)
    assert value == 6 and mask.sum() == 3


def test_manual_needs_value():
    with pytest.raises(InputError, match="segment.threshold.value"):
        segment.threshold(np.ones((3, 3)), method="manual")


def test_unknown_threshold_method():
    with pytest.raises(InputError, match="segment.threshold.method"):
        segment.threshold(np.arange(9.0).reshape(3, 3), method="magic")


def test_constant_image_gives_empty_mask():
    mask, value = segment.threshold(np.full((8, 8), 5.0), method="otsu")
    assert value == 5 and not mask.any()


def test_local_threshold_handles_gradient():
    yy, xx = np.mgrid[:64, :128]
    img = (xx * 5.0).astype(np.float32)  # strong gradient
    img[20:30, 10:20] += 100
    img[20:30, 100:110] += 100
    mask, _ = segment.threshold(img, method="local", block_size_px=31, offset=-20)
    assert mask[22:28, 12:18].all() and mask[22:28, 102:108].all()
    global_mask, _ = segment.threshold(img, method="otsu")
    assert not global_mask[22:28, 12:18].any()  # a global threshold misses the dim side


def test_stack_scope_uses_one_value():
    stack = np.zeros((2, 8, 8), np.float32)
    stack[0, :, 4:] = 10
    stack[1, :, 4:] = 20
    _, per_frame = segment.threshold_stack(stack, scope="frame", method="otsu")
    _, per_stack = segment.threshold_stack(stack, scope="stack", method="otsu")
    assert per_frame[0] != per_frame[1]
    assert per_stack[0] == per_stack[1]


def test_refine_fills_holes_and_removes_specks():
    mask = np.zeros((20, 20), bool)
    mask[2:12, 2:12] = True
    mask[6, 6] = False  # a hole
    mask[17, 17] = True  # a speck
    out = segment.refine(mask, fill_holes=True, min_diameter_px=3)
    assert out[6, 6] and not out[17, 17] and out.sum() == 100


def test_opening_removes_thin_bridge():
    mask = np.zeros((20, 40), bool)
    mask[5:15, 5:15] = True
    mask[5:15, 25:35] = True
    mask[9:10, 15:25] = True  # 1-px bridge
    out = segment.refine(mask, opening_radius_px=1.5, fill_holes=False)
    from scipy import ndimage as ndi
    assert ndi.label(out)[1] == 2


def test_distance_watershed_splits_touching_disks():
    img, truth = disks()
    mask = truth > 0
    merged = segment.split(mask, method="none")
    assert merged.max() == 2  # two disks touch
    labels = segment.split(mask, method="distance", min_distance_px=5)
    assert labels.max() == 3
    s = validate.scores(truth, labels, thresholds=[0.8])
    assert s.f1.iloc[0] == 1.0


def test_intensity_watershed_splits_on_dim_boundary():
    img, truth = disks()
    from scipy import ndimage as ndi
    smooth = ndi.gaussian_filter(img, 3)
    labels = segment.split(truth > 0, method="intensity", intensity=smooth, min_distance_px=5)
    assert labels.max() == 3


def test_h_maxima_seeds():
    _, truth = disks()
    labels = segment.split(truth > 0, method="distance", h_px=1.0)
    assert labels.max() == 3


def test_every_component_gets_a_seed():
    mask = np.zeros((30, 30), bool)
    mask[2:4, 2:4] = True  # tiny component: plateau of distance 1
    mask[10:25, 10:25] = True
    labels = segment.split(mask, method="distance", min_distance_px=20)
    assert labels.max() == 2


def test_filter_objects_by_size_and_border():
    labels = np.zeros((30, 30), np.int32)
    labels[0:5, 0:5] = 1  # border, area 25
    labels[10:12, 10:12] = 2  # small, area 4
    labels[15:25, 15:25] = 3  # area 100
    out = segment.filter_objects(labels, min_diameter_px=3, max_diameter_px=None, clear_border=True)
    assert set(np.unique(out)) == {0, 1}
    assert (out[15:25, 15:25] == 1).all()
    out = segment.filter_objects(labels, min_diameter_px=0, max_diameter_px=8)
    assert set(np.unique(out)) == {0, 1, 2}  # the 100-px object (eq. diameter 11.3) is removed


def test_empty_mask_gives_empty_labels():
    out = segment.label_frame(np.zeros((10, 10), bool), method="distance")
    assert out.shape == (10, 10) and out.max() == 0
