"""Figure sets: the QC images of one image and the figures of one dataset.

:mod:`snakescope.plots` draws single figures; this module decides which
figures a folder holds, with the configured style, size and formats.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import tempfile
import threading
import traceback
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

import numpy as np
import pandas as pd

from .errors import InputError
from .rings import reporters_of

T = TypeVar("T")


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
    from . import plots  # matplotlib: imported by the steps that draw, not by the workflow's start-up

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
                          stimulus_frame: float | None, baseline_frames: Sequence[int] | None,
                          workers: int | None = None) -> None:
    """Figures of a dataset in the folder ``out``: counts per frame, area (and rod
    length/width) and C/N distributions; with ``traces`` C/N and dC/N traces
    (median and band) and a heatmap sorted by response, for stills per-image
    summaries. One file per figure and format of ``figures["formats"]``.

    The figures are independent: up to ``workers`` processes (default: the
    CPUs this process may use) draw them (see :func:`run_tasks`); every file
    has the same bytes whichever process writes it."""
    from . import plots  # matplotlib: imported by the steps that draw, not by the workflow's start-up

    groups = dict(conditions) if conditions else None
    baseline = tuple(baseline_frames) if baseline_frames else None
    with style_with(figures["style"], dpi=figures["dpi"], size_in=figures["size_in"]) as style:
        tasks: list[tuple[str, Callable[[], Any]]] = []

        def add(stem: str, plot: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
            tasks.append((stem, functools.partial(plot, *args, style=style, **kwargs)))

        add("counts", plots.count_per_frame, images, groups=groups, title=f"{dataset}: objects")
        add("area", plots.area_distribution, objects, groups=groups, title=f"{dataset}: object area")
        for column, what in (("length_um", "rod length"), ("width_um", "rod width")):
            if column in objects and objects[column].notna().any():
                add(what.replace(" ", "_"), plots.area_distribution, objects, column=column, groups=groups,
                    title=f"{dataset}: {what}")
        for r in reporters_of(objects.columns):
            add(f"cn_distribution_{r}", plots.cn_distribution, objects, reporter=r, groups=groups,
                title=f"{dataset}: C/N {r}")
            if traces is not None and len(traces):
                kw = dict(reporter=r, stimulus_frame=stimulus_frame, baseline_frames=baseline, groups=groups)
                add(f"cn_traces_{r}", plots.cn_traces, traces, band=figures["band"], max_cells=figures["max_cells"],
                    title=f"{dataset}: C/N {r}", **kw)
                if f"dcn_{r}" in traces:
                    add(f"dcn_traces_{r}", plots.dcn_traces, traces, band=figures["band"],
                        max_cells=figures["max_cells"], title=f"{dataset}: ΔC/N {r}", **kw)
                add(f"heatmap_{r}", plots.cn_heatmap, traces, cmap=figures["cmap"], title=f"{dataset}: C/N {r}", **kw)
            else:
                add(f"summary_{r}", plots.still_summary, objects, reporter=r, groups=groups,
                    title=f"{dataset}: C/N {r} per image")

        def draw(task: tuple[str, Callable[[], Any]]) -> None:
            stem, plot = task
            # all formats in one call: the figure is laid out once for all of them
            plots.save_figure(plot(), os.path.join(out, f"{stem}.png"), formats=figures["formats"],
                              dpi=figures["dpi"], style=style)

        # the costliest figures first (heat maps: an image and a colour bar; then traces), so that
        # no process is left with a long figure at the end; the files do not depend on the order
        cost = {"heatmap": 0, "cn_traces": 1, "dcn_traces": 1}
        tasks.sort(key=lambda task: cost.get(task[0].rsplit("_", 1)[0], 2))
        plots.import_backends(figures["formats"])  # once, before any fork
        run_tasks(tasks, draw, workers=workers)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def run_tasks(tasks: Sequence[T], run: Callable[[T], None], *, workers: int | None = None) -> None:
    """``run(task)`` for every task, in this process and up to ``workers - 1`` forked ones.

    Tasks are taken in order from a shared counter by whichever process is
    free, so ``run`` must give the same result in any process (it writes files;
    nothing is returned). Forked processes inherit everything already imported
    and built (tables, style), so they start in milliseconds, where a
    ``spawn``/``forkserver`` process would first spend ~1 s of CPU importing
    matplotlib and pandas. Fork is used only where it is safe: a POSIX system,
    this process running a single thread (e.g. a worker of the workflow's
    process pool), and more than one task and worker; otherwise the tasks run
    here, one after the other.

    Errors: every process stops taking tasks after any failure; the exception
    of the first failing task in task order is raised (the one a serial run
    raises), with the worker's traceback as its cause when it failed in a
    forked process.
    """
    tasks = list(tasks)
    n = min(int(workers) if workers else usable_cpus(), len(tasks))
    if n <= 1 or "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        for task in tasks:
            run(task)
        return
    ctx = multiprocessing.get_context("fork")
    counter = ctx.Value("l", 0)  # next task; set past the end to stop everyone

    def take() -> int | None:
        with counter.get_lock():
            i = counter.value
            if i >= len(tasks):
                return None
            counter.value = i + 1
            return i

    def stop() -> None:
        with counter.get_lock():
            counter.value = len(tasks)

    def loop(report: Callable[[int, BaseException, str], None]) -> None:
        while (i := take()) is not None:
            try:
                run(tasks[i])
            except BaseException as exc:  # noqa: BLE001 - reported to the parent, re-raised there
                stop()
                report(i, exc, traceback.format_exc())
                return

    def child(conn) -> None:
        failures = []
        loop(lambda i, exc, tb: failures.append((i, exc, tb)))
        for i, exc, tb in failures:
            try:
                conn.send((i, exc, tb))
            except Exception:  # noqa: BLE001 - an exception that does not pickle
                conn.send((i, RuntimeError(f"{type(exc).__name__}: {exc}"), tb))
        conn.close()

    processes = []
    for _ in range(n - 1):
        reader, writer = ctx.Pipe(duplex=False)
        process = ctx.Process(target=child, args=(writer,), daemon=False)
        process.start()
        writer.close()
        processes.append((process, reader))
    failures: list[tuple[int, BaseException, str | None]] = []
    try:
        loop(lambda i, exc, tb: failures.append((i, exc, None)))
    finally:
        if failures:
            stop()
        for process, reader in processes:
            try:
                while True:
                    failures.append(reader.recv())
            except EOFError:
                pass
            process.join()
            reader.close()
            if process.exitcode != 0 and not failures:
                failures.append((len(tasks), RuntimeError(
                    f"a figure process died (exit code {process.exitcode}); rerun, and check memory"), None))
    if failures:
        _, exc, tb = min(failures, key=lambda f: f[0])
        if tb is None:
            raise exc
        raise exc from _WorkerTraceback(tb)


class _WorkerTraceback(Exception):
    """The traceback of an exception raised in a forked process of :func:`run_tasks`."""

    def __str__(self) -> str:
        return "\n" + str(self.args[0])
