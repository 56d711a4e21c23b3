"""Nucleus segmentation: smooth, threshold, refine, split into labelled objects.

Each function works on one 2-D frame (``*_stack`` helpers loop over frames) and
takes sizes in pixels; :mod:`snakescope.params` turns config values into them.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from scipy import ndimage as ndi

from .errors import InputError

SMOOTH_METHODS = ("gaussian", "median", "mean", "none")
THRESHOLD_METHODS = (
    "manual", "otsu", "li", "triangle", "yen", "isodata", "mean", "minimum", "multiotsu", "local",
)
SPLIT_METHODS = ("none", "distance", "intensity")


def smooth(image: np.ndarray, *, method: str = "gaussian", size_px: float = 1.0) -> np.ndarray:
    """Smooth one 2-D frame.

    Parameters
    ----------
    image : ndarray
        2-D image.
    method : {'gaussian', 'median', 'mean', 'none'}
        Gaussian filter with sigma ``size_px``, or median/mean filter over a
        square window of width ``size_px`` (rounded up to an odd number).
    size_px : float
        Sigma (gaussian) or window width (median, mean) in pixels.

    Returns
    -------
    ndarray of float32
    """
    img = np.asarray(image, dtype=np.float32)
    if method == "none" or size_px <= 0:
        return img.copy()
    if method == "gaussian":
        return ndi.gaussian_filter(img, sigma=float(size_px), mode="nearest")
    width = max(1, int(math.ceil(size_px)) | 1)
    if method == "median":
        return ndi.median_filter(img, size=width, mode="nearest")
    if method == "mean":
        return ndi.uniform_filter(img, size=width, mode="nearest")
    raise InputError(f"config key segment.smooth.method: unknown method {method!r}; use one of {list(SMOOTH_METHODS)}")


def threshold_value(
    image: np.ndarray,
    *,
    method: str = "otsu",
    value: float | None = None,
    classes: int = 3,
    level: int = 1,
) -> float:
    """Global threshold of an image (or of pooled frames) by a named method.

    Parameters
    ----------
    image : ndarray
        Pixels to threshold (any shape).
    method : str
        One of ``manual, otsu, li, triangle, yen, isodata, mean, minimum, multiotsu``.
    value : float, optional
        The threshold for ``manual``.
    classes, level : int
        For ``multiotsu``: number of classes and which of the ``classes - 1``
        thresholds to use (1-based: 1 = lowest).

    Returns
    -------
    float
        The threshold; a constant image returns its value (nothing is above it).
    """
    from skimage import filters

    img = np.asarray(image)
    if method == "manual":
        if value is None:
            raise InputError("config key segment.threshold.value: method 'manual' needs a value")
        return float(value)
    lo, hi = float(img.min()), float(img.max())
    if lo == hi:
        return hi
    funcs = {
        "otsu": filters.threshold_otsu,
        "li": filters.threshold_li,
        "triangle": filters.threshold_triangle,
        "yen": filters.threshold_yen,
        "isodata": filters.threshold_isodata,
        "mean": filters.threshold_mean,
        "minimum": filters.threshold_minimum,
    }
    if method in funcs:
        try:
            return float(funcs[method](img))
        except RuntimeError as exc:  # threshold_minimum on unimodal histograms
            raise InputError(
                f"config key segment.threshold.method: '{method}' failed on this image ({exc}); "
                "use another method such as otsu"
            ) from exc
    if method == "multiotsu":
        if not 1 <= level < classes:
            raise InputError(
                f"config key segment.threshold.level: must be between 1 and classes-1={classes - 1}"
            )
        return float(filters.threshold_multiotsu(img, classes=classes)[level - 1])
    raise InputError(
        f"config key segment.threshold.method: unknown method {method!r}; use one of {list(THRESHOLD_METHODS)}"
    )


def threshold(
    image: np.ndarray,
    *,
    method: str = "otsu",
    value: float | None = None,
    correction: float = 1.0,
    classes: int = 3,
    level: int = 1,
    block_size_px: float = 51.0,
    offset: float = 0.0,
    global_value: float | None = None,
) -> tuple[np.ndarray, float]:
    """Foreground mask of one 2-D frame.

    Parameters
    ----------
    image : ndarray
        2-D (smoothed) image.
    method : str
        See :func:`threshold_value`; ``local`` uses a Gaussian-weighted local
        mean over ``block_size_px`` minus ``offset``.
    correction : float
        Factor applied to the threshold (as CellProfiler's correction factor).
    global_value : float, optional
        A threshold computed elsewhere (e.g. over the whole stack); overrides ``method``.

    Returns
    -------
    mask : ndarray of bool
        Pixels strictly above the threshold.
    value : float
        The threshold used (for ``local``: the mean of the local thresholds).
    """
    img = np.asarray(image, dtype=np.float32)
    if global_value is not None:
        t = float(global_value) * correction
        return img > t, t
    if method == "local":
        from skimage.filters import threshold_local

        block = max(3, int(round(block_size_px)) | 1)
        local = threshold_local(img, block_size=block, method="gaussian", offset=offset) * correction
        return img > local, float(local.mean())
    t = threshold_value(img, method=method, value=value, classes=classes, level=level) * correction
    return img > t, t


def threshold_stack(stack: np.ndarray, *, scope: str = "frame", **params: Any) -> tuple[np.ndarray, list[float]]:
    """Threshold a ``(T, Y, X)`` stack per frame or with one value for the stack.

    Returns the boolean mask stack and the threshold used in each frame.
    """
    if scope not in ("frame", "stack"):
        raise InputError(f"config key segment.threshold.scope: {scope!r}; use 'frame' or 'stack'")
    global_value = None
    if scope == "stack" and params.get("method") != "local":
        sample = stack[:, ::2, ::2] if stack[0].size > 1_000_000 else stack
        global_value = threshold_value(
            sample, method=params["method"], value=params.get("value"),
            classes=params.get("classes", 3), level=params.get("level", 1),
        )
    masks = np.zeros(stack.shape, dtype=bool)
    values = []
    for t, frame in enumerate(stack):
        masks[t], v = threshold(frame, global_value=global_value, **params)
        values.append(v)
    return masks, values


def disk(radius_px: float) -> np.ndarray:
    """Boolean disk footprint of the given radius in pixels."""
    r = int(math.floor(radius_px))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy * yy + xx * xx) <= radius_px * radius_px


def remove_small(mask: np.ndarray, *, min_area_px: float) -> np.ndarray:
    """Remove connected components (8-connected) with fewer than ``min_area_px`` pixels."""
    if min_area_px <= 1:
        return mask
    labels, n = ndi.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_area_px
    keep[0] = False
    return keep[labels]


def refine(
    mask: np.ndarray,
    *,
    fill_holes: bool = True,
    opening_radius_px: float = 0.0,
    closing_radius_px: float = 0.0,
    min_diameter_px: float = 0.0,
) -> np.ndarray:
    """Clean a foreground mask: closing, opening, hole filling, speck removal.

    Components whose area is below that of a disk of ``min_diameter_px`` are
    removed (objects are filtered again by size after splitting).
    """
    out = np.asarray(mask, dtype=bool)
    if closing_radius_px >= 1:
        out = ndi.binary_closing(out, structure=disk(closing_radius_px), border_value=0)
    if opening_radius_px >= 1:
        out = ndi.binary_opening(out, structure=disk(opening_radius_px))
    if fill_holes:
        out = ndi.binary_fill_holes(out)
    return remove_small(out, min_area_px=math.pi * (min_diameter_px / 2) ** 2)


def _markers_from_peaks(surface: np.ndarray, mask: np.ndarray, components: np.ndarray, *, min_distance_px: float) -> np.ndarray:
    from skimage.feature import peak_local_max

    dist = max(1, int(round(min_distance_px)))
    # One global search (per-label search is 5x slower); components that lose
    # all their peaks to a closer neighbour get a seed below.
    floor = float(surface[mask].min()) if mask.any() else 0.0
    coords = peak_local_max(np.where(mask, surface, floor - 1), min_distance=dist,
                            threshold_abs=floor, exclude_border=False)
    coords = coords[mask[tuple(coords.T)]]
    peaks = np.zeros(mask.shape, dtype=bool)
    peaks[tuple(coords.T)] = True
    # Every component gets at least one seed (its maximum), so no object is lost.
    n = int(components.max())
    if n:
        seeded = np.zeros(n + 1, dtype=bool)
        seeded[components[peaks]] = True
        missing = np.flatnonzero(~seeded[1:]) + 1
        if missing.size:
            pos = ndi.maximum_position(surface, components, missing)
            for p in pos:
                peaks[p] = True
    # Adjacent peak pixels (plateaus) form one seed.
    markers, _ = ndi.label(peaks, structure=np.ones((3, 3), bool))
    return markers


def split(
    mask: np.ndarray,
    *,
    method: str = "distance",
    intensity: np.ndarray | None = None,
    min_distance_px: float = 5.0,
    h_px: float | None = None,
) -> np.ndarray:
    """Split a mask into labelled objects.

    Parameters
    ----------
    mask : ndarray of bool
        Foreground.
    method : {'none', 'distance', 'intensity'}
        ``none``: connected components. ``distance``: watershed on the
        Euclidean distance transform from seeds at its maxima (at least
        ``min_distance_px`` apart, or regional h-maxima of height ``h_px``).
        ``intensity``: watershed on the inverted intensity from intensity maxima.
    intensity : ndarray, optional
        Smoothed intensity, required for ``intensity``.

    Returns
    -------
    ndarray of int32
        Labels numbered in raster order of their seeds.
    """
    from skimage.segmentation import watershed

    mask = np.asarray(mask, dtype=bool)
    components, n = ndi.label(mask)
    if method == "none" or n == 0:
        return components.astype(np.int32)
    if method == "distance":
        surface = ndi.distance_transform_edt(mask).astype(np.float32)
        if h_px:
            from skimage.morphology import h_maxima

            peaks = h_maxima(surface, float(h_px)).astype(bool) & mask
            markers, _ = ndi.label(peaks, structure=np.ones((3, 3), bool))
            # components without an h-maximum keep one seed at their maximum
            seeded = np.zeros(n + 1, dtype=bool)
            seeded[components[peaks]] = True
            missing = np.flatnonzero(~seeded[1:]) + 1
            if missing.size:
                extra = np.zeros(mask.shape, dtype=bool)
                for p in ndi.maximum_position(surface, components, missing):
                    extra[p] = True
                markers, _ = ndi.label(peaks | extra, structure=np.ones((3, 3), bool))
        else:
            markers = _markers_from_peaks(surface, mask, components, min_distance_px=min_distance_px)
        return watershed(-surface, markers, mask=mask).astype(np.int32)
    if method == "intensity":
        if intensity is None:
            raise InputError("segment.split.method 'intensity' needs the smoothed image")
        surface = np.asarray(intensity, dtype=np.float32)
        markers = _markers_from_peaks(surface, mask, components, min_distance_px=min_distance_px)
        return watershed(-surface, markers, mask=mask).astype(np.int32)
    raise InputError(f"config key segment.split.method: unknown method {method!r}; use one of {list(SPLIT_METHODS)}")


def filter_objects(
    labels: np.ndarray,
    *,
    min_diameter_px: float = 0.0,
    max_diameter_px: float | None = None,
    clear_border: bool = False,
) -> np.ndarray:
    """Remove objects by equivalent diameter and (optionally) those touching the border.

    The minimum size applies to objects inside the image only: an object cut by
    the border is kept whatever its size (a cell entering or leaving the field),
    unless ``clear_border``. Remaining labels are renumbered 1..N keeping their order.
    """
    labels = np.asarray(labels)
    n = int(labels.max()) if labels.size else 0
    if n == 0:
        return labels.astype(np.int32)
    area = np.bincount(labels.ravel(), minlength=n + 1).astype(np.float64)
    eqd = np.sqrt(4 * area / np.pi)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    big_enough = eqd >= min_diameter_px
    # A nucleus cut by the image border is a real object however little of it
    # shows (cells entering or leaving the field): only the interior is filtered.
    big_enough[border] = True
    keep = (area > 0) & big_enough
    if max_diameter_px is not None:
        keep &= eqd <= max_diameter_px
    if clear_border:
        keep[border] = False
    keep[0] = False
    new_ids = np.zeros(n + 1, dtype=np.int64)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1)
    return new_ids[labels].astype(np.int32)


def label_frame(
    mask: np.ndarray,
    *,
    intensity: np.ndarray | None = None,
    method: str = "distance",
    min_distance_px: float = 5.0,
    h_px: float | None = None,
    min_diameter_px: float = 0.0,
    max_diameter_px: float | None = None,
    clear_border: bool = False,
) -> np.ndarray:
    """Split a refined mask into objects (:func:`split`) and filter them (:func:`filter_objects`)."""
    labels = split(mask, method=method, intensity=intensity, min_distance_px=min_distance_px, h_px=h_px)
    return filter_objects(
        labels, min_diameter_px=min_diameter_px, max_diameter_px=max_diameter_px, clear_border=clear_border
    )
