"""Real-data accuracy: the workflow on every real set with ground truth, against a naive baseline.

For each set the workflow runs as a user runs it (``snakemake <targets> --configfile
config/examples/<set>.yaml``, the real rules, in a work folder), its validation tables
are scored, and a naive pipeline computed here from library functions is scored by
the same code beside it:

* CTC sets (GOWT1, SIM+): TRA, DET, BC(0), BC(2) from py-ctcmetrics on the CTC export
  (``snakescope.track.tracking_metrics``), SEG on the sparse annotations
  (``snakescope.ctc.seg_score``), as ``results/<ds>/validation/ctc.csv`` reports them.
* Still/rod sets (DSB2018, E. coli): F1 at IoU 0.5 and AP averaged over IoU
  0.5, 0.55, ..., 0.9 (AP = TP / (TP + FP + FN) at each threshold, as StarDist), from
  the pooled counts of ``results/<ds>/validation/segmentation.csv``; object counts.
* KTR movie (no truth): nuclei per frame (the authors count ~740 with their pipeline's
  size filter, 8-20 px; ``nuclei_8-20px`` counts our objects in that range) and the ERK C/N
  response (median of the per-frame median C/N of frames 0-6 vs 8-10), from
  ``results/<ds>/tables/images.csv``.

Naive baseline (fixed here, independent of the workflow's defaults): Gaussian
(sigma = d/12), Otsu, fill holes, watershed on the distance transform from maxima
0.4 d apart, objects of equivalent diameter 0.4 d - 3 d kept; CTC sets are linked by
``snakescope.track.track_objects`` with the schema's default track parameters
(``snakescope.params.track_params``); the KTR baseline measures C/N with
``snakescope.rings.measure_rings`` and the schema's default rings.

Usage (from the repository root):
  .venv/bin/python benchmarks/accuracy.py [--sets dsb2018,ecoli] [--data DIR]
      [--check | --write] [--workdir DIR [--reuse]] [--no-baseline] [--verify-ctc]
      [--diameter auto | --diameter x1.2]

``--check`` compares the scores with benchmarks/results/accuracy.csv and exits 1
when any drops more than 0.01 below it (or is missing); ``--write`` replaces the
rows of the sets that ran in that file.

``--diameter auto`` runs every set with ``segment: {diameter: auto}`` instead of its
configured diameter (the overridden config is written to the work folder; the
baseline keeps the configured number). The table then has the metric ``diameter_px``
(the workflow's estimate, median over images, beside the configured diameter in the
baseline column) and, beside the scores, the committed scores (numeric diameter) with
a flag when the auto score is more than ``AUTO_TOLERANCE`` below them.
``--diameter x0.8`` (any factor after ``x``) runs every set with its configured
diameter times that factor instead: how much the scores depend on the one
number a user gives (the issue's targets hold for a diameter within 20 % of the
truth); shown the same way, with the same flag.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Prefix of the data paths in config/examples (relative to the repository root).
DATA_PREFIX = "../shared/data"
RESULTS_CSV = ROOT / "benchmarks" / "results" / "accuracy.csv"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
COLUMNS = ["dataset", "metric", "snakescope", "baseline"]
#: Scores gated by --check (higher is better). Counts, C/N and times are reported only.
SCORES = ("TRA", "DET", "SEG", "BC(0)", "BC(2)", "F1@0.5", "AP@0.5:0.9")
TOLERANCE = 0.01
#: --diameter auto: a score may be this much below the committed (numeric-diameter) one.
AUTO_TOLERANCE = 0.05
POOLED = "ALL"  # the pooled row of the workflow's summary tables
#: KTR: the object diameter range (px) of the authors' CellProfiler pipeline, and its metric.
AUTHORS_RANGE_PX = (8.0, 20.0)
IN_RANGE_METRIC = f"nuclei_{AUTHORS_RANGE_PX[0]:g}-{AUTHORS_RANGE_PX[1]:g}px"


@dataclass(frozen=True)
class Benchmark:
    """One real set: its example config and how it is scored."""

    name: str  # the dataset key in the config (and the set's name on the command line)
    config: str  # example config, relative to the repository root
    kind: str  # "ctc": TRA/DET/SEG/BC(0); "seg": F1/AP vs instance masks; "ktr": counts and C/N
    invert: bool = False  # baseline: objects darker than the background (phase contrast)
    reporter: str = "erk"  # ktr: reporter of the C/N response
    before: tuple[int, int] = (0, 6)  # ktr: frames (inclusive) before the stimulus
    after: tuple[int, int] = (8, 10)  # ktr: frames (inclusive) after it
    expected_count: int = 740  # ktr: nuclei per frame counted by the authors


BENCHMARKS = {
    b.name: b
    for b in (
        Benchmark("ctc_gowt1", "config/examples/ctc_gowt1.yaml", "ctc"),
        Benchmark("ctc_sim", "config/examples/ctc_sim.yaml", "ctc"),
        Benchmark("dsb2018", "config/examples/dsb2018.yaml", "seg"),
        Benchmark("ecoli", "config/examples/ecoli.yaml", "seg", invert=True),
        Benchmark("ktr_goedhart", "config/examples/ktr_goedhart.yaml", "ktr"),
    )
}


class WorkflowFailed(RuntimeError):
    """The Snakemake run of a set failed (message: the error lines of its output)."""


# --------------------------------------------------------------------------
# configs and inputs
# --------------------------------------------------------------------------


def rewrite_paths(node: Any, data_dir: str | Path, root: Path = ROOT) -> Any:
    """Absolute paths in a config: ``../shared/data`` -> ``data_dir``, other
    relative paths resolved against the repository root (the workflow then runs
    in any work folder)."""
    if isinstance(node, dict):
        return {k: rewrite_paths(v, data_dir, root) for k, v in node.items()}
    if isinstance(node, list):
        return [rewrite_paths(v, data_dir, root) for v in node]
    if isinstance(node, str) and (node.startswith(DATA_PREFIX + "/") or node == DATA_PREFIX):
        return str(Path(data_dir).resolve()) + node[len(DATA_PREFIX):]
    return node


def _path_keys(ds: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(config key, value) of every path setting of a dataset."""
    out = [("images", ds.get("images"))]
    for key in ("ground_truth", "ground_truth_ctc", "ground_truth_tracks", "ground_truth_sizes"):
        if ds.get(key):
            out.append((key, ds[key]))
    if (ds.get("ground_truth_cn") or {}).get("table"):
        out.append(("ground_truth_cn.table", ds["ground_truth_cn"]["table"]))
    return out


def load_config(bench: Benchmark, data_dir: str | Path, root: Path = ROOT) -> tuple[dict, dict]:
    """The set's example config with absolute paths, and its dataset section."""
    config = yaml.safe_load((root / bench.config).read_text())
    config = rewrite_paths(config, data_dir, root)
    datasets = config.get("datasets") or {}
    if bench.name not in datasets:
        raise SystemExit(f"{bench.config}: no dataset {bench.name!r} (has {sorted(datasets)})")
    ds = datasets[bench.name]
    for key, value in _path_keys(ds):  # other relative paths: relative to the repository root
        if isinstance(value, str) and not os.path.isabs(value):
            ds[key] = str(root / value)
        elif isinstance(value, list):
            ds[key] = [v if os.path.isabs(v) else str(root / v) for v in value]
    return config, ds


def image_sources(name: str, ds: Mapping[str, Any]) -> dict:
    """Image name -> snakescope.config.ImageSource, as the workflow discovers them."""
    from snakescope.config import discover_images

    return discover_images(name, ds["images"], channels=ds.get("channels"))


def missing_inputs(name: str, ds: Mapping[str, Any]) -> list[str]:
    """Input files or folders of a dataset that do not exist (empty: all present)."""
    from snakescope.errors import InputError

    missing = []
    images = ds["images"]
    try:
        names = list(image_sources(name, ds))
    except InputError:  # a pattern that matches no file
        return [images]
    if not isinstance(images, str):
        missing += [p for p in images if not os.path.exists(p)]
    for key, value in _path_keys(ds)[1:]:
        paths = {value.format(image=n) for n in names} if "{image}" in value else {value}
        missing += sorted(p for p in paths if not os.path.exists(p))
    return missing


def dataset_defaults(ds: Mapping[str, Any]) -> dict:
    """The dataset section with the schema's defaults filled in (as the workflow does)."""
    from snakemake.utils import validate

    config = {"datasets": {"x": copy.deepcopy(dict(ds))}}
    validate(config, str(SCHEMA), set_default=True)
    return config["datasets"]["x"]


# --------------------------------------------------------------------------
# the workflow
# --------------------------------------------------------------------------


def targets(bench: Benchmark) -> list[str]:
    """The workflow outputs the set is scored from."""
    base = f"results/{bench.name}"
    if bench.kind == "ctc":
        return [f"{base}/validation/ctc.csv"]
    if bench.kind == "seg":
        return [f"{base}/validation/segmentation.csv"]
    return [f"{base}/tables/images.csv"]


def snakemake_command(bench: Benchmark, workdir: Path, configfile: Path, *, cores: int, nice: int) -> list[str]:
    """``[nice -n N] snakemake <targets> --snakefile ... --directory ... --configfile ...``
    (targets first: --configfile takes several values)."""
    cmd = [str(Path(sys.executable).parent / "snakemake"), *targets(bench), "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(workdir), "--cores", str(cores), "--quiet", "--configfile", str(configfile)]
    return (["nice", "-n", str(nice)] if nice else []) + cmd


def run_workflow(bench: Benchmark, config: Mapping[str, Any], workdir: Path, *, cores: int = 2,
                 nice: int = 10, timeout: float = 7200) -> float:
    """Run the workflow on one set in ``workdir``; return its wall time (s).

    Raises
    ------
    WorkflowFailed
        Snakemake exited non-zero; the message quotes its error lines.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    env = dict(os.environ)
    env.pop("SNAKESCOPE_INLINE", None)
    cmd = snakemake_command(bench, workdir, configfile, cores=cores, nice=nice)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode:
        lines = (proc.stdout + proc.stderr).splitlines()
        errors = [ln.strip() for ln in lines if "rror" in ln and not ln.startswith("  File")]
        raise WorkflowFailed("; ".join(dict.fromkeys(errors)) or "\n".join(lines[-15:]))
    return wall


# --------------------------------------------------------------------------
# scoring (the same functions score the workflow and the baseline)
# --------------------------------------------------------------------------


def seg_summary(table: pd.DataFrame) -> dict[str, float]:
    """F1 at IoU 0.5, AP averaged over the IoU thresholds, and object counts, from
    pooled detection counts (``iou_threshold, n_true, n_pred, tp, fp, fn``; rows with
    ``image == ALL`` when there is an ``image`` column).

    AP at a threshold = TP / (TP + FP + FN) (StarDist's "accuracy"; 1 when all are 0).
    """
    if "image" in table.columns:
        table = table[table["image"].astype(str) == POOLED]
    if table.empty:
        raise ValueError("no pooled rows (image == ALL) in the segmentation table")
    table = table.sort_values("iou_threshold")
    tp, fp, fn = (table[c].to_numpy(np.float64) for c in ("tp", "fp", "fn"))
    denom = tp + fp + fn
    ap = np.where(denom > 0, tp / np.where(denom > 0, denom, 1), 1.0)
    at50 = np.isclose(table["iou_threshold"].to_numpy(np.float64), 0.5)
    if not at50.any():
        raise ValueError("no IoU threshold 0.5 in the segmentation table")
    i = int(np.flatnonzero(at50)[0])
    f1 = 2 * tp[i] / (2 * tp[i] + fp[i] + fn[i]) if (2 * tp[i] + fp[i] + fn[i]) else 1.0
    return {"F1@0.5": float(f1), "AP@0.5:0.9": float(ap.mean()),
            "objects": float(table["n_pred"].iloc[i]), "truth_objects": float(table["n_true"].iloc[i])}


def ctc_summary(table: pd.DataFrame) -> dict[str, float]:
    """TRA, DET, SEG, BC(0) and BC(2) (divisions found within 2 frames) of the
    pooled row (``image == ALL``) of a ctc.csv table."""
    if "image" in table.columns:
        table = table[table["image"].astype(str) == POOLED]
    if table.empty:
        raise ValueError("no pooled row (image == ALL) in the CTC table")
    row = table.iloc[0]
    return {m: float(row[m]) if m in row.index else math.nan for m in ("TRA", "DET", "SEG", "BC(0)", "BC(2)")}


def cn_response(per_frame: pd.Series, before: tuple[int, int], after: tuple[int, int]) -> tuple[float, float, float]:
    """Median of the per-frame C/N over the frames ``before`` and ``after``
    (inclusive ranges) and their ratio after / before."""
    frames = per_frame.index.to_numpy()
    lo = float(np.nanmedian(per_frame[(frames >= before[0]) & (frames <= before[1])].to_numpy(np.float64)))
    hi = float(np.nanmedian(per_frame[(frames >= after[0]) & (frames <= after[1])].to_numpy(np.float64)))
    return lo, hi, hi / lo if lo else math.nan


def ktr_summary(counts: pd.Series, median_cn: pd.Series, bench: Benchmark,
                in_range: pd.Series | None = None) -> dict[str, float]:
    """Nuclei per frame (median, min, max) and the C/N response; the series are indexed by frame.
    ``in_range``: objects per frame whose equivalent diameter is within the authors' size range
    (their CellProfiler pipeline discards the others; their ~740 per frame counts these)."""
    lo, hi, ratio = cn_response(median_cn, bench.before, bench.after)
    r, (a, b), (c, d) = bench.reporter, bench.before, bench.after
    out = {"nuclei_median": float(counts.median()), "nuclei_min": float(counts.min()),
           "nuclei_max": float(counts.max())}
    if in_range is not None:
        out[IN_RANGE_METRIC] = float(in_range.median())
    out.update({f"{r}_cn_{a}-{b}": lo, f"{r}_cn_{c}-{d}": hi, f"{r}_cn_ratio": ratio})
    return out


def in_size_range(diameters: pd.Series, frames: pd.Series) -> pd.Series:
    """Objects per frame whose equivalent diameter (px) is within ``AUTHORS_RANGE_PX``."""
    lo_px, hi_px = AUTHORS_RANGE_PX
    keep = (diameters >= lo_px) & (diameters <= hi_px)
    return keep.groupby(frames).sum()


def workflow_scores(bench: Benchmark, results: Path) -> dict[str, float]:
    """Scores of the workflow from its tables under ``results/<dataset>``."""
    if bench.kind == "ctc":
        scores = ctc_summary(pd.read_csv(results / "validation" / "ctc.csv"))
        frames = pd.concat([pd.read_csv(p) for p in sorted((results / "labels").glob("*.csv"))])
        scores["objects_per_frame"] = float(frames["n_objects"].median())
        return scores
    if bench.kind == "seg":
        return seg_summary(pd.read_csv(results / "validation" / "segmentation.csv"))
    images = pd.read_csv(results / "tables" / "images.csv")
    images = images.groupby("frame").agg(n=("n_objects", "sum"), cn=(f"median_cn_{bench.reporter}", "median"))
    objects = pd.read_csv(results / "tables" / "objects.csv", usecols=["frame", "equivalent_diameter_px"])
    in_range = in_size_range(objects["equivalent_diameter_px"], objects["frame"])
    return ktr_summary(images["n"], images["cn"], bench, in_range.reindex(images.index, fill_value=0))


def truth_per_frame(gt_dir: Path) -> float:
    """Median number of ground-truth objects per frame (tracks alive, from man_track.txt)."""
    man = pd.read_csv(gt_dir / "TRA" / "man_track.txt", sep=r"\s+", header=None, names=["L", "B", "E", "P"])
    n_frames = len(list((gt_dir / "TRA").glob("man_track*.tif")))
    alive = [int(((man.B <= t) & (man.E >= t)).sum()) for t in range(n_frames)]
    return float(np.median(alive))


# --------------------------------------------------------------------------
# the naive baseline
# --------------------------------------------------------------------------


def baseline_labels(image: np.ndarray, *, diameter_px: float, invert: bool = False) -> np.ndarray:
    """Naive nucleus segmentation of one 2-D frame.

    Gaussian (sigma = d/12) -> Otsu -> fill holes -> watershed on the distance
    transform from its maxima at least 0.4 d apart -> objects with an equivalent
    diameter outside [0.4 d, 3 d] removed, labels 1..N.

    Parameters
    ----------
    image : (Y, X) ndarray
    diameter_px : float
        Typical object diameter d in pixels.
    invert : bool
        Objects are darker than the background (the image is negated first).

    Returns
    -------
    (Y, X) ndarray of int32
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    img = np.asarray(image, dtype=np.float32)
    if invert:
        img = -img
    d = float(diameter_px)
    smooth = ndi.gaussian_filter(img, sigma=d / 12, mode="nearest")
    if not smooth.size or smooth.min() == smooth.max():
        return np.zeros(img.shape, np.int32)
    mask = ndi.binary_fill_holes(smooth > threshold_otsu(smooth))
    dist = ndi.distance_transform_edt(mask)
    components, _ = ndi.label(mask)
    peaks = np.zeros(mask.shape, bool)
    coords = peak_local_max(dist, min_distance=max(1, int(round(0.4 * d))), labels=components,
                            exclude_border=False)
    peaks[tuple(coords.T)] = True
    markers, _ = ndi.label(peaks, structure=np.ones((3, 3), bool))
    labels = watershed(-dist, markers, mask=mask)
    area = np.bincount(labels.ravel()).astype(np.float64)
    eqd = np.sqrt(4 * area / np.pi)
    keep = (eqd >= 0.4 * d) & (eqd <= 3 * d)
    keep[0] = False
    new = np.zeros(len(keep), np.int32)
    new[keep] = np.arange(1, int(keep.sum()) + 1)
    return new[labels]


def baseline_stack(frames: np.ndarray, *, diameter_px: float, invert: bool = False) -> np.ndarray:
    """:func:`baseline_labels` of every frame of a (T, Y, X) stack."""
    return np.stack([baseline_labels(f, diameter_px=diameter_px, invert=invert) for f in frames]).astype(np.int32)


def object_table(labels: np.ndarray) -> pd.DataFrame:
    """``frame, label, x, y, area_px`` of every object of a (T, Y, X) label stack (x = column)."""
    parts = []
    for t, plane in enumerate(labels):
        n = int(plane.max())
        if n == 0:
            continue
        flat = plane.ravel()
        yy, xx = np.indices(plane.shape)
        area = np.bincount(flat, minlength=n + 1)
        sy = np.bincount(flat, weights=yy.ravel(), minlength=n + 1)
        sx = np.bincount(flat, weights=xx.ravel(), minlength=n + 1)
        ids = np.flatnonzero(area[1:]) + 1
        parts.append(pd.DataFrame({"frame": t, "label": ids, "x": sx[ids] / area[ids], "y": sy[ids] / area[ids],
                                   "area_px": area[ids].astype(np.float64)}))
    if not parts:
        return pd.DataFrame(columns=["frame", "label", "x", "y", "area_px"])
    return pd.concat(parts, ignore_index=True)


def score_ctc(labels: np.ndarray, gt_dir: Path, *, track_kwargs: Mapping[str, Any]) -> dict[str, float]:
    """Track a label stack and score it like rule validate_ctc: TRA, DET, BC(0)
    (py-ctcmetrics via the CTC export) and SEG on the annotated frames."""
    from snakescope import ctc, io, track

    tracks = track.track_objects(object_table(labels), **track_kwargs)
    relabelled = track.relabel_stack(labels, tracks)
    with tempfile.TemporaryDirectory() as tmp:
        track.write_ctc(tmp, relabelled, tracks)
        metrics = track.tracking_metrics(gt_dir, tmp)
    seg = ctc.seg_score({t: io.read_stack(p)[0][0] for t, p in ctc.seg_frames(gt_dir).items()}, labels)
    return {"TRA": metrics["TRA"], "DET": metrics["DET"], "SEG": seg["SEG"], "BC(0)": metrics.get("BC(0)", math.nan),
            "BC(2)": metrics.get("BC(2)", math.nan)}


def _frames(source, ds: Mapping[str, Any], channel: str | None) -> tuple[np.ndarray, Any]:
    """(T, Y, X) frames of the segmented channel of one image, and the Image (None
    for one file per frame)."""
    import tifffile

    from snakescope import io

    if len(source.files) > 1:  # one file per frame
        return np.stack([tifffile.imread(f) for f in source.files]), None
    img = io.read_image(source.files[0], axes=ds.get("axes"), channels=ds.get("channels"))
    return img.channel(channel if channel else img.channels[0]), img


def _diameter_px(ds: Mapping[str, Any], first_file: str) -> float:
    from snakescope import io, params

    pixel = ds.get("pixel_size_um") or io.read_metadata(first_file).pixel_size_um
    return params.diameter_px(ds["segment"]["diameter"], pixel_size_um=pixel)


def baseline_scores(bench: Benchmark, ds: Mapping[str, Any]) -> dict[str, float]:
    """Scores of the naive baseline on one set (no workflow)."""
    from snakescope import io, params, validate

    full = dataset_defaults(ds)
    sources = image_sources(bench.name, ds)
    channel = full["segment"].get("channel")
    if bench.kind == "ctc":
        per_image = []
        for name, src in sources.items():
            frames, _ = _frames(src, ds, channel)
            d = _diameter_px(full, src.files[0])
            labels = baseline_stack(frames, diameter_px=d, invert=bench.invert)
            kwargs = params.track_params(full["track"], diameter=full["segment"]["diameter"], pixel_size_um=None)
            gt = Path(str(ds["ground_truth_ctc"]).format(image=name))
            scores = score_ctc(labels, gt, track_kwargs=kwargs)
            scores["objects_per_frame"] = float(np.median([len(np.unique(p)) - 1 for p in labels]))
            per_image.append(scores)
        return {k: float(np.mean([s[k] for s in per_image])) for k in per_image[0]}
    if bench.kind == "seg":
        tables = []
        for name, src in sources.items():
            frames, _ = _frames(src, ds, channel)
            d = _diameter_px(full, src.files[0])
            labels = baseline_stack(frames, diameter_px=d, invert=bench.invert)
            truth = io.read_stack(str(ds["ground_truth"]).format(image=name))[0]
            tables.append(validate.segmentation_scores(truth, labels))
        return seg_summary(validate.pool_scores(pd.concat(tables, ignore_index=True)))
    # ktr: naive nuclei, C/N with the schema's default rings
    from snakescope import rings

    counts, cns, in_range = [], [], []
    for name, src in sources.items():
        frames, img = _frames(src, ds, channel)
        d = _diameter_px(full, src.files[0])
        labels = baseline_stack(frames, diameter_px=d, invert=bench.invert)
        reporters = rings.select_reporters(img.channels, segment_channel=channel or img.channels[0],
                                           reporters=full["rings"]["reporters"])
        kwargs = params.rings_params(full["rings"], diameter=full["segment"]["diameter"],
                                     pixel_size_um=img.pixel_size_um, channels=img.channels)
        _, table = rings.measure_rings(img.data, labels, img.channels, reporters=reporters, **kwargs)
        counts.append(pd.Series([len(np.unique(p)) - 1 for p in labels]))
        areas = [np.bincount(p.ravel())[1:] for p in labels]
        diameters = pd.Series(np.concatenate([np.sqrt(4 * a[a > 0] / np.pi) for a in areas]))
        frame_of = pd.Series(np.concatenate([np.full(int((a > 0).sum()), t) for t, a in enumerate(areas)]))
        in_range.append(in_size_range(diameters, frame_of).reindex(range(len(labels)), fill_value=0))
        cns.append(table.groupby("frame")[f"cn_{bench.reporter}"].median())
    frame_counts = pd.concat(counts, axis=1).sum(axis=1)
    frame_cn = pd.concat(cns, axis=1).median(axis=1)
    return ktr_summary(frame_counts, frame_cn, bench, pd.concat(in_range, axis=1).sum(axis=1))


# --------------------------------------------------------------------------
# one set, the table, the regression check
# --------------------------------------------------------------------------


#: Row order of the table: scores first, then counts, C/N, time.
METRIC_ORDER = (*SCORES, "objects_per_frame", "truth_objects_per_frame", "objects", "truth_objects",
                "nuclei_median", "nuclei_min", "nuclei_max", IN_RANGE_METRIC)


def _metric_order(metric: str) -> tuple[int, str]:
    if metric == "workflow_s":
        return (len(METRIC_ORDER) + 1, metric)
    return (METRIC_ORDER.index(metric), metric) if metric in METRIC_ORDER else (len(METRIC_ORDER), metric)


def override_diameter(config: Mapping[str, Any], name: str, diameter: str | float | None) -> dict:
    """A copy of ``config`` whose dataset ``name`` has ``segment.diameter = diameter``
    (unchanged copy when ``diameter`` is None)."""
    out = copy.deepcopy(dict(config))
    if diameter is not None:
        out["datasets"][name].setdefault("segment", {})["diameter"] = diameter
    return out


def diameter_for(option: str | float | None, configured: float) -> str | float | None:
    """The ``segment.diameter`` a run uses for the ``--diameter`` option: None
    (the configured one), ``"auto"``, a number, or ``"x<factor>"`` (the
    configured diameter times the factor)."""
    if isinstance(option, str) and option.startswith("x"):
        return float(configured) * float(option[1:])
    return option


def estimated_diameter(results: Path) -> float:
    """Median of the workflow's diameter estimates (``results/<ds>/diameter/*.csv``), NaN if none."""
    files = sorted((results / "diameter").glob("*.csv"))
    if not files:
        return math.nan
    return float(pd.concat([pd.read_csv(p) for p in files])["diameter_px"].median())


def run_set(bench: Benchmark, *, data_dir: str | Path, workdir: Path, cores: int = 2, nice: int = 10,
            baseline: bool = True, reuse: bool = False, diameter: str | float | None = None,
            log=print) -> pd.DataFrame | None:
    """Run and score one set; None (with a message) when its data are missing.

    Returns the tidy rows ``dataset, metric, snakescope, baseline`` (NaN for a
    workflow that failed; its error is logged), with ``workflow_s`` (wall time of
    the workflow; baseline column: time of the baseline). ``diameter``: run the
    workflow with this ``segment.diameter`` (e.g. ``"auto"``) instead of the
    configured one (the baseline keeps the configured one); adds the metric
    ``diameter_px`` (estimate; baseline column: the configured diameter).
    """
    config, ds = load_config(bench, data_dir)
    diameter = diameter_for(diameter, ds["segment"]["diameter"])
    missing = missing_inputs(bench.name, ds)
    if missing:
        log(f"skipped {bench.name}: missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} "
            f"(pass --data DIR, the folder holding the real sets)")
        return None
    work = workdir / bench.name
    if work.exists() and not reuse:
        shutil.rmtree(work)
    ours: dict[str, float] = {}
    log(f"{bench.name}: running the workflow ({', '.join(targets(bench))}) ...")
    try:
        wall = run_workflow(bench, override_diameter(config, bench.name, diameter), work, cores=cores, nice=nice)
        ours = workflow_scores(bench, work / "results" / bench.name)
        ours["workflow_s"] = wall
        if diameter == "auto":
            ours["diameter_px"] = estimated_diameter(work / "results" / bench.name)
            log(f"{bench.name}: segment.diameter {diameter}: {ours['diameter_px']:.1f} px "
                f"(configured {ds['segment']['diameter']})")
        log(f"{bench.name}: workflow {wall:.1f} s{' (reused outputs)' if reuse else ''}")
    except WorkflowFailed as exc:
        log(f"{bench.name}: WORKFLOW FAILED: {exc}")
    except (OSError, KeyError, ValueError) as exc:  # an output table without what is scored
        log(f"{bench.name}: WORKFLOW OUTPUT NOT SCORED: {type(exc).__name__}: {exc}")
    theirs: dict[str, float] = {}
    if baseline:
        t0 = time.perf_counter()
        try:
            theirs = baseline_scores(bench, ds)
            theirs["workflow_s"] = time.perf_counter() - t0
            log(f"{bench.name}: baseline {theirs['workflow_s']:.1f} s")
        except Exception as exc:  # a library change broke the baseline: report, go on
            log(f"{bench.name}: BASELINE FAILED: {type(exc).__name__}: {exc}")
    if bench.kind == "ctc":
        names = list(image_sources(bench.name, ds))
        truth = float(np.mean([truth_per_frame(Path(str(ds["ground_truth_ctc"]).format(image=n))) for n in names]))
        ours["truth_objects_per_frame"] = theirs["truth_objects_per_frame"] = truth
    if bench.kind == "seg" and "truth_objects" in (ours or theirs):
        ours.setdefault("truth_objects", theirs.get("truth_objects", math.nan))
        theirs.setdefault("truth_objects", ours.get("truth_objects", math.nan))
    if diameter is not None and isinstance(ds["segment"].get("diameter"), (int, float)):
        theirs["diameter_px"] = float(ds["segment"]["diameter"])
    metrics = sorted(dict.fromkeys([*theirs, *ours]), key=_metric_order)
    return pd.DataFrame([{"dataset": bench.name, "metric": m, "snakescope": ours.get(m, math.nan),
                          "baseline": theirs.get(m, math.nan)} for m in metrics], columns=COLUMNS)


def verify_ctc(bench: Benchmark, ds: Mapping[str, Any], results: Path) -> pd.DataFrame:
    """py-ctcmetrics run directly (``evaluate_sequence``: TRA, DET, SEG) on the
    workflow's CTC export against the GT folder, beside validation/ctc.csv."""
    import contextlib
    import io as _io

    from ctc_metrics import evaluate_sequence

    table = pd.read_csv(results / "validation" / "ctc.csv")
    rows = []
    for name in image_sources(bench.name, ds):
        gt = str(ds["ground_truth_ctc"]).format(image=name)
        with contextlib.redirect_stdout(_io.StringIO()):
            direct = evaluate_sequence(res=str(results / "ctc" / name), gt=gt, metrics=["DET", "TRA", "SEG"], threads=1)
        ours = table[table["image"].astype(str) == name].iloc[0]
        for m in ("TRA", "DET", "SEG"):
            rows.append({"dataset": bench.name, "image": name, "metric": m, "validation_csv": float(ours[m]),
                         "ctc_metrics": float(direct[m]), "diff": float(ours[m]) - float(direct[m])})
    return pd.DataFrame(rows)


def _fmt(metric: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if metric == "workflow_s":
        return f"{value:.1f}"
    if float(value).is_integer() and abs(value) >= 2:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def format_table(table: pd.DataFrame, committed: pd.DataFrame | None = None, tolerance: float = TOLERANCE) -> str:
    """The results as one text table (with the committed scores and a flag, at ``tolerance``, when given)."""
    head = ["dataset", "metric", "snakescope", "baseline"]
    if committed is not None:
        head += ["committed", "check"]
        flags = {(r["dataset"], r["metric"]): r for r in compare(table, committed, tolerance)}
        ref = committed.set_index(["dataset", "metric"])["snakescope"]
    rows = []
    for r in table.itertuples(index=False):
        cells = [r.dataset, r.metric, _fmt(r.metric, r.snakescope), _fmt(r.metric, r.baseline)]
        if committed is not None:
            key = (r.dataset, r.metric)
            cells.append(_fmt(r.metric, float(ref[key])) if key in ref.index else "-")
            cells.append(flags[key]["status"] if key in flags else "")
        rows.append(cells)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(head), "  ".join("-" * w for w in widths), *map(line, rows)])


def compare(current: pd.DataFrame, committed: pd.DataFrame, tolerance: float = TOLERANCE) -> list[dict]:
    """Gated scores of the sets in ``current`` against ``committed``.

    A score fails when it is more than ``tolerance`` below the committed value,
    or missing/NaN where the committed value is a number. Returns one dict per
    committed score of those sets: ``dataset, metric, committed, current, status``
    (``ok`` / ``DROP`` / ``MISSING``).
    """
    out = []
    now = current.set_index(["dataset", "metric"])["snakescope"]
    ran = set(current["dataset"])
    for r in committed.itertuples(index=False):
        if r.dataset not in ran or r.metric not in SCORES or pd.isna(r.snakescope):
            continue
        value = now.get((r.dataset, r.metric), math.nan)
        if pd.isna(value):
            status = "MISSING"
        elif value < r.snakescope - tolerance:
            status = "DROP"
        else:
            status = "ok"
        out.append({"dataset": r.dataset, "metric": r.metric, "committed": float(r.snakescope),
                    "current": float(value), "status": status})
    return out


def regressions(current: pd.DataFrame, committed: pd.DataFrame, tolerance: float = TOLERANCE) -> list[str]:
    """Messages for every gated score that dropped more than ``tolerance`` (empty: none)."""
    return [f"{c['dataset']} {c['metric']}: {c['current']:.4f} < committed {c['committed']:.4f} - {tolerance}"
            if c["status"] == "DROP" else f"{c['dataset']} {c['metric']}: missing (committed {c['committed']:.4f})"
            for c in compare(current, committed, tolerance) if c["status"] != "ok"]


def merge(current: pd.DataFrame, committed: pd.DataFrame | None) -> pd.DataFrame:
    """The committed rows with those of the sets in ``current`` replaced (set order of BENCHMARKS)."""
    if committed is None or committed.empty:
        merged = current
    else:
        merged = pd.concat([committed[~committed["dataset"].isin(set(current["dataset"]))], current],
                           ignore_index=True)
    order = {name: i for i, name in enumerate(BENCHMARKS)}
    merged = merged.assign(_o=merged["dataset"].map(lambda d: order.get(d, len(order))))
    return merged.sort_values("_o", kind="stable").drop(columns="_o").reset_index(drop=True)[COLUMNS]


def read_results(path: Path = RESULTS_CSV) -> pd.DataFrame | None:
    return pd.read_csv(path) if Path(path).is_file() else None


def write_results(table: pd.DataFrame, path: Path = RESULTS_CSV) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.round(6).to_csv(path, index=False)


def code_state(root: Path = ROOT) -> str:
    """``<commit>`` of the repository, with the number of modified tracked files when not clean."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (f" + {len(dirty)} modified file(s)" if dirty else "")


def select(sets: str | None) -> list[Benchmark]:
    if not sets:
        return list(BENCHMARKS.values())
    names = [s.strip() for s in sets.split(",") if s.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"--sets: unknown set(s) {unknown}; choose from {list(BENCHMARKS)}")
    return [BENCHMARKS[n] for n in names]


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    ap.add_argument("--data", default=str(ROOT / DATA_PREFIX), help="folder holding the real sets "
                    "(replaces the configs' ../shared/data)")
    ap.add_argument("--check", action="store_true", help=f"exit 1 if a score drops > {TOLERANCE} below "
                    f"{RESULTS_CSV.relative_to(ROOT)}")
    ap.add_argument("--write", action="store_true", help=f"rewrite {RESULTS_CSV.relative_to(ROOT)} (rows of the sets run)")
    ap.add_argument("--workdir", help="keep the workflow outputs in DIR/<set> (default: a temporary folder, removed)")
    ap.add_argument("--reuse", action="store_true", help="with --workdir: keep earlier outputs (Snakemake reruns "
                    "only what changed; the time is then not a full run)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the baseline (its column is taken from the CSV)")
    ap.add_argument("--verify-ctc", action="store_true", help="also run py-ctcmetrics directly on the CTC export")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--nice", type=int, default=10, help="niceness of the workflow run (0: none)")
    ap.add_argument("--diameter", help="run the workflow with segment.diameter = DIAMETER (auto, a number, or x1.2: "
                    "the configured diameter times 1.2) instead of the configured number, and show the committed "
                    "scores beside; not with --write")
    args = ap.parse_args(list(argv) if argv is not None else None)
    diameter = None
    if args.diameter is not None:
        if args.write:
            ap.error("--diameter: --write would store scores of a non-default configuration; drop one of them")
        diameter = args.diameter
        try:
            if diameter.startswith("x"):
                if not float(diameter[1:]) > 0:
                    raise ValueError
            elif diameter != "auto":
                diameter = float(diameter)
        except ValueError:
            ap.error(f"--diameter: expected auto, a number (px) or a factor such as x1.2, got {args.diameter!r}")

    committed = read_results()
    notes: list[str] = []
    print(f"code: {code_state()}; data: {Path(args.data).resolve()}; {time.strftime('%Y-%m-%d %H:%M')}", flush=True)

    def log(message: str) -> None:
        print(message, flush=True)
        if "FAILED" in message or "NOT SCORED" in message or message.startswith("skipped"):
            notes.append(message)

    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="snakescope-accuracy-")) if temporary else Path(args.workdir).resolve()
    parts, checks = [], []
    try:
        for bench in select(args.sets):
            rows = run_set(bench, data_dir=args.data, workdir=workdir, cores=args.cores, nice=args.nice,
                           baseline=not args.no_baseline, reuse=args.reuse, diameter=diameter, log=log)
            if rows is None:
                continue
            if args.no_baseline and committed is not None:
                ref = committed.set_index(["dataset", "metric"])["baseline"]
                rows["baseline"] = [b if m == "diameter_px" else ref.get((d, m), math.nan)  # the configured diameter
                                    for d, m, b in zip(rows["dataset"], rows["metric"], rows["baseline"])]
            parts.append(rows)
            if args.verify_ctc and bench.kind == "ctc" and (workdir / bench.name / "results").exists():
                _, ds = load_config(bench, args.data)
                checks.append(verify_ctc(bench, ds, workdir / bench.name / "results" / bench.name))
    finally:
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    if not parts:
        print("no set ran")
        return 1 if args.check else 0
    table = pd.concat(parts, ignore_index=True)
    print()
    show = args.check or diameter is not None
    print(format_table(table, committed if show and committed is not None else None,
                       AUTO_TOLERANCE if diameter is not None else TOLERANCE))
    if notes:
        print("\n" + "\n".join(notes))
    if checks:
        print("\npy-ctcmetrics directly on results/<ds>/ctc/<image> vs the GT folder:")
        print(pd.concat(checks).to_string(index=False))
    status = 0
    if args.check:
        if committed is None:
            print(f"\n--check: {RESULTS_CSV} does not exist; run with --write first")
            status = 1
        else:
            problems = regressions(table, committed)
            print("\n--check: " + ("; ".join(problems) if problems else f"no score dropped more than {TOLERANCE}"))
            status = 1 if problems else 0
    if args.write:
        write_results(merge(table, committed))
        print(f"\nwrote {RESULTS_CSV.relative_to(ROOT)}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
