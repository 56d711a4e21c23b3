"""Workflow tests of tracking, traces, CTC export and tracking validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from workflow_utils import run_snakemake, write_dataset

pytestmark = pytest.mark.workflow


def _timelapse(tmp, n_frames=4, **track):
    config = write_dataset(tmp, n_images=1, n_frames=n_frames)
    ds = config["datasets"]["tiny"]
    ds["frame_interval_s"] = 60
    (tmp / "data/gt/img0_tracks.txt").write_text("".join(f"{i} 0 {n_frames - 1} 0\n" for i in range(1, 5)))
    ds["ground_truth_tracks"] = str(tmp / "data/gt/{image}_tracks.txt")
    ds["track"] = {"enabled": "auto", **track}
    ds["traces"] = {"baseline_frames": [0, 1]}
    return config


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    work = tmp_path_factory.mktemp("wft")
    config = _timelapse(work)
    result = run_snakemake(work, config)
    assert result.returncode == 0, result.stderr[-3000:]
    return work


def test_tracks_table_matches_relabelled_stack(tracked):
    tracks = pd.read_csv(tracked / "results/tiny/tracks/img0.csv")
    assert list(tracks.columns) == ["frame", "label", "track_id", "parent_track_id", "x", "y"]
    assert tracks.track_id.nunique() == 4 and len(tracks) == 16
    assert (tracks.groupby("track_id").frame.nunique() == 4).all()
    labels = tifffile.imread(tracked / "results/tiny/labels/img0.tif")
    relabelled = tifffile.imread(tracked / "results/tiny/tracks/img0.tif")
    for row in tracks.itertuples():
        assert (relabelled[row.frame][labels[row.frame] == row.label] == row.track_id).all()
    assert set(np.unique(relabelled)) == {0, 1, 2, 3, 4}


def test_ctc_export_and_tracking_validation(tracked):
    ctc = tracked / "results/tiny/ctc/img0"
    assert sorted(p.name for p in ctc.iterdir() if not p.name.startswith(".")) == ["mask000.tif", "mask001.tif", "mask002.tif", "mask003.tif",
                                                     "res_track.txt"]
    assert len((ctc / "res_track.txt").read_text().splitlines()) == 4
    scores = pd.read_csv(tracked / "results/tiny/validation/tracking.csv")
    assert scores.TRA.iloc[0] == pytest.approx(1.0) and scores.DET.iloc[0] == pytest.approx(1.0)


def test_traces_with_baseline(tracked):
    traces = pd.read_csv(tracked / "results/tiny/tables/traces.csv")
    assert len(traces) == 16
    assert {"image", "track_id", "frame", "time_s", "cn_erk", "dcn_erk", "cn_erk_norm"} <= set(traces.columns)
    assert traces.time_s.max() == 180
    assert np.allclose(traces.groupby("track_id").dcn_erk.mean(), 0, atol=0.05)  # constant C/N


def test_trace_figures_exist(tracked):
    figures = tracked / "results/tiny/figures/dataset"
    names = {p.name for p in figures.iterdir()}
    assert {"cn_traces_erk.png", "dcn_traces_erk.pdf", "heatmap_erk.svg", "counts.png"} <= names
    qc = {p.name for p in (tracked / "results/tiny/figures/qc/img0").iterdir()}
    assert {"overlay_t000.png", "overlay_t001.png", "overlay_t003.png", "montage.png", "histogram.png"} <= qc


def test_stills_are_not_tracked(tmp_path):
    config = write_dataset(tmp_path, n_images=1, n_frames=1)
    result = run_snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (tmp_path / "results/tiny/tracks").exists()
    assert (tmp_path / "results/tiny/figures/dataset/summary_erk.png").exists()


def test_huge_linking_distance_and_features(tmp_path):
    config = _timelapse(tmp_path, max_distance="1000px", features={"area_px": 1.0})
    result = run_snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-2000:]
    assert pd.read_csv(tmp_path / "results/tiny/validation/tracking.csv").TRA.iloc[0] == pytest.approx(1.0)


def test_unknown_feature_column(tmp_path):
    config = _timelapse(tmp_path, features={"volume": 1.0})
    result = run_snakemake(tmp_path, config)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "config key track.features: column(s) ['volume']" in out
