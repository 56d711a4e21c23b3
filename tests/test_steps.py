"""Steps (called directly, no Snakemake) and the architecture rules they follow:
each rule calls the step of its own name by reference, each step declares the
library modules it uses, and the declaration matches the step's code."""

import ast
import inspect
import re
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from snakescope import io, provenance, steps
from snakescope.errors import InputError, config_key
from snakescope.rings import select_reporters

ROOT = Path(__file__).resolve().parents[1]
RULE_FILES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))


def _rules():
    """rule name -> text of its block, from every rule file."""
    out = {}
    for path in RULE_FILES:
        text = path.read_text()
        for m in re.finditer(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", text, flags=re.S | re.M):
            out[m.group(1)] = m.group(2)
    return out


def _step_functions():
    return {name: f for name, f in vars(steps).items()
            if inspect.isfunction(f) and f.__module__ == steps.__name__ and not name.startswith("_")}


def test_every_rule_calls_the_step_of_its_name_by_reference():
    rules = _rules()
    with_steps = {name: body for name, body in rules.items() if "run:" in body}
    assert len(with_steps) >= 20
    for name, body in with_steps.items():
        assert f"step(steps.{name}, input, output, params, log)" in body, name
        assert f"code=code_version(steps.{name})" in body, name
        assert callable(getattr(steps, name)), name
    # and every public step is run by its rule, or by the batch rules (common.smk's BATCH_STEPS)
    common = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    batch = set(re.findall(r"steps\.(\w+)", re.search(r"^BATCH_STEPS = \((.*?)\)", common, re.M | re.S).group(1)))
    assert {"batch_image", "batch_part", "batch_tables"} <= batch
    assert set(_step_functions()) == set(with_steps) | batch


def _referenced_modules(func):
    """snakescope modules the step's body refers to by name (ast of its source)."""
    tree = ast.parse(inspect.getsource(func).lstrip())
    args = {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
            for a in n.args + n.kwonlyargs + n.posonlyargs}
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - args  # parameters shadow modules
    found = set()
    for n in names:
        obj = vars(steps).get(n)
        if isinstance(obj, types.ModuleType) and obj.__name__.startswith("snakescope."):
            found.add(obj.__name__.split(".", 1)[1])
    for node in ast.walk(tree):  # local imports: from . import rods
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update([node.module] if node.module else [a.name for a in node.names])
    # helpers of the step module called by the step count as the step's own code
    for n in names:
        helper = vars(steps).get(n)
        if inspect.isfunction(helper) and helper.__module__ == steps.__name__ and n.startswith("_"):
            found |= _referenced_modules(helper)
    return found - set(provenance.BASE_MODULES)


@pytest.mark.parametrize("name", sorted(_step_functions()))
def test_declared_modules_match_the_step_code(name):
    func = getattr(steps, name)
    declared = set(func.__snakescope_uses__)
    assert declared == _referenced_modules(func), name


def test_code_version_follows_imports_between_modules():
    # synthetic imports synthetic_rods: editing the rods generator reruns `example`
    assert "synthetic_rods" in provenance.step_modules(steps.example)
    assert "rods" in provenance.step_modules(steps.measure)  # measure_stack(rods=True)
    assert provenance.code_version(steps.smooth) != provenance.code_version(steps.track)


def test_code_version_changes_when_a_used_module_changes(tmp_path, monkeypatch):
    copy = tmp_path / "snakescope"
    copy.mkdir()
    for f in Path(provenance.__file__).parent.glob("*.py"):
        (copy / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(provenance, "PACKAGE_DIR", copy)
    provenance._hash_modules.cache_clear()
    provenance.module_imports.cache_clear()
    before = {s: provenance.code_version(getattr(steps, s)) for s in ("example", "track", "smooth")}
    with open(copy / "synthetic_rods.py", "a") as fh:
        fh.write("\n# edited\n")
    provenance._hash_modules.cache_clear()
    after = {s: provenance.code_version(getattr(steps, s)) for s in ("example", "track", "smooth")}
    provenance._hash_modules.cache_clear()
    assert before["example"] != after["example"]
    assert before["track"] == after["track"] and before["smooth"] == after["smooth"]


def test_config_key_names_the_key_once():
    with pytest.raises(InputError, match=r"^config key rings.mask: threshold_value: method"):
        with config_key("rings.mask"):
            raise InputError("threshold_value: method 'manual' needs value")
    with pytest.raises(InputError, match=r"^config key a.b: x$"):
        with config_key("other"):
            raise InputError("config key a.b: x")


def test_select_reporters_default_and_explicit():
    assert select_reporters(["nuc", "erk", "akt"], segment_channel="nuc", reporters=None) == ["erk", "akt"]
    assert select_reporters(["nuc", "erk", "akt"], segment_channel=None, reporters=None) == ["erk", "akt"]
    assert select_reporters(["nuc", "erk"], segment_channel="nuc", reporters=["erk"]) == ["erk"]
    with pytest.raises(InputError, match="select_reporters: channel 'akt'"):
        select_reporters(["nuc", "erk"], segment_channel="nuc", reporters=["akt"])


def test_tables_join_and_empty_frames(tmp_path):
    m = pd.DataFrame({"image": "a", "frame": [0, 0], "time_s": [0.0, 0.0], "label": [1, 2],
                      "area_px": [10, 30], "area_um2": [2.5, 7.5]})
    r = pd.DataFrame({"image": "a", "frame": [0, 0], "time_s": [0.0, 0.0], "label": [1, 2],
                      "ring_area_px": [5, 0], "cn_erk": [1.0, np.nan], "cn_reason": ["", "no_ring"]})
    thr = pd.DataFrame({"image": "a", "frame": [0, 1], "threshold": [5.0, 6.0]})
    for name, df in [("m.csv", m), ("r.csv", r), ("t.csv", thr)]:
        io.write_table(df, tmp_path / name)
    steps.tables(measurements=[tmp_path / "m.csv"], rings=[tmp_path / "r.csv"],
                 frames=[tmp_path / "t.csv"], objects=tmp_path / "o.csv",
                 images=tmp_path / "i.csv", dataset="d")
    o = pd.read_csv(tmp_path / "o.csv", keep_default_na=False, na_values=[""])
    assert len(o) == 2 and o.dataset.eq("d").all()
    i = pd.read_csv(tmp_path / "i.csv")
    assert i.n_objects.tolist() == [2, 0]
    assert i.mean_area_px.iloc[0] == 20 and i.mean_cn_erk.iloc[0] == 1.0 and np.isnan(i.mean_area_px.iloc[1])


def test_cached_code_version_equals_code_version_and_is_read_back(tmp_path):
    cached = provenance.cached_code_version(steps.label, cache_dir=str(tmp_path))
    assert cached == provenance.code_version(steps.label)
    (path,) = tmp_path.glob("code_versions-*.json")
    assert provenance.package_code_version() in path.name
    path.write_text('{"snakescope.steps.label": "from-the-file"}')
    provenance._cached_versions.clear()  # a new process
    assert provenance.cached_code_version(steps.label, cache_dir=str(tmp_path)) == "from-the-file"
    provenance._cached_versions.clear()
