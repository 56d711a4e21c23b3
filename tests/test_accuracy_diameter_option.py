"""benchmarks/accuracy.py --diameter: the config override and the estimate read back
(small known inputs, no workflow run)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("accuracy_benchmark_diameter", ROOT / "benchmarks" / "accuracy.py")
acc = importlib.util.module_from_spec(_spec)
sys.modules["accuracy_benchmark_diameter"] = acc
_spec.loader.exec_module(acc)


def test_override_diameter_changes_only_the_copy():
    config = {"execution": {"mode": "batched"}, "datasets": {"a": {"segment": {"diameter": 50, "method": "threshold"}},
                                                            "b": {"images": "x.tif"}}}
    auto = acc.override_diameter(config, "a", "auto")
    assert auto["datasets"]["a"]["segment"] == {"diameter": "auto", "method": "threshold"}
    assert config["datasets"]["a"]["segment"]["diameter"] == 50  # the original is untouched
    assert acc.override_diameter(config, "b", 12.5)["datasets"]["b"]["segment"] == {"diameter": 12.5}
    assert acc.override_diameter(config, "a", None) == config


def test_diameter_factor_scales_the_configured_number():
    assert acc.diameter_for("x1.2", 50) == pytest.approx(60.0)
    assert acc.diameter_for("x0.8", 11.7) == pytest.approx(9.36)
    assert acc.diameter_for("auto", 50) == "auto"
    assert acc.diameter_for(30.0, 50) == 30.0
    assert acc.diameter_for(None, 50) is None


def test_estimated_diameter_is_the_median_over_images(tmp_path):
    assert math.isnan(acc.estimated_diameter(tmp_path))
    (tmp_path / "diameter").mkdir()
    for name, d in [("t000", 40.0), ("t001", 44.0), ("t002", 60.0)]:
        pd.DataFrame([{"image": name, "diameter_px": d}]).to_csv(tmp_path / "diameter" / f"{name}.csv", index=False)
    assert acc.estimated_diameter(tmp_path) == 44.0


def test_diameter_option_refuses_write_and_garbage(capsys):
    with pytest.raises(SystemExit):
        acc.main(["--diameter", "auto", "--write", "--sets", "dsb2018"])
    assert "--write" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        acc.main(["--diameter", "big", "--sets", "dsb2018"])
    assert "auto, a number" in capsys.readouterr().err
    for bad in ("x", "x0", "x-1", "xbig"):
        with pytest.raises(SystemExit):
            acc.main(["--diameter", bad, "--sets", "dsb2018"])
        assert "factor such as x1.2" in capsys.readouterr().err
