"""Configuration checks that give one line naming the offending key."""

from __future__ import annotations

from typing import Any, Mapping

from .errors import InputError


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def check_config(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Validate ``config`` against the JSON ``schema``.

    Raises
    ------
    InputError
        One line: ``config key <dotted.path>: <problem>; see config/README.md``.
        Unknown keys name the key itself.
    """
    import jsonschema
    from jsonschema.exceptions import best_match

    cls = jsonschema.validators.validator_for(schema)
    error = best_match(cls(schema).iter_errors(config))
    if error is None:
        return
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted((error.schema.get("properties") or {}).keys())
        extra = [k for k in error.instance if k not in allowed] if isinstance(error.instance, dict) else []
        where = _key(path + extra[:1])
        hint = f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it"
        raise InputError(f"config key {where}: unknown key; {hint} (see config/README.md)")
    if error.validator == "oneOf" and error.context:
        # report the alternative that got furthest, with the key path
        sub = best_match(error.context)
        message = sub.message if sub is not None else error.message
    else:
        message = error.message
    raise InputError(f"config key {_key(path)}: {message}; see config/README.md")


def apply_overrides(config: dict[str, Any], schema: Mapping[str, Any], *,
                    base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Make ``--config`` overrides usable: a dotted key (``figures.dpi=50``) is
    nested (``{"figures": {"dpi": 50}}``, merged into the existing section), and a
    string value given where the schema wants a mapping or a list
    (``figures={dpi: 50}``, which Snakemake passes as text) is read as YAML.

    ``base`` is the config of the config files: a section given as text is
    merged into its section there (Snakemake replaced it whole).

    Returns a new config; raises :class:`InputError` naming the key when a
    value cannot be read.
    """
    import copy

    import yaml

    out = copy.deepcopy(dict(config))
    for key in [k for k in out if isinstance(k, str) and "." in k]:
        value = out.pop(key)
        parts = key.split(".")
        node = out
        if parts[0] in out and not isinstance(out[parts[0]], dict) and isinstance((base or {}).get(parts[0]), dict):
            out[parts[0]] = copy.deepcopy(base[parts[0]])
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    _coerce_overrides(out, base or {}, schema, schema)
    properties = schema.get("properties", {})
    for key, value in list(out.items()):
        wanted = properties.get(key, {}).get("type")
        if isinstance(value, str) and wanted in ("object", "array"):
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError as exc:
                raise InputError(f"config key {key}: cannot read {value!r} as YAML ({' '.join(str(exc).split())})") from exc
            if isinstance(parsed, dict) and isinstance((base or {}).get(key), dict):
                merged = copy.deepcopy(base[key])
                merged.update(parsed)
                parsed = merged
            out[key] = parsed
    return out


def _schema_types(node: Mapping[str, Any], root: Mapping[str, Any]) -> set[str]:
    """JSON types a schema node allows (following $ref, oneOf, anyOf)."""
    if "$ref" in node:
        target: Any = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return _schema_types(target, root)
    types = set()
    kind = node.get("type")
    if kind:
        types |= {kind} if isinstance(kind, str) else set(kind)
    for alt in node.get("oneOf", []) + node.get("anyOf", []):
        types |= _schema_types(alt, root)
    return types


def _child_schema(node: Mapping[str, Any], key: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    if "$ref" in node:
        target: Any = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    if key in node.get("properties", {}):
        return node["properties"][key]
    for pattern, sub in node.get("patternProperties", {}).items():
        import re

        if re.search(pattern, key):
            return sub
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


def _coerce_overrides(config: dict, base: Mapping[str, Any], node: Mapping[str, Any], root: Mapping[str, Any]) -> None:
    """Values Snakemake's ``--config`` passed as text (it reads nested values with
    YAML's base loader: every leaf a string) get the type the schema wants."""
    import yaml

    _json = {bool: "boolean", int: "integer", float: "number", list: "array", dict: "object", type(None): "null"}
    for key, value in config.items():
        child = _child_schema(node, key, root)
        before = base.get(key) if isinstance(base, Mapping) else None
        if isinstance(value, dict):
            _coerce_overrides(value, before if isinstance(before, Mapping) else {}, child, root)
        elif isinstance(value, str) and value != before:
            allowed = _schema_types(child, root)
            if not allowed or "string" in allowed and not ({"number", "integer", "boolean", "null"} & allowed):
                continue
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                continue
            kind = _json.get(type(parsed))
            if kind and (kind in allowed or (kind == "integer" and "number" in allowed)):
                config[key] = parsed


def load_yaml_strict(path: str) -> Any:
    """Load a YAML file, rejecting duplicate keys (PyYAML silently keeps the last).

    Raises
    ------
    InputError
        ``<file>: key '<k>' appears twice (line N); ...``.
    """
    import yaml

    class StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml: ~10x faster (26 KB schema)
        pass

    def construct_mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:  # explicit keys only; YAML merge keys (<<: *anchor) may be overridden
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise InputError(
                    f"{path}: key '{key}' appears twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1}); "
                    "rename or merge one (two datasets cannot share a name)"
                )
            seen[key] = key_node.start_mark.line
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    with open(path, encoding="utf-8") as fh:
        try:
            return yaml.load(fh, Loader=StrictLoader)
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc


# --------------------------------------------------------------------------
# image discovery
# --------------------------------------------------------------------------

import glob as _glob
import os as _os
import re as _re
from dataclasses import dataclass, field

#: Pattern fields with a meaning of their own; every other field is metadata.
FRAME, CHANNEL, IMAGE = "frame", "channel", "image"
_FIELD_RE = _re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

#: Files that are never images: macOS resource forks and Finder files, hidden files.
def _ignored(path: str) -> bool:
    return _os.path.basename(path).startswith(".")


@dataclass
class ImageSource:
    """Where one image of a dataset comes from.

    Attributes
    ----------
    name : str
        The image name (``{image}`` wildcard of the workflow).
    files : list of str
        One file, or one file per frame and channel in frame-major order
        (``t0c0, t0c1, t1c0, ...``) when ``grid`` is set.
    grid : tuple of int or None
        ``(n_frames, n_channels)`` of an image assembled from many files.
    channels : list of str or None
        Channel names in C order when the files are one per channel.
    fields : dict
        Values of the pattern's metadata fields (``plate``, ``well``, ...).
    scene : int or None
        Scene (position, series) of a multi-scene file; None for single-scene files.
    """

    name: str
    files: list[str]
    grid: tuple[int, int] | None = None
    channels: list[str] | None = None
    fields: dict[str, str] = field(default_factory=dict)
    scene: int | None = None

    @property
    def n_frames(self) -> int | None:
        """Frames when known from the file layout (None: read the header)."""
        return self.grid[0] if self.grid else None


def pattern_fields(pattern: str) -> list[str]:
    """Field names of an ``images`` pattern, in order of appearance (each once)."""
    out: list[str] = []
    for name in _FIELD_RE.findall(pattern):
        if name not in out:
            out.append(name)
    return out


def _pattern_regex(pattern: str) -> "_re.Pattern[str]":
    parts, pos, seen = [], 0, set()
    for m in _FIELD_RE.finditer(pattern):
        parts.append(_re.escape(pattern[pos:m.start()]))
        name = m.group(1)
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+?)")
        seen.add(name)
        pos = m.end()
    parts.append(_re.escape(pattern[pos:]))
    return _re.compile("".join(parts) + r"\Z")


def _sort_key(value: str):
    return (0, int(value), value) if value.isdigit() else (1, 0, value)


def discover_images(dataset: str, images: str | list[str], *, channels: Any = None,
                    key: str | None = None, ignored: list[str] | None = None) -> dict[str, ImageSource]:
    """The images of a dataset from its ``images`` setting.

    Parameters
    ----------
    dataset : str
        Dataset name (the image name when a pattern has no field but ``frame``/``channel``).
    images : str or list of str
        A pattern with fields, e.g. ``"data/{image}.tif"``,
        ``"movie/t{frame}.tif"`` (one file per frame: one image) or
        ``"plate/{well}_s{site}_{channel}.tif"`` (one file per channel; one image
        per combination of the other fields, named ``<well>_s<site>`` from the
        pattern's text); or a list of files (image name = file name without
        ``.tif``).
    channels : list or mapping, optional
        With a ``{channel}`` field: the channel values in C order (a list), or a
        mapping from the value in the file name to the channel name.
    key : str, optional
        Config key named in errors (default ``datasets.<dataset>.images``).
    ignored : list, optional
        Receives the hidden files (``.name``, macOS ``._name``) the pattern matched
        but that are not read.

    Returns
    -------
    dict
        Image name -> :class:`ImageSource`, sorted by name.
    """
    from .io import image_name

    key = key or f"datasets.{dataset}.images"
    if not isinstance(images, str):
        out: dict[str, ImageSource] = {}
        for path in images:
            name = safe_name(image_name(path))
            if name in out:
                raise InputError(
                    f"config key {key}: two files named {name!r} ({out[name].files[0]}, {path}); "
                    "rename one, image names must be unique within a dataset"
                )
            out[name] = ImageSource(name=name, files=[path])
        return dict(sorted(out.items()))

    fields = pattern_fields(images)
    if not fields:
        raise InputError(f"config key {key}: pattern {images!r} has no field such as {{image}} or {{frame}}; "
                         "write e.g. 'data/{image}.tif' or list the files")
    regex = _pattern_regex(images)
    found = []
    for path in _glob.glob(_FIELD_RE.sub("*", _glob.escape(images)), include_hidden=True):
        m = regex.match(path)
        if m and _ignored(path):
            if ignored is not None:
                ignored.append(path)
        elif m:
            found.append((path, m.groupdict()))
    if not found:
        raise InputError(
            f"config key {key}: pattern {images!r} matches no file; check the path (relative to the "
            f"working directory {_os.getcwd()})"
        )
    naming = [f for f in fields if f not in (FRAME, CHANNEL)]
    channel_map = None
    if CHANNEL in fields:
        values = sorted({g[CHANNEL] for _, g in found}, key=_sort_key)
        if channels is None:
            channel_map = {v: v for v in values}
        elif isinstance(channels, Mapping):
            channel_map = {str(k): str(v) for k, v in channels.items()}
        else:
            channel_map = {str(v): str(v) for v in channels}
        unknown = [v for v in values if v not in channel_map]
        if unknown and channels is not None:
            found = [(p, g) for p, g in found if g[CHANNEL] in channel_map]
    groups: dict[tuple, list[tuple[str, dict]]] = {}
    for path, g in found:
        groups.setdefault(tuple(g[f] for f in naming), []).append((path, g))
    out = {}
    for values, members in groups.items():
        meta = dict(zip(naming, values))
        name = safe_name(meta.get(IMAGE) or _name_from_pattern(images, meta, dataset))
        if name in out:
            raise InputError(f"config key {key}: two images named {name!r}; rename the files so names differ "
                             "in more than braces")
        if FRAME not in fields and CHANNEL not in fields:
            out[name] = ImageSource(name=name, files=[members[0][0]], fields=_metadata(meta))
            continue
        frames = sorted({g.get(FRAME, "") for _, g in members}, key=_sort_key)
        chans = list(channel_map) if channel_map else [None]
        by_key = {(g.get(FRAME, ""), g.get(CHANNEL)): p for p, g in members}
        files = []
        for t in frames:
            for c in chans:
                path = by_key.get((t, c))
                if path is None:
                    missing = images.format(**{**meta, FRAME: t, CHANNEL: c} if c is not None else {**meta, FRAME: t})
                    raise InputError(
                        f"config key {key}: image {name!r} has no file {missing} (frame {t or 0}, channel {c}); "
                        "every frame needs a file for every channel: add it, or remove that image's files"
                    )
                files.append(path)
        out[name] = ImageSource(name=name, files=files, grid=(len(frames), len(chans)),
                                channels=[channel_map[c] for c in chans] if channel_map else None,
                                fields=_metadata(meta))
    return dict(sorted(out.items()))


#: File name endings that can hold several scenes (positions, series): their
#: headers are read at start-up so that every scene becomes an image. Plain
#: TIFFs are not opened (a multi-series plain TIFF stops at reading, naming its scenes).
MULTI_SCENE_SUFFIXES = (".ome.tif", ".ome.tiff", ".nd2", ".czi", ".lif", ".zarr")


def expand_scenes(sources: Mapping[str, ImageSource], *, key: str) -> dict[str, ImageSource]:
    """One image per scene of every multi-scene file (``<image>_<scene>``), none dropped.

    Only single-file images whose file name ends in :data:`MULTI_SCENE_SUFFIXES` are opened.
    """
    from .io import image_name, image_names

    out: dict[str, ImageSource] = {}
    for name, src in sources.items():
        path = src.files[0]
        if src.grid is not None or not path.lower().rstrip("/").endswith(MULTI_SCENE_SUFFIXES):
            out[name] = src
            continue
        base = image_name(path)
        for scene_name, scene in image_names(path):
            new = name if scene is None else safe_name(name + scene_name[len(base):])
            if new in out:
                raise InputError(f"config key {key}: two images named {new!r} (scenes of {path}); rename a file")
            out[new] = ImageSource(name=new, files=[path], fields=dict(src.fields), scene=scene)
    return dict(sorted(out.items()))


_UNSAFE_NAME = _re.compile(r"[{}]")


def safe_name(name: str) -> str:
    """An image name usable as a Snakemake wildcard value and a file name:
    braces (``well{A1}``) become ``_``."""
    return _UNSAFE_NAME.sub("_", name)


def _metadata(meta: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in meta.items() if k != IMAGE}


def _name_from_pattern(pattern: str, meta: Mapping[str, str], dataset: str) -> str:
    """Image name from the metadata fields and the literal text between them in
    the file name part of the pattern (``{well}_s{site}_{channel}.tif`` ->
    ``A01_s1``); the dataset name when there are no such fields."""
    if not meta:
        return dataset
    tail = pattern.split("/")[-1]
    pieces, pos, started = [], 0, False
    for m in _FIELD_RE.finditer(tail):
        name = m.group(1)
        literal = tail[pos:m.start()]
        if name in meta:
            if started:
                pieces.append(literal)
            pieces.append(meta[name])
            started = True
        pos = m.end()
    in_tail = {m.group(1) for m in _FIELD_RE.finditer(tail)}
    lead = [meta[f] for f in meta if f not in in_tail]  # fields of folders
    name = "_".join(lead + ["".join(pieces).strip("_-.")] if pieces else lead)
    return name


# --------------------------------------------------------------------------
# sample sheets and image metadata
# --------------------------------------------------------------------------

_COLUMN_RE = _re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def image_metadata(sources: Mapping[str, ImageSource], samples: str | None, *,
                   key: str) -> dict[str, dict[str, str]]:
    """Metadata of every image: the pattern's metadata fields (``well``, ``site``,
    ...) and the columns of the sample sheet ``samples``.

    The sample sheet (tab- or comma-separated, one header line) has key columns
    that identify images: ``image`` (image names), or pattern fields (``well``
    and/or ``site``...: a row then applies to every image with those values).
    Every other column is free metadata (``condition``, ``treatment``, ``dose``).

    Raises
    ------
    InputError
        Naming ``key`` and the file: unreadable sheet, no key column, a bad
        column name, a row naming no image, an image without a row, or two rows
        for one image.
    """
    meta = {name: dict(src.fields) for name, src in sources.items()}
    if not samples:
        return meta
    import pandas as pd

    try:
        table = pd.read_csv(samples, sep=None, engine="python", dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(f"config key {key}: sample sheet {samples} not found; fix the path") from None
    except Exception as exc:  # noqa: BLE001 - any parser error is the same user problem
        raise InputError(f"config key {key}: cannot read the sample sheet {samples} ({exc}); "
                         "write a tab- or comma-separated table with one header line") from exc
    table.columns = [str(c).strip() for c in table.columns]
    bad = [c for c in table.columns if not _COLUMN_RE.match(c)]
    if bad:
        raise InputError(f"config key {key}: {samples}: column name {bad[0]!r} must start with a letter and "
                         "contain only letters, digits and _")
    fields = {f for src in sources.values() for f in src.fields}
    keys = ["image"] if "image" in table.columns else [c for c in table.columns if c in fields]
    if not keys:
        raise InputError(f"config key {key}: {samples} has no column 'image' and no column named after a "
                         f"pattern field ({', '.join(sorted(fields)) or 'the pattern has none'}); add one")
    free = [c for c in table.columns if c not in keys]
    clash = [c for c in free if c in fields]
    if clash:
        raise InputError(f"config key {key}: {samples}: column {clash[0]!r} is also a file name field; remove it")
    rows: dict[tuple, dict[str, str]] = {}
    for i, row in table.iterrows():
        k = tuple(str(row[c]).strip() for c in keys)
        if k in rows:
            raise InputError(f"config key {key}: {samples} has two rows for {dict(zip(keys, k))} (line {i + 2})")
        rows[k] = {c: str(row[c]).strip() for c in free}
    used = set()
    for name, src in sources.items():
        values = {"image": name, **src.fields}
        k = tuple(values.get(c, "") for c in keys)
        if k not in rows:
            raise InputError(f"config key {key}: image {name!r} has no row in {samples} "
                             f"(looked for {dict(zip(keys, k))}); add the row")
        used.add(k)
        meta[name].update(rows[k])
    unused = [k for k in rows if k not in used]
    if unused:
        raise InputError(f"config key {key}: {samples} names {dict(zip(keys, unused[0]))}, which is not an image "
                         "of the dataset; fix or remove the row")
    return meta
