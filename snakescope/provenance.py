"""Provenance: code versions of steps, software versions, input checksums.

A rule's ``params`` carry :func:`code_version` of its step, so editing the
library code a step runs reruns that step (Snakemake's own code trigger only sees
the ``run:`` block). The modules a step uses are declared once, next to the step
(:func:`uses`), and extended here by the library's own imports between modules
(``synthetic`` imports ``synthetic_rods``: editing either reruns ``example``).
``tests/test_steps.py`` checks each declaration against the step's source.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Mapping, Sequence

PACKAGE_DIR = Path(__file__).parent

#: Modules every step runs through (I/O, errors, the runner). The step's own
#: code counts too: its source and that of the private helpers it calls.
BASE_MODULES = ("io", "errors", "runner")

#: Packages whose versions are recorded in provenance/versions.yaml.
PACKAGES = ("snakemake", "numpy", "scipy", "scikit-image", "tifffile", "pandas", "matplotlib",
            "PyYAML", "laptrack", "py-ctcmetrics", "pyarrow", "bioio")


def uses(*modules: ModuleType) -> Callable[[Callable], Callable]:
    """Declare the library modules a step calls (a decorator on the step).

    Parameters
    ----------
    modules : module
        ``snakescope`` modules, by reference (``@uses(segment, params)``).
    """
    names = []
    for module in modules:
        name = getattr(module, "__name__", "")
        if not name.startswith("snakescope."):
            raise TypeError(f"uses: {module!r} is not a snakescope module")
        names.append(name.split(".", 1)[1])

    def mark(func: Callable) -> Callable:
        func.__snakescope_uses__ = tuple(sorted(set(names)))
        return func

    return mark


@lru_cache(maxsize=None)
def module_imports(name: str) -> tuple[str, ...]:
    """The ``snakescope`` modules that module ``name`` imports (relative imports)."""
    tree = ast.parse((PACKAGE_DIR / f"{name}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and (module == "snakescope" or module.startswith("snakescope.")):
                module, relative = module[len("snakescope."):], True
            else:
                relative = node.level == 1
            if relative:
                if module:
                    found.add(module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("snakescope."))
    return tuple(sorted(m for m in found if (PACKAGE_DIR / f"{m}.py").exists()))


def closure(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` and every snakescope module they import, transitively."""
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(module_imports(name))
    return tuple(sorted(seen))


def step_modules(step: Callable) -> tuple[str, ...]:
    """Every library module whose code can change what ``step`` writes."""
    declared = getattr(step, "__snakescope_uses__", None)
    if declared is None:
        raise TypeError(f"step {step.__name__} has no @uses(...) declaration")
    return closure(set(declared) | set(BASE_MODULES))


@lru_cache(maxsize=None)
def _hash_modules(names: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode())
        h.update((PACKAGE_DIR / f"{name}.py").read_bytes())
    return h.hexdigest()[:16]


def step_source(step: Callable) -> str:
    """Source of ``step`` and of the private helpers of its module it calls (transitively)."""
    import inspect

    module = sys.modules[step.__module__]
    seen: dict[str, str] = {}
    todo = [step]
    while todo:
        func = todo.pop()
        if func.__name__ in seen:
            continue
        source = inspect.getsource(func)
        seen[func.__name__] = source
        for node in ast.walk(ast.parse(source.lstrip())):
            if isinstance(node, ast.Name) and node.id.startswith("_"):
                helper = getattr(module, node.id, None)
                if inspect.isfunction(helper) and helper.__module__ == module.__name__:
                    todo.append(helper)
    return "".join(seen[name] for name in sorted(seen))


def code_version(step: Callable) -> str:
    """Hash of the code ``step`` runs: its own source (:func:`step_source`) and the
    library modules it uses (:func:`step_modules`)."""
    h = hashlib.sha256(_hash_modules(step_modules(step)).encode())
    h.update(step_source(step).encode())
    return h.hexdigest()[:16]


_cached_versions: dict[str, dict[str, str]] = {}


def cached_code_version(step: Callable, *, cache_dir: str) -> str:
    """:func:`code_version` of ``step``, kept in ``cache_dir`` between processes.

    The cache file is named after :func:`package_code_version` (a hash of every
    module), so it can never be stale; parsing the sources costs ~0.4 s of each
    workflow start-up otherwise. A cache that cannot be read or written is
    ignored.
    """
    import json
    import os

    from .io import atomic_path

    path = os.path.join(cache_dir, f"code_versions-{package_code_version()}.json")
    versions = _cached_versions.get(path)
    if versions is None:
        try:
            with open(path, encoding="utf-8") as fh:
                versions = dict(json.load(fh))
        except (OSError, ValueError, TypeError):
            versions = {}
        _cached_versions[path] = versions
    name = f"{step.__module__}.{step.__qualname__}"
    if name not in versions:
        versions[name] = code_version(step)
        try:
            with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
                json.dump(versions, fh, sort_keys=True)
        except (OSError, ValueError):  # read-only or full disk (InputError)
            pass
    return versions[name]


def package_code_version() -> str:
    """Hash of every module of the library."""
    return _hash_modules(tuple(sorted(p.stem for p in PACKAGE_DIR.glob("*.py"))))


def software_versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Versions of Python, snakescope (and a hash of its code) and the packages it uses."""
    from importlib import metadata

    from . import __version__

    versions = {"python": sys.version.split()[0], "snakescope": __version__,
                "snakescope_code": package_code_version()}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def sha256(path: str) -> str:
    """SHA-256 of a file's content (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def input_checksums(files: Mapping[str, Sequence[str]]):
    """One row per file: ``kind, path, bytes, sha256`` (kinds in the given order, paths sorted)."""
    import os

    import pandas as pd

    rows = [(kind, p, os.path.getsize(p), sha256(p)) for kind, paths in files.items() for p in sorted(paths)]
    return pd.DataFrame(rows, columns=["kind", "path", "bytes", "sha256"])


def dump_yaml(data: Mapping[str, Any], path: str) -> None:
    """Write ``data`` as YAML (keys sorted) atomically."""
    import yaml

    from .io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            yaml.safe_dump(dict(data), fh, sort_keys=True, allow_unicode=True)
