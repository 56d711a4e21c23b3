"""Tracking (snakescope.track): LAP linking, CTC export and py-ctcmetrics scores."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile

import snakescope.track as track_module
from snakescope.errors import InputError
from snakescope.track import (
    TRACK_COLUMNS,
    _check_objects,
    _feature_embedding,
    _link,
    ctc_tracks,
    relabel_stack,
    track_objects,
    tracking_metrics,
    write_ctc,
    write_ctc_ground_truth,
)


def table(rows, columns=("frame", "label", "x", "y")):
    return pd.DataFrame(list(rows), columns=list(columns))


def track_of(tracks, frame, label):
    row = tracks[(tracks["frame"] == frame) & (tracks["label"] == label)]
    assert len(row) == 1
    return int(row["track_id"].iloc[0])


def draw(objects, shape=(80, 80), radius=3):
    """TYX label stack with a disk per object (label = object label)."""
    n_frames = int(objects["frame"].max()) + 1
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    stack = np.zeros((n_frames, *shape), np.uint16)
    for frame, label, x, y in objects[["frame", "label", "x", "y"]].itertuples(index=False):
        stack[frame][(yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = label
    return stack


def scenario():
    """A moves right; B is missing in frame 2; C divides between frames 2 and 3.

    Labels are chosen so that no object's label equals its track id. B's gap
    closing and C's division both cost 36 px^2: a gap closing or division is
    only accepted below 1.05 x the 90th percentile of all such candidate costs
    (laptrack / TrackMate), which with two candidates needs similar costs.
    """
    rows = []
    for t in range(6):
        rows.append((t, 10, 10 + 3 * t, 10))
        if t != 2:
            rows.append((t, 20, 10 + 3 * t, 35))
        if t < 3:
            rows.append((t, 30, 40, 60))
        else:
            rows.append((t, 41, 34 - 2 * (t - 3), 60))
            rows.append((t, 42, 46 + 2 * (t - 3), 60))
    return table(rows)


# --------------------------------------------------------------------------- linking


def test_crossing_paths_keep_their_ids():
    # A runs along the diagonal, B along the anti-diagonal; their paths cross
    # (B passes A's crossing point two frames earlier). At t=4 -> 5 B's next
    # position is as close to A's as B's own (tie), and a greedy
    # nearest-neighbour linker may swap them; the global LAP must not.
    rows = []
    for t in range(9):
        rows.append((t, 1 + 2 * (t % 2), 6 * t, 6 * t))  # A: labels alternate 1, 3
        rows.append((t, 2 + 2 * (t % 2), 48 - 6 * t, 6 * t + 12))  # B: 2, 4
    objects = table(rows)
    tracks = track_objects(objects, max_distance_px=15, divisions=False)
    a = {track_of(tracks, t, 1 + 2 * (t % 2)) for t in range(9)}
    b = {track_of(tracks, t, 2 + 2 * (t % 2)) for t in range(9)}
    assert a == {1} and b == {2}
    assert (tracks["parent_track_id"] == 0).all()


def test_gap_keeps_id_with_gap_closing_and_splits_without():
    objects = scenario()
    closed = track_objects(objects, max_distance_px=10, gap_frames=1)
    assert {track_of(closed, t, 20) for t in (0, 1, 3, 4, 5)} == {2}
    opened = track_objects(objects, max_distance_px=10, gap_frames=0)
    before = {track_of(opened, t, 20) for t in (0, 1)}
    after = {track_of(opened, t, 20) for t in (3, 4, 5)}
    assert len(before) == len(after) == 1 and before != after
    assert (opened.loc[opened["label"] == 20, "parent_track_id"] == 0).all()


def test_division_ends_mother_and_starts_two_daughters():
    tracks = track_objects(scenario(), max_distance_px=10, gap_frames=1)
    mother = {track_of(tracks, t, 30) for t in range(3)}
    assert mother == {3}
    d1 = {track_of(tracks, t, 41) for t in range(3, 6)}
    d2 = {track_of(tracks, t, 42) for t in range(3, 6)}
    assert d1 == {4} and d2 == {5}
    parents = tracks.drop_duplicates("track_id").set_index("track_id")["parent_track_id"]
    assert parents.to_dict() == {1: 0, 2: 0, 3: 0, 4: 3, 5: 3}
    assert list(tracks.columns) == TRACK_COLUMNS


def test_no_divisions_continues_mother_into_one_daughter():
    tracks = track_objects(scenario(), max_distance_px=10, gap_frames=1, divisions=False)
    assert (tracks["parent_track_id"] == 0).all()
    mother = track_of(tracks, 0, 30)
    daughters = {track_of(tracks, 3, 41), track_of(tracks, 3, 42)}
    assert mother in daughters and len(daughters) == 2


def test_min_length_drops_short_tracks_renumbers_and_orphans_daughters():
    rows = [(0, 1, 5, 5), (1, 1, 6, 5), (2, 1, 7, 5)]  # track 1, 3 frames
    rows += [(0, 2, 40, 40)]  # mother present 1 frame only
    rows += [(t, 3 + k, 40 + dx, 40) for t in (1, 2) for k, dx in ((0, -5), (1, 5))]  # daughters
    rows += [(1, 9, 70, 5)]  # a 1-frame blip
    objects = table(rows)
    full = track_objects(objects, max_distance_px=8, gap_frames=0)
    assert full["track_id"].max() == 5
    assert full.loc[full["label"].isin([3, 4]), "parent_track_id"].tolist() == [2, 2, 2, 2]
    tracks = track_objects(objects, max_distance_px=8, gap_frames=0, min_length=2)
    assert track_of(tracks, 0, 2) == 0 and track_of(tracks, 1, 9) == 0
    assert sorted(tracks.loc[tracks["track_id"] > 0, "track_id"].unique()) == [1, 2, 3]
    assert {track_of(tracks, 1, 3), track_of(tracks, 1, 4)} == {2, 3}
    assert (tracks["parent_track_id"] == 0).all()


def test_ids_ordered_by_first_frame_then_label_and_deterministic():
    rng = np.random.default_rng(3)
    rows = []
    for t in range(5):
        for k in range(30):
            if rng.random() < 0.8:
                rows.append((t, 100 - k, (k % 6) * 30 + 0.5 * t, (k // 6) * 30 + rng.normal(0, 0.5)))
    objects = table(rows)
    tracks = track_objects(objects, max_distance_px=10)
    shuffled = objects.sample(frac=1.0, random_state=0).reset_index(drop=True)
    pd.testing.assert_frame_equal(tracks, track_objects(shuffled, max_distance_px=10))
    firsts = tracks.sort_values(["frame", "label"]).drop_duplicates("track_id")
    assert firsts["track_id"].tolist() == list(range(1, tracks["track_id"].max() + 1))
    expected = objects.sort_values(["frame", "label"])[["frame", "label"]].reset_index(drop=True)
    assert tracks[["frame", "label"]].equals(expected)


def test_single_frame_and_empty_frames():
    one = track_objects(table([(3, 2, 0, 0), (3, 1, 50, 50)]), max_distance_px=5)
    assert one["label"].tolist() == [1, 2] and one["track_id"].tolist() == [1, 2]
    gappy = track_objects(table([(0, 1, 0, 0), (4, 1, 1, 0), (5, 1, 2, 0)]), max_distance_px=5, gap_frames=2)
    assert gappy["track_id"].tolist() == [1, 2, 2]  # a 3-frame gap exceeds gap_frames=2
    bridged = track_objects(table([(0, 1, 0, 0), (4, 1, 1, 0)]), max_distance_px=5, gap_frames=3)
    assert bridged["track_id"].tolist() == [1, 1]
    empty = track_objects(table([]), max_distance_px=5)
    assert empty.empty and list(empty.columns) == TRACK_COLUMNS


@pytest.mark.parametrize(
    ("objects", "kwargs", "match"),
    [
        (table([(0, 1, math.nan, 0.0), (1, 1, 0.0, 0.0)]), {"max_distance_px": 5}, "objects.x"),
        (table([(0, 1, 0.0, 0.0)]), {"max_distance_px": 0}, "max_distance_px"),
        (table([(0, 1, 0.0, 0.0)]), {"max_distance_px": -3}, "max_distance_px"),
        (table([(0, 1, 0.0, 0.0)]), {"max_distance_px": 5, "gap_frames": -1}, "gap_frames"),
        (table([(0, 1, 0.0, 0.0), (0, 1, 5.0, 0.0)]), {"max_distance_px": 5}, "duplicate"),
        (table([(0, 1, 0.0, 0.0)]), {"max_distance_px": 5, "feature_weights": {"area_px": 1}}, "area_px"),
        (table([(0.5, 1, 0.0, 0.0)]), {"max_distance_px": 5}, "objects.frame"),
    ],
)
def test_invalid_inputs_raise_input_error(objects, kwargs, match):
    with pytest.raises(InputError, match=match):
        track_objects(objects, **kwargs)


def test_feature_cost_is_calibrated_and_resolves_ambiguity():
    d = 20.0
    feats = pd.DataFrame({"area_px": [100.0, 120.0, 100 / 1.2]})
    phi = _feature_embedding(feats, {"area_px": 1.0}, d)
    assert (phi[1, 0] - phi[0, 0]) ** 2 == pytest.approx((0.2 * d) ** 2)
    assert (phi[2, 0] - phi[0, 0]) ** 2 == pytest.approx((0.2 * d) ** 2)
    phi4 = _feature_embedding(feats, {"area_px": 4.0}, d)
    assert (phi4[1, 0] - phi4[0, 0]) ** 2 == pytest.approx(4 * (0.2 * d) ** 2)

    # small A (label 1) and big B (label 2) move towards each other; by
    # position alone A -> P, by area A -> Q
    objects = table(
        [(0, 1, 0, 0, 100.0), (0, 2, 10, 0, 200.0), (1, 1, 4, 0, 200.0), (1, 2, 6, 0, 100.0)],
        columns=("frame", "label", "x", "y", "area_px"),
    )
    plain = track_objects(objects, max_distance_px=d, divisions=False)
    assert track_of(plain, 0, 1) == track_of(plain, 1, 1)
    weighted = track_objects(objects, max_distance_px=d, divisions=False, feature_weights={"area_px": 1.0})
    assert track_of(weighted, 0, 1) == track_of(weighted, 1, 2)
    with pytest.raises(InputError, match="area_px"):
        track_objects(objects.assign(area_px=0.0), max_distance_px=d, feature_weights={"area_px": 1.0})


AREA_COLUMNS = ("frame", "label", "x", "y", "area_px")
NO_EVIDENCE = {"max_daughter_area_ratio": 100, "min_daughter_frames": 1}  # laptrack's splitting


def parents(tracks):
    """{daughter track id: mother track id} of the divisions."""
    firsts = tracks.drop_duplicates("track_id")
    return dict(firsts.loc[firsts["parent_track_id"] > 0, ["track_id", "parent_track_id"]].values.tolist())


def test_newcomer_next_to_a_cell_is_not_a_division():
    # A (area 100) sits still; B (area 100) appears 6 px away at frame 3 and stays
    rows = [(t, 1, 20.0, 20.0, 100.0) for t in range(8)]
    rows += [(t, 2, 26.0, 20.0, 100.0) for t in range(3, 8)]
    objects = table(rows, AREA_COLUMNS)
    tracks = track_objects(objects, max_distance_px=10)
    assert parents(tracks) == {}
    assert {track_of(tracks, t, 1) for t in range(8)} == {1}
    assert {track_of(tracks, t, 2) for t in range(3, 8)} == {2}
    # without the size test (laptrack's rule) the newcomer is a daughter
    assert parents(track_objects(objects, max_distance_px=10, **NO_EVIDENCE)) == {2: 1, 3: 1}


def test_division_found_when_daughters_are_half_the_mother():
    rows = [(t, 1, 30.0 + 0.5 * t, 30.0, 200.0) for t in range(4)]
    for t in range(4, 9):  # daughters move apart from the mother's last position
        rows += [(t, 2, 31.5 - 2 * (t - 2), 30.0, 100.0), (t, 3, 31.5 + 2 * (t - 2), 30.0, 110.0)]
    objects = table(rows, AREA_COLUMNS)
    tracks = track_objects(objects, max_distance_px=10)
    mother = track_of(tracks, 3, 1)
    assert {track_of(tracks, t, 1) for t in range(4)} == {mother}
    d1, d2 = track_of(tracks, 4, 2), track_of(tracks, 4, 3)
    assert len({mother, d1, d2}) == 3
    assert parents(tracks) == {d1: mother, d2: mother}
    # without areas only persistence is checked: still a division
    assert parents(track_objects(objects.drop(columns="area_px"), max_distance_px=10)) == {d1: mother, d2: mother}
    assert parents(track_objects(objects, max_distance_px=10, area_column=None)) == {d1: mother, d2: mother}
    # "daughters" as large as the mother: two cells, not a division
    big = objects.assign(area_px=200.0)
    assert parents(track_objects(big, max_distance_px=10)) == {}
    assert parents(track_objects(big, max_distance_px=10, max_daughter_area_ratio=1.1)) != {}
    assert parents(track_objects(objects, max_distance_px=10, divisions=False)) == {}


def test_mother_area_is_the_median_of_her_last_three_objects():
    # the mother swells in her last two frames (as in mitosis): daughters of
    # 90 px are half of her 180 px, though larger than 0.8 x her earlier 100 px
    areas = [100.0, 100.0, 100.0, 180.0, 180.0]
    rows = [(t, 1, 30.0, 30.0, a) for t, a in enumerate(areas)]
    rows += [(t, k, 30.0 + s * (t - 2), 30.0, 90.0) for t in range(5, 9) for k, s in ((2, -2), (3, 2))]
    tracks = track_objects(table(rows, AREA_COLUMNS), max_distance_px=10)
    assert len(parents(tracks)) == 2
    # swollen in her last frame only: one odd frame, the median ignores it
    rows[3] = (3, 1, 30.0, 30.0, 100.0)
    assert parents(track_objects(table(rows, AREA_COLUMNS), max_distance_px=10)) == {}


def test_one_frame_split_of_a_nucleus_is_not_a_division():
    # an over-segmented frame: the nucleus (200 px) is two halves in frame 3
    rows = [(t, 1, 30.0, 30.0, 200.0) for t in range(8) if t != 3]
    rows += [(3, 1, 27.0, 30.0, 100.0), (3, 2, 33.0, 30.0, 100.0)]
    objects = table(rows, AREA_COLUMNS)
    tracks = track_objects(objects, max_distance_px=10)
    assert parents(tracks) == {}
    assert track_of(tracks, 2, 1) == track_of(tracks, 3, 1)
    # the half that vanishes after one frame fails min_daughter_frames=2
    assert parents(track_objects(objects, max_distance_px=10, min_daughter_frames=1)) != {}


def test_daughter_with_a_gap_after_the_division_is_not_a_daughter():
    # a flickering fragment: present, absent, present again next to the cell
    rows = [(t, 1, 30.0, 30.0, 200.0) for t in range(4)]
    rows += [(t, 1, 28.0, 30.0, 100.0) for t in range(4, 9)]
    rows += [(t, 2, 34.0, 30.0, 100.0) for t in (4, 6, 7, 8)]
    tracks = track_objects(table(rows, AREA_COLUMNS), max_distance_px=10, gap_frames=2)
    assert parents(tracks) == {}


def test_merge_then_separation_is_not_a_division_and_keeps_both_tracks():
    # A and B (100 px each) are one 200 px object in frame 3, then apart again
    rows = []
    for t in range(8):
        if t == 3:
            rows.append((t, 1, 24.0, 30.0, 200.0))
        else:
            rows += [(t, 1, 20.0, 30.0, 100.0), (t, 2, 32.0, 30.0, 100.0)]
    objects = table(rows, AREA_COLUMNS)
    tracks = track_objects(objects, max_distance_px=10, gap_frames=2)
    assert parents(tracks) == {}
    assert {track_of(tracks, t, 1) for t in range(8)} == {1}
    assert {track_of(tracks, t, 2) for t in range(8) if t != 3} == {2}  # gap closed over the merge
    # without gap closing, only the size test (the 200 px object is not the
    # mother's own size) stops B's return from being a daughter
    assert parents(track_objects(objects, max_distance_px=10, gap_frames=0)) == {}
    assert parents(track_objects(objects, max_distance_px=10, gap_frames=0, **NO_EVIDENCE)) != {}


def test_gaps_of_one_and_two_frames_are_closed():
    rows = []
    for t in range(10):
        rows.append((t, 1, 10.0 + t, 10.0))  # always present
        if t != 4:
            rows.append((t, 2, 50.0 + t, 10.0))  # missing in frame 4
        if t not in (5, 6):
            rows.append((t, 3, 10.0, 50.0 + t))  # missing in frames 5 and 6
    objects = table(rows)
    tracks = track_objects(objects, max_distance_px=8, gap_frames=2)
    for label in (1, 2, 3):
        assert len(set(tracks.loc[tracks["label"] == label, "track_id"])) == 1
    assert tracks["track_id"].max() == 3 and (tracks["parent_track_id"] == 0).all()
    short = track_objects(objects, max_distance_px=8, gap_frames=1)
    assert len(set(short.loc[short["label"] == 2, "track_id"])) == 1
    assert len(set(short.loc[short["label"] == 3, "track_id"])) == 2


def test_uncontested_gap_closing_within_the_gate_is_taken():
    # nine objects with 1 px gap closings and one that moves 11 px across its
    # gap: laptrack's threshold (90th percentile of the candidate costs)
    # rejects the long one; here the gate (gap_distance_px) decides
    rows = []
    for k in range(10):
        step = 5.5 if k == 0 else 0.5
        for t in (0, 1, 3, 4):
            rows.append((t, k + 1, 40.0 * k + step * t, 10.0))
    tracks = track_objects(table(rows), max_distance_px=8, gap_distance_px=12, gap_frames=1)
    assert tracks.groupby("label")["track_id"].nunique().eq(1).all()
    assert tracks["track_id"].max() == 10
    objects = _check_objects(table(rows), [])
    pred, _ = _link(
        objects["frame"].to_numpy(),
        objects[["x", "y"]].to_numpy(),
        np.zeros((len(objects), 0)),
        max_distance_px=8,
        gap_frames=1,
        gap_distance_px=12,
        division_distance_px=None,
        max_candidates=10,
    )
    assert (pred >= 0).sum() == 29  # laptrack: 10 x 3 links minus the long gap


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_daughter_area_ratio": 0}, "max_daughter_area_ratio"),
        ({"max_daughter_area_ratio": "big"}, "max_daughter_area_ratio"),
        ({"min_daughter_frames": 0}, "min_daughter_frames"),
        ({"area_column": 3}, "area_column"),
    ],
)
def test_invalid_division_evidence_parameters(kwargs, match):
    objects = table([(0, 1, 0.0, 0.0, 10.0)], AREA_COLUMNS)
    with pytest.raises(InputError, match=match):
        track_objects(objects, max_distance_px=5, **kwargs)
    with pytest.raises(InputError, match="objects.area_px"):
        track_objects(objects.assign(area_px=-1.0), max_distance_px=5)


def random_objects(seed, n_frames=10, n=60, size=300.0, drop=0.1, division=0.03):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, size, (n, 2))
    rows = []
    for t in range(n_frames):
        for k in np.flatnonzero(rng.random(len(pos)) > drop):
            rows.append((t, len(rows) + 1, pos[k, 0], pos[k, 1]))
        pos = pos + rng.normal(0, 3, pos.shape)
        born = rng.random(len(pos)) < division
        pos = np.vstack([pos, pos[born] + rng.normal(0, 4, (int(born.sum()), 2))])
    return table(rows)


@pytest.mark.parametrize(("seed", "square_max_nodes"), [(0, 1000), (1, 1000), (2, 1000), (0, 0), (1, 0)])
def test_links_equal_laptrack(seed, square_max_nodes, monkeypatch):
    """Same frame links, gap closings and splits as laptrack (the reference),
    with LAP components solved in the square form or (0) all rectangular."""
    laptrack = pytest.importorskip("laptrack")
    monkeypatch.setattr(track_module, "_SQUARE_MAX_NODES", square_max_nodes)
    d = 12.0
    objects = _check_objects(random_objects(seed), [])
    n_frames = int(objects["frame"].max()) + 1
    coords = [objects.loc[objects["frame"] == f, ["x", "y"]].to_numpy() for f in range(n_frames)]
    tree = laptrack.LapTrack(
        cutoff=d**2, gap_closing_cutoff=d**2, gap_closing_max_frame_count=3, splitting_cutoff=d**2
    ).predict(coords)
    offset = np.concatenate([[0], np.cumsum([len(c) for c in coords])])
    expected = sorted((int(offset[a[0]] + a[1]), int(offset[b[0]] + b[1])) for a, b in tree.edges())
    pred, split = _link(
        objects["frame"].to_numpy(),
        objects[["x", "y"]].to_numpy(),
        np.zeros((len(objects), 0)),
        max_distance_px=d,
        gap_frames=2,
        gap_distance_px=d,
        division_distance_px=d,
        max_candidates=10,
    )
    got = sorted((int(p), v) for v, p in enumerate(pred) if p >= 0)
    assert got == expected
    assert split.sum() > 0


def test_huge_cutoff_stays_cheap():
    # every object is within the cutoff of every other: the candidate cap
    # keeps the problem sparse; a slow random walk is still tracked correctly
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 500, (400, 2))
    rows = []
    for t in range(4):
        rows += [(t, k + 1, x, y) for k, (x, y) in enumerate(pos)]
        pos = pos + rng.normal(0, 0.5, pos.shape)
    tracks = track_objects(table(rows), max_distance_px=1e4)
    assert (tracks.groupby("label")["track_id"].nunique() == 1).all()
    assert tracks["track_id"].max() == 400


# --------------------------------------------------------------------------- label stacks


def test_relabel_stack_matches_table():
    objects = scenario()
    labels = draw(objects)
    tracks = track_objects(objects, max_distance_px=10, gap_frames=1)
    tracks.loc[tracks["label"] == 10, "track_id"] = 0  # pretend track 1 was dropped
    out = relabel_stack(labels, tracks)
    assert out.dtype == np.uint16 and out.shape == labels.shape
    lookup = {(f, l): t for f, l, t in tracks[["frame", "label", "track_id"]].itertuples(index=False)}
    for frame in range(labels.shape[0]):
        for label in np.unique(labels[frame]):
            pixels = out[frame][labels[frame] == label]
            expected = 0 if label == 0 else lookup[(frame, int(label))]
            assert (pixels == expected).all()
    big = tracks.assign(track_id=tracks["track_id"] * 70000)
    assert relabel_stack(labels, big).dtype == np.uint32
    with pytest.raises(InputError, match="beyond"):
        relabel_stack(labels[:2], tracks)


# --------------------------------------------------------------------------- CTC


def test_ctc_tracks_split_gaps_and_point_daughters_to_mother():
    tracks = track_objects(scenario(), max_distance_px=10, gap_frames=1)
    ctc = ctc_tracks(tracks)
    assert ctc.values.tolist() == [
        [1, 0, 5, 0],
        [2, 0, 1, 0],  # B before its gap
        [3, 0, 2, 0],  # mother
        [4, 3, 5, 3],  # daughters
        [5, 3, 5, 3],
        [6, 3, 5, 2],  # B after its gap: new label, parent = earlier piece
    ]
    assert list(ctc.columns) == ["L", "B", "E", "P"]


@pytest.fixture
def exported(tmp_path):
    objects = scenario()
    tracks = track_objects(objects, max_distance_px=10, gap_frames=1)
    stack = relabel_stack(draw(objects), tracks)
    res = tmp_path / "01_RES"
    ctc = write_ctc(res, stack, tracks)
    gt_stack = np.stack([tifffile.imread(p) for p in sorted(res.glob("mask*.tif"))])
    gt = tmp_path / "01_GT"
    write_ctc_ground_truth(gt, gt_stack, ctc)
    return tmp_path, tracks, stack, ctc, gt_stack


def test_write_ctc_layout_and_deterministic_bytes(exported):
    root, tracks, stack, ctc, gt_stack = exported
    res = root / "01_RES"
    assert sorted(p.name for p in res.iterdir()) == [f"mask{t:03d}.tif" for t in range(6)] + ["res_track.txt"]
    assert (res / "res_track.txt").read_text() == "1 0 5 0\n2 0 1 0\n3 0 2 0\n4 3 5 3\n5 3 5 3\n6 3 5 2\n"
    mask = tifffile.imread(res / "mask004.tif")
    assert mask.dtype == np.uint16 and mask.ndim == 2
    assert set(np.unique(mask)) == {0, 1, 4, 5, 6}  # B's later piece carries label 6
    assert sorted(p.name for p in (root / "01_GT" / "TRA").iterdir()) == [
        "man_track.txt",
        *[f"man_track{t:03d}.tif" for t in range(6)],
    ]
    before = {p.name: p.read_bytes() for p in res.iterdir()}
    write_ctc(res, stack, tracks)
    assert {p.name: p.read_bytes() for p in res.iterdir()} == before

    ctc_metrics = pytest.importorskip("ctc_metrics")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any validation complaint fails the test
        assert ctc_metrics.validate_sequence(str(res), threads=1)["Valid"] == 1


def test_write_ctc_rejects_inconsistent_stack(tmp_path, exported):
    _, tracks, stack, _, _ = exported
    broken = stack.copy()
    broken[0][broken[0] == 1] = 0  # track 1 vanishes from frame 0
    with pytest.raises(InputError, match="no pixels"):
        write_ctc(tmp_path / "bad", broken, tracks)
    stray = stack.copy()
    stray[0, 0, 0] = 5  # daughter id before the division
    with pytest.raises(InputError, match="does not"):
        write_ctc(tmp_path / "bad", stray, tracks)


def test_tracking_metrics_perfect_result(exported):
    pytest.importorskip("ctc_metrics")
    root = exported[0]
    scores = tracking_metrics(root / "01_GT", root / "01_RES")
    assert scores["Valid"] == 1.0
    assert scores["TRA"] == 1.0 and scores["DET"] == 1.0 and scores["LNK"] == 1.0
    assert scores["BC(0)"] == 1.0


def test_tracking_metrics_penalise_a_swapped_link(exported, tmp_path):
    pytest.importorskip("ctc_metrics")
    root, tracks, stack, _, _ = exported
    # tracks 1 and 4 swap identities from frame 4 on (one wrong link each)
    swapped = tracks.copy()
    late = swapped["frame"] >= 4
    ids = swapped.loc[late, "track_id"]
    swapped.loc[late, "track_id"] = ids.replace({1: 4, 4: 1})
    swapped.loc[swapped["track_id"] == 1, "parent_track_id"] = 0
    swapped.loc[swapped["track_id"] == 4, "parent_track_id"] = 3
    res = tmp_path / "swapped_RES"
    write_ctc(res, relabel_stack(draw(scenario()), swapped), swapped)
    scores = tracking_metrics(root / "01_GT", res)
    assert scores["DET"] == 1.0
    assert scores["TRA"] < 1.0 and scores["AOGM_ED"] + scores["AOGM_EA"] > 0


def test_tracking_metrics_reports_bad_folders(tmp_path, exported):
    root = exported[0]
    with pytest.raises(InputError, match="gt_dir"):
        tracking_metrics(tmp_path / "nothing", root / "01_RES")
    with pytest.raises(InputError, match="res_dir"):
        tracking_metrics(root / "01_GT", tmp_path / "nothing")


def test_synthetic_time_lapse_scores_near_perfect(tmp_path):
    """Tracking the true objects of the project's synthetic movie (moving
    clumps, divisions, cells entering and leaving) against its ground truth."""
    pytest.importorskip("ctc_metrics")
    from snakescope.synthetic import make_timelapse

    movie = make_timelapse(seed=1)
    gt = movie["tracks"].rename(columns={"track_id": "L", "start": "B", "end": "E", "parent": "P"})
    write_ctc_ground_truth(tmp_path / "GT", movie["labels"], gt)
    tracks = track_objects(movie["cells"], max_distance_px=15, feature_weights={"area_px": 1.0})
    write_ctc(tmp_path / "RES", relabel_stack(movie["labels"], tracks), tracks)
    scores = tracking_metrics(tmp_path / "GT", tmp_path / "RES")
    assert scores["DET"] == 1.0
    assert scores["TRA"] >= 0.99 and scores["BC(0)"] >= 0.5
