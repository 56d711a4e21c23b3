"""Reading and writing images and tables: the one place for I/O and metadata.

Images are normalised to a ``TCYX`` array in memory whatever their axes on disk.
Every file is written atomically (temporary file in the same directory, then
``os.replace``), so an interrupted or failed step never leaves a partial output.
TIFFs are ImageJ hyperstacks with calibration, written without time stamps so
that reruns produce identical bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import tifffile

from .errors import InputError

#: Axes letters snakescope understands (time, channel, y, x).
KNOWN_AXES = "TCYX"


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
        Where the image was read from.
    """

    data: np.ndarray
    channels: list[str]
    pixel_size_um: float | None = None
    frame_interval_s: float | None = None
    axes: str = "TCYX"
    path: str = ""

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
    """Header information of a TIFF file (no pixel data read)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    axes: str | None
    pixel_size_um: float | None
    frame_interval_s: float | None


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


def _open_tiff(path: str | os.PathLike) -> tifffile.TiffFile:
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found; check the dataset's 'images' pattern")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path}: file is empty; re-export the image")
    try:
        return tifffile.TiffFile(path)
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise InputError(
            f"{path}: not a readable TIFF ({type(exc).__name__}: {exc}); "
            "re-export it as TIFF (e.g. Fiji: File > Save As > Tiff)"
        ) from exc


def _axes_from_tiff(tif: tifffile.TiffFile) -> str | None:
    # Plain TIFFs: tifffile names unknown dimensions Q or I; treat their axes as unknown.
    if tif.is_imagej or tif.is_ome or (tif.is_shaped and tif.shaped_metadata
                                        and tif.shaped_metadata[0].get("axes")):
        return tif.series[0].axes.upper()
    return None


def _pixel_size_from_tiff(tif: tifffile.TiffFile) -> float | None:
    page = tif.pages[0]
    tags = page.tags
    if tif.is_ome and tif.ome_metadata:
        import re

        m = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', tif.ome_metadata)
        unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', tif.ome_metadata)
        if m:
            value = float(m.group(1))
            u = unit.group(1) if unit else "µm"
            scale = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3}.get(u)
            if scale is not None and value > 0:
                return float(f"{value * scale:.6g}")
    if "XResolution" not in tags:
        return None
    num, den = tags["XResolution"].value
    if num <= 0 or den <= 0:
        return None
    px_per_unit = num / den
    unit = None
    if tif.is_imagej and tif.imagej_metadata:
        unit = tif.imagej_metadata.get("unit")
    if unit is None:
        res_unit = tags.get("ResolutionUnit")
        code = int(res_unit.value) if res_unit is not None else 1
        unit = {2: "inch", 3: "cm"}.get(code)
    factors = {"micron": 1.0, "um": 1.0, "µm": 1.0, "\\u00B5m": 1.0, "nm": 1e-3, "mm": 1e3,
               "cm": 1e4, "inch": 25400.0}
    if unit not in factors:
        return None
    if unit == "inch" and px_per_unit in (72.0, 96.0, 300.0):
        return None  # screen/print resolution written by default, not a calibration
    # 6 significant digits: undo the rounding of the rational resolution tag
    return float(f"{factors[unit] / px_per_unit:.6g}")


def _interval_from_tiff(tif: tifffile.TiffFile) -> float | None:
    if tif.is_imagej and tif.imagej_metadata and tif.imagej_metadata.get("finterval"):
        return float(tif.imagej_metadata["finterval"])
    if tif.is_shaped and tif.shaped_metadata and tif.shaped_metadata[0].get("finterval"):
        return float(tif.shaped_metadata[0]["finterval"])
    return None


def _metadata(tif: tifffile.TiffFile) -> FileMetadata:
    series = tif.series[0]
    return FileMetadata(
        shape=tuple(series.shape),
        dtype=np.dtype(series.dtype),
        axes=_axes_from_tiff(tif),
        pixel_size_um=_pixel_size_from_tiff(tif),
        frame_interval_s=_interval_from_tiff(tif),
    )


def read_metadata(path: str | os.PathLike) -> FileMetadata:
    """Read shape, dtype, axes and calibration from a TIFF header.

    Parameters
    ----------
    path : path-like
        TIFF file (ImageJ hyperstack, OME-TIFF or plain TIFF).

    Returns
    -------
    FileMetadata
    """
    with _open_tiff(path) as tif:
        try:
            return _metadata(tif)
        except Exception as exc:
            raise InputError(f"{path}: TIFF has no image data ({exc}); re-export it") from exc


def check_axes(shape: tuple[int, ...], axes: str, *, path: str = "") -> str:
    """Check that an axes string fits a shape; return it upper-cased.

    Letters other than T, C, Y, X are allowed only for dimensions of size 1.
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
        if letter not in KNOWN_AXES and size != 1:
            what = {"S": "an RGB/sample axis", "Z": "a Z stack"}.get(letter, f"axis '{letter}'")
            raise InputError(
                f"{where}image has {what} of size {size} (axes {axes}, shape {tuple(shape)}); "
                "snakescope analyses single-plane fluorescence channels: split RGB into channels "
                "or project Z stacks first, or correct the dataset's 'axes'"
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


def read_image(
    path: str | os.PathLike,
    *,
    axes: str | None = None,
    channels: Sequence[str] | None = None,
    pixel_size_um: float | None = None,
    frame_interval_s: float | None = None,
) -> Image:
    """Read a TIFF into an :class:`Image` normalised to ``TCYX``.

    Parameters
    ----------
    path : path-like
        The image file.
    axes : str, optional
        Axes of the file (letters T, C, Y, X), overriding the file's metadata.
        Required for plain TIFFs with more than two dimensions.
    channels : sequence of str, optional
        Channel names in file order; their number must match the C dimension.
        Default: ``ch0, ch1, ...``.
    pixel_size_um, frame_interval_s : float, optional
        Calibration overriding the file's metadata.

    Returns
    -------
    Image
    """
    path = str(path)
    with _strict_tiff(path), _open_tiff(path) as tif:
        try:
            series = tif.series[0]
            data = series.asarray()
        except Exception as exc:
            raise InputError(
                f"{path}: TIFF is truncated or corrupt ({type(exc).__name__}: {exc}); re-export it"
            ) from exc
        md = _metadata(tif)
    if data.dtype.kind not in "uif" or data.dtype.kind == "c":
        raise InputError(f"{path}: pixel type {data.dtype} is not supported; save as 8/16-bit or float")
    if axes is None:
        axes = default_axes(tuple(data.shape), md.axes, path=path)
    tcyx = normalise_axes(data, axes, path=path)
    n_channels = tcyx.shape[1]
    if channels is None:
        names = [f"ch{i}" for i in range(n_channels)]
    else:
        names = [str(c) for c in channels]
        if len(names) != n_channels:
            raise InputError(
                f"{path}: config lists {len(names)} channels {names} but the image has "
                f"{n_channels} (axes {axes}, shape {tuple(data.shape)}); fix the dataset's "
                "'channels' or 'axes'"
            )
    if tcyx.dtype.kind == "f" and not np.isfinite(tcyx).all():
        raise InputError(
            f"{path}: image contains NaN or infinite pixels; replace them (e.g. by 0) before analysis"
        )
    return Image(
        data=tcyx,
        channels=names,
        pixel_size_um=pixel_size_um if pixel_size_um is not None else md.pixel_size_um,
        frame_interval_s=frame_interval_s if frame_interval_s is not None else md.frame_interval_s,
        axes=axes,
        path=path,
    )


def remove_stale_temporaries(path: str | os.PathLike) -> str:
    """Remove temporary files (or folders) left next to ``path`` by an earlier,
    killed write of the same output, and return the prefix for a new one.

    Temporaries are named ``.tmp-<name>-<random>``: only the job writing
    ``<name>`` creates them, so removing them cannot disturb another job.
    """
    import shutil

    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    prefix = f".tmp-{os.path.basename(path.rstrip(os.sep))}-"
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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; move it into place on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    prefix = remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=os.path.splitext(path)[1], dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary folder next to ``path``; it replaces ``path`` on success
    (with the usual permissions) and is removed on any exception."""
    import shutil

    path = os.fspath(path).rstrip(os.sep)
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=remove_stale_temporaries(path), dir=parent)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
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


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a CSV atomically with a fixed float format (byte-identical reruns)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV written by :func:`write_table` (empty file → empty table)."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def image_name(path: str | os.PathLike) -> str:
    """Image identifier from a path: the file name without ``.tif``/``.tiff``/``.ome.tif``."""
    name = Path(path).name
    for ext in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(path).stem


def frame_count(path: str | os.PathLike, *, axes: str | None = None) -> int:
    """Number of time frames of an image, from its header only (no pixel data)."""
    md = read_metadata(path)
    axes = check_axes(md.shape, axes or default_axes(md.shape, md.axes, path=str(path)), path=str(path))
    return int(md.shape[axes.index("T")]) if "T" in axes else 1
