"""Segmentations made outside snakescope: label images from another tool, and
StarDist or Cellpose with a local model (optional packages; nothing is
downloaded at run time)."""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from . import segment
from .errors import InputError

#: Model-based methods and the package each needs.
MODEL_PACKAGES = {"stardist": "stardist", "cellpose": "cellpose"}


def compact_labels(frame: np.ndarray) -> np.ndarray:
    """Renumber the ids of one frame to 1..N in order of their value (0 stays 0),
    whatever their size (ids near 2**31 cost no memory)."""
    ids, inverse = np.unique(frame, return_inverse=True)
    if ids.size and ids[0] == 0:
        new = np.arange(ids.size)
    else:
        new = np.arange(1, ids.size + 1)
    return new[inverse].reshape(frame.shape).astype(np.int32 if ids.size < 2**31 else np.int64)


def external_labels(data: np.ndarray, *, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Check label images made elsewhere against the image and renumber them 1..N per frame.

    Parameters
    ----------
    data : (T, Y, X) ndarray
        The label stack.
    shape : tuple
        ``(T, Y, X)`` of the image the labels belong to.
    """
    if data.dtype.kind not in "iu":
        raise InputError(f"external_labels: labels must be integers, got {data.dtype}; "
                         "export the label image as 8/16/32-bit integers")
    if data.shape != tuple(shape):
        raise InputError(
            f"external_labels: labels have shape {data.shape} (TYX) but the image has {tuple(shape)}; give one "
            "label image per image with the same frames and Y/X size"
        )
    if data.dtype.kind == "i" and data.min() < 0:
        raise InputError("external_labels: labels contain negative ids; 0 must be background and objects positive")
    return [segment.filter_objects(compact_labels(frame)) for frame in data]


def require_package(method: str) -> None:
    """Raise an error naming ``method`` when its package is not installed."""
    if method not in MODEL_PACKAGES:
        raise InputError(f"require_package: unknown method {method!r}; use one of {list(MODEL_PACKAGES)}")
    package = MODEL_PACKAGES[method]
    if importlib.util.find_spec(package) is None:
        raise InputError(
            f"method '{method}' needs the package {package}, which is not installed; "
            f"pip install {package} in the workflow's environment, or use method threshold"
        )


def model_labels(stack: np.ndarray, *, method: str, model: str | None) -> list[np.ndarray]:
    """Objects of every frame of ``stack`` (TYX) by StarDist or Cellpose with the local ``model``."""
    require_package(method)
    if not model or not os.path.exists(model):
        raise InputError(
            f"model_labels: model {model!r} not found; give the path of a local {method} model "
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
