"""Cell Tracking Challenge (CTC) ground truth: reading the ``XX_GT`` layout and
the SEG measure.

A CTC ground-truth folder holds ``TRA/man_trackNNN.tif`` (one marker per
object and frame, value = track id) with ``TRA/man_track.txt`` (``L B E P``),
and ``SEG/man_segNNN.tif``: instance masks of some frames (sparse), in which
not every object needs to be annotated. TRA and DET are computed by
py-ctcmetrics (:func:`snakescope.track.tracking_metrics`); SEG here, as the CTC
defines it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import InputError

_SEG_RE = re.compile(r"^man_seg_?(\d+)(?:_(\d+))?\.tiff?$")


def seg_frames(gt_dir: str | Path) -> dict[int, Path]:
    """Frame -> file of the 2-D SEG annotations of a CTC ground-truth folder.

    Returns an empty dict when the folder has no ``SEG`` annotations.
    """
    seg = Path(gt_dir) / "SEG"
    if not seg.is_dir():
        return {}
    out = {}
    for path in sorted(seg.iterdir()):
        m = _SEG_RE.match(path.name)
        if m and m.group(2) is None:  # 3-D slice annotations (man_seg_T_Z) are not used
            out[int(m.group(1))] = path
    return out


def check_ground_truth(gt_dir: str | Path) -> None:
    """Raise an error naming ``gt_dir`` when it is not a CTC ground-truth folder."""
    gt = Path(gt_dir)
    tra = gt / "TRA"
    if not gt.is_dir():
        raise InputError(f"{gt}: no such folder; give the CTC ground-truth folder (e.g. 02_GT, holding TRA/ and SEG/)")
    if not (tra / "man_track.txt").is_file() and not seg_frames(gt):
        raise InputError(f"{gt}: neither TRA/man_track.txt nor SEG/man_segNNN.tif; give the CTC ground-truth folder")


def seg_score(truth: dict[int, np.ndarray], pred: np.ndarray) -> dict[str, float]:
    """The CTC SEG measure of a label stack against sparse annotations.

    Every annotated object R is matched to the predicted object S covering more
    than half of it (at most one can); its score is ``|R∩S| / |R∪S|``, 0 when
    there is none. SEG is the mean over all annotated objects.

    Parameters
    ----------
    truth : dict of int to (Y, X) ndarray
        Annotated frames (frame index -> instance labels; 0 = not annotated).
    pred : (T, Y, X) ndarray of int
        Predicted labels of every frame.

    Returns
    -------
    dict
        ``SEG``, ``seg_objects`` (annotated objects), ``seg_matched`` (with a
        > 50 % match), ``seg_frames``.
    """
    pred = np.asarray(pred)
    total, matched, n_objects = 0.0, 0, 0
    for frame, gt in sorted(truth.items()):
        if not 0 <= frame < pred.shape[0]:
            raise InputError(f"seg_score: annotated frame {frame} is outside pred's {pred.shape[0]} frames")
        if gt.shape != pred.shape[1:]:
            raise InputError(f"seg_score: annotation of frame {frame} has shape {gt.shape}, pred {pred.shape[1:]}")
        p = pred[frame]
        ids, inverse = np.unique(gt.ravel(), return_inverse=True)
        fg = ids != 0
        n_objects += int(fg.sum())
        pids, pinv = np.unique(p.ravel(), return_inverse=True)
        pair = np.bincount(inverse * len(pids) + pinv, minlength=len(ids) * len(pids)).reshape(len(ids), len(pids))
        area_r = pair.sum(axis=1)
        area_s = pair.sum(axis=0)
        for i in np.flatnonzero(fg):
            row = pair[i].copy()
            row[pids == 0] = 0
            j = int(np.argmax(row))
            inter = row[j]
            if inter * 2 > area_r[i]:
                total += inter / (area_r[i] + area_s[j] - inter)
                matched += 1
    return {"SEG": float(total / max(n_objects, 1)), "seg_objects": n_objects, "seg_matched": matched,
            "seg_frames": len(truth)}
