"""The dataset's tidy tables: per-object rows of every image joined with their
rings, and a per-frame summary of every image.

Column meanings are documented in ``config/README.md`` (section Outputs).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .rings import cn_columns

#: Columns identifying an object in a frame of an image.
OBJECT_KEYS = ["image", "frame", "time_s", "label"]


def add_image_columns(table: pd.DataFrame, *, image: str, frame_interval_s: float | None) -> pd.DataFrame:
    """Prefix a per-frame table (with column ``frame``) with ``image`` and ``time_s``.

    ``time_s`` is ``frame * frame_interval_s`` (NaN when the interval is unknown).
    """
    out = table.copy()
    frame = out.pop("frame")
    out.insert(0, "image", image)
    out.insert(1, "frame", frame)
    out.insert(2, "time_s", frame * frame_interval_s if frame_interval_s else np.nan)
    return out


def object_table(measurements: Sequence[pd.DataFrame], rings: Sequence[pd.DataFrame], *,
                 dataset: str) -> pd.DataFrame:
    """One row per object per frame: measurements joined with ring columns.

    ``measurements[i]`` and ``rings[i]`` belong to the same image (keys
    :data:`OBJECT_KEYS`); rows are sorted by image, frame, label.
    """
    parts = []
    for m, r in zip(measurements, rings):
        if len(m) == 0:
            parts.append(m)
            continue
        parts.append(m.merge(r, on=OBJECT_KEYS, how="left", validate="one_to_one"))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if "cn_reason" in table:
        table["cn_reason"] = table["cn_reason"].fillna("")
    table.insert(0, "dataset", dataset)
    return table.sort_values(["image", "frame", "label"], kind="stable")


def image_table(objects: pd.DataFrame, frames: pd.DataFrame, *, dataset: str) -> pd.DataFrame:
    """One row per image and frame: object count, threshold, the diameter used
    (``diameter_px``), mean area, mean and median of every C/N column.

    ``frames`` has ``image, frame, threshold`` for every frame (frames without
    objects keep a row with ``n_objects = 0``).
    """
    per_frame_rows = frames[[c for c in ("image", "frame", "threshold", "diameter_px") if c in frames.columns]]
    agg = {"n_objects": ("label", "size"), "mean_area_px": ("area_px", "mean"), "mean_area_um2": ("area_um2", "mean")}
    for c in cn_columns(objects.columns):
        agg[f"mean_{c}"] = (c, "mean")
        agg[f"median_{c}"] = (c, "median")
    per_frame = objects.groupby(["image", "frame"], sort=True).agg(**agg).reset_index() if len(objects) else \
        pd.DataFrame(columns=["image", "frame", *agg])
    summary = per_frame_rows.merge(per_frame, on=["image", "frame"], how="left")
    summary["n_objects"] = summary["n_objects"].fillna(0).astype(int)
    summary.insert(0, "dataset", dataset)
    return summary.sort_values(["image", "frame"], kind="stable")


def add_metadata(table: pd.DataFrame, metadata: Mapping[str, Mapping[str, str]], *, after: str = "image") -> pd.DataFrame:
    """Insert ``meta_<name>`` columns (the image's metadata) after column ``after``.

    ``metadata`` maps image name -> {name: value}; every image of ``table`` gets
    the union of the names (empty string where an image has no value).
    """
    names = sorted({n for m in metadata.values() for n in m})
    if not names or "image" not in table.columns:
        return table
    out = table.copy()
    position = list(out.columns).index(after) + 1
    for offset, name in enumerate(names):
        values = out["image"].map(lambda image, n=name: metadata.get(image, {}).get(n, ""))
        out.insert(position + offset, f"meta_{name}", values.astype(str) if len(out) else values)
    return out
