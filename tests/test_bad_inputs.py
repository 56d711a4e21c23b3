"""Bad-input matrix: every case runs the real workflow on a tiny dataset.

Each case either fails with exit code != 0 and one console line naming the file
or config key (no Python traceback on the console; the full one is in the
rule's log) and no partial output, or gives a documented degenerate result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

from workflow_utils import run_snakemake, tiny_nuclei, write_dataset

pytestmark = pytest.mark.workflow


def _single(tmp: Path, name: str, writer: Callable[[Path], None], **dataset) -> dict:
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    path = data / name
    writer(path)
    ds = {"images": [str(path)], "segment": {"diameter": "8px"}}
    ds.update(dataset)
    return {"datasets": {"d": ds}}


def _truncated(path: Path) -> None:
    img, _ = tiny_nuclei(n_frames=3)
    tifffile.imwrite(path, img, imagej=True, metadata={"axes": "TCYX"})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _float_with(value: float) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        img = tiny_nuclei(channels=1)[0][0, 0].astype(np.float32)
        img[5, 5] = value
        tifffile.imwrite(path, img)
    return write


# name -> (setup(tmp) -> config, expected text on the failing line)
FAILING = {
    "empty_file": (lambda t: _single(t, "e.tif", lambda p: p.write_bytes(b"")), "e.tif: file is empty"),
    "truncated_tiff": (lambda t: _single(t, "t.tif", _truncated), "t.tif: TIFF is truncated or corrupt"),
    "not_a_tiff": (lambda t: _single(t, "n.tif", lambda p: p.write_text("hello, I am a text file")),
                   "n.tif: not a readable TIFF"),
    "rgb_image": (lambda t: _single(t, "rgb.tif", lambda p: tifffile.imwrite(
        p, np.zeros((64, 64, 3), np.uint8), photometric="rgb")), "rgb.tif: image has an RGB/sample axis"),
    "stack_declared_2d": (lambda t: _single(t, "s.tif", lambda p: tifffile.imwrite(
        p, np.zeros((3, 64, 64), np.uint16), photometric="minisblack"), axes="YX"),
        "s.tif: axes 'YX' has 2 letters but the image has 3 dimensions"),
    "axes_not_matching_shape": (lambda t: _single(t, "q.tif", lambda p: tifffile.imwrite(
        p, np.zeros((3, 64, 64), np.uint16), photometric="minisblack"), axes="ZYX"),
        "q.tif: image has a Z stack of size 3"),
    "no_axes_for_3d_plain_tiff": (lambda t: _single(t, "p.tif", lambda p: tifffile.imwrite(
        p, np.zeros((3, 64, 64), np.uint16), photometric="minisblack")), "p.tif: image has shape (3, 64, 64) and no axes"),
    "channel_count_mismatch": (lambda t: _single(t, "c.tif", lambda p: tifffile.imwrite(
        p, tiny_nuclei()[0][0], imagej=True, metadata={"axes": "CYX"}), channels=["a", "b", "c"]),
        "c.tif: config lists 3 channels ['a', 'b', 'c'] but the image has 2"),
    "nan_float_image": (lambda t: _single(t, "nan.tif", _float_with(np.nan)), "nan.tif: image contains NaN"),
    "inf_float_image": (lambda t: _single(t, "inf.tif", _float_with(np.inf)), "inf.tif: image contains NaN or infinite"),
    "one_pixel_image": (lambda t: _single(t, "one.tif", lambda p: tifffile.imwrite(p, np.ones((1, 1), np.uint16))),
                        "one.tif: image is 1x1 px, smaller than one object"),
    "channel_not_in_channels": (lambda t: _with(write_dataset(t, 1), ["segment", "channel"], "dapi"),
                                "channel 'dapi' is not one of the image's channels ['nucleus', 'erk']"),
    "reporter_not_in_channels": (lambda t: _with(write_dataset(t, 1), ["rings"], {"reporters": ["akt"]}),
                                 "config key rings.reporters: select_reporters: channel 'akt' is not one of"),
    "pattern_matches_nothing": (lambda t: {"datasets": {"d": {"images": str(t / "none/{image}.tif"),
                                                             "segment": {"diameter": 8}}}},
                                "config key datasets.d.images: pattern"),
    "unknown_config_key": (lambda t: _with(write_dataset(t, 1), ["segment", "smoothing"], {}),
                           "config key datasets.tiny.segment.smoothing: unknown key"),
    "wrong_type": (lambda t: _with(write_dataset(t, 1), ["segment", "diameter"], "big"),
                   "config key datasets.tiny.segment.diameter"),
    "negative_size": (lambda t: _with(write_dataset(t, 1), ["segment", "refine"], {"min_diameter": -3}),
                      "config key datasets.tiny.segment.refine.min_diameter: -3 is less than the minimum of 0"),
    "unknown_method": (lambda t: _with(write_dataset(t, 1), ["segment", "threshold"], {"method": "magic"}),
                       "config key datasets.tiny.segment.threshold.method: 'magic' is not one of"),
    "um_without_calibration": (lambda t: _with(_uncalibrated(write_dataset(t, 1)), ["segment", "diameter"], "4um"),
                               "config key segment.diameter: '4um' is in µm but the image has no pixel size"),
    "missing_ground_truth": (lambda t: _with(write_dataset(t, 1), ["ground_truth"], str(t / "nowhere/{image}.tif")),
                             "nowhere/img0.tif"),
    "missing_image_file": (lambda t: {"datasets": {"d": {"images": [str(t / "absent.tif")], "segment": {"diameter": 8}}}},
                           "absent.tif"),
    "ring_wider_than_image": (lambda t: _with(write_dataset(t, 1), ["rings"], {"width": "500px"}),
                              "inner_px + width_px = 502 px is not smaller than the image (64, 64)"),
    "ground_truth_wrong_shape": (lambda t: _gt_wrong_shape(write_dataset(t, 1), t), "ground truth has shape"),
}


def _with(config: dict, keys: list[str], value) -> dict:
    node = config["datasets"]["tiny"]
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return config


def _uncalibrated(config: dict) -> dict:
    config["datasets"]["tiny"]["pixel_size_um"] = None
    path = Path(config["datasets"]["tiny"]["images"].replace("{image}", "img0"))
    tifffile.imwrite(path, tifffile.imread(path), imagej=True, metadata={"axes": "CYX"})
    return config


def _gt_wrong_shape(config: dict, tmp: Path) -> dict:
    tifffile.imwrite(tmp / "data/gt/img0.tif", np.zeros((10, 10), np.uint16))
    return config


def _check_failure(tmp: Path, result, expected: str) -> None:
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-2000:]
    assert "Traceback (most recent call last)" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if expected in line]
    assert lines, f"{expected!r} not in output:\n{out[-3000:]}"
    results = tmp / "results"
    if results.exists():
        assert not [p for p in results.rglob(".tmp-*")], "temporary file left behind"


@pytest.mark.parametrize("case", sorted(FAILING))
def test_bad_input_fails_clearly(tmp_path, case):
    setup, expected = FAILING[case]
    config = setup(tmp_path)
    result = run_snakemake(tmp_path, config)
    _check_failure(tmp_path, result, expected)


def test_two_datasets_with_the_same_name(tmp_path):
    config = write_dataset(tmp_path, 1)
    ds = yaml.safe_dump(config["datasets"]["tiny"], sort_keys=False)
    indented = "".join("    " + line + "\n" for line in ds.splitlines())
    text = "datasets:\n  tiny:\n" + indented + "  tiny:\n" + indented
    (tmp_path / "dup.yaml").write_text(text)
    result = run_snakemake(tmp_path, None, "--configfile", str(tmp_path / "dup.yaml"))
    _check_failure(tmp_path, result, "dup.yaml: key 'tiny' appears twice")


# ---- documented degenerate results (exit 0) ----

def test_all_zero_image_gives_empty_tables(tmp_path):
    config = _single(tmp_path, "z.tif", lambda p: tifffile.imwrite(p, np.zeros((64, 64), np.uint16)))
    result = run_snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-2000:]
    assert tifffile.imread(tmp_path / "results/d/labels/z.tif").max() == 0
    images = pd.read_csv(tmp_path / "results/d/tables/images.csv")
    assert images.n_objects.tolist() == [0]
    objects = pd.read_csv(tmp_path / "results/d/tables/objects.csv")
    assert len(objects) == 0


def test_saturated_image_is_flagged(tmp_path):
    def write(path):
        img, _ = tiny_nuclei(channels=1)
        img[img > 500] = 65535
        tifffile.imwrite(path, img[0, 0])
    config = _single(tmp_path, "sat.tif", write)
    result = run_snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-2000:]
    m = pd.read_csv(tmp_path / "results/d/measurements/sat.csv")
    assert len(m) == 4 and (m.ch0_saturated_px >= 0.9 * m.area_px).all()  # edges are blurred by smoothing


def test_unicode_and_spaces_in_paths(tmp_path):
    folder = tmp_path / "my data – ñúcleos"
    folder.mkdir()
    img, _ = tiny_nuclei()
    tifffile.imwrite(folder / "champ 1 ü.tif", img, imagej=True, metadata={"axes": "TCYX"})
    config = {"datasets": {"d": {"images": str(folder / "{image}.tif"), "channels": ["nuc", "rep"],
                                 "segment": {"diameter": "16px"}}}}
    result = run_snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-2000:]
    labels = tifffile.imread(tmp_path / "results/d/labels/champ 1 ü.tif")
    assert labels.max() == 4


@pytest.mark.slow
def test_more_than_65535_objects_gives_uint32_labels(tmp_path):
    def write(path):
        img = np.full((1040, 1040), 100, np.uint16)
        img[1::4, 1::4] = 1000  # 260 x 260 = 67,600 isolated bright pixels...
        img[2::4, 1::4] = 1000  # ... grown to 2x2 squares
        img[1::4, 2::4] = 1000
        img[2::4, 2::4] = 1000
        tifffile.imwrite(path, img)
    config = _single(tmp_path, "many.tif", write)
    config["datasets"]["d"]["segment"] = {"diameter": "2px", "smooth": {"method": "none"},
                                          "split": {"method": "none"}, "refine": {"fill_holes": False}}
    config["datasets"]["d"]["rings"] = {"inner": "0px", "width": "1px", "buffer": "0px", "nucleus_erosion": 0,
                                        "min_ring_px": 1}
    result = run_snakemake(tmp_path, config, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    labels = tifffile.imread(tmp_path / "results/d/labels/many.tif")
    assert labels.dtype == np.uint32 and labels.max() == 67600
    m = pd.read_csv(tmp_path / "results/d/measurements/many.csv", usecols=["label", "area_px"])
    assert len(m) == 67600 and (m.area_px == 4).all()
