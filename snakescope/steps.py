"""File-level steps: what each workflow rule runs.

Each function reads its input files, calls the algorithm functions of the
library, and writes its outputs atomically. They take plain paths and config
sections (dicts), so they can be called from a Snakemake rule, a notebook or a
test alike. None of them imports snakemake.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from . import io, params, segment, validate

log = logging.getLogger("snakescope")


def _read(image: str, reading: Mapping[str, Any]) -> io.Image:
    return io.read_image(
        image,
        axes=reading.get("axes"),
        channels=reading.get("channels"),
        pixel_size_um=reading.get("pixel_size_um"),
        frame_interval_s=reading.get("frame_interval_s"),
    )


def example(*, files: Sequence[str], outdir: str, seed: int) -> None:
    """Generate the embedded synthetic example under ``outdir`` (``files`` are the
    outputs the workflow expects; a mismatch is a bug and fails loudly)."""
    from . import synthetic

    paths = synthetic.write_example(outdir, seed=seed)
    missing = sorted(set(map(str, files)) - set(map(str, paths)))
    if missing:
        raise RuntimeError(f"example generator did not write {missing}")
    log.info("wrote %d example files under %s", len(paths), outdir)


def smooth(*, image: str, smoothed: str, reading: Mapping[str, Any], channel: str | None,
           diameter: float | str, smooth: Mapping[str, Any]) -> None:
    """Read ``image``, take the segmentation channel and smooth every frame.

    Writes a float32 ``TYX`` stack carrying the image's calibration.
    """
    img = _read(image, reading)
    name = channel if channel is not None else img.channels[0]
    stack = img.channel(name)
    kwargs = params.smooth_params(smooth, diameter=diameter, pixel_size_um=img.pixel_size_um)
    log.info("%s: %s, channel %s, %d frames of %s, pixel %s µm, smooth %s",
             image, img.axes, name, stack.shape[0], stack.shape[1:], img.pixel_size_um, kwargs)
    out = np.empty(stack.shape, dtype=np.float32)
    for t in range(stack.shape[0]):
        out[t] = segment.smooth(stack[t], **kwargs)
    io.write_stack(smoothed, out, axes="TYX", pixel_size_um=img.pixel_size_um,
                   frame_interval_s=img.frame_interval_s)


def threshold(*, smoothed: str, mask: str, table: str, image: str, diameter: float | str,
              threshold: Mapping[str, Any]) -> None:
    """Threshold the smoothed stack; write the mask and a table of the values used."""
    stack, md = io.read_stack(smoothed)
    kwargs = params.threshold_params(threshold, diameter=diameter, pixel_size_um=md.pixel_size_um)
    masks, values = segment.threshold_stack(stack, **kwargs)
    log.info("%s: thresholds %s", image, ["%.4g" % v for v in values])
    io.write_stack(mask, masks.astype(np.uint8), axes="TYX", pixel_size_um=md.pixel_size_um,
                   frame_interval_s=md.frame_interval_s)
    io.write_table(pd.DataFrame({
        "image": image, "frame": np.arange(len(values)), "method": kwargs["method"],
        "scope": kwargs["scope"], "threshold": values,
        "foreground_fraction": masks.reshape(len(values), -1).mean(axis=1),
    }), table)


def refine(*, mask: str, refined: str, diameter: float | str, refine: Mapping[str, Any]) -> None:
    """Clean the mask of every frame (hole filling, opening/closing, specks)."""
    stack, md = io.read_stack(mask)
    kwargs = params.refine_params(refine, diameter=diameter, pixel_size_um=md.pixel_size_um)
    out = np.empty(stack.shape, dtype=np.uint8)
    for t in range(stack.shape[0]):
        out[t] = segment.refine(stack[t].astype(bool), **kwargs)
    io.write_stack(refined, out, axes="TYX", pixel_size_um=md.pixel_size_um,
                   frame_interval_s=md.frame_interval_s)


def label(*, mask: str, smoothed: str, labels: str, diameter: float | str,
          split: Mapping[str, Any], refine: Mapping[str, Any]) -> None:
    """Split the refined mask into labelled objects, frame by frame.

    Writes uint16 labels (uint32 when a frame has more than 65535 objects).
    """
    masks, md = io.read_stack(mask)
    kwargs = params.split_params(split, refine, diameter=diameter, pixel_size_um=md.pixel_size_um)
    intensity = None
    if kwargs["method"] == "intensity":
        intensity, _ = io.read_stack(smoothed)
    frames = [
        segment.label_frame(masks[t].astype(bool), intensity=None if intensity is None else intensity[t], **kwargs)
        for t in range(masks.shape[0])
    ]
    top = max((int(f.max()) for f in frames), default=0)
    out = np.stack(frames).astype(io.label_dtype(top)) if frames else np.zeros(masks.shape, np.uint16)
    log.info("labels: %s objects per frame", [int(f.max()) for f in frames])
    io.write_stack(labels, out, axes="TYX", pixel_size_um=md.pixel_size_um,
                   frame_interval_s=md.frame_interval_s)


def validate_segmentation(*, labels: str, truth: str, scores: str, image: str) -> None:
    """Score the labels of one image against its ground truth, per frame."""
    pred, _ = io.read_stack(labels)
    try:
        gt, _ = io.read_stack(truth)
    except io.InputError as exc:
        raise io.InputError(f"{exc} (ground truth of image {image}: fix the dataset's ground_truth pattern)") from exc
    if gt.shape != pred.shape:
        raise io.InputError(
            f"{truth}: ground truth has shape {gt.shape} (TYX) but the labels have {pred.shape}; "
            "give one label image per image with the same frames and Y/X size"
        )
    tables = []
    for t in range(pred.shape[0]):
        s = validate.scores(gt[t], pred[t])
        s.insert(0, "frame", t)
        tables.append(s)
    table = pd.concat(tables, ignore_index=True)
    table.insert(0, "image", image)
    io.write_table(table, scores)


def summarise_validation(*, tables: Sequence[str], summary: str, dataset: str) -> None:
    """Pool per-image validation tables: one row per image and IoU threshold,
    plus ``image = "ALL"`` rows pooled over the dataset."""
    per_frame = pd.concat([io.read_table(p) for p in tables], ignore_index=True)
    rows = []
    for name, g in per_frame.groupby("image", sort=True):
        pooled = validate.pool_scores(g)
        pooled.insert(0, "image", name)
        pooled.insert(1, "n_frames", g["frame"].nunique())
        rows.append(pooled)
    total = validate.pool_scores(per_frame)
    total.insert(0, "image", "ALL")
    total.insert(1, "n_frames", int(per_frame.groupby("image")["frame"].nunique().sum()))
    rows.append(total)
    table = pd.concat(rows, ignore_index=True)
    table.insert(0, "dataset", dataset)
    io.write_table(table, summary)
    at50 = total[np.isclose(total["iou_threshold"], 0.5)].iloc[0]
    log.info("%s: F1@0.5 = %.3f (precision %.3f, recall %.3f)", dataset, at50.f1, at50.precision, at50.recall)


def module_path(name: str) -> Path:
    """Path of a snakescope module's source file (for code-change rerun triggers)."""
    return Path(__file__).with_name(f"{name}.py")
