"""Cytoplasmic rings around nuclei and cytoplasm/nucleus (C/N) ratios.

Kinase translocation reporters (KTRs) report activity as the ratio of the
reporter intensity in a thin cytoplasmic ring around the nucleus to the
intensity in the nucleus (CellTK; Goedhart et al. protocols). This module
builds the rings (:func:`ring_labels`), subtracts background
(:func:`subtract_background`) and computes per-nucleus ring statistics and C/N
ratios (:func:`ring_stats`), all vectorised over label ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import ceil, floor, isfinite

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from snakescope.errors import InputError
from snakescope.measure import (
    _check_finite,
    _check_intensities,
    _check_labels,
    _grouped_stats,
    _is_real,
    _LabelIndex,
    _sort_within_groups,
)

__all__ = [
    "ring_labels",
    "subtract_background",
    "ring_stats",
    "BACKGROUND_METHODS",
    "CN_REASONS",
]

#: Valid ``method`` values of :func:`subtract_background`.
BACKGROUND_METHODS: tuple[str, ...] = ("none", "constant", "percentile", "rolling_ball")

#: Values of the ``cn_reason`` column of :func:`ring_stats` ("" = valid ratio).
CN_REASONS: tuple[str, ...] = ("", "no_ring", "ring_too_small", "nucleus_nonpositive")

_RING_STATISTICS = ("mean", "median")

# Above this search radius (px) one scipy EDT is cheaper than the bounded transform.
_BOUNDED_MAX_RADIUS = 32


# --------------------------------------------------------------------------
# nearest nucleus
# --------------------------------------------------------------------------


def _key_dtype(r: int, lbits: int):
    """Smallest unsigned dtype holding ``((r+1)**2 + r**2) * 2**lbits``, or None."""
    need = ((r + 1) ** 2 + r * r) << lbits
    for dtype in (np.uint16, np.uint32, np.uint64):
        if need <= np.iinfo(dtype).max:
            return dtype
    return None


class _NearestKeys:
    """Nearest nucleus of every pixel, packed as ``key = d**2 * M + rank``.

    ``buf`` is a flat buffer laid out as ``(h + 2 * pad, w + pad)``: ``pad``
    rows of padding above and below and ``pad`` columns right of every row
    (which also act as the left padding of the next row), so that any shift
    by ``dy * wp + dx`` with ``|dy|, |dx| <= pad`` is a contiguous 1-D slice
    that never mixes rows. ``rank`` is the label id itself, or an index into
    ``ids`` when compact ranks give a smaller key dtype. Padding and pixels
    with no nucleus within the search radius hold ``key >= inf``. Ties go to
    the smaller id.
    """

    def __init__(self, labels: np.ndarray, radius: float, pad: int, use_edt: bool) -> None:
        h, w = labels.shape
        r = max(int(floor(radius)), 0)
        pad = max(pad, r if not use_edt else 0)
        top = int(labels.max())
        ids = None
        values = labels
        rank_bits = lambda k: max(int(k).bit_length(), 1)  # noqa: E731
        ktype = _key_dtype(r, rank_bits(top))
        if ktype is not np.uint16:
            # compact ranks 1..n may fit a smaller key than the raw ids
            small_ids = top <= 4 * labels.size + 65536
            if small_ids:
                present = np.flatnonzero(np.bincount(labels.ravel(), minlength=top + 1))
            else:
                present = np.unique(labels)
            present = present[present > 0].astype(np.int64)
            rtype = _key_dtype(r, rank_bits(present.size))
            if rtype is not None and (
                ktype is None or np.dtype(rtype).itemsize < np.dtype(ktype).itemsize
            ):
                ids = np.concatenate([[0], present])
                if small_ids:
                    lut = np.zeros(top + 1, dtype=np.int64)
                    lut[ids] = np.arange(ids.size)
                    values = lut[labels]
                else:
                    values = np.searchsorted(ids, labels)
                ktype, top = rtype, int(present.size)
        if ktype is None:
            raise InputError(
                "labels: too many labels for the ring transform; relabel to consecutive ids "
                "(skimage.segmentation.relabel_sequential)"
            )
        self.lbits = rank_bits(top)
        self.mult = 1 << self.lbits
        self.ktype = ktype
        self.inf = ((r + 1) ** 2) << self.lbits  # keys >= inf: nothing within r
        self.ids = ids
        self.pad = pad
        self.shape = (h, w)
        self.wp = w + pad
        hp = h + 2 * pad
        inf = ktype(self.inf)
        buf = np.full((hp, self.wp), inf, dtype=ktype)
        inner = buf[pad : pad + h, :w]
        if use_edt:
            sqdist, nearest = _nearest_label_edt(values, radius)
            key = (sqdist.astype(np.uint64) << np.uint64(self.lbits)) | nearest.astype(np.uint64)
            key[(nearest == 0) | (sqdist > radius * radius)] = self.inf
            inner[...] = key.astype(ktype)
            self.buf = buf.ravel()
            return
        np.copyto(inner, values, where=values > 0, casting="unsafe")
        col = buf.ravel()
        base = col.copy()
        tmp = np.empty_like(col)
        wp = self.wp
        for dy in range(1, r + 1):
            s = dy * wp
            np.add(base, ktype((dy * dy) << self.lbits), out=tmp)
            np.minimum(col[:-s], tmp[s:], out=col[:-s])
            np.minimum(col[s:], tmp[:-s], out=col[s:])
        out = col.copy()
        for dx in range(1, r + 1):
            np.add(col, ktype((dx * dx) << self.lbits), out=tmp)
            np.minimum(out[:-dx], tmp[dx:], out=out[:-dx])
            np.minimum(out[dx:], tmp[:-dx], out=out[dx:])
        # padding columns picked up real keys from their neighbours: reset them
        out2 = out.reshape(hp, wp)
        out2[:, w:] = inf
        out2[:pad] = inf
        out2[pad + h :] = inf
        self.buf = out

    def view(self, flat: np.ndarray) -> np.ndarray:
        """The (h, w) image part of a flat buffer with this layout."""
        h, w = self.shape
        return flat.reshape(h + 2 * self.pad, self.wp)[self.pad : self.pad + h, :w]

    def key_below(self, sq: float):
        """Smallest key whose squared distance exceeds ``sq`` (d**2 is an integer)."""
        return self.ktype(min((int(floor(sq + 1e-9)) + 1) << self.lbits, self.inf))


def _nearest_label_bounded(labels: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """``(sqdist, nearest)`` from :class:`_NearestKeys` (nearest = 0 beyond ``radius``)."""
    keys = _NearestKeys(labels, radius, 0, use_edt=False)
    key = keys.view(keys.buf).astype(np.int64)
    sqdist = key >> keys.lbits
    nearest = key & (keys.mult - 1)
    if keys.ids is not None:
        nearest = keys.ids[nearest]
    nearest[(key >= keys.inf) | (sqdist > radius * radius)] = 0
    return sqdist, nearest


def _nearest_label_edt(labels: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """``(sqdist, nearest)`` via one scipy EDT with indices (nearest = 0 beyond ``radius``)."""
    if not (labels > 0).any():
        zeros = np.zeros(labels.shape, dtype=np.int64)
        return zeros, zeros.copy()
    rows, cols = ndi.distance_transform_edt(labels == 0, return_distances=False, return_indices=True)
    nearest = labels[rows, cols].astype(np.int64)
    rr = np.arange(labels.shape[0])[:, None]
    cc = np.arange(labels.shape[1])[None, :]
    sqdist = (rows - rr).astype(np.int64) ** 2 + (cols - cc).astype(np.int64) ** 2
    nearest[sqdist > radius * radius] = 0
    return sqdist, nearest


def _disk_offsets(radius: float) -> list[tuple[int, int]]:
    """Integer offsets ``(dy, dx) != (0, 0)`` with ``dy**2 + dx**2 < radius**2``."""
    r = int(ceil(radius))
    return [
        (dy, dx)
        for dy in range(-r, r + 1)
        for dx in range(-r, r + 1)
        if (dy or dx) and dy * dy + dx * dx < radius * radius
    ]


def ring_labels(
    labels: np.ndarray,
    *,
    inner_px: float = 1.0,
    width_px: float = 3.0,
    buffer_px: float = 2.0,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """Cytoplasmic ring of every nucleus in one 2-D frame.

    Parameters
    ----------
    labels : (M, N) ndarray of int
        Nuclear label image (0 = background).
    inner_px : float, optional
        Gap between nucleus and ring: ring pixels are farther than this from
        their nucleus (Euclidean distance between pixel centres).
    width_px : float, optional
        Ring width: ring pixels are at most ``inner_px + width_px`` from their
        nucleus.
    buffer_px : float, optional
        Width of the no-man's land between the territories of two nuclei; see
        Notes. 0 disables it.
    allowed : (M, N) ndarray of bool, optional
        Cell-body / foreground mask; ring pixels where it is False are dropped.

    Returns
    -------
    (M, N) ndarray
        Ring label image with the dtype of ``labels``; each ring pixel holds
        the id of its nucleus, other pixels are 0.

    Raises
    ------
    InputError
        For a non-integer or non-2-D ``labels``, ``width_px <= 0``,
        ``inner_px < 0``, ``buffer_px < 0``, ``inner_px + width_px`` not
        smaller than the image, or an ``allowed`` mask of another shape.

    Notes
    -----
    A background pixel belongs to the ring of its nearest nucleus when its
    distance ``d1`` to that nucleus is in ``(inner_px, inner_px + width_px]``.

    Buffer zone: the exact rule "drop pixels whose second-nearest nucleus is
    almost as close, ``d2 - d1 < buffer_px``" would need a second-order
    distance transform. Instead the nearest-nucleus map is used as a Voronoi
    partition of the frame into territories, and a pixel is dropped when a
    pixel of another nucleus' territory lies closer than
    ``buffer_px / 2 + 0.5`` (pixel centre to pixel centre; the territory
    boundary runs half a pixel beyond the last pixel). Because ``d2 - d1 <=
    2 * (distance to the boundary)``, every dropped pixel has ``d2 - d1 <
    buffer_px + 1``; between two flat facing nuclei the rule equals the exact
    one (one extra pixel where an equidistant middle column exists), off that
    line it drops slightly fewer pixels than the exact rule. It guarantees
    that ring pixels of different nuclei are at least ``buffer_px / 2 + 0.5``
    px apart (default: no two rings touch, even diagonally) and that no pixel
    belongs to two cells.

    The nearest nucleus is found with an exact Euclidean transform bounded to
    ``inner_px + width_px + buffer_px / 2 + 0.5`` px (a separable min-plus pass
    on packed ``(distance**2, label)`` keys: ~8 ms instead of ~80 ms for
    ``scipy.ndimage.distance_transform_edt`` on a 1024 x 1024 frame); radii
    above 32 px fall back to one ``distance_transform_edt(...,
    return_indices=True)``.
    Equidistant pixels go to the smaller label id.
    """
    labels = _check_labels(labels)
    for name, value in (("inner_px", inner_px), ("width_px", width_px), ("buffer_px", buffer_px)):
        if not _is_real(value) or not isfinite(value):
            raise InputError(f"{name}: must be a finite number of pixels, got {value!r}")
    if width_px <= 0:
        raise InputError(f"width_px: ring width must be > 0 px, got {width_px!r}; use e.g. 3")
    if inner_px < 0:
        raise InputError(f"inner_px: gap to the nucleus must be >= 0 px, got {inner_px!r}; use e.g. 1")
    if buffer_px < 0:
        raise InputError(f"buffer_px: must be >= 0 px, got {buffer_px!r}; use 0 to disable the buffer")
    outer = float(inner_px) + float(width_px)
    if labels.size == 0 or outer >= max(labels.shape):
        raise InputError(
            f"width_px: inner_px + width_px = {outer:g} px is not smaller than the image "
            f"{labels.shape}; use a ring of a few pixels"
        )
    if allowed is not None:
        allowed = np.asarray(allowed)
        if allowed.shape != labels.shape:
            raise InputError(
                f"allowed: mask shape {allowed.shape} differs from labels shape {labels.shape}; "
                "pass the cell-body mask of the same frame"
            )
        allowed = allowed.astype(bool, copy=False)

    rings = np.zeros_like(labels)
    if not labels.any():
        return rings

    reach = float(buffer_px) / 2.0 + 0.5  # neighbours strictly closer than this
    offsets = _disk_offsets(reach)
    pad = max((max(abs(dy), abs(dx)) for dy, dx in offsets), default=0)
    search = outer + (reach if offsets else 0.0)
    keys = _NearestKeys(labels, search, pad, use_edt=search > _BOUNDED_MAX_RADIUS)
    buf = keys.buf
    lo = keys.key_below(inner_px * inner_px)  # d**2 > inner**2
    hi = keys.key_below(outer * outer)  # d**2 <= outer**2
    cand = buf >= lo
    cand &= buf < hi
    if offsets:
        # territory = nearest nucleus (rank) within the search radius, 0 elsewhere
        known = buf < keys.key_below(search * search)
        terr = buf & keys.ktype(keys.mult - 1)
        terr[~known] = 0
        bad = np.zeros(buf.size, dtype=bool)
        for dy, dx in offsets:
            s = dy * keys.wp + dx
            if s <= 0:
                continue  # each pair of opposite offsets is handled once
            diff = terr[s:] != terr[:-s]
            diff &= known[s:]
            diff &= known[:-s]
            bad[:-s] |= diff
            bad[s:] |= diff
        cand &= ~bad
    cand2d = keys.view(cand)
    if allowed is not None:
        cand2d = cand2d & allowed
    owner = keys.view(buf)[cand2d] & keys.ktype(keys.mult - 1)
    if keys.ids is not None:
        owner = keys.ids[owner]
    rings[cand2d] = owner.astype(labels.dtype, copy=False)
    return rings


# --------------------------------------------------------------------------
# background
# --------------------------------------------------------------------------


def _rolling_ball_background(image: np.ndarray, radius_px: float) -> np.ndarray:
    """Rolling-ball background, computed on a block-minimum downsampled image.

    The frame is reduced by a factor ``f = max(1, round(radius_px / 10))``
    with the minimum of each ``f x f`` block (so the background stays below the
    image), the exact ball of radius ``radius_px`` is sampled on the coarse
    grid (spatial step ``f``, intensity radius ``radius_px``) and rolled with
    :func:`skimage.restoration.rolling_ball`, then bilinearly interpolated
    back to full size and clipped to the image. The ball only models
    structures larger than ~``radius_px``, so the coarse grid costs little
    accuracy while cutting the work by ``f**4``.
    """
    from skimage.restoration import rolling_ball

    img = image.astype(np.float32, copy=False)
    h, w = img.shape
    f = max(1, int(round(radius_px / 10.0)))
    if f > 1:
        hp, wp = -(-h // f) * f, -(-w // f) * f
        big = float(np.max(img))
        padded = np.full((hp, wp), big, dtype=np.float32)
        padded[:h, :w] = img
        small = padded.reshape(hp // f, f, wp // f, f).min(axis=(1, 3))
    else:
        small = img
    rs = int(ceil(radius_px / f))
    k = np.arange(-rs, rs + 1, dtype=np.float64) * f
    sq = k[:, None] ** 2 + k[None, :] ** 2
    kernel = np.sqrt(np.clip(radius_px * radius_px - sq, 0.0, None))
    kernel[sq > radius_px * radius_px] = np.inf
    bg_small = rolling_ball(small, kernel=kernel.astype(np.float32))
    if f == 1:
        return np.minimum(bg_small, img)

    def _axis_weights(n_out: int, n_in: int):
        pos = (np.arange(n_out, dtype=np.float64) - (f - 1) / 2.0) / f
        pos = np.clip(pos, 0.0, n_in - 1.0)
        i0 = np.minimum(np.floor(pos).astype(np.intp), max(n_in - 2, 0))
        i1 = np.minimum(i0 + 1, n_in - 1)
        t = (pos - i0).astype(np.float32)
        return i0, i1, t

    r0, r1, tr = _axis_weights(h, bg_small.shape[0])
    c0, c1, tc = _axis_weights(w, bg_small.shape[1])
    rows = bg_small[r0] * (1 - tr)[:, None] + bg_small[r1] * tr[:, None]
    full = rows[:, c0] * (1 - tc)[None, :] + rows[:, c1] * tc[None, :]
    return np.minimum(full, img)


def subtract_background(
    image: np.ndarray,
    *,
    method: str = "none",
    value: float = 0.0,
    percentile: float = 1.0,
    radius_px: float = 50.0,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Subtract the background of one 2-D image.

    Parameters
    ----------
    image : (M, N) ndarray
        Intensity image (integer or float).
    method : {"none", "constant", "percentile", "rolling_ball"}
        ``none``: no subtraction. ``constant``: subtract ``value``.
        ``percentile``: subtract the ``percentile``-th percentile of the pixels
        not in ``exclude``. ``rolling_ball``: subtract a rolling-ball background
        of radius ``radius_px`` (spatially varying).
    value : float, optional
        Level subtracted by ``constant``.
    percentile : float, optional
        Percentile in [0, 100] used by ``percentile``.
    radius_px : float, optional
        Ball radius in pixels for ``rolling_ball`` (larger than the objects).
    exclude : (M, N) ndarray of bool, optional
        Pixels ignored by ``percentile`` (e.g. nuclei and rings, dilated).

    Returns
    -------
    corrected : (M, N) ndarray of float32
        ``image - background``; may be negative.
    level : float
        Scalar level subtracted (0.0 for ``none``); NaN for ``rolling_ball``,
        whose background varies across the image.

    Raises
    ------
    InputError
        Unknown method, non-2-D or non-numeric image, ``exclude`` of another
        shape or excluding every pixel, percentile outside [0, 100],
        non-positive ``radius_px``.

    Notes
    -----
    ``percentile`` ignores NaN/inf pixels. ``rolling_ball`` works on a
    block-minimum downsampled copy (factor ``round(radius_px / 10)``) and
    interpolates the background back: ~50 ms instead of ~10 s for the
    full-resolution :func:`skimage.restoration.rolling_ball` on a 1024 x 1024
    frame with ``radius_px=50`` (mean deviation from it ~1 grey level); the
    background is clipped to the image so the result is never below 0 there
    (up to float32 rounding).
    """
    if method not in BACKGROUND_METHODS:
        raise InputError(
            f"method: unknown background method {method!r}; use one of {', '.join(BACKGROUND_METHODS)}"
        )
    image = np.asarray(image)
    if image.ndim != 2:
        raise InputError(f"image: expected a 2-D image, got shape {image.shape}; pass one frame and channel")
    if image.dtype == bool or not (
        np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)
    ):
        raise InputError(f"image: unsupported dtype {image.dtype}; pass an integer or float image")
    img = image.astype(np.float32)

    if method == "none":
        return img, 0.0
    if method == "constant":
        if not _is_real(value) or not isfinite(value):
            raise InputError(f"value: background level must be finite, got {value!r}")
        img -= np.float32(value)
        return img, float(value)
    if method == "percentile":
        if not _is_real(percentile) or not (0.0 <= percentile <= 100.0):
            raise InputError(f"percentile: must be within [0, 100], got {percentile!r}; use e.g. 1")
        if exclude is not None:
            exclude = np.asarray(exclude)
            if exclude.shape != image.shape:
                raise InputError(
                    f"exclude: mask shape {exclude.shape} differs from image shape {image.shape}; "
                    "pass the object mask of the same frame"
                )
            pixels = image[~exclude.astype(bool, copy=False)]
        else:
            pixels = image.ravel()
        if pixels.dtype.kind == "f":
            pixels = pixels[np.isfinite(pixels)]
        if pixels.size == 0:
            raise InputError(
                "exclude: no (finite) background pixels left for the percentile; "
                "exclude less (e.g. a smaller dilation) or use method 'constant'"
            )
        level = float(np.percentile(pixels, percentile))
        img -= np.float32(level)
        return img, level
    # rolling_ball
    if not _is_real(radius_px) or not isfinite(radius_px) or radius_px <= 0:
        raise InputError(f"radius_px: rolling-ball radius must be > 0 px, got {radius_px!r}; use e.g. 50")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise InputError("image: NaN/inf pixels are not supported by rolling_ball; replace them first")
    img -= _rolling_ball_background(img, float(radius_px))
    return img, float("nan")


# --------------------------------------------------------------------------
# ring statistics and C/N ratio
# --------------------------------------------------------------------------


def ring_stats(
    nuclei: np.ndarray,
    rings: np.ndarray,
    intensities: Mapping[str, np.ndarray],
    *,
    reporters: Sequence[str],
    statistic: str = "mean",
    min_ring_px: int = 10,
) -> pd.DataFrame:
    """Ring intensity statistics and cytoplasm/nucleus ratios per nucleus.

    Parameters
    ----------
    nuclei : (M, N) ndarray of int
        Nuclear label image.
    rings : (M, N) ndarray of int
        Ring label image from :func:`ring_labels` (ring ids = nucleus ids).
    intensities : mapping of str to (M, N) ndarray
        ``{channel: image}``, normally background-subtracted.
    reporters : sequence of str
        Channels for which a C/N ratio ``cn_<ch>`` is computed.
    statistic : {"mean", "median"}
        Statistic of ring and nucleus used in the ratio.
    min_ring_px : int, optional
        Rings with fewer pixels give no ratio (``ring_too_small``).

    Returns
    -------
    pandas.DataFrame
        One row per nucleus label, sorted (nuclei without ring included):
        ``label, ring_area_px``, then ``<ch>_ring_mean, <ch>_ring_median``
        for every channel, ``cn_<ch>`` for every reporter and ``cn_reason``.

    Raises
    ------
    InputError
        Invalid label images or shapes, a reporter that is not a channel,
        an unknown statistic, ring ids without nucleus, NaN/inf pixels in a
        ring or nucleus.

    Notes
    -----
    ``cn_<ch> = ring statistic / nuclear statistic``. ``cn_reason`` is ""
    when every ratio of the row is valid, else the first reason that applies:
    ``no_ring`` (0 ring pixels), ``ring_too_small`` (``ring_area_px <
    min_ring_px``), ``nucleus_nonpositive`` (nuclear statistic <= 0 after
    background subtraction). The invalid ratios are NaN; with several
    reporters ``nucleus_nonpositive`` only blanks the reporters concerned.
    """
    nuclei = _check_labels(nuclei, "nuclei")
    rings = _check_labels(rings, "rings")
    if rings.shape != nuclei.shape:
        raise InputError(
            f"rings: shape {rings.shape} differs from nuclei shape {nuclei.shape}; "
            "compute the rings from these nuclei with ring_labels"
        )
    channels = _check_intensities(intensities, nuclei.shape)
    if isinstance(reporters, str):
        reporters = [reporters]
    reporters = list(reporters)
    for rep in reporters:
        if rep not in channels:
            raise InputError(
                f"reporters: channel {rep!r} not in intensities; available: {', '.join(channels) or 'none'}"
            )
    if statistic not in _RING_STATISTICS:
        raise InputError(f"statistic: unknown {statistic!r}; use one of {', '.join(_RING_STATISTICS)}")
    if isinstance(min_ring_px, bool) or not isinstance(min_ring_px, (int, np.integer)) or min_ring_px < 0:
        raise InputError(f"min_ring_px: must be an integer >= 0, got {min_ring_px!r}; use e.g. 10")

    nuc = _LabelIndex.from_labels(nuclei)
    n = nuc.n
    ring_fg = np.flatnonzero(rings.ravel())
    ring_group = nuc.rank_of(rings.ravel()[ring_fg])
    if (ring_group < 0).any():
        orphans = np.unique(rings.ravel()[ring_fg][ring_group < 0])
        shown = ", ".join(str(int(v)) for v in orphans[:5])
        raise InputError(
            f"rings: ring label(s) {shown} have no nucleus; compute the rings from these nuclei"
        )
    ring_area = np.bincount(ring_group, minlength=n).astype(np.int64)

    data: dict[str, object] = {
        "label": nuc.ids.astype(np.int64),
        "ring_area_px": ring_area,
    }
    ring_stat: dict[str, np.ndarray] = {}
    for channel, image in channels.items():
        values = image.ravel()[ring_fg]
        _check_finite(values, f"intensities[{channel!r}] (ring pixels)")
        stats = _grouped_stats(_sort_within_groups(values, ring_group, n), ring_area)
        mean, median = stats["mean"], stats["median"]
        data[f"{channel}_ring_mean"] = mean
        data[f"{channel}_ring_median"] = median
        ring_stat[channel] = mean if statistic == "mean" else median

    reason = np.full(n, "", dtype=object)
    nonpositive = np.zeros(n, dtype=bool)
    no_ring = ring_area == 0
    too_small = ~no_ring & (ring_area < min_ring_px)
    for rep in reporters:
        values = channels[rep].ravel()[nuc.fg]
        _check_finite(values, f"intensities[{rep!r}] (nucleus pixels)")
        if statistic == "mean":
            nuc_stat = np.bincount(nuc.group, weights=values.astype(np.float64), minlength=n)
            if n:
                nuc_stat /= nuc.counts
        else:
            nuc_stat = _grouped_stats(_sort_within_groups(values, nuc.group, n), nuc.counts)["median"]
        bad = nuc_stat <= 0
        nonpositive |= bad
        cn = np.full(n, np.nan)
        ok = ~(no_ring | too_small | bad)
        cn[ok] = ring_stat[rep][ok] / nuc_stat[ok]
        data[f"cn_{rep}"] = cn
    reason[nonpositive] = "nucleus_nonpositive"
    reason[too_small] = "ring_too_small"
    reason[no_ring] = "no_ring"
    data["cn_reason"] = reason
    return pd.DataFrame(data)


def erode_labels(labels: np.ndarray, *, radius_px: float) -> np.ndarray:
    """Shrink every object by ``radius_px`` (pixels within that distance of another
    label or of the background are set to 0); objects that vanish keep nothing.

    Used to measure the nuclear intensity away from the blurred nucleus edge.
    """
    labels = np.asarray(labels)
    if radius_px <= 0 or not labels.any():
        return labels.copy()
    r = int(floor(radius_px))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    footprint = (yy * yy + xx * xx) <= radius_px * radius_px
    if labels.ndim != 2 or labels.dtype.kind not in "iu":
        lo = ndi.minimum_filter(labels, footprint=footprint, mode="constant", cval=0)
        hi = ndi.maximum_filter(labels, footprint=footprint, mode="constant", cval=0)
        return np.where((lo == labels) & (hi == labels), labels, 0).astype(labels.dtype)
    # A pixel stays when every footprint pixel (0 outside the image) holds its
    # label: the minimum and maximum filters above, as one comparison per pair
    # of opposite offsets on a flat zero-padded buffer (r rows above and below,
    # r columns after every row, so a shift never wraps into another row).
    h, w = labels.shape
    wp = w + r
    buf = np.zeros((h + 2 * r, wp), dtype=labels.dtype)
    buf[r : r + h, :w] = labels
    flat = buf.ravel()
    bad = np.zeros(flat.size, dtype=bool)
    diff = np.empty(flat.size, dtype=bool)
    for dy, dx in zip(*np.nonzero(footprint)):
        s = int(dy - r) * wp + int(dx - r)
        if s <= 0:
            continue  # each pair of opposite offsets once
        d = diff[: flat.size - s]
        np.not_equal(flat[s:], flat[:-s], out=d)
        bad[s:] |= d
        bad[:-s] |= d
    out = labels.copy()
    out[bad.reshape(buf.shape)[r : r + h, :w]] = 0
    return out


# --------------------------------------------------------------------------
# a whole movie: backgrounds, rings, statistics per frame
# --------------------------------------------------------------------------


def cn_columns(columns: Sequence[str]) -> list[str]:
    """The C/N ratio columns (``cn_<reporter>``) of a table, in order."""
    return [c for c in columns if c.startswith("cn_") and c != "cn_reason"]


def reporters_of(columns: Sequence[str]) -> list[str]:
    """Reporter names of the C/N columns of a table (``cn_erk`` -> ``erk``)."""
    return [c[3:] for c in cn_columns(columns)]


def select_reporters(channels: Sequence[str], *, segment_channel: str | None,
                     reporters: Sequence[str] | None) -> list[str]:
    """The channels whose C/N is computed: ``reporters``, or every channel but
    the segmentation channel (``segment_channel``; None = the first channel)."""
    seg = segment_channel if segment_channel is not None else channels[0]
    if reporters is None:
        return [c for c in channels if c != seg]
    for r in reporters:
        if r not in channels:
            raise InputError(
                f"select_reporters: channel '{r}' is not one of the image's channels {list(channels)}; "
                "fix the reporters or the channel names"
            )
    return list(reporters)


def _restore_vanished(table: pd.DataFrame, nuclei: np.ndarray) -> pd.DataFrame:
    """Add rows for nuclei that erosion removed (C/N NaN, reason nucleus_too_small)."""
    present = np.unique(nuclei[nuclei > 0])
    missing = np.setdiff1d(present, table["label"].to_numpy())
    if not missing.size:
        return table
    extra = pd.DataFrame({"label": missing})
    extra["cn_reason"] = "nucleus_too_small"
    out = pd.concat([table, extra], ignore_index=True).sort_values("label", kind="stable")
    out["ring_area_px"] = out["ring_area_px"].fillna(0).astype(int)
    return out.reset_index(drop=True)


def measure_rings(
    data: np.ndarray,
    labels: np.ndarray,
    channels: Sequence[str],
    *,
    reporters: Sequence[str],
    inner_px: float | None,
    width_px: float,
    buffer_px: float | None,
    backgrounds: Mapping[str, Mapping[str, object]],
    mask_channel: str | None = None,
    mask_threshold: Mapping[str, object] | None = None,
    nucleus_erosion_px: float | None = None,
    statistic: str = "mean",
    min_ring_px: int = 10,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Rings and C/N ratios of every nucleus of every frame of a movie.

    Per frame and channel the background is subtracted
    (:func:`subtract_background`; method ``percentile`` uses pixels farther than
    ``exclude_distance_px`` from every nucleus), the rings are built
    (:func:`ring_labels`, optionally only where ``mask_channel`` is above its
    threshold), nuclei are eroded by ``nucleus_erosion_px`` (a nuclear core free
    of the blurred edge) and :func:`ring_stats` gives ring statistics and
    ``cn_<reporter>``; every channel's background level is added as
    ``<channel>_background``.

    Parameters
    ----------
    data : (T, C, Y, X) ndarray
        The image.
    labels : (T, Y, X) ndarray of int
        Nuclei.
    channels : sequence of str
        Names of the C axis.
    reporters : sequence of str
        Channels whose C/N is computed.
    inner_px, width_px, buffer_px : float
        Ring geometry (:func:`ring_labels`).
    backgrounds : mapping
        ``{channel: keyword arguments of subtract_background + exclude_distance_px}``.
    mask_channel : str, optional
        Channel whose foreground (``mask_threshold``: keyword arguments of
        :func:`snakescope.segment.threshold`) limits the rings.
    nucleus_erosion_px : float, optional
        Erosion of the nuclei before their statistics.
    statistic, min_ring_px
        As in :func:`ring_stats`.

    Returns
    -------
    ring_stack : (T, Y, X) ndarray
        Ring labels (ids = nucleus ids).
    table : DataFrame
        One row per nucleus and frame: ``frame`` then the columns of :func:`ring_stats`.
    """
    from . import segment

    channels = list(channels)
    if data.ndim != 4 or labels.ndim != 3 or data.shape[0] != labels.shape[0] or data.shape[2:] != labels.shape[1:]:
        raise InputError(f"measure_rings: data {data.shape} (TCYX) and labels {labels.shape} (TYX) do not match")
    unknown = sorted(set(backgrounds) ^ set(channels))
    if unknown:
        raise InputError(f"measure_rings: backgrounds must name each channel {channels} once; got {sorted(backgrounds)}")
    if mask_channel is not None and mask_channel not in channels:
        raise InputError(f"measure_rings: mask_channel '{mask_channel}' is not one of the channels {channels}")
    ring_stack = np.zeros_like(labels)
    tables = []
    for t in range(labels.shape[0]):
        nuclei = labels[t]
        distance = None
        corrected, levels = {}, {}
        for c, ch in enumerate(channels):
            bg = dict(backgrounds[ch])
            exclude_px = float(bg.pop("exclude_distance_px"))
            exclude = None
            if bg["method"] == "percentile":
                if distance is None:
                    distance = ndi.distance_transform_edt(nuclei == 0) if nuclei.any() else np.full(nuclei.shape, np.inf)
                exclude = distance < max(exclude_px, 1.0)
                if exclude.all():
                    exclude = nuclei > 0  # cells fill the field: use all pixels outside nuclei
            corrected[ch], levels[ch] = subtract_background(data[t, c], exclude=exclude, **bg)
        allowed = None
        if mask_channel is not None:
            allowed, _ = segment.threshold(corrected[mask_channel], **(mask_threshold or {}))
        ring_stack[t] = ring_labels(nuclei, allowed=allowed, inner_px=inner_px, width_px=width_px,
                                    buffer_px=buffer_px)
        core, ring = nuclei, ring_stack[t]
        if nucleus_erosion_px:
            core = erode_labels(nuclei, radius_px=nucleus_erosion_px)
            kept = np.zeros(int(nuclei.max()) + 1, dtype=bool)
            kept[core.ravel()] = True
            ring = np.where(kept[ring], ring, 0)
        table = ring_stats(core, ring, corrected, reporters=reporters, statistic=statistic, min_ring_px=min_ring_px)
        if nucleus_erosion_px:  # nuclei eroded away entirely: keep their rows with a reason
            table = _restore_vanished(table, nuclei)
        for ch in channels:
            table[f"{ch}_background"] = levels[ch]
        table.insert(0, "frame", t)
        tables.append(table)
    return ring_stack, pd.concat(tables, ignore_index=True)
