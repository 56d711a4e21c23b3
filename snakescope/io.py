"""Reading and writing images and tables: the one place for I/O and metadata.

Images are normalised to a ``TCYX`` array in memory whatever their axes on disk.
TIFF files (plain, ImageJ hyperstacks, OME-TIFF with one or many series) are read
with tifffile; vendor formats (Zeiss ``.czi``, Nikon ``.nd2``, Leica ``.lif``, and
whatever else an installed bioio plugin reads) through bioio; OME-Zarr with
zarr. A file with several scenes (positions, series) gives one image per scene
(:func:`scenes`, :func:`image_names`, ``read_image(..., scene=...)``); an image
can also be assembled from one file per frame and channel
(``read_image(paths, grid=(n_frames, n_channels))``).

Every file is written atomically (temporary file in the same directory, then
``os.replace``), so an interrupted or failed step never leaves a partial output.
TIFFs are ImageJ hyperstacks with calibration, written without time stamps so
that reruns produce identical bytes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import tifffile

from .errors import InputError

#: Axes letters snakescope understands (time, channel, y, x).
KNOWN_AXES = "TCYX"

#: Z projections :func:`read_image` can apply at read time.
Z_PROJECTIONS = ("max", "mean", "sum")

#: File name endings read with tifffile (everything else goes to bioio or zarr).
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")


@dataclass
class Image:
    """An image normalised to ``TCYX`` with its metadata.

    Attributes
    ----------
    data : ndarray
        Pixel data with axes ``(T, C, Y, X)``.
    channels : list of str
        Channel names in file order.
    pixel_size_um : float or None
        Pixel size in micrometres, None when uncalibrated.
    frame_interval_s : float or None
        Time between frames in seconds, None when unknown.
    axes : str
        Axes of the file on disk (after squeezing singleton dimensions not named).
    path : str
        Where the image was read from (the first file of an image assembled
        from many files).
    scene : str or None
        Name of the scene read from a multi-scene file, None for single-scene files.
    notes : list of str
        Lines worth logging: values given by the caller that override different
        values in the file, metadata that could not be used.
    """

    data: np.ndarray
    channels: list[str]
    pixel_size_um: float | None = None
    frame_interval_s: float | None = None
    axes: str = "TCYX"
    path: str = ""
    scene: str | None = None
    notes: list[str] = field(default_factory=list)

    def channel(self, name: str) -> np.ndarray:
        """Return the ``(T, Y, X)`` stack of one channel by name."""
        return self.data[:, channel_index(self.channels, name, path=self.path)]


def channel_index(channels: Sequence[str], name: str, *, path: str = "") -> int:
    """Index of channel ``name`` in ``channels`` or a clear :class:`InputError`."""
    try:
        return list(channels).index(name)
    except ValueError:
        where = f"{path}: " if path else ""
        raise InputError(
            f"{where}channel '{name}' is not one of the image's channels {list(channels)}; "
            "fix the channel name in the config (segment.channel / rings.reporters) "
            "or the dataset's 'channels' list"
        ) from None


@dataclass
class FileMetadata:
    """Header information of one image (scene) of a file (no pixel data read).

    ``pixel_size_um`` is the X size; ``pixel_size_y_um`` the Y size when the
    file gives one (it differs from X for non-square pixels).
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    axes: str | None
    pixel_size_um: float | None
    frame_interval_s: float | None
    channel_names: list[str] | None = None
    pixel_size_y_um: float | None = None
    scene: str | None = None
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- units

def _unit_key(unit: Any) -> str:
    """Lower-case unit with every spelling of micro (µ, μ, \\u00B5) as ``u``."""
    text = str(unit).strip()
    for micro in ("\\u00B5", "\\u00b5", "\u00b5", "\u03bc"):
        text = text.replace(micro, "u")
    return text.lower()


#: Length units (ImageJ, TIFF, OME, OME-Zarr spellings) in micrometres.
_LENGTH_UM = {
    "um": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0,
    "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3, "pm": 1e-6, "picometer": 1e-6,
    "\u00e5": 1e-4, "angstrom": 1e-4, "mm": 1e3, "millimeter": 1e3, "millimetre": 1e3,
    "cm": 1e4, "centimeter": 1e4, "centimetre": 1e4, "m": 1e6, "meter": 1e6, "metre": 1e6,
    "inch": 25400.0, "in": 25400.0,
}

#: Time units (ImageJ ``tunit``, OME, OME-Zarr spellings) in seconds.
_TIME_S = {
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
    "us": 1e-6, "usec": 1e-6, "microsecond": 1e-6, "microseconds": 1e-6,
    "ns": 1e-9, "nanosecond": 1e-9, "nanoseconds": 1e-9,
    "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}


def _round6(value: float) -> float:
    """6 significant digits: undoes the rounding of rational resolution tags."""
    return float(f"{value:.6g}")


def _length_um(value: Any, unit: Any, default_unit: str = "um") -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    scale = _LENGTH_UM.get(_unit_key(unit if unit not in (None, "") else default_unit))
    if scale is None or not math.isfinite(value) or value <= 0:
        return None
    return _round6(value * scale)


def _time_s(value: Any, unit: Any, default_unit: str = "s") -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    scale = _TIME_S.get(_unit_key(unit if unit not in (None, "") else default_unit))
    if scale is None or not math.isfinite(value) or value <= 0:
        return None
    return _round6(value * scale)


# ----------------------------------------------------------------------------- TIFF

class _TiffErrors(logging.Handler):
    """Collects the errors tifffile logs (instead of raising) on damaged files."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _strict_tiff(path: str) -> Iterator[None]:
    """Turn errors that tifffile only logs (truncated files, bad offsets) into InputError."""
    handler = _TiffErrors()
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if handler.messages:
        raise InputError(
            f"{path}: TIFF is truncated or corrupt ({handler.messages[0].split('> ', 1)[-1]}); "
            "re-export or copy the file again"
        )


def _check_exists(path: str) -> None:
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found; check the dataset's 'images' pattern")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise InputError(f"{path}: file is empty; re-export the image")


def _open_tiff(path: str | os.PathLike) -> tifffile.TiffFile:
    path = str(path)
    _check_exists(path)
    try:
        return tifffile.TiffFile(path)
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise InputError(
            f"{path}: not a readable TIFF ({type(exc).__name__}: {exc}); "
            "re-export it as TIFF (e.g. Fiji: File > Save As > Tiff)"
        ) from exc


def _tiff_scene_names(tif: tifffile.TiffFile) -> list[str]:
    """One name per series of an OME-TIFF (or of a tifffile-shaped multi-series file);
    ImageJ and plain TIFFs are one scene (their first series, as always)."""
    series = tif.series
    if len(series) > 1 and (tif.is_ome or tif.is_shaped):
        return [s.name or str(i) for i, s in enumerate(series)]
    return [series[0].name or "0"] if series else ["0"]


def _axes_from_tiff(tif: tifffile.TiffFile, index: int = 0) -> str | None:
    # Plain TIFFs: tifffile names unknown dimensions Q or I; treat their axes as unknown.
    if tif.is_imagej or tif.is_ome or (tif.is_shaped and tif.shaped_metadata
                                        and tif.shaped_metadata[0].get("axes")):
        return tif.series[index].axes.upper()
    return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ome_image_elements(xml: str) -> list:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return []
    return [el for el in root if _local(el.tag) == "Image"]


def _children(element, name: str) -> list:
    return [el for el in element if _local(el.tag) == name]


@dataclass
class _OmeImage:
    name: str | None = None
    pixel_size_yx_um: tuple[float | None, float | None] = (None, None)
    frame_interval_s: float | None = None
    channel_names: list[str | None] = field(default_factory=list)


def _ome_image(image) -> _OmeImage:
    """Calibration and channel names of one OME ``Image`` element."""
    out = _OmeImage(name=image.get("Name"))
    pixels = _children(image, "Pixels")
    if not pixels:
        return out
    px = pixels[0]
    x = _length_um(px.get("PhysicalSizeX"), px.get("PhysicalSizeXUnit"), "um")
    y = _length_um(px.get("PhysicalSizeY"), px.get("PhysicalSizeYUnit"), "um")
    out.pixel_size_yx_um = (y, x)
    out.frame_interval_s = _time_s(px.get("TimeIncrement"), px.get("TimeIncrementUnit"), "s")
    if out.frame_interval_s is None:
        out.frame_interval_s = _delta_t_interval(_children(px, "Plane"))
    out.channel_names = [c.get("Name") for c in _children(px, "Channel")]
    return out


def _delta_t_interval(planes: list) -> float | None:
    """Median time between frames from the ``DeltaT`` of the planes of channel 0, Z 0."""
    times: dict[int, float] = {}
    for plane in planes:
        if int(plane.get("TheC", 0)) or int(plane.get("TheZ", 0)):
            continue
        try:
            value = float(plane.get("DeltaT"))
        except (TypeError, ValueError):
            continue
        scale = _TIME_S.get(_unit_key(plane.get("DeltaTUnit") or "s"))
        if scale is not None and math.isfinite(value):
            times.setdefault(int(plane.get("TheT", 0)), value * scale)
    if len(times) < 2:
        return None
    ordered = [times[k] for k in sorted(times)]
    step = float(np.median(np.diff(ordered)))
    return _round6(step) if step > 0 else None


def _resolution_um(tif: tifffile.TiffFile, page) -> tuple[float | None, float | None]:
    """(Y, X) pixel size from the resolution tags, in µm (None when uncalibrated)."""
    tags = page.tags
    unit = None
    yunit = None
    if tif.is_imagej and tif.imagej_metadata:
        unit = tif.imagej_metadata.get("unit")
        yunit = tif.imagej_metadata.get("yunit")
    if unit is None:
        res_unit = tags.get("ResolutionUnit")
        code = int(res_unit.value) if res_unit is not None else 1
        unit = {2: "inch", 3: "cm"}.get(code)
    if unit is None:
        return None, None

    def size(tag: str, unit: Any) -> float | None:
        if tag not in tags:
            return None
        num, den = tags[tag].value
        if num <= 0 or den <= 0:
            return None
        px_per_unit = num / den
        scale = _LENGTH_UM.get(_unit_key(unit))
        if scale is None:
            return None
        if scale == 25400.0 and px_per_unit in (72.0, 96.0, 300.0):
            return None  # screen/print resolution written by default, not a calibration
        return _round6(scale / px_per_unit)

    x = size("XResolution", unit)
    y = size("YResolution", yunit if yunit is not None else unit)
    return y if y is not None else x, x


def _tiff_interval(tif: tifffile.TiffFile, notes: list[str]) -> float | None:
    if tif.is_imagej and tif.imagej_metadata and tif.imagej_metadata.get("finterval"):
        md = tif.imagej_metadata
        unit = md.get("tunit")
        seconds = _time_s(md["finterval"], unit, "s")
        if seconds is None:
            notes.append(f"frame interval {md['finterval']} {unit} in the file is not a time; ignored")
        return seconds
    if tif.is_shaped and tif.shaped_metadata and tif.shaped_metadata[0].get("finterval"):
        return float(tif.shaped_metadata[0]["finterval"])
    return None


def _tiff_metadata(tif: tifffile.TiffFile, index: int = 0) -> FileMetadata:
    series = tif.series[index]
    notes: list[str] = []
    names: list[str] | None = None
    y_um, x_um = None, None
    interval = None
    scene = None
    if tif.is_ome and tif.ome_metadata:
        images = _ome_image_elements(tif.ome_metadata)
        element = None
        if len(images) == len(tif.series):
            element = images[index]
        elif series.name:
            named = [im for im in images if im.get("Name") == series.name]
            element = named[0] if len(named) == 1 else None
        if element is not None:
            ome = _ome_image(element)
            y_um, x_um = ome.pixel_size_yx_um
            interval = ome.frame_interval_s
            if ome.channel_names and all(ome.channel_names):
                names = [str(n) for n in ome.channel_names]
    all_scenes = _tiff_scene_names(tif)
    if len(all_scenes) > 1:
        scene = all_scenes[index]
    if x_um is None:
        y_um, x_um = _resolution_um(tif, series.keyframe if index else tif.pages[0])
    if interval is None:
        interval = _tiff_interval(tif, notes)
    return FileMetadata(
        shape=tuple(series.shape),
        dtype=np.dtype(series.dtype),
        axes=_axes_from_tiff(tif, index),
        pixel_size_um=x_um,
        frame_interval_s=interval,
        channel_names=names,
        pixel_size_y_um=y_um,
        scene=scene,
        notes=notes,
    )


def _metadata(tif: tifffile.TiffFile) -> FileMetadata:
    return _tiff_metadata(tif, 0)


# ----------------------------------------------------------------------------- scenes

def _scene_index(names: Sequence[str], scene: int | str | None, path: str) -> int:
    """Index of ``scene`` (index or name) among the scenes ``names`` of ``path``."""
    n = len(names)
    if scene is None:
        if n == 1:
            return 0
        raise InputError(
            f"{path}: file has {n} scenes {list(names)}; choose one with scene=<index 0-{n - 1} "
            "or name> (io.image_names lists one image per scene)"
        )
    if isinstance(scene, (int, np.integer)) and not isinstance(scene, bool):
        if 0 <= int(scene) < n:
            return int(scene)
    elif isinstance(scene, str):
        if list(names).count(scene) == 1:
            return list(names).index(scene)
        if list(names).count(scene) > 1:
            raise InputError(f"{path}: {list(names).count(scene)} scenes are named {scene!r}; "
                             f"pass scene as an index 0-{n - 1} instead")
        if scene.isdigit() and int(scene) < n and scene not in names:
            return int(scene)
    raise InputError(
        f"{path}: scene {scene!r} is not one of the file's {n} scene(s) {list(names)}; "
        f"pass scene as an index 0-{n - 1} or one of these names"
    )


def _format(path: str) -> str:
    """``tiff``, ``zarr`` or ``bioio`` (every other format) for a path."""
    low = path.lower().rstrip("/\\")
    if low.endswith(TIFF_SUFFIXES):
        return "tiff"
    if low.endswith(".zarr") or (os.path.isdir(path) and any(
            os.path.exists(os.path.join(path, f)) for f in (".zattrs", ".zgroup", "zarr.json"))):
        return "zarr"
    if os.path.splitext(low)[1] not in _BIOIO_PLUGINS and os.path.isfile(path):
        with contextlib.suppress(OSError), open(path, "rb") as fh:  # TIFF-based: .stk, .lsm, .ndpi, ...
            if fh.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
                return "tiff"
    return "bioio"


@dataclass
class _Loaded:
    scenes: list[str]
    meta: FileMetadata
    data: np.ndarray | None = None
    first_frame: int | None = None  # set when data holds only frames first_frame: (a subset read)


def _frame_pages(series, axes: str | None, frames: tuple[int, int] | None) -> range | None:
    """The pages of a TIFF series that hold frames ``first:stop`` when T is its
    outermost axis and every page is one plane (else None: read everything)."""
    if frames is None or not series.axes.startswith("T") or (axes is not None and axes.upper() != series.axes):
        return None
    planes = int(np.prod(series.shape[:-2]))
    pages = series.pages
    if len(pages) != planes or any(p is None for p in pages) or tuple(pages[0].shape) != tuple(series.shape[-2:]):
        return None
    per_frame = planes // series.shape[0]
    first, stop = frames
    return range(first * per_frame, min(stop, series.shape[0]) * per_frame)


def _load(path: str, scene: int | str | None, *, pixels: bool,
          check: Callable[[FileMetadata], None] | None = None,
          corrupt: str = "TIFF is truncated or corrupt", frames: tuple[int, int] | None = None,
          axes: str | None = None) -> _Loaded:
    """Open ``path``, pick ``scene``, read its header (and its pixels when
    ``pixels``: with ``frames``, of TIFFs whose outermost axis is T only the
    pages of frames ``first:stop``, and ``_Loaded.first_frame`` says so), then
    close the file. ``check`` runs on the header before the pixels are read."""
    kind = _format(path)
    if kind == "zarr":
        return _zarr_load(path, scene, pixels=pixels, check=check)
    if kind == "bioio":
        return _bioio_load(path, scene, pixels=pixels, check=check)
    with _strict_tiff(path), _open_tiff(path) as tif:
        try:
            names = _tiff_scene_names(tif)
            index = _scene_index(names, scene, path)
            md = _tiff_metadata(tif, index)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"{path}: {corrupt} ({type(exc).__name__}: {exc}); re-export it") from exc
        if check is not None:
            check(md)
        data = None
        first_frame = None
        if pixels:
            try:
                series = tif.series[index]
                pages = _frame_pages(series, axes, frames)
                if pages is None:
                    data = series.asarray()
                else:
                    first_frame = frames[0]
                    data = tif.asarray(key=pages, series=index).reshape(
                        (len(pages) * series.shape[0] // len(series.pages),) + tuple(series.shape[1:]))
            except Exception as exc:
                raise InputError(
                    f"{path}: TIFF is truncated or corrupt ({type(exc).__name__}: {exc}); re-export it"
                ) from exc
    return _Loaded(names, md, data, first_frame)


# ----------------------------------------------------------------------------- bioio

#: Channel names bioio makes up when a file has none (``Channel:0:1``).
_GENERIC_CHANNEL = re.compile(r"^Channel:\d+(:\d+)*$")


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: bioio plugin of each vendor format pinned in requirements.lock.
_BIOIO_PLUGINS = {".czi": "bioio_czi", ".nd2": "bioio_nd2", ".lif": "bioio_lif"}


def _bioio_open(path: str):
    _check_exists(path)
    try:
        from bioio import BioImage
    except ImportError as exc:  # pragma: no cover - installed by requirements.lock
        raise InputError(
            f"{path}: reading this format needs bioio and its plugins; install them with "
            "pip install -r requirements.lock, or convert the file to OME-TIFF"
        ) from exc
    reader = None
    plugin = _BIOIO_PLUGINS.get(os.path.splitext(path)[1].lower())
    if plugin is not None:  # skip bioio's search through every installed plugin
        with contextlib.suppress(Exception):
            import importlib

            reader = importlib.import_module(plugin).Reader
    try:
        with _quiet_bioio():
            return BioImage(path, reader=reader)
    except Exception as exc:
        raise InputError(
            f"{path}: not an image format snakescope reads ({_short(exc)}); convert it to "
            "OME-TIFF or TIFF (e.g. Fiji with Bio-Formats: File > Save As > OME-TIFF)"
        ) from exc


def _czi_scene_count(path: str) -> int | None:
    """Scenes in the pixel data of a CZI (the S index of its sub-blocks), None if unknown."""
    try:
        from pylibCZIrw import czi as pyczi

        with pyczi.open_czi(path) as reader:
            return len(reader.scenes_bounding_rectangle)
    except Exception:
        return None


def _positive(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return _round6(value) if math.isfinite(value) and value > 0 else None


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if hasattr(value, "total_seconds"):
        return _positive(value.total_seconds())
    if hasattr(value, "to"):  # a pint quantity
        with contextlib.suppress(Exception):
            return _positive(value.to("s").magnitude)
    return _positive(value)


def _bioio_metadata(img, path: str, names: list[str], index: int) -> FileMetadata:
    axes = str(img.dims.order).upper()
    shape = tuple(int(s) for s in img.shape)
    channel_names = None
    with contextlib.suppress(Exception):
        found = [str(c) for c in img.channel_names]
        if found and not all(_GENERIC_CHANNEL.match(c) for c in found):
            channel_names = found
    y_um = x_um = None
    with contextlib.suppress(Exception):
        sizes = img.physical_pixel_sizes
        y_um, x_um = _positive(sizes.Y), _positive(sizes.X)
    interval = None
    with contextlib.suppress(Exception):
        interval = _seconds(img.time_interval)
    if interval is None:  # bioio-lif: from the time stamps, else the T axis (s/frame)
        with contextlib.suppress(Exception):
            interval = _seconds(getattr(img.reader, "timelapse_interval", None))
        if interval is None and path.lower().endswith(".lif") and "T" in axes:
            with contextlib.suppress(Exception):
                steps = np.diff(np.asarray(img.xarray_dask_data.coords["T"], dtype=float))
                interval = _positive(np.median(steps)) if steps.size else None
    return FileMetadata(
        shape=shape, dtype=np.dtype(img.dtype), axes=axes, pixel_size_um=x_um,
        frame_interval_s=interval, channel_names=channel_names, pixel_size_y_um=y_um,
        scene=names[index] if len(names) > 1 else None,
    )


@contextlib.contextmanager
def _quiet_bioio() -> Iterator[None]:
    """Silence the warnings bioio plugins log (with tracebacks) for metadata a file lacks."""
    loggers = [logging.getLogger(n) for n in ("bioio", "bioio_base", "bioio_czi", "bioio_lif", "bioio_nd2")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _bioio_load(path: str, scene: int | str | None, *, pixels: bool,
                check: Callable[[FileMetadata], None] | None = None) -> _Loaded:
    img = _bioio_open(path)
    try:
        with _quiet_bioio():
            names = [str(s) for s in img.scenes]
        if path.lower().endswith(".czi"):
            n_data = _czi_scene_count(path)
            if n_data is not None and n_data > len(names):
                raise InputError(
                    f"{path}: the CZI holds {n_data} scenes but its metadata names {len(names)} "
                    f"({names}), so the others cannot be read; export each scene to its own file "
                    "(ZEN: Split Scenes) or re-save the file in ZEN"
                )
        index = _scene_index(names, scene, path)
        with _quiet_bioio():
            img.set_scene(index)
            md = _bioio_metadata(img, path, names, index)
            if check is not None:
                check(md)
            data = np.asarray(img.get_image_data(md.axes)) if pixels else None
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            f"{path}: file could not be read ({_short(exc)}); check that it is complete "
            "(copy it again) or convert it to OME-TIFF"
        ) from exc
    return _Loaded(names, md, data)


# ----------------------------------------------------------------------------- OME-Zarr

def _zarr_attrs(group) -> dict:
    attrs = dict(group.attrs)
    ome = attrs.get("ome")  # OME-Zarr 0.5 keeps its metadata under "ome"
    return ome if isinstance(ome, dict) else attrs


@dataclass
class _ZarrImage:
    name: str
    group: Any
    multiscale: dict
    omero: dict | None


def _zarr_xml_names(path: str) -> list[str | None]:
    xml_path = os.path.join(path, "OME", "METADATA.ome.xml")
    if not os.path.isfile(xml_path):
        return []
    with open(xml_path, encoding="utf-8", errors="replace") as fh:
        return [im.get("Name") for im in _ome_image_elements(fh.read())]


def _zarr_images(path: str) -> list[_ZarrImage]:
    """Every image of an OME-Zarr: the multiscales of one image group, the series
    of a bioformats2raw layout, or the fields of every well of a plate."""
    _check_exists(path)
    try:
        import zarr

        root = zarr.open_group(path, mode="r")
        attrs = _zarr_attrs(root)
    except Exception as exc:
        raise InputError(f"{path}: not a readable Zarr ({_short(exc)}); check the folder is complete") from exc
    out: list[_ZarrImage] = []
    if attrs.get("multiscales"):
        many = len(attrs["multiscales"]) > 1
        for i, ms in enumerate(attrs["multiscales"]):
            out.append(_ZarrImage(str(ms.get("name") or i) if many else str(ms.get("name") or "0"),
                                  root, ms, attrs.get("omero")))
    elif "bioformats2raw.layout" in attrs:
        keys: list[str] = []
        with contextlib.suppress(Exception):
            keys = [str(k) for k in _zarr_attrs(root["OME"]).get("series", [])]
        if not keys:
            keys = sorted((k for k in root.group_keys() if k.isdigit()), key=int)
        xml_names = _zarr_xml_names(path)
        for i, key in enumerate(keys):
            sub = _zarr_attrs(root[key])
            ms = (sub.get("multiscales") or [{}])[0]
            name = (xml_names[i] if i < len(xml_names) else None) or ms.get("name") or key
            out.append(_ZarrImage(str(name), root[key], ms, sub.get("omero")))
    elif "plate" in attrs:
        for well in attrs["plate"].get("wells", []):
            well_group = root[well["path"]]
            for image in _zarr_attrs(well_group).get("well", {}).get("images", []):
                sub = _zarr_attrs(well_group[image["path"]])
                ms = (sub.get("multiscales") or [{}])[0]
                name = f"{well['path'].replace('/', '')}_{image['path']}"
                out.append(_ZarrImage(name, well_group[image["path"]], ms, sub.get("omero")))
    if not out or any(not im.multiscale.get("datasets") for im in out):
        raise InputError(
            f"{path}: not an OME-Zarr image (no 'multiscales' with datasets, "
            "'bioformats2raw.layout' or 'plate' in its attributes); write it as OME-Zarr or OME-TIFF"
        )
    return out


def _scale_of(transforms: Any, ndim: int) -> list[float]:
    scale = [1.0] * ndim
    for t in transforms or []:
        if isinstance(t, dict) and t.get("type") == "scale" and len(t.get("scale", [])) == ndim:
            scale = [a * float(b) for a, b in zip(scale, t["scale"])]
    return scale


def _zarr_metadata(image: _ZarrImage, array, many: bool) -> FileMetadata:
    ms = image.multiscale
    ndim = array.ndim
    declared = ms.get("axes") or list("tczyx"[-ndim:])
    names = [str(a.get("name") if isinstance(a, dict) else a).lower() for a in declared]
    units = [a.get("unit") if isinstance(a, dict) else None for a in declared]
    spare = iter("QRUVW")
    axes = "".join(n.upper() if n in ("t", "c", "z", "y", "x") else next(spare, "Q") for n in names)
    scale = _scale_of(ms["datasets"][0].get("coordinateTransformations"), ndim)
    top = _scale_of(ms.get("coordinateTransformations"), ndim)
    scale = [a * b for a, b in zip(scale, top)]

    def size(letter: str, convert: Callable) -> float | None:
        if letter not in axes or units[axes.index(letter)] in (None, ""):
            return None  # a scale without a unit is not a calibration
        return convert(scale[axes.index(letter)], units[axes.index(letter)])

    channel_names = None
    if image.omero and "C" in axes:
        labels = [c.get("label") for c in image.omero.get("channels", [])]
        if len(labels) == array.shape[axes.index("C")] and all(labels):
            channel_names = [str(label) for label in labels]
    return FileMetadata(
        shape=tuple(int(s) for s in array.shape), dtype=np.dtype(array.dtype), axes=axes,
        pixel_size_um=size("X", _length_um), frame_interval_s=size("T", _time_s),
        channel_names=channel_names, pixel_size_y_um=size("Y", _length_um),
        scene=image.name if many else None,
    )


def _zarr_load(path: str, scene: int | str | None, *, pixels: bool,
               check: Callable[[FileMetadata], None] | None = None) -> _Loaded:
    images = _zarr_images(path)
    names = [im.name for im in images]
    index = _scene_index(names, scene, path)
    image = images[index]
    try:
        array = image.group[image.multiscale["datasets"][0]["path"]]
        md = _zarr_metadata(image, array, len(images) > 1)
        if check is not None:
            check(md)
        data = np.asarray(array[...]) if pixels else None
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: OME-Zarr could not be read ({_short(exc)}); check the folder is complete") from exc
    return _Loaded(names, md, data)


# ----------------------------------------------------------------------------- public readers

def scenes(path: str | os.PathLike) -> list[str]:
    """Names of the scenes (positions, series) of an image file, header only.

    A file with one scene gives one entry. Pass a name or its index as
    ``read_image(path, scene=...)``.
    """
    return _load(os.fspath(path), 0, pixels=False).scenes


#: Characters kept in the scene part of image names.
_UNSAFE_SCENE = re.compile(r"[^A-Za-z0-9._-]")


def image_names(path: str | os.PathLike) -> list[tuple[str, int | None]]:
    """One ``(image name, scene)`` pair per scene of a file.

    A single-scene file gives ``[(image_name(path), None)]``; a multi-scene file
    gives ``<file>_<scene name>`` with every character of the scene name outside
    ``[A-Za-z0-9._-]`` replaced by ``_`` (or ``<file>_<index>`` when the names are
    empty or not unique), paired with the scene index to pass to
    :func:`read_image`.
    """
    names = scenes(path)
    base = image_name(path)
    if len(names) == 1:
        return [(base, None)]
    safe = [_UNSAFE_SCENE.sub("_", n) for n in names]
    if len(set(safe)) != len(safe) or any(not s.strip("_.") for s in safe):
        safe = [str(i) for i in range(len(names))]
    return [(f"{base}_{s}", i) for i, s in enumerate(safe)]


def _first(path: str | os.PathLike | Sequence[str | os.PathLike]) -> str:
    if isinstance(path, (str, os.PathLike)):
        return os.fspath(path)
    paths = list(path)
    if not paths:
        raise InputError("read_image: paths is an empty list; pass at least one file")
    return os.fspath(paths[0])


def read_metadata(path: str | os.PathLike | Sequence[str | os.PathLike], *,
                  scene: int | str | None = None) -> FileMetadata:
    """Read shape, dtype, axes, calibration and channel names from a file's header.

    Parameters
    ----------
    path : path-like or list of path-like
        Image file (TIFF, OME-TIFF, OME-Zarr, CZI, ND2, LIF, ...); of a list
        (an image assembled from many files) the first file is read.
    scene : int or str, optional
        Scene index or name for multi-scene files (None: the only scene).

    Returns
    -------
    FileMetadata
    """
    return _load(_first(path), scene, pixels=False, corrupt="TIFF has no image data").meta


def check_axes(shape: tuple[int, ...], axes: str, *, path: str = "", allow_z: bool = False) -> str:
    """Check that an axes string fits a shape; return it upper-cased.

    Letters other than T, C, Y, X are allowed only for dimensions of size 1
    (and ``Z`` of any size with ``allow_z``: a stack projected at read time).
    """
    axes = axes.upper()
    where = f"{path}: " if path else ""
    if len(axes) != len(shape):
        raise InputError(
            f"{where}axes '{axes}' has {len(axes)} letters but the image has {len(shape)} "
            f"dimensions {tuple(shape)}; set the dataset's 'axes' to one letter per "
            "dimension (e.g. TCYX)"
        )
    if len(set(axes)) != len(axes):
        raise InputError(f"{where}axes '{axes}' repeats a letter; set 'axes' correctly (e.g. TCYX)")
    for letter, size in zip(axes, shape):
        if letter not in KNOWN_AXES and size != 1 and not (allow_z and letter == "Z"):
            what = {"S": "an RGB/sample axis", "Z": "a Z stack"}.get(letter, f"axis '{letter}'")
            raise InputError(
                f"{where}image has {what} of size {size} (axes {axes}, shape {tuple(shape)}); "
                "snakescope analyses single-plane fluorescence channels: split RGB into channels "
                "or project Z stacks (z_projection 'max', 'mean' or 'sum'), or correct the "
                "dataset's 'axes'"
            )
    if "Y" not in axes or "X" not in axes:
        raise InputError(f"{where}axes '{axes}' must contain Y and X; fix the dataset's 'axes'")
    return axes


def default_axes(shape: tuple[int, ...], file_axes: str | None, *, path: str = "") -> str:
    """Axes of an image when the config gives none: from the file's metadata,
    ``YX`` for 2-D, ``YXS`` for RGB(A); otherwise the user must say."""
    if file_axes is not None:
        return file_axes
    if len(shape) == 2:
        return "YX"
    if len(shape) == 3 and shape[-1] in (3, 4) and shape[0] > 4:
        return "YXS"
    raise InputError(
        f"{path}: image has shape {tuple(shape)} and no axes metadata; "
        "set the dataset's 'axes' (e.g. TYX, CYX or TCYX)"
    )


def normalise_axes(data: np.ndarray, axes: str, *, path: str = "") -> np.ndarray:
    """Reorder ``data`` with the given axes string into ``TCYX``.

    Singleton dimensions with letters outside ``TCYX`` are dropped; any other
    letter (e.g. a real ``Z`` or an RGB ``S`` sample axis) is an error.
    """
    axes = check_axes(tuple(data.shape), axes, path=path)
    keep = [i for i, a in enumerate(axes) if a in KNOWN_AXES]
    squeeze = tuple(i for i, a in enumerate(axes) if a not in KNOWN_AXES)
    data = np.squeeze(data, axis=squeeze) if squeeze else data
    kept_axes = "".join(axes[i] for i in keep)
    for letter in "TC":
        if letter not in kept_axes:
            data = data[np.newaxis]
            kept_axes = letter + kept_axes
    order = [kept_axes.index(a) for a in KNOWN_AXES]
    return np.transpose(data, order)


def project_z(data: np.ndarray, axis: int, *, method: str) -> np.ndarray:
    """Project a Z stack along ``axis``.

    Parameters
    ----------
    data : ndarray
        Pixel data.
    axis : int
        The Z axis of ``data``.
    method : {'max', 'mean', 'sum'}
        ``max`` keeps the dtype; ``mean`` gives float32; ``sum`` gives float32
        for float input and an integer type wide enough never to overflow
        (uint32/int32, or uint64/int64 for very deep stacks) for integer input.

    Returns
    -------
    ndarray
        ``data`` without ``axis``.
    """
    if method not in Z_PROJECTIONS:
        raise InputError(f"z_projection {method!r} is not one of {list(Z_PROJECTIONS)} (or None)")
    if method == "max":
        return np.max(data, axis=axis)
    if method == "mean":
        return np.mean(data, axis=axis, dtype=np.float64).astype(np.float32)
    if data.dtype.kind == "f":
        return np.sum(data, axis=axis, dtype=np.float64).astype(np.float32)
    if data.dtype == bool:
        data = data.view(np.uint8)
    info = np.iinfo(data.dtype)
    worst = max(abs(int(info.max)), abs(int(info.min))) * max(int(data.shape[axis]), 1)
    if info.min < 0:
        wide = np.int32 if worst <= np.iinfo(np.int32).max else np.int64
    else:
        wide = np.uint32 if worst <= np.iinfo(np.uint32).max else np.uint64
    return np.sum(data, axis=axis, dtype=wide)


def _same_size(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-3)


def _square_pixels(path: str, pixel_size_um: float | None) -> Callable[[FileMetadata], None]:
    def check(md: FileMetadata) -> None:
        x, y = md.pixel_size_um, md.pixel_size_y_um
        if pixel_size_um is None and x is not None and y is not None and not _same_size(x, y):
            raise InputError(
                f"{path}: pixels are not square (X {x:g} µm, Y {y:g} µm); resample the image "
                "to square pixels, or pass pixel_size_um to use one size for both"
            )
    return check


def _read_tcyx(path: str, *, axes: str | None, scene: int | str | None, z_projection: str | None,
               pixel_size_um: float | None,
               frames: tuple[int, int] | None = None) -> tuple[np.ndarray, FileMetadata, str, list[str]]:
    """Pixels of one scene of one file as TCYX (only frames ``first:stop`` with
    ``frames``), its header, the axes used, its scene names."""
    if z_projection is not None and z_projection not in Z_PROJECTIONS:
        raise InputError(f"z_projection {z_projection!r} is not one of {list(Z_PROJECTIONS)} (or None)")
    loaded = _load(path, scene, pixels=True, check=_square_pixels(path, pixel_size_um), frames=frames, axes=axes)
    data, md = loaded.data, loaded.meta
    assert data is not None
    if data.dtype.kind not in "uif" or data.dtype.kind == "c":
        raise InputError(f"{path}: pixel type {data.dtype} is not supported; save as 8/16-bit or float")
    if axes is None:
        axes = default_axes(tuple(data.shape), md.axes, path=path)
    used = axes.upper()
    if z_projection is not None and len(used) == data.ndim and "Z" in used:
        check_axes(tuple(data.shape), used, path=path, allow_z=True)
        data = project_z(data, used.index("Z"), method=z_projection)
        used = used.replace("Z", "")
    tcyx = normalise_axes(data, used, path=path)
    if frames is not None and loaded.first_frame is None:  # read whole: keep the frames asked for
        tcyx = tcyx[frames[0]:frames[1]]
    return tcyx, md, axes, loaded.scenes


def _file_channel_names(names: list[str] | None, n: int) -> list[str] | None:
    if names and len(names) == n and all(names) and len(set(names)) == n:
        return list(names)
    return None


def _overrides(md: FileMetadata, notes: list[str], *, pixel_size_um: float | None,
               frame_interval_s: float | None) -> None:
    x, y = md.pixel_size_um, md.pixel_size_y_um
    if pixel_size_um is not None and x is not None:
        if y is not None and not _same_size(x, y):
            notes.append(f"pixel_size_um {pixel_size_um:g} overrides the file's non-square pixels "
                         f"(X {x:g} µm, Y {y:g} µm)")
        elif not _same_size(pixel_size_um, x):
            notes.append(f"pixel_size_um {pixel_size_um:g} overrides {x:g} µm in the file")
    if (frame_interval_s is not None and md.frame_interval_s is not None
            and not _same_size(frame_interval_s, md.frame_interval_s)):
        notes.append(f"frame_interval_s {frame_interval_s:g} overrides {md.frame_interval_s:g} s in the file")


def read_image(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    axes: str | None = None,
    channels: Sequence[str] | None = None,
    pixel_size_um: float | None = None,
    frame_interval_s: float | None = None,
    scene: int | str | None = None,
    z_projection: str | None = None,
    grid: tuple[int, int] | None = None,
    frames: tuple[int, int] | None = None,
) -> Image:
    """Read an image into an :class:`Image` normalised to ``TCYX``.

    Parameters
    ----------
    path : path-like or list of path-like
        The image file: TIFF (plain, ImageJ, OME-TIFF), OME-Zarr, or a vendor
        format bioio reads (CZI, ND2, LIF, ...). With ``grid``: a flat list of
        files in frame-major order (``t0c0, t0c1, t1c0, ...``), each one plane.
    axes : str, optional
        Axes of the file (letters T, C, Y, X, and Z with ``z_projection``),
        overriding the file's metadata. Required for plain TIFFs with more than
        two dimensions.
    channels : sequence of str, optional
        Channel names in file order; their number must match the C dimension.
        Default: the file's channel names (OME ``Channel Name``, vendor names),
        else ``ch0, ch1, ...``.
    pixel_size_um, frame_interval_s : float, optional
        Calibration overriding the file's metadata (a difference is recorded in
        :attr:`Image.notes`). Non-square pixels are refused unless
        ``pixel_size_um`` is given.
    scene : int or str, optional
        Scene (position, series) of a multi-scene file, by index or name. None
        reads the only scene; a file with several is an error naming them.
    z_projection : {'max', 'mean', 'sum'}, optional
        Project a Z stack at read time (see :func:`project_z` for dtypes).
        Without it a Z stack is an error.
    grid : (int, int), optional
        ``(n_frames, n_channels)`` of an image assembled from ``path``, a list
        of ``n_frames * n_channels`` files of equal shape and dtype.
    frames : (int, int), optional
        Only frames ``first:stop`` (a share of a movie for one worker). TIFFs
        whose outermost axis is T and grids read only those planes; other
        files are read whole and cut.

    Returns
    -------
    Image
    """
    if grid is not None or not isinstance(path, (str, os.PathLike)):
        return _read_grid(path, grid=grid, axes=axes, channels=channels, pixel_size_um=pixel_size_um,
                          frame_interval_s=frame_interval_s, scene=scene, z_projection=z_projection,
                          frames=frames)
    path = os.fspath(path)
    tcyx, md, axes, _ = _read_tcyx(path, axes=axes, scene=scene, z_projection=z_projection,
                                   pixel_size_um=pixel_size_um, frames=frames)
    notes = list(md.notes)
    n_channels = tcyx.shape[1]
    in_file = _file_channel_names(md.channel_names, n_channels)
    if channels is None:
        names = in_file or [f"ch{i}" for i in range(n_channels)]
    else:
        names = [str(c) for c in channels]
        if len(names) != n_channels:
            raise InputError(
                f"{path}: config lists {len(names)} channels {names} but the image has "
                f"{n_channels} (axes {axes}, shape {tuple(md.shape)}); fix the dataset's "
                "'channels' or 'axes'"
            )
        if in_file and names != in_file:
            notes.append(f"channels {names} override {in_file} in the file")
    _check_finite(tcyx, path)
    _overrides(md, notes, pixel_size_um=pixel_size_um, frame_interval_s=frame_interval_s)
    return Image(
        data=tcyx,
        channels=names,
        pixel_size_um=pixel_size_um if pixel_size_um is not None else md.pixel_size_um,
        frame_interval_s=frame_interval_s if frame_interval_s is not None else md.frame_interval_s,
        axes=axes,
        path=path,
        scene=md.scene,
        notes=notes,
    )


def _check_finite(tcyx: np.ndarray, path: str) -> None:
    if tcyx.dtype.kind == "f" and not np.isfinite(tcyx).all():
        raise InputError(
            f"{path}: image contains NaN or infinite pixels; replace them (e.g. by 0) before analysis"
        )


def _check_grid(paths: list[str], grid: Any) -> tuple[int, int]:
    where = paths[0] if paths else "read_image"
    try:
        n_frames, n_channels = (int(g) for g in grid)
        ok = n_frames >= 1 and n_channels >= 1 and tuple(grid) == (n_frames, n_channels)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"{where}: grid {grid!r} must be (n_frames, n_channels), two integers >= 1")
    if len(paths) != n_frames * n_channels:
        raise InputError(
            f"{where}: grid {tuple(grid)} needs {n_frames * n_channels} files (n_frames x n_channels) "
            f"but paths has {len(paths)}; pass one file per frame and channel in frame-major order "
            "(t0c0, t0c1, t1c0, ...)"
        )
    return n_frames, n_channels


def _read_grid(paths: Any, *, grid: Any, axes: str | None, channels: Sequence[str] | None,
               pixel_size_um: float | None, frame_interval_s: float | None,
               scene: int | str | None, z_projection: str | None,
               frames: tuple[int, int] | None = None) -> Image:
    paths = [os.fspath(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not paths:
        raise InputError("read_image: paths is an empty list; pass at least one file")
    if grid is None:
        if len(paths) != 1:
            raise InputError(
                f"{paths[0]}: {len(paths)} files given without grid; pass grid=(n_frames, n_channels) "
                "to assemble them (frame-major order: t0c0, t0c1, t1c0, ...)"
            )
        return read_image(paths[0], axes=axes, channels=channels, pixel_size_um=pixel_size_um,
                          frame_interval_s=frame_interval_s, scene=scene, z_projection=z_projection,
                          frames=frames)
    n_frames, n_channels = _check_grid(paths, grid)
    if frames is not None:
        first, stop = frames[0], min(frames[1], n_frames)
        paths, n_frames = paths[first * n_channels:stop * n_channels], stop - first
    out: np.ndarray | None = None
    first_md: FileMetadata | None = None
    file_names: list[str | None] = []
    for k, path in enumerate(paths):
        tcyx, md, used, _ = _read_tcyx(path, axes=axes, scene=scene, z_projection=z_projection,
                                       pixel_size_um=pixel_size_um)
        if out is None:
            if tcyx.shape[:2] != (1, 1):
                raise InputError(
                    f"{path}: each file of a grid must hold one plane (YX, or ZYX with z_projection) "
                    f"but this one has shape {tuple(md.shape)} (axes {used}); read it alone "
                    "(grid=None) or split it into one file per frame and channel"
                )
            first_md = md
            out = np.empty((n_frames, n_channels) + tcyx.shape[2:], dtype=tcyx.dtype)
        elif tuple(md.shape) != tuple(first_md.shape) or md.dtype != first_md.dtype \
                or tcyx.shape[2:] != out.shape[2:] or tcyx.dtype != out.dtype:
            raise InputError(
                f"{path}: shape {tuple(md.shape)} and dtype {md.dtype} differ from the first file "
                f"{paths[0]} (shape {tuple(first_md.shape)}, dtype {first_md.dtype}); every file of "
                "an image must have the same size and pixel type"
            )
        t, c = divmod(k, n_channels)
        out[t, c] = tcyx[0, 0]
        if t == 0:
            names = md.channel_names
            file_names.append(names[0] if names and len(names) == 1 else None)
    assert out is not None and first_md is not None
    notes = list(first_md.notes)
    in_file = _file_channel_names(file_names, n_channels)  # type: ignore[arg-type]
    if channels is None:
        names = in_file or [f"ch{i}" for i in range(n_channels)]
    else:
        names = [str(c) for c in channels]
        if len(names) != n_channels:
            raise InputError(
                f"{paths[0]}: config lists {len(names)} channels {names} but the grid has "
                f"{n_channels}; fix the dataset's 'channels' or the grid"
            )
        if in_file and names != in_file:
            notes.append(f"channels {names} override {in_file} in the files")
    _check_finite(out, paths[0])
    _overrides(first_md, notes, pixel_size_um=pixel_size_um, frame_interval_s=frame_interval_s)
    return Image(
        data=out,
        channels=names,
        pixel_size_um=pixel_size_um if pixel_size_um is not None else first_md.pixel_size_um,
        frame_interval_s=frame_interval_s if frame_interval_s is not None else first_md.frame_interval_s,
        axes="TCYX",
        path=paths[0],
        scene=first_md.scene,
        notes=notes,
    )


# ----------------------------------------------------------------------------- writing

#: Longest file name (bytes) of common file systems, and the random part tempfile adds.
_NAME_MAX = 255
_RANDOM_CHARS = 8


def _temp_suffix(path: str) -> str:
    suffix = os.path.splitext(path)[1]
    return suffix if len(suffix.encode()) <= 32 else ""


def _temp_prefix(path: str) -> str:
    """``.tmp-<name>-``, with a long name cut and a hash of it added so that the
    temporary's name stays within 255 bytes."""
    base = os.path.basename(path.rstrip(os.sep))
    prefix = f".tmp-{base}-"
    budget = _NAME_MAX - _RANDOM_CHARS - len(_temp_suffix(path).encode())
    if len(prefix.encode()) <= budget:
        return prefix
    digest = hashlib.sha1(base.encode()).hexdigest()[:12]
    keep = max(budget - len(".tmp-~-") - len(digest), 0)
    head = base.encode()[:keep].decode("utf-8", "ignore")
    return f".tmp-{head}~{digest}-"


def remove_stale_temporaries(path: str | os.PathLike) -> str:
    """Remove temporary files (or folders) left next to ``path`` by an earlier,
    killed write of the same output, and return the prefix for a new one.

    Temporaries are named ``.tmp-<name>-<random>`` (long names shortened, with a
    hash); only the job writing ``<name>`` creates them, so removing them cannot
    disturb another job.
    """
    import shutil

    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    prefix = _temp_prefix(path)
    if os.path.isdir(directory):
        for entry in os.listdir(directory):
            if entry.startswith(prefix):
                stale = os.path.join(directory, entry)
                if os.path.isdir(stale):
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(stale)
    return prefix


def _no_space(exc: BaseException) -> str | None:
    """'no space left on device' / 'disk quota exceeded' when ``exc`` (or its cause)
    is a failed write for lack of space, else None."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OSError):
            if exc.errno == errno.ENOSPC:
                return "no space left on device"
            if exc.errno == getattr(errno, "EDQUOT", -1):
                return "disk quota exceeded"
            if re.search(r"\d+ requested and \d+ written", str(exc)):  # numpy's short write
                return "no space left on device"
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return None


def _space_error(path: str, exc: BaseException) -> InputError | None:
    why = _no_space(exc)
    if why is None:
        return None
    return InputError(f"{path}: {why} while writing it; free space on that disk (or write the "
                      "results to another one) and run again")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; move it into place on success.

    On any exception the temporary file is removed and ``path`` is untouched; a
    write that fails for lack of disk space raises one :class:`InputError` line.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    prefix = remove_stale_temporaries(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=_temp_suffix(path), dir=directory)
    except OSError as exc:
        error = _space_error(path, exc)
        if error is not None:
            raise error from exc
        raise
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        error = _space_error(path, exc)
        if error is not None:
            raise error from exc
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary folder next to ``path``; it replaces ``path`` on success
    (with the usual permissions) and is removed on any exception."""
    import shutil

    path = os.fspath(path).rstrip(os.sep)
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    try:
        tmp = tempfile.mkdtemp(prefix=remove_stale_temporaries(path), dir=parent)
    except OSError as exc:
        error = _space_error(path, exc)
        if error is not None:
            raise error from exc
        raise
    try:
        yield tmp
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        error = _space_error(path, exc)
        if error is not None:
            raise error from exc
        raise
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.replace(tmp, path)


def _umask() -> int:
    """The process umask (read without changing it, via /proc when possible)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def write_stack(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    axes: str = "TYX",
    pixel_size_um: float | None = None,
    frame_interval_s: float | None = None,
    compress: bool = False,
) -> None:
    """Write an ImageJ hyperstack atomically with calibration and fixed metadata.

    Parameters
    ----------
    path : path-like
        Destination ``.tif``.
    data : ndarray
        Array whose dimensions are named by ``axes`` (subset of TZCYX in that order).
    axes : str
        Axes of ``data``, e.g. ``TYX`` or ``TCYX``.
    pixel_size_um, frame_interval_s : float, optional
        Calibration written to the ImageJ metadata and resolution tags.
    compress : bool
        zlib-compress (smaller, slower); intermediates are written uncompressed.
    """
    data = np.asarray(data)
    if data.dtype == bool:
        data = data.astype(np.uint8)
    if data.dtype.kind == "f" and data.dtype != np.float32:
        data = data.astype(np.float32)
    if data.dtype == np.uint32 or data.dtype == np.int64 or data.dtype == np.int32:
        # ImageJ hyperstacks support uint8/uint16/float32 only: uint32 labels go as float32
        # would lose precision above 2**24; write a plain (non-ImageJ) TIFF with axes metadata.
        return _write_plain(path, data.astype(np.uint32), axes=axes, pixel_size_um=pixel_size_um,
                            frame_interval_s=frame_interval_s, compress=compress)
    metadata: dict = {"axes": axes}
    kwargs: dict = {}
    if pixel_size_um:
        metadata["unit"] = "um"
        kwargs["resolution"] = (1.0 / pixel_size_um, 1.0 / pixel_size_um)
    if frame_interval_s:
        metadata["finterval"] = float(frame_interval_s)
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp, data, imagej=True, metadata=metadata,
            compression="zlib" if compress else None, **kwargs,
        )


def _write_plain(path, data, *, axes, pixel_size_um, frame_interval_s, compress) -> None:
    """uint32 labels: a shaped TIFF (axes in its JSON description, calibration in
    the resolution tags in cm; Fiji opens it as a 32-bit stack)."""
    metadata: dict = {"axes": axes}
    kwargs: dict = {}
    if pixel_size_um:
        kwargs["resolution"] = (1e4 / pixel_size_um, 1e4 / pixel_size_um)
        kwargs["resolutionunit"] = "CENTIMETER"
    if frame_interval_s:
        metadata["finterval"] = float(frame_interval_s)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, metadata=metadata, compression="zlib" if compress else None, **kwargs)


def read_stack(path: str | os.PathLike) -> tuple[np.ndarray, FileMetadata]:
    """Read a stack written by :func:`write_stack` (a workflow intermediate) as ``TYX``.

    Returns the array (2-D files get a leading T axis) and its metadata.
    """
    with _strict_tiff(str(path)), _open_tiff(path) as tif:
        md = _metadata(tif)
        data = tif.series[0].asarray()
    return (data[np.newaxis] if data.ndim == 2 else data), md


def label_dtype(max_label: int) -> np.dtype:
    """uint16 when labels fit, else uint32."""
    return np.dtype(np.uint16) if max_label <= np.iinfo(np.uint16).max else np.dtype(np.uint32)


#: How tables are written (floats to 6 significant digits: byte-identical reruns).
_CSV = {"index": False, "float_format": "%.6g", "lineterminator": "\n"}


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a CSV atomically with a fixed float format (byte-identical reruns)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(csv_text(table))


#: Characters that make the csv module quote a field.
_QUOTED = frozenset(',"\n\r')


def _column_texts(values: np.ndarray) -> list[str] | None:
    """The fields ``DataFrame.to_csv(**_CSV)`` writes for one column, or None
    where this function does not know them for sure (then pandas writes)."""
    kind = values.dtype.kind
    if kind == "f":
        texts = ["%.6g" % v for v in values.tolist()]
        for i in np.flatnonzero(np.isnan(values)).tolist():
            texts[i] = ""
        return texts
    if kind in "iu":
        return values.astype(str).tolist()
    if kind == "b":
        return ["True" if v else "False" for v in values.tolist()]
    if kind == "O":
        texts = []
        for v in values.tolist():
            if isinstance(v, str):
                if _QUOTED.intersection(v):
                    return None
                texts.append(v)
            elif v is None or (isinstance(v, float) and v != v):
                texts.append("")
            else:
                return None
        return texts
    return None


def csv_text(table: pd.DataFrame, *, header: bool = True) -> str:
    """The text :func:`write_table` writes for ``table`` (``header=False``: the
    rows only).

    The same characters as ``table.to_csv(index=False, float_format="%.6g",
    lineterminator="\\n")``, built column by column: pandas formats every float
    through a Python call of its own (~1 µs a value; a table of 25,000 objects
    and 50 columns took 0.7 s). Tables with a column this does not handle for
    sure (a field the csv module would quote, other dtypes, one column: an
    empty field alone on a line is quoted) are written by pandas.
    """
    columns = [str(c) for c in table.columns]
    texts = None
    if (len(columns) > 1 and len(table) and table.columns.is_unique and not isinstance(table.columns, pd.MultiIndex)
            and not any(_QUOTED.intersection(c) for c in columns)):
        texts = []
        for name in table.columns:
            column = table[name]
            if isinstance(column.dtype, pd.StringDtype):  # pandas' default for text since 3.0
                column = _column_texts(column.to_numpy(dtype=object, na_value=None))
            else:
                column = _column_texts(column.to_numpy()) if isinstance(column.dtype, np.dtype) else None
            if column is None:
                texts = None
                break
            texts.append(column)
    if texts is None:
        buffer = StringIO()
        table.to_csv(buffer, header=header, **_CSV)
        return buffer.getvalue()
    lines = [",".join(columns)] if header else []
    lines.extend(map(",".join, zip(*texts)))
    lines.append("")
    return "\n".join(lines)


def _csv_round_trip_slow(table: pd.DataFrame) -> pd.DataFrame:
    return read_table(StringIO(csv_text(table)))


def round_sig6(values: np.ndarray) -> np.ndarray:
    """``float("%.6g" % v)`` for every value of a float array, vectorised.

    The candidate ``rint(v * 10**k) / 10**k`` (``k`` = 5 - decimal exponent) is
    exact (an integer below 10**6 divided or multiplied by an exact power of
    ten, rounded once) unless ``v * 10**k`` lies within rounding error of a
    half-integer, the exponent is off by one (``v`` near a power of ten), or
    ``|k| > 22``; those values, zeros and non-finite values are formatted one
    by one.
    """
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"):
        k = 5.0 - np.floor(np.log10(np.abs(v)))
        ok = np.isfinite(v) & (v != 0) & np.isfinite(k) & (np.abs(k) <= 22)
        kk = np.where(ok, k, 0.0)
        scaled = v * np.power(10.0, kk)
        r = np.rint(scaled)
        ok &= (np.abs(r) >= 1e5) & (np.abs(r) < 1e6)
        ok &= np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) > 1e-6
        pos = kk >= 0
        out = np.where(pos, r / np.power(10.0, np.where(pos, kk, 0.0)),
                       r * np.power(10.0, np.where(pos, 0.0, -kk)))
    slow = ~ok & np.isfinite(v)
    if slow.any():
        out[slow] = [float("%.6g" % x) for x in v[slow].tolist()]
    out[~np.isfinite(v)] = v[~np.isfinite(v)]
    return out


def csv_round_trip(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` as :func:`read_table` gives it back after :func:`write_table`
    (floats to 6 significant digits, column types inferred from the text), in
    memory: what a later step computes from it does not depend on whether the
    file was written. Number and boolean columns are converted directly (a float
    column whose values all print as integers becomes int64, as ``read_csv``
    infers); other columns go through CSV text."""
    if len(table) == 0 or not table.columns.is_unique:
        return _csv_round_trip_slow(table)
    out = {}
    text = []
    for name in table.columns:
        col = table[name]
        kind = col.dtype.kind
        if kind == "b" and col.dtype == np.bool_:
            out[name] = col.to_numpy()
        elif kind == "i" or (kind == "u" and int(col.max()) <= np.iinfo(np.int64).max):
            out[name] = col.to_numpy().astype(np.int64)
        elif kind == "f":
            rounded = round_sig6(col.to_numpy())
            integral = np.isfinite(rounded).all() and (np.abs(rounded) < 1e6).all() and \
                (rounded == np.floor(rounded)).all()
            out[name] = rounded.astype(np.int64) if integral else rounded
        else:
            text.append(name)
            out[name] = None
    slow = []
    for name in text:
        plain = _plain_text_back(table[name].tolist())
        if plain is None:
            slow.append(name)
        else:
            out[name] = plain
    if slow:
        back = _csv_round_trip_slow(table[slow])
        for name in slow:
            out[name] = back[name]
    return pd.DataFrame({name: out[name] for name in table.columns}, index=pd.RangeIndex(len(table)))


#: Fields ``read_csv`` reads as missing (its default ``na_values``) or as booleans.
_NOT_PLAIN = frozenset(["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                        "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"])


def _plain_text_back(values: list) -> np.ndarray | pd.Series | None:
    """What ``read_csv`` makes of a written text column, without writing it,
    when every value is plain text or missing (``None``, NaN, ``""``): the same
    strings (missing ones NaN), or NaN floats when all are missing. None for
    anything else (text that reads as a number, a boolean or a missing value,
    or that needs quoting): that goes through CSV text."""
    texts: list[str | None] = []
    for v in values:
        if v is None or v == "" or (isinstance(v, float) and v != v):
            texts.append(None)
            continue
        if (not isinstance(v, str) or v in _NOT_PLAIN or v.strip() != v or _QUOTED.intersection(v)
                or v.lower() in ("true", "false")):
            return None
        try:
            float(v)
        except ValueError:
            texts.append(v)
        else:
            return None
    if all(t is None for t in texts):
        return np.full(len(texts), np.nan)
    return pd.Series(texts, dtype=pd.StringDtype(na_value=np.nan))


def write_parquet(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a table as Parquet (pyarrow, zstd, no index) atomically; the same
    table gives the same bytes."""
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, engine="pyarrow", index=False, compression="zstd")


def read_table(path: str | os.PathLike | StringIO) -> pd.DataFrame:
    """Read a CSV written by :func:`write_table` (a path or a text buffer; empty file → empty table)."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def image_name(path: str | os.PathLike) -> str:
    """Image identifier from a path: the file name without ``.tif``/``.tiff``/``.ome.tif``
    (or ``.ome.zarr``/``.zarr``, ``.ome.btf``), else without its last extension."""
    name = Path(path).name
    for ext in (".ome.tiff", ".ome.tif", ".ome.btf", ".ome.zarr", ".tiff", ".tif", ".zarr"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(path).stem


def frame_count(path: str | os.PathLike | Sequence[str | os.PathLike], *, axes: str | None = None,
                scene: int | str | None = None, grid: tuple[int, int] | None = None,
                z_projection: str | None = None) -> int:
    """Number of time frames of an image, from its header only (no pixel data).

    With ``grid`` (an image assembled from a list of files) it is ``grid[0]``;
    ``z_projection`` accepts a Z axis of any size as :func:`read_image` does.
    """
    if grid is not None or not isinstance(path, (str, os.PathLike)):
        paths = [os.fspath(p) for p in ([path] if isinstance(path, (str, os.PathLike)) else path)]
        if grid is None and len(paths) == 1:
            return frame_count(paths[0], axes=axes, scene=scene, z_projection=z_projection)
        if grid is None:
            raise InputError(
                f"{paths[0] if paths else 'frame_count'}: {len(paths)} files given without grid; "
                "pass grid=(n_frames, n_channels)"
            )
        n_frames, _ = _check_grid(paths, grid)
        _check_exists(paths[0])
        return n_frames
    md = read_metadata(path, scene=scene)
    axes = check_axes(md.shape, axes or default_axes(md.shape, md.axes, path=str(path)), path=str(path),
                      allow_z=z_projection is not None)
    return int(md.shape[axes.index("T")]) if "T" in axes else 1
