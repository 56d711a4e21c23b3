"""execution.mode batched through Snakemake: the same files as per_step, staleness
per batch, failures that name the image."""

from __future__ import annotations

import copy
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from snakescope.batching import stable_sample
from workflow_utils import files_under, planned_jobs, run_snakemake, tiny_nuclei, write_dataset

pytestmark = pytest.mark.workflow

COMPARED = (".csv", ".tif")
SKIPPED = ("/logs/", "/benchmarks/", "/smooth/", "/threshold/", "/refine/", "/batches/")


def _outputs(workdir: Path) -> dict[str, bytes]:
    return {k: v for k, v in files_under(workdir / "results").items()
            if k.endswith(COMPARED) and not any(s in "/" + k for s in SKIPPED)}


def _two_datasets(tmp_path: Path) -> dict:
    config = write_dataset(tmp_path / "stills", n_images=5, n_frames=1)
    movie = write_dataset(tmp_path / "movie", n_images=1, n_frames=5)["datasets"]["tiny"]
    config["datasets"]["movie"] = movie
    return config


def test_batched_writes_the_files_per_step_writes(tmp_path):
    config = _two_datasets(tmp_path)
    config["figures"] = {"qc_images": 2}  # QC images for 2 of the 5 stills
    per, bat = tmp_path / "per", tmp_path / "bat"
    per.mkdir(), bat.mkdir()
    assert run_snakemake(per, config).returncode == 0
    batched = copy.deepcopy(config)
    batched["execution"] = {"mode": "batched", "batch_size": 2}
    result = run_snakemake(bat, batched)
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = _outputs(per), _outputs(bat)
    # batched mode writes every file per_step writes but the per-image tables of
    # rules measure and rings (no validation reads them here) and, for the images
    # without QC images, the ring label image and the frames table: their rows
    # are in the dataset tables, compared below
    qc = set(stable_sample([f"img{i}" for i in range(5)], n=2))
    not_written = {k for k in a if re.search(r"(^|/)(measurements|rings)/[^/]+\.csv$", k)}
    not_written |= {k for k in a if re.search(r"^tiny/(rings/[^/]+\.tif|labels/[^/]+\.csv)$", k)
                    and Path(k).stem not in qc}
    assert len(not_written) == 12 + 6 and set(b) == set(a) - not_written and len(b) > 30
    assert [k for k in b if a[k] != b[k]] == []
    assert any(k.endswith("tables/objects.csv") for k in b)
    # Parquet tables: the same values and types (the files differ in row groups: one per batch)
    parquets = sorted((per / "results").glob("*/tables/*.parquet"))
    assert len(parquets) >= 4
    for path in parquets:
        pd.testing.assert_frame_equal(pd.read_parquet(bat / path.relative_to(per)), pd.read_parquet(path),
                                      check_exact=True)
    # the movie's frames were split between the 2 workers
    log = next((bat / "results/movie/logs/batch").glob("*.log")).read_text()
    assert "frames split 2 ways" in log
    assert not list((bat / "results").rglob("*.pkl"))
    # a no-op rerun plans nothing
    again = run_snakemake(bat, batched, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_a_changed_image_reruns_only_its_batch_and_new_images_their_batch(tmp_path):
    config = write_dataset(tmp_path, n_images=12, n_frames=1)
    config["execution"] = {"mode": "batched", "batch_size": 3}
    assert run_snakemake(tmp_path, config).returncode == 0
    batch_rules = [r for r in planned_jobs(run_snakemake(tmp_path, config, "-n", "--forceall")) if r.startswith("batch_")]
    assert len(batch_rules) >= 3
    img, _ = tiny_nuclei(n_frames=1, seed=99)
    tifffile.imwrite(tmp_path / "data/img4.tif", img, imagej=True, metadata={"axes": "TCYX"})
    jobs = planned_jobs(run_snakemake(tmp_path, config, "-n"))
    assert sum(n for r, n in jobs.items() if r.startswith("batch_")) == 1
    assert jobs.get("tables") == 1 and "label" not in jobs
    assert run_snakemake(tmp_path, config).returncode == 0
    logs = [p.read_text() for p in (tmp_path / "results/tiny/logs/batch").glob("*.log")]
    assert sum("why: image img4: its file(s) changed" in t for t in logs) == 1
    shutil.copy(tmp_path / "data/img0.tif", tmp_path / "data/img99.tif")
    shutil.copy(tmp_path / "data/gt/img0.tif", tmp_path / "data/gt/img99.tif")
    jobs = planned_jobs(run_snakemake(tmp_path, config, "-n"))
    assert sum(n for r, n in jobs.items() if r.startswith("batch_")) == 1


def test_a_failing_image_fails_its_batch_naming_it(tmp_path):
    config = write_dataset(tmp_path, n_images=4, n_frames=1)
    config["execution"] = {"mode": "batched", "batch_size": 100}
    (tmp_path / "data/img2.tif").write_bytes(b"not a tiff")
    result = run_snakemake(tmp_path, config)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "img2" in out
    assert not (tmp_path / "results/tiny/labels/img0.tif").exists()  # the batch's outputs are removed
    assert not list((tmp_path / "results").rglob(".tmp-*"))


def test_auto_mode_batches_from_50_images(tmp_path):
    config = write_dataset(tmp_path, n_images=1, n_frames=1)
    data = tmp_path / "data"
    for i in range(1, 50):
        shutil.copy(data / "img0.tif", data / f"img{i}.tif")
        shutil.copy(data / "gt/img0.tif", data / f"gt/img{i}.tif")
    assert config.get("execution", {}).get("mode", "auto") == "auto"
    jobs = planned_jobs(run_snakemake(tmp_path, config, "-n"))
    assert any(r.startswith("batch_") for r in jobs) and "label" not in jobs
    (data / "img49.tif").unlink()
    (data / "gt/img49.tif").unlink()
    jobs = planned_jobs(run_snakemake(tmp_path, config, "-n"))
    assert jobs.get("label") == 49 and not any(r.startswith("batch_") for r in jobs)
