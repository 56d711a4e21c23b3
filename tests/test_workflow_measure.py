"""Workflow tests of measurement, rings and tables on tiny datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from workflow_utils import planned_jobs, run_snakemake, write_dataset

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    work = tmp_path_factory.mktemp("wfm")
    config = write_dataset(work, n_images=2, n_frames=2)
    config["datasets"]["tiny"]["rings"] = {"background": {"method": "constant", "value": 100}}
    result = run_snakemake(work, config)
    assert result.returncode == 0, result.stderr[-3000:]
    return work, config


def test_measurements_in_microns(finished):
    work, _ = finished
    m = pd.read_csv(work / "results/tiny/measurements/img0.csv")
    assert len(m) == 8  # 4 nuclei x 2 frames
    assert list(m.columns[:5]) == ["image", "frame", "time_s", "label", "x"]
    assert np.allclose(m.area_um2, m.area_px * 0.25)
    # disks of radius 8 px = 4 µm: area ~ 201 px
    assert m.area_px.between(150, 260).all()
    assert m.nucleus_mean.between(800, 1000).all()
    assert (m.nucleus_saturated_px == 0).all()


def test_rings_and_cn(finished):
    work, _ = finished
    rings = tifffile.imread(work / "results/tiny/rings/img0.tif")
    labels = tifffile.imread(work / "results/tiny/labels/img0.tif")
    assert rings.shape == labels.shape
    assert not np.any((rings > 0) & (labels > 0))  # rings never overlap nuclei
    assert set(np.unique(rings)) <= set(np.unique(labels))
    r = pd.read_csv(work / "results/tiny/rings/img0.csv")
    # reporter: 300 in the cytoplasm, 200 in the nucleus, +100 background (subtracted)
    assert r.cn_erk.between(1.4, 1.6).all(), r.cn_erk.tolist()
    assert r.erk_background.eq(100).all()
    assert "cn_nucleus" not in r  # the segmentation channel is not a reporter by default


def test_dataset_tables(finished):
    work, _ = finished
    objects = pd.read_csv(work / "results/tiny/tables/objects.csv")
    assert len(objects) == 16 and {"area_um2", "erk_mean", "cn_erk", "ring_area_px", "dataset"} <= set(objects)
    assert not objects.duplicated(["image", "frame", "label"]).any()
    images = pd.read_csv(work / "results/tiny/tables/images.csv")
    assert len(images) == 4 and (images.n_objects == 4).all()
    assert {"threshold", "mean_area_um2", "mean_cn_erk", "median_cn_erk"} <= set(images)


def test_ring_width_change_reruns_only_rings_and_downstream(finished):
    work, config = finished
    config["datasets"]["tiny"]["rings"]["width"] = "2px"
    jobs = planned_jobs(run_snakemake(work, config, "-n"))
    config["datasets"]["tiny"]["rings"].pop("width")
    assert jobs.get("rings") == 2 and jobs.get("tables") == 1
    assert not {"smooth", "threshold", "refine", "label", "measure"} & set(jobs)


def test_frame_without_objects_gives_zero_count(tmp_path):
    config = write_dataset(tmp_path, n_images=1, n_frames=2)
    path = tmp_path / "data/img0.tif"
    img = tifffile.imread(path)
    img[1] = 100  # blank second frame
    tifffile.imwrite(path, img, imagej=True, metadata={"axes": "TCYX"})
    config["datasets"]["tiny"].pop("ground_truth")
    result = run_snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-2000:]
    images = pd.read_csv(tmp_path / "results/tiny/tables/images.csv")
    assert images.n_objects.tolist() == [4, 0]


def _fails_with(tmp_path, config, text):
    result = run_snakemake(tmp_path, config)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and text in out, out[-3000:]
    assert "Traceback (most recent call last)" not in out
    assert not list((tmp_path / "results").rglob("rings/*.csv"))


def test_reporter_not_in_channels(tmp_path):
    config = write_dataset(tmp_path, n_images=1)
    config["datasets"]["tiny"]["rings"] = {"reporters": ["akt"]}
    _fails_with(tmp_path, config, "config key rings.reporters: select_reporters: channel 'akt' is not one of the image's channels")


def test_ring_wider_than_image(tmp_path):
    config = write_dataset(tmp_path, n_images=1)
    config["datasets"]["tiny"]["rings"] = {"width": "500px"}
    _fails_with(tmp_path, config, "config key rings: width_px: inner_px + width_px = 502 px is not smaller than "
                                  "the image (64, 64)")


def test_saturated_pixels_flagged(tmp_path):
    config = write_dataset(tmp_path, n_images=1)
    config["datasets"]["tiny"]["saturation"] = 850
    assert run_snakemake(tmp_path, config).returncode == 0
    m = pd.read_csv(tmp_path / "results/tiny/measurements/img0.csv")
    assert (m.nucleus_saturated_px > 0).all() and (m.erk_saturated_px == 0).all()
