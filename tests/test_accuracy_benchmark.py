"""benchmarks/accuracy.py: scoring, baseline, table and regression check on small
synthetic arrays with known answers (no real data, no workflow run)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from snakescope import track, validate

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("accuracy_benchmark", ROOT / "benchmarks" / "accuracy.py")
acc = importlib.util.module_from_spec(_spec)
sys.modules["accuracy_benchmark"] = acc
_spec.loader.exec_module(acc)


def known_match() -> tuple[np.ndarray, np.ndarray]:
    """4 true squares; 4 predicted: two exact (IoU 1), one inside its square
    (IoU 0.72), one false positive; one square missed."""
    truth = np.zeros((60, 60), np.uint16)
    pred = np.zeros((60, 60), np.uint16)
    truth[0:10, 0:10] = 1
    truth[20:30, 0:10] = 2
    truth[0:10, 40:50] = 3
    truth[40:50, 40:50] = 4  # missed
    pred[0:10, 0:10] = 7  # exact
    pred[21:29, 0:9] = 3  # 72 px of the 100 of square 2
    pred[45:55, 10:20] = 9  # false positive
    pred[0:10, 40:50] = 5  # exact
    return truth[None], pred[None]


def test_seg_summary_known_f1_and_ap():
    truth, pred = known_match()
    # 4 true, 4 predicted: IoU 1, 1, 0.72 and one false positive, one miss
    per_frame = validate.segmentation_scores(truth, pred)
    per_frame.insert(0, "image", "img")
    table = validate.pooled_segmentation(per_frame)
    s = acc.seg_summary(table)
    # IoU >= t for t <= 0.7: tp 3, fp 1, fn 1; for t >= 0.75: tp 2, fp 2, fn 2
    assert s["F1@0.5"] == pytest.approx(6 / 8)
    assert s["AP@0.5:0.9"] == pytest.approx((5 * 3 / 5 + 4 * 2 / 6) / 9)
    assert s["objects"] == 4 and s["truth_objects"] == 4


def test_seg_summary_pools_frames_and_uses_all_row():
    truth, pred = known_match()
    per_frame = validate.segmentation_scores(np.concatenate([truth, truth]), np.concatenate([pred, truth]))
    per_frame.insert(0, "image", "img")
    s = acc.seg_summary(validate.pooled_segmentation(per_frame))
    # frame 1 perfect (4 tp): pooled at 0.5: tp 7, fp 1, fn 1
    assert s["F1@0.5"] == pytest.approx(14 / 16)
    assert s["objects"] == 8 and s["truth_objects"] == 8
    empty = pd.DataFrame({"iou_threshold": [0.5], "tp": [0], "fp": [0], "fn": [0], "n_pred": [0], "n_true": [0]})
    assert acc.seg_summary(empty)["AP@0.5:0.9"] == 1.0  # nothing to find, nothing found


def test_ctc_summary_reads_pooled_row():
    table = pd.DataFrame({"dataset": "d", "image": ["a", "ALL"], "TRA": [0.5, 0.9], "DET": [0.6, 0.95],
                          "SEG": [0.4, 0.8], "LNK": [1, 1]})
    s = acc.ctc_summary(table)
    assert s["TRA"] == 0.9 and s["DET"] == 0.95 and s["SEG"] == 0.8 and math.isnan(s["BC(0)"])


def test_cn_response_and_ktr_summary():
    cn = pd.Series([1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 5.0, 3.0, 3.0, 4.0], index=range(11))
    lo, hi, ratio = acc.cn_response(cn, (0, 6), (8, 10))
    assert (lo, hi, ratio) == (1.0, 3.0, 3.0)
    s = acc.ktr_summary(pd.Series([700, 740, 760] + [740] * 8), cn, acc.BENCHMARKS["ktr_goedhart"])
    assert s["nuclei_median"] == 740 and s["nuclei_min"] == 700 and s["nuclei_max"] == 760
    assert s["erk_cn_ratio"] == 3.0 and "nuclei_8-20px" not in s
    bench = acc.BENCHMARKS["ktr_goedhart"]
    diameters = pd.Series([7.9, 8.0, 15.0, 20.0, 20.1, 12.0, 30.0])
    frames = pd.Series([0, 0, 0, 0, 0, 1, 1])
    in_range = acc.in_size_range(diameters, frames)  # the authors' 8-20 px, ends included
    assert in_range.to_dict() == {0: 3, 1: 1}
    s = acc.ktr_summary(pd.Series([5, 2]), cn, bench, in_range)
    assert s["nuclei_8-20px"] == 2.0


def disks(shape=(80, 80), centres=((20, 20), (20, 60), (60, 30), (60, 48)), r=9) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    for i, (cy, cx) in enumerate(centres, start=1):
        labels[((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (labels == 0)] = i
    return labels


def test_baseline_finds_separate_and_touching_disks():
    truth = disks()  # the last two touch
    image = np.where(truth > 0, 200.0, 20.0) + np.random.default_rng(0).normal(0, 3, truth.shape)
    pred = acc.baseline_labels(image, diameter_px=18)
    s = acc.seg_summary(validate.pool_scores(validate.segmentation_scores(truth[None], pred[None])))
    assert s["F1@0.5"] == 1.0 and s["objects"] == 4
    dark = acc.baseline_labels(-image, diameter_px=18, invert=True)  # phase contrast: objects darker
    assert len(np.unique(dark)) - 1 == 4
    assert not acc.baseline_labels(np.zeros((10, 10)), diameter_px=5).any()


def test_object_table_centroids_and_areas():
    labels = np.zeros((2, 10, 10), np.int32)
    labels[0, 2:4, 6:10] = 3  # 8 px, centre x 7.5, y 2.5
    t = acc.object_table(labels)
    assert t.to_dict("records") == [{"frame": 0, "label": 3, "x": 7.5, "y": 2.5, "area_px": 8.0}]


def test_score_ctc_perfect_tracking(tmp_path):
    # two disks moving right over 4 frames: truth = prediction -> TRA = DET = SEG = 1
    stack = np.stack([disks(centres=((20, 20 + 3 * t), (60, 40 + 3 * t))) for t in range(4)]).astype(np.uint16)
    gt = tmp_path / "01_GT"
    track.write_ctc_ground_truth(gt, stack, pd.DataFrame({"L": [1, 2], "B": [0, 0], "E": [3, 3], "P": [0, 0]}))
    (gt / "SEG").mkdir()
    import tifffile

    tifffile.imwrite(gt / "SEG" / "man_seg002.tif", stack[2])
    kwargs = {"max_distance_px": 18.0}
    s = acc.score_ctc(stack.astype(np.int32), gt, track_kwargs=kwargs)
    assert s["TRA"] == pytest.approx(1.0) and s["DET"] == pytest.approx(1.0) and s["SEG"] == pytest.approx(1.0)
    half = stack.copy()
    half[half == 2] = 0  # the second disk is never found
    s = acc.score_ctc(half.astype(np.int32), gt, track_kwargs=kwargs)
    assert s["SEG"] == pytest.approx(0.5) and s["DET"] < 0.6


def committed_table() -> pd.DataFrame:
    return pd.DataFrame([
        {"dataset": "ctc_sim", "metric": "TRA", "snakescope": 0.90, "baseline": 0.8},
        {"dataset": "ctc_sim", "metric": "objects_per_frame", "snakescope": 30, "baseline": 28},
        {"dataset": "dsb2018", "metric": "F1@0.5", "snakescope": 0.70, "baseline": 0.6},
    ])


def current(tra: float, objects: float = 30) -> pd.DataFrame:
    return pd.DataFrame([
        {"dataset": "ctc_sim", "metric": "TRA", "snakescope": tra, "baseline": 0.8},
        {"dataset": "ctc_sim", "metric": "objects_per_frame", "snakescope": objects, "baseline": 28},
    ])


def test_regression_check_flags_drop_of_002_and_passes_005():
    committed = committed_table()
    assert acc.regressions(current(0.88), committed) == [
        "ctc_sim TRA: 0.8800 < committed 0.9000 - 0.01"]
    assert acc.regressions(current(0.895), committed) == []
    assert acc.regressions(current(0.95), committed) == []  # improvements pass
    # counts are reported, not gated; sets that did not run are not compared (dsb2018)
    assert acc.regressions(current(0.9, objects=10), committed) == []
    assert acc.regressions(current(math.nan), committed) == ["ctc_sim TRA: missing (committed 0.9000)"]
    table = acc.format_table(current(0.88), committed)
    assert "DROP" in table and "0.880" in table and "committed" in table.splitlines()[0]


def test_missing_set_is_skipped_with_a_message(tmp_path, capsys):
    messages = []
    rows = acc.run_set(acc.BENCHMARKS["dsb2018"], data_dir=tmp_path, workdir=tmp_path / "work", log=messages.append)
    assert rows is None and not (tmp_path / "work").exists()
    assert len(messages) == 1 and messages[0].startswith("skipped dsb2018: missing")
    assert str(tmp_path / "dsb2018-img2d" / "img2d.tif") in messages[0]
    assert acc.main(["--sets", "ecoli,ctc_gowt1", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "skipped ecoli" in out and "skipped ctc_gowt1" in out and "no set ran" in out
    with pytest.raises(SystemExit, match="unknown set"):
        acc.select("dsb2018,nope")


def test_rewrite_paths_and_merge(tmp_path):
    config, ds = acc.load_config(acc.BENCHMARKS["ctc_gowt1"], tmp_path / "data")
    assert ds["images"] == str(tmp_path / "data" / "ctc-gowt1-02" / "02" / "t{frame}.tif")
    assert ds["ground_truth_ctc"] == str(tmp_path / "data" / "ctc-gowt1-02" / "02_GT")
    merged = acc.merge(current(0.95), committed_table())
    assert list(merged["dataset"]) == ["ctc_sim", "ctc_sim", "dsb2018"]
    assert merged.loc[merged["metric"] == "TRA", "snakescope"].item() == 0.95
    acc.write_results(merged, tmp_path / "acc.csv")
    assert acc.read_results(tmp_path / "acc.csv").equals(merged)
