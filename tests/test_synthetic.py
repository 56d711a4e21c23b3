"""Tests of the synthetic example generator (snakescope.synthetic).

Besides shapes and ground-truth consistency, these tests calibrate the
difficulty of the example: a naive segmentation must visibly fail on it while a
reasonable classical pipeline must succeed.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import gaussian, threshold_otsu
from skimage.measure import label as connected_components
from skimage.segmentation import watershed

from snakescope import synthetic

STIMULUS_FRAME = 6


@pytest.fixture(scope="module")
def stills():
    return synthetic.make_stills(0)


@pytest.fixture(scope="module")
def movie():
    return synthetic.make_timelapse(1, stimulus_frame=STIMULUS_FRAME)


# ---------------------------------------------------------------------------
# Helpers: matching and two reference pipelines
# ---------------------------------------------------------------------------


def match_counts(gt: np.ndarray, pred: np.ndarray, *, iou_threshold: float = 0.5) -> tuple[int, int, int]:
    """(true positives, number of GT objects, number of predicted objects).

    One-to-one matching at IoU > 0.5 (above 0.5 a match is necessarily unique).
    """
    g = gt.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    n_p = int(p.max()) + 1
    inter = np.bincount(g * n_p + p, minlength=(int(g.max()) + 1) * n_p).reshape(-1, n_p)
    area_g = inter.sum(axis=1)
    area_p = inter.sum(axis=0)
    union = area_g[:, None] + area_p[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)[1:, 1:]
    tp = int((iou > iou_threshold).sum())
    assert (iou > iou_threshold).sum(axis=0).max(initial=0) <= 1
    assert (iou > iou_threshold).sum(axis=1).max(initial=0) <= 1
    return tp, int((area_g[1:] > 0).sum()), int((area_p[1:] > 0).sum())


def f1_score(counts: list[tuple[int, int, int]]) -> float:
    """F1 pooled over several images."""
    tp = sum(c[0] for c in counts)
    n = sum(c[1] + c[2] for c in counts)
    return 2.0 * tp / n if n else 1.0


def naive_pipeline(img: np.ndarray) -> np.ndarray:
    """Gaussian blur (1 px), Otsu, connected components; no splitting."""
    smooth = gaussian(img.astype(float), sigma=1.0, preserve_range=True)
    return connected_components(smooth > threshold_otsu(smooth))


def classical_pipeline(img: np.ndarray) -> np.ndarray:
    """Gaussian (1.5 px), Otsu, fill holes, drop < 40 px, distance-transform watershed."""
    smooth = gaussian(img.astype(float), sigma=1.5, preserve_range=True)
    mask = ndi.binary_fill_holes(smooth > threshold_otsu(smooth))
    comps = connected_components(mask)
    sizes = np.bincount(comps.ravel())
    mask &= sizes[comps] >= 40
    comps[~mask] = 0
    dist = ndi.distance_transform_edt(mask)
    peaks = peak_local_max(
        dist, min_distance=7, footprint=np.ones((15, 15)), labels=comps, exclude_border=False
    )
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers, mask=mask)


def touching_labels(labels: np.ndarray) -> set[int]:
    """Labels 8-adjacent to another label."""
    out: set[int] = set()
    pairs = [
        (labels[1:, :], labels[:-1, :]),
        (labels[:, 1:], labels[:, :-1]),
        (labels[1:, 1:], labels[:-1, :-1]),
        (labels[1:, :-1], labels[:-1, 1:]),
    ]
    for a, b in pairs:
        m = (a > 0) & (b > 0) & (a != b)
        out |= set(a[m].tolist()) | set(b[m].tolist())
    return out


def check_table_matches_labels(labels: np.ndarray, table: pd.DataFrame) -> None:
    """Ids, areas and centroids of the table equal those measured on the label image."""
    ids = np.unique(labels[labels > 0])
    assert table["label"].tolist() == ids.tolist()
    assert (table["track_id"] == table["label"]).all()
    area = ndi.sum_labels(np.ones(labels.shape), labels, ids)
    np.testing.assert_array_equal(table["area_px"].to_numpy(), area.astype(np.int64))
    cy, cx = np.array(ndi.center_of_mass(np.ones(labels.shape), labels, ids)).T
    np.testing.assert_allclose(table["y"].to_numpy(), cy, atol=1e-9)
    np.testing.assert_allclose(table["x"].to_numpy(), cx, atol=1e-9)


# ---------------------------------------------------------------------------
# Determinism, shapes, dtypes
# ---------------------------------------------------------------------------


def test_stills_are_deterministic(stills):
    again = synthetic.make_stills(0)
    for a, b in zip(stills, again):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["labels"], b["labels"])
        pd.testing.assert_frame_equal(a["cells"], b["cells"])
    other = synthetic.make_stills(1, n_images=1)[0]
    assert not np.array_equal(other["image"], stills[0]["image"])
    # Field k does not depend on how many fields are asked for.
    np.testing.assert_array_equal(synthetic.make_stills(0, n_images=1)[0]["image"], stills[0]["image"])


def test_timelapse_is_deterministic(movie):
    again = synthetic.make_timelapse(1, stimulus_frame=STIMULUS_FRAME)
    np.testing.assert_array_equal(movie["image"], again["image"])
    np.testing.assert_array_equal(movie["labels"], again["labels"])
    pd.testing.assert_frame_equal(movie["cells"], again["cells"])
    pd.testing.assert_frame_equal(movie["tracks"], again["tracks"])


def test_stills_shapes_and_types(stills):
    assert len(stills) == 4
    for k, s in enumerate(stills):
        assert s["name"] == f"field_{k:02d}"
        assert s["image"].shape == (2, 256, 256) and s["image"].dtype == np.uint16
        assert s["labels"].shape == (256, 256) and s["labels"].dtype == np.uint16
        assert s["pixel_size_um"] == 0.65
        assert s["frame_interval_s"] is None
        assert (s["cells"]["frame"] == 0).all()
        assert (s["cells"]["parent_track_id"] == 0).all()
    small = synthetic.make_stills(3, n_images=2, shape=(96, 128), pixel_size_um=0.3)
    assert len(small) == 2 and small[1]["image"].shape == (2, 96, 128) and small[0]["pixel_size_um"] == 0.3


def test_timelapse_shapes_and_types(movie):
    t = movie["image"].shape[0]
    assert movie["image"].shape == (16, 2, 256, 256) and movie["image"].dtype == np.uint16
    assert movie["labels"].shape == (16, 256, 256) and movie["labels"].dtype == np.uint16
    assert movie["frame_interval_s"] == 270.0 and movie["pixel_size_um"] == 0.65
    assert list(movie["tracks"].columns) == ["track_id", "start", "end", "parent"]
    assert movie["cells"]["frame"].between(0, t - 1).all()
    short = synthetic.make_timelapse(5, n_frames=4, shape=(128, 128), stimulus_frame=1)
    assert short["image"].shape == (4, 2, 128, 128)


# ---------------------------------------------------------------------------
# Ground truth consistency
# ---------------------------------------------------------------------------


def test_stills_labels_match_cells(stills):
    required = {"frame", "label", "track_id", "parent_track_id", "x", "y", "area_px", "cn_true",
                "nuc_level", "cyt_level", "reporter_background"}
    for s in stills:
        assert required <= set(s["cells"].columns)
        check_table_matches_labels(s["labels"], s["cells"])
        cells = s["cells"]
        assert cells["cn_true"].between(0.4, 2.0).all()
        np.testing.assert_allclose(cells["cyt_level"] / cells["nuc_level"], cells["cn_true"], rtol=1e-12)
        # The whole-cell labels contain the nuclei with the same ids.
        inside = s["labels"] > 0
        np.testing.assert_array_equal(s["cell_labels"][inside], s["labels"][inside])


def test_timelapse_labels_match_cells(movie):
    cells = movie["cells"]
    assert cells.equals(cells.sort_values(["frame", "label"]).reset_index(drop=True))
    for t in range(movie["labels"].shape[0]):
        check_table_matches_labels(movie["labels"][t], cells[cells["frame"] == t].reset_index(drop=True))
    np.testing.assert_allclose(cells["cyt_level"] / cells["nuc_level"], cells["cn_true"], rtol=1e-12)


def test_tracks_consistent_with_labels(movie):
    labels, tracks, cells = movie["labels"], movie["tracks"], movie["cells"]
    n_frames = labels.shape[0]
    present = {int(i): [] for i in tracks["track_id"]}
    for t in range(n_frames):
        for lab in np.unique(labels[t]):
            if lab:
                present[int(lab)].append(t)
    assert set(present) == set(np.unique(labels[labels > 0]).tolist())
    by_id = tracks.set_index("track_id")
    for tid, frames in present.items():
        start, end = by_id.loc[tid, "start"], by_id.loc[tid, "end"]
        assert frames == list(range(start, end + 1)), f"track {tid} not contiguous"
    daughters = tracks[tracks["parent"] > 0]
    assert 2 <= daughters["parent"].nunique() <= 4
    for parent, group in daughters.groupby("parent"):
        assert len(group) == 2
        assert parent in by_id.index
        assert (group["start"] == by_id.loc[parent, "end"] + 1).all()
    # The cells table carries the parent of every daughter row.
    merged = cells.merge(tracks, on="track_id")
    assert (merged["parent_track_id"] == merged["parent"]).all()
    # Nuclei enter and leave through the border.
    entries = tracks[(tracks["start"] > 0) & (tracks["parent"] == 0)]
    exits = tracks[(tracks["end"] < n_frames - 1) & ~tracks["track_id"].isin(daughters["parent"])]
    assert len(entries) >= 1 and len(exits) >= 1
    h, w = labels.shape[1:]
    for row in entries.itertuples():
        first = cells[(cells["track_id"] == row.track_id) & (cells["frame"] == row.start)].iloc[0]
        assert min(first.x, first.y, w - 1 - first.x, h - 1 - first.y) < 20
    # 40-60 nuclei per frame, each moving 1-3 px per frame.
    per_frame = cells.groupby("frame").size()
    assert per_frame.between(40, 60).all()
    c = cells.sort_values(["track_id", "frame"])
    same = (c["track_id"].diff() == 0) & (c["frame"].diff() == 1)
    step = np.hypot(c["x"].diff(), c["y"].diff())[same]
    assert 1.0 <= step.median() <= 3.0


def test_cn_time_course(movie):
    cells = movie["cells"]
    baseline = cells[cells["frame"] <= STIMULUS_FRAME]["cn_true"].median()
    response = cells[cells["frame"].between(STIMULUS_FRAME + 1, STIMULUS_FRAME + 3)]["cn_true"].median()
    late = cells[cells["frame"] == cells["frame"].max()]["cn_true"].median()
    assert 0.6 <= baseline <= 0.8
    assert response > 1.5 * baseline
    assert late < response and late > baseline  # decays towards ~0.9
    # Daughters inherit their mother's time course: sisters have identical ratios.
    tracks = movie["tracks"]
    for _, sisters in tracks[tracks["parent"] > 0].groupby("parent"):
        a, b = (cells[cells["track_id"] == tid].set_index("frame")["cn_true"] for tid in sisters["track_id"])
        common = a.index.intersection(b.index)
        assert len(common) > 0
        np.testing.assert_array_equal(a.loc[common].to_numpy(), b.loc[common].to_numpy())
    # Total reporter is conserved: nuclear level drops when the ratio rises.
    c = cells.sort_values(["track_id", "frame"])
    before = c[c["frame"] == STIMULUS_FRAME].set_index("track_id")
    after = c[c["frame"] == STIMULUS_FRAME + 1].set_index("track_id")
    common = before.index.intersection(after.index)
    rises = after.loc[common, "cn_true"] > before.loc[common, "cn_true"] + 0.2
    assert rises.mean() > 0.7
    assert (after.loc[common[rises], "nuc_level"] < before.loc[common[rises], "nuc_level"]).all()


# ---------------------------------------------------------------------------
# Realism
# ---------------------------------------------------------------------------


def test_stills_realism(stills):
    inner = []
    for s in stills:
        edge = np.unique(np.concatenate([s["labels"][[0, -1], :].ravel(), s["labels"][:, [0, -1]].ravel()]))
        inner.append(s["cells"][~s["cells"]["label"].isin(edge)])
    diameter = 2.0 * np.sqrt(pd.concat(inner)["area_px"] / np.pi)  # equivalent diameter, px
    assert 10.0 <= diameter.min() and diameter.max() <= 26.5
    assert 15.0 <= diameter.mean() <= 21.0
    ratios = []
    for s in stills:
        labels, cell_labels = s["labels"], s["cell_labels"]
        n = len(np.unique(labels[labels > 0]))
        assert len(touching_labels(labels)) >= 0.4 * n
        assert (cell_labels == 0).mean() >= 0.3
        nuc = s["image"][0].astype(float)
        background = cell_labels == 0
        for lab, sl in enumerate(ndi.find_objects(labels), start=1):
            if sl is None:
                continue
            grown = tuple(slice(max(x.start - 20, 0), x.stop + 20) for x in sl)
            local_bg = nuc[grown][background[grown]]
            if local_bg.size > 50:
                ratios.append(nuc[labels == lab].mean() / np.median(local_bg))
    ratios = np.array(ratios)
    # Dim nuclei are only 2-3x above their local background; brightness varies ~3x.
    assert 1.8 <= np.percentile(ratios, 5) <= 3.0
    assert np.percentile(ratios, 95) / np.percentile(ratios, 5) >= 1.5


def test_reporter_ratio_recoverable_with_constant_background(stills):
    errors = []
    for s in stills:
        rep = s["image"][1].astype(float)
        labels, cell_labels = s["labels"], s["cell_labels"]
        bg_true = s["cells"]["reporter_background"].iloc[0]
        bg_estimate = np.median(rep[ndi.binary_erosion(cell_labels == 0, iterations=5)])
        assert abs(bg_estimate - bg_true) < 2.0
        for row in s["cells"].itertuples():
            nuc = ndi.binary_erosion(labels == row.label, iterations=3)
            cyt = (cell_labels == row.label) & ~ndi.binary_dilation(labels == row.label, iterations=3)
            cyt = ndi.binary_erosion(cyt, iterations=1)
            if nuc.sum() < 10 or cyt.sum() < 30:
                continue
            cn = (rep[cyt].mean() - bg_estimate) / (rep[nuc].mean() - bg_estimate)
            errors.append(cn / row.cn_true - 1.0)
    assert len(errors) > 60
    assert abs(np.median(errors)) < 0.08


# ---------------------------------------------------------------------------
# Difficulty calibration
# ---------------------------------------------------------------------------


def test_stills_difficulty(stills):
    naive = f1_score([match_counts(s["labels"], naive_pipeline(s["image"][0])) for s in stills])
    classical = f1_score([match_counts(s["labels"], classical_pipeline(s["image"][0])) for s in stills])
    assert naive < 0.75, f"naive pipeline too good: F1={naive:.3f}"
    assert classical >= 0.92, f"classical pipeline too poor: F1={classical:.3f}"


def test_timelapse_difficulty(movie):
    frames = range(movie["image"].shape[0])
    naive = f1_score([match_counts(movie["labels"][t], naive_pipeline(movie["image"][t, 0])) for t in frames])
    classical = f1_score(
        [match_counts(movie["labels"][t], classical_pipeline(movie["image"][t, 0])) for t in frames]
    )
    assert naive < 0.75, f"naive pipeline too good: F1={naive:.3f}"
    assert classical >= 0.92, f"classical pipeline too poor: F1={classical:.3f}"


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def test_write_example(tmp_path):
    t0 = time.perf_counter()
    paths = synthetic.write_example(tmp_path / "a")
    elapsed = time.perf_counter() - t0
    assert elapsed < 20.0
    rel = [p.relative_to(tmp_path / "a").as_posix() for p in paths]
    expected = sorted(
        [f"stills/field_{k:02d}.tif" for k in range(4)]
        + [f"stills/gt/field_{k:02d}.tif" for k in range(4)]
        + [f"stills/gt/field_{k:02d}.csv" for k in range(4)]
        + ["timelapse/movie_00.tif", "timelapse/gt/movie_00.tif", "timelapse/gt/movie_00.csv",
           "timelapse/gt/movie_00_tracks.txt"]
        + [f"rods/colony_{k:02d}.tif" for k in range(3)]
        + [f"rods/gt/colony_{k:02d}.{ext}" for k in range(3) for ext in ("tif", "csv")]
    )
    assert sorted(rel) == expected and paths == sorted(paths)
    assert paths == synthetic.example_files(tmp_path / "a")  # the list the workflow expects
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)

    again = synthetic.write_example(tmp_path / "b")
    for p, q in zip(paths, again):
        assert p.read_bytes() == q.read_bytes(), f"{p.name} differs between runs"

    import tifffile

    movie = synthetic.make_timelapse(1)
    with tifffile.TiffFile(tmp_path / "a" / "timelapse" / "movie_00.tif") as tif:
        assert tif.series[0].axes == "TCYX"
        np.testing.assert_array_equal(tif.asarray(), movie["image"])
        assert tif.imagej_metadata["finterval"] == 270.0
        assert tif.imagej_metadata["unit"] == "um"
        xres = tif.pages[0].tags["XResolution"].value
        assert abs(xres[1] / xres[0] - 0.65) < 1e-6
    with tifffile.TiffFile(tmp_path / "a" / "stills" / "field_00.tif") as tif:
        assert tif.series[0].axes == "CYX"
    gt = tifffile.imread(tmp_path / "a" / "timelapse" / "gt" / "movie_00.tif")
    np.testing.assert_array_equal(gt, movie["labels"])

    lines = (tmp_path / "a" / "timelapse" / "gt" / "movie_00_tracks.txt").read_text().splitlines()
    parsed = np.array([[int(v) for v in line.split(" ")] for line in lines])
    np.testing.assert_array_equal(parsed, movie["tracks"].to_numpy())

    table = pd.read_csv(tmp_path / "a" / "stills" / "gt" / "field_00.csv")
    assert table["label"].tolist() == sorted(table["label"])
    assert "reporter_background" in table.columns
