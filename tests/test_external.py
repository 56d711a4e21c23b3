"""Segmentations made elsewhere (snakescope.external)."""

import numpy as np
import pytest

from snakescope import external
from snakescope.errors import InputError


def test_huge_label_ids_cost_no_memory():
    frame = np.zeros((1, 32, 32), np.int32)
    ids = [2**31 - 5, 2**31 - 1, 7, 2**30]
    for i, v in enumerate(ids):
        frame[0, 4 * i:4 * i + 3, 2:9] = v
    (out,) = external.external_labels(frame, shape=(1, 32, 32))
    assert out.max() == 4 and out.dtype == np.int32
    # order of the original ids is kept: 7 < 2**30 < 2**31-5 < 2**31-1
    assert [int(out[4 * i + 1, 5]) for i in range(4)] == [3, 4, 1, 2]


def test_compact_labels_keeps_background_and_order():
    frame = np.array([[0, 50, 50], [9, 0, 1000]])
    np.testing.assert_array_equal(external.compact_labels(frame), [[0, 2, 2], [1, 0, 3]])


@pytest.mark.parametrize("data, message", [
    (np.zeros((1, 8, 8), np.float32), "labels must be integers"),
    (np.zeros((2, 8, 8), np.uint16), r"labels have shape \(2, 8, 8\) \(TYX\) but the image has \(1, 8, 8\)"),
    (np.full((1, 8, 8), -1, np.int16), "labels contain negative ids"),
])
def test_bad_external_labels(data, message):
    with pytest.raises(InputError, match="external_labels: " + message):
        external.external_labels(data, shape=(1, 8, 8))


def test_missing_optional_package_is_named():
    import importlib.util

    if importlib.util.find_spec("stardist") is not None:
        pytest.skip("stardist is installed here")
    with pytest.raises(InputError, match="method 'stardist' needs the package stardist"):
        external.require_package("stardist")
