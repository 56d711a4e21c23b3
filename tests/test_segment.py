import numpy as np
import pytest
from scipy import ndimage as ndi

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
    with pytest.raises(InputError, match=r"smooth: unknown `method` 'bilateral'"):
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
    with pytest.raises(InputError, match=r"threshold_value: method 'manual' needs `value`"):
        segment.threshold(np.ones((3, 3)), method="manual")


def test_unknown_threshold_method():
    with pytest.raises(InputError, match=r"unknown `method` 'magic'"):
        segment.threshold(np.arange(9.0).reshape(3, 3), method="magic")


def test_error_messages_name_parameters_not_config_keys():
    calls = [
        lambda: segment.threshold_value(np.arange(9.0), method="multiotsu", classes=3, level=3),
        lambda: segment.threshold_stack(np.zeros((1, 4, 4)), scope="movie", method="otsu"),
        lambda: segment.split(np.ones((4, 4), bool), method="intensity"),
        lambda: segment.split(np.ones((4, 4), bool), method="magic"),
        lambda: segment.threshold(np.zeros((8, 8)), method="auto"),
        lambda: segment.threshold_value(np.zeros((8, 8)), method="auto"),
        lambda: segment.threshold_auto(np.zeros((8, 8)), diameter_px=0),
    ]
    expected = ["`level`", "`scope`", "`intensity`", "`method`", "`diameter_px`", "'auto'", "`diameter_px`"]
    for call, name in zip(calls, expected):
        with pytest.raises(InputError) as err:
            call()
        assert name in str(err.value) and "config key" not in str(err.value)


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


# --- 'auto' threshold ---------------------------------------------------------

def _nuclei(shape=(160, 200), seed=0):
    """Disks of very different brightness on a noisy, tilted background, blurred.

    Returns the image, the truth labels and the truth ids of the dim disks.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    centres = [(40, 40, 600.0), (40, 110, 15.0), (110, 60, 150.0), (115, 150, 25.0), (45, 165, 300.0)]
    signal = np.zeros(shape, np.float32)
    truth = np.zeros(shape, np.uint16)
    for i, (cy, cx, level) in enumerate(centres, start=1):
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= 12**2
        signal[inside] = level
        truth[inside] = i
    image = ndi.gaussian_filter(signal, 1.5) + 100 + 0.2 * xx + rng.normal(0, 2, shape)
    return image.astype(np.float32), truth, (2, 4)


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_background_noise_reads_level_and_sigma():
    rng = np.random.default_rng(0)
    img = rng.normal(100, 5, (200, 200))
    img[50:90, 50:90] += 300  # objects above the background do not bias the estimate
    level, sigma = segment.background_noise(img)
    assert abs(level - 100) < 1.5 and 4.5 < sigma < 5.5
    assert segment.background_noise(np.full((10, 10), 7.0)) == (7.0, 0.0)


def test_local_background_follows_gradient_not_objects():
    yy, xx = np.mgrid[:120, :160]
    background = 50 + 0.5 * xx
    img = background.copy()
    img[40:60, 40:60] += 1000
    est = segment.local_background(img.astype(np.float32), size_px=40)
    assert est.shape == img.shape
    assert np.abs(est - background)[10:-10, 10:-10].max() < 8  # within 8 counts of a 0-80 ramp
    assert est[50, 50] < background[50, 50] + 8  # the bright square is not background


def test_object_level_is_local():
    c = np.zeros((100, 200), np.float32)
    c[40:60, 30:50] = 100.0
    c[40:60, 150:170] = 10.0
    level = segment.object_level(c, block_px=2, window_px=6, reach_px=10)
    assert level[50, 40] == pytest.approx(100, rel=0.05)
    assert level[50, 160] == pytest.approx(10, rel=0.05)  # the bright object does not reach here
    body = segment.object_level(c, block_px=2, window_px=40, reach_px=4, percentile=50, mask=c > 5)
    assert body[50, 40] == pytest.approx(100, rel=0.05)  # background tiles are ignored


def test_auto_finds_dim_and_bright_nuclei_at_half_maximum():
    img, truth, dim = _nuclei()
    sm = segment.smooth(img, size_px=2)
    mask, value = segment.threshold(sm, method="auto", diameter_px=24)
    assert np.isfinite(value)
    labels, n = ndi.label(mask)
    assert n == truth.max()  # 15 to 600 counts above background: all found, nothing else
    for i in range(1, truth.max() + 1):  # each at its half maximum: the right size
        found = labels == np.bincount(labels[truth == i]).argmax()
        assert _iou(found, truth == i) > 0.9
    otsu, _ = segment.threshold(sm, method="otsu")
    assert all(otsu[truth == i].mean() < 0.5 for i in dim)  # a global threshold loses the dim ones


def test_auto_keeps_textured_nuclei_whole():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:120, :120]
    truth = (yy - 60) ** 2 + (xx - 60) ** 2 <= 20**2
    signal = np.where(truth, 20.0, 0.0)
    for cy, cx in [(50, 50), (52, 70), (70, 55), (68, 72), (60, 62)]:  # bright foci on a dim body
        signal[(yy - cy) ** 2 + (xx - cx) ** 2 <= 3**2] = 200.0
    img = ndi.gaussian_filter(signal, 1.0) + 100 + rng.normal(0, 2, signal.shape)
    sm = segment.smooth(img.astype(np.float32), size_px=2)
    mask, _ = segment.threshold(sm, method="auto", diameter_px=40)
    assert ndi.label(mask)[1] == 1 and _iou(mask, truth) > 0.8
    # the bright-level rule alone would keep the foci only
    segment_coverage = segment.AUTO_TEXTURE_COVERAGE
    try:
        segment.AUTO_TEXTURE_COVERAGE = 0.0
        foci, _ = segment.threshold(sm, method="auto", diameter_px=40)
    finally:
        segment.AUTO_TEXTURE_COVERAGE = segment_coverage
    assert foci.sum() < 0.5 * truth.sum()


def test_auto_keeps_clumps_of_textured_nuclei_whole():
    # four touching textured nuclei in a zig-zag: one blob, not compact (solidity < 0.8)
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:170, :170]
    centres = [(50, 50), (50, 90), (90, 90), (90, 130)]
    truth = np.zeros((170, 170), bool)
    for cy, cx in centres:
        truth |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 22**2
    signal = np.where(truth, 20.0, 0.0)
    for cy, cx in centres:  # bright foci on each dim body
        for dy, dx in [(-8, -6), (-6, 8), (8, -4), (6, 9), (0, 1)]:
            signal[(yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 <= 3**2] = 200.0
    img = ndi.gaussian_filter(signal, 1.0) + 100 + rng.normal(0, 2, signal.shape)
    sm = segment.smooth(img.astype(np.float32), size_px=2)
    mask, _ = segment.threshold(sm, method="auto", diameter_px=40)
    labels, n = ndi.label(mask)
    assert n == 1 and _iou(mask, truth) > 0.9
    from skimage.measure import regionprops

    assert regionprops(labels)[0].solidity < segment.AUTO_TEXTURE_SOLIDITY
    # tested as one blob, the clump fails the compactness test and only the foci remain
    whole = ndi.label(mask)[0]
    assert not segment._textured_ids(whole, sm > 150, diameter_px=40)[0][1]
    piecewise = segment._textured(mask, sm > 150, diameter_px=40)
    assert piecewise[mask].all() and not piecewise[~mask].any()


def test_textured_clump_needs_every_piece_textured():
    yy, xx = np.mgrid[:170, :170]
    disks = [(yy - cy) ** 2 + (xx - cx) ** 2 <= 22**2 for cy, cx in [(50, 50), (50, 90), (90, 90), (90, 130)]]
    loose = np.any(disks, axis=0)
    foci = np.zeros_like(loose)
    for disk in disks:  # a small bright patch in each: textured nuclei
        cy, cx = np.argwhere(disk).mean(axis=0).astype(int)
        foci[cy - 6:cy + 6, cx - 6:cx + 6] = True
    out = segment._textured(loose, foci, diameter_px=40)
    assert out[loose].all() and not out[~loose].any()
    # one uniformly bright nucleus (all of it at the bright level): the clump is not textured
    assert not segment._textured(loose, foci | disks[3], diameter_px=40).any()
    assert not segment._textured(np.zeros_like(loose), foci, diameter_px=40).any()


def test_auto_drops_faint_blobs_and_noise():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:100, :100]
    blob = (yy - 50) ** 2 + (xx - 50) ** 2 <= 10**2
    noise = rng.normal(0, 2, (100, 100))
    sm_noise = segment.smooth((100 + noise).astype(np.float32), size_px=2)
    assert not segment.threshold(sm_noise, method="auto", diameter_px=20)[0].any()
    faint = segment.smooth((100 + noise + 0.5 * blob).astype(np.float32), size_px=2)  # ~2 sigma
    strong = segment.smooth((100 + noise + 10 * blob).astype(np.float32), size_px=2)
    assert not segment.threshold(faint, method="auto", diameter_px=20)[0].any()
    assert _iou(segment.threshold(strong, method="auto", diameter_px=20)[0], blob) > 0.85


def test_auto_correction_tightens():
    img, truth, _ = _nuclei()
    sm = segment.smooth(img, size_px=2)
    loose, _ = segment.threshold(sm, method="auto", diameter_px=24)
    tight, _ = segment.threshold(sm, method="auto", diameter_px=24, correction=1.5)
    assert tight.sum() < loose.sum() and (tight & ~loose).sum() == 0


def test_auto_stack_scope_works_per_frame():
    img, truth, _ = _nuclei()
    stack = np.stack([img, img * 2]).astype(np.float32)
    masks, values = segment.threshold_stack(stack, scope="stack", method="auto", diameter_px=24)
    assert masks.shape == stack.shape and values[1] > values[0]
    assert (masks[0] == masks[1]).mean() > 0.99


def test_auto_constant_and_tiny_images():
    mask, _ = segment.threshold(np.full((16, 16), 5.0), method="auto", diameter_px=8)
    assert not mask.any()
    img = np.zeros((12, 12), np.float32)
    img[4:8, 4:8] = 100
    mask, _ = segment.threshold(img, method="auto", diameter_px=40)  # image smaller than the windows
    assert mask[5, 5] and not mask[0, 0]


def test_smoothed_distance_transform_removes_spurious_seeds():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:60, :100]
    noise = ndi.gaussian_filter(rng.normal(0, 1, yy.shape), 1.5)
    dist = np.hypot(yy - 30, xx - np.clip(xx, 25, 75))  # a capsule 68 x 18 px with a rough outline
    mask = ndi.binary_fill_holes(dist + 0.5 * noise / noise.std() < 9)
    raw = segment.split(mask, method="distance", min_distance_px=6).max()
    smoothed = segment.split(mask, method="distance", min_distance_px=6, sigma_px=2).max()
    assert smoothed < raw
    _, truth = disks()
    labels = segment.label_frame(truth > 0, method="distance", min_distance_px=5, sigma_px=1)
    assert labels.max() == 3  # touching disks are still split


def _disk_mask(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def test_merge_fragments_joins_the_pieces_of_one_object_only():
    # one disk of diameter 21 cut in three pieces; a separate disk cut in two; two small disks touching at a neck
    labels = np.zeros((60, 90), np.int32)
    big = _disk_mask(labels.shape, (15, 15), 10.5)
    labels[big & (np.arange(90)[None, :] < 12)] = 1
    labels[big & (np.arange(90)[None, :] >= 12) & (np.arange(60)[:, None] < 15)] = 2
    labels[big & (np.arange(90)[None, :] >= 12) & (np.arange(60)[:, None] >= 15)] = 3
    other = _disk_mask(labels.shape, (15, 60), 8)
    labels[other & (np.arange(90)[None, :] < 60)] = 4
    labels[other & (np.arange(90)[None, :] >= 60)] = 5
    left, right = _disk_mask(labels.shape, (45, 20), 6), _disk_mask(labels.shape, (45, 32), 6)
    labels[left] = 6
    labels[right & ~left] = 7
    out = segment.merge_fragments(labels, max_diameter_px=22.0)
    assert out.dtype == np.int32
    assert set(np.unique(out[big])) == {1}  # three pieces, one object, the first piece's place
    assert set(np.unique(out[other])) == {2}
    assert out[45, 20] == 3 and out[45, 32] == 4  # touching at a narrow neck: two objects
    np.testing.assert_array_equal(out > 0, labels > 0)
    # two neighbours that together are larger than one object stay apart
    small = segment.merge_fragments(labels, max_diameter_px=17.0)
    assert len(np.unique(small[big])) == 2  # two of the pieces fit in 17 px, the whole disk (21 px) does not
    assert np.bincount(small.ravel())[1:].max() <= np.pi / 4 * 17 ** 2
    assert len(np.unique(small[other])) == 1  # the 16 px disk fits
    # a broad contact is required: with min_contact above 1 nothing merges
    np.testing.assert_array_equal(segment.merge_fragments(labels, max_diameter_px=22.0, min_contact=2.0), labels)
    np.testing.assert_array_equal(segment.merge_fragments(labels, max_diameter_px=0.0), labels)
    with pytest.raises(InputError, match="max_diameter_px"):
        segment.merge_fragments(labels, max_diameter_px=-1.0)


def test_label_frame_merges_a_watershed_cut_only_when_the_union_fits_one_object():
    yy, xx = np.mgrid[:80, :120]
    ellipse = ((yy - 40) / 12.0) ** 2 + ((xx - 60) / 30.0) ** 2 <= 1  # 60 x 24 px: two distance maxima
    kwargs = dict(method="distance", min_distance_px=5.0)
    assert segment.label_frame(ellipse, **kwargs).max() >= 2
    eqd = np.sqrt(4 * ellipse.sum() / np.pi)  # ~38 px
    assert segment.label_frame(ellipse, merge_max_diameter_px=eqd + 1, **kwargs).max() == 1
    assert segment.label_frame(ellipse, merge_max_diameter_px=eqd - 1, **kwargs).max() >= 2
    assert segment.label_frame(ellipse, merge_max_diameter_px=eqd + 1, method="none").max() == 1
