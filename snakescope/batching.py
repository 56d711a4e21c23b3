"""Stable batches of images and stable samples, for large screens.

In ``execution: batched`` mode one job runs the per-image chain for a batch of
images. Batches must not move when images are added (a new plate must not
rerun the batches of the other plates), so they are cut by content, as
rsync and backup tools cut files into chunks: the sorted image names are
walked in order and a batch ends after a name whose hash hits a fixed value.
Where a batch ends depends only on the names near the cut, not on how many
images come before it; adding or removing images changes only the batch(es)
they fall into (and at most the next one), and each batch keeps an id made
from its first name.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping, NamedTuple, Sequence

from .errors import InputError


class Batch(NamedTuple):
    """A batch: a stable ``id`` (hex, from the first image's name) and its image names, sorted."""

    id: str
    images: list[str]


def _hash(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big")


def stable_batches(names: Sequence[str], *, batch_size: int) -> list[Batch]:
    """Cut image names into contiguous batches of about ``batch_size`` (content-defined).

    Names are sorted; a batch ends after a name whose hash modulo
    ``ceil(batch_size / 2)`` is 0 once the batch holds at least half of
    ``batch_size`` names, and always at 1.5 x ``batch_size`` (about one batch
    in seven). Batches hold 0.5-1.5 x ``batch_size`` names, 0.9 x
    ``batch_size`` on average: on a cluster the batch jobs take similar times,
    so the last one does not run long alone.

    Parameters
    ----------
    names : sequence of str
        Image names (any order; duplicates are an error).
    batch_size : int
        Target number of names per batch (>= 1). 1 gives one batch per name.

    Returns
    -------
    list of Batch
        In name order; each batch's ``id`` is 10 hex digits of the hash of its
        first name (unique within the list).
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"stable_batches: batch_size must be an integer >= 1, got {batch_size!r}")
    ordered = sorted(names)
    if len(set(ordered)) != len(ordered):
        raise InputError("stable_batches: image names are not unique")
    if batch_size == 1:
        return [Batch(_batch_id(n), [n]) for n in ordered]
    smallest = max(1, batch_size // 2)
    modulus = max(1, -(-batch_size // 2))
    largest = max(smallest, 3 * batch_size // 2)
    out: list[Batch] = []
    current: list[str] = []
    for name in ordered:
        current.append(name)
        cut = _hash(name) % modulus == 0 and len(current) >= smallest
        if cut or len(current) >= largest:
            out.append(Batch(_batch_id(current[0]), current))
            current = []
    if current:
        out.append(Batch(_batch_id(current[0]), current))
    return out


def _batch_id(first: str) -> str:
    return hashlib.blake2b(first.encode("utf-8"), digest_size=5).hexdigest()


def stable_sample(names: Sequence[str], *, n: int | None) -> list[str]:
    """The ``n`` names with the smallest hashes, in name order (``None``: all).

    A bottom-k sample: adding names replaces a sampled name only when the new
    name's hash is smaller, so most of the sample stays when a screen grows.
    """
    if n is None or n >= len(names):
        return sorted(names)
    if n < 0:
        raise InputError(f"stable_sample: n must be >= 0, got {n}")
    return sorted(sorted(names, key=_hash)[:n])


def plan_changes(before: Mapping[str, Mapping[str, Any]] | None,
                 after: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Lines saying why a batch runs again: images added or removed, and per image
    the keyword arguments that changed (``content`` is the raw files' fingerprint).

    ``before`` is the plan of the batch's last run (None: never run).
    """
    if before is None:
        return ["first run of this batch"]
    lines = [f"new image {n}" for n in after if n not in before]
    lines += [f"image {n} left the batch" for n in before if n not in after]
    for name in after:
        if name not in before:
            continue
        changed = sorted(k for k in set(after[name]) | set(before[name]) if after[name].get(k) != before[name].get(k))
        if "content" in changed:
            lines.append(f"image {name}: its file(s) changed")
            changed.remove("content")
        if changed:
            lines.append(f"image {name}: {', '.join(changed)} changed")
    return lines or ["inputs, settings and images unchanged (rerun for code, a missing output or --forcerun)"]
