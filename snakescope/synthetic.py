"""Synthetic fluorescence images of nuclei with ground truth.

This module generates the project's embedded example and the data used to
validate the pipeline: two-channel images (a nuclear marker and a
nucleus/cytoplasm translocation reporter such as a kinase translocation
reporter, KTR) together with the exact nucleus labels, the tracks (in the
Cell Tracking Challenge convention) and the true reporter concentrations.

Everything is deterministic: one seed feeds one :func:`numpy.random.default_rng`
and the same seed gives byte-identical arrays, tables and files. No global
random state, no clock.

The images are meant to be *realistic enough to be hard*: nuclei of varied size,
shape and brightness, touching in clumps, chromatin texture, optical blur,
uneven background and illumination, shot and read noise. A naive
threshold-and-connected-components pipeline fails on them while a classical
smoothed-threshold plus distance-transform-watershed pipeline succeeds.

Channel 0 is the nuclear marker (``"nucleus"``), channel 1 the reporter
(``"reporter"``). The reporter channel has a flat background (camera offset plus
a constant autofluorescence, column ``reporter_background`` of the cells table)
so that a constant background subtraction recovers the true
cytoplasm/nucleus ratio ``cn_true``.

Ground-truth cells table (one row per object per frame, sorted by frame, label):

==================== ========================================================
``frame``            frame index (0 for stills)
``label``            value of the object in the label image
``track_id``         equal to ``label`` (CTC convention: label = track id)
``parent_track_id``  mother's track id, 0 if none
``x``, ``y``         centroid of the label (px; x = column, y = row)
``area_px``          nucleus area (px)
``cyt_area_px``      cytoplasm area (px), the cell minus its nucleus
``cn_true``          true cytoplasm / nucleus reporter concentration ratio
``nuc_level``        true reporter concentration in the nucleus (counts above
                     background, before blur and noise)
``cyt_level``        same in the cytoplasm (``cn_true * nuc_level``)
``reporter_background`` camera offset + autofluorescence of the reporter
                     channel (counts), constant
==================== ========================================================
"""

from __future__ import annotations

import math
import os
import pathlib
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from . import io

__all__ = ["CHANNELS", "hard_nuclei", "make_stills", "make_timelapse", "write_example"]

#: Channel names, in file order.
#: Number of still fields in the embedded example.
N_EXAMPLE_STILLS = 4

CHANNELS: tuple[str, str] = ("nucleus", "reporter")

# ---------------------------------------------------------------------------
# Generator constants (all intensities in camera counts, distances in pixels).
# ---------------------------------------------------------------------------
_CAMERA_OFFSET = 100.0
#: Pixels of a nucleus that must be inside the field for it to be annotated (time-lapse).
_MIN_VISIBLE_PX = 30
_READ_NOISE_SD = 4.0
_PSF_SIGMA_PX = 1.2
_DIAMETER_MEAN_PX = 18.0
_DIAMETER_SD_PX = 3.3
_DIAMETER_RANGE_PX = (12.0, 26.0)
_ASPECT_RANGE = (1.0, 1.6)
_TEXTURE_SD = 0.06  # relative; clipped to +-2.5 sd = +-15 %
_TEXTURE_SIGMA_PX = 1.5
_NUC_BG_RANGE = (110.0, 170.0)  # nuclear-channel background above offset
_NUC_G1_REL = 2.8  # typical G1 nucleus signal / mean background
_EXPANSION_RANGE_PX = (6.0, 10.0)
_EXPANSION_JITTER_PX = 1.5
_REPORTER_AUTOFLUORESCENCE = 60.0
_REPORTER_CONC_RANGE = (180.0, 520.0)  # mean reporter concentration per cell
_OVERLAP_RANGE = (0.93, 1.0)  # centre distance / contact distance within clumps
_SINGLE_FRACTION = 0.4  # fraction of nuclei placed alone (not in a clump)
_CLUMP_SIZES = np.array([2, 3, 4])
_CLUMP_PROBS = np.array([0.5, 0.3, 0.2])
_CLUMP_GAP_PX = 4.0  # minimum gap between nuclei of different clumps at placement
_MATE_GAP_PX = 1.0  # minimum gap between clump mates that are not attached to each other
_REPULSION_GAP_PX = 2.5  # time-lapse: gap kept between nuclei that are not attached
_DEBRIS_RANGE = (2, 6)  # number of small bright specks (not nuclei) per image


@dataclass
class _Nucleus:
    """One nucleus (and its cell) in the simulation.

    Attributes
    ----------
    y, x : float
        Centre (px, row and column).
    a, b : float
        Semi-axes (px), ``a >= b``.
    theta : float
        Orientation of the long axis (rad, counter-clockwise from +x).
    brightness : float
        Nuclear-marker signal (counts above background).
    texture : ndarray
        Square multiplicative chromatin texture patch in the nucleus frame.
    expansion_px : float
        Cytoplasm width around the nucleus.
    conc : float
        Mean reporter concentration of the whole cell (counts).
    cn : dict
        Parameters of the reporter cytoplasm/nucleus time course.
    clump : int
        Clump the nucleus moves with (time-lapse).
    track_id, parent : int
        Track id once visible (0 before) and the mother's track id (0 if none).
    age : int
        Frames since creation.
    seen : bool
        Whether the nucleus has been visible in a frame.
    bonds : list
        Clump mates it is attached to (list indices while placing, objects afterwards).
    """

    y: float
    x: float
    a: float
    b: float
    theta: float
    brightness: float
    texture: np.ndarray
    expansion_px: float
    conc: float
    cn: dict
    clump: int = 0
    track_id: int = 0
    parent: int = 0
    age: int = 0
    seen: bool = False
    bonds: list = field(default_factory=list)

    @property
    def area_nominal(self) -> float:
        """Area of the unclipped ellipse (px^2)."""
        return float(np.pi * self.a * self.b)

    @property
    def cyt_area_nominal(self) -> float:
        """Area of the unconstrained cytoplasm ring (px^2)."""
        e = self.expansion_px
        return float(np.pi * (self.a + e) * (self.b + e) - np.pi * self.a * self.b)


# ---------------------------------------------------------------------------
# Random building blocks
# ---------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], *, sigma_px: float) -> np.ndarray:
    """Gaussian-smoothed white noise normalised to zero mean and unit SD."""
    noise = ndi.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="wrap")
    noise -= noise.mean()
    sd = noise.std()
    return noise / sd if sd > 0 else noise


def _texture_patch(rng: np.random.Generator, *, half_size_px: int) -> np.ndarray:
    """Multiplicative chromatin texture around 1 (+-15 %), a square patch."""
    n = 2 * half_size_px + 1
    tex = 1.0 + _TEXTURE_SD * _smooth_noise(rng, (n, n), sigma_px=_TEXTURE_SIGMA_PX)
    return np.clip(tex, 1.0 - 2.5 * _TEXTURE_SD, 1.0 + 2.5 * _TEXTURE_SD)


def _cn_params(rng: np.random.Generator, *, still: bool) -> dict:
    """Draw the parameters of one cell's cytoplasm/nucleus ratio time course.

    Stills: a constant ratio uniform in [0.4, 2.0]. Time-lapse: baseline ~0.7
    (+-0.1), a sharp rise after the stimulus to a peak in [1.4, 2.0] then an
    exponential decay (tau ~4 frames) to a plateau ~0.9; 15 % of cells do not
    respond and stay at baseline.
    """
    if still:
        return {"baseline": float(rng.uniform(0.4, 2.0)), "responder": False}
    return {
        "baseline": float(np.clip(rng.normal(0.7, 0.05), 0.6, 0.8)),
        "peak": float(rng.uniform(1.4, 2.0)),
        "plateau": float(np.clip(rng.normal(0.9, 0.04), 0.8, 1.0)),
        "tau": float(rng.uniform(3.0, 5.0)),
        "responder": bool(rng.random() >= 0.15),
    }


def cn_time_course(params: dict, frame: int, *, stimulus_frame: int) -> float:
    """True cytoplasm/nucleus ratio of a cell at ``frame``.

    Frames up to and including ``stimulus_frame`` are at baseline (the stimulus
    is added right after that frame is acquired); a responder peaks at
    ``stimulus_frame + 1`` and decays exponentially towards its plateau.

    Parameters
    ----------
    params : dict
        As drawn by the generator (keys ``baseline``, ``peak``, ``plateau``,
        ``tau``, ``responder``).
    frame : int
        Frame index.
    stimulus_frame : int
        Last frame before the stimulus.

    Returns
    -------
    float
        The ratio cyt_level / nuc_level.
    """
    if not params.get("responder") or frame <= stimulus_frame:
        return params["baseline"]
    k = frame - stimulus_frame - 1
    return params["plateau"] + (params["peak"] - params["plateau"]) * float(np.exp(-k / params["tau"]))


def _dna_factor(rng: np.random.Generator) -> float:
    """Relative nuclear-marker intensity from the cell-cycle phase.

    G1 (55 %) around 1, S (25 %) uniform 1-1.8, G2/M (20 %) around 1.8, each with
    10 % cell-to-cell variation: about a 3x range between the dimmest and the
    brightest nuclei, most nuclei dim.
    """
    phase = rng.random()
    if phase < 0.55:
        base = 1.0
    elif phase < 0.80:
        base = float(rng.uniform(1.0, 1.8))
    else:
        base = 1.8
    return float(base * np.exp(rng.normal(0.0, 0.1)))


def _new_nucleus(rng: np.random.Generator, *, bg_level: float, still: bool) -> _Nucleus:
    """Draw a nucleus shape, brightness, texture and cell parameters (centre unset)."""
    d = float(np.clip(rng.normal(_DIAMETER_MEAN_PX, _DIAMETER_SD_PX), *_DIAMETER_RANGE_PX))
    aspect = float(rng.uniform(*_ASPECT_RANGE))
    a = 0.5 * d * np.sqrt(aspect)
    b = 0.5 * d / np.sqrt(aspect)
    brightness = bg_level * _NUC_G1_REL * _dna_factor(rng)
    return _Nucleus(
        y=0.0,
        x=0.0,
        a=float(a),
        b=float(b),
        theta=float(rng.uniform(0.0, np.pi)),
        brightness=brightness,
        texture=_texture_patch(rng, half_size_px=int(np.ceil(a)) + 3),
        expansion_px=float(rng.uniform(*_EXPANSION_RANGE_PX)),
        conc=float(rng.uniform(*_REPORTER_CONC_RANGE)),
        cn=_cn_params(rng, still=still),
    )


_BOUNDARY_ANGLES = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)


def _to_unit_disc(nuc: _Nucleus, py: np.ndarray, px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map offsets from a nucleus centre to its frame scaled so the ellipse is the unit disc."""
    c, s = np.cos(nuc.theta), np.sin(nuc.theta)
    return (px * c + py * s) / nuc.a, (-px * s + py * c) / nuc.b


def _exit_distance(host: _Nucleus, guest: _Nucleus, uy: float, ux: float) -> float:
    """Smallest shift along (uy, ux) beyond which no boundary point of ``guest`` is inside ``host``.

    ``guest`` is centred at ``host`` centre + shift * u; its boundary is sampled
    at 48 points. For each point p the shift s solves |T(s u + p)| = 1 (T maps the
    host ellipse to the unit disc), a quadratic in s; the larger root is kept.
    """
    t = _BOUNDARY_ANGLES
    c, s = np.cos(guest.theta), np.sin(guest.theta)
    gu, gv = guest.a * np.cos(t), guest.b * np.sin(t)
    py, px = gu * s + gv * c, gu * c - gv * s
    tu = _to_unit_disc(host, np.asarray(uy), np.asarray(ux))
    tp = _to_unit_disc(host, py, px)
    a = float(tu[0] ** 2 + tu[1] ** 2)
    b = tu[0] * tp[0] + tu[1] * tp[1]
    cc = tp[0] ** 2 + tp[1] ** 2 - 1.0
    disc = b * b - a * cc
    ok = disc >= 0
    if not ok.any():
        return 0.0
    return float(np.max((-b[ok] + np.sqrt(disc[ok])) / a))


def _contact_distance(n1: _Nucleus, n2: _Nucleus, dy: float, dx: float) -> float:
    """Centre distance at which two ellipses touch when ``n2`` lies in direction (dy, dx) from ``n1``.

    Beyond this distance the ellipses are disjoint (to the accuracy of a 48-point
    boundary sampling).
    """
    d = float(np.hypot(dy, dx))
    if d == 0:
        uy, ux = 0.0, 1.0
    else:
        uy, ux = dy / d, dx / d
    return max(_exit_distance(n1, n2, uy, ux), _exit_distance(n2, n1, -uy, -ux))


def _clump_plan(rng: np.random.Generator, n_target: int) -> list[int]:
    """Clump sizes to place, largest first, summing to ``n_target``.

    About 40 % of the nuclei are single; the others are in clumps of 2-4.
    """
    n_single = int(round(_SINGLE_FRACTION * n_target))
    sizes: list[int] = []
    remaining = n_target - n_single
    while remaining > 1:
        k = min(int(rng.choice(_CLUMP_SIZES, p=_CLUMP_PROBS)), remaining)
        sizes.append(k)
        remaining -= k
    return sorted(sizes, reverse=True) + [1] * (n_single + remaining)


def _place_clumps(
    rng: np.random.Generator,
    shape: tuple[int, int],
    *,
    n_target: int,
    bg_level: float,
    still: bool,
    max_attempts: int = 400,
) -> list[_Nucleus]:
    """Place nuclei in clumps of 1-4 slightly overlapping members.

    Each new member is attached to a random earlier member of its clump at
    ``_OVERLAP_RANGE`` times their contact distance (touching, slight overlap)
    and stays clear of the other mates; nuclei of different clumps are at least
    ``_CLUMP_GAP_PX`` apart. Centres lie in the field, so at least about half of
    each nucleus is visible.
    """
    placed: list[_Nucleus] = []
    clump_id = 0
    attempts = 0
    h, w = shape
    plan = _clump_plan(rng, n_target)
    while plan and attempts < max_attempts:
        attempts += 1
        k = plan.pop(0)
        first = _new_nucleus(rng, bg_level=bg_level, still=still)
        first.y = float(rng.uniform(0.0, h - 1.0))
        first.x = float(rng.uniform(0.0, w - 1.0))
        if not _fits(first, None, [], placed, shape):
            plan.insert(0, k)
            continue
        members = [first]
        bonds: list[tuple[int, int]] = []
        for _ in range(k - 1):
            nuc = _new_nucleus(rng, bg_level=bg_level, still=still)
            for _try in range(12):
                anchor_idx = int(rng.integers(len(members)))
                anchor = members[anchor_idx]
                phi = float(rng.uniform(0.0, 2.0 * np.pi))
                uy, ux = np.sin(phi), np.cos(phi)
                dist = _contact_distance(anchor, nuc, uy, ux) * float(rng.uniform(*_OVERLAP_RANGE))
                nuc.y = anchor.y + dist * uy
                nuc.x = anchor.x + dist * ux
                if _fits(nuc, anchor, members, placed, shape):
                    bonds.append((anchor_idx, len(members)))
                    members.append(nuc)
                    break
        for m in members:
            m.clump = clump_id
        base = len(placed)
        for i, j in bonds:
            members[i].bonds.append(base + j)
            members[j].bonds.append(base + i)
        placed.extend(members)
        clump_id += 1
    return placed


def _fits(
    nuc: _Nucleus,
    anchor: _Nucleus | None,
    members: list[_Nucleus],
    placed: list[_Nucleus],
    shape: tuple[int, int],
) -> bool:
    """Whether a candidate nucleus may be placed.

    Its centre must lie in the field; it may overlap only its anchor (the clump
    mate it was attached to), must stay clear of the other mates (chains and
    branches, no compact rosettes) and at least ``_CLUMP_GAP_PX`` away from
    nuclei of other clumps.
    """
    h, w = shape
    if not (0.0 <= nuc.y <= h - 1.0 and 0.0 <= nuc.x <= w - 1.0):
        return False
    for others, gap in ((members, _MATE_GAP_PX), (placed, _CLUMP_GAP_PX)):
        for other in others:
            if other is anchor:
                continue
            dy, dx = nuc.y - other.y, nuc.x - other.x
            dist = float(np.hypot(dy, dx))
            if dist >= other.a + nuc.a + gap:  # bounding circles apart: cannot be too close
                continue
            if dist < _contact_distance(other, nuc, dy, dx) + gap:
                return False
    return True


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def _local_coords(nuc: _Nucleus, shape: tuple[int, int], pad: float = 1.0):
    """Bounding-box slices and the nucleus-frame coordinates (u, v) of its pixels."""
    h, w = shape
    r = nuc.a + pad
    y0, y1 = max(int(np.floor(nuc.y - r)), 0), min(int(np.ceil(nuc.y + r)) + 1, h)
    x0, x1 = max(int(np.floor(nuc.x - r)), 0), min(int(np.ceil(nuc.x + r)) + 1, w)
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(float)
    dy, dx = yy - nuc.y, xx - nuc.x
    c, s = np.cos(nuc.theta), np.sin(nuc.theta)
    u = dx * c + dy * s
    v = -dx * s + dy * c
    return (slice(y0, y1), slice(x0, x1)), u, v


def _render_nuclei(nuclei: list[_Nucleus], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise nuclei into an index label image and a nuclear-marker signal image.

    Overlaps go to the nucleus whose (normalised elliptic) centre is nearest, so
    labels never overlap; each nucleus keeps only its largest connected piece.
    Label ``i + 1`` is ``nuclei[i]``.

    Returns
    -------
    index : ndarray of int32
        0 = background, ``i + 1`` = ``nuclei[i]``.
    signal : ndarray of float
        Brightness times texture inside nuclei (no blur, no background).
    """
    index = np.zeros(shape, dtype=np.int32)
    best = np.full(shape, np.inf)
    tex_values = np.zeros(shape)
    for i, nuc in enumerate(nuclei):
        local = _local_coords(nuc, shape)
        if local is None:
            continue
        sl, u, v = local
        q = (u / nuc.a) ** 2 + (v / nuc.b) ** 2
        win = (q <= 1.0) & (q < best[sl])
        if not win.any():
            continue
        half = (nuc.texture.shape[0] - 1) / 2.0
        tex = ndi.map_coordinates(nuc.texture, [v[win] + half, u[win] + half], order=1, mode="nearest")
        best[sl][win] = q[win]
        index[sl][win] = i + 1
        tex_values[sl][win] = tex * nuc.brightness
    index = _keep_largest_pieces(index)
    signal = np.where(index > 0, tex_values, 0.0)
    return index, signal


def _keep_largest_pieces(index: np.ndarray) -> np.ndarray:
    """Remove all but the largest 8-connected piece of every label."""
    out = index.copy()
    for lab, sl in enumerate(ndi.find_objects(index), start=1):
        if sl is None:
            continue
        mask = index[sl] == lab
        pieces, n = ndi.label(mask, structure=np.ones((3, 3)))
        if n > 1:
            sizes = np.bincount(pieces.ravel())[1:]
            drop = mask & (pieces != 1 + int(np.argmax(sizes)))
            out[sl][drop] = 0
    return out


def _cytoplasm(
    index: np.ndarray, expansion_px: np.ndarray, jitter: np.ndarray
) -> np.ndarray:
    """Cell labels: each nucleus expanded by its own width, limited between neighbours.

    Like :func:`skimage.segmentation.expand_labels` (each background pixel goes to
    the nearest nucleus) but with a per-cell width plus a smooth jitter so that
    cell outlines are irregular.

    Parameters
    ----------
    index : ndarray of int
        Nucleus labels.
    expansion_px : ndarray of float
        Width per label (entry 0 unused).
    jitter : ndarray of float
        Smooth per-pixel perturbation of the width (px).
    """
    if not index.any():
        return index.copy()
    dist, (iy, ix) = ndi.distance_transform_edt(index == 0, return_indices=True)
    nearest = index[iy, ix]
    limit = expansion_px[nearest] + jitter
    return np.where((index > 0) | (dist <= limit), nearest, 0).astype(index.dtype)


def _background_field(
    rng: np.random.Generator, shape: tuple[int, int], *, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Uneven nuclear-channel background and illumination.

    Background: a linear gradient (+-35 %) plus 3-5 broad blobs (+-35 % each).
    Illumination (multiplies the nuclear signal): a milder gradient (+-12 %).
    """
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    yn, xn = yy / max(h - 1, 1) - 0.5, xx / max(w - 1, 1) - 0.5
    phi = rng.uniform(0.0, 2.0 * np.pi)
    ramp = np.cos(phi) * xn + np.sin(phi) * yn  # in [-0.71, 0.71]
    bg = 1.0 + 0.5 * ramp
    for _ in range(int(rng.integers(3, 6))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        sig = rng.uniform(0.12, 0.25) * max(h, w)
        amp = rng.uniform(-0.35, 0.35)
        bg += amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sig**2))
    bg = level * np.clip(bg, 0.3, None)
    illum = 1.0 + 0.17 * ramp
    return bg, illum


def _add_debris(rng: np.random.Generator, signal: np.ndarray, index: np.ndarray, *, level: float) -> None:
    """Add a few small bright specks (dust, apoptotic fragments) outside nuclei, in place."""
    h, w = signal.shape
    for _ in range(int(rng.integers(*_DEBRIS_RANGE))):
        r = rng.uniform(1.2, 2.2)
        cy, cx = rng.uniform(3, h - 3), rng.uniform(3, w - 3)
        y0, y1 = int(max(cy - 4, 0)), int(min(cy + 5, h))
        x0, x1 = int(max(cx - 4, 0)), int(min(cx + 5, w))
        value = level * rng.uniform(2.0, 5.0)
        if index[y0:y1, x0:x1].any():  # keep specks off nuclei
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        signal[y0:y1, x0:x1][disc] = value


def _camera(rng: np.random.Generator, expected: np.ndarray) -> np.ndarray:
    """Poisson shot noise, camera offset and Gaussian read noise; uint16 counts."""
    photons = rng.poisson(np.clip(expected, 0.0, None)).astype(float)
    counts = photons + _CAMERA_OFFSET + rng.normal(0.0, _READ_NOISE_SD, expected.shape)
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def _reporter_levels(nuc: _Nucleus, cn: float) -> tuple[float, float]:
    """Nuclear and cytoplasmic reporter concentrations for a given ratio.

    The cell's total reporter (``conc`` times its nominal area) is conserved:
    ``nuc * A_n + cyt * A_c = conc * (A_n + A_c)`` with ``cyt = cn * nuc``.
    """
    a_n, a_c = nuc.area_nominal, nuc.cyt_area_nominal
    nuc_level = nuc.conc * (a_n + a_c) / (a_n + cn * a_c)
    return float(nuc_level), float(cn * nuc_level)


@dataclass
class _Frame:
    image: np.ndarray  # (2, Y, X) uint16
    index: np.ndarray  # nucleus index labels
    cells: np.ndarray  # cell index labels
    levels: list  # (nuc_level, cyt_level, cn) per nucleus


def _render_frame(
    rng: np.random.Generator,
    nuclei: list[_Nucleus],
    cns: list[float],
    *,
    shape: tuple[int, int],
    bg: np.ndarray,
    illum: np.ndarray,
    bg_level: float,
) -> _Frame:
    """Render both channels of one frame from the nuclei and their current ratios."""
    index, signal = _render_nuclei(nuclei, shape)
    _add_debris(rng, signal, index, level=bg_level)
    expansion = np.zeros(len(nuclei) + 1)
    expansion[1:] = [n.expansion_px for n in nuclei]
    jitter = _EXPANSION_JITTER_PX * np.clip(_smooth_noise(rng, shape, sigma_px=4.0), -2.0, 2.0) / 2.0
    cells = _cytoplasm(index, expansion, jitter)

    levels = [_reporter_levels(n, cn) + (cn,) for n, cn in zip(nuclei, cns)]
    nuc_lut = np.zeros(len(nuclei) + 1)
    cyt_lut = np.zeros(len(nuclei) + 1)
    nuc_lut[1:] = [lv[0] for lv in levels]
    cyt_lut[1:] = [lv[1] for lv in levels]
    reporter = np.where(index > 0, nuc_lut[index], cyt_lut[cells])

    nuc_expected = ndi.gaussian_filter(bg + illum * signal, _PSF_SIGMA_PX)
    rep_expected = _REPORTER_AUTOFLUORESCENCE + ndi.gaussian_filter(reporter, _PSF_SIGMA_PX)
    image = np.stack([_camera(rng, nuc_expected), _camera(rng, rep_expected)])
    return _Frame(image=image, index=index, cells=cells, levels=levels)


# ---------------------------------------------------------------------------
# Ground-truth tables
# ---------------------------------------------------------------------------

_CELL_COLUMNS = [
    "frame", "label", "track_id", "parent_track_id", "x", "y", "area_px", "cyt_area_px",
    "cn_true", "nuc_level", "cyt_level", "reporter_background",
]


def _cells_table(frame: int, labels: np.ndarray, cells: np.ndarray, info: dict[int, tuple]) -> pd.DataFrame:
    """One row per label present in ``labels``.

    ``info`` maps a label to ``(parent, (nuc_level, cyt_level, cn))``; ``cells``
    holds the cell (nucleus + cytoplasm) labels with the same values as ``labels``.
    """
    n = int(labels.max()) + 1 if labels.size else 1
    flat = labels.ravel().astype(np.int64)
    area = np.bincount(flat, minlength=n)
    yy, xx = np.indices(labels.shape)
    sy = np.bincount(flat, weights=yy.ravel(), minlength=n)
    sx = np.bincount(flat, weights=xx.ravel(), minlength=n)
    cyt = np.bincount(cells.ravel().astype(np.int64), minlength=n)[:n] - area
    rows = []
    for lab in np.flatnonzero(area[1:]) + 1:
        parent, (nuc_level, cyt_level, cn) = info[int(lab)]
        rows.append({
            "frame": frame,
            "label": int(lab),
            "track_id": int(lab),
            "parent_track_id": int(parent),
            "x": sx[lab] / area[lab],
            "y": sy[lab] / area[lab],
            "area_px": int(area[lab]),
            "cyt_area_px": int(cyt[lab]),
            "cn_true": cn,
            "nuc_level": nuc_level,
            "cyt_level": cyt_level,
            "reporter_background": _CAMERA_OFFSET + _REPORTER_AUTOFLUORESCENCE,
        })
    return pd.DataFrame(rows, columns=_CELL_COLUMNS)


def _finalise_table(df: pd.DataFrame) -> pd.DataFrame:
    """Sort rows by frame then label and fix dtypes."""
    df = df.sort_values(["frame", "label"], kind="stable").reset_index(drop=True)
    for col in ("frame", "label", "track_id", "parent_track_id", "area_px", "cyt_area_px"):
        df[col] = df[col].astype(np.int64)
    for col in ("x", "y", "cn_true", "nuc_level", "cyt_level", "reporter_background"):
        df[col] = df[col].astype(np.float64)
    return df


# ---------------------------------------------------------------------------
# Stills
# ---------------------------------------------------------------------------


def _make_still(rng: np.random.Generator, *, shape: tuple[int, int], name: str, pixel_size_um: float) -> dict:
    """One field of view with ground truth (see :func:`make_stills`)."""
    bg_level = float(rng.uniform(*_NUC_BG_RANGE))
    bg, illum = _background_field(rng, shape, level=bg_level)
    density = float(rng.uniform(5.0e-4, 6.0e-4))  # nuclei per px^2
    n_target = max(1, int(round(density * shape[0] * shape[1])))
    nuclei = _place_clumps(rng, shape, n_target=n_target, bg_level=bg_level, still=True)
    cns = [n.cn["baseline"] for n in nuclei]
    fr = _render_frame(rng, nuclei, cns, shape=shape, bg=bg, illum=illum, bg_level=bg_level)
    # Relabel 1..n in raster order of first appearance (placement order puts clumps first).
    ids, first = np.unique(fr.index, return_index=True)
    present = ids[ids > 0][np.argsort(first[ids > 0], kind="stable")]
    lut = np.zeros(len(nuclei) + 1, dtype=np.int64)
    lut[present] = np.arange(1, len(present) + 1)
    labels = lut[fr.index].astype(np.uint16)
    cells = lut[fr.cells].astype(np.uint16)
    info = {int(lut[i]): (0, fr.levels[i - 1]) for i in present}
    table = _finalise_table(_cells_table(0, labels, cells, info))
    return {
        "name": name,
        "image": fr.image,
        "labels": labels,
        "cell_labels": cells,
        "cells": table,
        "pixel_size_um": float(pixel_size_um),
        "frame_interval_s": None,
        "channels": list(CHANNELS),
    }


def make_stills(
    seed: int = 0,
    *,
    n_images: int = 4,
    shape: tuple[int, int] = (256, 256),
    pixel_size_um: float = 0.65,
) -> list[dict]:
    """Generate still two-channel fields of nuclei with ground truth.

    Parameters
    ----------
    seed : int
        Seed of :func:`numpy.random.default_rng`; the same seed gives identical output.
        Field ``k`` does not depend on ``n_images``.
    n_images : int
        Number of fields.
    shape : tuple of int
        ``(Y, X)`` size in pixels.
    pixel_size_um : float
        Pixel size written to the metadata (does not change the images).

    Returns
    -------
    list of dict
        One dict per field with keys ``name`` (``field_00`` ...), ``image``
        (uint16, ``(C=2, Y, X)``: nucleus, reporter), ``labels`` (uint16 nucleus
        labels ``(Y, X)``), ``cell_labels`` (uint16 whole-cell labels, same ids),
        ``cells`` (DataFrame, one row per nucleus, see module docs),
        ``pixel_size_um``, ``frame_interval_s`` (None) and ``channels``.
    """
    rng = np.random.default_rng(seed)
    children = rng.spawn(int(n_images))
    shape = (int(shape[0]), int(shape[1]))
    return [
        _make_still(child, shape=shape, name=f"field_{k:02d}", pixel_size_um=pixel_size_um)
        for k, child in enumerate(children)
    ]


# ---------------------------------------------------------------------------
# Time-lapse
# ---------------------------------------------------------------------------


def _bond_partners(nuclei: list[_Nucleus]) -> list[tuple[int, int]]:
    """Pairs of list indices of bonded (clump-mate, touching) nuclei."""
    pos = {id(n): i for i, n in enumerate(nuclei)}
    pairs = []
    for i, n in enumerate(nuclei):
        for other in n.bonds:
            j = pos.get(id(other))
            if j is not None and i < j:
                pairs.append((i, j))
    return pairs


def _relax(nuclei: list[_Nucleus], *, n_iter: int = 6) -> np.ndarray:
    """Soft repulsion (no passing through) and clump cohesion, in place.

    Bonded pairs (clump mates attached to each other) are kept within
    ``_OVERLAP_RANGE`` of their contact distance (touching, slight overlap);
    other pairs are pushed apart to ``_REPULSION_GAP_PX`` from touching.

    Returns
    -------
    ndarray
        ``(n, 2)`` total push (dy, dx) each nucleus received from non-bonded
        neighbours (used to make colliding clumps bounce).
    """
    pushes = np.zeros((len(nuclei), 2))
    if len(nuclei) < 2:
        return pushes
    bonds = set(_bond_partners(nuclei))
    for _ in range(n_iter):
        ys = np.array([n.y for n in nuclei])
        xs = np.array([n.x for n in nuclei])
        reach = np.array([n.a for n in nuclei])
        dy = ys[:, None] - ys[None, :]
        dx = xs[:, None] - xs[None, :]
        dist = np.hypot(dy, dx)
        near = dist < reach[:, None] + reach[None, :] + _REPULSION_GAP_PX + 1.0
        cand = [(i, j) for i, j in zip(*np.nonzero(np.triu(near, 1)))]
        cand = sorted(set((int(i), int(j)) for i, j in cand) | bonds)
        shift = np.zeros((len(nuclei), 2))
        for i, j in cand:
            d = dist[i, j]
            contact = _contact_distance(nuclei[j], nuclei[i], dy[i, j], dx[i, j])
            bonded = (i, j) in bonds
            closest = _OVERLAP_RANGE[0] * contact if bonded else contact + _REPULSION_GAP_PX
            if d < closest:
                delta = closest - d
            elif bonded and d > _OVERLAP_RANGE[1] * contact:
                delta = 0.5 * (_OVERLAP_RANGE[1] * contact - d)
            else:
                continue
            uy, ux = (dy[i, j] / d, dx[i, j] / d) if d > 0 else (1.0, 0.0)
            push = 0.5 * delta * np.array([uy, ux])
            shift[i] += push
            shift[j] -= push
            if not bonded:
                pushes[i] += push
                pushes[j] -= push
        for n, (sy, sx) in zip(nuclei, shift):
            n.y += float(sy)
            n.x += float(sx)
    return pushes


def _bounce(nuclei: list[_Nucleus], pushes: np.ndarray, clump_vel: dict[int, np.ndarray]) -> None:
    """Reflect the velocity of clumps pushed by others so that collisions are transient."""
    total: dict[int, np.ndarray] = {}
    for n, p in zip(nuclei, pushes):
        total[n.clump] = total.get(n.clump, np.zeros(2)) + p
    for c in sorted(total):
        norm = float(np.hypot(*total[c]))
        if norm <= 1e-9:
            continue
        u = total[c] / norm
        v = clump_vel[c]
        along = float(v @ u)
        if along < 0:
            clump_vel[c] = v - 2.0 * along * u


def _step(rng: np.random.Generator, nuclei: list[_Nucleus], clump_vel: dict[int, np.ndarray]) -> None:
    """Persistent random walk of clumps plus individual jitter and slow rotation."""
    for c in sorted(clump_vel):
        v = clump_vel[c]
        speed = float(np.hypot(*v))
        target = float(rng.uniform(1.0, 3.0))
        turn = float(rng.normal(0.0, 0.3))
        ang = float(np.arctan2(v[0], v[1])) + turn if speed > 0 else float(rng.uniform(0, 2 * np.pi))
        new_speed = 0.6 * speed + 0.4 * target
        clump_vel[c] = np.array([new_speed * np.sin(ang), new_speed * np.cos(ang)])
    for n in nuclei:
        v = clump_vel[n.clump]
        n.y += float(v[0] + rng.normal(0.0, 0.3))
        n.x += float(v[1] + rng.normal(0.0, 0.3))
        n.theta += float(rng.normal(0.0, 0.06))
        n.age += 1


def _divide(rng: np.random.Generator, mother: _Nucleus, new_clump: int) -> tuple[_Nucleus, _Nucleus]:
    """Two touching daughters (~0.7x mother area each) either side of the mother's centre."""
    phi = float(rng.uniform(0.0, 2.0 * np.pi))
    uy, ux = np.sin(phi), np.cos(phi)
    scale = float(np.sqrt(0.7))
    daughters = []
    for _ in range(2):
        d = replace(
            mother,
            a=mother.a * scale,
            b=mother.b * scale,
            theta=float(rng.uniform(0.0, np.pi)),
            brightness=mother.brightness * float(rng.uniform(1.0, 1.2)),
            texture=_texture_patch(rng, half_size_px=int(np.ceil(mother.a * scale)) + 3),
            clump=new_clump,
            track_id=0,
            parent=mother.track_id,
            age=0,
            seen=False,
            bonds=[],
        )
        daughters.append(d)
    d1, d2 = daughters
    half = 0.5 * _contact_distance(d2, d1, uy, ux) * float(np.mean(_OVERLAP_RANGE))
    d1.y, d1.x = mother.y + half * uy, mother.x + half * ux
    d2.y, d2.x = mother.y - half * uy, mother.x - half * ux
    d1.bonds.append(d2)
    d2.bonds.append(d1)
    return d1, d2


def _spawn_at_border(
    rng: np.random.Generator, shape: tuple[int, int], *, bg_level: float, clump: int
) -> tuple[_Nucleus, np.ndarray]:
    """A nucleus entering from a random border, centre just outside, moving inwards."""
    h, w = shape
    nuc = _new_nucleus(rng, bg_level=bg_level, still=False)
    side = int(rng.integers(4))
    pos = float(rng.uniform(0.1, 0.9))
    out = 0.3 * nuc.a
    if side == 0:
        nuc.y, nuc.x, ang = -out, pos * (w - 1), np.pi / 2
    elif side == 1:
        nuc.y, nuc.x, ang = h - 1 + out, pos * (w - 1), -np.pi / 2
    elif side == 2:
        nuc.y, nuc.x, ang = pos * (h - 1), -out, 0.0
    else:
        nuc.y, nuc.x, ang = pos * (h - 1), w - 1 + out, np.pi
    ang += float(rng.uniform(-0.6, 0.6))
    speed = float(rng.uniform(1.0, 3.0))
    nuc.clump = clump
    return nuc, np.array([speed * np.sin(ang), speed * np.cos(ang)])


def make_timelapse(
    seed: int = 1,
    *,
    n_frames: int = 16,
    shape: tuple[int, int] = (256, 256),
    pixel_size_um: float = 0.65,
    frame_interval_s: float = 270.0,
    stimulus_frame: int = 6,
) -> dict:
    """Generate a two-channel time-lapse of moving, dividing nuclei with ground truth.

    Nuclei (about 40-60 in 256x256) move in clumps by a persistent random walk
    (1-3 px/frame) with soft repulsion and clump cohesion, may leave or enter at
    the border, and 2-4 of them divide. The reporter ratio of every cell follows
    :func:`cn_time_course` (stimulus right after ``stimulus_frame``); daughters
    inherit their mother's time course.

    Parameters
    ----------
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    n_frames : int
        Number of frames T.
    shape : tuple of int
        ``(Y, X)`` size in pixels.
    pixel_size_um : float
        Pixel size written to the metadata.
    frame_interval_s : float
        Time between frames written to the metadata.
    stimulus_frame : int
        Last frame before the stimulus.

    Returns
    -------
    dict
        Keys ``name`` (``movie_00``), ``image`` (uint16 ``(T, C=2, Y, X)``),
        ``labels`` (uint16 ``(T, Y, X)``, value = track id), ``cell_labels``
        (uint16 whole-cell labels, same ids), ``cells`` (DataFrame, one row per
        object per frame), ``tracks`` (DataFrame ``track_id, start, end, parent``
        as CTC ``man_track.txt``), ``pixel_size_um``, ``frame_interval_s``,
        ``stimulus_frame`` and ``channels``.
    """
    rng = np.random.default_rng(seed)
    shape = (int(shape[0]), int(shape[1]))
    n_frames = int(n_frames)
    h, w = shape
    bg_level = float(rng.uniform(*_NUC_BG_RANGE))
    bg, illum = _background_field(rng, shape, level=bg_level)
    n_target = max(1, int(round(float(rng.uniform(6.6e-4, 7.4e-4)) * h * w)))
    nuclei = _place_clumps(rng, shape, n_target=n_target, bg_level=bg_level, still=False)
    # Bonds from placement are list indices; turn them into object references.
    for n in nuclei:
        n.bonds = [nuclei[j] for j in n.bonds]
    n_clumps = 1 + max((n.clump for n in nuclei), default=-1)
    clump_vel: dict[int, np.ndarray] = {}
    for c in range(n_clumps):
        ang, sp = rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 3.0)
        clump_vel[c] = np.array([sp * np.sin(ang), sp * np.cos(ang)])

    n_div = int(rng.integers(2, 5))
    div_candidates = np.arange(3, n_frames - 1)
    n_div = min(n_div, div_candidates.size)
    div_frames = (
        sorted(int(f) for f in rng.choice(div_candidates, size=n_div, replace=False)) if n_div else []
    )
    entry_candidates = np.arange(1, max(n_frames - 1, 1))
    n_entries = min(int(rng.integers(2, 6)), entry_candidates.size)
    entry_frames = sorted(int(f) for f in rng.choice(entry_candidates, size=n_entries)) if n_entries else []

    next_id = 1
    parents: dict[int, int] = {}
    images, labels_t, cells_t, tables = [], [], [], []
    for t in range(n_frames):
        if t > 0:
            _step(rng, nuclei, clump_vel)
            n_active = sum(1 for n in nuclei if n.seen)
            n_new = entry_frames.count(t) + (1 if n_active < n_target - 3 else 0)
            for _ in range(n_new):
                nuc, vel = _spawn_at_border(rng, shape, bg_level=bg_level, clump=n_clumps)
                clump_vel[n_clumps] = vel
                n_clumps += 1
                nuclei.append(nuc)
        for _ in range(div_frames.count(t)):
            margin = 20.0
            pool = [
                i for i, n in enumerate(nuclei)
                if n.seen and n.age >= 2 and n.parent == 0 and n.a * n.b >= 64.0
                and margin <= n.y <= h - 1 - margin and margin <= n.x <= w - 1 - margin
            ]
            if not pool:
                continue
            i = pool[int(rng.integers(len(pool)))]
            mother = nuclei[i]
            d1, d2 = _divide(rng, mother, new_clump=n_clumps)
            clump_vel[n_clumps] = clump_vel[mother.clump].copy()
            n_clumps += 1
            for other in mother.bonds:
                other.bonds = [b for b in other.bonds if b is not mother]
            nuclei[i:i + 1] = [d1, d2]
        _bounce(nuclei, _relax(nuclei), clump_vel)

        cns = [cn_time_course(n.cn, t, stimulus_frame=stimulus_frame) for n in nuclei]
        fr = _render_frame(rng, nuclei, cns, shape=shape, bg=bg, illum=illum, bg_level=bg_level)
        counts = np.bincount(fr.index.ravel(), minlength=len(nuclei) + 1)
        # A nucleus is annotated once at least _MIN_VISIBLE_PX of it is in the field
        # (slivers of cells entering or leaving at the border are not annotated).
        present = set((np.flatnonzero(counts[1:] >= _MIN_VISIBLE_PX) + 1).tolist())
        # Update the population: tracks end for good when a nucleus is no longer visible.
        keep = []
        lut = np.zeros(len(nuclei) + 1, dtype=np.int64)
        for i, n in enumerate(nuclei):
            visible = (i + 1) in present
            if visible and not n.seen:
                n.seen = True
                n.track_id = next_id
                parents[next_id] = n.parent
                next_id += 1
            if visible:
                lut[i + 1] = n.track_id
            if not visible:  # left the field (or, rarely, hidden at birth): gone for good
                for other in n.bonds:
                    other.bonds = [b for b in other.bonds if b is not n]
                continue
            keep.append(n)
        labels = lut[fr.index].astype(np.uint16)
        cells = lut[fr.cells].astype(np.uint16)
        info = {int(lut[i]): (nuclei[i - 1].parent, fr.levels[i - 1]) for i in present}
        tables.append(_cells_table(t, labels, cells, info))
        images.append(fr.image)
        labels_t.append(labels)
        cells_t.append(cells)
        nuclei = keep

    labels_arr = np.stack(labels_t)
    table = _finalise_table(pd.concat(tables, ignore_index=True))
    tracks = _tracks_table(labels_arr, parents)
    return {
        "name": "movie_00",
        "image": np.stack(images),
        "labels": labels_arr,
        "cell_labels": np.stack(cells_t),
        "cells": table,
        "tracks": tracks,
        "pixel_size_um": float(pixel_size_um),
        "frame_interval_s": float(frame_interval_s),
        "stimulus_frame": int(stimulus_frame),
        "channels": list(CHANNELS),
    }


def _tracks_table(labels: np.ndarray, parents: dict[int, int]) -> pd.DataFrame:
    """CTC ``man_track.txt`` table (``track_id, start, end, parent``) from a label movie."""
    rows = []
    frames_of: dict[int, list[int]] = {}
    for t in range(labels.shape[0]):
        for lab in np.unique(labels[t]):
            if lab:
                frames_of.setdefault(int(lab), []).append(t)
    for lab in sorted(frames_of):
        fr = frames_of[lab]
        rows.append({"track_id": lab, "start": fr[0], "end": fr[-1], "parent": int(parents.get(lab, 0))})
    return pd.DataFrame(rows, columns=["track_id", "start", "end", "parent"]).astype(np.int64)


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def _write_tif(path: pathlib.Path, arr: np.ndarray, *, axes: str, pixel_size_um: float,
               frame_interval_s: float | None = None) -> None:
    io.write_stack(path, arr, axes=axes, pixel_size_um=pixel_size_um, frame_interval_s=frame_interval_s)


def _write_csv(path: pathlib.Path, df: pd.DataFrame) -> None:
    io.write_table(df.sort_values(["frame", "label"], kind="stable"), path)


def example_files(outdir: str | os.PathLike, *, n_images: int = N_EXAMPLE_STILLS) -> list[pathlib.Path]:
    """The files :func:`write_example` writes (sorted), without writing them."""
    out = pathlib.Path(outdir)
    files = []
    for i in range(n_images):
        name = f"field_{i:02d}"
        files += [out / "stills" / f"{name}.tif", out / "stills" / "gt" / f"{name}.tif",
                  out / "stills" / "gt" / f"{name}.csv"]
    files += [out / "timelapse" / "movie_00.tif", out / "timelapse" / "gt" / "movie_00.tif",
              out / "timelapse" / "gt" / "movie_00.csv", out / "timelapse" / "gt" / "movie_00_tracks.txt"]
    from .synthetic_rods import rods_example_files

    return sorted(files + list(rods_example_files(out)))


def write_example(outdir: str | os.PathLike, *, seed: int = 0) -> list[pathlib.Path]:
    """Write the embedded example data set (stills and a time-lapse) with ground truth.

    Layout::

        outdir/stills/field_00.tif ...         CYX uint16 (nucleus, reporter)
        outdir/stills/gt/field_00.tif ...      YX uint16 nucleus labels
        outdir/stills/gt/field_00.csv ...      cells table
        outdir/timelapse/movie_00.tif          TCYX uint16
        outdir/timelapse/gt/movie_00.tif       TYX uint16 labels (= track ids)
        outdir/timelapse/gt/movie_00.csv       cells table
        outdir/timelapse/gt/movie_00_tracks.txt  CTC man_track.txt (L B E P)

    Parameters
    ----------
    outdir : path-like
        Output folder (created).
    seed : int
        Stills use ``seed``, the time-lapse ``seed + 1``.

    Returns
    -------
    list of pathlib.Path
        The written files, sorted.
    """
    out = pathlib.Path(outdir)
    written: list[pathlib.Path] = []
    for s in make_stills(seed, n_images=N_EXAMPLE_STILLS):
        px = s["pixel_size_um"]
        p = out / "stills" / f"{s['name']}.tif"
        _write_tif(p, s["image"], axes="CYX", pixel_size_um=px)
        g = out / "stills" / "gt" / f"{s['name']}.tif"
        _write_tif(g, s["labels"], axes="YX", pixel_size_um=px)
        c = out / "stills" / "gt" / f"{s['name']}.csv"
        _write_csv(c, s["cells"])
        written += [p, g, c]
    m = make_timelapse(seed + 1)
    px, dt = m["pixel_size_um"], m["frame_interval_s"]
    p = out / "timelapse" / f"{m['name']}.tif"
    _write_tif(p, m["image"], axes="TCYX", pixel_size_um=px, frame_interval_s=dt)
    g = out / "timelapse" / "gt" / f"{m['name']}.tif"
    _write_tif(g, m["labels"], axes="TYX", pixel_size_um=px, frame_interval_s=dt)
    c = out / "timelapse" / "gt" / f"{m['name']}.csv"
    _write_csv(c, m["cells"])
    tr = out / "timelapse" / "gt" / f"{m['name']}_tracks.txt"
    lines = [f"{r.track_id} {r.start} {r.end} {r.parent}\n" for r in m["tracks"].itertuples(index=False)]
    with io.atomic_path(tr) as tmp:
        pathlib.Path(tmp).write_text("".join(lines))
    written += [p, g, c, tr]
    from .synthetic_rods import write_rods_example

    written += list(write_rods_example(out, seed=seed))
    return sorted(written)


# ---------------------------------------------------------------------------
# A hard field: where real data were hard
# ---------------------------------------------------------------------------


def _hard_plan(rng: np.random.Generator, *, shape: tuple[int, int], diameter_px: float,
               n_clumps: int) -> list[tuple[float, float, float, float, float]]:
    """Nuclei ``(y, x, semi-axis a, semi-axis b, angle)`` in clumps of 1-5 touching nuclei.

    Clump seeds are drawn at random at least 3 diameters apart (rejection, a bounded
    number of tries); each further nucleus of a clump touches a random earlier one
    (centre distance 0.9 x the sum of their mean radii, a slight overlap).
    """
    margin = 0.8 * diameter_px
    seeds: list[tuple[float, float]] = []
    for _ in range(50 * n_clumps):
        if len(seeds) == n_clumps:
            break
        y = rng.uniform(margin + diameter_px, shape[0] - margin - diameter_px)
        x = rng.uniform(margin + diameter_px, shape[1] - margin - diameter_px)
        if all((y - sy) ** 2 + (x - sx) ** 2 >= (3.0 * diameter_px) ** 2 for sy, sx in seeds):
            seeds.append((y, x))
    nuclei = []
    for sy, sx in seeds:
        clump: list[tuple[float, float, float, float, float]] = []
        for _ in range(int(rng.integers(1, 6))):
            d = diameter_px * rng.uniform(0.8, 1.2)
            aspect = rng.uniform(1.0, 1.4)
            a, b = d / 2 * math.sqrt(aspect), d / 2 / math.sqrt(aspect)
            angle = rng.uniform(0.0, math.pi)
            if not clump:
                clump.append((sy, sx, a, b, angle))
                continue
            hy, hx, ha, hb, _ = clump[int(rng.integers(len(clump)))]
            t = rng.uniform(0.0, 2 * math.pi)
            dist = 0.9 * ((ha + hb) / 2 + (a + b) / 2)
            y, x = hy + dist * math.sin(t), hx + dist * math.cos(t)
            if margin <= y <= shape[0] - margin and margin <= x <= shape[1] - margin:
                clump.append((y, x, a, b, angle))
        nuclei += clump
    return nuclei


def _hard_labels(nuclei: list[tuple[float, float, float, float, float]], shape: tuple[int, int]) -> np.ndarray:
    """Label image of ellipses; a pixel inside several goes to the one it is deepest in."""
    labels = np.zeros(shape, dtype=np.int32)
    depth = np.full(shape, np.inf)
    for k, (cy, cx, a, b, angle) in enumerate(nuclei, start=1):
        y0, y1 = max(int(cy - a) - 1, 0), min(int(cy + a) + 2, shape[0])
        x0, x1 = max(int(cx - a) - 1, 0), min(int(cx + a) + 2, shape[1])
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
        v = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
        rho = (u / a) ** 2 + (v / b) ** 2
        win = (rho <= 1.0) & (rho < depth[y0:y1, x0:x1])
        labels[y0:y1, x0:x1][win] = k
        depth[y0:y1, x0:x1][win] = rho[win]
    return labels


def hard_nuclei(
    seed: int = 0,
    *,
    shape: tuple[int, int] = (256, 256),
    diameter_px: float = 20.0,
    n_clumps: int = 16,
    brightness_spread: float = 10.0,
    contrast_counts: float = 1000.0,
    background_counts: float = 200.0,
) -> dict:
    """One field of nuclei that is hard where real data were hard, with its true labels.

    The difficulties of the real sets in one image: a ``brightness_spread``-fold
    range of nucleus brightness (log-uniform, independent of position, so dim
    nuclei touch bright ones), clumps of 1-5 touching nuclei, an uneven
    background (a linear gradient and broad blotches, together as strong as the
    dimmest nuclei), chromatin texture, optical blur, shot and read noise. A
    global threshold (Otsu) cannot keep the dim nuclei without merging the
    bright clumps and the bright background; a segmentation that adapts to the
    local background and to each object's level can.

    Parameters
    ----------
    seed : int
        Seed of :func:`numpy.random.default_rng`; the same seed gives identical output.
    shape : tuple of int
        ``(Y, X)`` size in pixels.
    diameter_px : float
        Typical nucleus diameter (px); each nucleus is 0.8-1.2 x it, aspect 1-1.4.
    n_clumps : int
        Number of clumps tried (fewer when they do not fit 3 diameters apart).
    brightness_spread : float
        Ratio of the brightest to the dimmest nucleus contrast (>= 1).
    contrast_counts : float
        Contrast of the brightest nuclei above the background (counts).
    background_counts : float
        Mean background level (counts).

    Returns
    -------
    dict
        ``image`` (uint16 ``(Y, X)``), ``labels`` (int32 ``(Y, X)``, 1..N),
        ``diameter_px`` (the ``diameter_px`` asked for) and ``levels`` (contrast
        of each label, counts, index ``label - 1``).

    Raises
    ------
    ValueError
        ``brightness_spread < 1``, ``diameter_px`` or the counts not positive, or
        ``shape`` too small for one clump (each side >= 4 x ``diameter_px``).
    """
    shape = (int(shape[0]), int(shape[1]))
    if not brightness_spread >= 1:
        raise ValueError(f"hard_nuclei: brightness_spread must be >= 1, got {brightness_spread!r}")
    if not (diameter_px > 0 and contrast_counts > 0 and background_counts > 0):
        raise ValueError("hard_nuclei: diameter_px, contrast_counts and background_counts must be > 0, got "
                         f"{diameter_px!r}, {contrast_counts!r}, {background_counts!r}")
    if min(shape) < 4 * diameter_px:
        raise ValueError(f"hard_nuclei: shape {shape} must be at least 4 x diameter_px ({diameter_px:g}) on each side")
    rng = np.random.default_rng(seed)
    nuclei = _hard_plan(rng, shape=shape, diameter_px=float(diameter_px), n_clumps=int(n_clumps))
    labels = _hard_labels(nuclei, shape)
    dim = contrast_counts / brightness_spread
    levels = dim * brightness_spread ** rng.uniform(0.0, 1.0, len(nuclei))
    texture = np.clip(1.0 + 0.25 * _smooth_noise(rng, shape, sigma_px=diameter_px / 8), 0.5, 1.5)
    signal = np.concatenate([[0.0], levels])[labels] * texture
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    angle = rng.uniform(0.0, 2 * math.pi)
    ramp = ((yy / shape[0] - 0.5) * math.sin(angle) + (xx / shape[1] - 0.5) * math.cos(angle))
    blotches = _smooth_noise(rng, shape, sigma_px=min(shape) / 6)
    background = background_counts + dim * (1.2 * ramp + 0.8 * blotches)
    expected = np.maximum(ndi.gaussian_filter(signal, 1.5) + background, 0.0)
    image = rng.poisson(expected) + rng.normal(0.0, 5.0, shape)
    return {
        "image": np.clip(np.rint(image), 0, 65535).astype(np.uint16),
        "labels": labels,
        "diameter_px": float(diameter_px),
        "levels": levels,
    }
