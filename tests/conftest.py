"""Shared fixtures: config defaults from the schema, tiny images."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def with_defaults(config: dict) -> dict:
    """A config with the schema's defaults filled in (as the workflow does)."""
    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, str(SCHEMA), set_default=True)
    return config


@pytest.fixture
def segment_defaults():
    """The default ``segment`` section for a given diameter."""

    def make(diameter=18, **overrides):
        cfg = with_defaults({"datasets": {"d": {"images": "x/{image}.tif", "segment": {"diameter": diameter}}}})
        seg = cfg["datasets"]["d"]["segment"]
        for key, value in overrides.items():
            seg[key].update(value)
        return seg

    return make


def disks(shape=(96, 96), centres=((30, 30), (30, 47), (70, 70)), radius=9, value=1000.0, background=100.0):
    """A float image of bright disks and its ground-truth labels."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.full(shape, background, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint16)
    for i, (cy, cx) in enumerate(centres, start=1):
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        img[inside] = value
        labels[inside & (labels == 0)] = i
    return img, labels


#: Test files that run Snakemake (or a browser): not part of `make test-fast`.
WORKFLOW_TEST_FILES = {"test_bad_inputs.py", "test_reliability.py", "test_report_browser.py", "test_workflow.py",
                       "test_workflow_measure.py", "test_workflow_methods.py", "test_workflow_track.py",
                       "test_workflow_inputs.py", "test_readme_commands.py", "test_accuracy_benchmark.py"}


def pytest_configure(config):
    config.addinivalue_line("markers", "workflow: runs Snakemake end to end (skipped by make test-fast)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in WORKFLOW_TEST_FILES or item.path.parent.name == "cluster":
            item.add_marker(pytest.mark.workflow)
