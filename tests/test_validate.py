import numpy as np
import pytest

from snakescope import validate


def squares():
    truth = np.zeros((10, 20), np.uint16)
    truth[0:4, 0:4] = 1
    truth[5:9, 5:9] = 2
    truth[0:4, 12:16] = 3
    return truth


def test_perfect_match():
    t = squares()
    s = validate.scores(t, t)
    assert (s.f1 == 1).all() and (s.mean_matched_iou == 1).all()


def test_iou_values_and_hungarian_matching():
    t = squares()
    p = np.zeros_like(t)
    p[0:4, 0:2] = 7  # half of object 1: IoU 0.5
    p[5:9, 5:9] = 8  # object 2 exactly
    iou, t_ids, p_ids = validate.iou_matrix(t, p)
    assert list(t_ids) == [1, 2, 3] and list(p_ids) == [7, 8]
    assert iou[0, 0] == pytest.approx(0.5) and iou[1, 1] == 1
    s = validate.scores(t, p, thresholds=[0.5, 0.6])
    row5, row6 = s.iloc[0], s.iloc[1]
    assert (row5.tp, row5.fp, row5.fn) == (2, 0, 1)
    assert row5.precision == 1 and row5.recall == pytest.approx(2 / 3)
    assert row5.f1 == pytest.approx(0.8)
    assert (row6.tp, row6.fn) == (1, 2)


def test_merged_prediction_counts_once():
    t = squares()
    p = np.zeros_like(t)
    p[0:9, 0:9] = 1  # covers objects 1 and 2
    m = validate.match(t, p)
    assert len(m) == 1


def test_empty_images():
    z = np.zeros((5, 5), np.uint8)
    s = validate.scores(z, z, thresholds=[0.5])
    assert s.f1.iloc[0] == 1
    s = validate.scores(squares(), np.zeros((10, 20), np.uint8), thresholds=[0.5])
    assert s.f1.iloc[0] == 0 and s.recall.iloc[0] == 0


def test_pool_scores_sums_counts():
    t = squares()
    a = validate.scores(t, t, thresholds=[0.5])
    b = validate.scores(t, np.zeros_like(t), thresholds=[0.5])
    pooled = validate.pool_scores(__import__("pandas").concat([a, b]))
    assert pooled.tp.iloc[0] == 3 and pooled.fn.iloc[0] == 3 and pooled.f1.iloc[0] == pytest.approx(0.6667, 1e-3)


def test_shape_mismatch():
    from snakescope.errors import InputError
    with pytest.raises(InputError, match="ground truth shape"):
        validate.iou_matrix(np.zeros((3, 3)), np.zeros((4, 4)))
