"""Synthetic phase-contrast images of rod-shaped bacteria with ground truth.

This module generates the rod-shaped-bacteria example: microcolonies of
capsule-shaped (spherocylinder) cells as seen in phase contrast, together with
the exact cell labels and the true length and width of every cell. It
validates :mod:`snakescope.rods`.

Everything is deterministic: one seed feeds one :func:`numpy.random.default_rng`
and the same seed gives byte-identical arrays, tables and files. No global
random state, no clock.

Geometry (realistic for *E. coli* growing in minimal medium, imaged with a
100x/1.4 phase objective on a 6.5 µm-pixel sCMOS camera, i.e. 0.065 µm/px):

* width 0.6-1.0 µm (9-15 px): a colony mean uniform in [0.65, 0.95] µm, each
  cell within +-0.05 µm of it;
* length (pole to pole) 1.3-3.6 µm (20-55 px): each colony has a birth length
  uniform in [1.3, 1.8] µm and every cell is at a random point of its cycle,
  ``length = birth * 2**a`` with the age ``a`` drawn from the steady-state
  age density of an exponentially growing population ``2 ln2 2**-a`` on [0, 1);
* 2-3 colonies of 6-16 cells per 256 x 256 field; cells are added next to a
  random colony member either side by side (60 %, orientation +-8°, sliding
  along the neighbour) or end to end (40 %, orientation +-12°) with a gap of
  0-1 px, so most cells touch one or more neighbours; every cell lies fully
  inside the field;
* 2-5 small dark specks (debris, radius 0.1-0.2 µm) away from the colonies.

Image formation (phase contrast, cells dark on a bright background): the
optical thickness ``phi`` of each cell is the chord of its cross-section,
``sqrt(r**2 - d**2) / r`` at distance ``d`` from its axis, times a per-cell
factor 0.85-1.15. The phase response saturates,
``s = (1 - exp(-3 phi)) / (1 - exp(-3))``, so cells look evenly dark with
steep edges, and carries a granular texture (6 % SD, 0.12 µm grain). The
positive phase-contrast image is modelled as

    I = B * illumination * (1 - c * (s * PSF) + c * h * (s * halo))

where ``s * PSF`` is the response blurred by the optics (Gaussian sigma
0.1 µm) and ``s * halo`` a wide blur (sigma 0.4-0.6 µm) whose subtraction
(the phase ring's low-pass leak) produces the bright halo around colonies, the
bright lines between touching cells and the "shade-off" that makes cells in the
middle of a colony less dark than isolated ones (uneven contrast).
``B`` (2000-4000 photons), ``c`` (0.55-0.7) and ``h`` (0.5-0.75) vary per
field; the illumination has a +-6 % linear gradient and a 5 % vignette (a
256 x 256 crop is a small part of a camera's field). Photon shot noise, a
camera offset of 100 counts and Gaussian read noise (SD 3 counts) give uint16
counts.

Ground-truth cells table (one row per cell, sorted by label):

============== ==============================================================
``label``      value of the cell in the label image
``x``, ``y``   centroid of the label (px; x = column, y = row)
``length_um``  true pole-to-pole length (µm)
``width_um``   true width (µm)
``area_px``    number of pixels of the label
============== ==============================================================

A pixel belongs to a cell when its centre lies inside the capsule, so cells do
not overlap; touching cells share a boundary.
"""

from __future__ import annotations

import math
import os
import pathlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from . import io

__all__ = [
    "PIXEL_SIZE_UM",
    "N_EXAMPLE_IMAGES",
    "make_rods",
    "phase_colony_with_debris",
    "write_rods_example",
    "rods_example_files",
]

#: Pixel size of the example (µm): 100x objective, 6.5 µm camera pixels.
PIXEL_SIZE_UM = 0.065

#: Number of fields in the written example.
N_EXAMPLE_IMAGES = 3

# ---------------------------------------------------------------------------
# Generator constants (lengths in µm unless named _PX, intensities in photons).
# ---------------------------------------------------------------------------
_WIDTH_MEAN_RANGE_UM = (0.65, 0.95)  # colony mean width
_WIDTH_JITTER_UM = 0.05  # per-cell deviation from the colony mean (uniform +-)
_WIDTH_RANGE_UM = (0.6, 1.0)
_BIRTH_LENGTH_RANGE_UM = (1.3, 1.8)
_MIN_ASPECT_EXTRA_UM = 0.5  # length >= width + this
_CELLS_PER_COLONY = (6, 16)  # inclusive
_COLONIES_PER_100UM2 = 1.0  # 256^2 px at 0.065 µm/px = 277 µm^2 -> 2-3 colonies
_SIDE_PROB = 0.6
_CANDIDATES = 6  # valid placements drawn per added cell; the one nearest the colony centre wins
_SIDE_ANGLE_SD_DEG = 8.0
_END_ANGLE_SD_DEG = 12.0
_GAP_RANGE_PX = (0.0, 1.0)  # gap between a new cell and the neighbour it is placed against
_MIN_GAP_PX = 0.0  # minimum gap to every other cell of the colony
_COLONY_GAP_UM = 1.0  # minimum distance between cells of different colonies
_BORDER_MARGIN_PX = 6.0  # cells stay this far inside the field
_PSF_SIGMA_UM = 0.1
_HALO_SIGMA_RANGE_UM = (0.4, 0.6)
_BACKGROUND_RANGE = (2000.0, 4000.0)
_CONTRAST_RANGE = (0.55, 0.7)
_HALO_RANGE = (0.5, 0.75)
_SATURATION = 3.0  # phase response 1 - exp(-k phi), normalised to 1 at phi = 1
_TEXTURE_SD = 0.06  # granular cytoplasm / nucleoids: relative SD of the response
_TEXTURE_SIGMA_UM = 0.12
_THICKNESS_FACTOR_RANGE = (0.85, 1.15)
_ILLUMINATION_GRADIENT = 0.06
_VIGNETTE = 0.05
_CAMERA_OFFSET = 100.0
_READ_NOISE_SD = 3.0
_DEBRIS_RANGE = (2, 6)  # number of specks, high exclusive
_DEBRIS_RADIUS_RANGE_UM = (0.1, 0.2)

_CELL_COLUMNS = ["label", "x", "y", "length_um", "width_um", "area_px"]


@dataclass(frozen=True)
class _Rod:
    """One cell: the capsule of radius ``r_px`` around its axis segment ``ends`` (px, ``(y, x)``)."""

    cy: float
    cx: float
    theta: float  # orientation of the long axis (rad, from +x towards +y)
    half_px: float  # half length of the axis segment (px), pole-to-pole length = 2 * (half + r)
    r_px: float
    thickness: float

    @property
    def ends(self) -> tuple[np.ndarray, np.ndarray]:
        u = np.array([math.sin(self.theta), math.cos(self.theta)])
        c = np.array([self.cy, self.cx])
        return c - self.half_px * u, c + self.half_px * u

    @property
    def length_px(self) -> float:
        return 2.0 * (self.half_px + self.r_px)


# ---------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------


def _point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    denom = float(ab @ ab)
    t = 0.0 if denom == 0 else min(1.0, max(0.0, float((p - a) @ ab) / denom))
    return float(np.hypot(*(p - (a + t * ab))))


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def _segment_distance(a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray) -> float:
    """Shortest distance between two 2-D segments (0 when they cross)."""
    d1, d2 = _cross(b0, b1, a0), _cross(b0, b1, a1)
    d3, d4 = _cross(a0, a1, b0), _cross(a0, a1, b1)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return 0.0
    return min(
        _point_segment_distance(a0, b0, b1), _point_segment_distance(a1, b0, b1),
        _point_segment_distance(b0, a0, a1), _point_segment_distance(b1, a0, a1),
    )


def _rod_gap(a: _Rod, b: _Rod) -> float:
    """Distance between the surfaces of two capsules (negative when they overlap)."""
    return _segment_distance(*a.ends, *b.ends) - a.r_px - b.r_px


def _collides(rod: _Rod, rods: list[_Rod], *, min_gap_px: float) -> bool:
    """Whether ``rod`` comes closer than ``min_gap_px`` to any of ``rods``.

    Rods whose bounding circles are farther apart are skipped before the exact test.
    """
    if not rods:
        return False
    centres = np.array([(r.cy, r.cx) for r in rods])
    reach = np.array([r.half_px + r.r_px for r in rods])
    dist = np.hypot(centres[:, 0] - rod.cy, centres[:, 1] - rod.cx)
    near = np.flatnonzero(dist < reach + rod.half_px + rod.r_px + min_gap_px)
    return any(_rod_gap(rod, rods[i]) < min_gap_px for i in near)


def _inside_field(rod: _Rod, shape: tuple[int, int]) -> bool:
    m = _BORDER_MARGIN_PX + rod.r_px
    return all(m <= p[0] <= shape[0] - 1 - m and m <= p[1] <= shape[1] - 1 - m for p in rod.ends)


def _segment_distance_map(rod: _Rod, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Distance of pixel centres ``(yy, xx)`` to the rod's axis segment."""
    (y0, x0), (y1, x1) = rod.ends
    dy, dx = y1 - y0, x1 - x0
    denom = dy * dy + dx * dx
    t = np.zeros_like(yy) if denom == 0 else np.clip(((yy - y0) * dy + (xx - x0) * dx) / denom, 0.0, 1.0)
    return np.hypot(yy - (y0 + t * dy), xx - (x0 + t * dx))


# ---------------------------------------------------------------------------
# Colonies
# ---------------------------------------------------------------------------


def _draw_length_um(rng: np.random.Generator, *, birth_um: float, width_um: float) -> float:
    """Length of a cell at a random point of its cycle (steady-state age density)."""
    # inverse CDF of p(a) = 2 ln2 2^-a on [0, 1): F(a) = 2 (1 - 2^-a)
    a = -math.log2(1.0 - rng.random() / 2.0)
    return max(birth_um * 2.0**a, width_um + _MIN_ASPECT_EXTRA_UM)


def _new_rod(rng: np.random.Generator, *, cy: float, cx: float, theta: float, colony: dict,
             pixel_size_um: float) -> _Rod:
    w_um = float(np.clip(colony["width_um"] + rng.uniform(-_WIDTH_JITTER_UM, _WIDTH_JITTER_UM),
                         *_WIDTH_RANGE_UM))
    l_um = _draw_length_um(rng, birth_um=colony["birth_um"], width_um=w_um)
    r = w_um / pixel_size_um / 2.0
    return _Rod(cy=cy, cx=cx, theta=theta, half_px=l_um / pixel_size_um / 2.0 - r, r_px=r,
                thickness=float(rng.uniform(*_THICKNESS_FACTOR_RANGE)))


def _shift(rod: _Rod, dy: float, dx: float) -> _Rod:
    return _Rod(rod.cy + dy, rod.cx + dx, rod.theta, rod.half_px, rod.r_px, rod.thickness)


def _place_against(rng: np.random.Generator, new: _Rod, parent: _Rod, *, side_by_side: bool) -> _Rod:
    """Move ``new`` (already oriented) next to ``parent``, side by side or end to end."""
    gap = float(rng.uniform(*_GAP_RANGE_PX))
    up = np.array([math.sin(parent.theta), math.cos(parent.theta)])  # parent axis (y, x)
    normal = np.array([up[1], -up[0]])
    if side_by_side:
        side = 1.0 if rng.random() < 0.5 else -1.0
        slide = rng.uniform(-0.5, 0.5) * (parent.half_px + new.half_px)
        direction = side * normal
        start = slide * up + direction * (parent.r_px + new.r_px + gap)
    else:
        side = 1.0 if rng.random() < 0.5 else -1.0
        lateral = rng.normal(0.0, 0.15) * (parent.r_px + new.r_px)
        direction = side * up
        reach = parent.half_px + parent.r_px + new.half_px + new.r_px + gap
        start = direction * reach + lateral * normal
    rod = _Rod(parent.cy + start[0], parent.cx + start[1], new.theta, new.half_px, new.r_px, new.thickness)
    # Slide along ``direction`` until the surfaces are ``gap`` apart (near-linear, a few steps).
    for _ in range(6):
        err = gap - _rod_gap(rod, parent)
        if abs(err) < 0.02:
            break
        rod = _shift(rod, err * direction[0], err * direction[1])
    return rod


def _grow_colony(
    rng: np.random.Generator, *, shape: tuple[int, int], others: list[_Rod], pixel_size_um: float
) -> list[_Rod]:
    """Place one colony of touching rods away from the cells of other colonies."""
    colony = {
        "width_um": float(rng.uniform(*_WIDTH_MEAN_RANGE_UM)),
        "birth_um": float(rng.uniform(*_BIRTH_LENGTH_RANGE_UM)),
    }
    n_target = int(rng.integers(_CELLS_PER_COLONY[0], _CELLS_PER_COLONY[1] + 1))
    colony_gap_px = _COLONY_GAP_UM / pixel_size_um
    cells: list[_Rod] = []
    for _ in range(50):  # a free spot for the founder
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        rod = _new_rod(rng, cy=cy, cx=cx, theta=float(rng.uniform(0, np.pi)), colony=colony,
                       pixel_size_um=pixel_size_um)
        if _inside_field(rod, shape) and not _collides(rod, others, min_gap_px=3 * colony_gap_px):
            cells.append(rod)
            break
    if not cells:
        return []
    centre = (cells[0].cy, cells[0].cx)
    attempts = 0
    while len(cells) < n_target and attempts < 40 * n_target:
        # Several valid candidates, keep the one nearest the founder: compact colonies.
        candidates = []
        while len(candidates) < _CANDIDATES and attempts < 40 * n_target:
            attempts += 1
            rod = _candidate(rng, cells, colony=colony, pixel_size_um=pixel_size_um)
            if not _inside_field(rod, shape):
                continue
            if _collides(rod, cells, min_gap_px=_MIN_GAP_PX) or _collides(rod, others, min_gap_px=colony_gap_px):
                continue
            candidates.append(rod)
        if candidates:
            dist = [math.hypot(c.cy - centre[0], c.cx - centre[1]) for c in candidates]
            cells.append(candidates[int(np.argmin(dist))])
    return cells


def _candidate(rng: np.random.Generator, cells: list[_Rod], *, colony: dict, pixel_size_um: float) -> _Rod:
    """A new rod placed against a random colony member."""
    parent = cells[int(rng.integers(len(cells)))]
    side_by_side = bool(rng.random() < _SIDE_PROB)
    angle_sd = _SIDE_ANGLE_SD_DEG if side_by_side else _END_ANGLE_SD_DEG
    theta = parent.theta + math.radians(rng.normal(0.0, angle_sd))
    new = _new_rod(rng, cy=parent.cy, cx=parent.cx, theta=theta, colony=colony, pixel_size_um=pixel_size_um)
    return _place_against(rng, new, parent, side_by_side=side_by_side)


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def _rasterise(rods: list[_Rod], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Label image (rod ``i`` -> ``i + 1``) and optical thickness map."""
    labels = np.zeros(shape, dtype=np.int32)
    phi = np.zeros(shape, dtype=np.float64)
    for i, rod in enumerate(rods, start=1):
        ext = rod.half_px + rod.r_px + 1.0
        y0, y1 = max(int(math.floor(rod.cy - ext)), 0), min(int(math.ceil(rod.cy + ext)) + 1, shape[0])
        x0, x1 = max(int(math.floor(rod.cx - ext)), 0), min(int(math.ceil(rod.cx + ext)) + 1, shape[1])
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        d = _segment_distance_map(rod, yy, xx)
        inside = (d <= rod.r_px) & (labels[y0:y1, x0:x1] == 0)
        labels[y0:y1, x0:x1][inside] = i
        chord = np.sqrt(np.clip(rod.r_px**2 - d * d, 0.0, None)) / rod.r_px
        phi[y0:y1, x0:x1] += rod.thickness * chord
    return labels, phi


def _add_debris(rng: np.random.Generator, phi: np.ndarray, labels: np.ndarray, *, clearance_px: float,
                pixel_size_um: float) -> None:
    """Add a few small dark specks (debris) away from the cells to ``phi``, in place."""
    h, w = phi.shape
    far = ndi.distance_transform_edt(labels == 0) > clearance_px
    for _ in range(int(rng.integers(*_DEBRIS_RANGE))):
        r = float(rng.uniform(*_DEBRIS_RADIUS_RANGE_UM)) / pixel_size_um
        cy, cx = rng.uniform(4, h - 4), rng.uniform(4, w - 4)
        level = float(rng.uniform(0.6, 1.0))
        if not far[int(cy), int(cx)]:
            continue
        y0, y1 = int(max(cy - r - 1, 0)), int(min(cy + r + 2, h))
        x0, x1 = int(max(cx - r - 1, 0)), int(min(cx + r + 2, w))
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        phi[y0:y1, x0:x1] += level * np.sqrt(np.clip(1.0 - d2 / (r * r), 0.0, None))


def _illumination(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Multiplicative illumination: a linear gradient (+-12 %) and a mild vignette."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    yn, xn = yy / max(h - 1, 1) - 0.5, xx / max(w - 1, 1) - 0.5
    phi = rng.uniform(0.0, 2.0 * np.pi)
    ramp = (np.cos(phi) * xn + np.sin(phi) * yn) / math.sqrt(0.5)  # in [-1, 1]
    cy, cx = rng.uniform(-0.2, 0.2, size=2)
    vignette = 1.0 - _VIGNETTE * ((yn - cy) ** 2 + (xn - cx) ** 2) / 0.5
    return (1.0 + _ILLUMINATION_GRADIENT * ramp) * vignette


def _camera(rng: np.random.Generator, expected: np.ndarray) -> np.ndarray:
    """Poisson shot noise, camera offset and Gaussian read noise; uint16 counts."""
    photons = rng.poisson(np.clip(expected, 0.0, None)).astype(float)
    counts = photons + _CAMERA_OFFSET + rng.normal(0.0, _READ_NOISE_SD, expected.shape)
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def _cells_table(labels: np.ndarray, rods: list[_Rod], *, pixel_size_um: float) -> pd.DataFrame:
    n = len(rods) + 1
    flat = labels.ravel().astype(np.int64)
    area = np.bincount(flat, minlength=n)
    yy, xx = np.indices(labels.shape)
    sy = np.bincount(flat, weights=yy.ravel(), minlength=n)
    sx = np.bincount(flat, weights=xx.ravel(), minlength=n)
    ids = np.flatnonzero(area[1:]) + 1
    table = pd.DataFrame({
        "label": ids.astype(np.int64),
        "x": sx[ids] / area[ids],
        "y": sy[ids] / area[ids],
        "length_um": np.array([rods[i - 1].length_px for i in ids]) * pixel_size_um,
        "width_um": np.array([2.0 * rods[i - 1].r_px for i in ids]) * pixel_size_um,
        "area_px": area[ids].astype(np.int64),
    }, columns=_CELL_COLUMNS)
    return table


def _make_field(rng: np.random.Generator, *, shape: tuple[int, int], name: str, pixel_size_um: float) -> dict:
    """One field of view with ground truth (see :func:`make_rods`)."""
    area_um2 = shape[0] * shape[1] * pixel_size_um**2
    n_colonies = max(1, int(round(_COLONIES_PER_100UM2 * area_um2 / 100.0 + rng.uniform(-0.5, 0.5))))
    rods: list[_Rod] = []
    for _ in range(n_colonies):
        rods += _grow_colony(rng, shape=shape, others=rods, pixel_size_um=pixel_size_um)
    # Number cells in raster order of their centres (deterministic, colony-independent).
    rods.sort(key=lambda r: (round(r.cy, 6), round(r.cx, 6)))
    labels, phi = _rasterise(rods, shape)
    _add_debris(rng, phi, labels, clearance_px=_COLONY_GAP_UM / pixel_size_um, pixel_size_um=pixel_size_um)

    background = float(rng.uniform(*_BACKGROUND_RANGE))
    contrast = float(rng.uniform(*_CONTRAST_RANGE))
    halo = float(rng.uniform(*_HALO_RANGE))
    halo_sigma_px = float(rng.uniform(*_HALO_SIGMA_RANGE_UM)) / pixel_size_um
    response = (1.0 - np.exp(-_SATURATION * phi)) / (1.0 - math.exp(-_SATURATION))
    texture = ndi.gaussian_filter(rng.standard_normal(shape), _TEXTURE_SIGMA_UM / pixel_size_um, mode="wrap")
    texture *= _TEXTURE_SD / max(float(texture.std()), 1e-12)
    response *= 1.0 + np.clip(texture, -2.5 * _TEXTURE_SD, 2.5 * _TEXTURE_SD)
    dark = ndi.gaussian_filter(response, _PSF_SIGMA_UM / pixel_size_um, mode="nearest")
    leak = ndi.gaussian_filter(response, halo_sigma_px, mode="nearest")
    expected = background * _illumination(rng, shape) * (1.0 - contrast * dark + contrast * halo * leak)
    image = _camera(rng, expected)
    return {
        "name": name,
        "image": image,
        "labels": labels.astype(np.uint16),
        "cells": _cells_table(labels, rods, pixel_size_um=pixel_size_um),
        "pixel_size_um": float(pixel_size_um),
    }


def make_rods(
    seed: int = 0,
    *,
    n_images: int = N_EXAMPLE_IMAGES,
    shape: tuple[int, int] = (256, 256),
    pixel_size_um: float = PIXEL_SIZE_UM,
) -> list[dict]:
    """Generate phase-contrast fields of rod-shaped bacteria with ground truth.

    Parameters
    ----------
    seed : int
        Seed of :func:`numpy.random.default_rng`; the same seed gives identical
        output. Field ``k`` does not depend on ``n_images``.
    n_images : int
        Number of fields.
    shape : tuple of int
        ``(Y, X)`` size in pixels; the number of colonies scales with the area
        (about one per 100 µm²).
    pixel_size_um : float
        Pixel size in µm. Cell sizes are fixed in µm (see the module docs), so
        a smaller pixel size gives larger cells in pixels.

    Returns
    -------
    list of dict
        One dict per field with keys ``name`` (``colony_00`` ...), ``image``
        (uint16 ``(Y, X)`` phase contrast, cells dark), ``labels`` (uint16
        ``(Y, X)`` cell labels 1..N), ``cells`` (DataFrame ``label, x, y,
        length_um, width_um, area_px``) and ``pixel_size_um``.
    """
    rng = np.random.default_rng(seed)
    children = rng.spawn(int(n_images))
    shape = (int(shape[0]), int(shape[1]))
    return [
        _make_field(child, shape=shape, name=f"colony_{k:02d}", pixel_size_um=float(pixel_size_um))
        for k, child in enumerate(children)
    ]


# ---------------------------------------------------------------------------
# A hard case: a small colony in a large, dirty field
# ---------------------------------------------------------------------------

# Constants of :func:`phase_colony_with_debris` (lengths in µm, intensities relative to the background).
_HARD_SHAPE = (384, 576)  # 25 x 37 µm at 0.065 µm/px; the colony covers ~2-5 % of it
_HARD_SPECKS = (10, 21)  # small dark specks, radius 0.1-0.25 µm (high exclusive)
_HARD_SPECK_RADIUS_UM = (0.1, 0.25)
_HARD_PARTICLES = (3, 7)  # round dark particles as wide as a cell or wider, radius 0.4-0.8 µm
_HARD_PARTICLE_RADIUS_UM = (0.4, 0.8)
_HARD_RINGS = (4, 9)  # out-of-focus beads: bright ring, dark centre
_HARD_RING_RADIUS_UM = (0.3, 0.6)
_HARD_RING_SIGMA_UM = 0.08
_HARD_RING_BRIGHT = (0.3, 0.6)
_HARD_RING_DARK = (0.2, 0.4)
# Contrast, halo and texture measured on a real E. coli movie (van Vliet et al. 2018): cells 40-60 %
# darker than the background, halos up to +60 %, background texture ~2 % SD at the scale of a rod.
_HARD_CONTRAST_RANGE = (0.75, 0.9)
_HARD_HALO_SIGMA_UM = (0.7, 1.0)  # wider halos than the example's
_HARD_HALO_RANGE = (0.5, 0.75)
_HARD_MOTTLE = ((0.3, 0.012), (1.5, 0.015))  # background texture: (correlation sigma µm, relative SD)
_HARD_GRADIENT = 0.15  # +-15 % linear illumination gradient
_HARD_BLOTCH_SIGMA_FRACTION = 0.25  # broad illumination blotches, sigma as a fraction of the field
_HARD_BLOTCH_AMPLITUDE = 0.08


def _far_points(rng: np.random.Generator, far: np.ndarray, n: int, *, margin_px: float) -> list[tuple[float, float]]:
    """Up to ``n`` random points where ``far`` is True, at least ``margin_px`` inside the field."""
    h, w = far.shape
    points = []
    for _ in range(20 * n):
        if len(points) == n:
            break
        cy, cx = rng.uniform(margin_px, h - margin_px), rng.uniform(margin_px, w - margin_px)
        if far[int(cy), int(cx)]:
            points.append((float(cy), float(cx)))
    return points


def _add_dome(phi: np.ndarray, cy: float, cx: float, r: float, level: float) -> None:
    """Add a hemispherical particle of radius ``r`` px (optical thickness ``level`` at its centre)."""
    h, w = phi.shape
    y0, y1 = int(max(cy - r - 1, 0)), int(min(cy + r + 2, h))
    x0, x1 = int(max(cx - r - 1, 0)), int(min(cx + r + 2, w))
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d2 = (yy - cy) ** 2 + (xx - cx) ** 2
    phi[y0:y1, x0:x1] += level * np.sqrt(np.clip(1.0 - d2 / (r * r), 0.0, None))


def phase_colony_with_debris(seed: int = 0, *, shape: tuple[int, int] = _HARD_SHAPE,
                             pixel_size_um: float = PIXEL_SIZE_UM) -> dict:
    """One hard phase-contrast field: a small colony in a large, dirty field.

    The situation of real time-lapse starts (e.g. van Vliet et al. 2018): a
    single microcolony (one colony of :func:`make_rods`, 6-16 touching cells)
    covers a few per cent of a large field, and the rest is not empty:

    * 10-20 small dark specks (radius 0.1-0.25 µm) and 3-6 round dark
      particles as wide as a cell or wider (radius 0.4-0.8 µm), at least 1 µm
      away from the cells; like the cells they get halos from the optics;
    * 4-8 out-of-focus beads: a bright ring (radius 0.3-0.6 µm) around a
      dark centre;
    * a mottled background (phase-contrast "coherent noise"): correlated
      texture of 2.5 % SD at 0.3 µm and 3 % at 1.5 µm;
    * uneven illumination: a +-15 % linear gradient and broad blotches
      (+-8 %, sigma a quarter of the field);
    * wide bright halos (halo sigma 0.7-1.0 µm, strength 0.5-0.75 of the
      contrast 0.75-0.9) around the colony and the particles.

    Contrast, halo and texture follow a real *E. coli* movie (van Vliet et
    al. 2018): cells 40-60 % darker than the background, background texture
    about 2 % SD at the scale of a rod.

    Cells, phase response, optics and camera are those of :func:`make_rods`.
    A histogram threshold (Otsu, triangle) of such a field segments the
    texture, the halos or the debris; see ``tests/test_rods.py``.

    Parameters
    ----------
    seed : int
        Seed of :func:`numpy.random.default_rng`; the same seed gives identical
        output.
    shape : tuple of int
        ``(Y, X)`` size in pixels.
    pixel_size_um : float
        Pixel size in µm.

    Returns
    -------
    dict
        ``name`` (``"phase_colony_with_debris"``), ``image`` (uint16 ``(Y, X)``,
        cells dark), ``labels`` (uint16 cell labels 1..N; debris, particles and
        beads are background), ``cells`` (DataFrame ``label, x, y, length_um,
        width_um, area_px``) and ``pixel_size_um``.
    """
    rng = np.random.default_rng(seed)
    shape = (int(shape[0]), int(shape[1]))
    px = float(pixel_size_um)
    rods = _grow_colony(rng, shape=shape, others=[], pixel_size_um=px)
    rods.sort(key=lambda r: (round(r.cy, 6), round(r.cx, 6)))
    labels, phi = _rasterise(rods, shape)

    far = ndi.distance_transform_edt(labels == 0) > _COLONY_GAP_UM / px
    for cy, cx in _far_points(rng, far, int(rng.integers(*_HARD_SPECKS)), margin_px=4):
        _add_dome(phi, cy, cx, float(rng.uniform(*_HARD_SPECK_RADIUS_UM)) / px, float(rng.uniform(0.6, 1.0)))
    for cy, cx in _far_points(rng, far, int(rng.integers(*_HARD_PARTICLES)), margin_px=15):
        _add_dome(phi, cy, cx, float(rng.uniform(*_HARD_PARTICLE_RADIUS_UM)) / px, float(rng.uniform(0.8, 1.2)))

    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    beads = np.zeros(shape)
    for cy, cx in _far_points(rng, far, int(rng.integers(*_HARD_RINGS)), margin_px=15):
        r0 = float(rng.uniform(*_HARD_RING_RADIUS_UM)) / px
        s = _HARD_RING_SIGMA_UM / px
        reach = r0 + 5 * s
        y0, y1 = int(max(cy - reach, 0)), int(min(cy + reach + 1, h))
        x0, x1 = int(max(cx - reach, 0)), int(min(cx + reach + 1, w))
        d = np.hypot(yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx)
        beads[y0:y1, x0:x1] += float(rng.uniform(*_HARD_RING_BRIGHT)) * np.exp(-0.5 * ((d - r0) / s) ** 2)
        beads[y0:y1, x0:x1] -= float(rng.uniform(*_HARD_RING_DARK)) * np.exp(-0.5 * (d / (0.5 * r0)) ** 2)

    mottle = np.zeros(shape)
    for sigma_um, sd in _HARD_MOTTLE:
        t = ndi.gaussian_filter(rng.standard_normal(shape), sigma_um / px, mode="wrap")
        mottle += t * (sd / max(float(t.std()), 1e-12))
    yn, xn = yy / max(h - 1, 1) - 0.5, xx / max(w - 1, 1) - 0.5
    angle = rng.uniform(0.0, 2.0 * np.pi)
    ramp = (np.cos(angle) * xn + np.sin(angle) * yn) / math.sqrt(0.5)
    # blotches: smooth noise on a coarse grid (8 px), interpolated to the field
    coarse = ndi.gaussian_filter(rng.standard_normal((h // 8 + 2, w // 8 + 2)),
                                 _HARD_BLOTCH_SIGMA_FRACTION * min(h, w) / 8, mode="wrap")
    blotch = ndi.map_coordinates(coarse, [yy / 8, xx / 8], order=1)
    blotch *= _HARD_BLOTCH_AMPLITUDE / max(float(np.abs(blotch).max()), 1e-12)
    illumination = (1.0 + _HARD_GRADIENT * ramp) * (1.0 + blotch)

    background = float(rng.uniform(*_BACKGROUND_RANGE))
    contrast = float(rng.uniform(*_HARD_CONTRAST_RANGE))
    halo = float(rng.uniform(*_HARD_HALO_RANGE))
    halo_sigma_px = float(rng.uniform(*_HARD_HALO_SIGMA_UM)) / px
    response = (1.0 - np.exp(-_SATURATION * phi)) / (1.0 - math.exp(-_SATURATION))
    texture = ndi.gaussian_filter(rng.standard_normal(shape), _TEXTURE_SIGMA_UM / px, mode="wrap")
    texture *= _TEXTURE_SD / max(float(texture.std()), 1e-12)
    response *= 1.0 + np.clip(texture, -2.5 * _TEXTURE_SD, 2.5 * _TEXTURE_SD)
    dark = ndi.gaussian_filter(response, _PSF_SIGMA_UM / px, mode="nearest")
    leak = ndi.gaussian_filter(response, halo_sigma_px, mode="nearest")
    phase = 1.0 - contrast * dark + contrast * halo * leak
    expected = background * illumination * (phase * (1.0 + mottle) + beads)
    image = _camera(rng, expected)
    return {
        "name": "phase_colony_with_debris",
        "image": image,
        "labels": labels.astype(np.uint16),
        "cells": _cells_table(labels, rods, pixel_size_um=px),
        "pixel_size_um": px,
    }


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def rods_example_files(outdir: str | os.PathLike, *, n_images: int = N_EXAMPLE_IMAGES) -> list[pathlib.Path]:
    """The files :func:`write_rods_example` writes (sorted), without writing them."""
    out = pathlib.Path(outdir) / "rods"
    files = []
    for k in range(n_images):
        name = f"colony_{k:02d}"
        files += [out / f"{name}.tif", out / "gt" / f"{name}.tif", out / "gt" / f"{name}.csv"]
    return sorted(files)


def write_rods_example(outdir: str | os.PathLike, *, seed: int = 0) -> list[pathlib.Path]:
    """Write the rod-shaped-bacteria example with ground truth.

    Layout::

        outdir/rods/colony_00.tif ...      YX uint16 phase contrast (ImageJ, calibrated)
        outdir/rods/gt/colony_00.tif ...   YX uint16 cell labels
        outdir/rods/gt/colony_00.csv ...   cells table (label, x, y, length_um, width_um, area_px)

    Parameters
    ----------
    outdir : path-like
        Output folder (created).
    seed : int
        Seed of :func:`make_rods`.

    Returns
    -------
    list of pathlib.Path
        The written files, sorted (equal to :func:`rods_example_files`).
    """
    out = pathlib.Path(outdir) / "rods"
    written: list[pathlib.Path] = []
    for field in make_rods(seed, n_images=N_EXAMPLE_IMAGES):
        px = field["pixel_size_um"]
        p = out / f"{field['name']}.tif"
        io.write_stack(p, field["image"], axes="YX", pixel_size_um=px)
        g = out / "gt" / f"{field['name']}.tif"
        io.write_stack(g, field["labels"], axes="YX", pixel_size_um=px)
        c = out / "gt" / f"{field['name']}.csv"
        io.write_table(field["cells"], c)
        written += [p, g, c]
    return sorted(written)
