"""Per-object shape and intensity measurements of one labelled 2-D frame.

:func:`measure_objects` returns one row per label with the shape descriptors of
:func:`skimage.measure.regionprops` (same definitions) and per-channel
intensity statistics. Everything is computed for all objects at once with
``np.bincount`` / sorted ``reduceat`` over label ids, never with a Python loop
over objects, so a 1024 x 1024 frame with ~750 nuclei and 3 channels takes a
few tens of milliseconds instead of seconds.

The private helpers (:func:`_check_labels`, :class:`_LabelIndex`,
:func:`_sort_within_groups`, ...) are shared with :mod:`snakescope.rings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from math import sqrt

import numpy as np
import pandas as pd

from snakescope.errors import InputError

__all__ = ["measure_objects", "SHAPE_COLUMNS", "INTENSITY_SUFFIXES", "intensity_columns"]

#: Shape columns of :func:`measure_objects`, in output order.
SHAPE_COLUMNS: tuple[str, ...] = (
    "label",
    "x",
    "y",
    "x_um",
    "y_um",
    "area_px",
    "area_um2",
    "perimeter_px",
    "perimeter_um",
    "equivalent_diameter_px",
    "equivalent_diameter_um",
    "major_axis_px",
    "major_axis_um",
    "minor_axis_px",
    "minor_axis_um",
    "eccentricity",
    "solidity",
    "orientation",
)

#: Per-channel column suffixes of :func:`measure_objects`, in output order.
INTENSITY_SUFFIXES: tuple[str, ...] = (
    "mean",
    "median",
    "integrated",
    "std",
    "min",
    "max",
    "saturated_px",
)

_INT_COLUMNS = frozenset({"label", "area_px"})

# Weights of skimage.measure.perimeter (Benkrid & Crookes), indexed by the code
# 1 * centre + 2 * (4-neighbours) + 10 * (diagonal neighbours) of border pixels.
_PERIMETER_WEIGHTS = np.zeros(50, dtype=np.float64)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1.0
_PERIMETER_WEIGHTS[[21, 33]] = sqrt(2.0)
_PERIMETER_WEIGHTS[[13, 23]] = (1.0 + sqrt(2.0)) / 2.0


def intensity_columns(channel: str) -> list[str]:
    """Return the intensity column names :func:`measure_objects` makes for a channel.

    Parameters
    ----------
    channel : str
        Channel name, as a key of the ``intensities`` mapping.

    Returns
    -------
    list of str
        ``[f"{channel}_mean", ..., f"{channel}_saturated_px"]``.
    """
    return [f"{channel}_{suffix}" for suffix in INTENSITY_SUFFIXES]


# --------------------------------------------------------------------------
# validation helpers (shared with snakescope.rings)
# --------------------------------------------------------------------------


def _check_labels(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as an array after checking it is a 2-D non-negative integer image."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(
            f"{name}: expected a 2-D label image, got {labels.ndim}-D shape {labels.shape}; "
            "pass one frame at a time"
        )
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(
            f"{name}: expected an integer label image, got dtype {labels.dtype}; "
            "label the mask first (e.g. skimage.measure.label)"
        )
    if labels.size and np.issubdtype(labels.dtype, np.signedinteger) and labels.min() < 0:
        raise InputError(f"{name}: label ids must be >= 0 (0 = background); relabel the image")
    return labels


def _check_intensities(
    intensities: Mapping[str, np.ndarray], shape: tuple[int, ...], name: str = "intensities"
) -> dict[str, np.ndarray]:
    """Return ``{channel: 2-D real array}`` after checking shapes and dtypes."""
    if not isinstance(intensities, Mapping):
        raise InputError(
            f"{name}: expected a mapping {{channel name: image}}, got {type(intensities).__name__}; "
            "pass e.g. {'H2B': img0, 'ERK': img1}"
        )
    out: dict[str, np.ndarray] = {}
    for channel, image in intensities.items():
        if not isinstance(channel, str) or not channel:
            raise InputError(f"{name}: channel names must be non-empty strings, got {channel!r}")
        image = np.asarray(image)
        if image.shape != tuple(shape):
            raise InputError(
                f"{name}[{channel!r}]: shape {image.shape} differs from the label image "
                f"shape {tuple(shape)}; pass the matching frame of that channel"
            )
        if image.dtype == bool:
            image = image.view(np.uint8)
        if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
            raise InputError(
                f"{name}[{channel!r}]: unsupported dtype {image.dtype}; pass an integer or float image"
            )
        out[channel] = image
    return out


def _is_real(value: object) -> bool:
    """True for a real (non-bool) Python or numpy scalar."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_finite(values: np.ndarray, where: str) -> None:
    """Raise InputError if a float ``values`` array holds NaN or inf."""
    if values.dtype.kind == "f":
        bad = values.size - int(np.count_nonzero(np.isfinite(values)))
        if bad:
            raise InputError(
                f"{where}: {bad} NaN/inf pixel(s) inside objects; "
                "replace or mask non-finite pixels before measuring"
            )


# --------------------------------------------------------------------------
# label indexing (shared with snakescope.rings)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _LabelIndex:
    """Pixels of all objects, grouped by label rank.

    Attributes
    ----------
    ids : (n,) int64
        Label ids present, sorted ascending.
    fg : (m,) intp
        Flat (raster) indices of all object pixels, in raster order.
    group : (m,) intp
        Rank (0..n-1) of the label of each pixel in ``fg``.
    counts : (n,) int64
        Pixel count of each label.
    lut : ndarray or None
        ``lut[label id] = rank`` (or -1) when the ids are small enough for a table.
    """

    ids: np.ndarray
    fg: np.ndarray
    group: np.ndarray
    counts: np.ndarray
    lut: np.ndarray | None

    @property
    def n(self) -> int:
        return int(self.ids.size)

    @classmethod
    def from_labels(cls, labels: np.ndarray) -> _LabelIndex:
        flat = labels.ravel()
        fg = np.flatnonzero(flat)
        values = flat[fg]
        if values.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, fg, np.zeros(0, dtype=np.intp), empty, None)
        top = int(values.max())
        if top <= 4 * flat.size + 65536:
            counts_all = np.bincount(values, minlength=top + 1)
            ids = np.flatnonzero(counts_all)
            lut = np.full(top + 1, -1, dtype=np.intp)
            lut[ids] = np.arange(ids.size)
            group = lut[values]
            counts = counts_all[ids].astype(np.int64)
        else:  # sparse huge ids: fall back to a sort
            ids, group, counts = np.unique(values, return_inverse=True, return_counts=True)
            lut = None
        return cls(ids.astype(np.int64), fg, group.astype(np.intp, copy=False), counts, lut)

    def rank_of(self, label_values: np.ndarray) -> np.ndarray:
        """Rank of each label value (-1 where the id is not present)."""
        label_values = np.asarray(label_values)
        out = np.full(label_values.shape, -1, dtype=np.intp)
        if self.ids.size == 0:
            return out
        if self.lut is not None:
            inside = label_values < self.lut.size
            out[inside] = self.lut[label_values[inside]]
            return out
        where = np.minimum(np.searchsorted(self.ids, label_values), self.ids.size - 1)
        hit = self.ids[where] == label_values
        out[hit] = where[hit]
        return out


# --------------------------------------------------------------------------
# grouped statistics (shared with snakescope.rings)
# --------------------------------------------------------------------------


def _float_sort_keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving map of float32 values to uint32 (finite values only)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    mask = np.where(bits >> np.uint32(31), np.uint32(0xFFFFFFFF), np.uint32(0x80000000))
    return bits ^ mask


def _float_from_keys(keys: np.ndarray) -> np.ndarray:
    keys = keys.astype(np.uint32)
    mask = np.where(keys >> np.uint32(31), np.uint32(0x80000000), np.uint32(0xFFFFFFFF))
    return (keys ^ mask).view(np.float32)


def _sort_within_groups(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Return ``values`` sorted by ``(group, value)`` as float64.

    One ``np.sort`` of packed unsigned keys ``group << bits | value`` for
    integer images, float32(-representable) images (order-preserving bit
    map) and integer-valued float64 images; other float64 images use a value
    argsort followed by a stable (radix) group sort, ~5x slower.
    """
    if values.size == 0:
        return np.zeros(0, dtype=np.float64)
    gbits = max(int(n_groups - 1).bit_length(), 1)
    kind = values.dtype.kind
    if kind in "iu":
        vmin = int(values.min())
        span = int(values.max()) - vmin
        vbits = max(span.bit_length(), 1)
        if gbits + vbits <= 64:
            ktype = np.uint32 if gbits + vbits <= 32 else np.uint64
            if vmin >= 0 and values.dtype.itemsize <= np.dtype(ktype).itemsize:
                low = values.astype(ktype)
                if vmin:
                    low -= ktype(vmin)
            else:
                low = (values.astype(np.int64) - vmin).astype(ktype)
            keys = group.astype(ktype)
            keys <<= ktype(vbits)
            keys |= low
            keys.sort()
            keys &= ktype((1 << vbits) - 1)
            out = keys.astype(np.float64)
            if vmin:
                out += vmin
            return out
    elif kind == "f":
        if values.dtype.itemsize <= 4 and not np.signbit(values).any() and values.max() < 2**31:
            # non-negative whole numbers (an integer image as float32, e.g. after a
            # constant background): the narrower integer keys sort faster, and
            # float64(int(v)) == float64(v) (no -0.0 here to lose its sign)
            as_int = values.astype(np.int32)
            if np.array_equal(as_int, values):
                return _sort_within_groups(as_int, group, n_groups)
        as32 = values if values.dtype.itemsize <= 4 else values.astype(np.float32)
        if gbits <= 32 and (values.dtype.itemsize <= 4 or np.array_equal(as32, values)):
            keys = group.astype(np.uint64)
            keys <<= np.uint64(32)
            keys |= _float_sort_keys(as32)
            keys.sort()
            return _float_from_keys(keys & np.uint64(0xFFFFFFFF)).astype(np.float64)
        if values.dtype.itemsize > 4 and np.abs(values).max() < 2**52:
            as_int = values.astype(np.int64)
            if np.array_equal(as_int, values):  # integer counts stored as float64
                return _sort_within_groups(as_int, group, n_groups)
    # general fallback (arbitrary float64 data, very wide integer ranges)
    order = np.argsort(values)
    gtype = np.uint16 if n_groups <= 65536 else np.int64
    order = order[np.argsort(group[order].astype(gtype), kind="stable")]
    return values[order].astype(np.float64)


def _grouped_stats(
    sorted_values: np.ndarray, counts: np.ndarray
) -> dict[str, np.ndarray]:
    """Statistics of values already sorted by (group, value); groups with count 0 give NaN.

    Returns a dict with ``mean, median, integrated, std, min, max`` (float64).
    """
    n = counts.size
    out = {key: np.full(n, np.nan) for key in ("mean", "median", "integrated", "std", "min", "max")}
    present = counts > 0
    if not present.any():
        out["integrated"][:] = 0.0
        return out
    c = counts[present]
    starts = np.cumsum(c) - c
    ends = starts + c
    sums = np.add.reduceat(sorted_values, starts)
    mean = sums / c
    dev = sorted_values - np.repeat(mean, c)
    dev *= dev
    var = np.add.reduceat(dev, starts) / c
    out["mean"][present] = mean
    out["integrated"][present] = sums
    out["integrated"][~present] = 0.0
    out["std"][present] = np.sqrt(var)
    out["min"][present] = sorted_values[starts]
    out["max"][present] = sorted_values[ends - 1]
    lo = starts + (c - 1) // 2
    hi = starts + c // 2
    out["median"][present] = 0.5 * (sorted_values[lo] + sorted_values[hi])
    return out


# --------------------------------------------------------------------------
# shape helpers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Runs:
    """Horizontal runs of equal label (raster order) and the object border pixels.

    ``row, c0, c1`` are the row and first/last column of every run, ``label``
    its label id; ``border`` are flat indices into the one-pixel padded label
    image of the pixels that have a 4-neighbour with another label (or
    background), ``border_label`` their labels.
    """

    row: np.ndarray
    c0: np.ndarray
    c1: np.ndarray
    label: np.ndarray
    border: np.ndarray
    border_label: np.ndarray

    @classmethod
    def from_padded(cls, padded: np.ndarray) -> _Runs:
        w = padded.shape[1] - 2
        wp = w + 2
        c = padded[1:-1, 1:-1]
        mask = padded[:-2, 1:-1] != c
        mask |= padded[2:, 1:-1] != c
        mask |= padded[1:-1, :-2] != c
        mask |= padded[1:-1, 2:] != c
        mask &= c != 0
        flat = np.flatnonzero(mask)
        # index in the padded image: (row + 1) * wp + col + 1 = flat + 2 * row + wp + 1
        pidx = flat + 2 * (flat // w) + (wp + 1)
        pflat = padded.ravel()
        own = pflat[pidx]
        first = pflat[pidx - 1] != own
        last = pflat[pidx + 1] != own
        starts = pidx[first]
        ends = pidx[last]
        row = starts // wp
        return cls(
            row=(row - 1).astype(np.int64),
            c0=(starts - row * wp - 1).astype(np.int64),
            c1=(ends - (ends // wp) * wp - 1).astype(np.int64),
            label=own[first],
            border=pidx,
            border_label=own,
        )

    def index(self, width: int) -> tuple[_LabelIndex, np.ndarray]:
        """The :class:`_LabelIndex` of the objects, and the rank of every run."""
        values = self.label
        length = self.c1 - self.c0 + 1
        if values.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return _LabelIndex(empty, empty, np.zeros(0, dtype=np.intp), empty, None), empty
        top = int(values.max())
        if top <= 64 * values.size + 65536:
            seen = np.zeros(top + 1, dtype=bool)
            seen[values] = True
            ids = np.flatnonzero(seen)
            lut = np.full(top + 1, -1, dtype=np.intp)
            lut[ids] = np.arange(ids.size)
            rank = lut[values]
        else:
            ids, rank = np.unique(values, return_inverse=True)
            lut = None
        counts = np.bincount(rank, weights=length, minlength=ids.size).astype(np.int64)
        total = int(length.sum())
        offsets = np.cumsum(length) - length
        fg = np.repeat(self.row * width + self.c0 - offsets, length)
        fg += np.arange(total, dtype=fg.dtype)
        group = np.repeat(rank, length)
        index = _LabelIndex(ids.astype(np.int64), fg, group, counts, lut)
        return index, rank


def _perimeters(padded: np.ndarray, runs: _Runs, index: _LabelIndex) -> np.ndarray:
    """skimage.measure.perimeter (4-connectivity) of every object at once.

    skimage convolves the object's border pixels with [[10, 2, 10], [2, 1, 2],
    [10, 2, 10]] and weights the codes; the same code is built here for every
    border pixel from its neighbours that are border pixels of the same label.
    """
    wp = padded.shape[1]
    pidx = runs.border
    own = runs.border_label
    border_labels = np.zeros(padded.size, dtype=padded.dtype)
    border_labels[pidx] = own
    code = np.ones(pidx.size, dtype=np.intp)
    for off in (-wp, wp, -1, 1):
        code += 2 * (border_labels[pidx + off] == own)
    for off in (-wp - 1, -wp + 1, wp - 1, wp + 1):
        code += 10 * (border_labels[pidx + off] == own)
    weights = _PERIMETER_WEIGHTS[code]
    return np.bincount(index.rank_of(own), weights=weights, minlength=index.n)


def _moments(runs: _Runs, rank: np.ndarray, index: _LabelIndex):
    """Centroid (row, col) and central second moments of every object, from its runs.

    Raw moments are summed exactly in integers, relative to the first pixel of
    each object (a run ``c0..c1`` contributes ``sum c**2 = S(c1) - S(c0 - 1)``
    with ``S(k) = k (k + 1) (2k + 1) / 6``), so symmetric objects get exactly
    equal moments, as in skimage.
    """
    n = index.n
    # first run of each object in raster order starts at its top-left pixel
    order_first = np.full(n, rank.size, dtype=np.int64)
    np.minimum.at(order_first, rank, np.arange(rank.size, dtype=np.int64))
    ref_r = runs.row[order_first][rank]
    ref_c = runs.c0[order_first][rank]
    r = runs.row - ref_r
    a = runs.c0 - ref_c
    b = runs.c1 - ref_c
    length = b - a + 1

    def s2(k):
        return k * (k + 1) * (2 * k + 1) // 6

    sum_c = length * (a + b) // 2
    sum_cc = s2(b) - s2(a - 1)
    area = index.counts.astype(np.float64)
    m_r = np.bincount(rank, weights=length * r, minlength=n)
    m_c = np.bincount(rank, weights=sum_c, minlength=n)
    m_rr = np.bincount(rank, weights=length * r * r, minlength=n)
    m_cc = np.bincount(rank, weights=sum_cc, minlength=n)
    m_rc = np.bincount(rank, weights=r * sum_c, minlength=n)
    rbar = m_r / area
    cbar = m_c / area
    mu_rr = m_rr - m_r * rbar
    mu_cc = m_cc - m_c * cbar
    mu_rc = m_rc - m_r * cbar
    first_row = runs.row[order_first].astype(np.float64)
    first_col = runs.c0[order_first].astype(np.float64)
    return first_row + rbar, first_col + cbar, mu_rr, mu_cc, mu_rc


def _lower_envelope(g: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Mask of the vertices of the lower convex envelope of v(u), per group.

    Points must be sorted by group then strictly increasing ``u``; integer
    coordinates make every test exact. A point that is not strictly below the
    chord of its current neighbours can never be an envelope vertex, so all
    such points are removed at once; repeat until nothing changes. Groups that
    stopped changing are set aside so later passes only touch the few groups
    that still change (round objects need ~4 passes).
    """
    alive = np.zeros(u.size, dtype=bool)
    pos = np.arange(u.size)
    while u.size >= 3:
        same = (g[:-2] == g[1:-1]) & (g[2:] == g[1:-1])
        ua, ub, uc = u[:-2], u[1:-1], u[2:]
        va, vb, vc = v[:-2], v[1:-1], v[2:]
        cross = (ub - ua) * (vc - va) - (vb - va) * (uc - ua)
        remove = same & (cross <= 0)
        if not remove.any():
            break
        keep = np.ones(u.size, dtype=bool)
        keep[1:-1] = ~remove
        # only groups that lost a point can still change
        changed = np.unique(g[1:-1][remove])
        active = _in_sorted(g, changed)
        alive[pos[~active]] = True
        sel = keep & active
        g, u, v, pos = g[sel], u[sel], v[sel], pos[sel]
    alive[pos] = True
    return alive


def _in_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin`` for a sorted, non-empty ``sorted_set``."""
    where = np.searchsorted(sorted_set, values)
    where = np.minimum(where, sorted_set.size - 1)
    return sorted_set[where] == values


def _convex_areas(runs: _Runs, rank: np.ndarray, n: int, height: int) -> np.ndarray:
    """Pixel count of skimage's ``convex_hull_image`` of every object at once.

    skimage takes the convex hull of the pixel-edge midpoints (each pixel
    centre +/- 0.5 along each axis) and counts the pixel centres inside or on
    that polygon. The hull of those points equals the hull of the points of
    the left-most and right-most pixel of each row, so per object and row we
    keep (row - 1/2, cl), (row, cl - 1/2), (row + 1/2, cl) on the left and the
    mirror points on the right, take the lower convex envelope of x(y) for the
    left chain and of -x(y) for the right chain (exact integer arithmetic on
    doubled coordinates), and count the integer columns between both chains on
    every integer row of the object's row range.
    """
    h = height
    key = rank.astype(np.int64) * h + runs.row
    order = np.argsort(key, kind="stable")  # runs of a row stay left to right
    key = key[order]
    first = np.ones(key.size, dtype=bool)
    first[1:] = key[1:] != key[:-1]
    last = np.ones(key.size, dtype=bool)
    last[:-1] = key[1:] != key[:-1]
    cl = runs.c0[order][first]
    cr = runs.c1[order][last]
    run_key = key[first]
    grp = run_key // h
    row = run_key - grp * h

    two_r = 2 * row
    u = np.stack([two_r - 1, two_r, two_r + 1], axis=1).ravel()
    gg = np.repeat(grp, 3)
    vl = np.stack([2 * cl, 2 * cl - 1, 2 * cl], axis=1).ravel()
    vr = np.stack([-2 * cr, -2 * cr - 1, -2 * cr], axis=1).ravel()
    # consecutive rows share the half-row point: keep the outermost one
    dup = (gg[1:] == gg[:-1]) & (u[1:] == u[:-1])
    if dup.any():
        d = np.flatnonzero(dup)
        vl[d] = np.minimum(vl[d], vl[d + 1])
        vr[d] = np.minimum(vr[d], vr[d + 1])
        keep = np.ones(u.size, dtype=bool)
        keep[d + 1] = False
        u, gg, vl, vr = u[keep], gg[keep], vl[keep], vr[keep]

    # integer rows spanned by each object
    rfirst = np.ones(grp.size, dtype=bool)
    rfirst[1:] = grp[1:] != grp[:-1]
    rlast = np.ones(grp.size, dtype=bool)
    rlast[:-1] = grp[1:] != grp[:-1]
    rmin = np.zeros(n, dtype=np.int64)
    rmax = np.full(n, -1, dtype=np.int64)
    rmin[grp[rfirst]] = row[rfirst]
    rmax[grp[rlast]] = row[rlast]
    nrows = rmax - rmin + 1
    total = int(nrows.sum())
    qgrp = np.repeat(np.arange(n, dtype=np.int64), nrows)
    qu = np.arange(total, dtype=np.int64) + np.repeat(rmin - (np.cumsum(nrows) - nrows), nrows)
    qu *= 2

    stride = 2 * h + 3  # u + 1 lies in [0, 2h + 2]
    qkey = qgrp * stride + (qu + 1)

    def _chain_at_rows(v: np.ndarray):
        keep = _lower_envelope(gg, u, v)
        eg, eu, ev = gg[keep], u[keep], v[keep]
        j = np.searchsorted(eg * stride + (eu + 1), qkey, side="right") - 1
        ua, va = eu[j], ev[j]
        uc, vc = eu[j + 1], ev[j + 1]
        den = uc - ua
        num = va * den + (vc - va) * (qu - ua)
        return num, 2 * den  # chain x at the row = num / (2 den)

    ln, ld = _chain_at_rows(vl)
    rn, rd = _chain_at_rows(vr)
    col_min = -((-ln) // ld)  # ceil(x_left)
    col_max = (-rn) // rd  # floor(x_right); the right chain stores -x
    per_row = np.maximum(col_max - col_min + 1, 0)
    return np.bincount(qgrp, weights=per_row, minlength=n)


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


def _empty_frame(channels: list[str]) -> pd.DataFrame:
    data: dict[str, np.ndarray] = {}
    for col in SHAPE_COLUMNS:
        data[col] = np.zeros(0, dtype=np.int64 if col in _INT_COLUMNS else np.float64)
    for ch in channels:
        for suffix in INTENSITY_SUFFIXES:
            dtype = np.int64 if suffix == "saturated_px" else np.float64
            data[f"{ch}_{suffix}"] = np.zeros(0, dtype=dtype)
    return pd.DataFrame(data)


def measure_objects(
    labels: np.ndarray,
    intensities: Mapping[str, np.ndarray],
    *,
    pixel_size_um: float | None = None,
    saturation_value: float | None = None,
) -> pd.DataFrame:
    """Measure shape and intensity of every object in one 2-D label image.

    Parameters
    ----------
    labels : (M, N) ndarray of int
        Label image of one frame; 0 is background, ids need not be contiguous.
    intensities : mapping of str to (M, N) ndarray
        ``{channel name: image}``; integer or float images of the same shape.
        Columns are emitted in the mapping's order.
    pixel_size_um : float, optional
        Pixel size in micrometres. When None, every ``*_um``/``*_um2`` column
        is NaN (the column set stays the same).
    saturation_value : float, optional
        Pixels ``>=`` this value count as saturated. When None the
        ``<ch>_saturated_px`` columns are 0.

    Returns
    -------
    pandas.DataFrame
        One row per label present, sorted by label, with columns
        :data:`SHAPE_COLUMNS` followed, for every channel ``<ch>``, by
        ``<ch>_mean, <ch>_median, <ch>_integrated, <ch>_std, <ch>_min,
        <ch>_max, <ch>_saturated_px``. An empty label image gives an empty
        table with the same columns.

    Raises
    ------
    InputError
        If ``labels`` is not a 2-D non-negative integer image, an intensity
        image has another shape or a non-numeric dtype, a float image has
        NaN/inf pixels inside an object, or ``pixel_size_um`` is not positive.

    Notes
    -----
    Shape columns follow :func:`skimage.measure.regionprops` exactly:

    * ``x, y``: centroid (column, row) in pixels, not intensity weighted.
    * ``perimeter_px``: ``regionprops.perimeter`` (4-connectivity contour
      estimate of Benkrid & Crookes, computed on the object alone).
    * ``major_axis_px, minor_axis_px``: ``4 * sqrt(eigenvalue)`` of the inertia
      tensor built from the second central moments; ``eccentricity`` =
      ``sqrt(1 - l2 / l1)``; ``orientation`` = angle in radians between the
      row axis (axis 0) and the major axis, in ``[-pi/2, pi/2]``.
    * ``solidity``: area / pixel count of ``skimage.morphology.convex_hull_image``
      (hull of the pixel-edge midpoints, pixel centres on the hull included),
      reproduced exactly with integer arithmetic and no per-object loop.
    * ``equivalent_diameter_px`` = ``sqrt(4 * area / pi)``.

    Moments are summed exactly in integers, so two float-rounding ambiguities
    of skimage resolve deterministically here: an object with equal
    eigenvalues (e.g. a square) gets skimage's ``-pi/4`` (``pi/4`` if
    ``mu_rc > 0``) exactly, and an object whose major axis is exactly
    horizontal always gets ``+pi/2`` (skimage returns ``+pi/2`` or ``-pi/2``,
    the same axis, depending on rounding).

    Intensity statistics are float64 over the object's pixels; ``std`` is the
    population standard deviation (ddof=0); ``median`` averages the two
    middle values for an even pixel count (as :func:`numpy.median`).
    """
    labels = _check_labels(labels)
    channels = _check_intensities(intensities, labels.shape)
    if pixel_size_um is not None:
        if not _is_real(pixel_size_um) or not np.isfinite(pixel_size_um) or pixel_size_um <= 0:
            raise InputError(
                f"pixel_size_um: must be a positive number of micrometres, got {pixel_size_um!r}; "
                "set it from the image metadata or leave it unset"
            )
        px = float(pixel_size_um)
    else:
        px = np.nan
    if saturation_value is not None and (
        not _is_real(saturation_value) or not np.isfinite(saturation_value)
    ):
        raise InputError(
            f"saturation_value: must be a finite number, got {saturation_value!r}; "
            "use the camera's maximum value (e.g. 4095 or 65535) or leave it unset"
        )

    h, w = labels.shape
    padded = np.pad(labels, 1)
    runs = _Runs.from_padded(padded)
    index, run_rank = runs.index(w)
    if index.n == 0:
        return _empty_frame(list(channels))
    n = index.n
    counts = index.counts
    countsf = counts.astype(np.float64)
    group = index.group

    rbar, cbar, mu_rr, mu_cc, mu_rc = _moments(runs, run_rank, index)
    # skimage inertia tensor [[a, b], [b, c]]
    a = mu_cc / countsf
    b = -mu_rc / countsf
    c = mu_rr / countsf
    half_tr = 0.5 * (a + c)
    root = np.sqrt((0.5 * (a - c)) ** 2 + b * b)
    l1 = np.clip(half_tr + root, 0.0, None)
    l2 = np.clip(half_tr - root, 0.0, None)
    major = 4.0 * np.sqrt(l1)
    minor = 4.0 * np.sqrt(l2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ecc = np.where(l1 == 0, 0.0, np.sqrt(np.clip(1.0 - l2 / l1, 0.0, None)))
    orientation = np.where(
        a - c == 0,
        np.where(b < 0, np.pi / 4.0, -np.pi / 4.0),
        0.5 * np.arctan2(-2.0 * b, c - a),
    )

    perimeter = _perimeters(padded, runs, index)
    convex = _convex_areas(runs, run_rank, n, h)
    solidity = countsf / convex
    eqd = np.sqrt(4.0 * countsf / np.pi)

    data: dict[str, np.ndarray] = {
        "label": index.ids.astype(np.int64),
        "x": cbar,
        "y": rbar,
        "x_um": cbar * px,
        "y_um": rbar * px,
        "area_px": counts.astype(np.int64),
        "area_um2": countsf * px * px,
        "perimeter_px": perimeter,
        "perimeter_um": perimeter * px,
        "equivalent_diameter_px": eqd,
        "equivalent_diameter_um": eqd * px,
        "major_axis_px": major,
        "major_axis_um": major * px,
        "minor_axis_px": minor,
        "minor_axis_um": minor * px,
        "eccentricity": ecc,
        "solidity": solidity,
        "orientation": orientation,
    }

    for channel, image in channels.items():
        values = image.ravel()[index.fg]
        _check_finite(values, f"intensities[{channel!r}]")
        ordered = _sort_within_groups(values, group, n)
        stats = _grouped_stats(ordered, counts)
        for suffix in ("mean", "median", "integrated", "std", "min", "max"):
            data[f"{channel}_{suffix}"] = stats[suffix]
        if saturation_value is None:
            sat = np.zeros(n, dtype=np.int64)
        else:
            hot = ordered >= saturation_value
            sat = np.bincount(np.repeat(np.arange(n), counts)[hot], minlength=n).astype(np.int64)
        data[f"{channel}_saturated_px"] = sat

    return pd.DataFrame(data)


def saturation_level(dtype: np.dtype, saturation_value: float | None = None) -> float | None:
    """The value at which pixels count as saturated: ``saturation_value`` when
    given, else the maximum of an integer ``dtype`` (None for float images)."""
    if saturation_value is not None:
        return float(saturation_value)
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        return float(np.iinfo(dtype).max)
    return None


def measure_stack(
    labels: np.ndarray,
    data: np.ndarray,
    channels: list[str],
    *,
    pixel_size_um: float | None = None,
    saturation_value: float | None = None,
    rods: bool = False,
) -> pd.DataFrame:
    """:func:`measure_objects` for every frame of a movie.

    Parameters
    ----------
    labels : (T, Y, X) ndarray of int
        Objects of every frame.
    data : (T, C, Y, X) ndarray
        The image; ``channels`` names its C axis.
    pixel_size_um, saturation_value
        As in :func:`measure_objects`.
    rods : bool
        Add pole-to-pole ``length`` and ``width`` of rods
        (:func:`snakescope.rods.rod_dimensions`).

    Returns
    -------
    DataFrame
        Column ``frame`` followed by the columns of :func:`measure_objects`.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or data.ndim != 4 or labels.shape[0] != data.shape[0] or labels.shape[1:] != data.shape[2:]:
        raise InputError(f"measure_stack: labels {labels.shape} (TYX) do not match data {data.shape} (TCYX)")
    if len(channels) != data.shape[1]:
        raise InputError(f"measure_stack: {len(channels)} channel names for {data.shape[1]} channels")
    tables = []
    for t in range(labels.shape[0]):
        intensities = {ch: data[t, c] for c, ch in enumerate(channels)}
        table = measure_objects(labels[t], intensities, pixel_size_um=pixel_size_um, saturation_value=saturation_value)
        if rods:
            from . import rods as rod_shapes

            table = table.merge(rod_shapes.rod_dimensions(labels[t], pixel_size_um=pixel_size_um), on="label",
                                how="left")
        table.insert(0, "frame", t)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)
