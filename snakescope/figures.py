"""Figure sets: the QC images of one image and the figures of one dataset.

:mod:`snakescope.plots` draws single figures; this module decides which
figures a folder holds, with the configured style, size and formats.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from . import plots
from .errors import InputError
from .rings import reporters_of


def frames_to_show(n_frames: int, wanted: Sequence[int | str]) -> list[int]:
    """Frame indices for ``wanted`` (0-based indices or ``first``, ``middle``, ``last``), without repeats."""
    named = {"first": 0, "middle": (n_frames - 1) // 2, "last": n_frames - 1}
    out = []
    for w in wanted:
        t = named[w] if isinstance(w, str) else int(w)
        if not 0 <= t < n_frames:
            raise InputError(f"frames_to_show: frame {t} does not exist ({n_frames} frames)")
        if t not in out:
            out.append(t)
    return out


@contextlib.contextmanager
def style_with(style: str, *, dpi: float, size_in: Sequence[float] | None) -> Iterator[str]:
    """The style file ``style`` with ``dpi`` and ``size_in`` in place of its own
    keys, as a temporary file (the figures depend only on these settings)."""
    if not os.path.exists(style):
        raise InputError(f"style_with: style file {style} not found")
    extra = [f"savefig.dpi: {dpi}"]
    if size_in:
        extra.append(f"figure.figsize: {size_in[0]}, {size_in[1]}")
    overridden = {line.split(":")[0] for line in extra}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "style.mplstyle")
        with open(style, encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
            kept = [line for line in src.read().splitlines() if line.split(":")[0].strip() not in overridden]
            dst.write("\n".join(kept + extra) + "\n")
        yield path


def write_qc(out: str, *, raw: np.ndarray, labels: np.ndarray, rings: np.ndarray, frames: Sequence[int], name: str,
             pixel_size_um: float | None, figures: Mapping[str, Any], tracks: pd.DataFrame | None = None,
             smoothed: np.ndarray | None = None, mask: np.ndarray | None = None,
             thresholds: np.ndarray | None = None) -> None:
    """QC images of one image in the folder ``out``: overlays of ``frames``
    (contours of nuclei and rings, object or track ids), a montage, and with
    ``smoothed``/``mask``/``thresholds`` the threshold histogram and a mask |
    labels panel of the first of ``frames``. ``figures`` holds ``style, dpi,
    size_in, qc_ids, log_counts``."""
    shown = list(frames)
    dpi = figures["dpi"]
    with style_with(figures["style"], dpi=dpi, size_in=figures["size_in"]) as style:
        # each frame is composed once (contrast, contours) for its overlay and the montage:
        # the figures of plots.qc_overlay and plots.qc_montage
        panels = []
        for t in shown:
            frame = plots._composite(raw[t], labels[t], rings[t])
            ids: bool | dict = bool(figures["qc_ids"])
            what = "ids"
            if ids and tracks is not None and len(tracks):
                rows = tracks[tracks["frame"] == t]
                ids = dict(zip(rows["label"].astype(int), rows["track_id"].astype(int)))
                what = "track ids"
            title = f"{name}, frame {t}" + (f" ({what})" if figures["qc_ids"] else "")
            fig = plots._overlay_figure(frame, ids=ids, title=title, pixel_size_um=pixel_size_um, style=style)
            plots.save_figure(fig, os.path.join(out, f"overlay_t{t:03d}.png"), dpi=dpi, style=style)
            panels.append((frame, f"frame {t}"))
        fig = plots._montage_figure(panels, title=name, pixel_size_um=pixel_size_um, style=style)
        plots.save_figure(fig, os.path.join(out, "montage.png"), dpi=dpi, style=style)
        if smoothed is not None and mask is not None and thresholds is not None:
            thr = list(thresholds) if len(thresholds) > 1 else float(thresholds[0])
            fig = plots.threshold_histogram(smoothed, thr, log_counts=figures["log_counts"],
                                            title=f"{name}: threshold", style=style)
            plots.save_figure(fig, os.path.join(out, "histogram.png"), dpi=dpi, style=style)
            t = shown[0]
            fig = plots.mask_labels_panel(raw[t], mask[t], labels[t], title=f"{name}, frame {t}", style=style)
            plots.save_figure(fig, os.path.join(out, f"mask_labels_t{t:03d}.png"), dpi=dpi, style=style)


def write_dataset_figures(out: str, *, objects: pd.DataFrame, images: pd.DataFrame, traces: pd.DataFrame | None,
                          dataset: str, figures: Mapping[str, Any], conditions: Mapping[str, str] | None,
                          stimulus_frame: float | None, baseline_frames: Sequence[int] | None) -> None:
    """Figures of a dataset in the folder ``out``: counts per frame, area (and rod
    length/width) and C/N distributions; with ``traces`` C/N and dC/N traces
    (median and band) and a heatmap sorted by response, for stills per-image
    summaries. One file per figure and format of ``figures["formats"]``."""
    groups = dict(conditions) if conditions else None
    baseline = tuple(baseline_frames) if baseline_frames else None
    with style_with(figures["style"], dpi=figures["dpi"], size_in=figures["size_in"]) as style:

        def save(fig, stem: str) -> None:
            for fmt in figures["formats"]:
                plots.save_figure(fig, os.path.join(out, f"{stem}.{fmt}"), dpi=figures["dpi"], style=style)

        save(plots.count_per_frame(images, groups=groups, title=f"{dataset}: objects", style=style), "counts")
        save(plots.area_distribution(objects, groups=groups, title=f"{dataset}: object area", style=style), "area")
        for column, what in (("length_um", "rod length"), ("width_um", "rod width")):
            if column in objects and objects[column].notna().any():
                save(plots.area_distribution(objects, column=column, groups=groups, title=f"{dataset}: {what}",
                                             style=style), f"{what.replace(' ', '_')}")
        for r in reporters_of(objects.columns):
            save(plots.cn_distribution(objects, reporter=r, groups=groups, title=f"{dataset}: C/N {r}", style=style),
                 f"cn_distribution_{r}")
            if traces is not None and len(traces):
                kw = dict(reporter=r, stimulus_frame=stimulus_frame, baseline_frames=baseline, groups=groups,
                          style=style)
                save(plots.cn_traces(traces, band=figures["band"], max_cells=figures["max_cells"],
                                     title=f"{dataset}: C/N {r}", **kw), f"cn_traces_{r}")
                if f"dcn_{r}" in traces:
                    save(plots.dcn_traces(traces, band=figures["band"], max_cells=figures["max_cells"],
                                          title=f"{dataset}: ΔC/N {r}", **kw), f"dcn_traces_{r}")
                save(plots.cn_heatmap(traces, cmap=figures["cmap"], title=f"{dataset}: C/N {r}", **kw),
                     f"heatmap_{r}")
            else:
                save(plots.still_summary(objects, reporter=r, groups=groups, title=f"{dataset}: C/N {r} per image",
                                         style=style), f"summary_{r}")
