"""Parameter resolution: config values (µm or px) to pixel parameters.

Lengths in the config are numbers in the dataset's length unit (µm when the
pixel size is known, else pixels) or strings with an explicit unit (``"5px"``,
``"3um"``). Every size parameter left empty (``null``) defaults from the one
knob ``segment.diameter`` (the typical object diameter); the rules live here
and are documented in ``config/README.md``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from .errors import InputError

_UNIT_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(px|um|µm|micron)\s*$")

#: Default fractions of the diameter (documented in config/README.md).
SMOOTH_SIGMA_PER_DIAMETER = 1 / 12
SMOOTH_WINDOW_PER_DIAMETER = 1 / 6
MIN_DIAMETER_PER_DIAMETER = 0.4
MAX_DIAMETER_PER_DIAMETER = 3.0
PEAK_SPACING_PER_DIAMETER = 0.25
#: Gaussian smoothing of the distance transform before seeds are found (split.sigma).
SPLIT_SIGMA_PER_DIAMETER = 0.05
#: Touching pieces whose union is at most this many diameters across are merged (split.merge).
MERGE_DIAMETER_PER_DIAMETER = 0.95
LOCAL_BLOCK_PER_DIAMETER = 3.0
#: Smallest object diameter accepted (px): below it every size parameter degenerates.
MIN_DIAMETER_PX = 2.0


def to_px(value: float | str | None, *, pixel_size_um: float | None, key: str) -> float | None:
    """Convert a config length to pixels.

    Parameters
    ----------
    value : float, str or None
        A number in the dataset's unit (µm when ``pixel_size_um`` is known, else
        px) or a string such as ``"5px"`` or ``"3um"``. None passes through.
    pixel_size_um : float or None
        Pixel size of the image.
    key : str
        Config key, named in error messages.

    Returns
    -------
    float or None
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError(f"config key {key}: expected a length, got {value!r}; give a number or e.g. '5px'")
    if isinstance(value, (int, float)):
        number = float(value)
        px = number / pixel_size_um if pixel_size_um else number
    else:
        m = _UNIT_RE.match(str(value))
        if not m:
            raise InputError(
                f"config key {key}: cannot read length {value!r}; give a number or a string like '5px' or '3um'"
            )
        number = float(m.group(1))
        if m.group(2) == "px":
            px = number
        else:
            if not pixel_size_um:
                raise InputError(
                    f"config key {key}: {value!r} is in µm but the image has no pixel size; "
                    "set the dataset's pixel_size_um or give the length in px"
                )
            px = number / pixel_size_um
    if not math.isfinite(px) or px < 0:
        raise InputError(f"config key {key}: length must be ≥ 0, got {value!r}")
    return px


def diameter_px(diameter: float | str, *, pixel_size_um: float | None, prefix: str = "segment") -> float:
    """The typical object diameter in pixels (``segment.diameter``)."""
    d = to_px(diameter, pixel_size_um=pixel_size_um, key=f"{prefix}.diameter")
    if not d or d <= 0:
        raise InputError(f"config key {prefix}.diameter: must be > 0; give the typical object diameter")
    if d < MIN_DIAMETER_PX:
        raise InputError(
            f"config key {prefix}.diameter: {diameter!r} is {d:.3g} px, below {MIN_DIAMETER_PX:g} px: objects that "
            "small cannot be segmented; give the typical object diameter"
            + (" in µm (the image is calibrated)" if pixel_size_um else " in px")
        )
    return d


def smooth_params(smooth: Mapping[str, Any], *, diameter: float | str, pixel_size_um: float | None,
                  prefix: str = "segment") -> dict:
    """Keyword arguments of :func:`snakescope.segment.smooth` from ``segment.smooth``."""
    d = diameter_px(diameter, pixel_size_um=pixel_size_um, prefix=prefix)
    method = smooth["method"]
    size = to_px(smooth["size"], pixel_size_um=pixel_size_um, key=f"{prefix}.smooth.size")
    if size is None:
        size = d * (SMOOTH_SIGMA_PER_DIAMETER if method == "gaussian" else SMOOTH_WINDOW_PER_DIAMETER)
    return {"method": method, "size_px": size}


def _manual_value(section: Mapping[str, Any], *, key: str) -> None:
    """A manual threshold needs a finite ``value``."""
    value = section.get("value")
    if section.get("method") == "manual" and value is None:
        raise InputError(f"config key {key}.value: method 'manual' needs a value; give the threshold level")
    if value is not None and not math.isfinite(float(value)):
        raise InputError(f"config key {key}.value: {value!r} is not a finite number; give the threshold level")


def threshold_params(threshold: Mapping[str, Any], *, diameter: float | str, pixel_size_um: float | None,
                     prefix: str = "segment") -> dict:
    """Keyword arguments of :func:`snakescope.segment.threshold_stack` from ``segment.threshold``."""
    d = diameter_px(diameter, pixel_size_um=pixel_size_um, prefix=prefix)
    _manual_value(threshold, key=f"{prefix}.threshold")
    block = to_px(threshold["block_size"], pixel_size_um=pixel_size_um, key=f"{prefix}.threshold.block_size")
    return {
        "scope": threshold["scope"],
        "method": threshold["method"],
        "value": threshold["value"],
        "correction": float(threshold["correction"]),
        "classes": int(threshold["classes"]),
        "level": int(threshold["level"]),
        "block_size_px": block if block is not None else d * LOCAL_BLOCK_PER_DIAMETER,
        "offset": float(threshold["offset"]),
        "diameter_px": d,
    }


def _sizes(refine: Mapping[str, Any], d: float, pixel_size_um: float | None, prefix: str) -> tuple[float, float | None]:
    min_d = to_px(refine["min_diameter"], pixel_size_um=pixel_size_um, key=f"{prefix}.refine.min_diameter")
    max_d = to_px(refine["max_diameter"], pixel_size_um=pixel_size_um, key=f"{prefix}.refine.max_diameter")
    min_d = d * MIN_DIAMETER_PER_DIAMETER if min_d is None else min_d
    max_d = d * MAX_DIAMETER_PER_DIAMETER if max_d is None else max_d
    if max_d <= min_d:
        raise InputError(
            f"config keys {prefix}.refine.min_diameter/max_diameter: max ({max_d:.3g} px) must exceed "
            f"min ({min_d:.3g} px)"
        )
    return min_d, max_d


def refine_params(refine: Mapping[str, Any], *, diameter: float | str, pixel_size_um: float | None,
                  prefix: str = "segment") -> dict:
    """Keyword arguments of :func:`snakescope.segment.refine` from ``segment.refine``."""
    d = diameter_px(diameter, pixel_size_um=pixel_size_um, prefix=prefix)
    min_d, _ = _sizes(refine, d, pixel_size_um, prefix)

    def length(name: str) -> float:
        value = to_px(refine[name], pixel_size_um=pixel_size_um, key=f"{prefix}.refine.{name}")
        return 0.0 if value is None else value

    return {
        "fill_holes": bool(refine["fill_holes"]),
        "opening_radius_px": length("opening_radius"),
        "closing_radius_px": length("closing_radius"),
        "min_diameter_px": min_d,
    }


def split_params(split: Mapping[str, Any], refine: Mapping[str, Any], *, diameter: float | str,
                 pixel_size_um: float | None, prefix: str = "segment") -> dict:
    """Keyword arguments of :func:`snakescope.segment.label_frame` from ``segment.split``
    and the size/border filters of ``segment.refine``."""
    d = diameter_px(diameter, pixel_size_um=pixel_size_um, prefix=prefix)
    min_d, max_d = _sizes(refine, d, pixel_size_um, prefix)
    spacing = to_px(split["min_distance"], pixel_size_um=pixel_size_um, key=f"{prefix}.split.min_distance")
    sigma = to_px(split["sigma"], pixel_size_um=pixel_size_um, key=f"{prefix}.split.sigma")
    return {
        "method": split["method"],
        "min_distance_px": d * PEAK_SPACING_PER_DIAMETER if spacing is None else spacing,
        "h_px": to_px(split["h"], pixel_size_um=pixel_size_um, key=f"{prefix}.split.h"),
        "sigma_px": d * SPLIT_SIGMA_PER_DIAMETER if sigma is None else sigma,
        "min_diameter_px": min_d,
        "max_diameter_px": max_d,
        "clear_border": bool(refine["clear_border"]),
        "merge_max_diameter_px": d * MERGE_DIAMETER_PER_DIAMETER if split["merge"] else 0.0,
    }


def ring_params(rings: Mapping[str, Any], *, diameter: float | str, pixel_size_um: float | None,
                prefix: str = "rings") -> dict:
    """Keyword arguments of :func:`snakescope.rings.ring_labels` from the ``rings`` section."""
    kwargs = {}
    for name in ("inner", "width", "buffer"):
        kwargs[f"{name}_px"] = to_px(rings[name], pixel_size_um=pixel_size_um, key=f"{prefix}.{name}")
    if not kwargs["width_px"]:
        raise InputError(f"config key {prefix}.width: must be > 0; give the ring width, e.g. '4px'")
    return kwargs


def background_params(background: Mapping[str, Any], *, diameter: float | str, pixel_size_um: float | None,
                      prefix: str = "rings.background") -> dict:
    """Resolve a background section: keyword arguments of
    :func:`snakescope.rings.subtract_background` plus ``exclude_distance_px``."""
    d = diameter_px(diameter, pixel_size_um=pixel_size_um)
    radius = to_px(background["radius"], pixel_size_um=pixel_size_um, key=f"{prefix}.radius")
    exclude = to_px(background["exclude_distance"], pixel_size_um=pixel_size_um, key=f"{prefix}.exclude_distance")
    return {
        "method": background["method"],
        "value": float(background["value"]),
        "percentile": float(background["percentile"]),
        "radius_px": 3 * d if radius is None else radius,
        "exclude_distance_px": d if exclude is None else exclude,
    }


def track_params(track: Mapping[str, Any], *, diameter: float | str, pixel_size_um: float | None,
                 prefix: str = "track") -> dict:
    """Keyword arguments of :func:`snakescope.track.track_objects` from the ``track`` section.

    Defaults: ``max_distance`` = 1 diameter, ``gap_distance`` = 1.5 × max_distance,
    ``division_distance`` = max_distance.
    """
    d = diameter_px(diameter, pixel_size_um=pixel_size_um)
    max_d = to_px(track["max_distance"], pixel_size_um=pixel_size_um, key=f"{prefix}.max_distance")
    max_d = d if max_d is None else max_d
    if max_d <= 0:
        raise InputError(f"config key {prefix}.max_distance: must be > 0")
    gap = to_px(track["gap_distance"], pixel_size_um=pixel_size_um, key=f"{prefix}.gap_distance")
    div = to_px(track["division_distance"], pixel_size_um=pixel_size_um, key=f"{prefix}.division_distance")
    return {
        "max_distance_px": max_d,
        "gap_frames": int(track["gap_frames"]),
        "gap_distance_px": 1.5 * max_d if gap is None else gap,
        "divisions": bool(track["divisions"]),
        "division_distance_px": max_d if div is None else div,
        "feature_weights": dict(track["features"]) or None,
        "min_length": int(track["min_length"]),
    }


def log_edges_params(log_edges: Mapping[str, Any], *, diameter: float | str, pixel_size_um: float | None,
                     prefix: str = "segment") -> dict:
    """Keyword arguments of :func:`snakescope.rods.log_edges_segment` from
    ``segment.log_edges`` (``segment.diameter`` is the rod width)."""
    from . import rods

    width = diameter_px(diameter, pixel_size_um=pixel_size_um, prefix=prefix)
    kwargs = rods.log_edges_defaults(width)
    for key, name in (("sigma", "sigma_px"), ("mask_dilation", "mask_dilation_px"),
                      ("seed_erosion", "seed_erosion_px")):
        value = to_px(log_edges[key], pixel_size_um=pixel_size_um, key=f"{prefix}.log_edges.{key}")
        if value is not None:
            kwargs[name] = value
    kwargs["invert"] = bool(log_edges["invert"])
    return kwargs


#: Keys of the ``segment`` section each method reads in rule ``label``.
LABEL_KEYS = {
    "threshold": ("diameter", "split", "refine"),
    "log_edges": ("diameter", "log_edges", "channel"),
    "labels": ("channel",),
    "stardist": ("model", "channel"),
    "cellpose": ("model", "channel"),
}


def label_settings(segment: Mapping[str, Any], reading: Mapping[str, Any]) -> dict:
    """The settings rule ``label`` passes to its step: only what the dataset's
    ``segment.method`` uses, so a change to another method's keys reruns nothing.

    Methods that read the raw image (all but ``threshold``) also get
    ``reading`` (how to read the image).
    """
    method = segment["method"]
    settings = {"method": method, **{key: segment[key] for key in LABEL_KEYS[method]}}
    if method != "threshold":
        settings["reading"] = dict(reading)
    return settings


def rings_params(rings: Mapping[str, Any], *, diameter: float | str, pixel_size_um: float | None,
                 channels: list[str], prefix: str = "rings") -> dict:
    """Keyword arguments of :func:`snakescope.rings.measure_rings` (all but
    ``reporters``) from the ``rings`` section, for an image with ``channels``."""
    unknown = sorted(set(rings["background_per_channel"]) - set(channels))
    if unknown:
        raise InputError(
            f"config key {prefix}.background_per_channel: channel(s) {unknown} not in the image's channels "
            f"{channels}; fix the names"
        )
    backgrounds = {}
    for ch in channels:
        own = ch in rings["background_per_channel"]
        backgrounds[ch] = background_params(
            rings["background_per_channel"][ch] if own else rings["background"], diameter=diameter,
            pixel_size_um=pixel_size_um,
            prefix=f"{prefix}.background_per_channel.{ch}" if own else f"{prefix}.background")
    mask = rings["mask"]
    if mask["channel"] is not None:
        _manual_value(mask, key=f"{prefix}.mask")
    if mask["channel"] is not None and mask["channel"] not in channels:
        raise InputError(
            f"config key {prefix}.mask.channel: channel '{mask['channel']}' is not one of the image's channels "
            f"{channels}; fix the name"
        )
    return {
        **ring_params(rings, diameter=diameter, pixel_size_um=pixel_size_um, prefix=prefix),
        "backgrounds": backgrounds,
        "mask_channel": mask["channel"],
        "mask_threshold": {"method": mask["method"], "value": mask["value"], "correction": mask["correction"]},
        "nucleus_erosion_px": to_px(rings["nucleus_erosion"], pixel_size_um=pixel_size_um,
                                    key=f"{prefix}.nucleus_erosion"),
        "statistic": rings["statistic"],
        "min_ring_px": rings["min_ring_px"],
    }


def resolve_diameter(diameter: float | str, estimate: str | None) -> float | str:
    """``segment.diameter`` as the steps use it: the configured value, or with
    ``auto`` the estimate (``"<d>px"``) read from the table ``estimate`` (rule
    ``diameter``)."""
    if diameter != "auto":
        return diameter
    if not estimate:
        raise InputError("config key segment.diameter: 'auto' needs the estimate of rule diameter (a workflow bug)")
    import pandas as pd

    value = float(pd.read_csv(estimate)["diameter_px"].iloc[0])
    return f"{value:.6g}px"


def frames_splittable(segment_settings: Mapping[str, Any]) -> bool:
    """Whether the chain of a movie can run on frame ranges with results identical
    to one pass: every step works frame by frame (not a stack-wide threshold,
    not a model or external labels that see the whole stack)."""
    method = segment_settings["method"]
    if method == "log_edges":
        return True
    if method != "threshold":
        return False
    thr = segment_settings["threshold"]
    return thr.get("scope", "frame") == "frame" or thr["method"] in ("auto", "local")
