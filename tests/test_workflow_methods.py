"""Segmentation methods beyond thresholding: rods (log_edges), labels made elsewhere,
optional StarDist/Cellpose."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from workflow_utils import run_snakemake, write_dataset

pytestmark = pytest.mark.workflow


def _labels_config(tmp, n_frames=2):
    config = write_dataset(tmp, n_images=1, n_frames=n_frames)
    ds = config["datasets"]["tiny"]
    ds["segment"] = {"method": "labels", "diameter": 8, "channel": "nucleus",
                     "labels": str(tmp / "data/gt/{image}.tif")}
    return config


def test_bring_your_own_labels_runs_everything_downstream(tmp_path):
    config = _labels_config(tmp_path)
    result = run_snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-3000:]
    labels = tifffile.imread(tmp_path / "results/tiny/labels/img0.tif")
    truth = tifffile.imread(tmp_path / "data/gt/img0.tif")
    assert (labels == truth).all()  # already 1..N per frame: unchanged
    assert not (tmp_path / "results/tiny/smooth").exists()  # threshold chain skipped
    rings = pd.read_csv(tmp_path / "results/tiny/rings/img0.csv")
    assert rings.cn_erk.between(1.2, 1.8).all()
    summary = pd.read_csv(tmp_path / "results/tiny/validation/segmentation.csv")
    assert (summary.f1 == 1).all()
    assert (tmp_path / "results/tiny/figures/qc/img0/montage.png").exists()


def test_labels_are_renumbered_per_frame(tmp_path):
    config = _labels_config(tmp_path, n_frames=1)
    truth = tifffile.imread(tmp_path / "data/gt/img0.tif")
    sparse = np.where(truth > 0, truth.astype(np.int32) * 1000, 0)
    tifffile.imwrite(tmp_path / "data/gt/img0.tif", sparse)
    result = run_snakemake(tmp_path, config, "--until", "label")
    assert result.returncode == 0, result.stderr[-3000:]
    labels = tifffile.imread(tmp_path / "results/tiny/labels/img0.tif")
    assert sorted(np.unique(labels)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 10, 10), np.uint16), "labels have shape (2, 10, 10) (TYX) but the image has (2, 64, 64)"),
    (np.zeros((2, 64, 64), np.float32), "labels must be integers"),
    (np.full((2, 64, 64), -1, np.int16), "negative ids"),
])
def test_bad_label_images(tmp_path, bad, message):
    config = _labels_config(tmp_path)
    tifffile.imwrite(tmp_path / "data/gt/img0.tif", bad, imagej=bad.dtype != np.int16,
                     **({"metadata": {"axes": "TYX"}} if bad.dtype != np.int16 else {}))
    if bad.dtype == np.int16:
        config["datasets"]["tiny"]["axes"] = None
    result = run_snakemake(tmp_path, config, "--until", "label")
    out = result.stdout + result.stderr
    assert result.returncode != 0 and message in out, out[-3000:]
    assert "Traceback (most recent call last)" not in out
    assert not (tmp_path / "results/tiny/labels/img0.tif").exists()


def test_rods_with_log_edges(tmp_path):
    from snakescope.synthetic_rods import make_rods
    from snakescope import io

    sample = make_rods(seed=3, n_images=1, shape=(128, 128))[0]
    (tmp_path / "data/gt").mkdir(parents=True)
    io.write_stack(tmp_path / "data/c0.tif", sample["image"], axes="YX", pixel_size_um=sample["pixel_size_um"])
    io.write_stack(tmp_path / "data/gt/c0.tif", sample["labels"], axes="YX", pixel_size_um=sample["pixel_size_um"])
    io.write_table(sample["cells"], tmp_path / "data/gt/c0.csv")
    config = {"datasets": {"rods": {
        "images": str(tmp_path / "data/{image}.tif"),
        "segment": {"method": "log_edges", "diameter": 0.8},
        "ground_truth": str(tmp_path / "data/gt/{image}.tif"),
        "ground_truth_sizes": str(tmp_path / "data/gt/{image}.csv"),
    }}}
    result = run_snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-3000:]
    seg = pd.read_csv(tmp_path / "results/rods/validation/segmentation.csv")
    assert seg[(seg.image == "ALL") & np.isclose(seg.iou_threshold, 0.5)].f1.iloc[0] >= 0.85
    sizes = pd.read_csv(tmp_path / "results/rods/validation/sizes.csv")
    all_row = sizes[sizes.image == "ALL"].iloc[0]
    assert all_row.length_median_abs_rel_error <= 0.10 and all_row.width_median_abs_rel_error <= 0.10
    m = pd.read_csv(tmp_path / "results/rods/measurements/c0.csv")
    assert {"length_um", "width_um"} <= set(m.columns)
    assert (tmp_path / "results/rods/figures/dataset/rod_length.png").exists()


@pytest.mark.parametrize("method", ["stardist", "cellpose"])
def test_missing_optional_segmenter_is_a_clear_error(tmp_path, method):
    import importlib.util

    if importlib.util.find_spec(method) is not None:
        pytest.skip(f"{method} is installed here; the missing-package error cannot be shown")
    config = write_dataset(tmp_path, n_images=1)
    config["datasets"]["tiny"]["segment"] = {"method": method, "diameter": 8, "model": str(tmp_path / "model")}
    result = run_snakemake(tmp_path, config, "--until", "label")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"config key segment.method: method '{method}' needs the package {method}, which is not installed" in out
