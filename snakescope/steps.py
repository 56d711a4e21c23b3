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

import functools
import logging
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

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


def _read(image: str | Sequence[str], reading: Mapping[str, Any],
          frames: tuple[int, int] | None = None) -> io.Image:
    """Read the raw image: one file, or one file per frame and channel
    (``reading["grid"]``); with ``frames``, only frames ``first:stop``."""
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
        frames=frames,
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
    io.write_table(_estimated_diameter(img, name=name, channel=channel, invert=invert), estimate)


def _estimated_diameter(img: io.Image, *, name: str, channel: str | None, invert: bool) -> pd.DataFrame:
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
    return pd.DataFrame([row])


def _smoothed(img: io.Image, *, image: str, channel: str | None, diameter: float,
              smooth: Mapping[str, Any]) -> np.ndarray:
    """The smoothed segmentation channel of ``img`` (float32 ``TYX``)."""
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
    return out


@uses(params, segment)
def smooth(*, image: str, smoothed: str, reading: Mapping[str, Any], channel: str | None,
           diameter: float | str, smooth: Mapping[str, Any], diameter_estimate: str | None = None) -> None:
    """Smooth every frame of the segmentation channel; a float32 ``TYX`` stack."""
    diameter = params.resolve_diameter(diameter, diameter_estimate)
    img = _read(image, reading)
    _write_like(smoothed, _smoothed(img, image=image, channel=channel, diameter=diameter, smooth=smooth), img)


def _thresholded(stack: np.ndarray, md, *, image: str, diameter: float,
                 threshold: Mapping[str, Any]) -> tuple[np.ndarray, pd.DataFrame]:
    """Mask stack (uint8) and the table of threshold values of a smoothed stack."""
    kwargs = params.threshold_params(threshold, diameter=diameter, pixel_size_um=md.pixel_size_um)
    with config_key("segment.threshold"):
        masks, values = segment.threshold_stack(stack, **kwargs)
    log.info("%s: thresholds %s", image, ["%.4g" % v for v in values])
    table = pd.DataFrame({
        "image": image, "frame": np.arange(len(values)), "method": kwargs["method"],
        "scope": kwargs["scope"], "threshold": values,
        "foreground_fraction": masks.reshape(len(values), -1).mean(axis=1),
    })
    return masks.astype(np.uint8), table


@uses(params, segment)
def threshold(*, smoothed: str, mask: str, table: str, image: str, diameter: float | str,
              threshold: Mapping[str, Any], diameter_estimate: str | None = None) -> None:
    """Threshold the smoothed stack; write the mask and a table of the values used."""
    diameter = params.resolve_diameter(diameter, diameter_estimate)
    stack, md = io.read_stack(smoothed)
    masks, values = _thresholded(stack, md, image=image, diameter=diameter, threshold=threshold)
    _write_like(mask, masks, md)
    io.write_table(values, table)


def _refined(stack: np.ndarray, md, *, diameter: float, refine: Mapping[str, Any]) -> np.ndarray:
    """The cleaned mask stack (uint8)."""
    kwargs = params.refine_params(refine, diameter=diameter, pixel_size_um=md.pixel_size_um)
    out = np.empty(stack.shape, dtype=np.uint8)
    with config_key("segment.refine"):
        for t in range(stack.shape[0]):
            out[t] = segment.refine(stack[t].astype(bool), **kwargs)
    return out


@uses(params, segment)
def refine(*, mask: str, refined: str, diameter: float | str, refine: Mapping[str, Any], diameter_estimate: str | None = None) -> None:
    """Clean the mask of every frame (hole filling, opening/closing, specks)."""
    diameter = params.resolve_diameter(diameter, diameter_estimate)
    stack, md = io.read_stack(mask)
    _write_like(refined, _refined(stack, md, diameter=diameter, refine=refine), md)


def _split(settings: Mapping[str, Any], masks: np.ndarray, smoothed: np.ndarray | None, md) -> list[np.ndarray]:
    """Split the refined masks of every frame into objects (threshold method)."""
    kwargs = params.split_params(settings["split"], settings["refine"], diameter=settings["diameter"],
                                 pixel_size_um=md.pixel_size_um)
    intensity = smoothed if kwargs["method"] == "intensity" else None
    with config_key("segment.split"):
        return [segment.label_frame(masks[t].astype(bool), intensity=None if intensity is None else intensity[t],
                                    **kwargs) for t in range(masks.shape[0])]


def _label_threshold(settings: Mapping[str, Any], mask: str, smoothed: str, thresholds: str):
    masks, md = io.read_stack(mask)
    needs_intensity = settings["split"]["method"] == "intensity"
    intensity = io.read_stack(smoothed)[0] if needs_intensity else None
    return _split(settings, masks, intensity, md), md, io.read_table(thresholds)["threshold"].to_numpy()


def _label_image(settings: Mapping[str, Any], img: io.Image, external_labels: str | None) -> list[np.ndarray]:
    """Objects of every frame for the methods that read the raw image (not ``threshold``)."""
    method = settings["method"]
    channel = settings.get("channel")
    stack = img.channel(channel if channel is not None else img.channels[0])
    if method == "labels":
        with prefixed(external_labels):
            return external.external_labels(io.read_stack(external_labels)[0], shape=stack.shape)
    if method == "log_edges":
        kwargs = params.log_edges_params(settings["log_edges"], diameter=settings["diameter"],
                                         pixel_size_um=img.pixel_size_um)
        with config_key("segment.log_edges"):
            return [rods.log_edges_segment(frame, **kwargs) for frame in stack]
    with config_key("segment.method"):
        external.require_package(method)
    with config_key("segment.model"):
        return external.model_labels(stack, method=method, model=settings["model"])


def _n_labels(frame: np.ndarray) -> int:
    """Number of distinct non-zero labels of ``frame`` (a count table, not a sort,
    when the ids are small)."""
    top = int(frame.max()) if frame.size else 0
    if top == 0:
        return 0
    if (frame.dtype.kind == "u" or (frame.dtype.kind == "i" and frame.min() >= 0)) and top <= 4 * frame.size:
        return int(np.count_nonzero(np.bincount(frame.ravel())[1:]))
    return len(np.unique(frame)) - (1 if frame.min() <= 0 else 0)


def _labels_and_frames(out_frames: Sequence[np.ndarray], threshold_values: np.ndarray, md, *, name: str,
                       settings: Mapping[str, Any]) -> tuple[np.ndarray, pd.DataFrame]:
    """The label stack (uint16, uint32 above 65535 objects) and the per-frame table."""
    top = max((int(f.max()) for f in out_frames), default=0)
    out = np.stack(out_frames).astype(io.label_dtype(top))
    counts = [_n_labels(f) for f in out_frames]
    log.info("%s (%s): %s objects per frame", name, settings["method"], counts)
    d_px = params.diameter_px(settings["diameter"], pixel_size_um=md.pixel_size_um) if "diameter" in settings \
        and settings["diameter"] is not None else np.nan
    table = pd.DataFrame({"image": name, "frame": np.arange(len(counts)), "n_objects": counts,
                          "threshold": threshold_values, "diameter_px": d_px})
    return out, table


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
    if settings["method"] == "threshold":
        out_frames, md, threshold_values = _label_threshold(settings, mask, smoothed, thresholds)
    else:
        md = _read(image, settings["reading"])
        out_frames = _label_image(settings, md, external_labels)
        threshold_values = np.full(len(out_frames), np.nan)
    out, table = _labels_and_frames(out_frames, threshold_values, md, name=name, settings=settings)
    _write_like(labels, out, md)
    io.write_table(table, frames)


# --------------------------------------------------------------------------
# measurement, rings, tables
# --------------------------------------------------------------------------


def _measured(img: io.Image, lab: np.ndarray, *, name: str, saturation: float | None, rods: bool,
              first_frame: int = 0) -> pd.DataFrame:
    """The measurement table of the objects of ``lab`` in ``img`` (frames numbered from ``first_frame``)."""
    sat = measure_lib.saturation_level(img.data.dtype, saturation)
    table = measure_lib.measure_stack(lab, img.data, img.channels, pixel_size_um=img.pixel_size_um,
                                      saturation_value=sat, rods=rods)
    table["frame"] += first_frame
    out = tables_lib.add_image_columns(table, image=name, frame_interval_s=img.frame_interval_s)
    log.info("%s: %d objects in %d frames; saturation at %s", name, len(out), lab.shape[0], sat)
    return out


@uses(measure_lib, tables_lib)
def measure(*, image: str, labels: str, measurements: str, name: str, reading: Mapping[str, Any],
            saturation: float | None, rods: bool = False) -> None:
    """Shape (px and µm) and per-channel intensity of every object in every frame;
    with ``rods`` also pole-to-pole length and width."""
    img = _read(image, reading)
    lab = _labels_for(img, labels)
    io.write_table(_measured(img, lab, name=name, saturation=saturation, rods=rods), measurements)


def _ringed(img: io.Image, lab: np.ndarray, *, name: str, channel: str | None, diameter: float,
            rings: Mapping[str, Any], first_frame: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """Ring label stack and ring table of the nuclei ``lab`` in ``img`` (frames from ``first_frame``)."""
    with config_key("rings.reporters"):
        reporters = rings_lib.select_reporters(img.channels, segment_channel=channel, reporters=rings["reporters"])
    kwargs = params.rings_params(rings, diameter=diameter, pixel_size_um=img.pixel_size_um, channels=img.channels)
    log.info("%s: reporters %s, rings %s", name, reporters, kwargs)
    with config_key("rings"):
        ring_stack, table = rings_lib.measure_rings(img.data, lab, img.channels, reporters=reporters, **kwargs)
    table["frame"] += first_frame
    return ring_stack, tables_lib.add_image_columns(table, image=name, frame_interval_s=img.frame_interval_s)


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
    ring_stack, table = _ringed(img, lab, name=name, channel=channel, diameter=diameter, rings=rings)
    _write_like(ring_labels, ring_stack, img)
    io.write_table(table, ring_table)


@uses(tables_lib)
def tables(*, objects: str, images: str, dataset: str, metadata: Mapping[str, Mapping[str, str]] | None = None,
           measurements: Sequence[str] = (), rings: Sequence[str] = (), frames: Sequence[str] = (),
           objects_shards: Sequence[str] = (), images_shards: Sequence[str] = (),
           objects_parquet: str | None = None, images_parquet: str | None = None) -> None:
    """The dataset's tidy tables: ``objects`` (one row per object per frame,
    measurements + rings) and ``images`` (one row per image and frame), with
    the images' metadata as ``meta_<name>`` columns; CSV and the same as Parquet.

    From the per-image tables (``measurements``, ``rings``, ``frames``), or in
    batched mode from the batches' Parquet shards, one shard in memory at a time
    (the CSV is the same, byte for byte).
    """
    if objects_shards or images_shards:
        for shards, csv, parquet in ((objects_shards, objects, objects_parquet),
                                     (images_shards, images, images_parquet)):
            _stream_shards(shards, csv, parquet, metadata or {})
        return
    table = tables_lib.object_table([io.read_table(p) for p in measurements], [io.read_table(p) for p in rings],
                                    dataset=dataset)
    per_frame = _concat(frames)
    summary = tables_lib.image_table(table, per_frame, dataset=dataset)
    for frame, csv, parquet in ((table, objects, objects_parquet), (summary, images, images_parquet)):
        frame = tables_lib.add_metadata(frame, metadata or {})
        io.write_table(frame, csv)
        if parquet:
            io.write_parquet(io.read_table(csv), parquet)  # the CSV's columns and types, exactly


def _stream_shards(shards: Sequence[str], csv: str, parquet: str | None,
                   metadata: Mapping[str, Mapping[str, str]]) -> None:
    """Concatenate Parquet shards into one CSV (and Parquet), a shard at a time.

    Columns are the union in order of first appearance; a column that is an
    integer in some shards and a float in others is a float everywhere, as
    ``pandas.concat`` of all shards would make it. The Parquet file holds the
    table ``read_csv`` gives for the whole CSV (what rule ``tables`` writes in
    per_step mode): the CSV's values, and each column's type from all shards
    (read back shard by shard, then unified); only where shards disagree in a
    way that cannot be unified (text in one shard, numbers in another) is the
    whole CSV read back.
    """
    import pyarrow.parquet as pq

    columns: dict[str, set[str]] = {}
    for path in shards:
        for field in pq.read_schema(path):
            if field.name != "__index_level_0__":
                columns.setdefault(field.name, set()).add(str(field.type))
    floats = [c for c, kinds in columns.items()
              if any(k.startswith("int") for k in kinds) and any(k in ("double", "float") for k in kinds)]

    def parts():
        for path in shards:
            part = pd.read_parquet(path).reindex(columns=list(columns))
            for c in floats:
                part[c] = part[c].astype(float)
            yield tables_lib.add_metadata(part, metadata)

    kinds: dict[str, set[str]] = {}
    kept = []  # the read-back of a single shard, not read again for the Parquet file
    with io.atomic_path(csv) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        for i, part in enumerate(parts()):
            fh.write(io.csv_text(part, header=i == 0))
            if parquet:
                back = io.csv_round_trip(part)
                for name, kind in _read_back_kinds(back).items():
                    kinds.setdefault(name, set()).add(kind)
                if len(shards) == 1:
                    kept.append(back)
    if parquet:
        _parquet_of_csv(kept or map(io.csv_round_trip, parts()), kinds, csv, parquet)


def _read_back_kinds(table: pd.DataFrame) -> dict[str, str]:
    """Per column what ``read_csv`` made of it: int, float, bool, text or empty (all missing)."""
    kinds = {}
    for name in table.columns:
        column = table[name]
        if column.isna().all():
            kinds[name] = "empty"
        elif column.dtype.kind in "iufb":
            kinds[name] = {"i": "int", "u": "int", "f": "float", "b": "bool"}[column.dtype.kind]
        else:
            kinds[name] = "text"
    return kinds


def _parquet_of_csv(backs, kinds: Mapping[str, set[str]], csv: str, parquet: str) -> None:
    """Write ``parquet``: the table ``io.read_table(csv)`` gives, from the shards
    (``backs``: the CSV's rows read back shard by shard) with each column's type
    over the whole CSV, as ``read_csv`` infers it from the per-shard kinds ``kinds``."""
    import contextlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    final = {}
    for name, seen in kinds.items():
        numbers = seen - {"empty"}
        if not numbers:
            final[name] = np.dtype(np.float64)        # every value missing: NaN floats
        elif numbers == {"int"} and "empty" not in seen:
            final[name] = np.dtype(np.int64)
        elif numbers <= {"int", "float"}:
            final[name] = np.dtype(np.float64)
        elif numbers == {"bool"} and "empty" not in seen:
            final[name] = np.dtype(np.bool_)
        elif numbers == {"text"}:
            final[name] = pd.StringDtype(na_value=np.nan)
        else:  # text in one shard, numbers in another: only the whole CSV tells
            io.write_parquet(io.read_table(csv), parquet)
            return
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(io.atomic_path(parquet))
        writer = None
        for back in backs:
            table = pa.Table.from_pandas(pd.DataFrame({name: back[name].astype(final[name]) for name in back.columns}),
                                         preserve_index=False)
            if writer is None:
                writer = stack.enter_context(pq.ParquetWriter(tmp, table.schema, compression="zstd"))
            writer.write_table(table.cast(writer.schema))


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
    table, relabelled = _tracked(lab, md, io.read_table(measurements), name=name, diameter=diameter, track=track)
    io.write_table(table, tracks)
    _write_like(track_labels, relabelled, md)


def _tracked(lab: np.ndarray, md, objects: pd.DataFrame, *, name: str, diameter: float,
             track: Mapping[str, Any]) -> tuple[pd.DataFrame, np.ndarray]:
    """Track table and the label stack relabelled by track id."""
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
    return table, relabelled


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
# batched execution: the per-image chain in one call, raw image read once
# --------------------------------------------------------------------------


def _file_calibration(img: io.Image):
    """The calibration a stack written with ``img``'s calibration reads back with
    (TIFF stores the pixel size as a rational): the per-step chain computes
    threshold, refine and split from the smoothed file's calibration, so the
    batched chain uses the same values and writes the same bytes."""
    import copy

    return copy.deepcopy(_calibration_read_back(img.pixel_size_um, img.frame_interval_s))  # callers own theirs


@functools.lru_cache(maxsize=64)
def _calibration_read_back(pixel_size_um: float | None, frame_interval_s: float | None):
    """Write and read back a 1-pixel stack (~2 ms; once per calibration and worker:
    the images of a screen share theirs)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="snakescope-cal-") as tmp:
        path = str(Path(tmp) / "cal.tif")
        io.write_stack(path, np.zeros((1, 1, 1), np.uint8), axes="TYX", pixel_size_um=pixel_size_um,
                       frame_interval_s=frame_interval_s)
        return io.read_stack(path)[1]


def _segmented(img: io.Image, cal, *, name: str, segment_settings: Mapping[str, Any], settings: Mapping[str, Any],
               external_labels: str | None, keep: bool = False,
               first_frame: int = 0) -> tuple[list[np.ndarray], np.ndarray, dict]:
    """Objects of every frame of ``img`` and the threshold used per frame (NaN for
    methods without one): smooth -> threshold -> refine -> split in memory, or
    the method's own labels. ``settings["diameter"]`` is resolved. With ``keep``
    (threshold method) also the smoothed stack, masks and threshold table the
    per-step rules write (for QC images)."""
    if settings["method"] != "threshold":
        frames = _label_image(settings, img, external_labels)
        return frames, np.full(len(frames), np.nan), {}
    diameter = settings["diameter"]
    smoothed = _smoothed(img, image=img.path, channel=segment_settings["channel"], diameter=diameter,
                         smooth=segment_settings["smooth"])
    masks, table = _thresholded(smoothed, cal, image=name, diameter=diameter,
                                threshold=segment_settings["threshold"])
    table["frame"] += first_frame
    refined = _refined(masks, cal, diameter=diameter, refine=segment_settings["refine"])
    extras = {"smoothed": smoothed, "mask": masks, "refined": refined, "threshold_table": table} if keep else {}
    del masks
    frames = _split(settings, refined, smoothed, cal)
    # the per-step label rule reads the threshold table's CSV: the same 6 digits
    return frames, np.array([float("%.6g" % v) for v in table["threshold"]]), extras


#: Files of the per-step segmentation rules a batch also writes for the images that get QC images.
INTERMEDIATES = ("smoothed", "mask", "threshold_table", "refined")


def _chain(img: io.Image, cal, *, name: str, segment_settings: Mapping[str, Any], settings: Mapping[str, Any],
           rings: Mapping[str, Any], saturation: float | None, rods: bool, external_labels: str | None,
           first_frame: int = 0, keep: bool = False) -> dict:
    """Segment, measure and ring the frames of ``img`` (in memory)."""
    frames, thresholds, extras = _segmented(img, cal, name=name, segment_settings=segment_settings,
                                            settings=settings, external_labels=external_labels, keep=keep,
                                            first_frame=first_frame)
    top = max((int(f.max()) for f in frames), default=0)
    lab = np.stack(frames).astype(io.label_dtype(top)) if frames else np.zeros((0,) + img.data.shape[2:], np.uint16)
    del frames
    measured = _measured(img, lab, name=name, saturation=saturation, rods=rods, first_frame=first_frame)
    ring_stack, ring_table = _ringed(img, lab, name=name, channel=segment_settings["channel"],
                                     diameter=settings["diameter"], rings=rings, first_frame=first_frame)
    return {"labels": lab, "thresholds": thresholds, "measurements": measured, "ring_labels": ring_stack,
            "ring_table": ring_table, **extras}


def _write_intermediates(result: Mapping[str, Any], img: io.Image, cal, paths: Mapping[str, str | None]) -> None:
    """The smoothed stack, masks and threshold table, as rules smooth, threshold and refine write them."""
    if not all(paths.get(k) for k in INTERMEDIATES) or "smoothed" not in result:
        return
    _write_like(paths["smoothed"], result["smoothed"], img)
    _write_like(paths["mask"], result["mask"], cal)
    io.write_table(result["threshold_table"], paths["threshold_table"])
    _write_like(paths["refined"], result["refined"], cal)


def _batch_settings(settings: Mapping[str, Any], segment_settings: Mapping[str, Any],
                    estimate: str | None) -> dict:
    resolved = params.resolve_diameter(segment_settings["diameter"], estimate)
    return {**settings, "diameter": resolved} if "diameter" in settings else dict(settings)


def _read_back(result: dict) -> dict:
    """``result``'s tables as the per-step rules' readers get them: through a CSV
    (6 significant digits, types inferred again), so that the dataset tables and
    tracking computed from them are the same as per_step's, file or no file."""
    return {**result, **{key: io.csv_round_trip(result[key]) for key in ("measurements", "ring_table")}}


@uses(params, segment, external, rods, measure_lib, rings_lib, tables_lib)
def batch_part(*, image: str | Sequence[str], part: str, name: str, reading: Mapping[str, Any],
               segment_settings: Mapping[str, Any], settings: Mapping[str, Any], rings: Mapping[str, Any],
               saturation: float | None, rods: bool, first: int, stop: int,
               estimate: str | None = None, intermediates: str | None = None) -> None:
    """The chain on frames ``first:stop`` of a movie (one worker's share); the
    results (and the calibration used) go to the temporary file ``part`` for
    :func:`batch_image`, and with ``intermediates`` (an image that gets QC
    images) the smoothed frames, masks and threshold rows to that temporary
    file, for :func:`batch_intermediates`."""
    img = _read(image, reading, frames=(first, stop))
    cal = _file_calibration(img)
    resolved = _batch_settings(settings, segment_settings, estimate)
    result = _read_back(_chain(img, cal, name=name, segment_settings=segment_settings, settings=resolved,
                               rings=rings, saturation=saturation, rods=rods, external_labels=None,
                               first_frame=first, keep=bool(intermediates)))
    result["calibration"] = (cal, _Calibration(img.pixel_size_um, img.frame_interval_s))
    if intermediates:
        _pickled({**{k: result.pop(k) for k in INTERMEDIATES}, "calibration": result["calibration"]}, intermediates)
    _pickled(result, part)


def _pickled(obj: Any, path: str) -> None:
    """Write ``obj`` to the temporary file ``path`` (read by another worker of this job)."""
    import pickle

    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)


@uses(tables_lib)
def batch_intermediates(*, parts: Sequence[str], smoothed: str, mask: str, threshold_table: str,
                        refined: str) -> None:
    """The smoothed image, masks and threshold table of a movie whose frames
    were split among workers (the files rules smooth, threshold and refine
    write; for the images that get QC images), from the ``intermediates`` files
    of :func:`batch_part` in frame order. Runs beside :func:`batch_image`'s join
    of the same parts, in another worker."""
    loaded = _unpickled(parts)
    cal, img = loaded[0]["calibration"]
    joined = {k: np.concatenate([p.pop(k) for p in loaded]) for k in ("smoothed", "mask", "refined")}
    joined["threshold_table"] = pd.concat([p["threshold_table"] for p in loaded], ignore_index=True)
    _write_intermediates(joined, img, cal, {"smoothed": smoothed, "mask": mask, "threshold_table": threshold_table,
                                            "refined": refined})


class _Calibration(NamedTuple):
    """Pixel size and frame interval of an image (what :func:`_write_like` needs)."""

    pixel_size_um: float | None
    frame_interval_s: float | None


def _unpickled(paths: Sequence[str]) -> list:
    """The objects in the temporary files of this job's own workers, in order."""
    import pickle

    loaded = []
    for path in paths:
        with open(path, "rb") as fh:
            loaded.append(pickle.load(fh))
    return loaded


def _joined(parts: Sequence[str]) -> dict:
    """The results of :func:`batch_part` files, in frame order, as one movie's."""
    loaded = _unpickled(parts)
    top = max((int(p["labels"].max()) if p["labels"].size else 0 for p in loaded), default=0)
    dtype = io.label_dtype(top)

    def tables(key: str) -> pd.DataFrame:
        non_empty = [p[key] for p in loaded if len(p[key])]
        return pd.concat(non_empty, ignore_index=True) if non_empty else loaded[0][key]

    joined = {"labels": np.concatenate([p["labels"].astype(dtype) for p in loaded]),
              "thresholds": np.concatenate([p["thresholds"] for p in loaded]),
              "measurements": tables("measurements"), "ring_table": tables("ring_table"),
              "ring_labels": np.concatenate([p["ring_labels"].astype(dtype) for p in loaded]),
              "calibration": loaded[0]["calibration"]}
    return joined


@uses(params, segment, external, rods, measure_lib, rings_lib, tables_lib, track_lib, diameter_lib)
def batch_image(*, image: str | Sequence[str], name: str, reading: Mapping[str, Any],
                segment_settings: Mapping[str, Any], settings: Mapping[str, Any], rings: Mapping[str, Any],
                saturation: float | None, rods: bool, track: Mapping[str, Any] | None, invert: bool,
                labels: str, tables: str, ring_labels: str | None = None, frames: str | None = None,
                measurements: str | None = None, ring_table: str | None = None,
                tracks: str | None = None, track_labels: str | None = None, estimate: str | None = None,
                external_labels: str | None = None, parts: Sequence[str] = (), smoothed: str | None = None,
                mask: str | None = None, threshold_table: str | None = None, refined: str | None = None) -> None:
    """The per-image chain of ``execution: batched`` in one call: the raw image
    is read once; diameter (when ``auto``) -> smooth -> threshold -> refine ->
    label -> measure -> rings (-> track) run in memory. The label image (and
    tracks) are written with the same bytes rule label (and track) write; the
    per-image tables go to the temporary file ``tables`` (for
    :func:`batch_tables`). The ring label image and the CSV tables of rules
    label, measure and rings are written only where their paths are given
    (``ring_labels``, ``frames``, ``measurements``, ``ring_table``: for the
    images whose QC or validation read them), as are the smoothed image, masks
    and threshold table (for the images that get QC images). With ``parts`` (files of
    :func:`batch_part` covering every frame) the chain was run on frame ranges
    by several workers; this call joins them and tracks, without reading the
    image again (the intermediates of such a movie: :func:`batch_intermediates`).
    """
    if parts:
        result = _joined(parts)
        cal, img = result["calibration"]
    else:
        img = _read(image, reading)
        cal = _file_calibration(img)
        if segment_settings["diameter"] == "auto":
            io.write_table(_estimated_diameter(img, name=name, channel=segment_settings["channel"],
                                               invert=invert), estimate)
    resolved = _batch_settings(settings, segment_settings, estimate)
    if not parts:
        result = _read_back(_chain(img, cal, name=name, segment_settings=segment_settings, settings=resolved,
                                   rings=rings, saturation=saturation, rods=rods, external_labels=external_labels,
                                   keep=bool(smoothed)))
    _write_intermediates(result, img, cal, {"smoothed": smoothed, "mask": mask, "threshold_table": threshold_table,
                                            "refined": refined})
    lab, table = _labels_and_frames(list(result["labels"]), result["thresholds"], cal, name=name,
                                    settings=resolved)
    table = io.csv_round_trip(table)
    _write_like(labels, lab, cal)
    if ring_labels:
        _write_like(ring_labels, result["ring_labels"].astype(lab.dtype), img)
    for path, data in ((frames, table), (measurements, result["measurements"]), (ring_table, result["ring_table"])):
        if path:
            io.write_table(data, path)
    _pickled({"measurements": result["measurements"], "ring_table": result["ring_table"], "frames": table}, tables)
    if track is not None:
        track_table, relabelled = _tracked(lab, cal, result["measurements"], name=name,
                                           diameter=params.resolve_diameter(segment_settings["diameter"], estimate),
                                           track=track)
        io.write_table(track_table, tracks)
        _write_like(track_labels, relabelled, cal)


@uses(tables_lib)
def batch_tables(*, tables: Sequence[str], objects_shard: str, images_shard: str, dataset: str) -> None:
    """A batch's share of the dataset tables (Parquet shards): the rows rule
    ``tables`` would make from the batch's images, from the temporary files of
    :func:`batch_image` (``tables``, in image order)."""
    loaded = _unpickled(tables)
    table = tables_lib.object_table([t["measurements"] for t in loaded], [t["ring_table"] for t in loaded],
                                    dataset=dataset)
    summary = tables_lib.image_table(table, pd.concat([t["frames"] for t in loaded], ignore_index=True),
                                     dataset=dataset)
    io.write_parquet(table, objects_shard)
    io.write_parquet(summary, images_shard)


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
