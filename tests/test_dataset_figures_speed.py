"""Dataset figures, fast: one layout per kind of output, lean PDF fonts, figures in forked processes.

The fast paths must write what the plain matplotlib calls write: PNG and SVG
byte-identical to ``savefig`` with the layout engine on; PDF the same drawing
(layout within 0.01 pt), with fonts that lack only the OpenType layout tables.
"""

from __future__ import annotations

import io
import os
import time
import zlib

import numpy as np
import pandas as pd
import pytest

from snakescope import figures, plots
from snakescope.errors import InputError
from tests.test_plots import objects_table, traces_table

STYLE = str(plots.DEFAULT_STYLE)


def heatmap():
    return plots.cn_heatmap(traces_table(n_cells=12, n_frames=8), reporter="erk", stimulus_frame=4.5,
                            title="d: C/N erk", style=STYLE)


def traces_figure():
    return plots.dcn_traces(traces_table(n_cells=12, n_frames=8), reporter="erk", stimulus_frame=4.5,
                            baseline_frames=(0, 4), title="d: ΔC/N erk", style=STYLE)


def plain_savefig(fig, formats, dpi: float) -> dict[str, bytes]:
    """What save_figure wrote before, format after format: matplotlib's savefig
    with the layout engine on (a layout and a draw without output per file)."""
    out = {}
    with plots._styled(STYLE, rc=plots._SAVE_RC):
        for fmt in formats:
            buffer = io.BytesIO()
            if fmt == "png":
                fig.savefig(buffer, format="rgba", dpi=dpi)
                width, height = int(fig.get_figwidth() * dpi), int(fig.get_figheight() * dpi)
                pixels = np.frombuffer(buffer.getbuffer(), np.uint8).reshape(height, width, 4)
                out[fmt] = plots.png_bytes(pixels, dpi=dpi)
            else:
                fig.savefig(buffer, format=fmt, dpi=dpi, metadata=dict(plots._METADATA[fmt]))
                out[fmt] = buffer.getvalue()
    return out


@pytest.mark.parametrize("build", [heatmap, traces_figure])
def test_png_and_svg_are_those_of_plain_savefig(tmp_path, build):
    formats = ["png", "svg", "pdf"]
    written = plots.save_figure(build(), tmp_path / "f.png", formats=formats, dpi=120, style=STYLE)
    assert [p.suffix for p in written] == [".png", ".svg", ".pdf"]
    plain = plain_savefig(build(), formats, 120)
    for fmt in ("png", "svg"):
        assert (tmp_path / f"f.{fmt}").read_bytes() == plain[fmt], fmt


def test_layout_engine_is_restored_and_positions_match(tmp_path):
    fig = heatmap()
    engine = fig.get_layout_engine()
    dpi = fig.dpi
    plots.save_figure(fig, tmp_path / "f.png", formats=["svg", "png", "pdf"], dpi=150, style=STYLE)
    assert fig.get_layout_engine() is engine and fig.dpi == dpi
    assert type(fig.canvas).__name__ == "FigureCanvasBase"
    # the layout of the last file (vector) is the one savefig computes for a PDF, within 0.01 pt
    ours = np.array([ax.get_position().bounds for ax in fig.axes])
    other = heatmap()
    plain_savefig(other, ["svg", "png", "pdf"], 150)
    theirs = np.array([ax.get_position().bounds for ax in other.axes])
    assert np.abs(ours - theirs).max() * 72 * max(fig.get_size_inches()) < 0.01


def test_pdf_fonts_lack_only_the_layout_tables(tmp_path):
    from fontTools.ttLib import TTFont
    from matplotlib.backends import _backend_pdf_ps
    from fontTools import subset

    plots.save_figure(traces_figure(), tmp_path / "f.pdf", style=STYLE)
    assert _backend_pdf_ps.subset is subset  # restored
    pdf = (tmp_path / "f.pdf").read_bytes()
    assert b"/FontFile2" in pdf and b"CreationDate" not in pdf
    fonts = []
    for chunk in pdf.split(b"stream\n")[1:]:
        data = chunk.split(b"\nendstream")[0]
        try:
            raw = zlib.decompress(data)
        except zlib.error:
            continue
        if raw[:4] in (b"\x00\x01\x00\x00", b"true"):
            fonts.append(TTFont(io.BytesIO(raw)))
    assert fonts
    for font in fonts:
        tables = set(font.keys())
        assert not tables & set(plots._PDF_DROPPED_FONT_TABLES)
        assert {"glyf", "loca", "cmap", "hmtx", "head"} <= tables


def write_all(out, workers):
    os.makedirs(out)
    traces = traces_table(n_cells=12, n_frames=8)
    traces["image"] = "a"
    objects = objects_table()
    images = pd.DataFrame({"image": ["a", "b", "c"], "frame": [0, 0, 0], "n_objects": [30, 30, 30]})
    settings = {"formats": ["png", "svg", "pdf"], "dpi": 80, "size_in": None, "style": STYLE, "cmap": None,
                "band": "percentile", "max_cells": 5}
    figures.write_dataset_figures(str(out), objects=objects, images=images, traces=traces, dataset="d",
                                  figures=settings, conditions=None, stimulus_frame=4.5, baseline_frames=[0, 4],
                                  workers=workers)
    return {name: (out / name).read_bytes() for name in sorted(os.listdir(out))}


def test_dataset_figures_same_bytes_in_one_or_several_processes(tmp_path):
    serial = write_all(tmp_path / "serial", 1)
    forked = write_all(tmp_path / "forked", 3)
    assert list(serial) == list(forked) and len(serial) == 3 * 6
    for name in serial:
        assert serial[name] == forked[name], name


def test_run_tasks_uses_several_processes(tmp_path):
    def run(i):
        time.sleep(0.02)  # long enough for the forked process to take tasks too
        (tmp_path / f"{i}.txt").write_text(str(os.getpid()))

    figures.run_tasks(range(40), run, workers=2)
    assert sorted(int(p.stem) for p in tmp_path.iterdir()) == list(range(40))
    pids = {p.read_text() for p in tmp_path.iterdir()}
    assert str(os.getpid()) in pids and len(pids) == 2


def test_run_tasks_raises_the_first_failure_in_task_order(tmp_path):
    def run(i):
        if i in (3, 5):
            raise InputError(f"task {i}: bad input; fix it")
        (tmp_path / f"{i}.txt").write_text("")

    for workers in (1, 2, 3):
        with pytest.raises(InputError, match="task 3: bad input") as info:
            figures.run_tasks(range(8), run, workers=workers)
        assert isinstance(info.value, InputError)
    ran = {int(p.stem) for p in tmp_path.iterdir()}
    assert {0, 1, 2} <= ran


def test_run_tasks_in_a_forked_worker_names_the_worker_traceback():
    parent = os.getpid()

    def run(i):
        if os.getpid() != parent:
            raise ValueError("failed in a worker")

    try:
        figures.run_tasks(range(200), run, workers=2)
    except ValueError as exc:
        assert "failed in a worker" in str(exc)
        assert "Traceback" in str(exc.__cause__)
    # else: the parent took every task before the worker started (allowed)


def test_run_tasks_serial_when_threads_run(tmp_path, monkeypatch):
    monkeypatch.setattr(figures.threading, "active_count", lambda: 2)
    pids = set()
    figures.run_tasks(range(5), lambda i: pids.add(os.getpid()), workers=4)
    assert pids == {os.getpid()}
