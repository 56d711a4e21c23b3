"""Inputs as users have them, and the ways they go wrong (the workflow run for
real or dry; exit code, message and planned jobs checked)."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

from workflow_utils import ROOT, SNAKEMAKE, planned_jobs, run_snakemake, tiny_nuclei, write_dataset

pytestmark = pytest.mark.workflow


def _out(result):
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One finished run of a single tiny image."""
    work = tmp_path_factory.mktemp("inputs")
    config = write_dataset(work, n_images=1, n_frames=2)
    result = run_snakemake(work, config)
    assert result.returncode == 0, result.stderr[-3000:]
    return work, config


def test_content_replaced_with_an_old_mtime_reruns_and_provenance_follows(done):
    work, config = done
    image = work / "data" / "img0.tif"
    backup = work / "img0_other.tif"
    img, _ = tiny_nuclei(n_frames=2, seed=5)
    tifffile.imwrite(backup, img, imagej=True, metadata={"axes": "TCYX"}, resolution=(2.0, 2.0))
    old = os.stat(image)
    os.utime(backup, ns=(old.st_atime_ns, old.st_mtime_ns - 10**9))  # older than the results
    subprocess.run(["cp", "-p", str(backup), str(image)], check=True)  # new content, old mtime
    try:
        jobs = planned_jobs(run_snakemake(work, config, "-n"))
        assert jobs.get("smooth") == 1 and jobs.get("provenance") == 1, jobs
        assert jobs.get("measure") == 1 and jobs.get("rings") == 1
    finally:
        img, _ = tiny_nuclei(n_frames=2, seed=0)  # what write_dataset wrote
        tifffile.imwrite(image, img, imagej=True, metadata={"axes": "TCYX"}, resolution=(2.0, 2.0))
        assert run_snakemake(work, config).returncode == 0


def test_editing_the_style_file_reruns_the_figures(done, tmp_path):
    work, config = done
    style = tmp_path / "my.mplstyle"
    shutil.copy(ROOT / "resources" / "snakescope.mplstyle", style)
    changed = {**config, "figures": {"style": str(style)}}
    assert run_snakemake(work, changed, "figures").returncode == 0
    assert planned_jobs(run_snakemake(work, changed, "figures", "-n")) == {}
    style.write_text(style.read_text() + "\nlines.linewidth: 3\n")
    jobs = planned_jobs(run_snakemake(work, changed, "figures", "-n"))
    assert jobs.get("dataset_figures") == 1 and jobs.get("qc") == 1 and "smooth" not in jobs, jobs


def test_config_overrides_on_the_command_line(done):
    work, config = done
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    base = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--cores", "1", "-n",
            "figures", "--configfile", str(work / "config.yaml")]
    ok = subprocess.run(base + ["--config", "figures={dpi: 50, formats: [png]}"], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, _out(ok)[-2000:]
    assert planned_jobs(ok).get("dataset_figures") == 1  # the dpi changed: figures rerun
    bad = subprocess.run(base + ["--config", "figures={dpi: big}"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode != 0 and "config key figures.dpi: 'big' is not of type 'number'" in _out(bad)
    assert "Traceback" not in _out(bad)


def test_yaml_merge_keys_and_anchor_section(tmp_path):
    config = write_dataset(tmp_path, n_images=1)
    ds = config["datasets"]["tiny"]
    text = f"""
_common: &seg
  channel: nucleus
  diameter: 8
datasets:
  tiny:
    images: {ds['images']}
    channels: [nucleus, erk]
    pixel_size_um: 0.5
    segment:
      <<: *seg
      diameter: 9
"""
    (tmp_path / "config.yaml").write_text(text)
    result = run_snakemake(tmp_path, None, "-n", "--configfile", str(tmp_path / "config.yaml"))
    assert result.returncode == 0, _out(result)[-2000:]
    (tmp_path / "dup.yaml").write_text(text.replace("      diameter: 9", "      diameter: 9\n      diameter: 10"))
    result = run_snakemake(tmp_path, None, "-n", "--configfile", str(tmp_path / "dup.yaml"))
    assert result.returncode != 0 and "key 'diameter' appears twice" in _out(result)


def test_conditions_naming_an_unknown_image_stop_at_start(tmp_path):
    config = write_dataset(tmp_path, n_images=2)
    config["datasets"]["tiny"]["conditions"] = {"img0": "control", "img9": "drug"}
    result = run_snakemake(tmp_path, config, "-n")
    out = _out(result)
    assert result.returncode != 0
    assert "config key datasets.tiny.conditions: 'img9' is not an image of the dataset (images: img0, img1)" in out
    assert "Traceback" not in out


def test_hidden_companion_files_are_ignored_with_a_line(tmp_path):
    config = write_dataset(tmp_path, n_images=1)
    (tmp_path / "data" / "._img0.tif").write_bytes(b"\x00\x05\x16\x07 resource fork")
    result = run_snakemake(tmp_path, config, "-n")
    assert result.returncode == 0, _out(result)[-2000:]
    assert "ignored 1 hidden file(s)" in _out(result) and "._img0.tif" in _out(result)
    assert planned_jobs(result).get("smooth") == 1


def test_missing_image_file_is_named_as_missing(tmp_path):
    config = write_dataset(tmp_path, n_images=1)
    config["datasets"]["tiny"]["images"] = [str(tmp_path / "data" / "img0.tif"), str(tmp_path / "data" / "gone.tif")]
    result = run_snakemake(tmp_path, config, "-n")
    out = _out(result)
    assert result.returncode != 0 and f"image file {tmp_path}/data/gone.tif of dataset tiny is missing" in out
    assert "track.enabled" not in out


def test_baseline_after_the_last_frame_is_an_error(tmp_path):
    config = write_dataset(tmp_path, n_images=1, n_frames=3)
    config["datasets"]["tiny"]["rings"] = {"reporters": ["erk"]}
    config["datasets"]["tiny"]["traces"] = {"baseline_frames": [5, 9]}
    result = run_snakemake(tmp_path, config, "--until", "traces")
    out = _out(result)
    assert result.returncode != 0
    assert "config key traces: dataset_traces: baseline_frames [5, 9] reach past the last frame (2)" in out
    assert not (tmp_path / "results/tiny/tables/traces.csv").exists()


def test_braces_in_file_and_folder_names(tmp_path):
    folder = tmp_path / "exp{2}"
    folder.mkdir()
    img, _ = tiny_nuclei(n_frames=1)
    for name in ("well{A1}.tif", "plain.tif"):
        tifffile.imwrite(folder / name, img, imagej=True, metadata={"axes": "TCYX"})
    for images in (str(folder / "{image}.tif"), [str(folder / "well{A1}.tif"), str(folder / "plain.tif")]):
        config = {"datasets": {"d": {"images": images, "channels": ["nucleus", "erk"],
                                     "segment": {"diameter": 8}}}}
        result = run_snakemake(tmp_path, config, "--until", "label")
        assert result.returncode == 0, _out(result)[-3000:]
        assert (tmp_path / "results/d/labels/well_A1_.tif").exists()
        shutil.rmtree(tmp_path / "results")


def test_one_file_per_frame_is_one_image(tmp_path):
    img, truth = tiny_nuclei(n_frames=3, channels=1)
    movie = tmp_path / "movie"
    movie.mkdir()
    for t in range(3):
        tifffile.imwrite(movie / f"t{t:03d}.tif", img[t, 0])
    config = {"datasets": {"mov": {"images": str(movie / "t{frame}.tif"), "segment": {"diameter": 8},
                                   "track": {"enabled": True}}}}
    result = run_snakemake(tmp_path, config, "--until", "tables", "track")
    assert result.returncode == 0, _out(result)[-3000:]
    labels = tifffile.imread(tmp_path / "results/mov/labels/mov.tif")
    assert labels.shape == (3, 64, 64)
    images = pd.read_csv(tmp_path / "results/mov/tables/images.csv")
    assert images.frame.tolist() == [0, 1, 2] and (images.n_objects == 4).all()
    assert np.array_equal(labels > 0, truth > 0) or (np.mean((labels > 0) == (truth > 0)) > 0.97)


def test_every_scene_of_an_ome_tiff_is_analysed_with_its_metadata(tmp_path):
    """A 2-position OME-TIFF: both positions become images, channel names and the
    time increment come from the OME metadata (nothing named in the config)."""
    data = tmp_path / "data"
    data.mkdir()
    with tifffile.TiffWriter(data / "exp.ome.tif", ome=True) as tif:
        for seed, name in enumerate(["pos A", "pos B"]):
            img, _ = tiny_nuclei(n_frames=2, seed=seed)
            tif.write(img, metadata={"axes": "TCYX", "Name": name, "Channel": {"Name": ["H2B", "ERK-KTR"]},
                                     "PhysicalSizeX": 0.5, "PhysicalSizeXUnit": "µm",
                                     "PhysicalSizeY": 0.5, "PhysicalSizeYUnit": "µm",
                                     "TimeIncrement": 60, "TimeIncrementUnit": "s"})
    config = {"datasets": {"d": {"images": str(data / "{image}.ome.tif"), "segment": {"diameter": 4}}}}
    result = run_snakemake(tmp_path, config, "--until", "tables")
    assert result.returncode == 0, _out(result)[-3000:]
    images = pd.read_csv(tmp_path / "results/d/tables/images.csv")
    assert sorted(images.image.unique()) == ["exp_pos_A", "exp_pos_B"]
    objects = pd.read_csv(tmp_path / "results/d/tables/objects.csv")
    assert "ERK-KTR_mean" in objects and "cn_ERK-KTR" in objects
    assert sorted(objects.time_s.unique()) == [0.0, 60.0]
    assert objects.area_um2.notna().all()


def test_plate_one_file_per_channel_with_sample_sheet(tmp_path):
    """ImageXpress-style plate: {well}_s{site}_{channel}.tif + samples.tsv; well,
    site and condition in every table row; figures grouped by condition."""
    plate = tmp_path / "plate1"
    plate.mkdir()
    wells = ["A01", "A02", "B01"]
    for i, well in enumerate(wells):
        for site in (1, 2):
            img, _ = tiny_nuclei(n_frames=1, seed=i * 2 + site)
            for c, channel in enumerate(("w1", "w2")):
                tifffile.imwrite(plate / f"{well}_s{site}_{channel}.tif", img[0, c])
    (plate / "samples.tsv").write_text("well\tcondition\tdose\nA01\tcontrol\t0\nA02\tdrug\t1\nB01\tdrug\t10\n")
    config = {"figures": {"group_by": "condition", "formats": ["png"]},
              "datasets": {"plate1": {"images": str(plate / "{well}_s{site}_{channel}.tif"),
                                      "channels": {"w1": "nucleus", "w2": "erk"},
                                      "samples": str(plate / "samples.tsv"),
                                      "segment": {"channel": "nucleus", "diameter": 8}}}}
    result = run_snakemake(tmp_path, config, "--until", "dataset_figures")
    assert result.returncode == 0, _out(result)[-3000:]
    objects = pd.read_csv(tmp_path / "results/plate1/tables/objects.csv", dtype={"meta_site": str, "meta_dose": str})
    assert list(objects.columns[:6]) == ["dataset", "image", "meta_condition", "meta_dose", "meta_site", "meta_well"]
    assert sorted(objects.image.unique()) == [f"{w}_s{s}" for w in wells for s in (1, 2)]
    row = objects[objects.image == "B01_s2"].iloc[0]
    assert (row.meta_well, row.meta_site, row.meta_condition, row.meta_dose) == ("B01", "2", "drug", "10")
    assert "cn_erk" in objects and objects.cn_erk.notna().any()
    images = pd.read_csv(tmp_path / "results/plate1/tables/images.csv")
    assert set(images.meta_condition) == {"control", "drug"} and len(images) == 6
    parquet = pd.read_parquet(tmp_path / "results/plate1/tables/images.parquet")
    pd.testing.assert_frame_equal(parquet, images)
    assert (tmp_path / "results/plate1/figures/dataset/cn_distribution_erk.png").exists()
    # a sheet naming a well that is not on the plate stops at start-up
    (plate / "samples.tsv").write_text("well\tcondition\nA01\tc\nA02\td\nB01\td\nC09\te\n")
    bad = run_snakemake(tmp_path, config, "-n")
    assert bad.returncode != 0
    assert "config key datasets.plate1.samples: " in _out(bad) and "'C09'" in _out(bad)


def test_disk_full_gives_one_line_and_no_partial_output(tmp_path):
    """The results on a tiny file system (tmpfs, needs root): the run stops with
    'no space left on device' naming the file, no logging tracebacks, no partial files."""
    data = tmp_path / "in"
    config = write_dataset(data, n_images=1)
    work = tmp_path / "full"
    work.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=120k", "tmpfs", str(work)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        result = run_snakemake(work, config)
        out = _out(result)
        assert result.returncode != 0
        # our line, or Snakemake's when its own metadata write hits the full disk first
        assert "no space left on device" in out.lower()
        assert "Logging error" not in out
        leftovers = [p for p in (work / "results").rglob("*") if p.is_file() and ".tmp-" in p.name]
        assert leftovers == []
        for tif in (work / "results").rglob("*.tif"):
            tifffile.imread(tif)  # every file that exists is complete
    finally:
        subprocess.run(["umount", str(work)], capture_output=True)


def test_diameter_auto_is_estimated_per_image_and_used(tmp_path):
    config = write_dataset(tmp_path, n_images=1, n_frames=2)
    img, _ = tiny_nuclei(shape=(128, 128), n_frames=2)  # room around the nuclei for the scale-space search
    tifffile.imwrite(tmp_path / "data" / "img0.tif", img, imagej=True, metadata={"axes": "TCYX"})
    config["datasets"]["tiny"].pop("ground_truth")
    config["datasets"]["tiny"]["segment"]["diameter"] = "auto"
    result = run_snakemake(tmp_path, config, "--until", "tables", "track")
    assert result.returncode == 0, _out(result)[-3000:]
    estimate = pd.read_csv(tmp_path / "results/tiny/diameter/img0.csv").diameter_px.iloc[0]
    assert 16 * 0.8 <= estimate <= 16 * 1.2  # the disks are 16-17 px across
    images = pd.read_csv(tmp_path / "results/tiny/tables/images.csv")
    assert np.allclose(images.diameter_px, estimate, rtol=1e-5) and (images.n_objects == 4).all()
    assert "estimated diameter" in (tmp_path / "results/tiny/logs/diameter/img0.log").read_text()


def _one_image(tmp_path, **imwrite):
    """A tiny 2-frame TCYX ImageJ file written with extra tifffile arguments."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    img, _ = tiny_nuclei(n_frames=2)
    metadata = {"axes": "TCYX", **imwrite.pop("metadata", {})}
    tifffile.imwrite(data / "img0.tif", img, imagej=True, metadata=metadata, **imwrite)
    return {"datasets": {"d": {"images": str(data / "{image}.tif"), "channels": ["nucleus", "erk"],
                               "segment": {"channel": "nucleus", "diameter": 8}}}}


def test_imagej_frame_interval_in_minutes_gives_seconds(tmp_path):
    config = _one_image(tmp_path, metadata={"finterval": 4.5, "tunit": "min"})
    result = run_snakemake(tmp_path, config, "--until", "tables")
    assert result.returncode == 0, _out(result)[-3000:]
    objects = pd.read_csv(tmp_path / "results/d/tables/objects.csv")
    assert sorted(objects.time_s.unique()) == [0.0, 270.0]


@pytest.mark.parametrize("case, message", [
    ("anisotropic", "img0.tif: pixels are not square (X 0.5 µm, Y 1 µm)"),
    ("nan_threshold", "config key segment.threshold.value: nan is not a finite number"),
    ("tiny_diameter", "config key segment.diameter: 0.0001 is 0.0001 px, below 2 px"),
])
def test_wrong_numbers_are_refused_not_computed(tmp_path, case, message):
    if case == "anisotropic":
        config = _one_image(tmp_path, resolution=(1 / 0.5, 1 / 1.0), metadata={"unit": "um"})
    else:
        config = _one_image(tmp_path)
    seg = config["datasets"]["d"]["segment"]
    if case == "nan_threshold":
        seg["threshold"] = {"method": "manual", "value": float("nan")}
    if case == "tiny_diameter":
        seg["diameter"] = 0.0001
    result = run_snakemake(tmp_path, config, "--until", "label")
    out = _out(result)
    assert result.returncode != 0 and message in out, out[-3000:]
    assert not (tmp_path / "results/d/labels/img0.tif").exists()


def test_external_labels_with_ids_near_2_31(tmp_path):
    config = _one_image(tmp_path)
    _, truth = tiny_nuclei(n_frames=2)
    big = truth.astype(np.int32)
    big[big > 0] += 2**31 - 10
    (tmp_path / "lab").mkdir()
    tifffile.imwrite(tmp_path / "lab" / "img0.tif", big, imagej=False, metadata={"axes": "TYX"})
    config["datasets"]["d"]["segment"] = {"method": "labels", "labels": str(tmp_path / "lab" / "{image}.tif"),
                                          "channel": "nucleus", "diameter": 8}
    result = run_snakemake(tmp_path, config, "--until", "label")
    assert result.returncode == 0, _out(result)[-3000:]
    labels = tifffile.imread(tmp_path / "results/d/labels/img0.tif")
    assert labels.max() == 4


def test_folder_fields_are_metadata_and_long_names_work(tmp_path):
    import hashlib

    long_name = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(4))[:236]  # not periodic
    for plate in ("P1", "P2"):
        folder = tmp_path / "data" / plate
        folder.mkdir(parents=True)
        img, _ = tiny_nuclei(n_frames=1)
        tifffile.imwrite(folder / f"{long_name}.tif", img, imagej=True, metadata={"axes": "TCYX"})
    config = {"datasets": {"d": {"images": str(tmp_path / "data/{plate}/{image}.tif"),
                                 "channels": ["nucleus", "erk"], "segment": {"diameter": 8}}}}
    result = run_snakemake(tmp_path, config, "--until", "label")
    # two plates hold an image of the same name: one line naming the clash
    assert result.returncode != 0 and "two images named" in _out(result), _out(result)[-2000:]
    (tmp_path / "data/P2" / f"{long_name}.tif").rename(tmp_path / "data/P2" / "other.tif")
    result = run_snakemake(tmp_path, config, "--until", "tables")
    assert result.returncode == 0, _out(result)[-3000:]
    objects = pd.read_csv(tmp_path / "results/d/tables/objects.csv")
    assert set(objects.meta_plate) == {"P1", "P2"} and len(objects.image.iloc[0]) in (5, 236)


def test_pattern_matching_nothing_names_the_working_directory(tmp_path):
    config = {"datasets": {"d": {"images": "nowhere/{image}.tif", "segment": {"diameter": 8}}}}
    result = run_snakemake(tmp_path, config, "-n")
    out = _out(result)
    assert result.returncode != 0
    assert f"relative to the working directory {tmp_path}" in out and "Traceback" not in out
