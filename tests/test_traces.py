"""Per-cell traces (snakescope.traces): join, filters and baseline normalisation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from snakescope.errors import InputError
from snakescope.traces import build_traces, reporter_columns


def movie():
    """Objects of 4 frames and their tracks.

    Track 1: frames 0-3, C/N 1, 3, 4, 6 (baseline frames 0-1 -> 2.0).
    Track 2: frames 2-3 only (daughter of 1 in this table; no baseline frames).
    Track 3: frames 0, 1, 3 (gap at 2), C/N NaN at frame 0 -> baseline 5.0.
    Label 9 in frame 1 is a dropped object (track 0).
    """
    rows = [
        # frame, label, track, parent, cn
        (0, 1, 1, 0, 1.0),
        (1, 1, 1, 0, 3.0),
        (2, 1, 1, 0, 4.0),
        (3, 1, 1, 0, 6.0),
        (2, 2, 2, 1, 2.0),
        (3, 2, 2, 1, 2.5),
        (0, 3, 3, 0, math.nan),
        (1, 3, 3, 0, 5.0),
        (3, 3, 3, 0, 10.0),
        (1, 9, 0, 0, 7.0),
    ]
    objects = pd.DataFrame(
        {
            "frame": [r[0] for r in rows],
            "label": [r[1] for r in rows],
            "x": [10.0 * r[1] + r[0] for r in rows],
            "y": [5.0 * r[1] for r in rows],
            "erk_mean": [100.0 + r[0] for r in rows],
            "erk_ring_mean": [50.0 + r[0] for r in rows],
            "cn_erk": [r[4] for r in rows],
            "area_px": 300.0,
        }
    )
    tracks = pd.DataFrame(
        {
            "frame": [r[0] for r in rows],
            "label": [r[1] for r in rows],
            "track_id": [r[2] for r in rows],
            "parent_track_id": [r[3] for r in rows],
            "x": objects["x"],
            "y": objects["y"],
        }
    )
    # shuffle both tables: the join must not depend on row order
    return objects.iloc[::-1].reset_index(drop=True), tracks.sample(frac=1.0, random_state=1)


def test_join_columns_order_and_time():
    objects, tracks = movie()
    traces = build_traces(objects, tracks, reporters=["erk"], frame_interval_s=30.0)
    assert list(traces.columns) == [
        "track_id",
        "parent_track_id",
        "frame",
        "time_s",
        "x",
        "y",
        "erk_mean",
        "erk_ring_mean",
        "cn_erk",
    ]
    assert traces[["track_id", "frame"]].values.tolist() == [
        [1, 0], [1, 1], [1, 2], [1, 3], [2, 2], [2, 3], [3, 0], [3, 1], [3, 3],
    ]  # fmt: skip
    assert traces["time_s"].tolist() == [0.0, 30.0, 60.0, 90.0, 60.0, 90.0, 0.0, 30.0, 90.0]
    assert traces["parent_track_id"].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0]
    assert traces.loc[traces["track_id"] == 2, "x"].tolist() == [22.0, 23.0]
    assert traces.loc[traces["track_id"] == 1, "erk_ring_mean"].tolist() == [50.0, 51.0, 52.0, 53.0]
    unknown = build_traces(objects, tracks, reporters=["erk"], frame_interval_s=None)
    assert unknown["time_s"].isna().all()
    assert reporter_columns("erk", baseline=True)[-3:] == ["cn_erk_baseline", "dcn_erk", "cn_erk_norm"]


def test_baseline_normalisation_hand_computed():
    objects, tracks = movie()
    traces = build_traces(objects, tracks, reporters=["erk"], frame_interval_s=None, baseline_frames=(0, 1))
    one = traces[traces["track_id"] == 1]
    assert one["cn_erk_baseline"].tolist() == [2.0, 2.0, 2.0, 2.0]
    assert one["dcn_erk"].tolist() == [-1.0, 1.0, 2.0, 4.0]
    assert one["cn_erk_norm"].tolist() == [0.5, 1.5, 2.0, 3.0]
    two = traces[traces["track_id"] == 2]
    assert two[["cn_erk_baseline", "dcn_erk", "cn_erk_norm"]].isna().all().all()
    three = traces[traces["track_id"] == 3]
    assert three["cn_erk_baseline"].tolist() == [5.0, 5.0, 5.0]  # NaN at frame 0 skipped
    np.testing.assert_allclose(three["dcn_erk"], [math.nan, 0.0, 5.0])
    np.testing.assert_allclose(three["cn_erk_norm"], [math.nan, 1.0, 2.0])
    assert list(traces.columns[-3:]) == ["cn_erk_baseline", "dcn_erk", "cn_erk_norm"]


def test_complete_only_and_min_length():
    objects, tracks = movie()
    complete = build_traces(objects, tracks, reporters=["erk"], frame_interval_s=1.0, complete_only=True)
    assert complete["track_id"].unique().tolist() == [1]  # 3 has a gap, 2 starts late
    long = build_traces(objects, tracks, reporters=["erk"], frame_interval_s=1.0, min_length=3)
    assert long["track_id"].unique().tolist() == [1, 3]
    none = build_traces(objects, tracks, reporters=["erk"], frame_interval_s=1.0, min_length=5)
    assert none.empty and "cn_erk" in none.columns


def test_several_reporters_and_no_reporter():
    objects, tracks = movie()
    objects = objects.assign(jnk_mean=1.0, jnk_ring_mean=2.0, cn_jnk=2.0)
    traces = build_traces(
        objects, tracks, reporters=["erk", "jnk", "erk"], frame_interval_s=1.0, baseline_frames=(3, 3)
    )
    assert list(traces.columns[6:]) == reporter_columns("erk", baseline=True) + reporter_columns(
        "jnk", baseline=True
    )
    assert (traces["cn_jnk_norm"] == 1.0).all()
    positions = build_traces(objects, tracks, reporters=[], frame_interval_s=1.0)
    assert list(positions.columns) == ["track_id", "parent_track_id", "frame", "time_s", "x", "y"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reporters": ["p38"]}, "p38_mean"),
        ({"frame_interval_s": 0}, "frame_interval_s"),
        ({"frame_interval_s": math.nan}, "frame_interval_s"),
        ({"baseline_frames": (3, 1)}, "baseline_frames"),
        ({"baseline_frames": (0,)}, "baseline_frames"),
        ({"min_length": 0}, "min_length"),
    ],
)
def test_invalid_arguments_raise_input_error(kwargs, match):
    objects, tracks = movie()
    arguments = {"reporters": ["erk"], "frame_interval_s": 1.0, **kwargs}
    with pytest.raises(InputError, match=match):
        build_traces(objects, tracks, **arguments)


def test_tracked_object_missing_from_objects():
    objects, tracks = movie()
    objects = objects[~((objects["frame"] == 3) & (objects["label"] == 2))]
    with pytest.raises(InputError, match="frame 3 label 2"):
        build_traces(objects, tracks, reporters=["erk"], frame_interval_s=1.0)


def test_with_real_tracker_output():
    from snakescope.track import track_objects

    rows = [(t, k + 1, 20.0 * k + t, 10.0, 1.0 + 0.1 * t * k) for t in range(4) for k in range(3)]
    objects = pd.DataFrame(rows, columns=["frame", "label", "x", "y", "cn_erk"])
    objects = objects.assign(erk_mean=1.0, erk_ring_mean=1.0)
    tracks = track_objects(objects, max_distance_px=5)
    traces = build_traces(objects, tracks, reporters=["erk"], frame_interval_s=60.0, baseline_frames=(0, 0))
    assert len(traces) == 12 and traces["track_id"].nunique() == 3
    np.testing.assert_allclose(traces.loc[traces["track_id"] == 3, "dcn_erk"], [0.0, 0.2, 0.4, 0.6])
