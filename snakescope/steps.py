"""Workflow steps: one function per rule, named after it.

A step is the adapter between files and the library: it reads its input
files, makes one library call (per frame where the library works on frames),
and writes its outputs atomically. Keyword arguments are the rule's named
``input``, ``output`` and ``params``; config sections are turned into library
arguments by :mod:`snakescope.params`, and errors of a library call get the
config key they came from (:class:`snakescope.errors.config_key`).

``@uses(...)`` declares the library modules a step calls; the rule's code
version (:func:`snakescope.provenance.code_version`) hashes them, so editing
them reruns the step. None of this imports snakemake: a step can be called from
a notebook or a test alike.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from . import ctc, external, figures, io, params, rods, segment, synthetic, validate
from . import diameter as diameter_lib
from . import measure as measure_lib
from . import provenance as provenance_lib
from . import rings as rings_lib
from . import tables as tables_lib
from . import traces as traces_lib
from . import track as track_lib
from .errors import InputError, config_key, prefixed
from .provenance import uses

log = logging.getLogger("snakescope")


def _read(image: str | Sequence[str], reading: Mapping[str, Any]) -> io.Image:
    """Read the raw image: one file, or one file per frame and channel (``reading["grid"]``)."""
    layout = {"grid": tuple(reading["grid"])} if reading.get("grid") else {}
    for key in ("scene", "z_projection"):
        if reading.get(key) is not None:
            layout[key] = reading[key]
    img = io.read_image(
        image,
        axes=reading.get("axes"),
        channels=reading.get("channels"),
        pixel_size_um=reading.get("pixel_size_um"),
        frame_interval_s=reading.get("frame_interval_s"),
        **layout,
    )
    for note in getattr(img, "notes", []):
        log.info("%s", note)
    return img


def _write_like(path: str, data: np.ndarray, md) -> None:
    """Write a ``TYX`` stack with the calibration of ``md`` (an Image or FileMetadata)."""
    io.write_stack(path, data, axes="TYX", pixel_size_um=md.pixel_size_um, frame_interval_s=md.frame_interval_s)


def _labels_for(image: io.Image, labels_path: str) -> np.ndarray:
    labels, _ = io.read_stack(labels_path)
    if labels.shape != (image.data.shape[0],) + image.data.shape[2:]:
        raise InputError(
            f"{labels_path}: labels have shape {labels.shape} (TYX) but {image.path} has "
            f"{image.data.shape[0]} frames of {image.data.shape[2:]}; delete the stale results and rerun"
        )
    return labels


# --------------------------------------------------------------------------
# example
# --------------------------------------------------------------------------


@uses(synthetic)
def example(*, files: Sequence[str], outdir: str, seed: int) -> None:
    """Generate the embedded synthetic example under ``outdir`` (``files`` are the
    outputs the workflow expects; a mismatch is a bug and fails loudly)."""
    paths = synthetic.write_example(outdir, seed=seed)
    missing = sorted(set(map(str, files)) - set(map(str, paths)))
    if missing:
        raise RuntimeError(f"example generator did not write {missing}")
    log.info("wrote %d example files under %s", len(paths), outdir)


# --------------------------------------------------------------------------
# segmentation: smooth -> threshold -> refine -> label
# --------------------------------------------------------------------------


@uses(diameter_lib)
def diameter(*, image: str, estimate: str, name: str, reading: Mapping[str, Any], channel: str | None,
             invert: bool) -> None:
    """Estimate the typical object diameter of an image (``segment.diameter: auto``):
    scale-space blobs of a few frames of the segmentation channel; one row
    ``image, diameter_px, q25_px, q75_px, n_blobs, n_frames, at_limit``."""
    img = _read(image, reading)
    stack = img.channel(channel if channel is not None else img.channels[0])
    with config_key("segment.diameter"):
        value, details = diameter_lib.estimate_diameter_stack(stack, invert=invert, return_details=True,
                                                              max_diameter_px=min(stack.shape[1:]) / 2)
    frames = details["frames"]
    row = {"image": name, "diameter_px": value,
           "q25_px": float(frames["q25_px"].median()) if "q25_px" in frames else np.nan,
           "q75_px": float(frames["q75_px"].median()) if "q75_px" in frames else np.nan,
           "n_blobs": int(frames["n_blobs"].sum()) if "n_blobs" in frames else 0,
           "n_frames": int(len(frames)), "at_limit": bool(details.get("at_limit", False))}
    log.info("%s: estimated diameter %.3g px (%s)", name, value, row)
    io.write_table(pd.DataFrame([row]), estimate)


@uses(params, segment)
def smooth(*, image: str, smoothed: str, reading: Mapping[str, Any], channel: str | None,
           diameter: float | str, smooth: Mapping[str, Any], diameter_estimate: str | None = None) -> None:
    """Smooth every frame of the segmentation channel; a float32 ``TYX`` stack."""
    diameter = params.resolve_diameter(diameter, diameter_estimate)
    img = _read(image, reading)
    name = channel if channel is not None else img.channels[0]
    stack = img.channel(name)
    kwargs = params.smooth_params(smooth, diameter=diameter, pixel_size_um=img.pixel_size_um)
    d_px = params.diameter_px(diameter, pixel_size_um=img.pixel_size_um)
    if min(stack.shape[1:]) < d_px:
        raise InputError(
            f"{image}: image is {stack.shape[2]}x{stack.shape[1]} px, smaller than one object "
            f"(segment.diameter = {d_px:.3g} px); check the file, its 'axes' or segment.diameter"
        )
    log.info("%s: %s, channel %s, %d frames of %s, pixel %s µm, smooth %s",
             image, img.axes, name, stack.shape[0], stack.shape[1:], img.pixel_size_um, kwargs)
    out = np.empty(stack.shape, dtype=np.float32)
    with config_key("segment.smooth"):
        for t in range(stack.shape[0]):
            out[t] = segment.smooth(stack[t], **kwargs)
    _write_like(smoothed, out, img)


@uses(params, segment)
def threshold(*, smoothed: str, mask: str, table: str, image: str, diameter: float | str,
              threshold: Mapping[str, Any], diameter_estimate: str | None = None) -> None:
    """Threshold the smoothed stack; write the mask and a table of the values used."""
    diameter = params.resolve_diameter(diameter, diameter_estimate)
    stack, md = io.read_stack(smoothed)
    kwargs = params.threshold_params(threshold, diameter=diameter, pixel_size_um=md.pixel_size_um)
    with config_key("segment.threshold"):
        masks, values = segment.threshold_stack(stack, **kwargs)
    log.info("%s: thresholds %s", image, ["%.4g" % v for v in values])
    _write_like(mask, masks.astype(np.uint8), md)
    io.write_table(pd.DataFrame({
        "image": image, "frame": np.arange(len(values)), "method": kwargs["method"],
        "scope": kwargs["scope"], "threshold": values,
        "foreground_fraction": masks.reshape(len(values), -1).mean(axis=1),
    }), table)


@uses(params, segment)
def refine(*, mask: str, refined: str, diameter: float | str, refine: Mapping[str, Any], diameter_estimate: str | None = None) -> None:
    """Clean the mask of every frame (hole filling, opening/closing, specks)."""
    diameter = params.resolve_diameter(diameter, diameter_estimate)
    stack, md = io.read_stack(mask)
    kwargs = params.refine_params(refine, diameter=diameter, pixel_size_um=md.pixel_size_um)
    out = np.empty(stack.shape, dtype=np.uint8)
    with config_key("segment.refine"):
        for t in range(stack.shape[0]):
            out[t] = segment.refine(stack[t].astype(bool), **kwargs)
    _write_like(refined, out, md)


def _label_threshold(settings: Mapping[str, Any], mask: str, smoothed: str, thresholds: str):
    masks, md = io.read_stack(mask)
    kwargs = params.split_params(settings["split"], settings["refine"], diameter=settings["diameter"],
                                 pixel_size_um=md.pixel_size_um)
    intensity = io.read_stack(smoothed)[0] if kwargs["method"] == "intensity" else None
    with config_key("segment.split"):
        frames = [segment.label_frame(masks[t].astype(bool), intensity=None if intensity is None else intensity[t],
                                      **kwargs) for t in range(masks.shape[0])]
    return frames, md, io.read_table(thresholds)["threshold"].to_numpy()


@uses(params, segment, external, rods)
def label(*, labels: str, frames: str, name: str, settings: Mapping[str, Any], mask: str | None = None,
          smoothed: str | None = None, thresholds: str | None = None, image: str | None = None,
          external_labels: str | None = None, diameter_estimate: str | None = None) -> None:
    """Label the objects of every frame with the dataset's ``segment.method``.

    ``threshold``: split the refined mask (distance or intensity watershed) and
    filter by size; ``log_edges``: LoG-edge segmentation of rods; ``labels``:
    label images made elsewhere, checked and renumbered 1..N per frame;
    ``stardist`` / ``cellpose``: those packages with a local model.
    ``settings`` holds only what the method uses (:func:`snakescope.params.label_settings`).
    Writes uint16 labels (uint32 above 65535 objects) and a per-frame table
    ``image, frame, n_objects, threshold``.
    """
    settings = {**settings, "diameter": params.resolve_diameter(settings.get("diameter"), diameter_estimate)}
    method = settings["method"]
    if method == "threshold":
        out_frames, md, threshold_values = _label_threshold(settings, mask, smoothed, thresholds)
    else:
        md = _read(image, settings["reading"])
        channel = settings.get("channel")
        stack = md.channel(channel if channel is not None else md.channels[0])
        threshold_values = np.full(stack.shape[0], np.nan)
        if method == "labels":
            with prefixed(external_labels):
                out_frames = external.external_labels(io.read_stack(external_labels)[0], shape=stack.shape)
        elif method == "log_edges":
            kwargs = params.log_edges_params(settings["log_edges"], diameter=settings["diameter"],
                                             pixel_size_um=md.pixel_size_um)
            with config_key("segment.log_edges"):
                out_frames = [rods.log_edges_segment(frame, **kwargs) for frame in stack]
        else:
            with config_key("segment.method"):
                external.require_package(method)
            with config_key("segment.model"):
                out_frames = external.model_labels(stack, method=method, model=settings["model"])
    top = max((int(f.max()) for f in out_frames), default=0)
    out = np.stack(out_frames).astype(io.label_dtype(top))
    counts = [len(np.unique(f)) - 1 if f.any() else 0 for f in out_frames]
    log.info("%s (%s): %s objects per frame", name, method, counts)
    _write_like(labels, out, md)
    d_px = params.diameter_px(settings["diameter"], pixel_size_um=md.pixel_size_um) if "diameter" in settings \
        and settings["diameter"] is not None else np.nan
    io.write_table(pd.DataFrame({"image": name, "frame": np.arange(len(counts)), "n_objects": counts,
                                 "threshold": threshold_values, "diameter_px": d_px}), frames)


# --------------------------------------------------------------------------
# measurement, rings, tables
# --------------------------------------------------------------------------


@uses(measure_lib, tables_lib)
def measure(*, image: str, labels: str, measurements: str, name: str, reading: Mapping[str, Any],
            saturation: float | None, rods: bool = False) -> None:
    """Shape (px and µm) and per-channel intensity of every object in every frame;
    with ``rods`` also pole-to-pole length and width."""
    img = _read(image, reading)
    lab = _labels_for(img, labels)
    sat = measure_lib.saturation_level(img.data.dtype, saturation)
    table = measure_lib.measure_stack(lab, img.data, img.channels, pixel_size_um=img.pixel_size_um,
                                      saturation_value=sat, rods=rods)
    out = tables_lib.add_image_columns(table, image=name, frame_interval_s=img.frame_interval_s)
    log.info("%s: %d objects in %d frames; saturation at %s", name, len(out), lab.shape[0], sat)
    io.write_table(out, measurements)


@uses(params, rings_lib, tables_lib)
def rings(*, image: str, labels: str, ring_labels: str, ring_table: str, name: str,
          reading: Mapping[str, Any], channel: str | None, diameter: float | str,
          rings: Mapping[str, Any], diameter_estimate: str | None = None) -> None:
    """Cytoplasmic rings around every nucleus and cytoplasm/nucleus ratios per frame.

    Writes the ring label stack (same ids as the nuclei) and a table with ring
    statistics, background levels and ``cn_<reporter>`` per object and frame.
    """
    diameter = params.resolve_diameter(diameter, diameter_estimate)
    img = _read(image, reading)
    lab = _labels_for(img, labels)
    with config_key("rings.reporters"):
        reporters = rings_lib.select_reporters(img.channels, segment_channel=channel, reporters=rings["reporters"])
    kwargs = params.rings_params(rings, diameter=diameter, pixel_size_um=img.pixel_size_um, channels=img.channels)
    log.info("%s: reporters %s, rings %s", name, reporters, kwargs)
    with config_key("rings"):
        ring_stack, table = rings_lib.measure_rings(img.data, lab, img.channels, reporters=reporters, **kwargs)
    _write_like(ring_labels, ring_stack, img)
    io.write_table(tables_lib.add_image_columns(table, image=name, frame_interval_s=img.frame_interval_s), ring_table)


@uses(tables_lib)
def tables(*, measurements: Sequence[str], rings: Sequence[str], frames: Sequence[str],
           objects: str, images: str, dataset: str, metadata: Mapping[str, Mapping[str, str]] | None = None,
           objects_parquet: str | None = None, images_parquet: str | None = None) -> None:
    """The dataset's tidy tables: ``objects`` (one row per object per frame,
    measurements + rings) and ``images`` (one row per image and frame), with
    the images' metadata as ``meta_<name>`` columns; CSV and the same as Parquet."""
    table = tables_lib.object_table([io.read_table(p) for p in measurements], [io.read_table(p) for p in rings],
                                    dataset=dataset)
    per_frame = _concat(frames)
    summary = tables_lib.image_table(table, per_frame, dataset=dataset)
    for frame, csv, parquet in ((table, objects, objects_parquet), (summary, images, images_parquet)):
        frame = tables_lib.add_metadata(frame, metadata or {})
        io.write_table(frame, csv)
        if parquet:
            io.write_parquet(io.read_table(csv), parquet)  # the CSV's columns and types, exactly


# --------------------------------------------------------------------------
# tracking and traces
# --------------------------------------------------------------------------


@uses(params, track_lib)
def track(*, labels: str, measurements: str, tracks: str, track_labels: str, name: str,
          diameter: float | str, track: Mapping[str, Any], diameter_estimate: str | None = None) -> None:
    """Link the objects of a time-lapse into tracks (LAP tracker).

    Writes the track table (``frame, label, track_id, parent_track_id, x, y``)
    and the label stack relabelled so each value is the object's track id in
    every frame (0 for dropped objects): consistent with the table by construction.
    """
    diameter = params.resolve_diameter(diameter, diameter_estimate)
    lab, md = io.read_stack(labels)
    objects = io.read_table(measurements)
    kwargs = params.track_params(track, diameter=diameter, pixel_size_um=md.pixel_size_um)
    missing = [c for c in (kwargs["feature_weights"] or {}) if c not in objects.columns]
    if missing:
        raise InputError(
            f"config key track.features: column(s) {missing} not in the measurements; use columns such as "
            f"area_px or <channel>_mean (see config/README.md)"
        )
    if lab.shape[0] < 2:
        log.info("%s: a single frame: every object is its own track", name)
    with config_key("track"):
        if len(objects) == 0:
            table = pd.DataFrame(columns=["frame", "label", "track_id", "parent_track_id", "x", "y"])
        else:
            table = track_lib.track_objects(objects, **kwargs)
        relabelled = track_lib.relabel_stack(lab, table) if len(table) else np.zeros_like(lab)
    n_tracks = int(table["track_id"].max()) if len(table) else 0
    log.info("%s: %d tracks (%s)", name, n_tracks, kwargs)
    io.write_table(table, tracks)
    _write_like(track_labels, relabelled, md)


@uses(track_lib)
def ctc_export(*, track_labels: str, tracks: str, ctc: str) -> None:
    """Cell Tracking Challenge result folder: ``maskTTT.tif`` + ``res_track.txt``."""
    stack, _ = io.read_stack(track_labels)
    table = io.read_table(tracks)
    with io.atomic_dir(ctc) as out:
        track_lib.write_ctc(out, stack, table)


@uses(traces_lib, tables_lib)
def traces(*, objects: str, tracks: Sequence[str], traces_table: str, images: Sequence[str],
           traces: Mapping[str, Any], metadata: Mapping[str, Mapping[str, str]] | None = None,
           traces_parquet: str | None = None) -> None:
    """Per-cell traces of every tracked image: one row per tracked cell per frame."""
    baseline = tuple(traces["baseline_frames"]) if traces["baseline_frames"] else None
    with config_key("traces"):
        table = traces_lib.dataset_traces(io.read_table(objects), [(n, io.read_table(p)) for n, p in zip(images, tracks)],
                                          complete_only=traces["complete_only"], min_length=traces["min_length"],
                                          baseline_frames=baseline)
    io.write_table(tables_lib.add_metadata(table, metadata or {}), traces_table)
    if traces_parquet:
        io.write_parquet(io.read_table(traces_table), traces_parquet)


# --------------------------------------------------------------------------
# validation against ground truth
# --------------------------------------------------------------------------


def _concat(paths: Sequence[str]) -> pd.DataFrame:
    return pd.concat([io.read_table(p) for p in paths], ignore_index=True)


def _write_summary(table: pd.DataFrame, summary: str, dataset: str) -> pd.DataFrame:
    """Write a dataset summary with the ``dataset`` column first."""
    table.insert(0, "dataset", dataset)
    io.write_table(table, summary)
    return table




def _truth_stack(truth: str, image: str) -> np.ndarray:
    try:
        return io.read_stack(truth)[0]
    except InputError as exc:
        raise InputError(f"{exc} (ground truth of image {image}: fix the dataset's ground_truth pattern)") from exc


@uses(validate)
def validate_segmentation(*, labels: str, truth: str, scores: str, image: str) -> None:
    """Detection scores of one image's labels against its ground truth, per frame and IoU threshold."""
    pred, _ = io.read_stack(labels)
    gt = _truth_stack(truth, image)
    if gt.shape != pred.shape:
        raise InputError(
            f"{truth}: ground truth has shape {gt.shape} (TYX) but the labels have {pred.shape}; "
            "give one label image per image with the same frames and Y/X size"
        )
    table = validate.segmentation_scores(gt, pred)
    table.insert(0, "image", image)
    io.write_table(table, scores)


@uses(validate)
def validation_summary(*, tables: Sequence[str], summary: str, dataset: str) -> None:
    """Scores per image and pooled over the dataset (``image = ALL``)."""
    table = _write_summary(validate.pooled_segmentation(_concat(tables)), summary, dataset)
    at50 = table[(table["image"] == validate.POOLED) & np.isclose(table["iou_threshold"], 0.5)].iloc[0]
    log.info("%s: F1@0.5 = %.3f (precision %.3f, recall %.3f)", dataset, at50.f1, at50.precision, at50.recall)


@uses(validate, rings_lib)
def validate_cn(*, labels: str, truth: str, ring_table: str, cn_truth: str, scores: str, image: str,
                column: str, reporter: str | None) -> None:
    """C/N of each detected nucleus against its matched (IoU ≥ 0.5) true nucleus; one row per match."""
    pred, _ = io.read_stack(labels)
    gt = _truth_stack(truth, image)
    measured = io.read_table(ring_table)
    available = rings_lib.cn_columns(measured.columns)
    if not available:
        raise InputError(f"{ring_table}: no cn_ columns; set rings.reporters")
    col = f"cn_{reporter}" if reporter else available[0]
    if col not in available:
        raise InputError(f"config key ground_truth_cn.reporter: {reporter!r} has no C/N column (have {available})")
    with prefixed(f"{cn_truth} (ground_truth_cn.table; check ground_truth_cn.column)"):
        matched = validate.cn_errors(validate.matched_pairs(gt, pred), io.read_table(cn_truth), measured,
                                     truth_column=column, measured_column=col)
    matched.insert(0, "image", image)
    matched.insert(1, "reporter", col[3:])
    io.write_table(matched, scores)


@uses(validate)
def cn_summary(*, tables: Sequence[str], summary: str, dataset: str) -> None:
    """C/N errors per image and pooled (``image = ALL``)."""
    table = _write_summary(validate.cn_summary(_concat(tables)), summary, dataset)
    pooled = table.iloc[-1]
    log.info("%s: C/N median |rel error| %.4f, r = %.4f", dataset, pooled.median_abs_rel_error, pooled.pearson_r)


@uses(track_lib)
def validate_tracking(*, ctc: str, truth: str, truth_tracks: str, scores: str, image: str) -> None:
    """CTC tracking measures (TRA, DET, ...) of one image against its ground truth."""
    import tempfile

    gt = _truth_stack(truth, image)
    try:
        man = pd.read_csv(truth_tracks, sep=r"\s+", header=None, names=["L", "B", "E", "P"])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{truth_tracks}: not a CTC man_track.txt (L B E P per line): {exc}") from exc
    with tempfile.TemporaryDirectory() as tmp:
        track_lib.write_ctc_ground_truth(tmp, gt, man)
        metrics = track_lib.tracking_metrics(tmp, ctc)
    io.write_table(pd.DataFrame([{"image": image, **{k: float(v) for k, v in sorted(metrics.items())}}]), scores)
    log.info("%s: %s", image, metrics)


@uses(validate)
def tracking_summary(*, tables: Sequence[str], summary: str, dataset: str) -> None:
    """Tracking measures per image and their mean over images (``image = ALL``)."""
    _write_summary(validate.tracking_summary(_concat(tables)), summary, dataset)


@uses(ctc, track_lib)
def validate_ctc(*, result: str, labels: str, truth: str, scores: str, image: str) -> None:
    """Cell Tracking Challenge measures of one tracked image against a CTC
    ground-truth folder: TRA, DET, LNK, BC(0) and AOGM counts (py-ctcmetrics) from
    its TRA markers, SEG from its (sparse) SEG annotations."""
    where = f"{truth} (ground_truth_ctc)"
    with prefixed(where):
        ctc.check_ground_truth(truth)
    row: dict[str, Any] = {"image": image}
    if (Path(truth) / "TRA" / "man_track.txt").is_file():
        with prefixed(where):
            metrics = track_lib.tracking_metrics(truth, result)
        row.update({k: float(v) for k, v in metrics.items()})
    annotated = ctc.seg_frames(truth)
    if annotated:
        pred, _ = io.read_stack(labels)
        with prefixed(where):
            row.update(ctc.seg_score({t: io.read_stack(p)[0][0] for t, p in annotated.items()}, pred))
    first = [c for c in ("image", "TRA", "DET", "SEG", "LNK", "BC(0)") if c in row]
    table = pd.DataFrame([row])[first + sorted(c for c in row if c not in first)]
    io.write_table(table, scores)
    log.info("%s: %s", image, {k: row[k] for k in first[1:]})


@uses(validate)
def ctc_summary(*, tables: Sequence[str], summary: str, dataset: str) -> None:
    """CTC measures per image and their mean over images (``image = ALL``)."""
    _write_summary(validate.tracking_summary(_concat(tables)), summary, dataset)


@uses(validate)
def validate_sizes(*, labels: str, truth: str, measurements: str, sizes_truth: str, scores: str, image: str) -> None:
    """Rod length and width of each detected object against its matched (IoU ≥ 0.5) true object."""
    pred, _ = io.read_stack(labels)
    gt = _truth_stack(truth, image)
    measured = io.read_table(measurements)
    if "length_um" not in measured.columns:
        raise InputError(f"{measurements}: no column 'length_um'; sizes are measured for segment.method log_edges")
    with prefixed(f"{sizes_truth} (ground_truth_sizes)"):
        matched = validate.size_errors(validate.matched_pairs(gt, pred), io.read_table(sizes_truth), measured)
    matched.insert(0, "image", image)
    io.write_table(matched, scores)


@uses(validate)
def sizes_summary(*, tables: Sequence[str], summary: str, dataset: str) -> None:
    """Rod size errors per image and pooled (``image = ALL``)."""
    _write_summary(validate.size_summary(_concat(tables)), summary, dataset)


# --------------------------------------------------------------------------
# provenance and figures
# --------------------------------------------------------------------------


@uses(provenance_lib)
def provenance(*, images: Sequence[str], ground_truth: Sequence[str], config: str, versions: str,
                      checksums: str, dataset: Mapping[str, Any], software: Mapping[str, str]) -> None:
    """Record what produced a dataset's results: the resolved config (defaults
    filled in), software versions and a SHA-256 of every input file."""
    provenance_lib.dump_yaml(dataset, config)
    provenance_lib.dump_yaml(software, versions)
    io.write_table(provenance_lib.input_checksums({"image": images, "ground_truth": ground_truth}), checksums)


@uses(figures)
def qc(*, image: str, labels: str, ring_labels: str, qc: str, name: str, reading: Mapping[str, Any],
       channel: str | None, figures_settings: Mapping[str, Any], tracks: str | None = None,
       smoothed: str | None = None, mask: str | None = None, frames: str | None = None) -> None:
    """QC images of one image (overlays, montage; for the threshold method the
    threshold histogram and a mask | labels panel): PNGs in the folder ``qc``."""
    img = _read(image, reading)
    lab = io.read_stack(labels)[0]
    with config_key("figures.qc_frames"):
        shown = figures.frames_to_show(lab.shape[0], figures_settings["qc_frames"])
    threshold_inputs = {}
    if smoothed and mask and frames:
        threshold_inputs = {"smoothed": io.read_stack(smoothed)[0], "mask": io.read_stack(mask)[0],
                            "thresholds": io.read_table(frames)["threshold"].to_numpy()}
    with config_key("figures"), io.atomic_dir(qc) as out:
        figures.write_qc(out, raw=img.channel(channel if channel is not None else img.channels[0]),
                         labels=lab, rings=io.read_stack(ring_labels)[0], frames=shown, name=name,
                         pixel_size_um=img.pixel_size_um, figures=figures_settings,
                         tracks=io.read_table(tracks) if tracks else None, **threshold_inputs)


@uses(figures)
def dataset_figures(*, objects: str, images: str, figures_dir: str, dataset: str,
                    figures_settings: Mapping[str, Any], conditions: Mapping[str, str],
                    stimulus_frame: float | None, baseline_frames: Sequence[int] | None,
                    traces: str | None = None) -> None:
    """Figures of a dataset, one file per figure and format (see :func:`snakescope.figures.write_dataset_figures`)."""
    with config_key("figures"), io.atomic_dir(figures_dir) as out:
        figures.write_dataset_figures(out, objects=io.read_table(objects), images=io.read_table(images),
                                      traces=io.read_table(traces) if traces else None, dataset=dataset,
                                      figures=figures_settings, conditions=conditions,
                                      stimulus_frame=stimulus_frame, baseline_frames=baseline_frames)
