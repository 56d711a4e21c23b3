"""File-level steps: what each workflow rule runs.

Each function reads its input files, calls the algorithm functions of the
library, and writes its outputs atomically. They take plain paths and config
sections (dicts), so they can be called from a Snakemake rule, a notebook or a
test alike. None of them imports snakemake.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator, Mapping, Sequence

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
    d_px = params.diameter_px(diameter, pixel_size_um=img.pixel_size_um)
    if min(stack.shape[1:]) < d_px:
        raise io.InputError(
            f"{image}: image is {stack.shape[2]}x{stack.shape[1]} px, smaller than one object "
            f"(segment.diameter = {d_px:.3g} px); check the file, its 'axes' or segment.diameter"
        )
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


def label(*, labels: str, frames: str, name: str, method: str, diameter: float | str,
          split: Mapping[str, Any], refine: Mapping[str, Any], log_edges: Mapping[str, Any],
          model: str | None, reading: Mapping[str, Any], channel: str | None,
          mask: str | None = None, smoothed: str | None = None, thresholds: str | None = None,
          image: str | None = None, external: str | None = None) -> None:
    """Label the objects of every frame with the dataset's segmentation method.

    ``threshold``: split the refined mask (distance or intensity watershed) and
    filter by size; ``log_edges``: LoG-edge segmentation of rods; ``labels``:
    label images made elsewhere, checked and renumbered 1..N per frame;
    ``stardist`` / ``cellpose``: those packages with a local model.
    Writes uint16 labels (uint32 above 65535 objects) and a per-frame table
    ``image, frame, n_objects, threshold``.
    """
    if method == "threshold":
        masks, md = io.read_stack(mask)
        kwargs = params.split_params(split, refine, diameter=diameter, pixel_size_um=md.pixel_size_um)
        intensity = io.read_stack(smoothed)[0] if kwargs["method"] == "intensity" else None
        out_frames = [
            segment.label_frame(masks[t].astype(bool), intensity=None if intensity is None else intensity[t], **kwargs)
            for t in range(masks.shape[0])
        ]
        pixel, interval = md.pixel_size_um, md.frame_interval_s
        threshold_values = io.read_table(thresholds)["threshold"].to_numpy()
    else:
        img = _read(image, reading)
        pixel, interval = img.pixel_size_um, img.frame_interval_s
        stack = img.channel(channel if channel is not None else img.channels[0])
        threshold_values = np.full(stack.shape[0], np.nan)
        if method == "log_edges":
            out_frames = _log_edges(stack, diameter=diameter, log_edges=log_edges, pixel_size_um=pixel)
        elif method == "labels":
            out_frames = _external_labels(external, stack.shape)
        else:
            out_frames = _model_labels(method, model, stack)
    top = max((int(f.max()) for f in out_frames), default=0)
    out = np.stack(out_frames).astype(io.label_dtype(top))
    counts = [len(np.unique(f)) - 1 if f.any() else 0 for f in out_frames]
    log.info("%s (%s): %s objects per frame", name, method, counts)
    io.write_stack(labels, out, axes="TYX", pixel_size_um=pixel, frame_interval_s=interval)
    io.write_table(pd.DataFrame({"image": name, "frame": np.arange(len(counts)), "n_objects": counts,
                                 "threshold": threshold_values}), frames)


def _log_edges(stack: np.ndarray, *, diameter: float | str, log_edges: Mapping[str, Any],
               pixel_size_um: float | None) -> list[np.ndarray]:
    from . import rods

    width = params.diameter_px(diameter, pixel_size_um=pixel_size_um)
    kwargs = rods.log_edges_defaults(width)
    for key, name in (("sigma", "sigma_px"), ("mask_dilation", "mask_dilation_px"), ("seed_erosion", "seed_erosion_px")):
        value = params.to_px(log_edges[key], pixel_size_um=pixel_size_um, key=f"segment.log_edges.{key}")
        if value is not None:
            kwargs[name] = value
    kwargs["invert"] = bool(log_edges["invert"])
    return [rods.log_edges_segment(frame, **kwargs) for frame in stack]


def _external_labels(path: str, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Label images made elsewhere: checked against the image and renumbered 1..N per frame."""
    data, _ = io.read_stack(path)
    if data.dtype.kind not in "iu":
        raise io.InputError(f"{path}: labels must be integers, got {data.dtype}; export the label image as 8/16/32-bit integers")
    if data.shape != shape:
        raise io.InputError(
            f"{path}: labels have shape {data.shape} (TYX) but the image has {shape}; give one label image per "
            "image with the same frames and Y/X size (segment.labels)"
        )
    if data.dtype.kind == "i" and data.min() < 0:
        raise io.InputError(f"{path}: labels contain negative ids; 0 must be background and objects positive")
    return [segment.filter_objects(frame) for frame in data]


def _model_labels(method: str, model: str | None, stack: np.ndarray) -> list[np.ndarray]:
    """StarDist or Cellpose with a local model (never downloaded)."""
    import importlib.util

    package = {"stardist": "stardist", "cellpose": "cellpose"}[method]
    if importlib.util.find_spec(package) is None:
        raise io.InputError(
            f"config key segment.method: '{method}' needs the package {package}, which is not installed; "
            f"pip install {package} in the workflow's environment, or use method threshold"
        )
    if not model or not os.path.exists(model):
        raise io.InputError(
            f"config key segment.model: {model!r} not found; give the path of a local {method} model "
            "(nothing is downloaded at run time)"
        )
    if method == "stardist":  # pragma: no cover - optional dependency
        from csbdeep.utils import normalize
        from stardist.models import StarDist2D

        net = StarDist2D(None, name=os.path.basename(model.rstrip("/")), basedir=os.path.dirname(model.rstrip("/")))
        return [net.predict_instances(normalize(frame, 1, 99.8))[0].astype(np.int32) for frame in stack]
    from cellpose import models  # pragma: no cover - optional dependency

    net = models.CellposeModel(pretrained_model=model, gpu=False)
    return [np.asarray(net.eval(frame)[0], dtype=np.int32) for frame in stack]


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


def _labels_for(image: io.Image, labels_path: str) -> np.ndarray:
    labels, _ = io.read_stack(labels_path)
    if labels.shape != (image.data.shape[0],) + image.data.shape[2:]:
        raise io.InputError(
            f"{labels_path}: labels have shape {labels.shape} (TYX) but {image.path} has "
            f"{image.data.shape[0]} frames of {image.data.shape[2:]}; delete the stale results and rerun"
        )
    return labels


def _saturation(image: io.Image, saturation: float | None) -> float | None:
    if saturation is not None:
        return float(saturation)
    if image.data.dtype.kind in "ui":
        return float(np.iinfo(image.data.dtype).max)
    return None


def _frame_columns(table: pd.DataFrame, *, image: str, frame: int, interval: float | None) -> pd.DataFrame:
    table.insert(0, "image", image)
    table.insert(1, "frame", frame)
    table.insert(2, "time_s", frame * interval if interval else np.nan)
    return table


def measure(*, image: str, labels: str, measurements: str, name: str, reading: Mapping[str, Any],
            saturation: float | None, method: str = "threshold") -> None:
    """Shape (px and µm) and per-channel intensity of every object in every frame;
    for rods (method ``log_edges``) also pole-to-pole length and width."""
    from . import measure as m

    img = _read(image, reading)
    lab = _labels_for(img, labels)
    sat = _saturation(img, saturation)
    tables = []
    for t in range(lab.shape[0]):
        channels = {ch: img.data[t, c] for c, ch in enumerate(img.channels)}
        table = m.measure_objects(lab[t], channels, pixel_size_um=img.pixel_size_um, saturation_value=sat)
        if method == "log_edges":
            from . import rods

            table = table.merge(rods.rod_dimensions(lab[t], pixel_size_um=img.pixel_size_um), on="label", how="left")
        tables.append(_frame_columns(table, image=name, frame=t, interval=img.frame_interval_s))
    out = pd.concat(tables, ignore_index=True)
    log.info("%s: %d objects in %d frames; saturation at %s", name, len(out), lab.shape[0], sat)
    io.write_table(out, measurements)


def reporter_channels(channels: Sequence[str], segment_channel: str | None, reporters: Sequence[str] | None,
                      *, path: str = "") -> list[str]:
    """The channels whose C/N is computed: ``reporters`` or all but the segmentation channel."""
    seg = segment_channel if segment_channel is not None else channels[0]
    if reporters is None:
        return [c for c in channels if c != seg]
    for r in reporters:
        if r not in channels:
            raise io.InputError(
                f"config key rings.reporters: channel '{r}' is not one of the image's channels {list(channels)}"
                + (f" ({path})" if path else "") + "; fix rings.reporters or the dataset's channels"
            )
    return list(reporters)


def rings(*, image: str, labels: str, ring_labels: str, ring_table: str, name: str,
          reading: Mapping[str, Any], channel: str | None, diameter: float | str,
          rings: Mapping[str, Any]) -> None:
    """Cytoplasmic rings around every nucleus and cytoplasm/nucleus ratios per frame.

    Writes the ring label stack (same ids as the nuclei) and a table with ring
    statistics, background levels and ``cn_<reporter>`` per object and frame.
    """
    from scipy import ndimage as ndi

    from . import rings as r
    from . import segment as seg

    img = _read(image, reading)
    lab = _labels_for(img, labels)
    reporters = reporter_channels(img.channels, channel, rings["reporters"], path=image)
    ring_kwargs = params.ring_params(rings, diameter=diameter, pixel_size_um=img.pixel_size_um)
    erosion_px = params.to_px(rings["nucleus_erosion"], pixel_size_um=img.pixel_size_um, key="rings.nucleus_erosion")
    backgrounds = {
        ch: params.background_params(
            rings["background_per_channel"].get(ch, rings["background"]), diameter=diameter,
            pixel_size_um=img.pixel_size_um,
            prefix=f"rings.background_per_channel.{ch}" if ch in rings["background_per_channel"] else "rings.background")
        for ch in img.channels
    }
    unknown = sorted(set(rings["background_per_channel"]) - set(img.channels))
    if unknown:
        raise io.InputError(
            f"config key rings.background_per_channel: channel(s) {unknown} not in the image's channels "
            f"{img.channels}; fix the names"
        )
    mask_cfg = rings["mask"]
    if mask_cfg["channel"] is not None:
        io.channel_index(img.channels, mask_cfg["channel"], path=image)
    log.info("%s: reporters %s, ring %s, statistic %s", name, reporters, ring_kwargs, rings["statistic"])
    ring_stack = np.zeros_like(lab)
    tables = []
    for t in range(lab.shape[0]):
        nuclei = lab[t]
        distance = None
        corrected, levels = {}, {}
        for c, ch in enumerate(img.channels):
            bg = dict(backgrounds[ch])
            exclude_px = bg.pop("exclude_distance_px")
            exclude = None
            if bg["method"] == "percentile":
                if distance is None:
                    distance = ndi.distance_transform_edt(nuclei == 0) if nuclei.any() else np.full(nuclei.shape, np.inf)
                exclude = distance < max(exclude_px, 1.0)
                if exclude.all():
                    exclude = nuclei > 0  # cells fill the field: use all pixels outside nuclei
            corrected[ch], levels[ch] = r.subtract_background(img.data[t, c], exclude=exclude, **bg)
        allowed = None
        if mask_cfg["channel"] is not None:
            allowed, _ = seg.threshold(corrected[mask_cfg["channel"]], method=mask_cfg["method"],
                                       value=mask_cfg["value"], correction=mask_cfg["correction"])
        ring_stack[t] = r.ring_labels(nuclei, allowed=allowed, **ring_kwargs)
        core, ring = nuclei, ring_stack[t]
        if erosion_px:
            core = r.erode_labels(nuclei, radius_px=erosion_px)
            kept = np.zeros(int(nuclei.max()) + 1, dtype=bool)
            kept[np.unique(core)] = True
            ring = np.where(kept[ring], ring, 0)
        table = r.ring_stats(core, ring, corrected, reporters=reporters,
                             statistic=rings["statistic"], min_ring_px=rings["min_ring_px"])
        if erosion_px:  # nuclei eroded away entirely: keep their rows with a reason
            table = _restore_vanished(table, nuclei, reporters)
        for ch in img.channels:
            table[f"{ch}_background"] = levels[ch]
        tables.append(_frame_columns(table, image=name, frame=t, interval=img.frame_interval_s))
    out = pd.concat(tables, ignore_index=True)
    io.write_stack(ring_labels, ring_stack, axes="TYX", pixel_size_um=img.pixel_size_um,
                   frame_interval_s=img.frame_interval_s)
    io.write_table(out, ring_table)


def _restore_vanished(table: pd.DataFrame, nuclei: np.ndarray, reporters: Sequence[str]) -> pd.DataFrame:
    """Add rows for nuclei that erosion removed (C/N NaN, reason nucleus_too_small)."""
    present = np.unique(nuclei[nuclei > 0])
    missing = np.setdiff1d(present, table["label"].to_numpy())
    if not missing.size:
        return table
    extra = pd.DataFrame({"label": missing})
    extra["cn_reason"] = "nucleus_too_small"
    out = pd.concat([table, extra], ignore_index=True).sort_values("label", kind="stable")
    out["ring_area_px"] = out["ring_area_px"].fillna(0).astype(int)
    return out.reset_index(drop=True)


def object_tables(*, measurements: Sequence[str], rings: Sequence[str], frames: Sequence[str],
                  objects: str, images: str, dataset: str) -> None:
    """Join measurements and rings of every image into the dataset's tidy tables.

    ``objects``: one row per object per frame (measurements + ring columns).
    ``images``: one row per image and frame: object count, threshold, mean area,
    mean and median C/N of every reporter.
    """
    keys = ["image", "frame", "time_s", "label"]
    parts = []
    for m_path, r_path in zip(measurements, rings):
        m, r = io.read_table(m_path), io.read_table(r_path)
        if len(m) == 0:
            parts.append(m)
            continue
        parts.append(m.merge(r, on=keys, how="left", validate="one_to_one"))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if "cn_reason" in table:
        table["cn_reason"] = table["cn_reason"].fillna("")
    table.insert(0, "dataset", dataset)
    table = table.sort_values(["image", "frame", "label"], kind="stable")
    io.write_table(table, objects)

    per_frame_rows = pd.concat([io.read_table(p) for p in frames], ignore_index=True)[["image", "frame", "threshold"]]
    cn_cols = [c for c in table.columns if c.startswith("cn_") and c != "cn_reason"]
    agg = {"n_objects": ("label", "size"), "mean_area_px": ("area_px", "mean"), "mean_area_um2": ("area_um2", "mean")}
    for c in cn_cols:
        agg[f"mean_{c}"] = (c, "mean")
        agg[f"median_{c}"] = (c, "median")
    per_frame = table.groupby(["image", "frame"], sort=True).agg(**agg).reset_index() if len(table) else \
        pd.DataFrame(columns=["image", "frame", *agg])
    summary = per_frame_rows.merge(per_frame, on=["image", "frame"], how="left")
    summary["n_objects"] = summary["n_objects"].fillna(0).astype(int)
    summary.insert(0, "dataset", dataset)
    io.write_table(summary.sort_values(["image", "frame"], kind="stable"), images)


def validate_cn(*, labels: str, truth: str, ring_table: str, cn_truth: str, scores: str, image: str,
                column: str, reporter: str | None, reporters: Sequence[str] | None = None) -> None:
    """Compare the C/N of each detected nucleus with the ground truth of its
    matched (IoU ≥ 0.5, one-to-one) true nucleus. Writes one row per matched object."""
    pred, _ = io.read_stack(labels)
    gt, _ = io.read_stack(truth)
    rings_t = io.read_table(ring_table)
    true_cn = io.read_table(cn_truth)
    cn_cols = [c for c in rings_t.columns if c.startswith("cn_") and c != "cn_reason"]
    if not cn_cols:
        raise io.InputError(f"{ring_table}: no cn_ columns; set rings.reporters")
    col = f"cn_{reporter}" if reporter else cn_cols[0]
    if col not in rings_t.columns:
        raise io.InputError(f"config key ground_truth_cn.reporter: {reporter!r} has no C/N column (have {cn_cols})")
    for needed in ("frame", "label", column):
        if needed not in true_cn.columns:
            raise io.InputError(f"{cn_truth}: no column '{needed}'; fix ground_truth_cn.column or the table")
    rows = []
    for t in range(pred.shape[0]):
        matches = validate.match(gt[t], pred[t])
        matches = matches[matches["iou"] >= 0.5]
        matches.insert(0, "frame", t)
        rows.append(matches)
    matched = pd.concat(rows, ignore_index=True)
    matched = matched.merge(true_cn[["frame", "label", column]].rename(columns={"label": "true_label", column: "cn_true"}),
                            on=["frame", "true_label"], how="left")
    matched = matched.merge(rings_t[["frame", "label", col]].rename(columns={"label": "pred_label", col: "cn_measured"}),
                            on=["frame", "pred_label"], how="left")
    matched["rel_error"] = (matched["cn_measured"] - matched["cn_true"]) / matched["cn_true"]
    matched.insert(0, "image", image)
    matched.insert(1, "reporter", col[3:])
    io.write_table(matched, scores)


def summarise_cn(*, tables: Sequence[str], summary: str, dataset: str) -> None:
    """Median absolute relative error and correlation of C/N, per image and pooled."""
    matched = pd.concat([io.read_table(p) for p in tables], ignore_index=True)
    rows = []
    for name, g in list(matched.groupby("image", sort=True)) + [("ALL", matched)]:
        ok = g.dropna(subset=["cn_true", "cn_measured"])
        rows.append({
            "dataset": dataset, "image": name, "reporter": g["reporter"].iloc[0] if len(g) else "",
            "n_matched": len(g), "n_valid": len(ok),
            "median_abs_rel_error": float(ok["rel_error"].abs().median()) if len(ok) else np.nan,
            "mean_rel_error": float(ok["rel_error"].mean()) if len(ok) else np.nan,
            "p90_abs_rel_error": float(ok["rel_error"].abs().quantile(0.9)) if len(ok) else np.nan,
            "pearson_r": float(np.corrcoef(ok["cn_true"], ok["cn_measured"])[0, 1]) if len(ok) > 2 else np.nan,
        })
    table = pd.DataFrame(rows)
    io.write_table(table, summary)
    log.info("%s: C/N median |rel error| %.4f, r = %.4f", dataset, table.iloc[-1].median_abs_rel_error,
             table.iloc[-1].pearson_r)


def provenance(*, images: Sequence[str], ground_truth: Sequence[str], config: str, versions: str,
               checksums: str, dataset: Mapping[str, Any], software: Mapping[str, str]) -> None:
    """Record what produced a dataset's results: the resolved config (defaults
    filled in), software versions and a SHA-256 of every input file."""
    import hashlib

    import yaml

    def sha256(path: str) -> str:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    with io.atomic_path(config) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            yaml.safe_dump(dict(dataset), fh, sort_keys=True, allow_unicode=True)
    with io.atomic_path(versions) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            yaml.safe_dump(dict(software), fh, sort_keys=True)
    rows = [(kind, p, os.path.getsize(p), sha256(p)) for kind, paths in (("image", images), ("ground_truth", ground_truth))
            for p in sorted(paths)]
    io.write_table(pd.DataFrame(rows, columns=["kind", "path", "bytes", "sha256"]), checksums)


def _frames_to_show(n_frames: int, wanted: Sequence[int | str]) -> list[int]:
    named = {"first": 0, "middle": (n_frames - 1) // 2, "last": n_frames - 1}
    out = []
    for w in wanted:
        t = named[w] if isinstance(w, str) else int(w)
        if not 0 <= t < n_frames:
            raise io.InputError(f"config key figures.qc_frames: frame {t} does not exist ({n_frames} frames)")
        if t not in out:
            out.append(t)
    return out


@contextlib.contextmanager
def _style_with(figures: Mapping[str, Any]) -> Iterator[str]:
    """The configured style file with the configured figure size and dpi in place
    of its own, as a temporary file (the figures depend only on the config)."""
    import tempfile

    style = figures["style"]
    if not os.path.exists(style):
        raise io.InputError(f"config key figures.style: style file {style} not found")
    extra = [f"savefig.dpi: {figures['dpi']}"]
    if figures["size_in"]:
        extra.append(f"figure.figsize: {figures['size_in'][0]}, {figures['size_in'][1]}")
    overridden = {line.split(":")[0] for line in extra}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "style.mplstyle")
        with open(style, encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
            kept = [line for line in src.read().splitlines() if line.split(":")[0].strip() not in overridden]
            dst.write("\n".join(kept + extra) + "\n")
        yield path


def qc_figures(*, image: str, labels: str, ring_labels: str, qc: str, name: str, reading: Mapping[str, Any], channel: str | None,
               figures: Mapping[str, Any], tracks: str | None = None, smoothed: str | None = None,
               mask: str | None = None, frames: str | None = None) -> None:
    """QC images of one image: overlays of the chosen frames (contours of nuclei
    and rings, object or track ids), a montage, and for the threshold method the
    threshold histogram and a mask | labels panel. PNGs in the folder ``qc``."""
    from . import plots

    img = _read(image, reading)
    seg_channel = channel if channel is not None else img.channels[0]
    raw = img.channel(seg_channel)
    lab, _ = io.read_stack(labels)
    rings_stack, _ = io.read_stack(ring_labels)
    track_table = io.read_table(tracks) if tracks else None
    shown = _frames_to_show(lab.shape[0], figures["qc_frames"])
    with _style_with(figures) as style, io.atomic_dir(qc) as out:
        panels = []
        for t in shown:
            ids: bool | dict = bool(figures["qc_ids"])
            what = "ids"
            if ids and track_table is not None and len(track_table):
                rows = track_table[track_table["frame"] == t]
                ids = dict(zip(rows["label"].astype(int), rows["track_id"].astype(int)))
                what = "track ids"
            title = f"{name}, frame {t}" + (f" ({what})" if figures["qc_ids"] else "")
            fig = plots.qc_overlay(raw[t], lab[t], rings2d=rings_stack[t], ids=ids, title=title,
                                   pixel_size_um=img.pixel_size_um, style=style)
            plots.save_figure(fig, os.path.join(out, f"overlay_t{t:03d}.png"), dpi=figures["dpi"], style=style)
            panels.append((raw[t], lab[t], rings_stack[t], f"frame {t}"))
        fig = plots.qc_montage(panels, title=name, pixel_size_um=img.pixel_size_um, style=style)
        plots.save_figure(fig, os.path.join(out, "montage.png"), dpi=figures["dpi"], style=style)
        if smoothed and mask and frames:
            smooth_stack, _ = io.read_stack(smoothed)
            mask_stack, _ = io.read_stack(mask)
            thr = io.read_table(frames)["threshold"].to_numpy()
            fig = plots.threshold_histogram(smooth_stack, list(thr) if len(thr) > 1 else float(thr[0]),
                                            log_counts=figures["log_counts"], title=f"{name}: threshold", style=style)
            plots.save_figure(fig, os.path.join(out, "histogram.png"), dpi=figures["dpi"], style=style)
            t = shown[0]
            fig = plots.mask_labels_panel(raw[t], mask_stack[t], lab[t], title=f"{name}, frame {t}", style=style)
            plots.save_figure(fig, os.path.join(out, f"mask_labels_t{t:03d}.png"), dpi=figures["dpi"], style=style)


def dataset_figures(*, objects: str, images: str, figures_dir: str, dataset: str,
                    figures: Mapping[str, Any], conditions: Mapping[str, str],
                    stimulus_frame: float | None, baseline_frames: Sequence[int] | None,
                    traces: str | None = None) -> None:
    """Figures of a dataset: counts per frame, area and C/N distributions; with
    traces C/N and dC/N traces (median and 95 % band) and a heatmap sorted by
    response; for stills per-image summaries. One file per figure and format."""
    from . import plots

    obj = io.read_table(objects)
    img = io.read_table(images)
    tr = io.read_table(traces) if traces else None
    groups = dict(conditions) or None
    reporters = [c[3:] for c in obj.columns if c.startswith("cn_") and c != "cn_reason"]
    baseline = tuple(baseline_frames) if baseline_frames else None
    with _style_with(figures) as style, io.atomic_dir(figures_dir) as out:

        def save(fig, stem: str) -> None:
            for fmt in figures["formats"]:
                plots.save_figure(fig, os.path.join(out, f"{stem}.{fmt}"), dpi=figures["dpi"], style=style)

        save(plots.count_per_frame(img, groups=groups, title=f"{dataset}: objects", style=style), "counts")
        save(plots.area_distribution(obj, groups=groups, title=f"{dataset}: object area", style=style), "area")
        for column, what in (("length_um", "rod length"), ("width_um", "rod width")):
            if column in obj and obj[column].notna().any():
                save(plots.area_distribution(obj, column=column, groups=groups, title=f"{dataset}: {what}",
                                             style=style), f"{what.replace(' ', '_')}")
        for r in reporters:
            save(plots.cn_distribution(obj, reporter=r, groups=groups, title=f"{dataset}: C/N {r}", style=style),
                 f"cn_distribution_{r}")
            if tr is not None and len(tr):
                kw = dict(reporter=r, stimulus_frame=stimulus_frame, baseline_frames=baseline, groups=groups,
                          style=style)
                save(plots.cn_traces(tr, band=figures["band"], max_cells=figures["max_cells"],
                                     title=f"{dataset}: C/N {r}", **kw), f"cn_traces_{r}")
                if f"dcn_{r}" in tr:
                    save(plots.dcn_traces(tr, band=figures["band"], max_cells=figures["max_cells"],
                                          title=f"{dataset}: ΔC/N {r}", **kw), f"dcn_traces_{r}")
                save(plots.cn_heatmap(tr, cmap=figures["cmap"], title=f"{dataset}: C/N {r}", **kw),
                     f"heatmap_{r}")
            else:
                save(plots.still_summary(obj, reporter=r, groups=groups, title=f"{dataset}: C/N {r} per image",
                                         style=style), f"summary_{r}")


def track(*, labels: str, measurements: str, tracks: str, track_labels: str, name: str,
          diameter: float | str, track: Mapping[str, Any]) -> None:
    """Link the objects of a time-lapse into tracks (LAP tracker).

    Writes the track table (``frame, label, track_id, parent_track_id, x, y``)
    and the label stack relabelled so each value is the object's track id in
    every frame (0 for dropped objects): consistent with the table by construction.
    """
    from . import track as tr

    lab, md = io.read_stack(labels)
    objects = io.read_table(measurements)
    kwargs = params.track_params(track, diameter=diameter, pixel_size_um=md.pixel_size_um)
    missing = [c for c in (kwargs["feature_weights"] or {}) if c not in objects.columns]
    if missing:
        raise io.InputError(
            f"config key track.features: column(s) {missing} not in the measurements; use columns such as "
            f"area_px or <channel>_mean (see config/README.md)"
        )
    if lab.shape[0] < 2:
        log.info("%s: a single frame: every object is its own track", name)
    if len(objects) == 0:
        table = pd.DataFrame(columns=["frame", "label", "track_id", "parent_track_id", "x", "y"])
    else:
        table = tr.track_objects(objects, **kwargs)
    relabelled = tr.relabel_stack(lab, table) if len(table) else np.zeros_like(lab)
    n_tracks = int(table["track_id"].max()) if len(table) else 0
    log.info("%s: %d tracks (%s)", name, n_tracks, kwargs)
    io.write_table(table, tracks)
    io.write_stack(track_labels, relabelled, axes="TYX", pixel_size_um=md.pixel_size_um,
                   frame_interval_s=md.frame_interval_s)


def ctc_export(*, track_labels: str, tracks: str, ctc: str) -> None:
    """Cell Tracking Challenge result folder: ``maskTTT.tif`` + ``res_track.txt``."""
    from . import track as tr

    stack, _ = io.read_stack(track_labels)
    table = io.read_table(tracks)
    with io.atomic_dir(ctc) as out:
        tr.write_ctc(out, stack, table)


def validate_tracking(*, ctc: str, truth: str, truth_tracks: str, scores: str, image: str) -> None:
    """CTC tracking measures (TRA, DET, ...) of one image against its ground truth."""
    import tempfile

    from . import track as tr

    gt, _ = io.read_stack(truth)
    try:
        man = pd.read_csv(truth_tracks, sep=r"\s+", header=None, names=["L", "B", "E", "P"])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise io.InputError(f"{truth_tracks}: not a CTC man_track.txt (L B E P per line): {exc}") from exc
    with tempfile.TemporaryDirectory() as tmp:
        tr.write_ctc_ground_truth(tmp, gt, man)
        metrics = tr.tracking_metrics(tmp, ctc)
    table = pd.DataFrame([{"image": image, **{k: float(v) for k, v in sorted(metrics.items())}}])
    io.write_table(table, scores)
    log.info("%s: %s", image, metrics)


def summarise_tracking(*, tables: Sequence[str], summary: str, dataset: str) -> None:
    """One row per image plus the mean over images (``image = MEAN``)."""
    table = pd.concat([io.read_table(p) for p in tables], ignore_index=True)
    mean = table.drop(columns=["image"]).mean(numeric_only=True).to_frame().T
    mean.insert(0, "image", "MEAN")
    out = pd.concat([table, mean], ignore_index=True)
    out.insert(0, "dataset", dataset)
    io.write_table(out, summary)


def traces(*, objects: str, tracks: Sequence[str], traces_table: str, images: Sequence[str],
           traces: Mapping[str, Any]) -> None:
    """Per-cell traces of every tracked image: one row per tracked cell per frame."""
    from . import traces as trc

    obj = io.read_table(objects)
    reporters = [c[3:] for c in obj.columns if c.startswith("cn_") and c != "cn_reason"]
    baseline = tuple(traces["baseline_frames"]) if traces["baseline_frames"] else None
    parts = []
    for name, path in zip(images, tracks):
        o = obj[obj["image"] == name]
        t = io.read_table(path)
        if len(o) == 0 or len(t) == 0:
            continue
        later = o[o["frame"] > 0]
        interval = float(later["time_s"].iloc[0] / later["frame"].iloc[0]) if len(later) and \
            later["time_s"].notna().any() else None
        part = trc.build_traces(o, t, reporters=reporters, frame_interval_s=interval,
                                complete_only=traces["complete_only"], min_length=traces["min_length"],
                                baseline_frames=baseline)
        part.insert(0, "image", name)
        parts.append(part)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["image", "track_id", "parent_track_id", "frame", "time_s", "x", "y"])
    io.write_table(table, traces_table)


def validate_sizes(*, labels: str, truth: str, measurements: str, sizes_truth: str, scores: str, image: str) -> None:
    """Rod length and width of each detected object against the ground truth of
    its matched (IoU >= 0.5) true object."""
    pred, _ = io.read_stack(labels)
    gt, _ = io.read_stack(truth)
    meas = io.read_table(measurements)
    true = io.read_table(sizes_truth)
    for col in ("label", "length_um", "width_um"):
        if col not in true.columns:
            raise io.InputError(f"{sizes_truth}: no column '{col}'; give label, length_um, width_um")
        if col not in meas.columns:
            raise io.InputError(f"{measurements}: no column '{col}'; sizes are measured for segment.method log_edges")
    if "frame" not in true.columns:
        true = true.assign(frame=0)
    rows = []
    for t in range(pred.shape[0]):
        m = validate.match(gt[t], pred[t])
        m = m[m["iou"] >= 0.5].copy()
        m.insert(0, "frame", t)
        rows.append(m)
    matched = pd.concat(rows, ignore_index=True)
    matched = matched.merge(true[["frame", "label", "length_um", "width_um"]].rename(
        columns={"label": "true_label", "length_um": "length_true", "width_um": "width_true"}), on=["frame", "true_label"])
    matched = matched.merge(meas[["frame", "label", "length_um", "width_um"]].rename(
        columns={"label": "pred_label"}), on=["frame", "pred_label"])
    matched["length_rel_error"] = matched["length_um"] / matched["length_true"] - 1
    matched["width_rel_error"] = matched["width_um"] / matched["width_true"] - 1
    matched.insert(0, "image", image)
    io.write_table(matched, scores)


def summarise_sizes(*, tables: Sequence[str], summary: str, dataset: str) -> None:
    """Median absolute relative error of length and width, per image and pooled."""
    matched = pd.concat([io.read_table(p) for p in tables], ignore_index=True)
    rows = []
    for name, g in list(matched.groupby("image", sort=True)) + [("ALL", matched)]:
        rows.append({"dataset": dataset, "image": name, "n_matched": len(g),
                     "length_median_abs_rel_error": float(g["length_rel_error"].abs().median()),
                     "length_median_rel_error": float(g["length_rel_error"].median()),
                     "width_median_abs_rel_error": float(g["width_rel_error"].abs().median()),
                     "width_median_rel_error": float(g["width_rel_error"].median())})
    io.write_table(pd.DataFrame(rows), summary)
