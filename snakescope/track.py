"""Tracking of segmented objects over time and Cell Tracking Challenge (CTC) I/O.

The tracker is the linear assignment problem (LAP) tracker of Jaqaman et al.
(2008, Nat. Methods 5:695) with the cost matrices of laptrack 0.17 (which
reproduces TrackMate's sparse LAP tracker), plus evidence for divisions. With
the evidence tests off and laptrack's threshold (see :func:`_link`) it gives
exactly laptrack's links on random movies with gaps and divisions (see the
tests):

1. *Frame-to-frame linking*: one LAP per pair of consecutive frames. Linking
   object ``i`` of frame ``t`` to object ``j`` of frame ``t + 1`` costs the
   squared distance plus the feature cost (see :func:`track_objects`); not
   linking costs ``1.05 x`` the largest candidate cost of that frame pair.
2. *Gap closing and splitting*: one LAP over the track segments of step 1.
   A segment end may be joined to a segment start up to ``gap_frames + 1``
   frames later (gap closing), and a segment start may be joined to any object
   of the previous frame (splitting: that object becomes a mother with two
   daughters). Alternative costs are ``1.05 x`` the largest candidate cost
   (laptrack: the 90th percentile), so the distance gates decide.
3. *Division evidence*: divisions whose daughters are not smaller than the
   mother, or do not persist, are rejected and step 2 is solved again
   without them (see :func:`track_objects`).

Why laptrack is not called: its candidate search is dense (``cdist`` of every
pair, then a per-segment ``pandas.apply``). It took 9 s for 27 frames x 800
objects with 5 % missed detections, and had not finished after 15 min (1.1 GB)
for 5 frames x 5,000 objects with a 1,000 px cutoff. Here a KD-tree query
finds the candidates, at most ``max_candidates`` nearest per object and
direction, so memory grows linearly with the number of objects whatever the
cutoff. Each LAP is split into its independent connected components (see
:func:`_assign`), which keeps the time near-linear for realistic cutoffs and
bounded for absurd ones.

Output follows the CTC convention: a track is a chain of objects without
branching. At a division the mother track ends and each daughter starts a new
track whose ``parent_track_id`` is the mother's.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

from snakescope.errors import InputError

__all__ = [
    "track_objects",
    "relabel_stack",
    "ctc_tracks",
    "write_ctc",
    "write_ctc_ground_truth",
    "tracking_metrics",
]

TRACK_COLUMNS = ["frame", "label", "track_id", "parent_track_id", "x", "y"]
"""Columns of the table returned by :func:`track_objects`."""

CTC_COLUMNS = ["L", "B", "E", "P"]
"""Columns of a CTC track table (``res_track.txt`` / ``man_track.txt``)."""

FEATURE_REFERENCE_CHANGE = 0.2
"""A feature change of this fraction (20 %) with weight 1 costs ``(0.2 * max_distance_px)**2``."""

CTC_METRICS = ("Valid", "DET", "TRA", "LNK", "CT", "TF", "BC", "CCA")
"""The py-ctcmetrics measures computed by :func:`tracking_metrics`."""

_EPSILON = 1e-6  # laptrack's offset so that no cost is an explicit zero
_ALTERNATIVE_COST_FACTOR = 1.05  # laptrack / TrackMate default
_ALTERNATIVE_COST_PERCENTILE = 90.0  # laptrack / TrackMate default
_SEGMENT_ALTERNATIVE_PERCENTILE = 100.0  # track_objects: gap closings and divisions are gated by distance
_CTC_MAX_LABEL = 65535  # CTC masks are 16-bit
_SQUARE_MAX_NODES = 1000  # larger LAP components use the rectangular form
_MOTHER_AREA_FRAMES = 3  # a mother's area: median over her track's last 3 objects
_MAX_DIVISION_ROUNDS = 5  # re-solves of the segment LAP after rejecting divisions (real movies: 1-2)
_RATIO_OFF = 100.0  # max_daughter_area_ratio at or above this disables the size test
_MASK_RE = re.compile(r"^mask\d{3,}\.tif$")
_GT_MASK_RE = re.compile(r"^man_track\d{3,}\.tif$")


# --------------------------------------------------------------------------- #
# Tracking
# --------------------------------------------------------------------------- #


def track_objects(
    objects: pd.DataFrame,
    *,
    max_distance_px: float,
    gap_frames: int = 2,
    gap_distance_px: float | None = None,
    divisions: bool = True,
    division_distance_px: float | None = None,
    feature_weights: Mapping[str, float] | None = None,
    min_length: int = 1,
    max_candidates: int = 10,
    area_column: str | None = "area_px",
    max_daughter_area_ratio: float = 0.8,
    min_daughter_frames: int = 2,
) -> pd.DataFrame:
    """Link objects over frames into tracks (LAP tracker, CTC track convention).

    Parameters
    ----------
    objects : pandas.DataFrame
        One row per object per frame with at least ``frame`` (integer >= 0),
        ``label`` (integer >= 1, unique within a frame), ``x`` and ``y``
        (pixels), plus every column named in `feature_weights`. Frames without
        objects are allowed; frame numbers are used as given, so an absent
        frame counts as a gap.
    max_distance_px : float
        Largest displacement (px) between consecutive frames for a link. The
        gate is on distance alone: feature costs never forbid a link, they only
        decide between competing ones.
    gap_frames : int
        Largest number of consecutive frames an object may be missing and keep
        its track (gap closing); 0 disables gap closing. For ``gap_frames >=
        1`` this is laptrack's ``gap_closing_max_frame_count - 1``.
    gap_distance_px : float or None
        Largest distance (px) between the last position before and the first
        after a gap, whatever the gap's length; None uses `max_distance_px`.
    divisions : bool
        Detect divisions (splitting): a track may start next to an object of
        the previous frame, which then becomes the mother of two tracks.
    division_distance_px : float or None
        Largest distance (px) between a mother in frame ``t`` and a daughter's
        first position in frame ``t + 1``; None uses `max_distance_px`.
    feature_weights : mapping of str to float, or None
        Weights ``w_k >= 0`` of feature columns (e.g. ``area_px``,
        ``nucleus_mean``; values must be finite and > 0). The cost of linking
        object ``a`` to ``b`` (frame linking and gap closing; not splitting,
        where daughters legitimately halve in size) is::

            (x_b - x_a)**2 + (y_b - y_a)**2 + sum_k w_k * (D * r_k)**2
            r_k = 0.2 * ln(f_k(b) / f_k(a)) / ln(1.2)
            D = max_distance_px

        ``r_k`` is the relative difference measured on a log scale (symmetric
        in ``a`` and ``b``) and calibrated so that a 20 % change (ratio 1.2 or
        1/1.2) gives exactly ``r = 0.2``: a weight of 1 on a 20 % change costs
        ``(0.2 * max_distance_px)**2``. A 10 % change gives ``r = 0.105``, 50 %
        gives ``0.445``, doubling gives ``0.760``.
    min_length : int
        Tracks present in fewer than `min_length` frames (frames with an
        object, gaps not counted) are dropped: their rows get ``track_id`` 0
        and the remaining ids are renumbered 1..N in the same order. A
        daughter whose mother was dropped gets ``parent_track_id`` 0.
    max_candidates : int
        At most this many nearest candidates (within the distance cutoff) per
        object, in each direction, enter each assignment problem. This keeps
        time and memory near-linear in the number of objects even with a huge
        cutoff; with realistic cutoffs it never binds.
    area_column : str or None
        Column of object areas used as evidence for divisions (see Notes);
        when None or absent from `objects`, divisions are judged without
        sizes. Values must be finite and > 0.
    max_daughter_area_ratio : float
        Each daughter's area must be at most this fraction of its mother's
        area: the median over the mother track's last 3 objects, so that one
        odd frame (a merge with a neighbour, a wrong link) does not count,
        while a mother that swells in her last two frames before mitosis is
        measured at that size. Daughters of a division have about half their
        mother's area (0.31-0.74 on the simulated CTC movie); a cell that
        merely continues next to a newcomer keeps its own (>= 0.88). Values
        >= 100 disable the size test.
    min_daughter_frames : int
        Each daughter must be present in each of the first
        `min_daughter_frames` frames after the division (no gap; its track
        may end or divide after that): rejects the one-frame fragments of an
        over-segmented nucleus and flickering false detections. Divisions in
        the last ``min_daughter_frames - 1`` frames of the movie are
        therefore not detected. 1 disables the test.

    Returns
    -------
    pandas.DataFrame
        One row per input object, sorted by ``frame, label``, with columns
        ``frame, label, track_id, parent_track_id, x, y``. Track ids are
        1..N ordered by first frame, then by label in that frame; a
        gap-closed track keeps one id across the gap. ``parent_track_id`` is
        0 for tracks without a (kept) mother. The same input, in any row
        order, gives an identical output.

    Raises
    ------
    InputError
        Missing columns, NaN or infinite coordinates or features, duplicate
        ``(frame, label)``, non-integer frames or labels, or a non-positive
        distance.

    Notes
    -----
    With fewer than two frames every object is its own one-frame track; this
    is not an error.

    Costs are laptrack's (and TrackMate's). A frame link within
    `max_distance_px`, a gap closing within `gap_distance_px` and a division
    within `division_distance_px` are each taken unless a competing candidate
    makes the total cost lower: the alternative cost of the gap-closing and
    splitting problem is ``1.05 x`` its largest candidate cost. (laptrack and
    TrackMate use the 90th percentile of the candidate costs, which makes the
    gap-closing distance change which divisions are found.)

    Divisions need evidence. Every track start within
    `division_distance_px` of an object of the previous frame is a candidate
    daughter of that object (laptrack's splitting candidates), but a division
    is kept only if (1) both daughters are at most `max_daughter_area_ratio`
    of the mother's area (when areas are known) and (2) both daughters are
    present in the `min_daughter_frames` frames after it. Candidates that
    fail (1) on the frame links are removed before the assignment; divisions
    of the solution that fail (1) or (2) are removed and the gap-closing and
    splitting problem is solved again without them (at most
    ``_MAX_DIVISION_ROUNDS`` times), so a rejected daughter may still be
    gap-closed to her own track. When the mother's frame link went to a
    fragment that fails (2) while the rejected daughter persists (a nucleus
    split in two for one frame), the mother continues into the persisting
    one. Neither test can tell a division from two touching nuclei that the
    segmentation merges for several frames and then separates; without
    areas, only (2) is checked. With ``max_daughter_area_ratio >= 100`` and
    ``min_daughter_frames=1`` divisions are not filtered (laptrack's).
    """
    max_distance_px = _positive("max_distance_px", max_distance_px)
    gap_distance_px = (
        max_distance_px if gap_distance_px is None else _positive("gap_distance_px", gap_distance_px)
    )
    division_distance_px = (
        max_distance_px
        if division_distance_px is None
        else _positive("division_distance_px", division_distance_px)
    )
    gap_frames = _integer("gap_frames", gap_frames, minimum=0)
    min_length = _integer("min_length", min_length, minimum=1)
    max_candidates = _integer("max_candidates", max_candidates, minimum=1)
    min_daughter_frames = _integer("min_daughter_frames", min_daughter_frames, minimum=1)
    max_daughter_area_ratio = _ratio("max_daughter_area_ratio", max_daughter_area_ratio)
    weights = _check_weights(feature_weights)
    if area_column is not None and not isinstance(area_column, str):
        raise InputError(f"area_column: {area_column!r} is not a column name; give e.g. 'area_px' or None")

    use_area = (
        divisions
        and area_column is not None
        and isinstance(objects, pd.DataFrame)
        and area_column in objects.columns
        and max_daughter_area_ratio < _RATIO_OFF
    )
    extra = [area_column] if use_area and area_column not in weights else []
    table = _check_objects(objects, list(weights), positive_columns=extra)
    frames = table["frame"].to_numpy(np.int64)
    xy = table[["x", "y"]].to_numpy(np.float64)
    embedded = _feature_embedding(table, weights, max_distance_px)
    areas = table[area_column].to_numpy(np.float64) if use_area else None

    pred, split_mother = _link(
        frames,
        xy,
        embedded,
        max_distance_px=max_distance_px,
        gap_frames=gap_frames,
        gap_distance_px=gap_distance_px,
        division_distance_px=division_distance_px if divisions else None,
        max_candidates=max_candidates,
        areas=areas,
        max_daughter_area_ratio=max_daughter_area_ratio,
        min_daughter_frames=min_daughter_frames,
        alternative_percentile=_SEGMENT_ALTERNATIVE_PERCENTILE,
    )
    track_id, parent_id = _assemble_tracks(frames, pred, min_length=min_length)

    return pd.DataFrame(
        {
            "frame": frames,
            "label": table["label"].to_numpy(np.int64),
            "track_id": track_id,
            "parent_track_id": parent_id,
            "x": xy[:, 0],
            "y": xy[:, 1],
        }
    )


def _positive(name: str, value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: {value!r} is not a number; give a distance in pixels > 0") from None
    if not math.isfinite(number) or number <= 0:
        raise InputError(f"{name}: {value!r} must be a finite number > 0; give a distance in pixels")
    return number


def _integer(name: str, value: int, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name}: {value!r} must be an integer >= {minimum}; set it to one")
    return int(value)


def _ratio(name: str, value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if math.isnan(number) or number <= 0:
        raise InputError(f"{name}: {value!r} must be a number > 0; give a fraction such as 0.8")
    return number


def _check_weights(feature_weights: Mapping[str, float] | None) -> dict[str, float]:
    weights: dict[str, float] = {}
    for name, weight in (feature_weights or {}).items():
        try:
            number = float(weight)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise InputError(
                f"feature_weights[{name!r}]: {weight!r} must be a finite number >= 0; set a weight such as 1"
            )
        weights[str(name)] = number
    return weights


def _check_objects(
    objects: pd.DataFrame, feature_columns: list[str], positive_columns: list[str] | None = None
) -> pd.DataFrame:
    if not isinstance(objects, pd.DataFrame):
        raise InputError("objects: expected a pandas DataFrame with columns frame, label, x, y")
    feature_columns = [*feature_columns, *(positive_columns or [])]
    required = ["frame", "label", "x", "y", *feature_columns]
    missing = [c for c in required if c not in objects.columns]
    if missing:
        raise InputError(
            f"objects: missing column(s) {', '.join(missing)}; "
            "add them or remove them from feature_weights"
        )
    table = objects[required].copy()
    for column in ("frame", "label"):
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64)
        lowest = 0 if column == "frame" else 1
        bad = ~np.isfinite(values) | (values != np.round(values)) | (values < lowest)
        if bad.any():
            raise InputError(
                f"objects.{column}: {int(bad.sum())} value(s) are not integers >= {lowest}; "
                f"fix the {column} column"
            )
        table[column] = values.astype(np.int64)
    for column in ["x", "y", *feature_columns]:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(values)
        if column in feature_columns:
            bad |= values <= 0
        if bad.any():
            what = "NaN, infinite or <= 0" if column in feature_columns else "NaN or infinite"
            raise InputError(
                f"objects.{column}: {int(bad.sum())} value(s) are {what}; "
                "drop or fix those objects before tracking"
            )
        table[column] = values
    duplicated = table.duplicated(["frame", "label"])
    if duplicated.any():
        raise InputError(
            f"objects: {int(duplicated.sum())} duplicate (frame, label) pair(s); "
            "each object must appear once per frame"
        )
    return table.sort_values(["frame", "label"], kind="stable").reset_index(drop=True)


def _feature_embedding(
    table: pd.DataFrame, weights: Mapping[str, float], max_distance_px: float
) -> np.ndarray:
    """Features as coordinates whose squared differences are the feature costs."""
    scale = max_distance_px * FEATURE_REFERENCE_CHANGE / math.log1p(FEATURE_REFERENCE_CHANGE)
    columns = [
        math.sqrt(weight) * scale * np.log(table[name].to_numpy(np.float64))
        for name, weight in weights.items()
        if weight > 0
    ]
    if not columns:
        return np.zeros((len(table), 0))
    return np.column_stack(columns)


def _candidates(
    source_xy: np.ndarray,
    target_xy: np.ndarray,
    *,
    max_distance_px: float,
    max_candidates: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j) with distance < cutoff, among each side's nearest neighbours.

    Returns source indices, target indices (sorted, unique pairs) and squared
    distances.
    """
    n_source, n_target = len(source_xy), len(target_xy)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if n_source == 0 or n_target == 0:
        return empty
    bound = np.nextafter(max_distance_px, np.inf) * (1 + 1e-9)
    codes = []
    for query_xy, tree_xy, forward in ((source_xy, target_xy, True), (target_xy, source_xy, False)):
        k = min(max_candidates, len(tree_xy))
        distance, neighbour = cKDTree(tree_xy).query(
            query_xy, k=list(range(1, k + 1)), distance_upper_bound=bound
        )
        found = np.isfinite(distance)
        query_index = np.broadcast_to(np.arange(len(query_xy))[:, None], neighbour.shape)[found]
        neighbour = neighbour[found]
        i, j = (query_index, neighbour) if forward else (neighbour, query_index)
        codes.append(i.astype(np.int64) * n_target + j)
    code = np.unique(np.concatenate(codes))
    i, j = np.divmod(code, n_target)
    squared = ((source_xy[i] - target_xy[j]) ** 2).sum(axis=1)
    keep = squared < max_distance_px**2
    if not keep.any():
        return empty
    return i[keep], j[keep], squared[keep]


def _assign(
    rows: np.ndarray,
    cols: np.ndarray,
    costs: np.ndarray,
    n_rows: int,
    n_cols: int,
    *,
    alternative: float,
    filler: float,
) -> np.ndarray:
    """Jaqaman's LAP: link rows to candidate columns, or leave them unlinked.

    Minimises ``sum over links (cost + filler) + alternative x (unlinked rows
    + unlinked columns)``, which is what laptrack's square cost matrix (with
    ``alternative`` on both diagonals and ``filler`` in the lower-right
    block) encodes. Returns the column of every row, or -1.

    Independent connected components of the candidate graph are solved
    separately, which leaves the optimum unchanged: all components of up to
    ``_SQUARE_MAX_NODES`` nodes together in laptrack's square form (fast when
    most components are small), each larger component in an equivalent
    rectangular form whose run time grows as its size squared but never
    degenerates (the square form took up to 80 s on one 5,000-object frame
    pair with a huge cutoff and feature costs; the rectangular 0.3 s).
    """
    col_of_row = np.full(n_rows, -1, np.int64)
    if len(rows) == 0:
        return col_of_row
    graph = coo_matrix(
        (np.ones(len(rows)), (rows, n_rows + cols)), shape=(n_rows + n_cols, n_rows + n_cols)
    )
    _, component = connected_components(graph, directed=False)
    edge_component = component[rows]
    large = np.bincount(component)[edge_component] > _SQUARE_MAX_NODES
    small = ~large
    if small.any():
        col_of_row = _assign_square(
            rows[small], cols[small], costs[small], n_rows, n_cols, alternative=alternative, filler=filler
        )
    for label in np.unique(edge_component[large]):
        edges = edge_component == label
        row_nodes, local_rows = np.unique(rows[edges], return_inverse=True)
        col_nodes, local_cols = np.unique(cols[edges], return_inverse=True)
        local = _assign_rectangular(
            local_rows,
            local_cols,
            costs[edges] + filler,
            len(row_nodes),
            len(col_nodes),
            no_link_cost=2 * alternative,
        )
        linked = local >= 0
        col_of_row[row_nodes[linked]] = col_nodes[local[linked]]
    return col_of_row


def _assign_square(
    rows: np.ndarray,
    cols: np.ndarray,
    costs: np.ndarray,
    n_rows: int,
    n_cols: int,
    *,
    alternative: float,
    filler: float,
) -> np.ndarray:
    """laptrack's square (rows + columns) cost matrix, solved with LAPJVsp."""
    size = n_rows + n_cols
    all_rows = np.concatenate([rows, np.arange(n_rows), n_rows + np.arange(n_cols), n_rows + cols])
    all_cols = np.concatenate([cols, n_cols + np.arange(n_rows), np.arange(n_cols), n_cols + rows])
    data = np.concatenate(
        [costs, np.full(n_rows + n_cols, alternative), np.full(len(rows), filler)]
    ) + _EPSILON  # no explicit zeros
    matrix = coo_matrix((data, (all_rows, all_cols)), shape=(size, size)).tocsr()
    row_index, col_index = min_weight_full_bipartite_matching(matrix)
    col_of_row = np.full(n_rows, -1, np.int64)
    is_link = (row_index < n_rows) & (col_index < n_cols)
    col_of_row[row_index[is_link]] = col_index[is_link]
    return col_of_row


def _assign_rectangular(
    rows: np.ndarray, cols: np.ndarray, costs: np.ndarray, n_rows: int, n_cols: int, *, no_link_cost: float
) -> np.ndarray:
    """The same problem as rows x (columns + one private no-link column per row).

    Every perfect matching of the square form costs ``sum over links (c +
    filler) + (unlinked rows + unlinked columns) x alternative``. Subtracting
    the constant ``n_cols x alternative`` and adding ``alternative`` to every
    entry of every row (each row is assigned once) gives links ``c + filler``
    and no link ``2 x alternative``: the same optimum.
    """
    all_rows = np.concatenate([rows, np.arange(n_rows)])
    all_cols = np.concatenate([cols, n_cols + np.arange(n_rows)])
    data = np.concatenate([costs, np.full(n_rows, no_link_cost)]) + _EPSILON
    matrix = coo_matrix((data, (all_rows, all_cols)), shape=(n_rows, n_cols + n_rows)).tocsr()
    row_index, col_index = min_weight_full_bipartite_matching(matrix)
    col_of_row = np.full(n_rows, -1, np.int64)
    col_of_row[row_index] = np.where(col_index < n_cols, col_index, -1)
    return col_of_row


def _link_frames(
    i: np.ndarray, j: np.ndarray, cost: np.ndarray, n_source: int, n_target: int
) -> np.ndarray:
    """Frame-to-frame LAP (Jaqaman 2008, Fig. 1b, with laptrack's costs).

    Not linking costs ``b = d = 1.05 x`` the largest candidate cost; the
    lower-right filler is the smallest cost. Returns, for every source
    object, its target index or -1.
    """
    alternative = _ALTERNATIVE_COST_FACTOR * cost.max() if cost.max() > 0 else _EPSILON
    filler = min(cost.min(), alternative)
    return _assign(i, j, cost, n_source, n_target, alternative=alternative, filler=filler)


def _frame_groups(frames: np.ndarray) -> dict[int, np.ndarray]:
    """Indices of the (frame-sorted) nodes in each frame."""
    values, starts = np.unique(frames, return_index=True)
    ends = np.append(starts[1:], len(frames))
    return {int(f): np.arange(s, e) for f, s, e in zip(values, starts, ends)}


def _link(
    frames: np.ndarray,
    xy: np.ndarray,
    features: np.ndarray,
    *,
    max_distance_px: float,
    gap_frames: int,
    gap_distance_px: float,
    division_distance_px: float | None,
    max_candidates: int,
    areas: np.ndarray | None = None,
    max_daughter_area_ratio: float = math.inf,
    min_daughter_frames: int = 1,
    alternative_percentile: float = _ALTERNATIVE_COST_PERCENTILE,
) -> tuple[np.ndarray, np.ndarray]:
    """Jaqaman LAP tracking of frame-sorted nodes.

    Returns ``pred`` (the predecessor node of every node, -1 if none) and a
    boolean mask of nodes whose link to ``pred`` is a division (splitting).
    Divisions are kept only with evidence (see :func:`track_objects`); with
    the defaults (no evidence) this is laptrack's tracker.
    """
    n_nodes = len(frames)
    pred = np.full(n_nodes, -1, np.int64)
    split = np.zeros(n_nodes, bool)
    if n_nodes == 0:
        return pred, split
    groups = _frame_groups(frames)

    def feature_cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return ((features[a] - features[b]) ** 2).sum(axis=1)

    # 1. frame-to-frame linking
    for frame, source in groups.items():
        target = groups.get(frame + 1)
        if target is None:
            continue
        i, j, squared = _candidates(
            xy[source], xy[target], max_distance_px=max_distance_px, max_candidates=max_candidates
        )
        if len(i) == 0:
            continue
        linked = _link_frames(i, j, squared + feature_cost(source[i], target[j]), len(source), len(target))
        has = linked >= 0
        pred[target[linked[has]]] = source[has]

    # 2. and 3. gap closing and splitting over the segments of step 1; after
    #    each solution, divisions without evidence are rejected and the
    #    problem is solved again without them
    check_area = areas is not None and max_daughter_area_ratio < _RATIO_OFF
    check = check_area or min_daughter_frames > 1
    frame_pred = pred
    excluded = np.zeros(0, np.int64)  # (daughter * n_nodes + mother) of rejected splits
    alternative = None
    problem = None
    for round_ in range(_MAX_DIVISION_ROUNDS + 1):
        if problem is None:  # first round, or frame links changed
            problem = _segment_problem(
                frames,
                xy,
                groups,
                frame_pred,
                feature_cost,
                gap_frames=gap_frames,
                gap_distance_px=gap_distance_px,
                division_distance_px=division_distance_px,
                max_candidates=max_candidates,
                areas=areas if check_area else None,
                max_daughter_area_ratio=max_daughter_area_ratio,
                min_daughter_frames=min_daughter_frames,
            )
            if problem is None:
                return frame_pred.copy(), np.zeros(n_nodes, bool)
        if alternative is None:  # fixed after the first round
            costs = np.concatenate([problem["gap_cost"], problem["split_cost"]])
            alternative = (
                np.percentile(costs, alternative_percentile, method="lower") * _ALTERNATIVE_COST_FACTOR
            )
            if alternative == 0:
                alternative = _EPSILON
        allowed = ~np.isin(problem["first"][problem["split_segment"]] * n_nodes + problem["split_node"], excluded)
        pred, split = _solve_segments(frame_pred, problem, allowed, alternative=alternative)
        if not check:
            break
        rejected, mother, other, kept_other, kept_rejected = _implausible_divisions(
            frames,
            pred,
            split,
            areas if check_area else None,
            max_daughter_area_ratio=max_daughter_area_ratio,
            min_daughter_frames=min_daughter_frames,
        )
        if not len(rejected):
            break
        if round_ == _MAX_DIVISION_ROUNDS:  # give up re-solving: cut the divisions left
            pred[rejected] = -1
            split[rejected] = False
            break
        # a mother whose frame link went to a fragment that vanishes, while
        # the rejected daughter persists, continues into that daughter
        swap = (frame_pred[other] == mother) & ~kept_other & kept_rejected
        if swap.any():
            frame_pred = frame_pred.copy()
            frame_pred[rejected[swap]] = mother[swap]
            frame_pred[other[swap]] = -1
            problem = None
        excluded = np.concatenate(
            [excluded, rejected[~swap] * n_nodes + mother[~swap], other[swap] * n_nodes + mother[swap]]
        )
    return pred, split


def _segment_problem(
    frames: np.ndarray,
    xy: np.ndarray,
    groups: dict[int, np.ndarray],
    frame_pred: np.ndarray,
    feature_cost,
    *,
    gap_frames: int,
    gap_distance_px: float,
    division_distance_px: float | None,
    max_candidates: int,
    areas: np.ndarray | None,
    max_daughter_area_ratio: float,
    min_daughter_frames: int,
) -> dict[str, np.ndarray] | None:
    """Segments of the frame links and their gap-closing and splitting candidates.

    Splitting candidates whose daughter's segment is shorter than
    `min_daughter_frames`, or that fail the size test on the frame links,
    are left out.
    """
    n_nodes = len(frames)
    # segments: chains of frame links, numbered in order of their first node
    segment = np.empty(n_nodes, np.int64)
    n_segments = 0
    for nodes in groups.values():
        linked = frame_pred[nodes] >= 0
        segment[nodes[linked]] = segment[frame_pred[nodes[linked]]]
        new = nodes[~linked]
        segment[new] = np.arange(n_segments, n_segments + len(new))
        n_segments += len(new)
    first = np.full(n_segments, n_nodes, np.int64)
    np.minimum.at(first, segment, np.arange(n_nodes))
    last = np.full(n_segments, -1, np.int64)
    np.maximum.at(last, segment, np.arange(n_nodes))

    starts_by_frame = _frame_groups(frames[first])  # segment indices, first is sorted
    ends_order = np.argsort(frames[last], kind="stable")
    ends_by_frame = {f: ends_order[idx] for f, idx in _frame_groups(frames[last][ends_order]).items()}

    gap_rows, gap_cols, gap_costs = [], [], []
    if gap_frames > 0:
        for frame, ends in ends_by_frame.items():
            for delta in range(1, gap_frames + 2):
                starts = starts_by_frame.get(frame + delta)
                if starts is None:
                    continue
                a, b, squared = _candidates(
                    xy[last[ends]],
                    xy[first[starts]],
                    max_distance_px=gap_distance_px,
                    max_candidates=max_candidates,
                )
                gap_rows.append(ends[a])
                gap_cols.append(starts[b])
                gap_costs.append(squared + feature_cost(last[ends[a]], first[starts[b]]))

    split_segments, split_nodes, split_costs = [], [], []
    if division_distance_px is not None:
        for frame, starts in starts_by_frame.items():
            mothers = groups.get(frame - 1)
            if mothers is None:
                continue
            b, c, squared = _candidates(
                xy[first[starts]],
                xy[mothers],
                max_distance_px=division_distance_px,
                max_candidates=max_candidates,
            )
            split_segments.append(starts[b])
            split_nodes.append(mothers[c])
            split_costs.append(squared)

    gap_row = np.concatenate(gap_rows) if gap_rows else np.zeros(0, np.int64)
    gap_col = np.concatenate(gap_cols) if gap_cols else np.zeros(0, np.int64)
    gap_cost = np.concatenate(gap_costs) if gap_costs else np.zeros(0)
    split_segment = np.concatenate(split_segments) if split_segments else np.zeros(0, np.int64)
    split_node = np.concatenate(split_nodes) if split_nodes else np.zeros(0, np.int64)
    split_cost = np.concatenate(split_costs) if split_costs else np.zeros(0)

    # the daughter's own segment (consecutive frames) must be long enough
    keep = frames[last[split_segment]] - frames[first[split_segment]] + 1 >= min_daughter_frames
    if areas is not None and len(split_node):
        # size evidence on the frame links: the new daughter and, if the
        # mother continues by a frame link, the other one are both smaller
        # than the mother
        successor = np.full(n_nodes, -1, np.int64)
        successor[frame_pred[frame_pred >= 0]] = np.flatnonzero(frame_pred >= 0)
        limit = max_daughter_area_ratio * _mother_area(split_node, frame_pred, areas)
        other = successor[split_node]
        other_area = np.where(other >= 0, areas[np.maximum(other, 0)], 0.0)
        keep &= (areas[first[split_segment]] <= limit) & (other_area <= limit)
    split_segment, split_node, split_cost = split_segment[keep], split_node[keep], split_cost[keep]
    if len(gap_cost) + len(split_cost) == 0:
        return None
    return {
        "first": first,
        "last": last,
        "gap_row": gap_row,
        "gap_col": gap_col,
        "gap_cost": gap_cost,
        "split_segment": split_segment,
        "split_node": split_node,
        "split_cost": split_cost,
    }


def _solve_segments(
    frame_pred: np.ndarray, problem: dict[str, np.ndarray], allowed: np.ndarray, *, alternative: float
) -> tuple[np.ndarray, np.ndarray]:
    """Segment LAP (Jaqaman 2008, Fig. 1c without merging, laptrack's costs).

    Rows are segment ends (gap closing) and candidate mothers (splitting),
    columns are segment starts; every alternative cost and the filler are
    `alternative`. Only the `allowed` splitting candidates enter. Returns
    predecessors and the split mask.
    """
    first, last = problem["first"], problem["last"]
    m = len(first)
    pred = frame_pred.copy()
    split = np.zeros(len(pred), bool)
    mothers, mother_index = np.unique(problem["split_node"][allowed], return_inverse=True)
    upper_rows = np.concatenate([problem["gap_row"], m + mother_index])
    upper_cols = np.concatenate([problem["gap_col"], problem["split_segment"][allowed]])
    upper_costs = np.concatenate([problem["gap_cost"], problem["split_cost"][allowed]])
    col_of_row = _assign(
        upper_rows, upper_cols, upper_costs, m + len(mothers), m, alternative=alternative, filler=alternative
    )
    closed = np.flatnonzero(col_of_row[:m] >= 0)
    pred[first[col_of_row[closed]]] = last[closed]
    dividing = np.flatnonzero(col_of_row[m:] >= 0)
    daughters = first[col_of_row[m + dividing]]
    pred[daughters] = mothers[dividing]
    split[daughters] = True
    return pred, split


def _mother_area(nodes: np.ndarray, pred: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """Median area of each node and its predecessors in its track, up to 3 objects.

    The median ignores one odd frame: a mother that merges with a neighbour
    (or is linked to the wrong object) for one frame keeps her own size, and a
    mother that swells (or condenses) in her last two frames before mitosis is
    measured at that size.
    """
    n_nodes = len(pred)
    successors = np.bincount(pred[pred >= 0], minlength=n_nodes)
    history = np.full((len(nodes), _MOTHER_AREA_FRAMES), np.nan)
    current = nodes.copy()
    for k in range(_MOTHER_AREA_FRAMES):
        valid = current >= 0
        history[valid, k] = areas[current[valid]]
        previous = np.where(valid, pred[np.maximum(current, 0)], -1)
        # stop at the start of the mother's track (a division above it)
        in_track = previous >= 0
        in_track[in_track] = successors[previous[in_track]] == 1
        current = np.where(in_track, previous, -1)
    return np.nanmedian(history, axis=1)


def _implausible_divisions(
    frames: np.ndarray,
    pred: np.ndarray,
    split: np.ndarray,
    areas: np.ndarray | None,
    *,
    max_daughter_area_ratio: float,
    min_daughter_frames: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Divisions of a solution that lack evidence (sizes, persistence).

    Returns, for each rejected division: its split-linked daughter, the
    mother, the other daughter, and whether the other and the rejected
    daughter each pass the persistence test.
    """
    n_nodes = len(pred)
    empty = np.zeros(0, np.int64)
    has_pred = pred >= 0
    successors = np.bincount(pred[has_pred], minlength=n_nodes)
    if not (successors == 2).any():
        return empty, empty, empty, empty.astype(bool), empty.astype(bool)
    children = np.flatnonzero(has_pred & (successors[np.maximum(pred, 0)] == 2))
    children = children[np.argsort(pred[children], kind="stable")]
    pair = children.reshape(-1, 2)  # the two daughters of each mother, mothers sorted
    pair = np.where(split[pair[:, :1]], pair, pair[:, ::-1])  # split-linked daughter first
    mothers = pred[pair[:, 0]]
    ok = np.ones(len(mothers), bool)
    if areas is not None:
        limit = max_daughter_area_ratio * _mother_area(mothers, pred, areas)
        ok &= (areas[pair] <= limit[:, None]).all(axis=1)
    # each daughter must be present in the first min_daughter_frames frames
    # after the division, without a gap
    successor = np.full(n_nodes, -1, np.int64)
    single = has_pred & (successors[np.maximum(pred, 0)] == 1)
    successor[pred[single]] = np.flatnonzero(single)
    length = np.ones(pair.shape, np.int64)
    current = pair.copy()
    for _ in range(min_daughter_frames - 1):
        following = np.where(current >= 0, successor[np.maximum(current, 0)], -1)
        gap = (following >= 0) & (frames[np.maximum(following, 0)] != frames[np.maximum(current, 0)] + 1)
        current = np.where(gap, -1, following)
        length += current >= 0
    persists = length >= min_daughter_frames
    ok &= persists.all(axis=1)
    bad = ~ok
    return pair[bad, 0], mothers[bad], pair[bad, 1], persists[bad, 1], persists[bad, 0]


def _assemble_tracks(
    frames: np.ndarray, pred: np.ndarray, *, min_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the linking graph into CTC tracks; return track and parent id per node."""
    n_nodes = len(frames)
    successors = np.bincount(pred[pred >= 0], minlength=n_nodes)
    has_pred = pred >= 0
    continues = np.zeros(n_nodes, bool)
    continues[has_pred] = successors[pred[has_pred]] == 1
    raw = np.zeros(n_nodes, np.int64)
    n_tracks = 0
    for nodes in _frame_groups(frames).values():  # predecessors are in earlier frames
        cont = continues[nodes]
        raw[nodes[cont]] = raw[pred[nodes[cont]]]
        new = nodes[~cont]
        raw[new] = np.arange(n_tracks + 1, n_tracks + 1 + len(new))
        n_tracks += len(new)
    # parent of each raw track (0 = none): the track of the dividing mother node
    raw_parent = np.zeros(n_tracks + 1, np.int64)
    starts = np.flatnonzero(has_pred & ~continues)
    raw_parent[raw[starts]] = raw[pred[starts]]
    # drop short tracks and renumber the rest contiguously, keeping the order
    length = np.bincount(raw, minlength=n_tracks + 1)
    kept = length >= min_length
    kept[0] = False
    new_id = np.zeros(n_tracks + 1, np.int64)
    new_id[kept] = np.arange(1, int(kept.sum()) + 1)
    track_id = new_id[raw]
    parent_id = new_id[raw_parent[raw]]
    parent_id[track_id == 0] = 0
    return track_id, parent_id


# --------------------------------------------------------------------------- #
# Label stacks
# --------------------------------------------------------------------------- #


def relabel_stack(labels: np.ndarray, tracks: pd.DataFrame) -> np.ndarray:
    """Replace object labels by track ids in a TYX label stack.

    Parameters
    ----------
    labels : numpy.ndarray
        TYX integer label stack; index ``t`` of the first axis is ``frame ==
        t`` in `tracks`, 0 is background.
    tracks : pandas.DataFrame
        Output of :func:`track_objects` (columns ``frame, label, track_id``).

    Returns
    -------
    numpy.ndarray
        Same shape; every pixel of object ``(frame, label)`` holds its
        ``track_id``; objects with track id 0 (dropped) and labels absent from
        `tracks` become background 0. dtype ``uint16``, or ``uint32`` when the
        largest track id exceeds 65535.

    Raises
    ------
    InputError
        `labels` is not a 3-D integer array, or `tracks` refers to frames
        beyond the stack.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(
            f"labels: expected a TYX integer label stack, got {labels.ndim}-D {labels.dtype}; "
            "pass the nuclei label stack"
        )
    table = _track_table(tracks, ["frame", "label", "track_id"])
    n_frames = labels.shape[0]
    if len(table) and table["frame"].max() >= n_frames:
        raise InputError(
            f"tracks: frame {int(table['frame'].max())} is beyond the {n_frames}-frame label stack; "
            "pass the label stack the objects were measured on"
        )
    if labels.size and labels.min() < 0:
        raise InputError("labels: negative labels; labels must be >= 0 (0 is background)")
    max_id = int(table["track_id"].max()) if len(table) else 0
    dtype = np.uint16 if max_id <= np.iinfo(np.uint16).max else np.uint32
    out = np.zeros(labels.shape, dtype)
    by_frame = _frame_rows(table)
    for frame in range(n_frames):
        rows = by_frame.get(frame)
        if rows is None:
            continue
        plane = labels[frame]
        label = table["label"].to_numpy(np.int64)[rows]
        size = max(int(plane.max()) if plane.size else 0, int(label.max())) + 1
        lut = np.zeros(size, dtype)
        lut[label] = table["track_id"].to_numpy(np.int64)[rows]
        out[frame] = lut[plane]
    return out


def _track_table(tracks: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    if not isinstance(tracks, pd.DataFrame):
        raise InputError("tracks: expected the DataFrame returned by track_objects")
    missing = [c for c in columns if c not in tracks.columns]
    if missing:
        raise InputError(
            f"tracks: missing column(s) {', '.join(missing)}; pass the output of track_objects"
        )
    table = tracks[columns].copy()
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64)
        if not np.isfinite(values).all() or (values != np.round(values)).any() or (values < 0).any():
            raise InputError(
                f"tracks.{column}: values must be integers >= 0; pass the output of track_objects"
            )
        table[column] = values.astype(np.int64)
    return table


def _frame_rows(table: pd.DataFrame) -> dict[int, np.ndarray]:
    frames = table["frame"].to_numpy(np.int64)
    order = np.argsort(frames, kind="stable")
    return {f: order[idx] for f, idx in _frame_groups(frames[order]).items()}


# --------------------------------------------------------------------------- #
# Cell Tracking Challenge format
# --------------------------------------------------------------------------- #


def _ctc_segments(tracks: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Split tracks at gaps into CTC tracks.

    Returns the L B E P table, the CTC label of every row of the returned
    (kept-rows) table, and that table (``frame, track_id``).
    """
    table = _track_table(tracks, ["frame", "track_id", "parent_track_id"])
    table = table[table["track_id"] > 0].sort_values(["track_id", "frame"], kind="stable")
    table = table.reset_index(drop=True)
    if table.duplicated(["track_id", "frame"]).any():
        raise InputError("tracks: a track has two objects in one frame; pass the output of track_objects")
    track = table["track_id"].to_numpy(np.int64)
    frame = table["frame"].to_numpy(np.int64)
    new_piece = np.ones(len(table), bool)
    new_piece[1:] = (track[1:] != track[:-1]) | (frame[1:] != frame[:-1] + 1)
    piece = np.cumsum(new_piece) - 1
    first_row = np.flatnonzero(new_piece)
    pieces = pd.DataFrame(
        {
            "track_id": track[first_row],
            "B": frame[first_row],
            "E": np.append(frame[first_row[1:] - 1], frame[-1]) if len(first_row) else frame[:0],
        }
    )
    piece_track = pieces["track_id"].to_numpy(np.int64)
    pieces["is_first"] = np.append(True, piece_track[1:] != piece_track[:-1])[: len(pieces)]
    # labels: a track's first piece keeps the track id; later pieces get new
    # labels after the largest track id, ordered by (B, track id)
    label = pieces["track_id"].to_numpy(np.int64).copy()
    later = np.flatnonzero(~pieces["is_first"].to_numpy())
    if len(later):
        order = later[np.lexsort((pieces["track_id"].to_numpy()[later], pieces["B"].to_numpy()[later]))]
        top = int(track.max())
        label[order] = np.arange(top + 1, top + 1 + len(order))
    pieces["L"] = label
    # parents: earlier piece of the same track, or the mother's last piece
    parent_of_track = (
        table.drop_duplicates("track_id").set_index("track_id")["parent_track_id"].astype(np.int64)
    )
    last_label = pieces.groupby("track_id")["L"].last()
    previous = np.append(0, label[:-1])
    mother = parent_of_track.reindex(pieces["track_id"]).to_numpy(np.int64)
    mother_last = last_label.reindex(mother).fillna(0).to_numpy(np.int64)
    pieces["P"] = np.where(pieces["is_first"].to_numpy(), mother_last, previous)
    ctc = pieces[CTC_COLUMNS].sort_values("L", kind="stable").reset_index(drop=True).astype(np.int64)
    return ctc, label[piece], table


def ctc_tracks(tracks: pd.DataFrame) -> pd.DataFrame:
    """CTC track table (``res_track.txt``) of a track table.

    Parameters
    ----------
    tracks : pandas.DataFrame
        Output of :func:`track_objects` (columns ``frame, track_id,
        parent_track_id``); rows with track id 0 are ignored.

    Returns
    -------
    pandas.DataFrame
        Columns ``L B E P`` (label, first frame, last frame, parent label;
        0 = no parent), sorted by ``L``. CTC requires a track to be present in
        every frame from ``B`` to ``E``, so a gap-closed track is split at
        each gap: its first piece keeps the track id, every later piece gets a
        new label (after the largest track id, ordered by ``B`` then track id)
        whose parent is the previous piece. A daughter's parent is the last
        piece of its mother. py-ctcmetrics accepts this as valid.
    """
    return _ctc_segments(tracks)[0]


def _mask_name(prefix: str, frame: int, n_frames: int) -> str:
    digits = max(3, len(str(max(n_frames - 1, 0))))
    return f"{prefix}{frame:0{digits}d}.tif"


def _write_ctc_folder(
    directory: Path,
    stack: np.ndarray,
    ctc: pd.DataFrame,
    *,
    prefix: str,
    pattern: re.Pattern[str],
    track_file: str,
    name: str,
) -> None:
    """Validate mask/table consistency and write CTC masks plus track file."""
    n_frames = stack.shape[0]
    label = ctc["L"].to_numpy(np.int64)
    begin = ctc["B"].to_numpy(np.int64)
    end = ctc["E"].to_numpy(np.int64)
    for frame in range(n_frames):
        plane = stack[frame]
        present = label[(begin <= frame) & (frame <= end)]
        counts = np.bincount(plane.ravel(), minlength=int(label.max(initial=0)) + 1)
        expected = np.zeros(len(counts), bool)
        expected[present] = True
        expected[0] = True
        unexpected = np.flatnonzero((counts > 0) & ~expected)
        if len(unexpected):
            raise InputError(
                f"{name}: frame {frame} has label {int(unexpected[0])} that its track table does not "
                "list in that frame; relabel the stack from the same track table"
            )
        absent = present[counts[present] == 0]
        if len(absent):
            raise InputError(
                f"{name}: track {int(absent[0])} has no pixels in frame {frame}; "
                "relabel the stack from the same track table"
            )
    directory.mkdir(parents=True, exist_ok=True)
    for stale in sorted(directory.iterdir()):
        if pattern.match(stale.name):
            stale.unlink()
    for frame in range(n_frames):
        tifffile.imwrite(
            directory / _mask_name(prefix, frame, n_frames),
            np.ascontiguousarray(stack[frame], dtype=np.uint16),
            photometric="minisblack",
            metadata=None,
        )
    lines = "".join(f"{l} {b} {e} {p}\n" for l, b, e, p in ctc[CTC_COLUMNS].itertuples(index=False))
    (directory / track_file).write_text(lines, encoding="ascii")


def _check_stack(stack: np.ndarray, name: str) -> np.ndarray:
    stack = np.asarray(stack)
    if stack.ndim != 3 or not np.issubdtype(stack.dtype, np.integer):
        raise InputError(f"{name}: expected a TYX integer label stack, got {stack.ndim}-D {stack.dtype}")
    if stack.size and stack.min() < 0:
        raise InputError(f"{name}: negative labels; labels must be >= 0 (0 is background)")
    return stack


def write_ctc(directory: str | Path, relabelled_stack: np.ndarray, tracks: pd.DataFrame) -> pd.DataFrame:
    """Write a tracking result in the CTC result layout.

    Writes ``mask000.tif``, ``mask001.tif``, ... (one 2-D uint16 TIFF per
    frame of the stack; 3 digits while the last frame index is <= 999, else as
    many as needed) and ``res_track.txt`` (``L B E P`` per line, space
    separated, no header, sorted by ``L``). Stale ``maskNNN.tif`` files in
    `directory` are removed. The bytes are deterministic.

    Parameters
    ----------
    directory : str or pathlib.Path
        Output folder (created if needed), e.g. ``.../01_RES``.
    relabelled_stack : numpy.ndarray
        TYX stack of track ids from :func:`relabel_stack` (frame ``t`` is index
        ``t``).
    tracks : pandas.DataFrame
        The track table the stack was relabelled from.

    Returns
    -------
    pandas.DataFrame
        The ``L B E P`` table written (see :func:`ctc_tracks`; pieces of
        gap-closed tracks get new labels in the masks too).

    Raises
    ------
    InputError
        The stack and the table disagree (a label in a frame where the table
        does not list it, or a listed track without pixels), or there are more
        than 65535 CTC tracks.
    """
    stack = _check_stack(relabelled_stack, "relabelled_stack")
    ctc, row_label, table = _ctc_segments(tracks)
    if len(table) and table["frame"].max() >= stack.shape[0]:
        raise InputError(
            f"tracks: frame {int(table['frame'].max())} is beyond the {stack.shape[0]}-frame stack; "
            "pass the relabelled stack of these tracks"
        )
    if len(ctc) and ctc["L"].max() > _CTC_MAX_LABEL:
        raise InputError(
            f"tracks: {int(ctc['L'].max())} CTC labels exceed the 65535 of 16-bit CTC masks; "
            "track a shorter or smaller movie"
        )
    max_in = int(stack.max(initial=0))
    max_id = max(max_in, int(table["track_id"].max()) if len(table) else 0)
    ctc_stack = np.zeros(stack.shape, np.uint16)
    by_frame = _frame_rows(table)
    track_ids = table["track_id"].to_numpy(np.int64)
    for frame in range(stack.shape[0]):
        # per-frame lookup table: track id -> CTC label; ids the table does not
        # list in this frame are reported instead of silently erased
        lut = np.zeros(max_id + 1, np.uint16)
        listed = np.zeros(max_id + 1, bool)
        listed[0] = True
        rows = by_frame.get(frame)
        if rows is not None:
            lut[track_ids[rows]] = row_label[rows]
            listed[track_ids[rows]] = True
        plane = stack[frame]
        bad = ~listed[plane]
        if bad.any():
            raise InputError(
                f"relabelled_stack: frame {frame} has track id {int(plane[bad][0])} that tracks does not "
                "list in that frame; pass the output of relabel_stack for these tracks"
            )
        ctc_stack[frame] = lut[plane]
    _write_ctc_folder(
        Path(directory),
        ctc_stack,
        ctc,
        prefix="mask",
        pattern=_MASK_RE,
        track_file="res_track.txt",
        name="relabelled_stack",
    )
    return ctc


def write_ctc_ground_truth(directory: str | Path, gt_stack: np.ndarray, man_track_df: pd.DataFrame) -> None:
    """Lay out tracking ground truth the way py-ctcmetrics reads it.

    Writes ``directory/TRA/man_track000.tif``, ... (2-D uint16 TIFFs, same
    numbering as :func:`write_ctc`) and ``directory/TRA/man_track.txt``
    (``L B E P``). That is all TRA, DET, LNK, CT, TF, BC and CCA need; a
    ``SEG/man_segNNN.tif`` folder is only read for the SEG measure, which
    :func:`tracking_metrics` does not compute.

    Parameters
    ----------
    directory : str or pathlib.Path
        Ground-truth folder, e.g. ``.../01_GT``.
    gt_stack : numpy.ndarray
        TYX stack of ground-truth track labels (1..65535).
    man_track_df : pandas.DataFrame
        Columns ``L B E P``; each label must have pixels in every frame from
        ``B`` to ``E`` and nowhere else.

    Raises
    ------
    InputError
        Missing columns, labels above 65535, or stack and table disagree.
    """
    stack = _check_stack(gt_stack, "gt_stack")
    missing = [c for c in CTC_COLUMNS if c not in man_track_df.columns]
    if missing:
        raise InputError(f"man_track_df: missing column(s) {', '.join(missing)}; give columns L B E P")
    ctc = man_track_df[CTC_COLUMNS].astype(np.int64).sort_values("L", kind="stable").reset_index(drop=True)
    if stack.size and stack.max() > _CTC_MAX_LABEL or len(ctc) and ctc["L"].max() > _CTC_MAX_LABEL:
        raise InputError("gt_stack: labels above 65535 do not fit 16-bit CTC masks; renumber the tracks")
    _write_ctc_folder(
        Path(directory) / "TRA",
        stack,
        ctc,
        prefix="man_track",
        pattern=_GT_MASK_RE,
        track_file="man_track.txt",
        name="gt_stack",
    )


def tracking_metrics(gt_dir: str | Path, res_dir: str | Path) -> dict[str, float]:
    """CTC tracking measures of a result against ground truth (py-ctcmetrics).

    Parameters
    ----------
    gt_dir : str or pathlib.Path
        Ground-truth folder with ``TRA/man_trackNNN.tif`` and
        ``TRA/man_track.txt`` (see :func:`write_ctc_ground_truth`).
    res_dir : str or pathlib.Path
        Result folder with ``maskNNN.tif`` and ``res_track.txt`` (see
        :func:`write_ctc`), with as many masks as the ground truth.

    Returns
    -------
    dict of str to float
        ``Valid`` (1.0), ``TRA``, ``DET``, ``LNK``, ``CT`` (complete tracks),
        ``TF`` (track fractions), ``BC(0)`` ... ``BC(3)`` (branching
        correctness), ``CCA`` (cell-cycle accuracy), the AOGM and its parts
        (``AOGM``, ``AOGM_0``, ``AOGM_NS``, ``AOGM_FN``, ``AOGM_FP``,
        ``AOGM_ED``, ``AOGM_EA``, ``AOGM_EC``) and the division counts. A
        measure that is undefined (e.g. CCA without divisions in the ground
        truth) is NaN. Objects are matched when they cover > 50 % of a
        ground-truth marker, as in the CTC.

    Raises
    ------
    InputError
        Missing files, differing frame counts, or a result that py-ctcmetrics
        finds invalid (the first of its complaints is quoted).
    """
    from ctc_metrics import evaluate_sequence

    gt = Path(gt_dir)
    res = Path(res_dir)
    gt_masks = sorted(p for p in (gt / "TRA").glob("*.tif")) if (gt / "TRA").is_dir() else []
    res_masks = sorted(res.glob("*.tif")) if res.is_dir() else []
    if not (gt / "TRA" / "man_track.txt").is_file() or not gt_masks:
        raise InputError(
            f"gt_dir: {gt} needs TRA/man_track.txt and TRA/man_trackNNN.tif; "
            "write it with write_ctc_ground_truth"
        )
    if not (res / "res_track.txt").is_file() or not res_masks:
        raise InputError(f"res_dir: {res} needs res_track.txt and maskNNN.tif; write it with write_ctc")
    if len(gt_masks) != len(res_masks):
        raise InputError(
            f"res_dir: {len(res_masks)} masks but the ground truth has {len(gt_masks)}; "
            "export the result for the same frames"
        )
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        results = evaluate_sequence(res=str(res), gt=str(gt), metrics=list(CTC_METRICS), threads=1)
    if not results.get("Valid"):
        complaints = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        detail = complaints[0] if complaints else "no details"
        raise InputError(f"res_dir: {res} is not a valid CTC result ({detail}); re-export it with write_ctc")
    return {
        key: (math.nan if value is None else float(value))
        for key, value in results.items()
        if key != "BC"
    }
