"""Tests of the fast paths of the QC figures (snakescope.plots, snakescope.figures.write_qc):
outlines by array comparisons, the direct PNG writer, nearest-neighbour image drawing,
ids drawn as markers, percentiles by counting, and deterministic QC folders."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import AxesImage
from PIL import Image
from skimage.segmentation import find_boundaries

from snakescope import figures, plots
from snakescope.errors import InputError


def disk_scene(shape=(64, 80), centres=((20, 20), (40, 55)), radius=7):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint16)
    rings = np.zeros(shape, np.uint16)
    image = np.full(shape, 100.0)
    for i, (cy, cx) in enumerate(centres, start=1):
        d = np.hypot(yy - cy, xx - cx)
        labels[d <= radius] = i
        rings[(d > radius + 2) & (d <= radius + 5)] = i
        image[d <= radius] = 1000.0 + 100 * i
    return image, labels, rings


def png_chunks(data: bytes) -> list[bytes]:
    """Chunk types of a PNG file, in order."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    tags, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        tag = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        assert int.from_bytes(data[pos + 8 + length:pos + 12 + length], "big") == zlib.crc32(tag + body)
        tags.append(tag)
        pos += 12 + length
    return tags


# --------------------------------------------------------------------------
# outlines
# --------------------------------------------------------------------------


def test_inner_boundaries_exact_pixels():
    labels = np.array([
        [0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 1, 1, 1, 2, 2],
        [0, 1, 1, 1, 2, 2],
        [0, 0, 0, 0, 2, 2],
    ], np.uint16)
    expected = np.array([
        [0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 1, 0, 1, 1, 1],   # 1|2 contact: both sides; the border is no boundary
        [0, 1, 1, 1, 1, 0],
        [0, 0, 0, 0, 1, 0],
    ], bool)
    assert (plots.inner_boundaries(labels) == expected).all()
    assert (plots.inner_boundaries(labels) == find_boundaries(labels, mode="inner")).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, bool])
def test_inner_boundaries_match_skimage(dtype):
    rng = np.random.default_rng(0)
    for _ in range(50):
        shape = tuple(rng.integers(1, 15, 2))
        labels = rng.integers(0, 2 if dtype is bool else 4, shape).astype(dtype)
        assert (plots.inner_boundaries(labels) == find_boundaries(labels, mode="inner")).all()
    assert plots.inner_boundaries(np.zeros((0, 3), np.uint16)).shape == (0, 3)
    with pytest.raises(InputError):
        plots.inner_boundaries(np.zeros((2, 2, 2), np.uint16))


def test_centroids_and_label_colours_by_counting_match_unique():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 40, (30, 50)).astype(np.uint16)
    labels[labels == 7] = 0
    ids, cy, cx, area = plots._centroids(labels)
    ref_ids = np.unique(labels[labels > 0])
    assert (ids == ref_ids).all()
    yy, xx = np.nonzero(labels == ref_ids[3])
    assert np.isclose(cy[3], yy.mean()) and np.isclose(cx[3], xx.mean()) and area[3] == yy.size
    assert (plots._label_ids(labels) == ref_ids).all()
    # signed labels and huge ids take the np.unique path, with the same results
    for other in (labels.astype(np.int32), labels.astype(np.int64) * 10**9):
        o_ids, o_cy, o_cx, o_area = plots._centroids(other)
        assert np.allclose(o_cy, cy) and np.allclose(o_cx, cx) and (o_area == area).all()
    rgb = plots._label_rgb(labels, "hsv")
    assert rgb.shape == labels.shape + (3,) and (rgb[labels == 0] == 0).all()
    assert np.allclose(rgb[labels == 5][0], plots.label_colors([5])[0], atol=1e-6)
    assert np.allclose(plots._label_rgb(labels.astype(np.int64) * 10**9, "hsv")[labels == 5][0],
                       plots.label_colors([5 * 10**9])[0], atol=1e-6)


# --------------------------------------------------------------------------
# percentiles
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_percentiles_by_counting_equal_numpy(dtype):
    rng = np.random.default_rng(2)
    for n in (1, 2, 5, 1000, 300_001):
        values = rng.integers(0, np.iinfo(dtype).max, n).astype(dtype)
        q = [0.0, 1.0, 50.0, 99.8, 100.0]
        assert np.allclose(plots._percentiles(values, q), np.percentile(values, q), rtol=1e-12, atol=1e-9)


def test_top_percentile_equals_numpy():
    rng = np.random.default_rng(3)
    samples = [rng.normal(size=400_000), rng.exponential(size=250_000), np.full(200_000, 2.5),
               rng.integers(0, 5, 300_000).astype(float), rng.normal(size=1000)]
    for values in samples:
        values = values.astype(np.float32)
        for q in (99.9, 99.0, 95.0, 100.0, 50.0):
            assert plots._top_percentile(values, q) == float(np.percentile(values, q))


# --------------------------------------------------------------------------
# PNG writer
# --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3), (5, 7, 4), (1, 1, 3), (40, 33, 4)])
def test_png_bytes_round_trip(shape):
    pixels = np.random.default_rng(4).integers(0, 256, shape, dtype=np.uint8)
    data = plots.png_bytes(pixels, dpi=200)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.mode == ("L" if len(shape) == 2 else {3: "RGB", 4: "RGBA"}[shape[2]])
    assert (np.asarray(decoded) == pixels).all()
    assert decoded.info["dpi"] == pytest.approx((200, 200), abs=0.01)
    assert png_chunks(data) == [b"IHDR", b"pHYs", b"IDAT", b"IEND"]  # no text, no dates
    assert plots.png_bytes(pixels, dpi=200) == data


def test_png_bytes_opaque_rgba_is_rgb_and_errors():
    pixels = np.random.default_rng(5).integers(0, 256, (9, 11, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    decoded = Image.open(io.BytesIO(plots.png_bytes(pixels)))
    assert decoded.mode == "RGB" and (np.asarray(decoded) == pixels[..., :3]).all()
    assert png_chunks(plots.png_bytes(pixels)) == [b"IHDR", b"IDAT", b"IEND"]
    for bad in (np.zeros((3, 3), np.float32), np.zeros((3, 3, 2), np.uint8), np.zeros((0, 4, 3), np.uint8)):
        with pytest.raises(InputError):
            plots.png_bytes(bad)


def test_save_figure_png_is_the_agg_canvas(tmp_path):
    """The PNG holds exactly the pixels matplotlib's own PNG writer would."""
    image, labels, rings = disk_scene()
    fig = plots.qc_overlay(image, labels, rings2d=rings, title="t")
    (path,) = plots.save_figure(fig, tmp_path / "a.png", dpi=120)
    with plots._styled(None, rc=plots._SAVE_RC):
        fig.savefig(tmp_path / "b.png", dpi=120, metadata={"Software": None})
    ours = np.asarray(Image.open(path))
    theirs = np.asarray(Image.open(tmp_path / "b.png"))
    assert ours.shape[2] == 3 and (theirs[..., 3] == 255).all()
    assert (ours == theirs[..., :3]).all()


# --------------------------------------------------------------------------
# images drawn by nearest-neighbour look-up
# --------------------------------------------------------------------------


def _render(fig, dpi) -> np.ndarray:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="rgba", dpi=dpi)
    w, h = int(fig.get_figwidth() * dpi), int(fig.get_figheight() * dpi)
    return np.frombuffer(buffer.getvalue(), np.uint8).reshape(h, w, 4)


@pytest.mark.parametrize("dpi", [72, 100, 150, 200, 300])
def test_pixel_images_draw_as_matplotlib_does(dpi):
    image, labels, rings = disk_scene(shape=(53, 71))
    rng = np.random.default_rng(6)
    image = image + rng.normal(0, 50, image.shape)
    for fig in (plots.qc_overlay(image, labels, rings2d=rings, ids=False),
                plots.mask_labels_panel(image, labels > 0, labels)):
        fast = _render(fig, dpi)
        for ax in fig.axes:
            assert all(type(im) is plots._PixelImage for im in ax.images)
            for im in ax.images:
                im.__class__ = AxesImage  # matplotlib's own resampling
        slow = _render(fig, dpi)
        # the same pixels, up to where a source pixel boundary falls on an output pixel centre
        assert (fast != slow).any(axis=2).mean() < 0.005


def test_pixel_images_in_vector_output(tmp_path):
    image, labels, rings = disk_scene()
    fig = plots.qc_overlay(image, labels, rings2d=rings)
    written = plots.save_figure(fig, tmp_path / "qc.svg", formats=["svg", "pdf"])
    assert all(p.stat().st_size > 1000 for p in written)
    assert "<image" in (tmp_path / "qc.svg").read_text()


# --------------------------------------------------------------------------
# ids as markers
# --------------------------------------------------------------------------


def test_ids_are_drawn_at_the_objects():
    image, labels, _ = disk_scene(shape=(400, 480), centres=((120, 120), (280, 340)), radius=28)
    image[:] = 0
    fig = plots.qc_overlay(image, labels, ids={1: 7, 2: 88}, id_color="#ffff00", nucleus_color="#0000ff")
    fig.set_dpi(200)
    rgba = _render(fig, 200).astype(int)  # display coordinates = output pixels
    ax = fig.axes[0]
    yellow = (rgba[..., 0] > 150) & (rgba[..., 1] > 150) & (rgba[..., 2] < 80)
    height = rgba.shape[0]
    for (cy, cx), text in (((120, 120), "7"), ((280, 340), "88")):
        x, y = ax.transData.transform((cx, cy))  # data coordinates: pixel centres are integers
        row, col = height - y, x
        top, left = int(row) - 30, int(col) - 40
        ys, xs = np.nonzero(yellow[top:top + 60, left:left + 80])
        assert ys.size > 20, text
        assert abs(top + ys.mean() + 0.5 - row) < 1.5 and abs(left + xs.mean() + 0.5 - col) < 1.5, text
    # one artist, its path the outlines of the three characters
    (ids,) = [a for a in ax.get_children() if a.get_gid() == "ids"]
    assert len(ids.get_path().to_polygons()) >= 3


# --------------------------------------------------------------------------
# the QC folder
# --------------------------------------------------------------------------


def test_write_qc_folder_is_deterministic(tmp_path):
    image, labels, rings = disk_scene()
    raw = np.stack([image, image[::-1]])
    lab = np.stack([labels, labels[::-1]])
    rng_ = np.stack([rings, rings[::-1]])
    tracks = pd.DataFrame({"frame": [0, 0, 1, 1], "label": [1, 2, 1, 2], "track_id": [11, 12, 11, 12]})
    settings = {"style": str(plots.DEFAULT_STYLE), "dpi": 80, "size_in": None, "qc_ids": True,
                "log_counts": False}
    for out in ("a", "b"):
        (tmp_path / out).mkdir()
        figures.write_qc(str(tmp_path / out), raw=raw, labels=lab, rings=rng_, frames=[0, 1], name="img",
                         pixel_size_um=0.5, figures=settings, tracks=tracks, smoothed=raw,
                         mask=(lab > 0).astype(np.uint8), thresholds=np.array([500.0, 500.0]))
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["histogram.png", "mask_labels_t000.png", "montage.png", "overlay_t000.png",
                     "overlay_t001.png"]
    for name in names:
        data = (tmp_path / "a" / name).read_bytes()
        assert data == (tmp_path / "b" / name).read_bytes(), name
        assert b"tEXt" not in data and b"Software" not in data
        assert Image.open(io.BytesIO(data)).mode == "RGB"


def test_save_figure_png_with_a_tight_bounding_box_style(tmp_path):
    """A style that crops figures (savefig.bbox: tight) gets matplotlib's own PNG writer."""
    style = tmp_path / "tight.mplstyle"
    style.write_text(plots.DEFAULT_STYLE.read_text(encoding="utf-8") + "\nsavefig.bbox: tight\n", encoding="utf-8")
    image, labels, rings = disk_scene()
    fig = plots.qc_overlay(image, labels, rings2d=rings, style=style)
    full = (int(fig.get_figwidth() * 100), int(fig.get_figheight() * 100))
    (path,) = plots.save_figure(fig, tmp_path / "t.png", dpi=100, style=style)
    data = path.read_bytes()
    assert Image.open(io.BytesIO(data)).size != full and b"Software" not in data
    assert plots.save_figure(fig, tmp_path / "u.png", dpi=100, style=style)[0].read_bytes() == data
