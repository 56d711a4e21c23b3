"""Validation of segmentation against ground-truth labels.

Objects are matched one-to-one by intersection over union (IoU) with the
Hungarian algorithm (maximising the summed IoU of matches); a match counts as a
true positive at threshold ``t`` when its IoU is at least ``t`` (StarDist and
Cellpose use the same definition).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .errors import InputError

#: IoU thresholds reported: 0.5 to 0.9 in steps of 0.05.
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(9))


def iou_matrix(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise IoU of the objects of two label images of the same shape.

    Returns
    -------
    iou : ndarray, shape (n_true, n_pred)
    true_ids, pred_ids : ndarray
        Label ids of the rows and columns.
    """
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if truth.shape != pred.shape:
        raise InputError(
            f"ground truth shape {truth.shape} differs from the labels' {pred.shape}; "
            "give ground truth with the image's Y/X size and frames"
        )
    true_ids, t_inv = np.unique(truth.ravel(), return_inverse=True)
    pred_ids, p_inv = np.unique(pred.ravel(), return_inverse=True)
    n_t, n_p = true_ids.size, pred_ids.size
    inter = np.bincount(t_inv * n_p + p_inv, minlength=n_t * n_p).reshape(n_t, n_p).astype(np.float64)
    area_t = inter.sum(axis=1)
    area_p = inter.sum(axis=0)
    t_fg = true_ids != 0
    p_fg = pred_ids != 0
    inter = inter[t_fg][:, p_fg]
    union = area_t[t_fg][:, None] + area_p[p_fg][None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou, true_ids[t_fg], pred_ids[p_fg]


def match(truth: np.ndarray, pred: np.ndarray) -> pd.DataFrame:
    """One-to-one matches between ground-truth and predicted objects.

    Returns a table ``true_label, pred_label, iou`` of the Hungarian matches
    with IoU > 0.
    """
    iou, t_ids, p_ids = iou_matrix(truth, pred)
    if iou.size == 0:
        return pd.DataFrame({"true_label": [], "pred_label": [], "iou": []})
    from scipy.optimize import linear_sum_assignment  # 0.2 s to import: only where matching is done

    rows, cols = linear_sum_assignment(-iou)
    keep = iou[rows, cols] > 0
    return pd.DataFrame(
        {"true_label": t_ids[rows[keep]], "pred_label": p_ids[cols[keep]], "iou": iou[rows[keep], cols[keep]]}
    )


def scores(
    truth: np.ndarray, pred: np.ndarray, *, thresholds: Sequence[float] = IOU_THRESHOLDS
) -> pd.DataFrame:
    """Detection scores of ``pred`` against ``truth`` at several IoU thresholds.

    Returns
    -------
    DataFrame
        One row per threshold: ``iou_threshold, n_true, n_pred, tp, fp, fn,
        precision, recall, f1, mean_matched_iou`` (precision/recall/F1 are 1
        when both images are empty).
    """
    matches = match(truth, pred)
    n_true = int(np.unique(truth[truth != 0]).size)
    n_pred = int(np.unique(pred[pred != 0]).size)
    rows = []
    for t in thresholds:
        ok = matches["iou"].to_numpy() >= t
        tp = int(ok.sum())
        rows.append(_row(t, n_true, n_pred, tp, float(matches["iou"][ok].sum())))
    return pd.DataFrame(rows)


def _row(t: float, n_true: int, n_pred: int, tp: int, iou_sum: float) -> dict:
    fp, fn = n_pred - tp, n_true - tp
    precision = tp / n_pred if n_pred else (1.0 if n_true == 0 else 0.0)
    recall = tp / n_true if n_true else (1.0 if n_pred == 0 else 0.0)
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0
    return {
        "iou_threshold": t, "n_true": n_true, "n_pred": n_pred, "tp": tp, "fp": fp, "fn": fn,
        "precision": precision, "recall": recall, "f1": f1,
        "mean_matched_iou": iou_sum / tp if tp else float("nan"),
    }


def pool_scores(per_frame: pd.DataFrame) -> pd.DataFrame:
    """Pool per-frame scores (sum counts over frames) into one row per threshold."""
    rows = []
    for t, g in per_frame.groupby("iou_threshold", sort=True):
        tp = int(g["tp"].sum())
        iou_sum = float((g["mean_matched_iou"].fillna(0) * g["tp"]).sum())
        rows.append(_row(float(t), int(g["n_true"].sum()), int(g["n_pred"].sum()), tp, iou_sum))
    return pd.DataFrame(rows)


#: Name of the pooled row of every summary table (``image = ALL``).
POOLED = "ALL"


def _per_frame(who: str, truth: np.ndarray, pred: np.ndarray, frame_table) -> pd.DataFrame:
    """``frame_table(truth2d, pred2d)`` of every frame of two ``TYX`` stacks, with ``frame`` first."""
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if truth.shape != pred.shape:
        raise InputError(
            f"{who}: truth has shape {truth.shape} (TYX) but pred has {pred.shape}; "
            "give one label image per image with the same frames and Y/X size"
        )
    parts = []
    for t in range(truth.shape[0]):
        table = frame_table(truth[t], pred[t])
        table.insert(0, "frame", t)
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def matched_pairs(truth: np.ndarray, pred: np.ndarray, *, min_iou: float = 0.5) -> pd.DataFrame:
    """One-to-one matches with IoU ≥ ``min_iou`` between two ``TYX`` label stacks.

    Returns
    -------
    DataFrame
        ``frame, true_label, pred_label, iou``, one row per matched pair.
    """

    def pairs(t2d: np.ndarray, p2d: np.ndarray) -> pd.DataFrame:
        m = match(t2d, p2d)
        return m[m["iou"] >= min_iou].copy()

    return _per_frame("matched_pairs", truth, pred, pairs)


def segmentation_scores(truth: np.ndarray, pred: np.ndarray, *,
                        thresholds: Sequence[float] = IOU_THRESHOLDS) -> pd.DataFrame:
    """:func:`scores` of every frame of two ``TYX`` label stacks (column ``frame`` first)."""
    return _per_frame("segmentation_scores", truth, pred, lambda t2d, p2d: scores(t2d, p2d, thresholds=thresholds))


def with_pooled(table: pd.DataFrame, summarise, *, by: str = "image") -> pd.DataFrame:
    """One summary per value of ``by`` plus a pooled row (``by = ALL``).

    Parameters
    ----------
    table : DataFrame
        Rows to summarise, with a column ``by``.
    summarise : callable
        ``summarise(rows) -> dict or DataFrame`` for a group of rows.
    """
    parts = []
    groups = list(table.groupby(by, sort=True)) + [(POOLED, table)]
    for name, rows in groups:
        result = summarise(rows)
        frame = pd.DataFrame([result]) if isinstance(result, dict) else result.reset_index(drop=True)
        frame.insert(0, by, name)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def pooled_segmentation(per_frame: pd.DataFrame) -> pd.DataFrame:
    """Per-image and pooled (``ALL``) detection scores from per-frame scores."""

    def summarise(rows: pd.DataFrame) -> pd.DataFrame:
        pooled = pool_scores(rows)
        pooled.insert(0, "n_frames", int(rows.groupby("image")["frame"].nunique().sum()))
        return pooled

    return with_pooled(per_frame, summarise)


def cn_errors(matched: pd.DataFrame, truth: pd.DataFrame, measured: pd.DataFrame, *,
              truth_column: str, measured_column: str) -> pd.DataFrame:
    """C/N of matched objects against the truth.

    Parameters
    ----------
    matched : DataFrame
        :func:`matched_pairs` (``frame, true_label, pred_label, iou``).
    truth, measured : DataFrame
        Tables with ``frame, label`` and the C/N columns ``truth_column`` and
        ``measured_column``.

    Returns
    -------
    DataFrame
        ``matched`` with ``cn_true, cn_measured, rel_error``.
    """
    for table, column, what in ((truth, truth_column, "truth"), (measured, measured_column, "measured")):
        for needed in ("frame", "label", column):
            if needed not in table.columns:
                raise InputError(f"cn_errors: the {what} table has no column '{needed}'")
    out = matched.merge(truth[["frame", "label", truth_column]].rename(
        columns={"label": "true_label", truth_column: "cn_true"}), on=["frame", "true_label"], how="left")
    out = out.merge(measured[["frame", "label", measured_column]].rename(
        columns={"label": "pred_label", measured_column: "cn_measured"}), on=["frame", "pred_label"], how="left")
    out["rel_error"] = (out["cn_measured"] - out["cn_true"]) / out["cn_true"]
    return out


def cn_summary(matched: pd.DataFrame) -> pd.DataFrame:
    """Median absolute relative error and correlation of C/N, per image and pooled."""

    def summarise(g: pd.DataFrame) -> dict:
        ok = g.dropna(subset=["cn_true", "cn_measured"])
        return {
            "reporter": g["reporter"].iloc[0] if len(g) else "",
            "n_matched": len(g), "n_valid": len(ok),
            "median_abs_rel_error": float(ok["rel_error"].abs().median()) if len(ok) else np.nan,
            "mean_rel_error": float(ok["rel_error"].mean()) if len(ok) else np.nan,
            "p90_abs_rel_error": float(ok["rel_error"].abs().quantile(0.9)) if len(ok) else np.nan,
            "pearson_r": float(np.corrcoef(ok["cn_true"], ok["cn_measured"])[0, 1]) if len(ok) > 2 else np.nan,
        }

    return with_pooled(matched, summarise)


def size_errors(matched: pd.DataFrame, truth: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """Rod length and width of matched objects against the truth.

    ``truth`` and ``measured`` have ``label, length_um, width_um`` (and ``frame``;
    a truth table without it is frame 0). Returns ``matched`` with the true and
    measured sizes and ``length_rel_error, width_rel_error``.
    """
    for table, what in ((truth, "truth"), (measured, "measured")):
        for col in ("label", "length_um", "width_um"):
            if col not in table.columns:
                raise InputError(f"size_errors: the {what} table has no column '{col}'")
    if "frame" not in truth.columns:
        truth = truth.assign(frame=0)
    out = matched.merge(truth[["frame", "label", "length_um", "width_um"]].rename(
        columns={"label": "true_label", "length_um": "length_true", "width_um": "width_true"}), on=["frame", "true_label"])
    out = out.merge(measured[["frame", "label", "length_um", "width_um"]].rename(
        columns={"label": "pred_label"}), on=["frame", "pred_label"])
    out["length_rel_error"] = out["length_um"] / out["length_true"] - 1
    out["width_rel_error"] = out["width_um"] / out["width_true"] - 1
    return out


def size_summary(matched: pd.DataFrame) -> pd.DataFrame:
    """Median (absolute) relative error of rod length and width, per image and pooled."""

    def summarise(g: pd.DataFrame) -> dict:
        return {"n_matched": len(g),
                "length_median_abs_rel_error": float(g["length_rel_error"].abs().median()),
                "length_median_rel_error": float(g["length_rel_error"].median()),
                "width_median_abs_rel_error": float(g["width_rel_error"].abs().median()),
                "width_median_rel_error": float(g["width_rel_error"].median())}

    return with_pooled(matched, summarise)


def tracking_summary(per_image: pd.DataFrame) -> pd.DataFrame:
    """CTC measures per image plus their mean over images (row ``image = ALL``)."""
    return with_pooled(per_image, lambda g: g.drop(columns=["image"]).mean(numeric_only=True).to_dict())
