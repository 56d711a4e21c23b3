"""Figures for quality control and results, as :class:`matplotlib.figure.Figure` objects.

Every function builds a new :class:`~matplotlib.figure.Figure` directly (never
``pyplot``), so nothing is registered in a global figure manager, figures are
garbage-collected like any object and no state leaks between calls. The style
(``resources/snakescope.mplstyle`` unless ``style=`` names another file) is
applied with :func:`matplotlib.rc_context` only while a figure is built and
while it is saved by :func:`save_figure`; the caller's rcParams are restored
afterwards. (``rc_context`` swaps the process-wide rcParams for its duration,
so build figures with *different* styles from one thread at a time.)

Functions never raise on empty input: a table without rows, an image without
objects or all-NaN ratios give a figure with a "no data" note. Missing columns
in a non-empty table and other problems the user can fix raise
:class:`~snakescope.errors.InputError`.

QC of one image
    :func:`qc_overlay`, :func:`qc_montage`, :func:`threshold_histogram`,
    :func:`mask_labels_panel`.
Per dataset
    :func:`count_per_frame`, :func:`area_distribution`, :func:`cn_distribution`,
    :func:`still_summary` (stills), :func:`cn_traces`, :func:`dcn_traces`,
    :func:`cn_heatmap` (time-lapses, from the traces table).
Output
    :func:`save_figure` writes PNG, SVG or PDF atomically and byte-identically
    for the same figure (no dates or software versions in the files, fonts
    embedded in PDF, text as paths in SVG); :func:`png_bytes` encodes the PNGs.

Speed of the QC images (a 1024 x 1024 overlay with ~1000 ids draws and saves in
~0.08 s): contours come from array comparisons (:func:`inner_boundaries`) on
one pre-composed RGBA image, raster output draws images by nearest-neighbour
index look-up, ids are one marker per character, and PNGs are written with
zlib level 1 without Pillow's per-row filter search.

Conventions: ``groups`` maps image names to condition names (the tables'
``image`` column); conditions are shown in the mapping's order, in the
colour-blind-safe Okabe-Ito palette of the style. Time axes show minutes when
``time_s`` is known (hours for movies longer than 10 h), else frame numbers.
"""

from __future__ import annotations

import contextlib
import functools
import io as _io
import math
import os
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.artist import allow_rasterization
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch
from matplotlib.path import Path as MplPath
from matplotlib.ticker import EngFormatter
from matplotlib.transforms import Affine2D, Bbox, IdentityTransform, TransformedBbox

from snakescope.errors import InputError
from snakescope.io import atomic_path

__all__ = [
    "DEFAULT_STYLE",
    "FORMATS",
    "qc_overlay",
    "qc_montage",
    "threshold_histogram",
    "mask_labels_panel",
    "label_colors",
    "count_per_frame",
    "area_distribution",
    "cn_distribution",
    "still_summary",
    "cn_traces",
    "dcn_traces",
    "cn_heatmap",
    "response_scores",
    "save_figure",
    "png_bytes",
    "inner_boundaries",
]

#: Style file applied to every figure unless ``style=`` names another one.
DEFAULT_STYLE: Path = Path(__file__).resolve().parents[1] / "resources" / "snakescope.mplstyle"

#: Output formats of :func:`save_figure` by file suffix.
FORMATS: dict[str, str] = {".png": "png", ".svg": "svg", ".pdf": "pdf"}

# Metadata keys set to None remove the date / software entries (byte-identical files).
_METADATA: dict[str, dict[str, None]] = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None},
}

# Always in force while saving, whatever the style file says: fonts embedded in
# PDF (TrueType, /FontFile2), text as paths in SVG, deterministic SVG ids.
_SAVE_RC: dict[str, object] = {
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.hashsalt": "snakescope",
}

_NUCLEUS_COLOR = "#ff3b30"
_RING_COLOR = "#33ccff"
_ID_COLOR = "#ffee58"
_TRACE_GRAY = "0.55"
_GOLDEN = 0.6180339887498949

PathLike = str | os.PathLike


# --------------------------------------------------------------------------
# style, figure helpers
# --------------------------------------------------------------------------


def _style_file(style: PathLike | None) -> str:
    """Path of the style file to use, or InputError when it does not exist."""
    path = Path(style) if style is not None else DEFAULT_STYLE
    if not path.is_file():
        raise InputError(
            f"{path}: matplotlib style file not found; pass style=<an existing .mplstyle> "
            "or restore resources/snakescope.mplstyle"
        )
    return str(path)


@contextlib.contextmanager
def _styled(style: PathLike | None, rc: Mapping[str, object] | None = None) -> Iterator[None]:
    """Apply the style (and `rc` overrides) for the duration of the block."""
    with matplotlib.rc_context(rc=dict(rc or {}), fname=_style_file(style)):
        yield


def _new_figure(figsize: tuple[float, float] | None = None) -> Figure:
    """A new constrained-layout Figure (no pyplot)."""
    return Figure(figsize=figsize, layout="constrained")


def _palette() -> list[str]:
    """Colours of the current style's property cycle."""
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key().get("color", [])
    return list(colors) or ["C0"]


def _note(ax, message: str) -> None:
    """Write a grey "no data" style note in the middle of `ax` and hide its axes."""
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center",
            color="0.35", fontsize=8, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _no_data_figure(message: str, *, title: str = "",
                    figsize: tuple[float, float] | None = None) -> Figure:
    """A one-axes figure that only says there is nothing to show."""
    fig = _new_figure(figsize)
    ax = fig.add_subplot()
    _note(ax, f"no data: {message}")
    if title:
        ax.set_title(title)
    return fig


def _grid(fig: Figure, n: int, *, ncols: int, sharex: bool = False,
          sharey: bool = False) -> list:
    """`n` axes in a grid of `ncols` columns; spare grid cells are removed."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey).ravel()
    for ax in axes[n:]:
        fig.delaxes(ax)
    return list(axes[:n])


def _require(table: pd.DataFrame, columns: Sequence[str], *, what: str, fix: str) -> None:
    """InputError naming the table and the first missing column."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        have = ", ".join(map(str, list(table.columns)[:12])) + (", ..." if len(table.columns) > 12 else "")
        raise InputError(f"{what}: no column {missing[0]!r} (columns: {have}); {fix}")


def _is_empty(table: pd.DataFrame | None) -> bool:
    return table is None or len(table) == 0


def _finite(values) -> np.ndarray:
    """Finite float values of an array-like, flattened."""
    v = np.asarray(values, dtype=float).ravel()
    return v[np.isfinite(v)]


def _robust_limits(values: np.ndarray, *, pct: tuple[float, float] = (0.5, 99.5),
                   pad: float = 0.06) -> tuple[float, float]:
    """Axis limits spanning the `pct` percentiles of `values` with some padding."""
    v = _finite(values)
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, pct)
    if not hi > lo:
        lo, hi = float(v.min()), float(v.max())
    if not hi > lo:
        half = 0.5 if lo == 0 else abs(lo) * 0.1
        return float(lo - half), float(hi + half)
    span = hi - lo
    return float(lo - pad * span), float(hi + pad * span)


def _outside_note(n: int) -> str:
    """Second axis-label line saying how many values the axis range leaves out."""
    return f"({n:,} values outside the axis range)" if n else ""


def _reason_summary(table: pd.DataFrame) -> str:
    """Short " (cn_reason: no_ring 3, ...)" summary of the cn_reason column, or ""."""
    if "cn_reason" not in table.columns:
        return ""
    reasons = table["cn_reason"].dropna().astype(str)
    reasons = reasons[reasons != ""]
    if reasons.empty:
        return ""
    counts = reasons.value_counts()
    return " (cn_reason: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")"


# --------------------------------------------------------------------------
# groups (image -> condition)
# --------------------------------------------------------------------------


def _conditions(table: pd.DataFrame, groups: Mapping[str, str] | None, *,
                what: str) -> pd.Series | None:
    """Condition of every row from its ``image`` (None when `groups` is None)."""
    if groups is None:
        return None
    if "image" not in table.columns:
        raise InputError(
            f"{what}: no 'image' column, but groups map image names to conditions; "
            "add the image column or drop groups"
        )
    mapping = {str(k): str(v) for k, v in groups.items()}
    images = table["image"].astype(str)
    missing = sorted(set(images) - set(mapping))
    if missing:
        raise InputError(
            f"groups: image(s) {missing[:5]} of the {what} have no condition; "
            "add them to the groups mapping (image name -> condition)"
        )
    return images.map(mapping)


def _condition_order(groups: Mapping[str, str], present: Sequence[str]) -> list[str]:
    """Conditions in the mapping's order, only those present."""
    present_set = set(present)
    return [c for c in dict.fromkeys(str(v) for v in groups.values()) if c in present_set]


def _categories(table: pd.DataFrame, groups: Mapping[str, str] | None, *, what: str,
                max_images: int = 24) -> tuple[list[str], pd.Series, str]:
    """Categories for distributions: conditions, else images (if few), else one.

    Returns the category names in order, the category of every row and the
    axis label of the category axis.
    """
    cond = _conditions(table, groups, what=what)
    if cond is not None:
        return _condition_order(groups, cond.unique()), cond, "condition"
    if "image" in table.columns:
        images = table["image"].astype(str)
        names = list(pd.unique(images))
        if 1 < len(names) <= max_images:
            return names, images, "image"
    label = "all objects"
    return [label], pd.Series(label, index=table.index), ""


# --------------------------------------------------------------------------
# images: contrast, label colours, overlays
# --------------------------------------------------------------------------


def _as_2d(array, *, what: str) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim != 2:
        raise InputError(f"{what}: expected a 2-D (Y, X) array, got shape {a.shape}; pass one frame")
    return a


def _percentiles(values: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """``np.percentile(values, q)`` (linear interpolation); 8- and 16-bit unsigned
    integers by counting (no sort: ~10x faster on a megapixel)."""
    v = np.asarray(values).ravel()
    if v.dtype not in (np.uint8, np.uint16) or v.size == 0:
        return np.percentile(v, q)
    cumulative = np.cumsum(np.bincount(v))
    rank = np.asarray(q, dtype=float) / 100 * (v.size - 1)
    below = np.floor(rank)
    # the k-th smallest value (0-based) is the first value whose cumulative count exceeds k
    low = np.searchsorted(cumulative, below, side="right").astype(float)
    high = np.searchsorted(cumulative, np.minimum(below + 1, v.size - 1), side="right").astype(float)
    return low + (rank - below) * (high - low)


def _top_percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` for a high `q` (e.g. 99.9): the values above a
    lower bound estimated on a sample are partitioned instead of all values
    (~10x faster on millions of values, same result). 1-D finite input."""
    n = values.size
    rank = q / 100 * (n - 1)
    k = int(np.floor(rank))
    if n < 100_000 or q < 90:
        return float(np.percentile(values, q))
    bound = np.percentile(values[:: n // 50_000], q - 1.0)
    top = values[values >= bound]
    below = n - top.size  # values smaller than every candidate
    if below > k:  # the bound was too high: no shortcut
        return float(np.percentile(values, q))
    k1 = min(k + 1, n - 1)
    part = np.partition(top, [k - below, k1 - below])
    low, high = part[k - below], part[k1 - below]
    return float(low + (rank - k) * (high - low))


def _contrast(image: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """Display range from intensity percentiles (sub-sampled on large images)."""
    v = image.ravel()
    if v.size > 1_000_000:
        v = v[:: v.size // 1_000_000 + 1]
    if v.dtype.kind not in "ub":
        v = _finite(v)
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = _percentiles(v, percentiles)
    if not hi > lo:
        lo, hi = float(v.min()), float(v.max())
        if not hi > lo:
            hi = lo + 1.0
    return float(lo), float(hi)


def label_colors(ids, *, cmap: str = "hsv") -> np.ndarray:
    """Deterministic, shuffled RGB colours of label ids (golden-ratio hues).

    The colour of an id depends on the id only (not on the other labels in the
    image), so an object keeps its colour across frames when its label is its
    track id, and consecutive ids get very different colours.

    Parameters
    ----------
    ids : array-like of int
        Label ids (> 0).
    cmap : str
        Matplotlib colormap sampled at ``frac(id * 0.618...)``.

    Returns
    -------
    ndarray
        ``(n, 3)`` float RGB in [0, 1].
    """
    ids = np.asarray(ids, dtype=np.float64).ravel()
    positions = np.mod(ids * _GOLDEN, 1.0)
    return np.asarray(matplotlib.colormaps[cmap](positions))[:, :3]


def _label_rgb(labels: np.ndarray, cmap: str) -> np.ndarray:
    """RGB image (float32 in [0, 1]) of a label image: background black, each id its
    :func:`label_colors` (a look-up table indexed by the labels when the ids are small
    non-negative integers, else :func:`numpy.unique`)."""
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.view(np.uint8)
    top = int(labels.max()) if labels.size else 0
    if labels.dtype.kind == "u" or (labels.dtype.kind == "i" and (labels.size == 0 or labels.min() >= 0)):
        if top <= max(4 * labels.size, 1 << 16):
            lut = np.zeros((top + 1, 3), np.float32)
            if top:
                lut[1:] = label_colors(np.arange(1, top + 1), cmap=cmap)
            return lut[labels]
    ids, inverse = np.unique(labels, return_inverse=True)
    lut = np.zeros((ids.size, 3), np.float32)
    fg = ids > 0
    lut[fg] = label_colors(ids[fg], cmap=cmap)
    return lut[inverse.reshape(labels.shape)]


def _centroids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ids, centroid y, centroid x and area (px) of every label > 0 (sums over the
    foreground pixels only; labels that are small positive integers are their own
    bins, no sort)."""
    labels = np.asarray(labels)
    flat = labels.ravel()
    fg = np.flatnonzero(flat)
    if fg.size == 0:
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, empty, empty
    values = flat[fg]
    yy, xx = np.divmod(fg, labels.shape[1])
    if (values.dtype.kind in "ub" or (values.dtype.kind == "i" and values.min() > 0)) \
            and int(values.max()) <= max(4 * labels.size, 1 << 16):
        index = values.astype(np.intp)
        counts = np.bincount(index)
        ids = np.flatnonzero(counts)
        n = counts[ids].astype(float)
        return (ids.astype(np.int64), np.bincount(index, weights=yy)[ids] / n,
                np.bincount(index, weights=xx)[ids] / n, n)
    ids, index = np.unique(values, return_inverse=True)
    counts = np.bincount(index).astype(float)
    return (ids.astype(np.int64), np.bincount(index, weights=yy) / counts,
            np.bincount(index, weights=xx) / counts, counts)


def _label_ids(labels: np.ndarray) -> np.ndarray:
    """The distinct labels > 0 (by counting when they are small non-negative integers)."""
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.view(np.uint8)
    if labels.size and labels.dtype.kind == "u" and int(labels.max()) <= max(4 * labels.size, 1 << 16):
        present = np.flatnonzero(np.bincount(labels.reshape(-1)))
        return present[present > 0].astype(np.int64)
    ids = np.unique(labels)
    return ids[ids > 0].astype(np.int64)


def inner_boundaries(labels: np.ndarray) -> np.ndarray:
    """Outermost pixels of every object: a label > 0 with a 4-neighbour of another value.

    The same pixels as ``skimage.segmentation.find_boundaries(labels,
    mode="inner")`` (connectivity 1; the image border is not a boundary), from
    four array comparisons instead of a grey dilation and erosion (~10x faster).

    Parameters
    ----------
    labels : ndarray
        2-D label image (any integer or bool dtype; 0 is background).

    Returns
    -------
    ndarray of bool
        Same shape as `labels`.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise InputError(f"inner_boundaries: expected a 2-D label image, got shape {lab.shape}")
    edge = np.zeros(lab.shape, bool)
    if lab.size == 0:
        return edge
    rows = lab[1:] != lab[:-1]
    edge[1:] |= rows
    edge[:-1] |= rows
    cols = lab[:, 1:] != lab[:, :-1]
    edge[:, 1:] |= cols
    edge[:, :-1] |= cols
    edge &= lab != 0
    return edge


def _overlay_rgba(image: np.ndarray, labels2d: np.ndarray, rings2d: np.ndarray | None, *,
                 vmin: float, vmax: float, cmap: str, nucleus_color: str,
                 ring_color: str) -> np.ndarray:
    """Opaque RGBA uint8 composite: the contrast-stretched image through `cmap`, ring
    boundaries in `ring_color` and object boundaries in `nucleus_color` on top.

    Boundaries are :func:`inner_boundaries` (those of
    :func:`skimage.segmentation.find_boundaries` with ``mode="inner"``: the
    outermost pixels of every object). One pre-composed RGBA uint8 image renders
    several times faster than a colour-mapped image plus a transparent overlay.
    """
    def grey_levels(values: np.ndarray) -> np.ndarray:
        scaled = (np.asarray(values, dtype=np.float32) - np.float32(vmin)) * np.float32(255 / (vmax - vmin))
        np.clip(scaled, 0, 255, out=scaled)
        return scaled.astype(np.uint8)

    lut = matplotlib.colormaps[cmap](np.arange(256) / 255, bytes=True)
    lut[:, 3] = 255
    colours = lut.view(np.uint32).ravel()  # one 32-bit gather per pixel instead of four 8-bit ones
    image = np.asarray(image)
    if image.dtype in (np.uint8, np.uint16):  # one look-up from the raw value (the same arithmetic)
        packed = colours[grey_levels(np.arange(np.iinfo(image.dtype).max + 1))][image]
    else:
        packed = colours[grey_levels(image)]
    if rings2d is not None:
        packed[inner_boundaries(rings2d)] = _rgba_bytes(ring_color).view(np.uint32)[0]
    packed[inner_boundaries(labels2d)] = _rgba_bytes(nucleus_color).view(np.uint32)[0]
    return packed.view(np.uint8).reshape(packed.shape + (4,))


def _rgba_bytes(color: str) -> np.ndarray:
    """Opaque RGBA uint8 of a colour."""
    rgb = np.round(np.array(to_rgba(color)[:3]) * 255).astype(np.uint8)
    return np.append(rgb, np.uint8(255))


class _PixelImage(AxesImage):
    """An :class:`~matplotlib.image.AxesImage` that raster backends draw by
    nearest-neighbour look-up.

    Agg resamples an image through a general affine filter pipeline (~50 ms for
    a 1024 x 1024 RGBA image at 200 dpi); an unrotated, unscaled-alpha image
    shown with ``interpolation="none"`` or ``"nearest"`` needs only one row and
    one column index per output pixel: the source pixel under the output
    pixel's centre, as Agg's nearest filter picks it. Anything else (vector
    output, other interpolations, alpha, rotated transforms) is drawn by
    matplotlib as usual.
    """

    def make_image(self, renderer, magnification=1.0, unsampled=False):
        fast = None if unsampled else self._nearest_image(magnification)
        if fast is None:
            return super().make_image(renderer, magnification, unsampled)
        return fast

    def _nearest_image(self, magnification: float):
        A = self._A
        if (A is None or A.size == 0 or self.get_interpolation() not in ("none", "nearest")
                or self.get_alpha() is not None or not (A.ndim == 2 or (A.ndim == 3 and A.shape[2] in (3, 4)))):
            return None
        # output box as in AxesImage.make_image / _ImageBase._make_image
        x1, x2, y1, y2 = self.get_extent()
        bbox = Bbox(np.array([[x1, y1], [x2, y2]]))
        out_bbox = TransformedBbox(bbox, self.get_transform())
        clip = (self.get_clip_box() or self.axes.bbox) if self.get_clip_on() else self.axes.figure.bbox
        clipped = Bbox.intersection(out_bbox, clip)
        if clipped is None:
            return None, 0, 0, None
        e = clipped.extents * magnification
        bx0 = np.floor(e[0] + 0.5)
        by0 = np.ceil(e[1] - 0.5 - 1e-8)
        bx1 = np.floor(e[2] + 0.5 + 1e-8)
        by1 = np.ceil(e[3] - 0.5)
        width, height = int(bx1 - bx0), int(by1 - by0)
        if width <= 0 or height <= 0:
            return None, 0, 0, None
        t0 = (Affine2D().translate(0, -A.shape[0]).scale(1, -1) if self.origin == "upper"
              else IdentityTransform())
        t0 += (Affine2D().scale(bbox.width / A.shape[1], bbox.height / A.shape[0])
               .translate(bbox.x0, bbox.y0) + self.get_transform())
        t = t0 + Affine2D().scale(magnification).translate(-bx0, -by0)
        if not t.is_affine:
            return None
        m = t.get_matrix()
        if m[0, 1] != 0 or m[1, 0] != 0 or m[0, 0] == 0 or m[1, 1] == 0:
            return None
        # source pixel under the centre of every output column / row (row 0 = bottom)
        cols = np.floor((np.arange(width) + 0.5 - m[0, 2]) / m[0, 0]).astype(np.intp)
        rows = np.floor((np.arange(height) + 0.5 - m[1, 2]) / m[1, 1]).astype(np.intp)
        np.clip(cols, 0, A.shape[1] - 1, out=cols)
        np.clip(rows, 0, A.shape[0] - 1, out=rows)
        if A.ndim == 3 and A.dtype == np.uint8 and A.shape[2] == 4 and not np.ma.is_masked(A):
            packed = np.ascontiguousarray(np.ma.getdata(A)).view(np.uint32)[..., 0]
            out = packed.take(rows, axis=0).take(cols, axis=1)
            output = out.view(np.uint8).reshape(out.shape + (4,))
        else:
            output = self.to_rgba(A[rows][:, cols], bytes=True, norm=(A.ndim == 2))
        return output, bx0 / magnification, by0 / magnification, t


def _show_pixels(ax, data, **kwargs) -> AxesImage:
    """``ax.imshow(data, interpolation="none", **kwargs)`` drawn by :class:`_PixelImage`."""
    image = ax.imshow(data, interpolation="none", **kwargs)
    image.__class__ = _PixelImage  # same state, faster raster drawing
    return image


def _scale_bar(ax, width_px: int, pixel_size_um: float) -> None:
    """A white scale bar of a round length (~1/5 of the width) in the lower right."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    target = width_px * pixel_size_um / 5
    nice = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000]
    length_um = max([n for n in nice if n <= target] or [nice[0]])
    bar = AnchoredSizeBar(ax.transData, length_um / pixel_size_um, f"{length_um:g} µm", "lower right",
                          pad=0.4, sep=2, label_top=True, color="white", frameon=False,
                          size_vertical=max(width_px / 200, 1), fontproperties={"size": 7})
    ax.add_artist(bar)


_GLYPHS: dict[tuple[str, str], tuple[MplPath, float]] = {}


def _glyphs(texts: Sequence[str]) -> tuple[dict[str, MplPath], dict[str, float], float]:
    """Outline (1 em high), advance width of every character, and the cap height
    (in the current font; outlines are cached per font file and character)."""
    from matplotlib.font_manager import FontProperties, findfont
    from matplotlib.textpath import TextPath

    prop = FontProperties()
    font = findfont(prop)

    def glyph(ch: str) -> tuple[MplPath, float]:
        key = (font, ch)
        if key not in _GLYPHS:
            single = TextPath((0, 0), ch, size=1, prop=prop)
            double = TextPath((0, 0), ch + ch, size=1, prop=prop)
            if len(single.vertices) and len(double.vertices):
                advance = float(double.vertices[:, 0].max() - single.vertices[:, 0].max())
            else:
                advance = 0.3
            _GLYPHS[key] = (single, advance)
        return _GLYPHS[key]

    outlines: dict[str, MplPath] = {}
    advance: dict[str, float] = {}
    for ch in sorted(set("".join(texts))):
        outlines[ch], advance[ch] = glyph(ch)
    zero = glyph("0")[0]
    cap = float(zero.vertices[:, 1].max()) if len(zero.vertices) else 0.7
    return outlines, advance, cap


def _char_origins(texts: Sequence[str], cx: np.ndarray, cy: np.ndarray, em: float,
                  advance: Mapping[str, float], cap: float) -> dict[str, np.ndarray]:
    """Baseline-left origin (data coordinates, y down) of every character of
    `texts` centred on (cx, cy), by character: ``{char: (n, 2) array}``."""
    cx = np.asarray(cx, dtype=float)
    cy = np.asarray(cy, dtype=float)
    chars, owners, pens = [], [], []
    for i, text in enumerate(texts):
        pen = -sum(advance[ch] for ch in text) / 2
        for ch in text:
            chars.append(ch)
            owners.append(i)
            pens.append(pen)
            pen += advance[ch]
    chars_arr = np.array(chars)
    owners_arr = np.array(owners, dtype=np.intp)
    pens_arr = np.array(pens, dtype=float)
    origins = {}
    for ch in sorted(set(chars)):
        pick = chars_arr == ch
        origins[ch] = np.column_stack([cx[owners_arr[pick]] + pens_arr[pick] * em,
                                       cy[owners_arr[pick]] + cap / 2 * em])
    return origins


def _compound_path(outlines: Mapping[str, MplPath], origins: Mapping[str, np.ndarray], em: float) -> MplPath:
    """One compound path of the glyph `outlines` (1 em, y up) placed at their
    `origins` (data coordinates, y down: image coordinates), `em` data units per em."""
    vertices, codes = [], []
    for ch, xy in origins.items():
        glyph = outlines[ch]
        if not len(glyph.vertices):
            continue
        v = np.empty((len(xy), len(glyph.vertices), 2))
        v[..., 0] = xy[:, :1] + glyph.vertices[None, :, 0] * em
        v[..., 1] = xy[:, 1:] - glyph.vertices[None, :, 1] * em
        vertices.append(v.reshape(-1, 2))
        codes.append(np.tile(glyph.codes, len(xy)))
    if not vertices:
        return MplPath(np.zeros((0, 2)))
    return MplPath(np.concatenate(vertices), np.concatenate(codes))


class _IdLabels(PathPatch):
    """Object ids: text outlines filled with `color` over a dark outline.

    ``get_path()`` is the compound path of every character (data coordinates).
    Drawing does not fill and stroke that path: each distinct character is a
    marker drawn at all its positions (``renderer.draw_markers``: Agg renders a
    marker once and copies it, vector formats define it once), first the
    outline of every character, then the fill of every character. For
    hundreds of ids this is ~5x faster than filling and stroking thousands of
    glyph outlines; characters land on whole output pixels.
    """

    def __init__(self, texts: Sequence[str], cx: np.ndarray, cy: np.ndarray, em: float, *, color: str,
                 outline_color: str = "black", outline_width: float = 0.6, outline_alpha: float = 0.7,
                 **kwargs):
        outlines, advance, cap = _glyphs(texts)
        self._glyphs = outlines
        self._origins = _char_origins(texts, cx, cy, em, advance, cap)
        self._em = float(em)
        self._outline = (outline_color, float(outline_width), float(outline_alpha))
        self._compound: MplPath | None = None
        super().__init__(MplPath(np.zeros((0, 2))), facecolor=color, edgecolor="none", **kwargs)

    def get_path(self) -> MplPath:
        """The compound outline path of every character (built when first asked for)."""
        if self._compound is None:
            self._compound = _compound_path(self._glyphs, self._origins, self._em)
        return self._compound

    @allow_rasterization
    def draw(self, renderer) -> None:
        if not self.get_visible():
            return
        trans = self.get_transform()
        if not trans.is_affine:
            super().draw(renderer)
            return
        # markers are in display units: the em in pixels, y up (glyph outlines are y up).
        # Agg puts a marker's origin on the centre of the pixel its position falls in;
        # -0.5 px moves it to the pixel's corner, as hinted text sits on the pixel grid.
        m = trans.get_matrix()
        em_px = self._em * abs(m[0, 0])
        from matplotlib.backends.backend_agg import RendererAgg  # loaded by any raster save

        shift = 0.5 if isinstance(renderer, RendererAgg) else 0.0
        color, width, alpha = self._outline
        renderer.open_group("ids", gid=self.get_gid())
        for stroke in (True, False):
            gc = renderer.new_gc()
            self._set_gc_clip(gc)
            gc.set_joinstyle(self.get_joinstyle())
            gc.set_capstyle(self.get_capstyle())
            if stroke:
                gc.set_foreground(color)
                gc.set_alpha(alpha)
                gc.set_linewidth(width)
            else:  # Agg strokes every marker: a zero-width stroke in the fill colour
                gc.set_foreground(self.get_facecolor(), isRGBA=True)
                gc.set_linewidth(0)
            face = None if stroke else self.get_facecolor()
            for ch, xy in self._origins.items():
                glyph = self._glyphs[ch]
                if len(glyph.vertices) and len(xy):
                    marker = MplPath(glyph.vertices * em_px - shift, glyph.codes)
                    renderer.draw_markers(gc, marker, Affine2D(), MplPath(xy), trans, face)
            gc.restore()
        renderer.close_group("ids")
        self.stale = False


class _Composite:
    """One frame of a QC overlay, ready to draw: the opaque RGBA composite of
    :func:`_overlay_rgba` (None for an empty image), the labels and whether ring
    contours are shown. Made once per frame by :func:`_composite` and drawn by
    any number of figures (overlay and montage)."""

    def __init__(self, rgba: np.ndarray | None, labels: np.ndarray, rings: bool):
        self.rgba = rgba
        self.labels = labels
        self.rings = rings
        self.shape = labels.shape

    @functools.cached_property
    def centroids(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Ids, centroid y, centroid x and area of every object (:func:`_centroids`)."""
        return _centroids(self.labels)

    @property
    def n_objects(self) -> int:
        if "centroids" in self.__dict__:
            return int(self.centroids[0].size)
        return int(_label_ids(self.labels).size)


def _composite(image2d, labels2d, rings2d, *, contrast_percentiles: tuple[float, float] = (1.0, 99.8),
               nucleus_color: str = _NUCLEUS_COLOR, ring_color: str = _RING_COLOR,
               cmap: str = "gray") -> _Composite:
    """Check one frame and compose its overlay image (see :func:`qc_overlay`)."""
    image = _as_2d(image2d, what="qc_overlay image")
    labels = _as_2d(labels2d, what="qc_overlay labels")
    rings = None if rings2d is None else _as_2d(rings2d, what="qc_overlay rings")
    for name, other in (("labels", labels), ("rings", rings)):
        if other is not None and other.shape != image.shape:
            raise InputError(
                f"qc_overlay: {name} shape {other.shape} differs from the image shape {image.shape}; "
                "pass the same frame of the raw image and of the label/ring stacks"
            )
    if image.size == 0:
        return _Composite(None, labels, rings is not None)
    vmin, vmax = _contrast(image, contrast_percentiles)
    rgba = _overlay_rgba(image, labels, rings, vmin=vmin, vmax=vmax, cmap=cmap,
                         nucleus_color=nucleus_color, ring_color=ring_color)
    return _Composite(rgba, labels, rings is not None)


def _draw_overlay(ax, frame: _Composite, *, ids: bool | Mapping[int, object], max_ids: int, id_color: str,
                  pixel_size_um: float | None, title: str) -> None:
    """Draw one QC overlay (image, contours, ids) into `ax`."""
    ax.set_axis_off()
    if title:
        ax.set_title(title, loc="left")
    if frame.rgba is None:
        _note(ax, "no data: empty image")
        return
    _show_pixels(ax, frame.rgba)
    n_objects = frame.n_objects if not ids else frame.centroids[0].size
    summary = f"{n_objects} objects"
    if ids and n_objects:
        if n_objects > max_ids:
            summary += f", ids not shown (> {max_ids})"
        else:
            obj_ids, cy, cx, areas = frame.centroids
            mapping = ids if isinstance(ids, Mapping) else {}
            texts = [str(mapping.get(k, k)) for k in obj_ids.tolist()]
            # size: the longest id spans ~80 % of the median object diameter
            diameter = 2 * np.sqrt(np.median(areas) / np.pi)
            longest = max(len(t) for t in texts)
            em = float(np.clip(0.8 * diameter / (0.64 * longest), 4.0, max(frame.shape) / 40))
            # add_artist: no data-limit update (add_patch walks every Bezier segment)
            ax.add_artist(_IdLabels(texts, cx, cy, em, color=id_color, gid="ids"))
    ax.set_title(summary, loc="right", fontsize=7, color="0.3")
    if pixel_size_um:
        _scale_bar(ax, frame.shape[1], float(pixel_size_um))


def _overlay_legend(fig: Figure, rings: bool, nucleus_color: str, ring_color: str) -> None:
    handles = [Line2D([], [], color=nucleus_color, lw=1.5, label="nucleus outline")]
    if rings:
        handles.append(Line2D([], [], color=ring_color, lw=1.5, label="cytoplasmic ring"))
    fig.legend(handles=handles, loc="lower center", ncols=len(handles), borderaxespad=0.2)


def _image_grid(n: int, *, ncols: int, panel_in: float, aspect: float, top_in: float,
                bottom_in: float, title_in: float = 0.22, gap_in: float = 0.08) -> tuple[Figure, list]:
    """Figure with `n` image axes of fixed size (no layout engine).

    Images are drawn once per save (a layout engine draws the figure twice,
    resampling every image twice), and panels keep the image aspect exactly.
    """
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    panel_h = panel_in * aspect
    width = ncols * panel_in + (ncols + 1) * gap_in
    height = top_in + nrows * (title_in + panel_h) + (nrows - 1) * gap_in + bottom_in
    fig = Figure(figsize=(width, height), layout="none")
    axes = []
    for i in range(n):
        row, col = divmod(i, ncols)
        left = gap_in + col * (panel_in + gap_in)
        top = top_in + row * (title_in + panel_h + gap_in) + title_in
        rect = (left / width, 1 - (top + panel_h) / height, panel_in / width, panel_h / height)
        ax = fig.add_axes(rect)
        # no tick machinery: matplotlib still lays out hidden ticks to place the titles
        ax.xaxis.set_visible(False)
        ax.yaxis.set_visible(False)
        axes.append(ax)
    return fig, axes


def _aspect(image) -> float:
    a = np.asarray(image)
    return a.shape[0] / a.shape[1] if a.ndim == 2 and a.shape[1] else 1.0


def qc_overlay(
    image2d: np.ndarray,
    labels2d: np.ndarray,
    *,
    rings2d: np.ndarray | None = None,
    ids: bool | Mapping[int, object] = True,
    title: str = "",
    contrast_percentiles: tuple[float, float] = (1.0, 99.8),
    max_ids: int = 1500,
    pixel_size_um: float | None = None,
    nucleus_color: str = _NUCLEUS_COLOR,
    ring_color: str = _RING_COLOR,
    id_color: str = _ID_COLOR,
    cmap: str = "gray",
    width_in: float | None = None,
    style: PathLike | None = None,
) -> Figure:
    """Segmentation QC of one frame: raw image, nucleus and ring contours, ids.

    Parameters
    ----------
    image2d : ndarray
        Raw frame ``(Y, X)`` (e.g. the nuclear channel), shown with a
        percentile contrast stretch.
    labels2d : ndarray
        Label image of the same shape (object or track ids).
    rings2d : ndarray, optional
        Ring label image; its contours are drawn in `ring_color`.
    ids : bool or mapping of int to object
        Write each label's id at its centroid (outlined text, sized to the
        objects); a mapping translates label values to the text shown (e.g.
        label -> track id).
    title : str
        Title (left); the object count is shown on the right.
    contrast_percentiles : (float, float)
        Intensity percentiles mapped to black and white.
    max_ids : int
        Above this many objects the ids are not written (said in the title).
    pixel_size_um : float, optional
        Draw a scale bar.
    nucleus_color, ring_color, id_color : str
        Colours of the nucleus contours, ring contours and id text.
    cmap : str
        Colormap of the raw image.
    width_in : float, optional
        Figure width in inches; default ``X/150`` clipped to 3-8 in, so that
        when saved at 300 dpi every image pixel spans about two output pixels
        (at 150 dpi or more contours stay one pixel wide and unbroken).
    style : path, optional
        Matplotlib style file (default :data:`DEFAULT_STYLE`).

    Returns
    -------
    matplotlib.figure.Figure
        Axes 0 holds one RGBA image (``ax.images[0]``): the contrast-stretched
        frame with contour pixels painted (:func:`inner_boundaries`, the pixels
        of :func:`skimage.segmentation.find_boundaries` with ``mode="inner"``:
        the outermost pixels of every object; nuclei over rings), and the ids as
        one artist (``gid="ids"``, its path the outlines of every character)
        drawn over a dark outline.
    """
    frame = _composite(image2d, labels2d, rings2d, contrast_percentiles=contrast_percentiles,
                       nucleus_color=nucleus_color, ring_color=ring_color, cmap=cmap)
    return _overlay_figure(frame, ids=ids, title=title, max_ids=max_ids, pixel_size_um=pixel_size_um,
                           nucleus_color=nucleus_color, ring_color=ring_color, id_color=id_color,
                           width_in=width_in, style=style)


def _overlay_figure(frame: _Composite, *, ids: bool | Mapping[int, object] = True, title: str = "",
                    max_ids: int = 1500, pixel_size_um: float | None = None,
                    nucleus_color: str = _NUCLEUS_COLOR, ring_color: str = _RING_COLOR,
                    id_color: str = _ID_COLOR, width_in: float | None = None,
                    style: PathLike | None = None) -> Figure:
    """:func:`qc_overlay` of a frame composed by :func:`_composite`."""
    width = width_in if width_in is not None else float(np.clip(frame.shape[1] / 150, 3, 8))
    with _styled(style):
        fig, (ax,) = _image_grid(1, ncols=1, panel_in=width - 0.16, aspect=_aspect(frame.labels),
                                 top_in=0.04, bottom_in=0.3)
        _draw_overlay(ax, frame, ids=ids, max_ids=max_ids, id_color=id_color, pixel_size_um=pixel_size_um,
                      title=title)
        if frame.rgba is not None:
            _overlay_legend(fig, frame.rings, nucleus_color, ring_color)
    return fig


def qc_montage(
    frames: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None, str]],
    *,
    ncols: int = 3,
    ids: bool = False,
    contrast_percentiles: tuple[float, float] = (1.0, 99.8),
    max_ids: int = 1500,
    pixel_size_um: float | None = None,
    nucleus_color: str = _NUCLEUS_COLOR,
    ring_color: str = _RING_COLOR,
    id_color: str = _ID_COLOR,
    cmap: str = "gray",
    panel_in: float = 3.4,
    title: str = "",
    style: PathLike | None = None,
) -> Figure:
    """A grid of QC overlays, e.g. the first, middle and last frame of a movie.

    Parameters
    ----------
    frames : sequence of (image2d, labels2d, rings2d or None, title)
        One entry per panel.
    ncols : int
        Panels per row.
    ids : bool
        Write label ids (off by default: hard to read at montage scale).
    panel_in : float
        Width of one panel in inches.
    title : str
        Figure title.
    contrast_percentiles, max_ids, pixel_size_um, nucleus_color, ring_color, id_color, cmap, style
        As in :func:`qc_overlay`.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per frame, in order.
    """
    frames = list(frames)
    for i, entry in enumerate(frames):
        if len(entry) != 4:
            raise InputError(
                f"qc_montage: frame {i} has {len(entry)} items; "
                "pass (image, labels, rings or None, title)"
            )
    panels = [(_composite(image, labels, rings, contrast_percentiles=contrast_percentiles,
                          nucleus_color=nucleus_color, ring_color=ring_color, cmap=cmap), str(panel_title))
              for image, labels, rings, panel_title in frames]
    return _montage_figure(panels, ncols=ncols, ids=ids, max_ids=max_ids, pixel_size_um=pixel_size_um,
                           nucleus_color=nucleus_color, ring_color=ring_color, id_color=id_color,
                           panel_in=panel_in, title=title, style=style)


def _montage_figure(panels: Sequence[tuple[_Composite, str]], *, ncols: int = 3, ids: bool = False,
                    max_ids: int = 1500, pixel_size_um: float | None = None,
                    nucleus_color: str = _NUCLEUS_COLOR, ring_color: str = _RING_COLOR,
                    id_color: str = _ID_COLOR, panel_in: float = 3.4, title: str = "",
                    style: PathLike | None = None) -> Figure:
    """:func:`qc_montage` of frames composed by :func:`_composite`, with their panel titles."""
    with _styled(style):
        if not panels:
            return _no_data_figure("no frames given", title=title)
        fig, axes = _image_grid(len(panels), ncols=ncols, panel_in=panel_in, aspect=_aspect(panels[0][0].labels),
                                top_in=0.3 if title else 0.04, bottom_in=0.3)
        for ax, (frame, panel_title) in zip(axes, panels):
            _draw_overlay(ax, frame, ids=ids, max_ids=max_ids, id_color=id_color, pixel_size_um=pixel_size_um,
                          title=panel_title)
        if title:
            fig.suptitle(title, x=0.01, y=1 - 0.04 / fig.get_figheight(), ha="left", va="top")
        _overlay_legend(fig, any(frame.rings for frame, _ in panels), nucleus_color, ring_color)
    return fig


def threshold_histogram(
    image: np.ndarray,
    threshold: float | Sequence[float],
    *,
    log_counts: bool = False,
    bins: int = 256,
    title: str = "",
    xlabel: str = "smoothed intensity",
    max_pixels: int = 4_000_000,
    style: PathLike | None = None,
) -> Figure:
    """Intensity histogram of the (smoothed) image with the threshold(s) used.

    Parameters
    ----------
    image : ndarray
        One frame ``(Y, X)`` or a stack ``(T, Y, X)`` (pooled histogram).
    threshold : float or sequence of float
        One threshold, or one per frame of the stack (``threshold`` column of
        ``results/<dataset>/threshold/<image>.csv``). Equal values give one
        line; up to 5 distinct values one line each; more give a band from the
        lowest to the highest with a line at the median.
    log_counts : bool
        Logarithmic count axis (shows the bright tail).
    bins : int
        Number of bins between the lowest value and the 99.9th percentile
        (extended to include the thresholds). Brighter pixels are not shown.
    title, xlabel : str
        Axes title and x label.
    max_pixels : int
        Larger inputs are sub-sampled with a regular stride (deterministic).
    style : path, optional
        Matplotlib style file.

    Returns
    -------
    matplotlib.figure.Figure
        Threshold lines are ``ax.lines`` (vertical, x data = the threshold).
    """
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise InputError(f"threshold_histogram: image must be (Y, X) or (T, Y, X), got shape {arr.shape}")
    n_frames = arr.shape[0] if arr.ndim == 3 else 1
    thresholds = np.atleast_1d(np.asarray(threshold, dtype=float))
    if thresholds.size not in (1, n_frames):
        raise InputError(
            f"threshold_histogram: {thresholds.size} thresholds for a stack of {n_frames} frames; "
            "pass one threshold or one per frame (threshold/<image>.csv)"
        )
    thresholds = thresholds[np.isfinite(thresholds)]
    flat = arr.ravel()
    if flat.size > max_pixels:
        flat = flat[:: flat.size // max_pixels + 1]
    if flat.dtype.kind == "f":  # keep float32 data in float32 (half the memory traffic)
        values = np.ascontiguousarray(flat)
        finite = np.isfinite(values)
        if not finite.all():
            values = values[finite]
    else:
        values = _finite(flat)
    with _styled(style):
        if values.size == 0:
            return _no_data_figure("empty image or no finite pixels", title=title)
        fig = _new_figure((4.0, 2.8))
        ax = fig.add_subplot()
        lo = float(values.min())
        hi = float(_top_percentile(values, 99.9))
        if thresholds.size:
            hi = max(hi, float(thresholds.max()) * 1.05 if thresholds.max() > 0 else float(thresholds.max()))
        if not hi > lo:
            hi = lo + 1.0
        counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
        ax.stairs(counts, edges, fill=True, color="0.6", label=f"pixels (n = {values.size:,})")
        colors = _palette()
        distinct = np.unique(thresholds)
        if distinct.size == 1 or (distinct.size and np.ptp(distinct) <= 1e-9 * max(abs(distinct).max(), 1)):
            t = float(distinct[0])
            frac = float(np.mean(values > t))
            ax.axvline(t, color=colors[1 % len(colors)], lw=1.3,
                       label=f"threshold = {t:.4g} ({100 * frac:.1f} % above)")
        elif 1 < distinct.size <= 5:
            for i, t in enumerate(distinct):
                ax.axvline(float(t), color=colors[1 % len(colors)], lw=1.0, alpha=0.9,
                           ls=("-", "--", ":", "-.", (0, (1, 3)))[i],
                           label=f"threshold {float(t):.4g}")
        elif distinct.size > 5:
            med = float(np.median(thresholds))
            ax.axvspan(float(distinct.min()), float(distinct.max()), color=colors[1 % len(colors)],
                       alpha=0.25, lw=0,
                       label=f"per-frame thresholds {distinct.min():.4g}-{distinct.max():.4g}")
            ax.axvline(med, color=colors[1 % len(colors)], lw=1.3, label=f"median threshold = {med:.4g}")
        clipped = ""
        if log_counts:
            ax.set_yscale("log")
            ax.set_ylim(bottom=0.8)
        else:
            ax.yaxis.set_major_formatter(EngFormatter(sep=""))
            top = np.sort(counts)[-2:] if counts.size > 1 else counts
            if top.size == 2 and top[1] > 3 * top[0] > 0:
                # one spike (e.g. a background of exact zeros) would flatten the rest
                ax.set_ylim(0, 1.15 * top[0])
                clipped = f"tallest bin clipped ({int(top[1]):,} px)"
            else:
                ax.set_ylim(bottom=0)
        ax.set_xlim(lo, hi)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("pixels" + (" (log)" if log_counts else ""))
        if title:
            ax.set_title(title)
        ax.legend(loc="upper right", title=clipped or None)
    return fig


def mask_labels_panel(
    image2d: np.ndarray,
    mask2d: np.ndarray,
    labels2d: np.ndarray,
    *,
    title: str = "",
    contrast_percentiles: tuple[float, float] = (1.0, 99.8),
    cmap: str = "hsv",
    panel_in: float = 2.6,
    style: PathLike | None = None,
) -> Figure:
    """Raw | threshold mask | labels, side by side, for one frame.

    Parameters
    ----------
    image2d, mask2d, labels2d : ndarray
        Raw frame, foreground mask (bool or 0/1) and label image of one shape.
    title : str
        Figure title.
    contrast_percentiles : (float, float)
        Contrast stretch of the raw image.
    cmap : str
        Colormap the label colours are drawn from (see :func:`label_colors`:
        deterministic and shuffled, background black).
    panel_in : float
        Width of one panel in inches.
    style : path, optional
        Matplotlib style file.

    Returns
    -------
    matplotlib.figure.Figure
        Three axes; the third shows an RGB image of the labels.
    """
    image = _as_2d(image2d, what="mask_labels_panel image")
    mask = _as_2d(mask2d, what="mask_labels_panel mask")
    labels = _as_2d(labels2d, what="mask_labels_panel labels")
    if not (image.shape == mask.shape == labels.shape):
        raise InputError(
            f"mask_labels_panel: shapes differ (image {image.shape}, mask {mask.shape}, "
            f"labels {labels.shape}); "
            "pass the same frame of each stack"
        )
    with _styled(style):
        if image.size == 0:
            return _no_data_figure("empty image", title=title)
        fig, axes = _image_grid(3, ncols=3, panel_in=panel_in, aspect=_aspect(image),
                                top_in=0.3 if title else 0.04, bottom_in=0.04)
        vmin, vmax = _contrast(image, contrast_percentiles)
        _show_pixels(axes[0], image, cmap="gray", vmin=vmin, vmax=vmax)
        axes[0].set_title("raw", loc="left")
        fg = mask > 0
        _show_pixels(axes[1], fg, cmap="gray", vmin=0, vmax=1)
        axes[1].set_title(f"mask ({100 * fg.mean():.1f} % foreground)", loc="left")
        _show_pixels(axes[2], _label_rgb(labels, cmap))
        n = int(_label_ids(labels).size)
        axes[2].set_title(f"labels (n = {n})", loc="left")
        for ax in axes:
            ax.set_axis_off()
        if title:
            fig.suptitle(title, x=0.01, y=1 - 0.04 / fig.get_figheight(), ha="left", va="top")
    return fig


# --------------------------------------------------------------------------
# per dataset: counts, areas, C/N distributions
# --------------------------------------------------------------------------


def _time_axis(table: pd.DataFrame, frames: np.ndarray, time: str | None) -> tuple[np.ndarray, str]:
    """x position of each frame: minutes (hours beyond 10 h) from `time` when known
    for every frame, else the frame number."""
    frames = np.asarray(frames)
    if time and time in table.columns and "frame" in table.columns:
        t = pd.to_numeric(table[time], errors="coerce")
        per_frame = t.groupby(table["frame"]).median().reindex(frames)
        if per_frame.notna().all() and len(per_frame):
            values = per_frame.to_numpy(dtype=float)
            if time != "time_s":
                return values, time
            span_min = (values.max() - values.min()) / 60
            if span_min > 600:
                return values / 3600, "time (h)"
            return values / 60, "time (min)"
    return frames.astype(float), "frame"


def count_per_frame(
    images_table: pd.DataFrame,
    *,
    groups: Mapping[str, str] | None = None,
    time: str | None = "time_s",
    title: str = "",
    style: PathLike | None = None,
) -> Figure:
    """Number of objects per image and frame (``tables/images.csv``).

    Time-lapses (any image with several frames) give one line per image,
    stills one bar per image. With `groups`, colours show the condition.

    Parameters
    ----------
    images_table : pandas.DataFrame
        Columns ``image``, ``frame``, ``n_objects`` (optionally ``time_s``).
    groups : mapping of str to str, optional
        Image name -> condition.
    time : str or None
        Time column for the x axis of time-lapses (minutes when ``time_s``);
        the frame number when absent or None.
    title : str
        Axes title.
    style : path, optional
        Matplotlib style file.

    Returns
    -------
    matplotlib.figure.Figure
        One line per image (``ax.lines``) or one bar per image (``ax.patches``).
    """
    with _styled(style):
        if _is_empty(images_table):
            return _no_data_figure("the images table has no rows", title=title)
        _require(images_table, ["image", "frame", "n_objects"], what="images table",
                 fix="pass results/<dataset>/tables/images.csv")
        table = images_table.copy()
        table["image"] = table["image"].astype(str)
        cond = _conditions(table, groups, what="images table")
        colors = _palette()
        images = list(pd.unique(table["image"]))
        if cond is not None:
            order = _condition_order(groups, cond.unique())
            image_cond = dict(zip(table["image"], cond))
            color_of = {im: colors[order.index(image_cond[im]) % len(colors)] for im in images}
        else:
            order = []
            color_of = {im: colors[i % len(colors)] for i, im in enumerate(images)}
        timelapse = bool(table.groupby("image")["frame"].nunique().max() > 1)
        fig = _new_figure((4.2, 2.8) if timelapse else (max(3.0, 0.9 + 0.28 * len(images)), 2.8))
        ax = fig.add_subplot()
        if timelapse:
            for im in images:
                rows = table[table["image"] == im].sort_values("frame")
                x, xlabel = _time_axis(rows, rows["frame"].to_numpy(), time)
                ax.plot(x, rows["n_objects"].to_numpy(dtype=float), color=color_of[im],
                        marker="o", ms=2.5, lw=1.0, label=im)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("objects per frame")
        else:
            per_image = table.groupby("image", sort=False)["n_objects"].sum().reindex(images)
            ax.bar(np.arange(len(images)), per_image.to_numpy(dtype=float), width=0.75,
                   color=[color_of[im] for im in images])
            ax.set_xticks(np.arange(len(images)))
            if len(images) <= 60:
                ax.set_xticklabels(images, rotation=90 if len(images) > 4 else 0)
            else:
                ax.set_xticklabels([])
                ax.set_xlabel(f"{len(images)} images")
            ax.set_ylabel("objects per image")
        ax.set_ylim(bottom=0)
        if order:
            handles = [Patch(color=colors[i % len(colors)], label=c) for i, c in enumerate(order)]
            ax.legend(handles=handles, title="condition", loc="lower right")
        elif timelapse and 1 < len(images) <= 12:
            ax.legend(loc="lower right")
        if title:
            ax.set_title(title)
    return fig


def area_distribution(
    objects: pd.DataFrame,
    *,
    column: str | None = None,
    groups: Mapping[str, str] | None = None,
    frame: int | None = None,
    bins: int | None = None,
    title: str = "",
    style: PathLike | None = None,
) -> Figure:
    """Histogram of nuclear areas, one step histogram per condition.

    Parameters
    ----------
    objects : pandas.DataFrame
        ``tables/objects.csv`` (one row per object per frame).
    column : str, optional
        Area column; default ``area_um2`` when calibrated (any finite value),
        else ``area_px``.
    groups : mapping of str to str, optional
        Image name -> condition (densities are then normalised per condition).
    frame : int, optional
        Only this frame (default: all frames pooled).
    bins : int, optional
        Number of bins over the 0.5-99.5 percentile range (the number of
        values beyond is noted); default ``sqrt(n)`` clipped to 10-60.
    title : str
        Axes title.
    style : path, optional
        Matplotlib style file.

    Returns
    -------
    matplotlib.figure.Figure
        One histogram patch per condition (``ax.patches``) and a dashed median
        line per condition (``ax.lines``).
    """
    with _styled(style):
        if _is_empty(objects):
            return _no_data_figure("no objects", title=title)
        if column is None:
            calibrated = "area_um2" in objects.columns and pd.to_numeric(
                objects["area_um2"], errors="coerce").notna().any()
            column = "area_um2" if calibrated else "area_px"
        _require(objects, [column], what="objects table",
                 fix="pass tables/objects.csv or set column to an existing area column")
        table = objects if frame is None else objects[objects["frame"] == frame]
        names, cats, _ = _categories(table, groups, what="objects table", max_images=0)
        values = pd.to_numeric(table[column], errors="coerce")
        if not np.isfinite(values.to_numpy(dtype=float)).any():
            return _no_data_figure(f"no finite {column} values", title=title)
        unit = "µm²" if column.endswith("um2") else ("px" if column.endswith("px") else "")
        fig = _new_figure((4.0, 2.8))
        ax = fig.add_subplot()
        lo, hi = _robust_limits(values.to_numpy(dtype=float), pad=0.02)
        lo = max(lo, 0.0) if np.nanmin(values) >= 0 else lo
        n_bins = bins or int(np.clip(np.sqrt(np.isfinite(values.to_numpy(dtype=float)).sum()), 10, 60))
        edges = np.linspace(lo, hi, n_bins + 1)
        colors = _palette()
        several = len(names) > 1
        for i, name in enumerate(names):
            v = _finite(values[cats == name])
            if v.size == 0:
                continue
            color = colors[i % len(colors)]
            med = float(np.median(v))
            label = f"n = {v.size:,}, median {med:.4g}"
            label = f"{name}: {label}" if several else f"{label} {unit}"
            counts, _ = np.histogram(v, bins=edges)
            if several:
                dens = counts / (v.size * np.diff(edges))
                ax.stairs(dens, edges, color=color, lw=1.3, label=label)
            else:
                ax.stairs(counts, edges, fill=True, color=color, alpha=0.75, label=label)
            ax.axvline(med, color=color, ls="--", lw=1.0)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(bottom=0)
        finite = _finite(values)
        outside = int(np.sum((finite < edges[0]) | (finite > edges[-1])))
        ax.set_xlabel("\n".join(filter(None, [f"nuclear area ({unit})" if unit else column,
                                                _outside_note(outside)])))
        ax.set_ylabel("density" if several else "objects")
        ax.legend(loc="upper right")
        if title:
            ax.set_title(title)
    return fig


def _cn_column(table: pd.DataFrame, reporter: str, column: str | None, *, what: str,
               prefix: str = "cn_") -> str:
    """The ratio column to plot, checked to exist."""
    name = column or f"{prefix}{reporter}"
    if name not in table.columns:
        have = [c for c in table.columns if str(c).startswith(("cn_", "dcn_")) and c != "cn_reason"]
        raise InputError(
            f"{what}: no column {name!r} (ratio columns: {have}); set reporter to one of "
            "rings.reporters" + (" and enable the baseline (ΔC/N)" if prefix == "dcn_" else "")
        )
    return name


def _violin_stats(values: np.ndarray, n_points: int = 200) -> dict:
    """Violin statistics with a binned Gaussian kernel density (Scott's bandwidth,
    as :meth:`~matplotlib.axes.Axes.violinplot`), O(n) instead of O(n x points)."""
    from scipy.ndimage import gaussian_filter1d

    lo, hi = float(values.min()), float(values.max())
    bandwidth = float(np.std(values, ddof=1)) * values.size ** (-1 / 5)
    edges = np.linspace(lo, hi, 2049)
    counts, _ = np.histogram(values, bins=edges)
    step = edges[1] - edges[0]
    density = gaussian_filter1d(counts.astype(float), sigma=max(bandwidth / step, 1e-3), mode="constant",
                                truncate=4.0) / (values.size * step)
    coords = np.linspace(lo, hi, n_points)
    return {"coords": coords, "vals": np.interp(coords, (edges[:-1] + edges[1:]) / 2, density),
            "mean": float(values.mean()), "median": float(np.median(values)), "min": lo, "max": hi}


def _subsample(values: np.ndarray, max_points: int, rng: np.random.Generator) -> np.ndarray:
    if values.size <= max_points:
        return values
    return values[np.sort(rng.choice(values.size, size=max_points, replace=False))]


def cn_distribution(
    objects: pd.DataFrame,
    *,
    reporter: str,
    groups: Mapping[str, str] | None = None,
    column: str | None = None,
    frame: int | None = None,
    kind: Literal["violin", "histogram"] = "violin",
    max_points: int = 1500,
    seed: int = 0,
    title: str = "",
    style: PathLike | None = None,
) -> Figure:
    """Distribution of C/N ratios: violin + box + points, or histograms.

    Categories are the conditions of `groups`, else the images (2-24 of
    them), else all objects together.

    Parameters
    ----------
    objects : pandas.DataFrame
        ``tables/objects.csv``.
    reporter : str
        Reporter channel: the column ``cn_<reporter>`` is plotted.
    groups : mapping of str to str, optional
        Image name -> condition.
    column : str, optional
        Plot this column instead (e.g. ``cn_<reporter>_norm``).
    frame : int, optional
        Only this frame (default: all frames pooled).
    kind : {"violin", "histogram"}
        Violin (kernel density), box (quartiles, whiskers 1.5 IQR) and a random
        sub-sample of the points; or step histograms normalised per category.
    max_points : int
        Points drawn per category (random sample with `seed`; the violin and
        box use all values).
    seed : int
        Seed of the point sub-sample and jitter.
    title : str
        Axes title.
    style : path, optional
        Matplotlib style file.

    Returns
    -------
    matplotlib.figure.Figure
        The y (violin) or x (histogram) axis spans the 0.5-99.5 percentiles;
        the number of values outside is noted.
    """
    if kind not in ("violin", "histogram"):
        raise InputError(f"cn_distribution: kind={kind!r}; use 'violin' or 'histogram'")
    with _styled(style):
        if _is_empty(objects):
            return _no_data_figure("no objects", title=title)
        col = _cn_column(objects, reporter, column, what="objects table")
        table = objects if frame is None else objects[objects["frame"] == frame]
        names, cats, cat_label = _categories(table, groups, what="objects table")
        values = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(values).any():
            return _no_data_figure(f"all {col} values are NaN{_reason_summary(table)}", title=title)
        rng = np.random.default_rng(seed)
        colors = _palette()
        per = [_finite(values[(cats == n).to_numpy()]) for n in names]
        lo, hi = _robust_limits(values)
        outside = int(np.sum((_finite(values) < lo) | (_finite(values) > hi)))
        ylabel = _ratio_label(col, reporter)
        if kind == "violin":
            fig = _new_figure((max(2.6, 1.2 + 0.75 * len(names)), 3.0))
            ax = fig.add_subplot()
            positions = np.arange(len(names), dtype=float)
            for i, v in enumerate(per):
                color = colors[i % len(colors)]
                if v.size >= 2 and np.ptp(v) > 0:
                    parts = ax.violin([_violin_stats(v)], positions=[i], widths=0.8, showextrema=False)
                    for body in parts["bodies"]:
                        body.set_facecolor(color)
                        body.set_edgecolor("none")
                        body.set_alpha(0.35)
                pts = _subsample(v, max_points, rng)
                jitter = rng.uniform(-0.18, 0.18, size=pts.size)
                ax.scatter(i + jitter, pts, s=1.5, color=color, alpha=0.5, lw=0, rasterized=True)
                ax.text(i, 1.0, f"n = {v.size:,}", transform=ax.get_xaxis_transform(),
                        ha="center", va="bottom", fontsize=6.5, color="0.3")
            nonempty = [(p, v) for p, v in zip(positions, per) if v.size]
            if nonempty:
                ax.boxplot([v for _, v in nonempty], positions=[p for p, _ in nonempty], widths=0.14,
                           showfliers=False, patch_artist=True, manage_ticks=False,
                           boxprops={"facecolor": "white", "edgecolor": "black", "lw": 0.8},
                           medianprops={"color": "black", "lw": 1.4},
                           whiskerprops={"lw": 0.8}, capprops={"lw": 0.8})
            ax.set_xticks(positions)
            ax.set_xticklabels(names, rotation=90 if len(names) > 4 else 0)
            ax.set_xlim(-0.6, len(names) - 0.4)
            ax.set_ylim(lo, hi)
            ax.set_ylabel(ylabel)
            ax.set_xlabel("\n".join(filter(None, [cat_label, _outside_note(outside)])))
        else:
            fig = _new_figure((4.0, 2.8))
            ax = fig.add_subplot()
            edges = np.linspace(lo, hi, 61)
            for i, (name, v) in enumerate(zip(names, per)):
                if v.size == 0:
                    continue
                counts, _ = np.histogram(v, bins=edges)
                ax.stairs(counts / (v.size * np.diff(edges)), edges, color=colors[i % len(colors)], lw=1.3,
                          label=f"{name} (n = {v.size:,}, median {np.median(v):.3g})")
            ax.set_xlim(lo, hi)
            ax.set_ylim(bottom=0)
            ax.set_xlabel("\n".join(filter(None, [ylabel, _outside_note(outside)])))
            ax.set_ylabel("density")
            ax.legend(loc="upper right")
        if title:
            ax.set_title(title, pad=12 if kind == "violin" else 4)
    return fig


def _ratio_label(column: str, reporter: str) -> str:
    """Axis label of a ratio column."""
    if column.startswith("dcn_"):
        return f"ΔC/N ratio ({reporter})"
    if column.endswith("_norm"):
        return f"normalised C/N ratio ({reporter})"
    return f"C/N ratio ({reporter})"


def still_summary(
    objects: pd.DataFrame,
    *,
    reporter: str,
    groups: Mapping[str, str] | None = None,
    column: str | None = None,
    max_points: int = 300,
    seed: int = 0,
    title: str = "",
    style: PathLike | None = None,
) -> Figure:
    """Per-image C/N: median with interquartile range, cells as points, counts below.

    Parameters
    ----------
    objects : pandas.DataFrame
        ``tables/objects.csv`` (all frames pooled).
    reporter : str
        Reporter channel (column ``cn_<reporter>``).
    groups : mapping of str to str, optional
        Image name -> condition: images are ordered and coloured by condition.
    column : str, optional
        Plot this column instead.
    max_points : int
        Points drawn per image (random sample with `seed`).
    seed : int
        Seed of the sample and jitter.
    title : str
        Figure title.
    style : path, optional
        Matplotlib style file.

    Returns
    -------
    matplotlib.figure.Figure
        Axes 0: medians (markers, ``ax.lines``) with IQR bars; axes 1: bars of
        objects per image (light: all objects; dark: with a valid ratio).
    """
    with _styled(style):
        if _is_empty(objects):
            return _no_data_figure("no objects", title=title)
        col = _cn_column(objects, reporter, column, what="objects table")
        _require(objects, ["image"], what="objects table", fix="pass tables/objects.csv")
        table = objects.copy()
        table["image"] = table["image"].astype(str)
        values = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(values).any():
            return _no_data_figure(f"all {col} values are NaN{_reason_summary(table)}", title=title)
        cond = _conditions(table, groups, what="objects table")
        colors = _palette()
        images = list(pd.unique(table["image"]))
        if cond is not None:
            order = _condition_order(groups, cond.unique())
            image_cond = dict(zip(table["image"], cond))
            images.sort(key=lambda im: order.index(image_cond[im]))
            color_of = {im: colors[order.index(image_cond[im]) % len(colors)] for im in images}
        else:
            order = []
            color_of = {im: colors[0] for im in images}
        rng = np.random.default_rng(seed)
        fig = _new_figure((max(3.0, 1.2 + 0.42 * len(images)), 3.6))
        gs = fig.add_gridspec(2, 1, height_ratios=[3, 1])
        ax = fig.add_subplot(gs[0])
        ax_n = fig.add_subplot(gs[1], sharex=ax)
        n_all, n_valid = [], []
        for i, im in enumerate(images):
            rows = (table["image"] == im).to_numpy()
            v = _finite(values[rows])
            n_all.append(int(rows.sum()))
            n_valid.append(int(v.size))
            if v.size == 0:
                continue
            pts = _subsample(v, max_points, rng)
            ax.scatter(i + rng.uniform(-0.2, 0.2, pts.size), pts, s=2, color="0.6", alpha=0.6,
                       lw=0, rasterized=True, zorder=1)
            q1, med, q3 = np.percentile(v, [25, 50, 75])
            ax.errorbar([i], [med], yerr=[[med - q1], [q3 - med]], fmt="o", color=color_of[im],
                        ms=5, capsize=3, lw=1.3, zorder=3)
        ax.set_ylim(*_robust_limits(values))
        ax.set_ylabel(_ratio_label(col, reporter))
        ax.tick_params(labelbottom=False)
        x = np.arange(len(images))
        ax_n.bar(x, n_all, width=0.7, color="0.85", label="objects")
        ax_n.bar(x, n_valid, width=0.7, color=[color_of[im] for im in images], alpha=0.8,
                 label="valid C/N")
        ax_n.set_ylabel("n")
        ax_n.set_xticks(x)
        ax_n.set_xticklabels(images, rotation=90 if len(images) > 3 else 0)
        ax_n.set_xlim(-0.6, len(images) - 0.4)
        handles = [Line2D([], [], color="black", marker="o", ls="-", ms=4, label="median ± IQR"),
                   Line2D([], [], color="0.6", marker="o", ls="none", ms=2, label="cells")]
        handles += [Patch(color=colors[i % len(colors)], label=c) for i, c in enumerate(order)]
        fig.legend(handles=handles, loc="outside right upper")
        if title:
            fig.suptitle(title, x=0.02, ha="left")
    return fig


# --------------------------------------------------------------------------
# time-lapses: traces and heatmaps (traces table, one row per track per frame)
# --------------------------------------------------------------------------


def _track_keys(traces: pd.DataFrame) -> list[str]:
    """Columns identifying one cell: track_id, within dataset/image when present."""
    return [c for c in ("dataset", "image") if c in traces.columns] + ["track_id"]


def _trace_matrix(traces: pd.DataFrame, column: str,
                  frames: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Cells x frames matrix of `column` (NaN where a cell has no value)."""
    keys = _track_keys(traces)
    values = pd.to_numeric(traces[column], errors="coerce")
    wide = values.groupby([traces[k] for k in keys] + [traces["frame"]], sort=True).first()
    matrix = wide.unstack("frame").reindex(columns=frames)
    index = matrix.index.to_frame(index=False)
    return index, matrix.to_numpy(dtype=float)


def _frame_to_x(frame: float, frames: np.ndarray, x: np.ndarray) -> float:
    """x position of a (fractional) frame number, linear beyond the ends."""
    if frames.size == 1:
        return float(x[0] + (frame - frames[0]))
    slope = (x[-1] - x[0]) / (frames[-1] - frames[0])
    if frame < frames[0]:
        return float(x[0] + (frame - frames[0]) * slope)
    if frame > frames[-1]:
        return float(x[-1] + (frame - frames[-1]) * slope)
    return float(np.interp(frame, frames, x))


def _median_ci(sorted_values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median, computed exactly.

    A resample's (lower) median is at most the k-th smallest value exactly when
    at least ``m = ceil(n / 2)`` of its n draws are among the k smallest, so
    ``P(median* <= v_(k)) = P(Binomial(n, k / n) >= m)``. The interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of that distribution:
    the percentile bootstrap with infinitely many resamples, deterministic and
    O(n).
    """
    from scipy.stats import binom

    n = sorted_values.size
    m = (n + 1) // 2
    cdf = binom.sf(m - 1, n, np.arange(1, n + 1) / n)
    alpha = (1 - level) / 2
    lo = min(int(np.searchsorted(cdf, alpha - 1e-12)), n - 1)
    hi = min(int(np.searchsorted(cdf, 1 - alpha - 1e-12)), n - 1)
    return float(sorted_values[lo]), float(sorted_values[hi])


def _column_median_band(matrix: np.ndarray, *, band: str,
                        min_cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: median and the band's low and high (NaN where no/too few cells)."""
    n_cols = matrix.shape[1]
    med = np.full(n_cols, np.nan)
    low = np.full(n_cols, np.nan)
    high = np.full(n_cols, np.nan)
    for j in range(n_cols):
        v = np.sort(matrix[np.isfinite(matrix[:, j]), j])
        if v.size == 0:
            continue
        med[j] = np.median(v)
        if v.size < min_cells:
            continue
        if band == "percentile":
            low[j], high[j] = np.percentile(v, [2.5, 97.5])
        else:
            low[j], high[j] = _median_ci(v)
    return med, low, high


def _window_masks(frames: np.ndarray, *, stimulus_frame: float | None,
                  baseline_frames: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks over `frames` of the baseline and the response windows.

    Baseline: `baseline_frames` (inclusive), else the frames before the
    stimulus, else the first third. Response: the frames at or after the
    stimulus, else the frames after the baseline.
    """
    if baseline_frames is not None:
        base = (frames >= baseline_frames[0]) & (frames <= baseline_frames[1])
    elif stimulus_frame is not None:
        base = frames < stimulus_frame
    else:
        base = np.arange(frames.size) < max(1, frames.size // 3)
    if stimulus_frame is not None:
        post = frames >= stimulus_frame
    else:
        last_base = frames[base].max() if base.any() else -np.inf
        post = frames > last_base
    return base, post


def response_scores(
    matrix: np.ndarray,
    frames: np.ndarray,
    *,
    sort_by: str = "response",
    stimulus_frame: float | None = None,
    baseline_frames: tuple[int, int] | None = None,
) -> np.ndarray:
    """Score of every cell (row of `matrix`) used to sort :func:`cn_heatmap`.

    Parameters
    ----------
    matrix : ndarray
        Cells x frames values (NaN = missing).
    frames : ndarray
        Frame number of every column.
    sort_by : str
        ``"response"``: max over the response window minus the mean over the
        baseline window (see below) of the cell; ``"late_minus_early"``: mean
        of the last third of the frames minus the mean of the first third;
        ``"mean"``, ``"max"``: of all the cell's values.
    stimulus_frame : float, optional
        Frame (may be fractional, e.g. 7.5) at which the stimulus was added.
    baseline_frames : (int, int), optional
        First and last baseline frame (inclusive). Default: the frames before
        the stimulus, else the first third of the frames. The response window
        is the frames at or after the stimulus, else those after the baseline.

    Returns
    -------
    ndarray
        One score per row, NaN when the cell lacks the values needed.
    """
    frames = np.asarray(frames, dtype=float)
    m = np.asarray(matrix, dtype=float)
    if m.shape[0] == 0:
        return np.zeros(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if sort_by == "response":
            base, post = _window_masks(frames, stimulus_frame=stimulus_frame, baseline_frames=baseline_frames)
            if not (post.any() and base.any()):
                return np.full(m.shape[0], np.nan)
            return np.nanmax(m[:, post], axis=1) - np.nanmean(m[:, base], axis=1)
        if sort_by == "late_minus_early":
            third = max(1, frames.size // 3)
            return np.nanmean(m[:, -third:], axis=1) - np.nanmean(m[:, :third], axis=1)
        if sort_by == "mean":
            return np.nanmean(m, axis=1)
        if sort_by == "max":
            return np.nanmax(m, axis=1)
    raise InputError(
        f"cn_heatmap: sort_by={sort_by!r}; use 'response', 'late_minus_early', 'mean', 'max', "
        "'track_id' or 'none'"
    )


def _check_traces(traces: pd.DataFrame, column: str) -> None:
    _require(traces, ["track_id", "frame", column], what="traces table",
             fix="pass the traces table (one row per tracked cell per frame)")


def _traces_figure(
    traces: pd.DataFrame,
    *,
    reporter: str,
    column: str,
    time: str | None,
    max_cells: int,
    band: str,
    stimulus_frame: float | None,
    baseline_frames: tuple[int, int] | None,
    groups: Mapping[str, str] | None,
    seed: int,
    min_coverage: float,
    zero_line: bool,
    title: str,
) -> Figure:
    """Shared body of :func:`cn_traces` and :func:`dcn_traces` (style already applied)."""
    if band not in ("percentile", "bootstrap"):
        raise InputError(f"cn_traces: band={band!r}; use 'percentile' or 'bootstrap'")
    if _is_empty(traces):
        return _no_data_figure("the traces table has no rows", title=title)
    _check_traces(traces, column)
    values = pd.to_numeric(traces[column], errors="coerce")
    if not values.notna().any():
        return _no_data_figure(f"all {column} values are NaN{_reason_summary(traces)}", title=title)
    frames = np.sort(pd.to_numeric(traces["frame"]).unique())
    x, xlabel = _time_axis(traces, frames, time)
    cond = _conditions(traces, groups, what="traces table")
    names = [None] if cond is None else _condition_order(groups, cond.unique())
    colors = _palette()
    rng = np.random.default_rng(seed)
    fig = _new_figure((3.4 * min(len(names), 3) + 1.3, 2.7 * math.ceil(len(names) / 3)))
    axes = _grid(fig, len(names), ncols=3, sharex=True, sharey=True)
    all_values = []
    for i, (ax, name) in enumerate(zip(axes, names)):
        subset = traces if name is None else traces[(cond == name).to_numpy()]
        _, matrix = _trace_matrix(subset, column, frames)
        color = colors[i % len(colors)] if name is not None else colors[0]
        valid = np.isfinite(matrix).sum(axis=1)
        candidates = np.flatnonzero(valid >= max(2, math.ceil(min_coverage * frames.size)))
        if candidates.size == 0:
            candidates = np.flatnonzero(valid >= 1)
        chosen = np.sort(rng.choice(candidates, size=min(max_cells, candidates.size), replace=False))
        if chosen.size:
            segments = [np.column_stack([x, matrix[r]]) for r in chosen]
            ax.add_collection(LineCollection(segments, colors=_TRACE_GRAY, linewidths=0.5, alpha=0.7,
                                             label=f"{chosen.size} random cells", zorder=1))
        med, low, high = _column_median_band(matrix, band=band, min_cells=3)
        band_label = ("2.5-97.5 percentile of cells" if band == "percentile"
                      else "95 % CI of the median (bootstrap)")
        ax.fill_between(x, low, high, color=color, alpha=0.25, lw=0, label=band_label, zorder=2)
        n_cells = int((valid > 0).sum())
        ax.plot(x, med, color=color, lw=1.8, zorder=3,
                label="median" if name is not None else f"median (n = {n_cells:,} cells)")
        all_values.append(matrix[chosen].ravel())
        all_values.extend([low, high, med])
        if zero_line:
            ax.axhline(0, color="black", lw=0.6, ls=":", zorder=0)
        if baseline_frames is not None:
            ax.axvspan(_frame_to_x(baseline_frames[0] - 0.5, frames, x),
                       _frame_to_x(baseline_frames[1] + 0.5, frames, x),
                       color="0.5", alpha=0.12, lw=0, label="baseline", zorder=0)
        if stimulus_frame is not None:
            ax.axvline(_frame_to_x(stimulus_frame, frames, x), color="black", ls="--", lw=0.9,
                       label="stimulus", zorder=4)
        ax.set_title(f"{name} (n = {n_cells:,} cells)" if name is not None else title, loc="left")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(_ratio_label(column, reporter))
    handles = axes[0].get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3))
    lo, hi = _robust_limits(np.concatenate([np.ravel(v) for v in all_values]), pct=(0.2, 99.8))
    axes[0].set_ylim(lo, hi)
    axes[0].set_xlim(float(x.min()), float(x.max()) if x.max() > x.min() else float(x.min()) + 1)
    if names != [None] and title:
        fig.suptitle(title, x=0.02, ha="left")
    return fig


def cn_traces(
    traces: pd.DataFrame,
    *,
    reporter: str,
    column: str | None = None,
    time: str | None = "time_s",
    max_cells: int = 30,
    band: Literal["percentile", "bootstrap"] = "percentile",
    stimulus_frame: float | None = None,
    baseline_frames: tuple[int, int] | None = None,
    groups: Mapping[str, str] | None = None,
    seed: int = 0,
    min_coverage: float = 0.5,
    title: str = "",
    style: PathLike | None = None,
) -> Figure:
    """C/N ratio over time: individual cells, population median and a 95 % band.

    Parameters
    ----------
    traces : pandas.DataFrame
        One row per tracked cell per frame: ``track_id``, ``frame``,
        ``time_s`` and ``cn_<reporter>`` (cells are ``track_id`` within
        ``dataset``/``image`` when those columns exist).
    reporter : str
        Reporter channel.
    column : str, optional
        Plot this column instead of ``cn_<reporter>`` (e.g. ``cn_<r>_norm``).
    time : str or None
        Time column; minutes (hours beyond 10 h) when ``time_s`` is known for
        every frame, else frame numbers.
    max_cells : int
        Individual thin grey lines: a random sample (`seed`) of this many
        cells among those with a value in at least `min_coverage` of the frames.
    band : {"percentile", "bootstrap"}
        ``"percentile"``: the 2.5-97.5 percentile of the cells at each time
        point (the spread of the population); ``"bootstrap"``: 95 %
        percentile-bootstrap confidence interval of the (lower) median, from
        the exact bootstrap distribution (binomial, no resampling: as with
        infinitely many resamples, deterministic; the uncertainty of the
        median). Drawn where a time point has at least 3 cells.
    stimulus_frame : float, optional
        Draw a dashed "stimulus" line at this (fractional) frame, e.g. 7.5 for
        a stimulus between frames 7 and 8.
    baseline_frames : (int, int), optional
        Shade the baseline frames (inclusive).
    groups : mapping of str to str, optional
        Image name -> condition; one panel per condition (shared axes).
    seed : int
        Seed of the sample of individual cells.
    min_coverage : float
        Fraction of the frames a sampled cell must have a value in.
    title : str
        Title.
    style : path, optional
        Matplotlib style file.

    Returns
    -------
    matplotlib.figure.Figure
        Per panel: a LineCollection of the individual cells
        (``ax.collections``), the band (``fill_between``) and the median line
        (the first line of ``ax.lines``).
    """
    with _styled(style):
        col = column or f"cn_{reporter}"
        if not _is_empty(traces):
            col = _cn_column(traces, reporter, column, what="traces table")
        return _traces_figure(traces, reporter=reporter, column=col, time=time, max_cells=max_cells,
                              band=band, stimulus_frame=stimulus_frame,
                              baseline_frames=baseline_frames, groups=groups, seed=seed,
                              min_coverage=min_coverage, zero_line=False, title=title)


def dcn_traces(
    traces: pd.DataFrame,
    *,
    reporter: str,
    column: str | None = None,
    time: str | None = "time_s",
    max_cells: int = 30,
    band: Literal["percentile", "bootstrap"] = "percentile",
    stimulus_frame: float | None = None,
    baseline_frames: tuple[int, int] | None = None,
    groups: Mapping[str, str] | None = None,
    seed: int = 0,
    min_coverage: float = 0.5,
    title: str = "",
    style: PathLike | None = None,
) -> Figure:
    """ΔC/N (C/N minus the cell's baseline) over time, as :func:`cn_traces`.

    Plots ``dcn_<reporter>`` (or `column`) with a dotted line at 0; all other
    parameters as in :func:`cn_traces`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    with _styled(style):
        col = column or f"dcn_{reporter}"
        if not _is_empty(traces):
            col = _cn_column(traces, reporter, column, what="traces table", prefix="dcn_")
        return _traces_figure(traces, reporter=reporter, column=col, time=time, max_cells=max_cells,
                              band=band, stimulus_frame=stimulus_frame,
                              baseline_frames=baseline_frames, groups=groups, seed=seed,
                              min_coverage=min_coverage, zero_line=True, title=title)


def cn_heatmap(
    traces: pd.DataFrame,
    *,
    reporter: str,
    column: str | None = None,
    sort_by: str = "response",
    stimulus_frame: float | None = None,
    baseline_frames: tuple[int, int] | None = None,
    time: str | None = "time_s",
    groups: Mapping[str, str] | None = None,
    min_coverage: float = 0.5,
    cmap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    title: str = "",
    style: PathLike | None = None,
) -> Figure:
    """Heatmap of cells x time, sorted by response (as PlotTwist shows KTR data).

    Parameters
    ----------
    traces : pandas.DataFrame
        The traces table (see :func:`cn_traces`).
    reporter : str
        Reporter channel.
    column : str, optional
        Column to show; default ``cn_<reporter>`` (``dcn_<reporter>`` for ΔC/N).
    sort_by : str
        Row order, strongest first: ``"response"`` (max after the stimulus /
        baseline minus the cell's baseline mean), ``"late_minus_early"``,
        ``"mean"``, ``"max"`` (see :func:`response_scores`), or ``"track_id"``
        (ascending) or ``"none"`` (table order). Cells without a score go last.
    stimulus_frame : float, optional
        Stimulus frame: drawn as a dashed line and used by ``"response"``.
    baseline_frames : (int, int), optional
        Baseline frames (inclusive) used by ``"response"``.
    time : str or None
        Time column for the x axis (see :func:`cn_traces`).
    groups : mapping of str to str, optional
        Image name -> condition; one heatmap per condition, one colour scale.
    min_coverage : float
        Only cells with a value in at least this fraction of the frames.
    cmap : str, optional
        Colormap; default ``viridis``, or ``RdBu_r`` centred on 0 for ΔC/N.
        Missing values are light grey.
    vmin, vmax : float, optional
        Colour limits; default the 1st and 99th percentiles.
    title : str
        Title.
    style : path, optional
        Matplotlib style file.

    Returns
    -------
    matplotlib.figure.Figure
        One image per panel (``ax.images[0]``, rows = cells in sorted order,
        columns = frames) and a colour bar.
    """
    if sort_by not in ("response", "late_minus_early", "mean", "max", "track_id", "none"):
        response_scores(np.zeros((1, 1)), np.zeros(1), sort_by=sort_by)  # raises InputError
    with _styled(style):
        if _is_empty(traces):
            return _no_data_figure("the traces table has no rows", title=title)
        col = _cn_column(traces, reporter, column, what="traces table",
                         prefix="dcn_" if column and column.startswith("dcn_") else "cn_")
        _check_traces(traces, col)
        values = pd.to_numeric(traces[col], errors="coerce")
        if not values.notna().any():
            return _no_data_figure(f"all {col} values are NaN{_reason_summary(traces)}", title=title)
        frames = np.sort(pd.to_numeric(traces["frame"]).unique())
        x, xlabel = _time_axis(traces, frames, time)
        cond = _conditions(traces, groups, what="traces table")
        names = [None] if cond is None else _condition_order(groups, cond.unique())
        panels = []
        for name in names:
            subset = traces if name is None else traces[(cond == name).to_numpy()]
            index, matrix = _trace_matrix(subset, col, frames)
            keep = np.isfinite(matrix).sum(axis=1) >= max(1, math.ceil(min_coverage * frames.size))
            index, matrix = index[keep].reset_index(drop=True), matrix[keep]
            if sort_by == "track_id":
                order = np.argsort(index["track_id"].to_numpy(), kind="stable")
            elif sort_by == "none":
                order = np.arange(matrix.shape[0])
            else:
                score = response_scores(matrix, frames, sort_by=sort_by, stimulus_frame=stimulus_frame,
                                        baseline_frames=baseline_frames)
                order = np.argsort(np.where(np.isfinite(score), -score, np.inf), kind="stable")
            panels.append((name, index.iloc[order].reset_index(drop=True), matrix[order]))
        shown = np.concatenate([m.ravel() for _, _, m in panels])
        if not np.isfinite(shown).any():
            return _no_data_figure(f"no cell has {col} values in {min_coverage:.0%} of the frames",
                                   title=title)
        diverging = col.startswith("dcn_") and cmap is None
        lo, hi = np.nanpercentile(shown, [1, 99])
        if diverging:
            bound = max(abs(lo), abs(hi)) or 1.0
            lo, hi = -bound, bound
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
        colormap = matplotlib.colormaps[cmap or ("RdBu_r" if diverging else "viridis")]
        colormap = colormap.with_extremes(bad="0.85")
        if frames.size > 1:
            step = (x[-1] - x[0]) / (frames.size - 1)
        else:
            step = 1.0
        fig = _new_figure((3.0 * len(names) + 1.2, 3.4))
        axes = _grid(fig, len(names), ncols=len(names), sharex=True)
        image = None
        for ax, (name, index, matrix) in zip(axes, panels):
            n = matrix.shape[0]
            if n == 0:
                _note(ax, "no data: no cell passes min_coverage")
                continue
            image = ax.imshow(matrix, aspect="auto", interpolation="nearest" if n <= 400 else "auto",
                              cmap=colormap, vmin=vmin, vmax=vmax,
                              extent=(x[0] - step / 2, x[-1] + step / 2, n, 0))
            if stimulus_frame is not None:
                ax.axvline(_frame_to_x(stimulus_frame, frames, x), color="white", ls="--", lw=1.0)
            if n <= 40:
                ax.set_yticks(np.arange(n) + 0.5)
                ax.set_yticklabels(index["track_id"].astype(str), fontsize=5.5)
                ax.set_ylabel("track id")
            else:
                order_note = "" if sort_by == "none" else f", by {sort_by.replace('_', ' ')}"
                ax.set_ylabel(f"cells (n = {n:,}){order_note}")
            ax.set_xlabel(xlabel)
            ax.set_title(name if name is not None else title, loc="left")
        if image is not None:
            fig.colorbar(image, ax=axes, label=_ratio_label(col, reporter), shrink=0.85, aspect=25)
        if names != [None] and title:
            fig.suptitle(title, x=0.02, ha="left")
    return fig


# --------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------


def save_figure(
    fig: Figure,
    path: PathLike,
    *,
    formats: Sequence[str] | None = None,
    dpi: float = 300,
    png_compress_level: int = 1,
    style: PathLike | None = None,
) -> list[Path]:
    """Write a figure as PNG, SVG or PDF, atomically and byte-identically.

    Dates and software versions are left out of the files (PNG ``Software``;
    SVG ``Date``, ``Creator``; PDF ``CreationDate``, ``ModDate``, ``Creator``,
    ``Producer``), SVG ids are salted with a constant, SVG text is drawn as
    paths and PDF fonts are embedded (TrueType): saving the same figure twice
    gives identical bytes and the files render without the fonts installed.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : path-like
        Output file; the suffix (``.png``, ``.svg``, ``.pdf``) gives the format.
    formats : sequence of str, optional
        Write these formats instead (e.g. ``("png", "pdf")``), each at `path`
        with the suffix replaced.
    dpi : float
        Resolution of PNG output and of images embedded in SVG/PDF.
    png_compress_level : int
        zlib level of PNG files (0-9): 1 writes image-heavy QC figures ~3x
        faster than the default 6 for ~10 % larger files. PNGs are encoded by
        :func:`png_bytes` (RGB when the figure is opaque).
    style : path, optional
        Style file in force while saving (default :data:`DEFAULT_STYLE`).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    path = Path(path)
    if formats is None:
        targets = [path]
    else:
        targets = [path.with_suffix("." + str(f).lower().lstrip(".")) for f in formats]
    for target in targets:
        if target.suffix.lower() not in FORMATS:
            raise InputError(f"{target}: unsupported figure format; use a .png, .svg or .pdf file name")
    written = []
    with _styled(style, rc=_SAVE_RC), _fixed_layout(fig, dpi) as lay_out:
        for target in targets:
            fmt = FORMATS[target.suffix.lower()]
            lay_out(fmt)
            with atomic_path(target) as tmp, (_lean_pdf_fonts() if fmt == "pdf" else contextlib.nullcontext()):
                pixels = _render_rgba(fig, dpi) if fmt == "png" else None
                if pixels is not None:
                    with open(tmp, "wb") as fh:
                        fh.write(png_bytes(pixels, dpi=dpi, compress_level=png_compress_level))
                else:
                    extra = {"pil_kwargs": {"compress_level": int(png_compress_level)}} if fmt == "png" else {}
                    fig.savefig(tmp, format=fmt, dpi=dpi, metadata=dict(_METADATA[fmt]), **extra)
            written.append(target)
    return written


#: OpenType layout tables (glyph substitution and positioning, math layout):
#: used to shape text, which matplotlib does before writing a PDF; a PDF
#: viewer draws the embedded glyphs by index and never reads them.
_PDF_DROPPED_FONT_TABLES = ("GSUB", "GPOS", "GDEF", "MATH", "BASE", "JSTF")


@contextlib.contextmanager
def _lean_pdf_fonts() -> Iterator[None]:
    """While the block runs, fonts embedded in PDF files leave out the layout
    tables (:data:`_PDF_DROPPED_FONT_TABLES`).

    Matplotlib subsets every embedded font with fontTools; most of that time
    (~0.05 of ~0.09 s per PDF with DejaVu Sans) goes into reading and subsetting
    the GSUB/GPOS tables. The glyph outlines, metrics, character map and
    glyph names are the same, the fonts ~20 % smaller. Done by handing
    matplotlib's PDF backend a ``fontTools.subset`` whose ``Options`` add these
    tables to ``drop_tables``; with a matplotlib that subsets fonts another
    way nothing changes.
    """
    try:
        from fontTools import subset as fonttools_subset
        from matplotlib.backends import _backend_pdf_ps
    except ImportError:  # pragma: no cover - fontTools is a matplotlib dependency
        yield
        return
    if getattr(_backend_pdf_ps, "subset", None) is not fonttools_subset:
        yield
        return
    _backend_pdf_ps.subset = _LeanSubset(fonttools_subset)
    try:
        yield
    finally:
        _backend_pdf_ps.subset = fonttools_subset


class _LeanSubset:
    """``fontTools.subset`` whose ``Options`` drop :data:`_PDF_DROPPED_FONT_TABLES` (see :func:`_lean_pdf_fonts`)."""

    def __init__(self, module) -> None:
        base = module.Options

        class Options(base):
            def __init__(self, **kwargs) -> None:
                super().__init__(**kwargs)
                self.drop_tables = list(self.drop_tables) + [
                    t for t in _PDF_DROPPED_FONT_TABLES if t not in self.drop_tables]

        self._module = module
        self.Options = Options

    def __getattr__(self, name: str):
        return getattr(self._module, name)


@contextlib.contextmanager
def _fixed_layout(fig: Figure, dpi: float) -> Iterator[Callable[[str], None]]:
    """While saving: ``lay_out(fmt)`` lays the figure out for format `fmt` once
    per kind of output, and the layout engine is off otherwise.

    ``savefig`` runs a layout engine (constrained layout) for every file, in a
    draw without output before the real draw. Here the engine runs once
    for the PNG (with the Agg renderer at `dpi`, as ``savefig`` would) and once
    for the vector formats (with the SVG renderer at 72 dpi; the PDF renderer's
    text metrics differ by < 0.01 pt), and each file is drawn once.
    The engine is restored when the block ends. Figures without an engine, and a
    style with ``savefig.bbox: tight`` (matplotlib's own pre-draw places the
    bounding box), are saved as usual.
    """
    engine = fig.get_layout_engine()
    if engine is None or matplotlib.rcParams["savefig.bbox"] == "tight" or not hasattr(engine, "execute"):
        yield lambda fmt: None
        return
    done: list[str] = []

    def lay_out(fmt: str) -> None:
        kind = "raster" if fmt == "png" else "vector"
        if done and done[-1] == kind:
            return
        figure_dpi, canvas = fig.dpi, fig.canvas
        try:
            if kind == "vector":
                from matplotlib.backends.backend_svg import FigureCanvasSVG

                FigureCanvasSVG(fig)  # the renderer the engine asks the figure for: SVG's
                fig.dpi = 72
            else:
                fig.dpi = dpi
            engine.execute(fig)
        finally:
            fig.set_canvas(canvas)
            fig.dpi = figure_dpi
        done.append(kind)

    with matplotlib.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)
    try:
        yield lay_out
    finally:
        fig.set_layout_engine(engine)


def import_backends(formats: Sequence[str]) -> None:
    """Import the matplotlib backends that write `formats` (png, svg, pdf) now, e.g.
    before forking processes that save figures (each would import them again)."""
    import importlib

    for fmt in formats:
        name = {"png": "agg", "svg": "svg", "pdf": "pdf"}.get(str(fmt).lower().lstrip("."))
        if name:
            importlib.import_module(f"matplotlib.backends.backend_{name}")


def _render_rgba(fig: Figure, dpi: float) -> np.ndarray | None:
    """The figure drawn by Agg as for a PNG at `dpi` (``savefig`` with the raw
    ``rgba`` format): ``(H, W, 4)`` uint8, or None when the canvas is not the
    figure's size (a tight bounding box: then ``savefig`` writes the PNG)."""
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="rgba", dpi=dpi)
    width, height = int(fig.get_figwidth() * dpi), int(fig.get_figheight() * dpi)
    data = buffer.getbuffer()
    if width * height * 4 != data.nbytes:
        return None
    return np.frombuffer(data, np.uint8).reshape(height, width, 4)


def png_bytes(pixels: np.ndarray, *, dpi: float | None = None, compress_level: int = 1) -> bytes:
    """A PNG file of an RGB(A) or grey uint8 image, as bytes (deterministic: no text chunks).

    Written directly with :mod:`zlib` (filter "up" on every row, one IDAT
    chunk), about twice as fast as Pillow, which tries every row filter. An
    RGBA image that is fully opaque is stored as RGB.

    Parameters
    ----------
    pixels : ndarray
        ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8, row 0 at the top.
    dpi : float, optional
        Resolution recorded in the ``pHYs`` chunk (as Pillow writes it).
    compress_level : int
        zlib level, 0-9.

    Returns
    -------
    bytes
    """
    a = np.asarray(pixels)
    if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise InputError(f"png_bytes: expected (H, W), (H, W, 3) or (H, W, 4) uint8 pixels, got "
                         f"{a.dtype} {a.shape}")
    if a.size == 0:
        raise InputError(f"png_bytes: a PNG needs at least one pixel, got shape {a.shape}")
    if a.ndim == 2:
        a = a[..., None]
    height, width = a.shape[:2]
    channels = 3 if a.shape[2] == 4 and a[..., 3].min() == 255 else a.shape[2]
    color_type = {1: 0, 3: 2, 4: 6}[channels]
    if channels == a.shape[2]:
        pixels = np.ascontiguousarray(a)
    else:  # drop the alpha channel: one channel at a time is ~5x faster than a[..., :3]
        pixels = np.empty((height, width, channels), np.uint8)
        for c in range(channels):
            pixels[..., c] = a[..., c]
    rows = pixels.reshape(height, -1)
    filtered = np.empty((height, rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = 2  # "up": each byte minus the byte above (above row 0: zeros)
    if height:
        filtered[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    parts = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0))]
    if dpi:
        per_metre = int(dpi / 0.0254 + 0.5)
        parts.append(chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)))
    parts.append(chunk(b"IDAT", zlib.compress(filtered, int(compress_level))))
    parts.append(chunk(b"IEND", b""))
    return b"".join(parts)
