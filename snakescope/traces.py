"""Per-cell time traces of reporter intensities and C/N ratios.

Joins the per-object measurements of every frame with the track table of
:func:`snakescope.track.track_objects`, filters tracks, and optionally
normalises each cell's cytoplasm/nucleus (C/N) ratio to its own baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from snakescope.errors import InputError

__all__ = ["build_traces", "reporter_columns"]


def reporter_columns(reporter: str, *, baseline: bool = False) -> list[str]:
    """Trace columns of one reporter channel, in output order.

    Parameters
    ----------
    reporter : str
        Channel name, e.g. ``"erk"``.
    baseline : bool
        Include the baseline-normalised columns.

    Returns
    -------
    list of str
        ``<ch>_mean, <ch>_ring_mean, cn_<ch>`` and, with `baseline`,
        ``cn_<ch>_baseline, dcn_<ch>, cn_<ch>_norm``.
    """
    columns = [f"{reporter}_mean", f"{reporter}_ring_mean", f"cn_{reporter}"]
    if baseline:
        columns += [f"cn_{reporter}_baseline", f"dcn_{reporter}", f"cn_{reporter}_norm"]
    return columns


def build_traces(
    objects: pd.DataFrame,
    tracks: pd.DataFrame,
    *,
    reporters: Sequence[str],
    frame_interval_s: float | None,
    complete_only: bool = False,
    min_length: int = 1,
    baseline_frames: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """One row per tracked cell per frame with its reporter measurements.

    Parameters
    ----------
    objects : pandas.DataFrame
        Per object per frame: ``frame, label, x, y`` and, for every reporter
        ``<ch>``, ``<ch>_mean`` (nucleus), ``<ch>_ring_mean`` (cytoplasmic
        ring) and ``cn_<ch>`` (C/N ratio). Other columns are ignored.
    tracks : pandas.DataFrame
        Output of :func:`snakescope.track.track_objects` (``frame, label,
        track_id, parent_track_id``); rows with track id 0 (dropped) are left
        out. Every tracked ``(frame, label)`` must be in `objects`.
    reporters : sequence of str
        Reporter channel names (duplicates are ignored).
    frame_interval_s : float or None
        Time between frames in seconds; ``time_s = frame * frame_interval_s``,
        NaN when None (unknown).
    complete_only : bool
        Keep only tracks with an object in every frame of the movie, i.e.
        every frame from the first to the last frame in `objects`.
    min_length : int
        Keep only tracks with at least this many rows (frames with an object).
    baseline_frames : (int, int) or None
        ``(first, last)`` frames, inclusive, of the baseline. Adds per
        reporter ``cn_<ch>_baseline`` (mean of that track's non-NaN C/N over
        its rows in those frames; NaN if there are none), ``dcn_<ch>`` (C/N
        minus baseline) and ``cn_<ch>_norm`` (C/N divided by baseline).

    Returns
    -------
    pandas.DataFrame
        Columns ``track_id, parent_track_id, frame, time_s, x, y`` then
        :func:`reporter_columns` of each reporter; sorted by ``track_id,
        frame``, with a fresh index.

    Raises
    ------
    InputError
        Missing columns, tracked objects absent from `objects`, or invalid
        `frame_interval_s`, `min_length` or `baseline_frames`.
    """
    reporters = list(dict.fromkeys(str(r) for r in reporters))
    interval = _interval(frame_interval_s)
    if isinstance(min_length, bool) or not isinstance(min_length, (int, np.integer)) or min_length < 1:
        raise InputError(
            f"min_length: {min_length!r} must be an integer >= 1; set it to 1 to keep all tracks"
        )
    baseline = _baseline(baseline_frames)

    measured = [c for r in reporters for c in reporter_columns(r)]
    _require(objects, "objects", ["frame", "label", "x", "y", *measured])
    _require(tracks, "tracks", ["frame", "label", "track_id", "parent_track_id"])
    for name, table in (("objects", objects), ("tracks", tracks)):
        if table.duplicated(["frame", "label"]).any():
            raise InputError(f"{name}: duplicate (frame, label) rows; each object must appear once per frame")

    kept = tracks.loc[tracks["track_id"] > 0, ["frame", "label", "track_id", "parent_track_id"]]
    table = kept.merge(
        objects[["frame", "label", "x", "y", *measured]],
        on=["frame", "label"],
        how="left",
        validate="one_to_one",
        indicator=True,
    )
    unmatched = table["_merge"] != "both"
    if unmatched.any():
        row = table.loc[unmatched].iloc[0]
        raise InputError(
            f"tracks: {int(unmatched.sum())} tracked object(s), e.g. frame {int(row['frame'])} label "
            f"{int(row['label'])}, are not in objects; track the same objects table"
        )
    table = table.drop(columns=["_merge", "label"])
    for column in ("track_id", "parent_track_id", "frame"):
        table[column] = table[column].astype(np.int64)

    by_track = table.groupby("track_id")["frame"]
    keep = by_track.transform("size") >= min_length
    if complete_only:
        all_frames = objects["frame"]
        n_frames = int(all_frames.max() - all_frames.min() + 1) if len(all_frames) else 0
        keep &= by_track.transform("nunique") == n_frames
    table = table.loc[keep.to_numpy()]

    table = table.copy()
    table["time_s"] = (table["frame"] * interval).astype(np.float64) if interval is not None else math.nan

    columns = ["track_id", "parent_track_id", "frame", "time_s", "x", "y"]
    if baseline is not None:
        first, last = baseline
        in_baseline = table["frame"].between(first, last)
        for r in reporters:
            cn = table[f"cn_{r}"].astype(np.float64)
            mean = cn.where(in_baseline).groupby(table["track_id"]).transform("mean")
            table[f"cn_{r}_baseline"] = mean
            table[f"dcn_{r}"] = cn - mean
            table[f"cn_{r}_norm"] = cn / mean
    for r in reporters:
        columns += reporter_columns(r, baseline=baseline is not None)

    return table[columns].sort_values(["track_id", "frame"], kind="stable").reset_index(drop=True)


def _interval(frame_interval_s: float | None) -> float | None:
    if frame_interval_s is None:
        return None
    try:
        value = float(frame_interval_s)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise InputError(
            f"frame_interval_s: {frame_interval_s!r} must be a number of seconds > 0, or None if unknown"
        )
    return value


def _baseline(baseline_frames: tuple[int, int] | None) -> tuple[int, int] | None:
    if baseline_frames is None:
        return None
    try:
        first, last = baseline_frames
        ok = all(
            not isinstance(v, bool) and isinstance(v, (int, np.integer)) and v >= 0 for v in (first, last)
        )
    except (TypeError, ValueError):
        ok = False
    if not ok or first > last:
        raise InputError(
            f"baseline_frames: {baseline_frames!r} must be (first, last) frame numbers with "
            "0 <= first <= last, or None"
        )
    return int(first), int(last)


def _require(table: pd.DataFrame, name: str, columns: list[str]) -> None:
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"{name}: expected a pandas DataFrame")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(
            f"{name}: missing column(s) {', '.join(missing)}; measure those reporters or fix `reporters`"
        )


def dataset_traces(
    objects: pd.DataFrame,
    tracks: Sequence[tuple[str, pd.DataFrame]],
    *,
    complete_only: bool = False,
    min_length: int = 1,
    baseline_frames: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """:func:`build_traces` for every tracked image of a dataset.

    Parameters
    ----------
    objects : DataFrame
        The dataset's object table (``image, frame, time_s, label, ...`` and the
        ``cn_<reporter>`` columns, whose reporters are traced).
    tracks : sequence of (str, DataFrame)
        ``(image name, track table)`` of every tracked image.
    complete_only, min_length, baseline_frames
        As in :func:`build_traces`. A baseline outside an image's frames is an error.

    Returns
    -------
    DataFrame
        Column ``image`` followed by the columns of :func:`build_traces`.
    """
    from .rings import reporters_of

    reporters = reporters_of(objects.columns)
    parts = []
    for name, t in tracks:
        o = objects[objects["image"] == name] if len(objects) else objects
        if len(o) == 0 or len(t) == 0:
            continue
        if baseline_frames is not None:
            last = int(o["frame"].max())
            if max(baseline_frames) > last:
                raise InputError(
                    f"dataset_traces: baseline_frames {list(baseline_frames)} reach past the last frame ({last}) "
                    f"of image {name}; choose frames between 0 and {last}"
                )
        later = o[o["frame"] > 0]
        interval = float(later["time_s"].iloc[0] / later["frame"].iloc[0]) if len(later) and \
            later["time_s"].notna().any() else None
        part = build_traces(o, t, reporters=reporters, frame_interval_s=interval, complete_only=complete_only,
                            min_length=min_length, baseline_frames=baseline_frames)
        part.insert(0, "image", name)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["image", "track_id", "parent_track_id", "frame", "time_s", "x", "y"])
    return pd.concat(parts, ignore_index=True)
