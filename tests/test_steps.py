"""File-level steps called directly (no Snakemake)."""

import numpy as np
import pandas as pd
import pytest

from snakescope import io, steps
from snakescope.errors import InputError


def test_reporter_channels_default_and_explicit():
    assert steps.reporter_channels(["nuc", "erk", "akt"], "nuc", None) == ["erk", "akt"]
    assert steps.reporter_channels(["nuc", "erk", "akt"], None, None) == ["erk", "akt"]
    assert steps.reporter_channels(["nuc", "erk"], "nuc", ["erk"]) == ["erk"]
    with pytest.raises(InputError, match="rings.reporters"):
        steps.reporter_channels(["nuc", "erk"], "nuc", ["akt"])


def test_object_tables_join_and_empty_frames(tmp_path):
    m = pd.DataFrame({"image": "a", "frame": [0, 0], "time_s": [0.0, 0.0], "label": [1, 2],
                      "area_px": [10, 30], "area_um2": [2.5, 7.5]})
    r = pd.DataFrame({"image": "a", "frame": [0, 0], "time_s": [0.0, 0.0], "label": [1, 2],
                      "ring_area_px": [5, 0], "cn_erk": [1.0, np.nan], "cn_reason": ["", "no_ring"]})
    thr = pd.DataFrame({"image": "a", "frame": [0, 1], "threshold": [5.0, 6.0]})
    for name, df in [("m.csv", m), ("r.csv", r), ("t.csv", thr)]:
        io.write_table(df, tmp_path / name)
    steps.object_tables(measurements=[tmp_path / "m.csv"], rings=[tmp_path / "r.csv"],
                        frames=[tmp_path / "t.csv"], objects=tmp_path / "o.csv",
                        images=tmp_path / "i.csv", dataset="d")
    o = pd.read_csv(tmp_path / "o.csv", keep_default_na=False, na_values=[""])
    assert len(o) == 2 and o.dataset.eq("d").all()
    i = pd.read_csv(tmp_path / "i.csv")
    assert i.n_objects.tolist() == [2, 0]
    assert i.mean_area_px.iloc[0] == 20 and i.mean_cn_erk.iloc[0] == 1.0 and np.isnan(i.mean_area_px.iloc[1])
