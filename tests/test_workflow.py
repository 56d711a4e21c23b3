"""The real workflow on tiny datasets in temp directories."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from workflow_utils import ROOT, files_under, planned_jobs, run_snakemake, tiny_nuclei, write_dataset

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One completed run of the tiny dataset (2 stills... as TCYX with 2 frames)."""
    work = tmp_path_factory.mktemp("wf")
    config = write_dataset(work, n_images=2, n_frames=2)
    result = run_snakemake(work, config)
    assert result.returncode == 0, result.stderr[-3000:]
    return work, config


def test_labels_are_imagej_hyperstacks_with_calibration(finished):
    work, _ = finished
    path = work / "results/tiny/labels/img0.tif"
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == "TYX"
        labels = tif.series[0].asarray()
        assert labels.dtype == np.uint16
        assert tif.imagej_metadata.get("unit") in ("um", "micron")
        num, den = tif.pages[0].tags["XResolution"].value
        assert num / den == pytest.approx(2.0)
    assert labels.shape == (2, 64, 64)
    assert [len(np.unique(f)) - 1 for f in labels] == [4, 4]


def test_threshold_table_and_validation(finished):
    work, _ = finished
    thr = pd.read_csv(work / "results/tiny/threshold/img1.csv")
    assert list(thr.columns) == ["image", "frame", "method", "scope", "threshold", "foreground_fraction"]
    assert len(thr) == 2 and (thr.threshold > 100).all() and (thr.threshold < 800).all()
    summary = pd.read_csv(work / "results/tiny/validation/segmentation.csv")
    at50 = summary[(summary.image == "ALL") & np.isclose(summary.iou_threshold, 0.5)].iloc[0]
    assert at50.f1 == 1.0 and at50.n_true == 16
    assert set(summary.image) == {"img0", "img1", "ALL"}


def test_nothing_to_do_after_completion(finished):
    work, config = finished
    result = run_snakemake(work, config, "-n")
    assert result.returncode == 0
    assert planned_jobs(result) == {}, result.stdout


def test_param_change_reruns_step_and_downstream_only(finished):
    work, config = finished
    changed = {**config}
    changed["datasets"]["tiny"]["segment"]["threshold"] = {"method": "li"}
    result = run_snakemake(work, changed, "-n")
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result)
    assert jobs.get("threshold") == 2 and jobs.get("refine") == 2 and jobs.get("label") == 2
    assert "smooth" not in jobs
    changed["datasets"]["tiny"]["segment"].pop("threshold")
    changed["datasets"]["tiny"]["segment"]["split"] = {"method": "none"}
    jobs = planned_jobs(run_snakemake(work, changed, "-n"))
    assert jobs.get("label") == 2 and not {"smooth", "threshold", "refine"} & set(jobs)
    changed["datasets"]["tiny"]["segment"].pop("split")


def test_keys_of_an_unused_method_rerun_nothing(finished):
    """With method threshold, the rods (log_edges) and model settings are not the label step's params."""
    work, config = finished
    changed = {**config}
    changed["datasets"]["tiny"]["segment"]["log_edges"] = {"sigma": "3px", "invert": True}
    changed["datasets"]["tiny"]["segment"]["model"] = "models/elsewhere"
    try:
        result = run_snakemake(work, changed, "-n")
        assert result.returncode == 0, result.stderr
        # only the provenance record (it keeps the resolved config) is rewritten
        assert set(planned_jobs(result)) <= {"provenance", "all"}, result.stdout
        # the same kind of change to the active method's keys does rerun label
        changed["datasets"]["tiny"]["segment"]["split"] = {"min_distance": "7px"}
        assert planned_jobs(run_snakemake(work, changed, "-n")).get("label") == 2
    finally:
        for key in ("log_edges", "model", "split"):
            changed["datasets"]["tiny"]["segment"].pop(key, None)


def test_code_change_reruns_the_step(tmp_path):
    """Editing a library module the step uses reruns it (not only the run: block)."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", "results", ".snakemake", ".git",
                                                              "example", "__pycache__", ".pytest_cache",
                                                              "test-artifacts", "docs"))
    work = tmp_path / "work"
    work.mkdir()
    config = write_dataset(work, n_images=1)
    env = {"PYTHONPATH": str(copy)}
    assert run_snakemake(work, config, root=copy, env=env).returncode == 0
    assert planned_jobs(run_snakemake(work, config, "-n", root=copy, env=env)) == {}
    validate_py = copy / "snakescope" / "validate.py"
    validate_py.write_text(validate_py.read_text() + "\n# a change\n")
    jobs = planned_jobs(run_snakemake(work, config, "-n", root=copy, env=env))
    assert jobs.get("validate_segmentation") == 1 and "smooth" not in jobs and "label" not in jobs


def test_empty_and_constant_images_give_empty_labels(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    tifffile.imwrite(data / "zeros.tif", np.zeros((32, 32), np.uint16))
    tifffile.imwrite(data / "const.tif", np.full((32, 32), 500, np.uint16))
    noise = np.random.default_rng(0).normal(100, 5, (32, 32)).clip(0).astype(np.uint16)
    tifffile.imwrite(data / "noise.tif", noise)
    config = {"datasets": {"blank": {"images": str(data / "{image}.tif"), "segment": {"diameter": 8}}}}
    result = run_snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("zeros", "const"):
        labels = tifffile.imread(tmp_path / f"results/blank/labels/{name}.tif")
        assert labels.shape == (32, 32) and labels.max() == 0


def _bad_run(tmp_path, config):
    result = run_snakemake(tmp_path, config)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback (most recent call last)" not in out
    return out


def _no_outputs(tmp_path):
    results = tmp_path / "results"
    if not results.exists():
        return True
    produced = [p for p in results.rglob("*") if p.is_file() and p.suffix in (".tif", ".csv")
                and "provenance" not in p.parts]  # provenance does not depend on the failed step
    return produced == []


def test_corrupt_tiff(tmp_path):
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage" * 10)
    config = {"datasets": {"d": {"images": [str(tmp_path / "broken.tif")], "segment": {"diameter": 8},
                                 "track": {"enabled": False}}}}  # (auto would read the header at start)
    out = _bad_run(tmp_path, config)
    assert "broken.tif" in out and "re-export" in out
    assert _no_outputs(tmp_path)
    log = (tmp_path / "results/d/logs/smooth/broken.log").read_text()
    assert "Traceback" in log  # the full traceback goes to the rule's log


def test_several_datasets_each_with_own_parameters(tmp_path):
    config = write_dataset(tmp_path, n_images=1)
    other = dict(config["datasets"]["tiny"])
    other["segment"] = {"channel": "nucleus", "diameter": 8, "split": {"method": "none"}}
    config["datasets"]["merged"] = other
    result = run_snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-2000:]
    split = tifffile.imread(tmp_path / "results/tiny/labels/img0.tif")
    merged = tifffile.imread(tmp_path / "results/merged/labels/img0.tif")
    assert len(np.unique(split)) - 1 == 4 and len(np.unique(merged)) - 1 == 3  # two disks touch


def test_reruns_are_byte_identical(tmp_path):
    config = write_dataset(tmp_path, n_images=1, n_frames=2)
    assert run_snakemake(tmp_path, config).returncode == 0
    first = files_under(tmp_path / "results")
    shutil.rmtree(tmp_path / "results")
    assert run_snakemake(tmp_path, config).returncode == 0
    second = files_under(tmp_path / "results")
    keys = [k for k in first if k.endswith((".tif", ".csv", ".svg", ".pdf", ".png", ".txt", ".yaml"))
            and "/benchmarks/" not in k and "/logs/" not in k]
    assert {".svg", ".pdf", ".png"} <= {k[-4:] for k in keys}
    assert sorted(first) == sorted(second)
    assert [k for k in keys if first[k] != second[k]] == []


def test_lint_is_clean():
    import subprocess
    from workflow_utils import SNAKEMAKE
    result = subprocess.run([SNAKEMAKE, "--lint"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_rule_files_are_snakefmt_formatted():
    import shutil
    import subprocess

    snakefmt = Path(sys.executable).with_name("snakefmt")
    if not snakefmt.exists():
        snakefmt = shutil.which("snakefmt")
    assert snakefmt, "snakefmt is pinned in requirements.lock; run make venv"
    result = subprocess.run([str(snakefmt), "--check", "Snakefile", "workflow/rules"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
