"""Tests for snakescope.plots: figure content, empty inputs, deterministic files."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.text import Text
from skimage.segmentation import find_boundaries

from snakescope import plots
from snakescope.errors import InputError

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def all_text(fig: Figure) -> str:
    """Every string shown in the figure (titles, labels, legend, notes)."""
    return "\n".join(t.get_text() for t in fig.findobj(Text))


def disk_scene(shape=(64, 80), centres=((20, 20), (40, 55)), radius=7):
    """Image, nucleus labels and ring labels (annulus 2-5 px outside each disk)."""
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


def traces_table(n_cells=40, n_frames=10, *, interval_s=60.0, stim=5, seed=1):
    """Hand-built traces: cell i responds by 0.1 * i after frame `stim`."""
    rng = np.random.default_rng(seed)
    rows = []
    for cell in range(1, n_cells + 1):
        for f in range(n_frames):
            cn = 0.5 + rng.normal(0, 0.01) + (0.1 * cell / n_cells if f >= stim else 0.0)
            rows.append({"track_id": cell, "parent_track_id": 0, "frame": f, "time_s": f * interval_s,
                         "x": 10.0 * cell, "y": 5.0, "erk_mean": 100.0, "erk_ring_mean": 100 * cn,
                         "cn_erk": cn})
    table = pd.DataFrame(rows)
    base = table[table.frame < stim].groupby("track_id")["cn_erk"].mean()
    table["dcn_erk"] = table["cn_erk"] - table["track_id"].map(base)
    return table


def objects_table():
    rng = np.random.default_rng(0)
    rows = []
    for image, shift in (("a", 0.0), ("b", 0.0), ("c", 1.0)):
        for label in range(1, 31):
            rows.append({"dataset": "d", "image": image, "frame": 0, "time_s": np.nan, "label": label,
                         "area_px": 100 + label, "area_um2": np.nan,
                         "cn_erk": 1.0 + shift + rng.normal(0, 0.1), "cn_reason": ""})
    return pd.DataFrame(rows)


def main_line(ax):
    """The median line of a traces panel (the thick one)."""
    return max(ax.lines, key=lambda line: line.get_linewidth())


# --------------------------------------------------------------------------
# QC of images
# --------------------------------------------------------------------------


def test_qc_overlay_contours_have_their_colours():
    image, labels, rings = disk_scene()
    fig = plots.qc_overlay(image, labels, rings2d=rings, title="t", nucleus_color="red", ring_color="cyan")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.images) == 1
    rgba = np.asarray(ax.images[0].get_array())
    assert rgba.shape == image.shape + (4,) and (rgba[..., 3] == 255).all()
    rgb = rgba[..., :3]
    nuc_edge = find_boundaries(labels, mode="inner")
    ring_edge = find_boundaries(rings, mode="inner")
    assert (rgb[nuc_edge] == [255, 0, 0]).all()
    assert (rgb[ring_edge & ~nuc_edge] == [0, 255, 255]).all()
    inside = (labels > 0) & ~nuc_edge
    assert (rgb[inside][:, 0] == rgb[inside][:, 1]).all()  # grey, untouched
    assert (rgb[40, 55] == 255).all() and (rgb[0, 0] == 0).all()  # 1st-99.8th percentile stretch
    assert "2 objects" in all_text(fig)


def test_qc_overlay_ids_centred_on_objects():
    image, labels, _ = disk_scene(centres=((20, 20),))
    fig = plots.qc_overlay(image, labels)
    (ids,) = [a for a in fig.axes[0].get_children() if a.get_gid() == "ids"]
    ext = ids.get_path().get_extents()
    assert abs((ext.x0 + ext.x1) / 2 - 20) < 1.0
    assert abs((ext.y0 + ext.y1) / 2 - 20) < 1.0
    # no ids when disabled or above the cap (and the title says so)
    no_ids = plots.qc_overlay(image, labels, ids=False)
    assert not [a for a in no_ids.axes[0].get_children() if a.get_gid() == "ids"]
    image2, labels2, _ = disk_scene()
    capped = plots.qc_overlay(image2, labels2, max_ids=1)
    assert not [a for a in capped.axes[0].get_children() if a.get_gid() == "ids"]
    assert "ids not shown" in all_text(capped)


def test_qc_overlay_without_objects_and_empty_image():
    image, labels, _ = disk_scene()
    fig = plots.qc_overlay(image, np.zeros_like(labels))
    assert "0 objects" in all_text(fig)
    empty = plots.qc_overlay(np.zeros((0, 0)), np.zeros((0, 0), int))
    assert "no data" in all_text(empty)


def test_qc_overlay_shape_mismatch_is_input_error():
    image, labels, _ = disk_scene()
    with pytest.raises(InputError, match="shape"):
        plots.qc_overlay(image, labels[:10])


def test_qc_montage_grid_and_empty():
    image, labels, rings = disk_scene()
    frames = [(image, labels, rings, f"frame {i}") for i in range(3)] + [(image, labels, None, "x")]
    fig = plots.qc_montage(frames, ncols=2, title="movie")
    assert len(fig.axes) == 4
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["frame 0", "frame 1", "frame 2", "x"]
    assert "no data" in all_text(plots.qc_montage([]))


def test_threshold_histogram_line_at_threshold():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, (50, 50))
    fig = plots.threshold_histogram(image, 112.5)
    (line,) = fig.axes[0].lines
    assert np.allclose(line.get_xdata(), 112.5)
    # equal per-frame thresholds: one line; a few distinct: one line each
    stack = np.stack([image, image, image])
    assert len(plots.threshold_histogram(stack, [110, 110, 110]).axes[0].lines) == 1
    lines = plots.threshold_histogram(stack, [105, 110, 120]).axes[0].lines
    assert sorted(float(ln.get_xdata()[0]) for ln in lines) == [105, 110, 120]


def test_threshold_histogram_band_for_many_thresholds():
    rng = np.random.default_rng(0)
    stack = rng.normal(100, 10, (8, 20, 20))
    thresholds = np.linspace(100, 114, 8)
    fig = plots.threshold_histogram(stack, thresholds, log_counts=True)
    ax = fig.axes[0]
    (line,) = ax.lines
    assert np.allclose(line.get_xdata(), np.median(thresholds))
    band = [p for p in ax.patches if "per-frame" in p.get_label()]
    assert band and np.isclose(band[0].get_x(), 100) and np.isclose(band[0].get_width(), 14)
    assert ax.get_yscale() == "log"


def test_threshold_histogram_errors_and_empty():
    with pytest.raises(InputError, match="thresholds for a stack of 3 frames"):
        plots.threshold_histogram(np.zeros((3, 4, 4)), [1, 2])
    assert "no data" in all_text(plots.threshold_histogram(np.zeros((0, 0)), 1.0))
    assert "no data" in all_text(plots.threshold_histogram(np.full((4, 4), np.nan), 1.0))


def test_mask_labels_panel_deterministic_label_colours():
    image, labels, _ = disk_scene()
    fig = plots.mask_labels_panel(image, labels > 0, labels, title="f")
    assert len(fig.axes) == 3
    rgb = np.asarray(fig.axes[2].images[0].get_array())
    assert (rgb[labels == 0] == 0).all()  # background black
    colours = plots.label_colors([1, 2])
    assert np.allclose(rgb[20, 20], colours[0]) and np.allclose(rgb[40, 55], colours[1])
    assert not np.allclose(colours[0], colours[1])
    # the colour of an id does not depend on the other ids present
    assert np.allclose(plots.label_colors([2]), plots.label_colors([5, 2, 9])[1])
    with pytest.raises(InputError):
        plots.mask_labels_panel(image, labels[:5], labels)


# --------------------------------------------------------------------------
# per dataset
# --------------------------------------------------------------------------


def test_count_per_frame_lines_for_timelapse_bars_for_stills():
    lapse = pd.DataFrame({"image": ["m1"] * 3 + ["m2"] * 3, "frame": [0, 1, 2] * 2,
                          "n_objects": [5, 6, 7, 1, 2, 3]})
    ax = plots.count_per_frame(lapse).axes[0]
    assert len(ax.lines) == 2
    assert list(ax.lines[0].get_ydata()) == [5, 6, 7]
    stills = pd.DataFrame({"image": ["a", "b", "c"], "frame": 0, "n_objects": [4, 0, 9]})
    fig = plots.count_per_frame(stills, groups={"a": "ctrl", "b": "ctrl", "c": "drug"})
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == [4, 0, 9]
    assert fig.axes[0].patches[0].get_facecolor() == fig.axes[0].patches[1].get_facecolor()
    assert fig.axes[0].patches[0].get_facecolor() != fig.axes[0].patches[2].get_facecolor()


def test_count_per_frame_input_errors():
    with pytest.raises(InputError, match="n_objects"):
        plots.count_per_frame(pd.DataFrame({"image": ["a"], "frame": [0]}))
    stills = pd.DataFrame({"image": ["a", "b"], "frame": 0, "n_objects": [4, 5]})
    with pytest.raises(InputError, match=r"groups: image\(s\) \['b'\]"):
        plots.count_per_frame(stills, groups={"a": "ctrl"})


def test_area_distribution_falls_back_to_pixels_and_groups():
    objects = objects_table()
    fig = plots.area_distribution(objects)
    ax = fig.axes[0]
    assert "px" in ax.get_xlabel()
    (median_line,) = ax.lines
    assert np.isclose(median_line.get_xdata()[0], objects["area_px"].median())
    grouped = plots.area_distribution(objects, groups={"a": "x", "b": "x", "c": "y"}).axes[0]
    assert len(grouped.lines) == 2 and len(grouped.patches) == 2
    with pytest.raises(InputError, match="area_nm2"):
        plots.area_distribution(objects, column="area_nm2")


def test_cn_distribution_categories_and_errors():
    objects = objects_table()
    fig = plots.cn_distribution(objects, reporter="erk", groups={"a": "ctrl", "b": "ctrl", "c": "EGF"})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ctrl", "EGF"]
    assert "n = 60" in all_text(fig) and "n = 30" in all_text(fig)
    per_image = plots.cn_distribution(objects, reporter="erk").axes[0]
    assert [t.get_text() for t in per_image.get_xticklabels()] == ["a", "b", "c"]
    hist = plots.cn_distribution(objects, reporter="erk", kind="histogram").axes[0]
    assert len(hist.patches) == 3
    with pytest.raises(InputError, match="cn_akt"):
        plots.cn_distribution(objects, reporter="akt")
    with pytest.raises(InputError, match="kind"):
        plots.cn_distribution(objects, reporter="erk", kind="pie")


def test_cn_distribution_all_nan_says_why():
    objects = objects_table()
    objects["cn_erk"] = np.nan
    objects["cn_reason"] = "no_ring"
    text = all_text(plots.cn_distribution(objects, reporter="erk"))
    assert "no data" in text and "no_ring 90" in text


def test_still_summary_medians_and_counts():
    objects = objects_table()
    objects.loc[objects.index[:5], "cn_erk"] = np.nan  # 5 invalid in image a
    fig = plots.still_summary(objects, reporter="erk", groups={"a": "ctrl", "b": "ctrl", "c": "EGF"})
    ax, ax_n = fig.axes[:2]
    medians = [line.get_ydata()[0] for line in ax.lines if line.get_marker() == "o"]
    expected = objects.groupby("image")["cn_erk"].median()
    assert np.allclose(medians, expected.to_numpy())
    heights = [p.get_height() for p in ax_n.patches]
    assert heights == [30, 30, 30, 25, 30, 30]  # all objects, then valid ratios


# --------------------------------------------------------------------------
# time-lapses
# --------------------------------------------------------------------------


def test_cn_traces_lines_median_and_band():
    traces = traces_table()
    fig = plots.cn_traces(traces, reporter="erk", max_cells=12, stimulus_frame=4.5, baseline_frames=(0, 4))
    ax = fig.axes[0]
    (cells,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(cells.get_segments()) == 12
    median = main_line(ax)
    expected = traces.groupby("frame")["cn_erk"].median().to_numpy()
    assert np.allclose(median.get_ydata(), expected)
    assert np.allclose(median.get_xdata(), np.arange(10))  # minutes (60 s frames)
    assert ax.get_xlabel() == "time (min)"
    stimulus = [ln for ln in ax.lines if ln.get_label() == "stimulus"]
    assert np.allclose(stimulus[0].get_xdata(), 4.5)
    band = [c for c in ax.collections if "percentile" in c.get_label()][0]
    top = band.get_paths()[0].vertices[:, 1].max()
    assert np.isclose(top, traces.groupby("frame")["cn_erk"].quantile(0.975).max())
    assert "2.5-97.5 percentile" in all_text(fig)


def test_cn_traces_frame_axis_when_time_unknown_and_groups():
    traces = traces_table(n_cells=10)
    traces["time_s"] = np.nan
    traces["image"] = np.where(traces["track_id"] <= 5, "m1", "m2")
    fig = plots.cn_traces(traces, reporter="erk", groups={"m1": "ctrl", "m2": "EGF"})
    assert len(fig.axes) == 2
    assert fig.axes[0].get_xlabel() == "frame"
    assert fig.axes[0].get_title(loc="left").startswith("ctrl (n = 5 cells)")


def test_bootstrap_band_matches_resampling():
    rng = np.random.default_rng(3)
    values = np.sort(rng.lognormal(0, 0.5, 101))
    lo, hi = plots._median_ci(values)
    boot = np.median(values[rng.integers(0, 101, (20000, 101))], axis=1)
    mc_lo, mc_hi = np.percentile(boot, [2.5, 97.5])
    spacing = np.median(np.diff(values[40:60]))
    assert abs(lo - mc_lo) <= 2 * spacing and abs(hi - mc_hi) <= 2 * spacing
    fig = plots.cn_traces(traces_table(), reporter="erk", band="bootstrap")
    assert "95 % CI of the median" in all_text(fig)


def test_dcn_traces_zero_line_and_missing_column():
    traces = traces_table()
    ax = plots.dcn_traces(traces, reporter="erk").axes[0]
    assert any(np.allclose(ln.get_ydata(), 0) for ln in ax.lines)
    assert "ΔC/N" in ax.get_ylabel()
    with pytest.raises(InputError, match="dcn_erk"):
        plots.dcn_traces(traces.drop(columns="dcn_erk"), reporter="erk")


def test_cn_heatmap_rows_sorted_by_response():
    traces = traces_table(n_cells=8)
    shuffled = traces.sample(frac=1, random_state=0)
    fig = plots.cn_heatmap(shuffled, reporter="erk", stimulus_frame=5)
    data = np.asarray(fig.axes[0].images[0].get_array())
    assert data.shape == (8, 10)
    # cell i responds by 0.1 * i / 8: strongest (track 8) on top
    wide = traces.pivot(index="track_id", columns="frame", values="cn_erk")
    assert np.allclose(data, wide.loc[list(range(8, 0, -1))].to_numpy())
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [str(i) for i in range(8, 0, -1)]
    by_id_fig = plots.cn_heatmap(shuffled, reporter="erk", sort_by="track_id")
    by_id = np.asarray(by_id_fig.axes[0].images[0].get_array())
    assert np.allclose(by_id, wide.to_numpy())


def test_cn_heatmap_nan_response_last_and_diverging_dcn():
    traces = traces_table(n_cells=4)
    traces.loc[(traces.track_id == 4) & (traces.frame < 5), ["cn_erk", "dcn_erk"]] = np.nan  # no baseline
    fig = plots.cn_heatmap(traces, reporter="erk", column="dcn_erk", stimulus_frame=5, min_coverage=0.3)
    image = fig.axes[0].images[0]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][-1] == "4"
    vmin, vmax = image.get_clim()
    assert np.isclose(vmin, -vmax)
    assert image.get_cmap().name.startswith("RdBu_r")
    with pytest.raises(InputError, match="sort_by"):
        plots.cn_heatmap(traces, reporter="erk", sort_by="random")


def test_response_scores_windows():
    matrix = np.array([[1.0, 1.0, 3.0, 2.0], [1.0, 2.0, 1.5, 1.0]])
    frames = np.arange(4)
    assert np.allclose(plots.response_scores(matrix, frames, stimulus_frame=2), [2.0, 0.0])
    assert np.allclose(plots.response_scores(matrix, frames, baseline_frames=(0, 0)), [2.0, 1.0])
    assert np.allclose(plots.response_scores(matrix, frames, sort_by="late_minus_early"), [1.0, 0.0])


# --------------------------------------------------------------------------
# empty inputs, style, saving
# --------------------------------------------------------------------------

EMPTY_CASES = {
    "count_per_frame": lambda t: plots.count_per_frame(t),
    "area_distribution": lambda t: plots.area_distribution(t),
    "cn_distribution": lambda t: plots.cn_distribution(t, reporter="erk"),
    "still_summary": lambda t: plots.still_summary(t, reporter="erk"),
    "cn_traces": lambda t: plots.cn_traces(t, reporter="erk"),
    "dcn_traces": lambda t: plots.dcn_traces(t, reporter="erk"),
    "cn_heatmap": lambda t: plots.cn_heatmap(t, reporter="erk"),
}


@pytest.mark.parametrize("name", sorted(EMPTY_CASES))
@pytest.mark.parametrize("table", [pd.DataFrame(), traces_table().iloc[:0]], ids=["no-columns", "no-rows"])
def test_empty_tables_give_no_data_figure(name, table):
    fig = EMPTY_CASES[name](table)
    assert isinstance(fig, Figure)
    assert "no data" in all_text(fig)


@pytest.mark.parametrize("name", ["cn_traces", "cn_heatmap", "still_summary", "cn_distribution"])
def test_all_nan_ratios_give_no_data_figure(name):
    table = traces_table(n_cells=3)
    table["cn_erk"] = np.nan
    table["image"] = "m"
    assert "no data" in all_text(EMPTY_CASES[name](table))


def test_style_is_applied_and_does_not_leak():
    before = dict(matplotlib.rcParams)
    fig = plots.count_per_frame(pd.DataFrame({"image": ["a"], "frame": [0], "n_objects": [3]}))
    ax = fig.axes[0]
    assert not ax.spines["top"].get_visible() and not ax.spines["right"].get_visible()
    assert dict(matplotlib.rcParams) == before
    with pytest.raises(InputError, match="style file not found"):
        plots.count_per_frame(pd.DataFrame(), style="/nonexistent.mplstyle")


def test_save_figure_is_deterministic_and_embeds_fonts(tmp_path):
    traces = traces_table(n_cells=6, n_frames=4)
    for suffix in ("png", "svg", "pdf"):
        # two separately built figures, so nothing is cached between the saves
        first, second = (
            plots.save_figure(plots.cn_traces(traces, reporter="erk", title="ΔC/N"), tmp_path / f"{n}.{suffix}")
            for n in ("a", "b")
        )
        assert first[0].read_bytes() == second[0].read_bytes(), suffix
    pdf = (tmp_path / "a.pdf").read_bytes()
    assert b"/FontFile2" in pdf and b"CreationDate" not in pdf
    svg = (tmp_path / "a.svg").read_text()
    assert "<text" not in svg and "<dc:date>" not in svg
    assert b"Software" not in (tmp_path / "a.png").read_bytes()
    names = sorted(p.name for p in tmp_path.iterdir())  # no temporary files left behind
    assert names == ["a.pdf", "a.png", "a.svg", "b.pdf", "b.png", "b.svg"]


def test_save_figure_same_figure_twice_and_formats(tmp_path):
    image, labels, rings = disk_scene()
    fig = plots.qc_overlay(image, labels, rings2d=rings)
    written = plots.save_figure(fig, tmp_path / "qc.png", formats=["png", "pdf", "svg"], dpi=100)
    assert [p.suffix for p in written] == [".png", ".pdf", ".svg"]
    again = plots.save_figure(fig, tmp_path / "again.png", formats=["png", "pdf", "svg"], dpi=100)
    for a, b in zip(written, again):
        assert a.read_bytes() == b.read_bytes()
    with pytest.raises(InputError, match="unsupported figure format"):
        plots.save_figure(fig, tmp_path / "qc.jpg")
    assert not list(tmp_path.glob(".tmp-*"))


def test_overlay_colour_helper_matches_to_rgba():
    assert list(plots._rgba_bytes("#ff3b30")) == [round(c * 255) for c in to_rgba("#ff3b30")]


def test_no_pyplot_and_no_snakemake(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, pandas as pd; from snakescope import plots; "
        "fig = plots.count_per_frame(pd.DataFrame({'image': ['a'], 'frame': [0], 'n_objects': [1]})); "
        f"plots.save_figure(fig, {str(tmp_path / 'x.png')!r}); "
        "assert 'matplotlib.pyplot' not in sys.modules; assert 'snakemake' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=plots.DEFAULT_STYLE.parents[1])
