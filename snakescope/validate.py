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
from scipy.optimize import linear_sum_assignment

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
